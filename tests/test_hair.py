"""generator/hair.py: strands on the ICT face model, checked against the shaped mesh itself."""

from __future__ import annotations

import numpy as np
import pytest
import yaml
from matplotlib.path import Path

from facegen.generator import hair
from facegen.generator.sampling import DEFAULT_CONFIG
from facegen.generator.scene import Appearance, FacialHair, Hair

DOWN = np.array([0.0, -1.0, 0.0])
LENGTHS = {"buzz": 0.5, "crew": 3.0, "side_part": 7.0, "medium": 13.0, "bob": 17.0, "long_straight": 32.0,
           "long_wavy": 30.0, "curly": 12.0, "afro": 7.0, "fringe": 14.0, "ponytail": 30.0, "bun": 28.0}
CURLS = {"long_wavy": 0.45, "curly": 0.75, "afro": 0.95}
FACIAL_LENGTHS = {"stubble": 0.15, "moustache": 1.2, "goatee": 2.0, "full_beard": 3.0}


def scalp(style: str, strands: int = 500, seed: int = 1, **kw) -> Hair:
    args = dict(style=style, strands=strands, length=LENGTHS.get(style, 0.0), curl=CURLS.get(style, 0.0),
                clumping=0.3, frizz=0.2, parting=0.4, melanin=0.5, melanin_redness=0.2, seed=seed)
    return Hair(**{**args, **kw})


def beard(style: str, strands: int = 800, seed: int = 2, **kw) -> FacialHair:
    args = dict(style=style, strands=strands, length=FACIAL_LENGTHS.get(style, 0.0), brow_strands=200,
                brow_length=0.8, seed=seed)
    return FacialHair(**{**args, **kw})


@pytest.fixture(scope="module")
def shaped(face_model):
    """A non-neutral identity with a smile and raised brows: strands must follow the shaped mesh."""
    identity = np.random.default_rng(0).normal(0, 1, face_model.num_identity).astype(np.float32)
    expression = np.zeros(face_model.num_expressions, np.float32)
    for name in ("browInnerUp_L", "browInnerUp_R", "mouthSmile_L", "mouthSmile_R"):
        expression[face_model.expression_index(name)] = 0.7
    return face_model.mesh(identity, expression)


@pytest.fixture(scope="module")
def skin(face_model, shaped):
    """A reference signed distance to the shaped skin: the nearest skin vertex and its normal."""
    from scipy.spatial import cKDTree

    ids = np.flatnonzero(np.isin(face_model.vertex_region, [face_model.region_names.index(r)
                                                             for r in ("face", "head_neck")]))
    ids = ids[~hair.ear_vertices(face_model.neutral[ids])]  # hair may pass through the ears (see hair._head)
    normals = face_model.vertex_normals(shaped)[ids].astype(np.float64)
    vertices = shaped[ids].astype(np.float64)
    tree = cKDTree(vertices)

    def signed(points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(signed distance along the nearest vertex's normal, distance to that vertex)."""
        dist, near = tree.query(points.reshape(-1, 3))
        return np.einsum("ij,ij->i", points.reshape(-1, 3) - vertices[near], normals[near]), dist

    return signed


def check_geometry(g, strands: int, points: int) -> None:
    assert g.points.shape == (strands, points, 3) and g.points.dtype == np.float32
    assert g.radius.shape == (strands, points) and g.radius.dtype == np.float32
    assert g.colours.shape == (strands, 3) and g.colours.dtype == np.float32
    assert np.isfinite(g.points).all() and (g.radius > 0).all()
    assert (g.colours >= 0).all() and (g.colours <= 1).all()


def test_style_names_match_sampling_yaml():
    config = yaml.safe_load(DEFAULT_CONFIG.read_text())
    assert set(hair.STYLES) == set(config["hair"]["styles"])
    assert set(hair.FACIAL_STYLES) == set(config["facial_hair"]["styles"])
    # the styles without strands in the YAML are exactly the empty recipes
    assert {k for k, v in config["hair"]["styles"].items() if "strands" not in v} == {"bald"}
    assert {k for k, v in config["facial_hair"]["styles"].items() if "strands" not in v} == {"none"}


@pytest.mark.parametrize("style", sorted(hair.STYLES))
def test_scalp_styles_grow(face_model, shaped, style):
    g = hair.scalp_strands(scalp(style), shaped, face_model, DOWN)
    if hair.STYLES[style] is None:
        assert g is None
        return
    check_geometry(g, 500, hair.STYLES[style].points)
    assert hair.scalp_strands(scalp(style, strands=0), shaped, face_model, DOWN) is None


@pytest.mark.parametrize("style", sorted(hair.FACIAL_STYLES))
def test_facial_styles_grow(face_model, shaped, style):
    g = hair.facial_strands(beard(style), scalp("crew"), shaped, face_model, DOWN)
    if hair.FACIAL_STYLES[style] is None:
        assert g is None
        return
    check_geometry(g, 800, hair.FACIAL_STYLES[style].points)


def test_same_record_same_strands(face_model, shaped):
    for style in ("long_wavy", "ponytail", "bun", "afro"):
        a = hair.scalp_strands(scalp(style), shaped, face_model, DOWN)
        b = hair.scalp_strands(scalp(style), shaped, face_model, DOWN)
        assert a.points.tobytes() == b.points.tobytes() and a.colours.tobytes() == b.colours.tobytes()
        c = hair.scalp_strands(scalp(style, seed=2), shaped, face_model, DOWN)
        assert not np.array_equal(a.points, c.points)
    a = hair.facial_strands(beard("full_beard"), scalp("crew"), shaped, face_model, DOWN)
    b = hair.facial_strands(beard("full_beard"), scalp("crew"), shaped, face_model, DOWN)
    assert a.points.tobytes() == b.points.tobytes()
    a = hair.brow_strands(Appearance(), beard("none"), shaped, face_model)
    b = hair.brow_strands(Appearance(), beard("none"), shaped, face_model)
    assert a.points.tobytes() == b.points.tobytes()
    assert not np.array_equal(a.points, hair.brow_strands(Appearance(), beard("none", seed=3), shaped, face_model).points)


def test_roots_on_the_scalp_not_the_face(face_model, shaped, skin):
    lm = shaped[face_model.landmarks68]
    roots = hair.scalp_strands(scalp("long_straight", strands=3000), shaped, face_model, DOWN).points[:, 0]
    signed, dist = skin(roots)
    assert np.abs(signed).max() < 0.1 and dist.max() < 1.5  # on the skin
    # Over the forehead only above the brows by 4 cm; lower only beside the face (sideburns, behind
    # the ears, the nape), never on the neck's front or below the chin.
    forehead = (roots[:, 2] > lm[[0, 16], 2].mean() + 0.5) & (np.abs(roots[:, 0]) < np.abs(lm[[19, 24], 0]).max())
    assert (roots[forehead, 1] > lm[17:27, 1].max() + 3.5).all()
    assert (roots[:, 1] > lm[8, 1] + 2.0).all()
    assert forehead.any() and (roots[:, 2] < -5).any() and (roots[:, 1] < 0).any()  # front, back, nape


@pytest.mark.parametrize("style", ["crew", "bob", "long_wavy", "curly", "afro", "fringe", "ponytail", "bun"])
def test_strands_stay_outside_the_head(face_model, shaped, skin, style):
    g = hair.scalp_strands(scalp(style), shaped, face_model, DOWN)
    signed, dist = skin(g.points)
    # Beyond 3 cm and below the neck (the shoulders' open edge) the nearest vertex says little.
    near = (dist < 3.0) & (g.points.reshape(-1, 3)[:, 1] > shaped[face_model.landmarks68[8], 1] - 5)
    assert signed[near].min() > -0.15


def test_long_hair_falls_along_gravity(face_model, shaped):
    upright = hair.scalp_strands(scalp("long_straight"), shaped, face_model, DOWN).points
    assert (upright[:, -1, 1] < upright[:, 0, 1] - 10).mean() > 0.9
    sideways = np.array([0.6, -0.8, 0.0])  # the head rolled: the world's down is towards +x
    tilted = hair.scalp_strands(scalp("long_straight"), shaped, face_model, sideways).points
    assert tilted[:, -1, 0].mean() > upright[:, -1, 0].mean() + 4
    np.testing.assert_array_equal(tilted[:, 0], upright[:, 0])  # the same roots


def test_long_hair_falls_beside_the_face(face_model, shaped):
    lm = shaped[face_model.landmarks68]
    points = hair.scalp_strands(scalp("long_straight"), shaped, face_model, DOWN).points.reshape(-1, 3)
    between_eyes_and_chin = (points[:, 1] < lm[36:48, 1].max()) & (points[:, 1] > lm[8, 1])
    in_front = points[:, 2] > lm[[0, 16], 2].mean()
    assert (np.abs(points[between_eyes_and_chin & in_front, 0]) > np.abs(lm[[2, 14], 0]).max() - 0.5).all()


@pytest.mark.parametrize("length, clumping, seed", [(10.0, 0.3, 1), (8.0, 0.7, 2), (8.0, 0.0, 3)])
def test_fringe_covers_the_brows(face_model, shaped, length, clumping, seed):
    """At the sampler's fewest strands (4000) and most clumping too."""
    g = hair.scalp_strands(scalp("fringe", strands=4000, length=length, clumping=clumping, frizz=0.4, seed=seed),
                           shaped, face_model, DOWN)
    t = np.linspace(0, 1, 6)[None, None, :, None]
    along = (g.points[:, :-1, None] * (1 - t) + g.points[:, 1:, None] * t).reshape(-1, 3)  # on the segments
    for i in range(17, 27):
        brow = shaped[face_model.landmarks68[i]]
        close = np.linalg.norm(along[:, :2] - brow[:2], axis=1) < 0.3
        assert (along[close, 2] > brow[2]).any(), f"brow landmark {i} is not behind the fringe"


def test_brows_follow_the_brow_landmarks(face_model, shaped):
    appearance = Appearance(brow_density=0.5, brow_thickness=1.0)
    g = hair.brow_strands(appearance, beard("none", brow_strands=240), shaped, face_model)
    check_geometry(g, 240, hair.BROW_POINTS)  # 2 brows x 240 x 0.5
    lm = shaped[face_model.landmarks68]
    for brow, points, outwards in ((lm[17:22], g.points[:120], -1), (lm[22:27], g.points[120:], 1)):
        dense = np.concatenate([a + (b - a) * np.linspace(0, 1, 20)[:, None] for a, b in zip(brow[:-1], brow[1:])])
        gap = np.linalg.norm(points[:, 0, None] - dense[None], axis=2).min(1)
        assert gap.max() < 0.8  # roots in a band along the brow
        assert (np.sign(points[:, -1, 0] - points[:, 0, 0]) == outwards).mean() > 0.7  # towards the outer end
        assert (points[:, -1, 1] - points[:, 0, 1]).mean() > 0  # and upwards
    assert hair.brow_strands(Appearance(brow_density=0.0), beard("none"), shaped, face_model) is None


def test_beards_below_the_nose_and_off_the_lips(face_model, shaped):
    lm = shaped[face_model.landmarks68]
    lips = Path(lm[48:60, :2])
    for style in ("stubble", "moustache", "goatee", "full_beard"):
        roots = hair.facial_strands(beard(style, strands=2000), scalp("crew"), shaped, face_model, DOWN).points[:, 0]
        assert (roots[:, 1] < lm[[1, 15], 1].max() + 1.5).all(), style  # never up on the cheekbones
        middle = np.abs(roots[:, 0]) < np.abs(lm[[31, 35], 0]).max() + 0.5
        assert (roots[middle, 1] < lm[31:36, 1].min()).all(), style  # under the nose, not on it
        front = roots[:, 2] > lm[48:60, 2].min() - 1.0
        assert not lips.contains_points(roots[front, :2], radius=-0.2).any(), style
    moustache = hair.facial_strands(beard("moustache"), scalp("crew"), shaped, face_model, DOWN).points[:, 0]
    assert (moustache[:, 1] > lm[48:55, 1].min() - 0.5).all()


def test_colours_follow_melanin():
    rng = np.random.default_rng(0)
    dark = hair.strand_colours(Hair(melanin=0.9, melanin_redness=0.1), 200, rng)
    light = hair.strand_colours(Hair(melanin=0.1, melanin_redness=0.1), 200, rng)
    assert dark.mean() < 0.5 * light.mean()
    red = hair.strand_colours(Hair(melanin=0.5, melanin_redness=0.8), 200, rng)
    assert (red[:, 0] > red[:, 2]).all()
    grey = hair.strand_colours(Hair(melanin=0.9, grey=1.0), 200, rng)
    assert grey.min() > 0.5
    # Cycles' Principled Hair BSDF: melanin 0 is white, and the numbers of its melanin model
    np.testing.assert_allclose(hair.melanin_colour(0.0, 0.0), [1, 1, 1])
    q = -np.log(0.5)
    sigma = q * 0.75 * np.array([0.506, 0.841, 1.653]) + q * 0.25 * np.array([0.343, 0.733, 1.924])
    np.testing.assert_allclose(hair.melanin_colour(0.5, 0.25), np.exp(-np.sqrt(sigma) * 5.88841))
