"""Glasses fitted to each face: frames and lenses built from the sample's own eye, nose-bridge and ear
positions, in model space (cm, +y up, +z out of the face), like the hair and garments of
generator/parts.py `dressing`.

- The lenses: a flat-ish outline per eye (`FRAMES` gives each shape's outline), centred on the eye,
  as wide as `Eyewear.size` times the eye's width, tilted like real frames (pantoscopic tilt, a little
  wrap), then moved forward until no part of the face (lashes and brows included) comes closer than
  CLEARANCE: glasses never cut into the face whatever the identity or expression.
- The frame: a tube around each outline (none for rimless), a bridge over the nose between the two
  rims, and two temples from the rims' outer ends back over the ears, held off the skin.

Lenses are thin plano shells, with no optical power: what is seen through them is where it is drawn,
so the labels of the eyes behind them stay exact (a prescription lens would move the eyes in the
image). `Eyewear.lens_opacity` says how much of the light the lens stops: below OPAQUE (clear and
tinted lenses) a lens hides nothing, at or above it (sunglasses) it hides what is behind; both
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
    outlines = [o + [0.0, 0.0, shift] for o in outlines]
    lenses = _lens_mesh(outlines, eyewear.lens_color)
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


def _lens_mesh(outlines: list[np.ndarray], colour) -> SurfaceGeometry:
    """Both lenses as triangle fans around their centres (bulged forward a little, as lenses are)."""
    vertices, triangles = [], []
    n = OUTLINE_POINTS
    for o in outlines:
        centre = o.mean(0) + [0.0, 0.0, 0.12]
        base = sum(len(v) for v in vertices)
        vertices.append(np.vstack([centre, o]))
        k = np.arange(n)
        # counter-clockwise seen from the front (+z): outline order is counter-clockwise in x, y on the
        # left lens and clockwise on the right one (x mirrored)
        ccw = _signed_area(o[:, :2]) > 0
        a, b = (1 + k, 1 + (k + 1) % n) if ccw else (1 + (k + 1) % n, 1 + k)
        triangles.append(np.stack([np.zeros(n, int), a, b], 1) + base)
    v = np.vstack(vertices).astype(F)
    return SurfaceGeometry(v, np.vstack(triangles).astype(np.int32), np.tile(np.asarray(colour, F), (len(v), 1)))


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
