"""Hair grown as strands on one sample's shaped mesh: scalp hair, beards and moustaches, eyebrows.

Everything is in model space (cm, +y up, +z out of the face, +x the subject's left) on `shaped`, the
sample's mesh with identity and expression but no head pose; generator/parts.py `dressing()` poses
the strands like the head. Roots are (triangle, barycentric) points of the model, so they follow the
sample's identity and expression. A strand is grown in K steps, all strands at once: it leaves the
skin along the normal, is combed along its style's flow, falls along `gravity` and is pushed out of
the head after every step (a nearest-vertex signed distance, `_HeadProxy`). Clumping, curl and frizz
are added on top, then the strand is pushed out once more. docs/rendering.md "Hair" explains the
strand widths and counts.

Every random number comes from `np.random.default_rng(seed)` of the Hair / FacialHair record, so a
stored record regrows the same strands bit for bit.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from functools import lru_cache
from typing import TYPE_CHECKING

import numpy as np

from facegen.generator.parts import StrandGeometry

if TYPE_CHECKING:
    from facegen.face_model import FaceModel
    from facegen.generator.scene import Appearance, FacialHair, Hair

F = np.float32  # strands are grown in float32: half the memory traffic, and cm need no more
UP = np.array([0.0, 1.0, 0.0], F)
DOWN = -UP
BACK = np.array([0.0, 0.0, -1.0], F)
SIDE = np.array([1.0, 0.0, 0.0], F)


# -- styles ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Style:
    """How one scalp style grows. Lengths are `Hair.length` (the crown) times the style's factors."""

    points: int  # K, points per strand
    flow: str  # where strands are combed: part | back | crown | out | tie
    lift: float  # 0 = leaves the scalp lying flat .. 1 = along the normal
    fall: float  # how strongly the strand turns to gravity (0 stiff .. 1 hangs)
    volume: float  # cm, how far the outermost layer stands off the scalp
    radius: float  # cm, half-width at the root (tapers to `taper` x at the tip)
    sides: float = 1.0  # length over the ears and at the nape relative to the crown (crew's fade)
    end_y: float | None = None  # strands end at this height (cm over the chin): bob, medium
    ends_in: float = 0.0  # the last part of the strand turns towards the neck (bob)
    fringe: bool = False  # the front strands fall forward over the forehead to below the brows
    parted: bool = False  # combed away from the parting line at `Hair.parting`
    side_part: bool = False  # the parting is at one side (never in the middle)
    tie: str = ""  # "ponytail" | "bun": strands converge to a tie point at the back of the head
    front: float = 0.0  # share of the strands rooted evenly in the band behind the front hairline
    frizz: float = 0.0  # added to Hair.frizz
    taper: float = 0.35


STYLES: dict[str, Style | None] = {
    "bald": None,
    "buzz": Style(points=3, flow="crown", lift=0.1, fall=0.0, volume=0.05, radius=0.03, taper=0.6),
    "crew": Style(points=6, flow="back", lift=0.45, fall=0.1, volume=0.35, radius=0.045, sides=0.45, front=0.1),
    "side_part": Style(points=10, flow="part", lift=0.3, fall=0.35, volume=0.6, radius=0.045, sides=0.6,
                       parted=True, side_part=True, front=0.1),
    "medium": Style(points=12, flow="part", lift=0.25, fall=0.8, volume=0.8, radius=0.035, end_y=1.0,
                    parted=True),
    "bob": Style(points=14, flow="part", lift=0.25, fall=0.9, volume=0.9, radius=0.035, end_y=2.0,
                 ends_in=1.0, parted=True),
    "long_straight": Style(points=16, flow="part", lift=0.2, fall=1.0, volume=0.9, radius=0.035, parted=True),
    "long_wavy": Style(points=20, flow="part", lift=0.25, fall=1.0, volume=1.2, radius=0.035, parted=True),
    "curly": Style(points=20, flow="part", lift=0.5, fall=0.6, volume=1.5, radius=0.04, frizz=0.15),
    "afro": Style(points=16, flow="out", lift=1.0, fall=0.1, volume=2.0, radius=0.045, frizz=0.35),
    "fringe": Style(points=14, flow="crown", lift=0.2, fall=0.9, volume=0.8, radius=0.035, fringe=True, front=0.35),
    "ponytail": Style(points=16, flow="tie", lift=0.05, fall=1.0, volume=0.3, radius=0.04, tie="ponytail",
                      front=0.15),
    "bun": Style(points=18, flow="tie", lift=0.05, fall=0.0, volume=0.3, radius=0.04, tie="bun", front=0.15),
}


@dataclass(frozen=True)
class FacialStyle:
    """Where a beard style grows (`_FacialAreas` names) and how its strands lie."""

    areas: tuple[str, ...]
    points: int
    radius: float  # cm, half-width at the root
    lift: float  # off the skin at the root (0 flat .. 1 along the normal)
    fall: float  # turning to gravity along the strand (long beards hang)


FACIAL_STYLES: dict[str, FacialStyle | None] = {
    "none": None,
    "stubble": FacialStyle(("beard", "moustache"), points=2, radius=0.02, lift=0.5, fall=0.0),
    "moustache": FacialStyle(("moustache",), points=5, radius=0.025, lift=0.25, fall=0.2),
    "goatee": FacialStyle(("moustache", "chin"), points=6, radius=0.025, lift=0.3, fall=0.4),
    "full_beard": FacialStyle(("beard", "moustache"), points=8, radius=0.025, lift=0.3, fall=0.5),
}

BROW_POINTS = 4
BROW_RADIUS = 0.012  # cm: a few real brow hairs per strand, thinner than scalp strands


# -- colour ----------------------------------------------------------------------------------------

# Cycles' Principled Hair BSDF (melanin parametrisation): absorption per unit melanin, and the
# factor that maps absorption to colour at radial roughness 0.3 (its "Direct coloring" inverts this).
EUMELANIN_SIGMA = np.array([0.506, 0.841, 1.653])
PHEOMELANIN_SIGMA = np.array([0.343, 0.733, 1.924])
ROUGHNESS_FACTOR = 5.88841


def melanin_colour(melanin, redness) -> np.ndarray:
    """Linear RGB (..., 3) of hair with this melanin (0 white .. 1 black) and pheomelanin share."""
    melanin, redness = np.asarray(melanin, np.float64)[..., None], np.asarray(redness, np.float64)[..., None]
    q = -np.log(np.maximum(1.0 - melanin, 1e-4))
    sigma = q * (1 - redness) * EUMELANIN_SIGMA + q * redness * PHEOMELANIN_SIGMA
    return np.exp(-np.sqrt(sigma) * ROUGHNESS_FACTOR)


def strand_colours(hair: Hair, n: int, rng: np.random.Generator) -> np.ndarray:
    """(n, 3) float32 linear RGB: the hair's melanin with a little jitter per strand (hair is never
    one flat colour), a `grey` share of the strands white."""
    melanin = np.clip(hair.melanin + rng.normal(0, 0.04, n), 0, 0.999)
    redness = np.clip(hair.melanin_redness + rng.normal(0, 0.03, n), 0, 1)
    grey = rng.random(n) < hair.grey
    melanin[grey] = rng.uniform(0, 0.003, int(grey.sum()))  # white is very little melanin
    return melanin_colour(melanin, redness).astype(np.float32)


# -- the head: scalp, facial areas, collision proxy (once per model) --------------------------------

# Hairline: the lowest height (cm) of a scalp root against the azimuth around the vertical axis
# (0 = straight ahead, 90 = the ear, 180 = the nape): across the upper forehead, receding at the
# temples, sideburns in front of the ear, over the ear, down behind it to the nape.
HAIRLINE_AZIMUTH = np.array([0, 25, 38, 50, 62, 70, 73, 76, 101, 106, 115, 130, 150, 180], np.float64)
HAIRLINE_HEIGHT = np.array([11.3, 11.0, 10.0, 7.5, 6.0, 4.0, 3.0, 6.3, 6.3, 4.0, 0.0, -3.5, -5.0, -5.5])
# The front band: the scalp FRONT_BAND cm deep behind the hairline, within FRONT_AZIMUTH degrees of
# straight ahead around the whorl's vertical axis (WHORL). `Style.front` of the strands are rooted
# there, evenly across it: the hairline is what a frontal view sees of the scalp, and a fringe's
# curtain needs them. Every fringe strand rooted in that sector (up to the crown: the crown's flow
# combs them forward) falls over the forehead, so none is left to fall onto the face.
WHORL = np.array([0.0, 14.0, -3.0], F)  # cm, where the crown's hair grows away from
FRONT_AZIMUTH = 40.0
FRONT_BAND = 4.0
TIE_PATH = 10  # points from the root to the tie point of a ponytail / bun, after the root
FRINGE_RADIUS = 0.045  # cm: a fringe's strands are cut blunt (taper 0.8), so they are wide down to the cut
EAR_AZIMUTH = (72.0, 106.0)  # degrees, from the front of the ear to its back
GRID_STEP = 0.5  # cm, the collision proxy's voxels


@dataclass(frozen=True, eq=False)
class _Roots:
    """Triangles to grow from, with the cumulative share of area for sampling roots by area."""

    triangles: np.ndarray  # (T, 3) vertex ids
    cdf: np.ndarray  # (T,) float64, ends at 1
    area: float  # cm^2 on the neutral mesh

    def sample(self, n: int, rng: np.random.Generator, even: bool = False) -> tuple[np.ndarray, np.ndarray]:
        """n roots by area: their triangles' corners (n, 3) and barycentric coordinates (n, 3).
        `even`: one root in each n-th of the area (stratified), so roots in triangles ordered along a
        line are spread evenly along it, without the gaps of independent draws."""
        u = (np.arange(n) + rng.random(n)) / n if even else rng.random(n)
        tri = self.triangles[np.minimum(np.searchsorted(self.cdf, u), len(self.cdf) - 1)]
        u, v = rng.random(n), rng.random(n)
        flip = u + v > 1
        u, v = np.where(flip, 1 - u, u), np.where(flip, 1 - v, v)
        return tri, np.stack([1 - u - v, u, v], 1).astype(F)


def _roots(vertices: np.ndarray, triangles: np.ndarray) -> _Roots:
    a, b, c = (vertices[triangles[:, i]].astype(np.float64) for i in range(3))
    area = 0.5 * np.linalg.norm(np.cross(b - a, c - a), axis=1)
    return _Roots(triangles, np.cumsum(area) / area.sum(), float(area.sum()))


@dataclass(frozen=True, eq=False)
class _HeadProxy:
    """A signed distance to the skin: each voxel of a grid around the head holds the skin vertex
    nearest its centre; a point's distance is along that vertex's normal on the shaped mesh. The
    grid's border voxels hold `len(vertex_ids)`: beyond them (4 cm off the head, below the neck) a
    point is free."""

    vertex_ids: np.ndarray  # (n,) the skin vertices (face and head_neck regions)
    triangles: np.ndarray  # (F, 3) the skin triangles, as indices into vertex_ids
    origin: np.ndarray  # (3,) the grid's corner
    dims: np.ndarray  # (3,) voxels per axis
    nearest: np.ndarray  # (nx * ny * nz,) int32 index into vertex_ids, or len(vertex_ids)


@dataclass(frozen=True, eq=False)
class _Head:
    scalp: _Roots
    front: _Roots  # the scalp's front band (FRONT_BAND), its triangles ordered from right to left
    facial: dict[str, _Roots]  # beard areas: beard, moustache, chin
    proxy: _HeadProxy
    tie: dict[str, int]  # vertex the ponytail / bun is tied over
    brows: tuple[np.ndarray, np.ndarray]  # per brow (right, left): landmark ids from inner to outer end


@lru_cache(maxsize=4)
def _head(model: FaceModel) -> _Head:
    from scipy.spatial import cKDTree

    v = model.neutral.astype(np.float64)
    skin_regions = [model.region_names.index(r) for r in ("face", "head_neck")]
    skin_tris = model.triangles[np.isin(model.triangle_region, skin_regions)]
    skin_ids = np.unique(skin_tris)

    azimuth = _azimuth(v)
    on_scalp = v[:, 1] > np.interp(azimuth, HAIRLINE_AZIMUTH, HAIRLINE_HEIGHT)
    scalp_tris = skin_tris[on_scalp[skin_tris].all(1)]
    scalp = _roots(v, scalp_tris)
    centroid = v[scalp_tris].mean(1)
    band = _azimuth(centroid - WHORL) < FRONT_AZIMUTH
    band &= centroid[:, 1] < np.interp(_azimuth(centroid), HAIRLINE_AZIMUTH, HAIRLINE_HEIGHT) + FRONT_BAND
    band_tris = scalp_tris[band][np.argsort(centroid[band, 0], kind="stable")]

    lo = v[skin_ids].min(0) - 4.0
    hi = v[skin_ids].max(0) + 4.0
    lo[1] = max(lo[1], v[model.landmarks68[8], 1] - 10.0)  # nothing to collide with below the neck
    dims = np.ceil((hi - lo) / GRID_STEP).astype(np.intp)
    centres = lo + (np.stack(np.meshgrid(*[np.arange(d) for d in dims], indexing="ij"), -1).reshape(-1, 3)
                    + 0.5) * GRID_STEP
    # The ears are left out: the normals of a thin flap point every way, and hair between ear and
    # skull would be pushed into the head. Hair may pass through an ear; never through the skull.
    solid = np.flatnonzero(~ear_vertices(v[skin_ids]))
    near = solid[cKDTree(v[skin_ids[solid]]).query(centres)[1]].astype(np.int32).reshape(dims)
    border = np.ones(dims, bool)
    border[1:-1, 1:-1, 1:-1] = False
    near[border] = len(skin_ids)  # the zero row of _Skin: points beyond the grid are free
    proxy = _HeadProxy(skin_ids, np.searchsorted(skin_ids, skin_tris), lo.astype(F), dims.astype(np.int32),
                       near.reshape(-1))

    back = skin_ids[np.argmin(np.linalg.norm(v[skin_ids] - [0.0, 7.0, -12.0], axis=1))]
    crown = skin_ids[np.argmin(np.linalg.norm(v[skin_ids] - [0.0, 13.0, -9.0], axis=1))]
    lm = model.landmarks68
    return _Head(scalp, _roots(v, band_tris), _facial_areas(model, skin_tris), proxy,
                 {"ponytail": int(back), "bun": int(crown)},
                 (lm[[21, 20, 19, 18, 17]], lm[[22, 23, 24, 25, 26]]))


def _azimuth(v: np.ndarray) -> np.ndarray:
    """Degrees around the vertical axis of points (n, 3): 0 straight ahead .. 180 at the back."""
    return np.degrees(np.abs(np.arctan2(v[:, 0], v[:, 2])))


def ear_vertices(v: np.ndarray) -> np.ndarray:
    """Which of the neutral vertices (n, 3) are on the ears."""
    azimuth = _azimuth(v)
    return (azimuth > EAR_AZIMUTH[0]) & (azimuth < EAR_AZIMUTH[1]) & (np.abs(v[:, 1] - 1.0) < 5.0)


def _facial_areas(model: FaceModel, skin_tris: np.ndarray) -> dict[str, _Roots]:
    """Beard areas on the neutral face, from its iBUG-68 points (frontal x, y and height rules)."""
    from matplotlib.path import Path

    v = model.neutral.astype(np.float64)
    lm = v[model.landmarks68]
    x, y, z = v[:, 0], v[:, 1], v[:, 2]
    ax = np.abs(x)
    front = z > 0.5
    nose_bottom = lm[31:36, 1].min() - 0.25
    mouth_half = np.abs(lm[[48, 54], 0]).max()
    lips = Path(lm[48:60, :2]).contains_points(v[:, :2], radius=-0.3) & (z > lm[48:68, 2].min() - 1.5)
    lips |= Path(lm[48:60, :2]).contains_points(v[:, :2], radius=0.3) & (z > lm[48:68, 2].min() - 1.5)
    # The cheek line: from the mouth corner's side of the nose wing up to the sideburn at the ear.
    cheek = np.interp(ax, [1.5, mouth_half + 0.5, 7.6], [nose_bottom, lm[31, 1] - 0.3, lm[1, 1] + 1.0])
    jaw_y = np.interp(x, lm[0:17, 0], lm[0:17, 1])
    chin_y = lm[8, 1]
    beard = front & (ax < 7.6) & (y < cheek) & (y > chin_y - 4.5) & ~lips
    beard &= (y > jaw_y - 4.5) | (z < 0)  # under the jaw down to the upper neck, not the chest
    upper_lip = np.interp(x, lm[48:55, 0], lm[48:55, 1])
    moustache = front & (ax < mouth_half + 0.4) & (y < nose_bottom) & (y > upper_lip - 0.2) & ~lips
    moustache &= z > lm[48:68, 2].min() - 1.0
    chin = front & (ax < mouth_half + 0.7) & (y < upper_lip) & (y > chin_y - 2.0) & ~lips
    chin &= (z > lm[8, 2] - 5.0)
    areas = {}
    for name, mask in (("beard", beard), ("moustache", moustache), ("chin", chin)):
        areas[name] = _roots(v, skin_tris[mask[skin_tris].all(1)])
    return areas


# -- per-sample geometry helpers --------------------------------------------------------------------

@dataclass(frozen=True, eq=False)
class _Skin:
    """The skin of one sample: the proxy's vertices and normals on `shaped`, plus a last row of
    zeros that the proxy's border voxels point to (a zero normal: nothing to push against)."""

    proxy: _HeadProxy
    vertices: np.ndarray  # (n + 1, 3) float32 skin vertices of the shaped mesh
    normals: np.ndarray  # (n + 1, 3) float32 unit
    columns: np.ndarray  # (6, n + 1) float32: the vertices' x, y, z and the normals' x, y, z as rows

    def at(self, x: np.ndarray, y: np.ndarray, z: np.ndarray) -> tuple[np.ndarray, ...]:
        """Signed distance of points given by their coordinates (each (...)) to the skin (> 0
        outside; 0 away from the head) and the skin normal's x, y, z there. Coordinates one array
        each: the growing loop's arrays stay contiguous, with no small trailing axis."""
        proxy, inv = self.proxy, 1.0 / GRID_STEP
        cell = [np.minimum(np.maximum((c - o) * inv, 0), d - 1).astype(np.int32)  # beyond the grid: its border
                for c, o, d in zip((x, y, z), proxy.origin, proxy.dims)]
        near = proxy.nearest[(cell[0] * proxy.dims[1] + cell[1]) * proxy.dims[2] + cell[2]]
        vx, vy, vz, nx, ny, nz = np.take(self.columns, near, axis=1)
        return (x - vx) * nx + (y - vy) * ny + (z - vz) * nz, nx, ny, nz

    def distance(self, p: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """`at` for points (..., 3): the distance (...) and the normal (..., 3)."""
        d, nx, ny, nz = self.at(p[..., 0], p[..., 1], p[..., 2])
        return d, np.stack([nx, ny, nz], -1)

    def push_out(self, p: np.ndarray, offset) -> np.ndarray:
        """Points moved along the skin normal to at least `offset` cm outside."""
        d, n = self.distance(p)
        return p + np.maximum(offset - d, 0)[..., None] * n


# The last skin built, with the model and a copy of the mesh it was built on: every part of one
# sample (scalp and facial hair, brows, glasses, mask, hand) asks for the same one, and comparing
# the mesh costs a twentieth of building it again.
_last_skin: tuple = (None, None, None)


def skin_proxy(shaped: np.ndarray, model: FaceModel) -> _Skin:
    """The skin of the shaped mesh `shaped` (model space), for distances and normals near the head."""
    global _last_skin
    last_model, last_shaped, skin = _last_skin
    if last_model is model and last_shaped.shape == shaped.shape and np.array_equal(last_shaped, shaped):
        return skin
    skin = _build_skin(shaped, model)
    _last_skin = (model, np.array(shaped), skin)
    return skin


def _build_skin(shaped: np.ndarray, model: FaceModel) -> _Skin:
    proxy = _head(model).proxy
    v = shaped[proxy.vertex_ids].astype(F)
    t = proxy.triangles
    fn = np.cross(v[t[:, 1]] - v[t[:, 0]], v[t[:, 2]] - v[t[:, 0]])  # area weighted
    n = np.stack([sum(np.bincount(t[:, c], fn[:, j], len(v)) for c in range(3)) for j in range(3)], 1)
    zero = np.zeros((1, 3), F)
    v, n = np.concatenate([v, zero]), np.concatenate([_unit(n.astype(F)), zero])
    return _Skin(proxy, v, n, np.ascontiguousarray(np.concatenate([v, n], 1).T))


def _root_frame(shaped: np.ndarray, tri: np.ndarray, bary: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Root positions (n, 3) on `shaped` and the unit normals of their triangles, float32."""
    a, b, c = (shaped[tri[:, i]].astype(F) for i in range(3))
    return bary[:, :1] * a + bary[:, 1:2] * b + bary[:, 2:] * c, _unit(np.cross(b - a, c - a))


def _dot(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return a[..., 0] * b[..., 0] + a[..., 1] * b[..., 1] + a[..., 2] * b[..., 2]  # faster than einsum on 3


def _unit(x: np.ndarray) -> np.ndarray:
    return x / np.sqrt(np.maximum(_dot(x, x), 1e-18))[..., None]


def _tangent(x: np.ndarray, n: np.ndarray) -> np.ndarray:
    """x without its component along the unit normals n."""
    return x - _dot(x, n)[..., None] * n


def _smoothstep(x):
    x = np.clip(x, 0, 1)
    return x * x * (3 - 2 * x)


def _geometry(points: np.ndarray, radius, taper, colours: np.ndarray) -> StrandGeometry:
    """Strands with a radius tapering linearly from `radius` at the root to `taper` x at the tip
    (each a number or one per strand)."""
    s, k = points.shape[:2]
    radius = np.broadcast_to(np.asarray(radius, F), (s,))[:, None]
    taper = np.broadcast_to(np.asarray(taper, F), (s,))[:, None]
    profile = (1 - (1 - taper) * np.linspace(0, 1, k, dtype=F)) * radius
    return StrandGeometry(np.ascontiguousarray(points, F), profile.astype(F), np.ascontiguousarray(colours, F))


# -- growing ---------------------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class _FaceZone:
    """The box in front of the face that scalp hair is kept out of, so that it falls beside the
    cheeks: from below the chin to above the brows, in front of the ears, between the cheeks."""

    half_width: float
    top: float
    bottom: float
    front: float

    def aside(self, x: np.ndarray, y: np.ndarray, z: np.ndarray) -> np.ndarray:
        """The x coordinates of points (each (...)), those inside the box moved to its nearer side."""
        inside = (np.abs(x) < self.half_width) & (y < self.top) & (y > self.bottom) & (z > self.front)
        return np.where(inside, np.copysign(self.half_width, x), x)

    def push_aside(self, p: np.ndarray) -> np.ndarray:
        """`aside` for points (..., 3)."""
        out = p.copy()
        out[..., 0] = self.aside(p[..., 0], p[..., 1], p[..., 2])
        return out


def _face_zone(shaped: np.ndarray, model: FaceModel) -> _FaceZone:
    lm = shaped[model.landmarks68]
    return _FaceZone(half_width=float(np.abs(lm[[1, 15], 0]).max()) + 0.2, top=float(lm[17:27, 1].max()) + 1.0,
                     bottom=float(lm[8, 1]) - 3.0, front=float(lm[[0, 16], 2].mean()))


def _grow(skin: _Skin, root: np.ndarray, normal: np.ndarray, comb: np.ndarray, length: np.ndarray, k: int,
          lift, fall: float, gravity: np.ndarray, offset: np.ndarray, face: _FaceZone | None = None,
          centre: np.ndarray | None = None) -> np.ndarray:
    """Strands (S, k, 3) grown in k - 1 equal steps. A strand leaves the skin at `lift` (S, 1)
    between the normal and the comb direction (S, 3), then bends towards the comb direction, kept
    tangent to the skin under it while it lies on the head, and by `fall` towards gravity. After
    each step it is pushed `offset` (S,) cm out of the skin, so it wraps around the head, and out of
    `face`. With a `centre` the comb direction is away from it everywhere (an afro's round volume)."""
    # One contiguous (S,) array per coordinate: a step is ~60 small vector operations, no (S, 3) ones.
    out = np.empty((3, k, len(root)), F)
    out[:, 0] = root.T
    x, y, z = (np.array(c) for c in root.T)
    nx, ny, nz = (np.array(c) for c in normal.T)
    cx, cy, cz = (np.array(c) for c in comb.T)
    dx, dy, dz = (np.array(c) for c in _unit(lift * normal + (1 - lift) * _unit(_tangent(comb, normal))).T)
    gx, gy, gz = (float(c) for c in gravity)
    step = (length / (k - 1)).astype(F)
    free = np.zeros(len(root), F)  # how far the strand has left the head
    for i in range(1, k):
        t = i / (k - 1)
        if centre is None:
            cn = cx * nx + cy * ny + cz * nz
            wx, wy, wz = cx - cn * nx, cy - cn * ny, cz - cn * nz
            w = (1 - fall * t) * np.exp(-free) / np.sqrt(np.maximum(wx * wx + wy * wy + wz * wz, 1e-18))
        else:
            wx, wy, wz = x - centre[0], y - centre[1] + 0.5, z - centre[2]
            w = 1 / np.sqrt(np.maximum(wx * wx + wy * wy + wz * wz, 1e-18))
        g = fall * (0.5 + 1.5 * t)
        wx, wy, wz = w * wx + g * gx, w * wy + g * gy, w * wz + g * gz
        w = 1 / np.sqrt(np.maximum(wx * wx + wy * wy + wz * wz, 1e-18))
        dx, dy, dz = dx + w * wx, dy + w * wy, dz + w * wz
        w = step / np.sqrt(np.maximum(dx * dx + dy * dy + dz * dz, 1e-18))
        px, py, pz = x, y, z
        x, y, z = x + w * dx, y + w * dy, z + w * dz
        if face is not None:
            x = face.aside(x, y, z)
        off = offset * (0.4 + 0.6 * t)  # outer layers stand further off towards the tips: volume
        dist, nx, ny, nz = skin.at(x, y, z)
        push = np.maximum(off - dist, 0)
        x, y, z = x + push * nx, y + push * ny, z + push * nz
        free = np.maximum(dist - off, 0)
        dx, dy, dz = x - px, y - py, z - pz
        w = 1 / np.sqrt(np.maximum(dx * dx + dy * dy + dz * dz, 1e-18))
        dx, dy, dz = w * dx, w * dy, w * dz
        out[0, i], out[1, i], out[2, i] = x, y, z
    return np.ascontiguousarray(out.transpose(2, 1, 0))


def _clump(points: np.ndarray, roots: np.ndarray, amount: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Tips pulled towards the nearest of a few guide strands (by root), by `amount` (S,): hair
    grows in locks."""
    if not amount.any() or len(points) < 30:
        return points
    from scipy.spatial import cKDTree

    guides = rng.choice(len(points), len(points) // 30, replace=False)
    nearest = guides[cKDTree(roots[guides]).query(roots)[1]]
    t = (np.linspace(0, 1, points.shape[1], dtype=F) ** 1.5)[None, :, None]
    return points + (amount[:, None, None] * t) * (points[nearest] - points)


def _curl(points: np.ndarray, curl: float, normal: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A helix around each strand: waves (curl ~0.4: ~1 cm wide, ~4-5 cm period) to coils (1:
    ~0.3 cm wide, ~1 cm period); the period is at least 4 steps so the helix stays one."""
    if curl <= 0:
        return points
    s, k = points.shape[:2]
    seg = np.sqrt(_dot(np.diff(points, axis=1), np.diff(points, axis=1)))
    arc = np.concatenate([np.zeros((s, 1), F), np.cumsum(seg, axis=1)], 1)
    period = np.maximum(1 + 7 * (1 - curl) ** 1.5, 4 * seg.mean(1, keepdims=True))
    radius = (0.3 + 0.8 * np.sin(np.pi * curl)) * np.minimum(period / 4, 1)
    direction = _unit(np.gradient(points, axis=1))
    side = _unit(np.cross(direction, normal[:, None]))
    other = np.cross(direction, side)
    phase = (2 * np.pi) * (arc / period) + rng.uniform(0, 2 * np.pi, (s, 1)).astype(F)
    amplitude = radius * _smoothstep(arc / 2)  # straighter near the root
    return points + (amplitude * np.cos(phase))[..., None] * side + (amplitude * np.sin(phase))[..., None] * other


def _frizz(points: np.ndarray, amount, rng: np.random.Generator) -> np.ndarray:
    """Random bends growing towards the tip: a random walk scaled by the strand's step and `amount`
    (a number or one per strand)."""
    amount = np.asarray(amount, F)
    if not amount.any():
        return points
    s, k = points.shape[:2]
    span = points[:, -1] - points[:, 0]
    step = np.minimum(np.sqrt(_dot(span, span)) / (k - 1), 1)[:, None, None]
    walk = np.cumsum(rng.standard_normal((s, k, 3), dtype=F), axis=1)
    t = np.linspace(0, 1, k, dtype=F)[None, :, None]
    return points + (0.35 * amount.reshape(-1, 1, 1)) * step * t * walk


# -- scalp hair ------------------------------------------------------------------------------------


def scalp_strands(hair: Hair, shaped: np.ndarray, model: FaceModel, gravity: np.ndarray) -> StrandGeometry | None:
    """The scalp hair of one sample in model space, or None (bald, no strands)."""
    style = STYLES[hair.style]
    if style is None or hair.strands <= 0:
        return None
    head = _head(model)
    rng = np.random.default_rng(hair.seed)
    skin = skin_proxy(shaped, model)
    gravity = _unit(np.asarray(gravity, F))
    s, k = hair.strands, style.points

    front = int(style.front * s)
    tri, bary = (np.concatenate(x) for x in zip(head.front.sample(front, rng, even=True),
                                                head.scalp.sample(s - front, rng)))
    rest = np.einsum("sk,skd->sd", bary, model.neutral[tri])  # on the neutral head: where a root is
    root, normal = _root_frame(shaped, tri, bary)
    offset = 0.03 + style.volume * rng.random(s, F)  # its layer: 0 on the scalp .. the outermost
    length = hair.length * rng.uniform(0.9, 1.1, s).astype(F)
    # Over the ears and at the nape the hair is shorter in a fade (crew: `sides`).
    length *= style.sides + (1 - style.sides) * _smoothstep((rest[:, 1] - 5) / 6)
    if style.end_y is not None:  # cut to end at one height: about what it takes to get there
        chin = model.neutral[model.landmarks68[8], 1]
        length = np.minimum(length, np.maximum(1.5, (rest[:, 1] - chin - style.end_y) * 1.25))
    fringe = np.zeros(s, bool)
    if style.fringe:
        fringe = _azimuth(rest - WHORL) < FRONT_AZIMUTH
        fringe[:front] = True
        # Bangs stand off the brow ridge, 0.4-1 cm (_grow's offset ramps up to this towards the tip).
        offset[fringe] = rng.uniform(0.55, 1.3, int(fringe.sum()))
    rest_of = ~fringe

    face = _face_zone(shaped, model)
    if style.tie:
        points = _tied(style, hair, skin, shaped, head, root, normal, length, offset, gravity, rng)
    else:
        comb = _comb(style, hair, rest, normal)
        centre = None
        if style.flow == "out":  # between the ears, a little up and back
            centre = shaped[model.landmarks68[[0, 16]]].mean(0) + np.array([0, 1, -3], F)
        points = np.empty((s, k, 3), F)
        points[rest_of] = _grow(skin, root[rest_of], normal[rest_of], comb[rest_of], length[rest_of], k,
                                style.lift, style.fall, gravity, offset[rest_of], face, centre)
        if style.fringe:
            points[fringe] = _fringe(shaped, model, skin, root[fringe], normal[fringe], offset[fringe], k,
                                     gravity, rng)
        if style.ends_in:
            points = _ends_in(points, shaped, model, skin, offset)
    # Bangs are cut and combed even: no locks and little frizz, so they cover the brows without gaps.
    points = _clump(points, rest, np.where(fringe, 0, hair.clumping).astype(F), rng)
    points = _curl(points, min(hair.curl, 1.0), normal, rng)
    points = _frizz(points, min(hair.frizz + style.frizz, 1.0) * np.where(fringe, 0.25, 1).astype(F), rng)
    points[rest_of, 1:] = face.push_aside(points[rest_of, 1:])
    settle = np.where(fringe, 0.7, 0.5).astype(F) * offset  # how far off the skin the strand stays
    points[:, 1:] = skin.push_out(points[:, 1:], 0.03 + settle[:, None] * np.linspace(0.3, 1, k - 1, dtype=F))
    # A fringe is cut blunt and thick: wider strands that hardly taper.
    radius = np.where(fringe, FRINGE_RADIUS, style.radius).astype(F)
    taper = np.where(fringe, 0.8, style.taper).astype(F)
    return _geometry(points, radius, taper, strand_colours(hair, s, rng))


def _fringe(shaped: np.ndarray, model: FaceModel, skin: _Skin, root: np.ndarray, normal: np.ndarray,
            offset: np.ndarray, k: int, gravity: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Bangs: strands combed forward from the front of the scalp, falling over the forehead and cut
    straight across between the brows and the upper eyelids (1-1.6 cm under the brow line), whatever
    the length of the rest of the hair."""
    lm = shaped[model.landmarks68]
    end = np.interp(root[:, 0], lm[17:27, 0], lm[17:27, 1]) - rng.uniform(1.0, 1.6, len(root)).astype(F)
    # Grown long enough to get there over the top of the head, then cut.
    length = 1.2 * (root[:, 1] - end + np.maximum(lm[17:27, 2].max() - root[:, 2], 0)) + 1
    comb = _unit(np.array([0, -0.4, 1], F) + 0.02 * root[:, 0:1] * SIDE)  # fanning out a little
    return _cut_below(_grow(skin, root, normal, comb, length, k, 0.15, 0.9, gravity, offset), end)


def _arc(points: np.ndarray) -> np.ndarray:
    """Arc length (S, K) from the root to each point of strands (S, K, 3)."""
    seg = np.sqrt(_dot(np.diff(points, axis=1), np.diff(points, axis=1)))
    return np.concatenate([np.zeros((len(points), 1), F), np.cumsum(seg, axis=1)], 1)


def _cut_below(points: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Strands (S, K, 3) cut where they first go below the heights y (S,) and resampled to K points
    evenly along what is left (uncut where they never do)."""
    s, k = points.shape[:2]
    arc = _arc(points)
    below = points[..., 1] < y[:, None]
    rows = np.arange(s)
    j = np.maximum(np.where(below.any(1), np.argmax(below, 1), k - 1), 1)  # the first point below
    a, b = points[rows, j - 1, 1], points[rows, j, 1]
    frac = np.where(below[rows, j], np.clip((a - y) / np.maximum(a - b, 1e-6), 0, 1), 1)
    return _resample(points, arc, arc[rows, j - 1] + frac * (arc[rows, j] - arc[rows, j - 1]), k)


def _resample(points: np.ndarray, arc: np.ndarray, cut: np.ndarray, k: int) -> np.ndarray:
    """k points evenly along each strand (S, K, 3) from its root to arc length `cut` (S,)."""
    s, k0 = points.shape[:2]
    target = cut[:, None] * np.linspace(0, 1, k, dtype=F)
    # One search for all strands: each strand's arc lengths shifted (in float64) past the last one's.
    shift = np.arange(s)[:, None] * (float(arc[:, -1].max()) + 1.0)
    found = np.searchsorted((arc + shift).ravel(), (target + shift).ravel(), side="right").reshape(s, k)
    start = np.arange(s)[:, None] * k0
    i = start + np.clip(found - 1 - start, 0, k0 - 2)  # the segment each new point is on, flat
    arc, points = arc.ravel(), points.reshape(-1, 3)
    w = ((target - arc[i]) / np.maximum(arc[i + 1] - arc[i], 1e-6))[..., None]
    return (points[i] + w * (points[i + 1] - points[i])).astype(F)


def _comb(style: Style, hair: Hair, rest: np.ndarray, normal: np.ndarray) -> np.ndarray:
    """Each strand's comb direction (S, 3), from where its root is on the neutral head."""
    x, z = rest[:, 0], rest[:, 2]
    if style.flow == "part":
        part = hair.parting * 3.5 if style.parted else 0.0  # cm: +-3.5 is over an eye
        if style.side_part:  # a side parting is never near the middle
            part = np.copysign(2.5 + 1.5 * abs(hair.parting), hair.parting or 1.0)
        side = np.where(x >= part, 1, -1).astype(F)[:, None]
        comb = side * SIDE + 0.6 * BACK + 0.1 * DOWN  # at the hairline: aside and up over the head
        behind = _smoothstep((2 - z) / 6)[:, None]  # behind the crown the hair falls down the back
        return _unit((1 - behind) * comb + behind * (DOWN + 0.3 * BACK))
    if style.flow == "back":  # combed up at the hairline, back over the top, down at the sides
        return _unit(BACK + 0.3 * UP * _smoothstep((z - 4) / 4)[:, None] + 0.4 * DOWN)
    if style.flow == "crown":  # away from the whorl at the back of the crown
        return _unit(_tangent(rest - WHORL, normal) + 0.3 * DOWN)
    if style.flow == "out":  # afro: out of the scalp (then away from the head's centre: _grow)
        return normal
    raise ValueError(f"hair style flow {style.flow!r}")


def _ends_in(points: np.ndarray, shaped: np.ndarray, model: FaceModel, skin: _Skin, offset: np.ndarray) -> np.ndarray:
    """A bob's ends: the last third of the strand curves in towards the neck's vertical axis."""
    k = points.shape[1]
    axis_z = float(shaped[model.landmarks68[[0, 16]], 2].mean()) - 2
    t = _smoothstep((np.arange(k, dtype=F) / (k - 1) - 0.7) / 0.3)[None, :, None]
    towards = np.stack([-points[..., 0], np.zeros_like(points[..., 0]), axis_z - points[..., 2]], -1)
    reach = np.minimum(np.sqrt(_dot(towards, towards)), 3)[..., None]
    return skin.push_out(points + 0.25 * t * _unit(towards) * reach, offset[:, None] * 0.5)


def _tied(style: Style, hair: Hair, skin: _Skin, shaped: np.ndarray, head: _Head, root: np.ndarray,
          normal: np.ndarray, length: np.ndarray, offset: np.ndarray, gravity: np.ndarray,
          rng: np.random.Generator) -> np.ndarray:
    """Ponytail and bun: strands combed flat over the scalp to a tie point at the back of the head
    (TIE_PATH points: short enough segments to stay outside the curved scalp, so the whole scalp is
    covered from the hairline back); from there a tail hangs along gravity (ponytail) or winds round
    a ball (bun)."""
    s, k = len(root), style.points
    anchor = head.tie[style.tie]
    tie_normal = skin.normals[np.searchsorted(skin.proxy.vertex_ids, anchor)]
    tie = shaped[anchor] + 0.6 * tie_normal
    k1 = TIE_PATH
    to_tie = np.sqrt(_dot(tie - root, tie - root))
    # Grown towards the tie along the scalp (further than the chord), cut where it comes closest.
    near = _grow(skin, root, normal, tie - root, to_tie * 1.5, k1 + 1, 0.05, 0.0, gravity, 0.1 + offset * 0.3)
    gap = near - tie
    closest = np.argmin(_dot(gap, gap), axis=1)
    arc = _arc(near)
    near = _resample(near, arc, np.maximum(arc[np.arange(s), closest], 1e-3), k1 + 1)
    # Pull each path onto the tie point, the more the closer to it (within a 0.3 cm knot).
    w = _smoothstep(np.arange(k1 + 1, dtype=F) / k1)[None, :, None]
    knot = 0.15 * rng.standard_normal((s, 1, 3), dtype=F)
    near = near + w * (tie + knot - near[:, -1:])
    near[:, 1:] = skin.push_out(near[:, 1:], 0.1 + offset[:, None] * 0.3)
    rest_len = np.maximum(length - arc[np.arange(s), closest], 2)
    m = k - k1 - 1  # points after the tie
    if style.tie == "ponytail":
        tail = np.empty((s, m, 3), F)
        d = _unit(0.8 * tie_normal + 0.2 * gravity + 0.2 * rng.standard_normal((s, 3), dtype=F))
        step = (rest_len / m)[:, None]
        p = near[:, -1]
        for i in range(m):
            d = _unit(0.6 * d + 0.4 * gravity)
            p = skin.push_out(p + step * d, 0.3 + offset)
            tail[:, i] = p
        return np.concatenate([near, tail], 1)
    # Bun: each strand winds up to 1.25 times round a ball resting on the tie point (~6 points a turn).
    radius = float(np.clip(hair.length * 0.09, 2.2, 3.5))
    centre = tie + tie_normal * radius * 0.8
    u = _unit(near[:, -1] - centre)
    v = _unit(_tangent(rng.standard_normal((s, 3), dtype=F), u))
    turns = np.minimum(rest_len / (2 * np.pi * radius), 1.25)
    phi = (2 * np.pi) * turns[:, None] * np.linspace(0, 1, m + 1, dtype=F)[None, 1:]
    r = radius * rng.uniform(0.75, 1.0, (s, 1)).astype(F)
    ball = centre + (r * np.cos(phi))[..., None] * u[:, None] + (r * np.sin(phi))[..., None] * v[:, None]
    return np.concatenate([near, ball], 1)


# -- facial hair and brows -------------------------------------------------------------------------


def facial_strands(facial: FacialHair, hair: Hair, shaped: np.ndarray, model: FaceModel,
                   gravity: np.ndarray) -> StrandGeometry | None:
    """Beard / moustache strands, or None (style none, no strands). Coloured like the scalp hair."""
    style = FACIAL_STYLES[facial.style]
    if style is None or facial.strands <= 0:
        return None
    head = _head(model)
    rng = np.random.default_rng(facial.seed)
    skin = skin_proxy(shaped, model)
    gravity = _unit(np.asarray(gravity, F))
    s = facial.strands
    areas = [head.facial[a] for a in style.areas]  # the strands split over them by area
    which = rng.choice(len(areas), s, p=np.array([a.area for a in areas]) / sum(a.area for a in areas))
    tri, bary = np.empty((s, 3), np.int64), np.empty((s, 3), F)
    for i, area in enumerate(areas):
        sel = which == i
        tri[sel], bary[sel] = area.sample(int(sel.sum()), rng)
    rest = np.einsum("sk,skd->sd", bary, model.neutral[tri])
    root, normal = _root_frame(shaped, tri, bary)
    # Down along the skin; above the mouth also away from the middle (a moustache parts under the
    # nose); under the chin, where "down the skin" is ill defined, along gravity.
    comb = DOWN + 0.35 * np.sign(rest[:, 0:1]) * SIDE * (rest[:, 1:2] > -3)
    comb = np.where(np.abs(normal[:, 1:2]) > 0.8, gravity + 0.5 * normal, comb).astype(F)
    length = facial.length * rng.uniform(0.8, 1.1, s).astype(F)
    offset = 0.02 + 0.1 * min(facial.length, 3.0) * rng.random(s, F)
    points = _grow(skin, root, normal, comb, length, style.points, style.lift, style.fall, gravity, offset)
    points = _frizz(points, min(hair.frizz + 0.2, 1.0) * min(facial.length / 3, 1.0), rng)
    points[:, 1:] = skin.push_out(points[:, 1:], 0.02)
    return _geometry(points, style.radius, 0.4, strand_colours(_beard_colour(hair, rng), s, rng))


def _beard_colour(hair: Hair, rng: np.random.Generator) -> Hair:
    """The scalp hair's colour, shifted a little (beards are often a little redder)."""
    return replace(hair, melanin=float(np.clip(hair.melanin + rng.normal(0, 0.05), 0, 0.999)),
                   melanin_redness=float(np.clip(hair.melanin_redness + abs(rng.normal(0, 0.08)), 0, 1)),
                   grey=min(1.0, hair.grey * 1.2))


def brow_strands(appearance: Appearance, facial: FacialHair, shaped: np.ndarray,
                 model: FaceModel) -> StrandGeometry | None:
    """Eyebrow hairs over the painted brows: `facial.brow_strands` x `appearance.brow_density` per
    brow, rooted in a band along iBUG 17-21 / 22-26 (as wide as `brow_thickness` says), lying on the
    skin and pointing from the inner end outwards, the inner ones upwards."""
    per_brow = int(round(facial.brow_strands * float(np.clip(appearance.brow_density, 0, 1))))
    if per_brow <= 0:
        return None
    head = _head(model)
    rng = np.random.default_rng([facial.seed, 1])  # a stream of its own: beards do not move brows
    skin = skin_proxy(shaped, model)
    step_count = BROW_POINTS - 1
    points = []
    for ids in head.brows:
        line = shaped[ids] + np.array([0, 0.15, 0], F)  # the painted brow's centre line (raster.skin_maps)
        u = rng.beta(1.3, 1.0, per_brow).astype(F)  # 0 inner .. 1 outer end, denser at the inner end
        pos = u * (len(line) - 1)
        j = np.minimum(pos.astype(int), len(line) - 2)
        along = _unit(line[j + 1] - line[j])
        centre = line[j] + (pos - j)[:, None] * (line[j + 1] - line[j])
        _, n = skin.distance(centre)
        up = _unit(_tangent(UP, n))
        v = rng.uniform(-1, 1, per_brow).astype(F)  # across the band: -1 lower .. 1 upper edge
        half = appearance.brow_thickness * (0.38 - 0.2 * u)  # cm; the tail is thinner
        root = _onto_skin(skin, centre + (v * half)[:, None] * up)
        # Inner hairs point up, outer ones outwards; the lower edge's more upward than the upper's.
        angle = np.radians(70 - 55 * u - 15 * v + rng.normal(0, 8, per_brow)).astype(F)
        direction = np.cos(angle)[:, None] * along + np.sin(angle)[:, None] * up
        step = (facial.brow_length * rng.uniform(0.7, 1.1, per_brow) / step_count).astype(F)[:, None]
        grown = np.empty((per_brow, BROW_POINTS, 3), F)
        grown[:, 0] = root
        for i in range(1, BROW_POINTS):
            _, n = skin.distance(grown[:, i - 1])
            d = _unit(_tangent(direction, n) + (0.3 if i == 1 else 0.0) * n)  # rise off the skin, then lie on it
            grown[:, i] = skin.push_out(grown[:, i - 1] + step * d, 0.02)
        points.append(grown)
    points = np.concatenate(points)
    jitter = np.exp(rng.normal(0, 0.08, (len(points), 1)))
    colours = np.clip(np.asarray(appearance.brow_color) * jitter, 0, 1)
    return _geometry(points, BROW_RADIUS, 0.5, colours)


def _onto_skin(skin: _Skin, p: np.ndarray) -> np.ndarray:
    """Points moved along the skin normal onto the skin."""
    d, n = skin.distance(p)
    return p - d[:, None] * n
