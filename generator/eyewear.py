"""Glasses fitted to each face: frames and lenses built from the sample's own eye, nose-bridge and ear
positions, in model space (cm, +y up, +z out of the face), like the hair and garments of
generator/parts.py `dressing`.

- The lenses: a flat-ish outline per eye (`FRAMES` gives each shape's outline), centred on the eye,
  as wide as `Eyewear.size` times the eye's width, tilted like real frames (pantoscopic tilt, a little
  wrap), then moved forward until no part of the face (lashes and brows included) comes closer than
  CLEARANCE to the lens's back surface: glasses never cut into the face whatever the identity or
  expression.
- The frame: a tube around each lens's edge (none for rimless), a bridge over the nose between the two
  rims, and two temples from the rims' outer ends back over the ears, held off the skin.

Lenses are closed thin solids, 0.2 cm thick (`LENS_THICKNESS`): a front surface, a back surface
following the same outline (it is the one that clears the face) and the edge band between them. Both
faces are the same bulged surface, one moved along the lens's normal: plano, no optical power. In
Cycles they refract (generator/materials.py `lens_material`); a plano lens only shifts what is seen
through it sideways, by d sin(i) (1 - cos(i) / sqrt(n^2 - sin^2(i))) for thickness d, incidence i and
index n = 1.5: 0.024 cm at 20 degrees, 0.056 cm at 40, which at 256 px (7.7 px per cm at the eyes for
the sampler's median framing, 10.9 at its closest) is 0.2 and 0.4-0.6 px: the eyes behind are drawn
within a fraction of a pixel of where their labels put them (a prescription lens would magnify or
shrink the eyes in the image and move them off their labels). The raster backend draws the front
surface alone. `Eyewear.lens_opacity` says how much of the light the lens stops: below OPAQUE (clear
and tinted lenses) a lens hides nothing, at or above it (sunglasses) it hides what is behind; both
backends and the labels use the same rule (see docs/rendering.md, "Glasses").
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from facegen.errors import FacegenError
from facegen.generator.hair import ear_vertices, skin_proxy
from facegen.generator.meshes import join, tube
from facegen.generator.parts import SurfaceGeometry

if TYPE_CHECKING:
    from facegen.face_model import FaceModel
    from facegen.generator.scene import Eyewear

F = np.float32
OPAQUE = 0.5  # lens_opacity from which a lens hides what is behind it (Cycles' pass alpha threshold)
CLEARANCE = 0.45  # cm between the lenses' back and the face (lashes reach ~0.3 cm off the lids)
LENS_THICKNESS = 0.2  # cm between a lens's back and front surfaces
TILT, WRAP = 8.0, 5.0  # degrees: lenses' lower edge towards the face; their outer edge backwards
OUTLINE_POINTS = 64  # around each lens


@dataclass(frozen=True)
class Frame:
    """One frame shape: the lens outline's superellipse exponent and height / width, and how it bends."""

    exponent: float  # 2 = ellipse; larger = squarer corners
    aspect: float  # lens height / width
    rim: bool = True  # False: rimless (the lenses' edges, a bridge and temples only)
    drop: float = 0.0  # aviator: the lower inner part hangs down (share of the height)
    lift: float = 0.0  # cat-eye: the upper outer corner rises (share of the height)
    brow: float = 1.0  # browline: the upper rim is this many times thicker


FRAMES: dict[str, Frame] = {
    "round": Frame(exponent=2.0, aspect=0.88),
    "rectangular": Frame(exponent=4.5, aspect=0.62),
    "cat_eye": Frame(exponent=3.0, aspect=0.66, lift=0.35),
    "browline": Frame(exponent=3.0, aspect=0.7, brow=2.6),
    "aviator": Frame(exponent=2.4, aspect=0.8, drop=0.3),
    "rimless": Frame(exponent=3.5, aspect=0.66, rim=False),
}
LENSES = ("clear", "tinted", "sun")

# iBUG-68 points (FaceModel.landmarks68) the fit uses: each eye's outer and inner corner, its lids, the
# nose bridge.
RIGHT_EYE, LEFT_EYE = (36, 37, 38, 39, 40, 41), (45, 44, 43, 42, 47, 46)  # outer corner first
BRIDGE = (27, 28)


@dataclass(frozen=True, eq=False)
class Glasses:
    frame: SurfaceGeometry  # rims (none when rimless), bridge and temples
    lenses: SurfaceGeometry
    opacity: float  # Eyewear.lens_opacity


def glasses(eyewear: Eyewear, shaped: np.ndarray, model: FaceModel) -> Glasses | None:
    """The glasses of one sample in model space, fitted to its shaped mesh (identity and expression, no
    head pose), or None when it wears none."""
    if eyewear.frame == "none":
        return None
    if eyewear.frame not in FRAMES:
        raise FacegenError(f"eyewear.frame = {eyewear.frame!r}: unknown; choose none or one of {', '.join(FRAMES)}")
    shape = FRAMES[eyewear.frame]
    v = np.asarray(shaped, np.float64)
    lm = v[model.landmarks68]
    face = v[_face_vertices(model)]
    outlines = [_outline(lm, eye, side, shape, eyewear.size) for eye, side in ((RIGHT_EYE, -1.0), (LEFT_EYE, 1.0))]
    shift = max(_clearance_shift(o, face) for o in outlines)  # one shift: both lenses in one frame
    backs = [o + [0.0, 0.0, shift] for o in outlines]  # the lenses' back surfaces' outlines
    lenses = _lens_mesh(backs, eyewear.lens_color)
    # the frame holds the lenses by their edges' middle
    outlines = [o + _plane_normal(o) * LENS_THICKNESS / 2 for o in backs]
    radius = eyewear.thickness / 2
    pieces = []
    if shape.rim:
        for o in outlines:
            top = np.clip((o[:, 1] - o[:, 1].mean()) / np.ptp(o[:, 1]) * 2, 0, 1)  # 0 below the middle .. 1 at the top
            pieces.append(tube(o, radius * (1 + (shape.brow - 1) * top ** 2), closed=True))
    skin = skin_proxy(v.astype(F), model)
    pieces.append(tube(_bridge(outlines, lm), np.full(9, radius * 0.8), closed=False))
    for o, side in zip(outlines, (-1.0, 1.0)):
        pieces.append(tube(_temple(o, side, v, skin), np.full(12, radius * 0.7), closed=False))
    frame = join(pieces, eyewear.frame_color)
    # where a tube between its path points would dip into the skin (a temple over the curve of the
    # head, the bridge's sides over the nose), it rests on the skin instead
    frame = SurfaceGeometry(skin.push_out(frame.vertices, 0.02), frame.triangles, frame.colours)
    return Glasses(frame=frame, lenses=lenses, opacity=float(eyewear.lens_opacity))


def _face_vertices(model: FaceModel) -> np.ndarray:
    """The face's vertices the lenses must clear: the face region and the eye sockets (lids)."""
    ids = [model.region_names.index(r) for r in ("face", "eye_socket_left", "eye_socket_right")
           if r in model.region_names]
    return np.unique(model.triangles[np.isin(model.triangle_region, ids)])


def _outline(lm: np.ndarray, eye: tuple[int, ...], side: float, shape: Frame, size: float) -> np.ndarray:
    """(OUTLINE_POINTS, 3) one lens's outline, in front of the eye (not yet cleared of the face)."""
    pts = lm[list(eye)]
    outer, inner = pts[0], pts[3]
    width = float(np.linalg.norm(outer[:2] - inner[:2])) * size
    height = width * shape.aspect
    centre = pts.mean(0) + [side * 0.08 * width, 0.08 * height, 0.0]
    t = np.linspace(0, 2 * np.pi, OUTLINE_POINTS, endpoint=False)
    c, s = np.cos(t), np.sin(t)
    e = 2.0 / shape.exponent
    x = np.sign(c) * np.abs(c) ** e * width / 2  # outward (towards the ear) for +x on the left lens
    y = np.sign(s) * np.abs(s) ** e * height / 2
    outward = c  # +1 at the outer end
    y += shape.lift * height * np.clip(outward, 0, 1) ** 2 * np.clip(s, 0, 1)
    y -= shape.drop * height * np.clip(-outward + 0.3, 0, 1) * np.clip(-s, 0, 1)
    x *= side
    # tilt about the lens's horizontal axis (lower edge towards the face), wrap about its vertical one
    tilt, wrap = np.radians(TILT), np.radians(WRAP)
    z = -y * np.sin(tilt) - np.abs(x) * np.sin(wrap) * (side * x > 0)
    return np.stack([centre[0] + x, centre[1] + y * np.cos(tilt), centre[2] + z], 1)


def _clearance_shift(outline: np.ndarray, face: np.ndarray) -> float:
    """How far (cm, along +z) the lens must move so every face vertex behind it is CLEARANCE behind."""
    from matplotlib.path import Path

    centre = outline[:, :2].mean(0)
    grown = centre + (outline[:, :2] - centre) * 1.15  # a little beyond the edge: the rim's width
    inside = Path(grown).contains_points(face[:, :2])
    if not inside.any():
        return 0.0
    behind = face[inside]
    # the lens's z at those points: the outline's plane (least squares through the outline)
    a = np.c_[outline[:, :2], np.ones(len(outline))]
    coef = np.linalg.lstsq(a, outline[:, 2], rcond=None)[0]
    plane = np.c_[behind[:, :2], np.ones(len(behind))] @ coef
    return float(max(0.0, (behind[:, 2] + CLEARANCE - plane).max()))


def _lens_mesh(backs: list[np.ndarray], colour) -> SurfaceGeometry:
    """Both lenses as closed thin solids: per lens a back surface (a triangle fan around its centre,
    bulged forward a little, as lenses are) on the outline `back`, the front surface the same fan
    LENS_THICKNESS further along the outline plane's normal, and the edge band joining their rims;
    wound counter-clockwise seen from outside. Vertex rows per lens (`lens_layout`): front centre,
    front rim, back centre, back rim, then the edge band's own copies of both rims (the surfaces
    share no vertex, so smooth shading keeps the faces' normals apart from the edge's)."""
    vertices, triangles = [], []
    n = OUTLINE_POINTS
    k = np.arange(n)
    for back in backs:
        base = sum(len(v) for v in vertices)
        centre = back.mean(0) + [0.0, 0.0, 0.12]
        offset = _plane_normal(back) * LENS_THICKNESS
        front = back + offset
        vertices.append(np.vstack([centre + offset, front, centre, back, front, back]))
        # counter-clockwise seen from the front (+z): outline order is counter-clockwise in x, y on the
        # left lens and clockwise on the right one (x mirrored)
        a, b = (k, (k + 1) % n) if _signed_area(back[:, :2]) > 0 else ((k + 1) % n, k)
        front_fan = np.stack([np.zeros(n, int), 1 + a, 1 + b], 1)
        back_fan = np.stack([np.full(n, n + 1), n + 2 + b, n + 2 + a], 1)  # seen from behind
        f, r = 2 * n + 2 + a, 3 * n + 2 + a  # the edge band: front and back rims, each quad's first corner
        f2, r2 = 2 * n + 2 + b, 3 * n + 2 + b
        band = np.concatenate([np.stack([f, r, r2], 1), np.stack([f, r2, f2], 1)])
        triangles.append(np.vstack([front_fan, back_fan, band]) + base)
    v = np.vstack(vertices).astype(F)
    return SurfaceGeometry(v, np.vstack(triangles).astype(np.int32), np.tile(np.asarray(colour, F), (len(v), 1)))


def lens_layout(lenses: SurfaceGeometry) -> dict[str, np.ndarray]:
    """Where each part of `Glasses.lenses` (as _lens_mesh lays it out) is: per lens (right, left)
    the rows of its front and back rims ("front_rim", "back_rim": (2, OUTLINE_POINTS) vertex rows)
    and of its front surface's triangles ("front": (2, OUTLINE_POINTS) triangle rows)."""
    n = OUTLINE_POINTS
    per_lens_v, per_lens_t = 4 * n + 2, 4 * n
    assert len(lenses.vertices) == 2 * per_lens_v and len(lenses.triangles) == 2 * per_lens_t
    lens = np.arange(2)[:, None]
    k = np.arange(n)[None]
    return {"front_rim": lens * per_lens_v + 1 + k, "back_rim": lens * per_lens_v + n + 2 + k,
            "front": lens * per_lens_t + k}


def front_surface(lenses: SurfaceGeometry) -> SurfaceGeometry:
    """The lenses' front surfaces alone (the raster backend's lens pass: a blend per pixel)."""
    return SurfaceGeometry(lenses.vertices, lenses.triangles[lens_layout(lenses)["front"].ravel()], lenses.colours)


def _plane_normal(outline: np.ndarray) -> np.ndarray:
    """(3,) unit normal, towards +z, of the least-squares plane through an outline."""
    a = np.c_[outline[:, :2], np.ones(len(outline))]
    gx, gy, _ = np.linalg.lstsq(a, outline[:, 2], rcond=None)[0]  # z = gx x + gy y + c
    normal = np.array([-gx, -gy, 1.0])
    return normal / np.linalg.norm(normal)


def _signed_area(p: np.ndarray) -> float:
    return float(0.5 * np.sum(p[:, 0] * np.roll(p[:, 1], -1) - np.roll(p[:, 0], -1) * p[:, 1]))


def _bridge(outlines: list[np.ndarray], lm: np.ndarray) -> np.ndarray:
    """(9, 3) an arc from the right rim's inner edge over the nose to the left rim's."""
    right, left = outlines
    level = right[:, 1].mean() + 0.15 * np.ptp(right[:, 1])
    a = right[np.argmax(right[:, 0] - 3 * np.abs(right[:, 1] - level))]  # innermost point near that height
    b = left[np.argmin(left[:, 0] + 3 * np.abs(left[:, 1] - level))]
    nose = lm[list(BRIDGE)].mean(0)
    t = np.linspace(0, 1, 9)[:, None]
    mid = (a + b) / 2
    top = np.array([mid[0], max(mid[1], nose[1]) + 0.25, max(mid[2], nose[2] + 0.35)])
    return (1 - t) ** 2 * a + 2 * t * (1 - t) * top + t ** 2 * b


def _temple(outline: np.ndarray, side: float, v: np.ndarray, skin) -> np.ndarray:
    """(12, 3) a temple from the rim's outer end straight back to above the ear, held off the skin,
    then bending down behind the ear."""
    hinge = outline[np.argmax(side * outline[:, 0] + 0.3 * outline[:, 1])]
    ear = _ear_top(v, side)
    k = np.linspace(0, 1, 9)[:, None]
    straight = hinge + k * (ear - hinge)
    behind = ear + np.array([[0.0, -0.6, -0.9], [0.0, -1.4, -1.3], [0.0, -2.3, -1.4]])
    path = np.vstack([straight, behind])
    pushed = skin.push_out(path.astype(F), 0.35).astype(np.float64)
    pushed[0] = hinge  # the hinge stays on the rim
    return pushed


def _ear_top(v: np.ndarray, side: float) -> np.ndarray:
    """Where a temple rests: the top of the ear where it joins the head (the hair module's ear band)."""
    ears = np.flatnonzero(ear_vertices(v) & (np.sign(v[:, 0]) == side))
    if not len(ears):
        raise FacegenError("eyewear: the face model has no ear vertices where generator/hair.py expects them")
    top = v[ears[np.argmax(v[ears, 1])]]
    return top + [-side * 0.3, 0.1, 0.0]  # towards the head a little
