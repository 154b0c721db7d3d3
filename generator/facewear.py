"""Face masks shaped over the lower face of each sample, in model space (cm, +y up, +z out of the face),
like the other things a sample wears (generator/parts.py `dressing`).

A mask is a sheet over a cylinder's patch about the head's vertical axis: columns by azimuth (the
sides reach just past the jaw's ends), rows by height (from under the chin up the nose to
`Facewear.top`). Its radius at each node is the face's own radius there (the sample's shaped mesh:
the identity, the expression, the jaw) plus the fit, then draped: a smoothing that never goes below
the face, so the sheet spans the hollows under the nose, around the mouth and under the chin the
way cloth does, instead of following them. Kinds add their shape: surgical masks their pleats, a
respirator its moulded cone. Ear loops (head straps for a respirator) run to the ears, held off
the skin. The sheet has a front and a back face (both backends cull back faces), 1 mm apart.

The beard under a mask is tucked under it (`tuck`), so no strand pokes through the fabric.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
from scipy.ndimage import gaussian_filter

from facegen.errors import FacegenError
from facegen.generator.hair import ear_vertices, skin_proxy
from facegen.generator.meshes import grid_triangles, join, outer_radius, pattern_mix, skin_vertices, tube

if TYPE_CHECKING:
    from facegen.face_model import FaceModel
    from facegen.generator.parts import StrandGeometry, SurfaceGeometry
    from facegen.generator.scene import Facewear

F = np.float32


@dataclass(frozen=True)
class Kind:
    stiffness: float  # how far the drape bridges hollows (the smoothing's reach, in grid cells)
    ease: float  # cm added to Facewear.fit: a cloth mask stands further off than a surgical one
    pleats: int = 0  # surgical: horizontal folds
    cone: float = 0.0  # respirator: cm its moulded front stands out over the mouth
    straps: str = "ears"  # ears: loops over the ears | head: bands around the back of the head


KINDS: dict[str, Kind] = {
    "surgical": Kind(stiffness=2.5, ease=0.0, pleats=3),
    "cloth": Kind(stiffness=2.0, ease=0.15),
    "respirator": Kind(stiffness=3.5, ease=0.1, cone=1.3, straps="head"),
}
SIDE = 66.0  # degrees of azimuth from the front to the mask's side edges (the jaw's ends are at ~63)
COLUMNS, ROWS = 49, 40
THICKNESS = 0.1  # cm between the front and the back face
BIN_DEGREES, BIN_CM = 2.0, 0.35  # the face's radius is sampled in bins of this size


@dataclass(frozen=True, eq=False)
class Mask:
    """A mask as a radius over (height, azimuth), what `tuck` needs, and its mesh."""

    heights: np.ndarray  # (ROWS, COLUMNS) y of each node, rows from the top edge down
    azimuths: np.ndarray  # (COLUMNS,) degrees
    radius: np.ndarray  # (ROWS, COLUMNS) cm from the head's vertical axis
    surface: SurfaceGeometry


def mask(facewear: Facewear, shaped: np.ndarray, model: FaceModel) -> Mask | None:
    """The mask of one sample in model space, fitted to its shaped mesh (identity and expression, no
    head pose), or None when it wears none."""
    if facewear.kind == "none":
        return None
    if facewear.kind not in KINDS:
        raise FacegenError(f"facewear.kind = {facewear.kind!r}: unknown; choose none or one of {', '.join(KINDS)}")
    kind = KINDS[facewear.kind]
    v = np.asarray(shaped, np.float64)
    lm = v[model.landmarks68]
    azimuths = np.linspace(-SIDE, SIDE, COLUMNS)
    side = np.abs(azimuths) / SIDE
    # Upper edge: up the nose by `top` in the middle, falling to the cheekbones at the sides; lower
    # edge: under the chin in the middle, under the jaw's corners at the sides (both follow the jaw).
    nose_tip, bridge = lm[30, 1], lm[27, 1]
    top = nose_tip + float(np.clip(facewear.top, 0, 1)) * (bridge - nose_tip)
    cheek = (lm[1, 1] + lm[15, 1]) / 2 - 0.6
    upper = top + (cheek - top) * side ** 1.6
    chin = lm[8, 1] - 1.3
    jaw = (lm[3, 1] + lm[13, 1]) / 2 - 1.0
    lower = chin + (jaw - chin) * side ** 2
    t = np.linspace(0, 1, ROWS)[:, None]
    heights = upper[None] + t * (lower - upper)[None]  # (ROWS, COLUMNS), rows from the top down

    face = _face_radius(v, model, azimuths, heights)
    radius = face + facewear.fit + kind.ease
    for _ in range(30):  # drape: smooth, never below the face
        radius = np.maximum(face + facewear.fit + kind.ease, gaussian_filter(radius, kind.stiffness, mode="nearest"))
    mouth = lm[[51, 57], 1].mean()
    if kind.cone:
        across = np.radians(azimuths) * 10.0  # cm around the face, roughly
        radius += kind.cone * np.exp(-(across[None] / 5.0) ** 2 - ((heights - mouth) / 3.5) ** 2)
    if kind.pleats:  # folds across, fading out at the sides where the mask is gathered
        phase = t * kind.pleats * 2 * np.pi
        radius += 0.06 * np.sin(phase) * (1 - side[None] ** 4)
    radius = np.maximum(radius, face + THICKNESS + 0.05)  # the back face clears the skin even at fit 0
    points = _cylinder(azimuths[None], heights, radius)
    inner = _cylinder(azimuths[None], heights, radius - THICKNESS)
    rng = np.random.default_rng(facewear.seed)
    across = np.radians(azimuths)[None] * radius
    mix = pattern_mix(facewear.pattern, across.ravel(), heights.ravel(), facewear.pattern_scale, rng)
    c1, c2 = np.asarray(facewear.color, F), np.asarray(facewear.color2, F)
    colours = c1 + mix[:, None] * (c2 - c1)
    if kind.pleats:  # the folds' undersides are shaded darker
        colours = colours * np.repeat(0.93 + 0.07 * np.cos(phase), COLUMNS, 1).ravel()[:, None]
    edge = np.minimum(t, 1 - t) * ROWS < 1.0  # (ROWS, 1): the top and bottom rows
    hem = (edge | (side[None] > 0.97)).ravel()
    colours[hem] *= 0.9
    tris = grid_triangles(ROWS, COLUMNS, closed=False)
    pieces = [(points.reshape(-1, 3), tris, colours), (inner.reshape(-1, 3), tris[:, ::-1], colours * 0.8)]
    pieces += _straps(kind, points, v, model, c1 if facewear.kind != "surgical" else np.full(3, 0.8, F))
    return Mask(heights, azimuths, radius, join(pieces))


def _cylinder(azimuth_deg: np.ndarray, y: np.ndarray, radius: np.ndarray) -> np.ndarray:
    a = np.radians(azimuth_deg)
    x, z = radius * np.sin(a), radius * np.cos(a)
    return np.stack(np.broadcast_arrays(x, y, z), -1)


def _face_radius(v: np.ndarray, model: FaceModel, azimuths: np.ndarray, heights: np.ndarray) -> np.ndarray:
    """(ROWS, COLUMNS) the face's outermost radius from the vertical axis near each node."""
    p = v[skin_vertices(model)]
    return outer_radius(np.degrees(np.arctan2(p[:, 0], p[:, 2])), p[:, 1], np.hypot(p[:, 0], p[:, 2]),
                        azimuths[None], heights, BIN_DEGREES, BIN_CM)


def _straps(kind: Kind, points: np.ndarray, v: np.ndarray, model: FaceModel, colour) -> list[tuple]:
    """Ear loops from the mask's corners around the back of each ear, or a respirator's two bands
    around the back of the head; tubes held off the skin."""
    skin = skin_proxy(v.astype(F), model)
    outside = skin_vertices(model)  # the ear test alone would also pick vertices deep in the mouth
    pieces = []
    for col, side in ((0, -1.0), (-1, 1.0)):
        top, bottom = points[2, col], points[-3, col]
        ears = outside[ear_vertices(v[outside]) & (np.sign(v[outside, 0]) == side)]
        if not len(ears):
            raise FacegenError("facewear: the face model has no ear vertices where generator/hair.py expects them")
        ear = v[ears]
        ear_top, ear_low = ear[np.argmax(ear[:, 1])], ear[np.argmin(ear[:, 1])]
        if kind.straps == "ears":
            back = ear[:, 2].min() - 0.3
            path = np.array([top, ear_top + [0, 0.25, 0.6], [ear_top[0], ear_top[1] + 0.2, back],
                             [ear_low[0], (ear_top[1] + ear_low[1]) / 2, back - 0.2], [ear_low[0], ear_low[1] + 0.3, back + 0.3],
                             bottom])
            radius = 0.12
        else:  # two bands around the head, above and below the ears
            pieces += _band(v, model, top, side, ear_top[1] + 1.5)
            pieces += _band(v, model, bottom, side, ear_low[1] - 1.0)
            continue
        path = _smooth_path(path, 24)
        path = skin.push_out(path.astype(F), 0.25).astype(np.float64)
        path[0], path[-1] = top, bottom
        pieces.append((*tube(path, radius, closed=False, ring=6), colour))
    return pieces


def _band(v: np.ndarray, model: FaceModel, start: np.ndarray, side: float, y: float) -> list[tuple]:
    """A strap from `start` round the side of the head at height `y` to the middle of the back, over
    the outermost skin (the ears included) at each azimuth, 5 mm off it."""
    azimuth = np.linspace(np.degrees(np.arctan2(start[0], start[2])), side * 180.0, 24)
    ys = np.linspace(start[1], y, 24)
    p = v[skin_vertices(model)]
    radius = outer_radius(np.degrees(np.arctan2(p[:, 0], p[:, 2])), p[:, 1], np.hypot(p[:, 0], p[:, 2]),
                          azimuth, ys, 3.0, 0.5, u_period=360.0) + 0.7
    path = _cylinder(azimuth, ys, radius)
    path[0] = start
    return [(*tube(path, 0.2, closed=False, ring=6), np.full(3, 0.75, F))]


def _smooth_path(p: np.ndarray, n: int) -> np.ndarray:
    """n points on a Catmull-Rom-like smoothing of a polyline (a quadratic B-spline through its midpoints)."""
    from scipy.interpolate import make_interp_spline

    s = np.r_[0, np.cumsum(np.linalg.norm(np.diff(p, axis=0), axis=1))]
    return make_interp_spline(s, p, k=2)(np.linspace(0, s[-1], n))


def tuck(strands: StrandGeometry, worn: Mask) -> StrandGeometry:
    """Strands (model space) with every point under the mask pulled in under its back face."""
    from dataclasses import replace

    p = np.asarray(strands.points, np.float64)
    az = np.degrees(np.arctan2(p[..., 0], p[..., 2]))
    r = np.hypot(p[..., 0], p[..., 2])
    col = (az - worn.azimuths[0]) / (worn.azimuths[1] - worn.azimuths[0])
    inside_az = (col >= 0) & (col <= len(worn.azimuths) - 1)
    c = np.clip(np.rint(col).astype(int), 0, len(worn.azimuths) - 1)
    top, bottom = worn.heights[0, c], worn.heights[-1, c]
    under = inside_az & (p[..., 1] <= top) & (p[..., 1] >= bottom)
    row = np.clip(np.rint((top - p[..., 1]) / np.maximum(top - bottom, 1e-6) * (ROWS - 1)).astype(int), 0, ROWS - 1)
    limit = worn.radius[row, c] - THICKNESS - 0.05
    scale = np.where(under & (r > limit), limit / np.maximum(r, 1e-6), 1.0)
    out = p.copy()
    out[..., 0] *= scale
    out[..., 2] *= scale
    return replace(strands, points=out.astype(F))
