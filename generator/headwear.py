"""Caps, beanies, headbands and brimmed hats seated on each sample's head, in model space (cm, +y up,
+z out of the face), like the other things a sample wears (generator/parts.py `dressing`).

The crown is a sheet over directions from a point inside the skull (`CENTRE`): columns all the way
round by azimuth, rows from the top of the head (polar angle 0) down to the rim, which runs above the
brows at the front, over (or, for a beanie, across) the ears at the sides and lower at the back,
tipped by `Headwear.tilt` and lowered by `Headwear.depth`. The crown's radius along each direction
is the scalp's own (the sample's shaped mesh) plus room for flattened hair, smoothed so it rests on
the skull like fabric; each kind adds its shape (a beanie's cuff, a hat's tall crown and brim, a
cap's peak). A headband is the crown's lowest band only. Every sheet has a front and a back face.

The scalp hair under it is tucked in (`tuck`): strands pass under the rim and what hangs below
shows, as under a real hat.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

import numpy as np
from scipy.ndimage import gaussian_filter

from facegen.errors import FacegenError
from facegen.generator.hair import ear_vertices
from facegen.generator.meshes import grid_triangles, join, outer_radius, pattern_mix, skin_vertices, tube

if TYPE_CHECKING:
    from facegen.face_model import FaceModel
    from facegen.generator.parts import StrandGeometry, SurfaceGeometry
    from facegen.generator.scene import Headwear

F = np.float32


@dataclass(frozen=True)
class Kind:
    front: float  # cm from the brows' top up to the rim at the front
    side: float  # cm from the ears' top to the rim at the sides (negative: over the ears)
    back: float  # cm the rim sits lower at the back than at the front
    room: float  # cm between the skin and the crown (flattened hair, padding)
    band: float = 0.0  # a headband: only this many cm of the crown above the rim
    crown: float = 0.0  # a brimmed hat: cm its crown stands above the head's top
    cuff: float = 0.0  # a beanie: a folded cuff this high at the rim
    peak: float = 0.0  # a cap: the peak's reach at the front, cm
    brim: float = 0.0  # a brimmed hat: the brim's reach all round, cm


KINDS: dict[str, Kind] = {
    "cap": Kind(front=2.2, side=0.6, back=2.5, room=0.55, peak=7.0),
    "beanie": Kind(front=1.4, side=-2.2, back=3.5, room=0.7, cuff=3.0),
    "headband": Kind(front=2.6, side=0.4, back=1.0, room=0.35, band=3.5),
    "brimmed_hat": Kind(front=2.4, side=0.8, back=1.8, room=0.7, crown=3.0, brim=5.5),
}
CENTRE = np.array([0.0, 3.0, -0.5])  # the crown's directions start here (inside the skull)
COLUMNS, ROWS = 72, 30
THICKNESS = 0.15  # cm between the front and the back face
BIN_DEGREES = 3.0
PEAK = 65.0  # degrees either side of the front that a cap's peak spans


@dataclass(frozen=True, eq=False)
class Hat:
    """The crown as a radius over (polar angle, azimuth) from CENTRE, what `tuck` needs, and the mesh."""

    azimuths: np.ndarray  # (COLUMNS,) degrees, 0 = straight ahead, towards +x
    rim: np.ndarray  # (COLUMNS,) the rim's polar angle, degrees from straight up
    top: np.ndarray  # (COLUMNS,) the polar angle where the sheet starts (0; a headband's upper edge)
    radius: np.ndarray  # (ROWS, COLUMNS) cm from CENTRE, rows from `top` to `rim`
    surface: SurfaceGeometry


def hat(headwear: Headwear, shaped: np.ndarray, model: FaceModel) -> Hat | None:
    """What one sample wears on its head in model space, fitted to its shaped mesh, or None."""
    if headwear.kind == "none":
        return None
    if headwear.kind not in KINDS:
        raise FacegenError(f"headwear.kind = {headwear.kind!r}: unknown; choose none or one of {', '.join(KINDS)}")
    kind = KINDS[headwear.kind]
    v = np.asarray(shaped, np.float64)
    lm = v[model.landmarks68]
    ears = v[ear_vertices(v)]
    if not len(ears):
        raise FacegenError("headwear: the face model has no ear vertices where generator/hair.py expects them")
    azimuths = np.linspace(-180.0, 180.0, COLUMNS, endpoint=False)
    a = np.radians(azimuths)
    # The rim's height round the head: front above the brows, sides by the ears' top, back lower;
    # `tilt` raises the front and lowers the back (degrees about the ear-to-ear axis).
    front = lm[17:27, 1].max() + kind.front - headwear.depth
    side = ears[:, 1].max() + kind.side - headwear.depth
    back = front - kind.back
    lift = np.tan(np.radians(headwear.tilt)) * 9.0
    front, back = front + lift, back - lift
    cos = np.cos(a)
    height = np.where(cos > 0, side + (front - side) * cos ** 2, side + (back - side) * cos ** 2)
    # Its polar angle, from the scalp's radius along the horizontal (a first guess, then refined).
    p = v[skin_vertices(model)] - CENTRE
    p_az = np.degrees(np.arctan2(p[:, 0], p[:, 2]))
    p_r = np.linalg.norm(p, axis=1)
    p_polar = np.degrees(np.arccos(np.clip(p[:, 1] / np.maximum(p_r, 1e-9), -1, 1)))

    def skin_at(polar: np.ndarray) -> np.ndarray:
        return outer_radius(p_az, p_polar, p_r, azimuths[None], polar, BIN_DEGREES, BIN_DEGREES, u_period=360.0)

    rim = np.full(COLUMNS, 90.0)
    for _ in range(3):
        r = skin_at(rim[None])[0]
        rim = np.degrees(np.arccos(np.clip((height - CENTRE[1]) / r, -1, 1)))
    top = np.zeros(COLUMNS) if not kind.band else \
        np.degrees(np.arccos(np.clip((height + kind.band - CENTRE[1]) / skin_at(rim[None])[0], -1, 1)))
    t = np.linspace(0, 1, ROWS)[:, None]
    polar = top[None] + t * (rim - top)[None]  # (ROWS, COLUMNS)
    skin = skin_at(polar)
    radius = skin + kind.room
    for _ in range(12):  # rests on the skull like fabric: smooth, never below it
        radius = np.maximum(skin + kind.room, gaussian_filter(radius, (1.0, 1.5), mode=("nearest", "wrap")))
    if kind.crown:  # a hat's crown stands above the head, straight-sided
        radius += kind.crown * np.clip(1.0 - polar / 60.0, 0, 1) ** 0.7
    if kind.cuff:  # a folded cuff, thicker, up from the rim
        cuff_rows = (rim - polar) * np.radians(1) * radius < kind.cuff
        radius = radius + 0.3 * cuff_rows
    else:
        cuff_rows = np.zeros_like(radius, bool)
    points = _sphere(azimuths[None], polar, radius)
    inner = _sphere(azimuths[None], polar, radius - THICKNESS)

    rng = np.random.default_rng(headwear.seed)
    c1, c2 = np.asarray(headwear.color, F), np.asarray(headwear.color2, F)
    across = np.radians(azimuths)[None] * radius * np.sin(np.radians(polar))
    up = np.radians(polar) * radius
    mix = pattern_mix(headwear.pattern, across.ravel(), up.ravel(), headwear.pattern_scale, rng)
    colours = c1 + mix[:, None] * (c2 - c1)
    if headwear.kind == "beanie":  # knit ribs
        colours *= (0.9 + 0.1 * np.cos(np.radians(azimuths) * 60)[None].repeat(ROWS, 0)).ravel()[:, None]
    if kind.crown:  # a darker band round the crown's foot
        colours[((polar > rim[None] - 12) & (polar < rim[None] - 4)).ravel()] *= 0.35
    colours[cuff_rows.ravel()] *= 0.92
    closed = grid_triangles(ROWS, COLUMNS, closed=True)
    # Rows run down from the top and columns towards +x at the front: d(row) x d(col) points out.
    pieces = [(points.reshape(-1, 3), closed, colours), (inner.reshape(-1, 3), closed[:, ::-1], colours * 0.6)]
    if kind.peak:
        pieces += _brim(points[-1], azimuths, kind.peak * headwear.brim, front_only=True, colour=c1 * 0.95)
    if kind.brim:
        pieces += _brim(points[-1], azimuths, kind.brim * headwear.brim, front_only=False, colour=c1)
    if headwear.kind == "cap":  # the button on top
        pieces.append((*tube(np.array([points[0, 0] - [0, 0.05, 0], points[0, 0] + [0, 0.35, 0]]), 0.45,
                             closed=False, ring=8), c1 * 0.9))
    return Hat(azimuths, rim, top, radius, join(pieces))


def _sphere(azimuth_deg: np.ndarray, polar_deg: np.ndarray, radius: np.ndarray) -> np.ndarray:
    a, p = np.radians(azimuth_deg), np.radians(polar_deg)
    x, y, z = radius * np.sin(p) * np.sin(a), radius * np.cos(p), radius * np.sin(p) * np.cos(a)
    return np.stack(np.broadcast_arrays(x, y, z), -1) + CENTRE


def _brim(rim: np.ndarray, azimuths: np.ndarray, reach: float, front_only: bool, colour) -> list[tuple]:
    """A brim out from the rim's points (COLUMNS, 3): all round (a hat's, curling up at the sides) or
    a cap's peak at the front (reach tapering to nothing at +-PEAK degrees, arched down)."""
    a = np.radians(azimuths)
    if front_only:
        keep = np.abs(azimuths) <= PEAK
        rim, a = rim[keep], a[keep]
        share = np.clip(1 - (np.degrees(a) / PEAK) ** 2, 0, 1) ** 0.7
    else:
        share = np.ones(len(a))
    out = np.stack([np.sin(a), np.zeros_like(a), np.cos(a)], 1)  # horizontal, away from the axis
    rows = 8
    s = np.linspace(0, 1, rows)[:, None, None]
    reach_col = (reach * share)[None, :, None]
    if front_only:  # a cap's peak arches down at its sides and dips a little forward
        drop = -0.8 * s * np.abs(np.sin(a))[None, :, None] - 0.6 * s ** 2
    else:  # a hat's brim turns up at the sides and slightly down at front and back
        drop = 1.2 * s ** 2 * np.sin(a)[None, :, None] ** 2 - 0.5 * s ** 2 * np.cos(a)[None, :, None] ** 2
    sheet = rim[None] + s * reach_col * out[None] + drop * np.array([0.0, 1.0, 0.0])
    under = sheet - np.array([0.0, THICKNESS, 0.0])
    tris = grid_triangles(rows, len(a), closed=not front_only)
    # Rows run outwards and columns towards +x at the front: d(row) x d(col) points up, so the
    # underside's triangles are reversed.
    return [(sheet.reshape(-1, 3), tris, np.asarray(colour, F)),
            (under.reshape(-1, 3), tris[:, ::-1], np.asarray(colour, F) * 0.7)]


def tuck(strands: StrandGeometry, worn: Hat) -> StrandGeometry:
    """Strands (model space) with every point under the crown pulled in under its back face."""
    p = np.asarray(strands.points, np.float64) - CENTRE
    r = np.linalg.norm(p, axis=-1)
    az = np.degrees(np.arctan2(p[..., 0], p[..., 2]))
    polar = np.degrees(np.arccos(np.clip(p[..., 1] / np.maximum(r, 1e-9), -1, 1)))
    step = 360.0 / COLUMNS
    c = np.mod(np.rint((az + 180.0) / step).astype(np.intp), COLUMNS)
    top, rim = worn.top[c], worn.rim[c]
    under = (polar >= top) & (polar <= rim)
    row = np.clip(np.rint((polar - top) / np.maximum(rim - top, 1e-6) * (ROWS - 1)).astype(np.intp), 0, ROWS - 1)
    limit = worn.radius[row, c] - THICKNESS - 0.05
    scale = np.where(under & (r > limit), limit / np.maximum(r, 1e-9), 1.0)
    return replace(strands, points=(p * scale[..., None] + CENTRE).astype(F))
