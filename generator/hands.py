"""A procedural hand (and forearm) in front of the face, maybe holding a phone, a cup or a microphone,
in model space (cm, +y up, +z out of the face), like the other things a sample wears
(generator/parts.py `dressing`).

The hand is built in its own frame (`_hand_mesh`): the wrist at the origin, the fingers along +y,
the palm facing +z, the thumb towards -x. A palm (a rounded box), four fingers of three phalanges
and a thumb, each a tapering tube along its bones; every joint bends by the pose's flexion (the
fingers towards the palm), the fingers fan out by `Hand.spread`. A left hand is the mirror image.

A pose (`POSES`) says where on the face the hand goes, from the sample's own landmarks: under the
chin, fingers across the mouth, flat on the cheek, or holding an object (`OBJECTS`) up to the
mouth or the ear. Then the hand (with what it holds) is moved straight away from the face until
nothing of it comes closer to the skin than `CLEARANCE`: it touches the face, never cuts into it,
whatever the identity and expression. `Hand.shift` moves the spot across and up the face first.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from facegen.errors import FacegenError
from facegen.generator.hair import skin_proxy
from facegen.generator.meshes import grid_triangles, join, tube

if TYPE_CHECKING:
    from facegen.face_model import FaceModel
    from facegen.generator.parts import SurfaceGeometry
    from facegen.generator.scene import Hand

F = np.float32
CLEARANCE = 0.15  # cm between the hand (or object) and the skin
RING = 10  # sides of a finger's tube

# Fingers in the hand's frame (size 1): knuckle (x, y), the phalanges' lengths (cm) and radius.
FINGERS = {
    "index": ((-2.75, 9.3), (4.6, 2.6, 2.1), 0.98),
    "middle": ((-0.9, 9.6), (5.0, 3.0, 2.3), 1.0),
    "ring": ((0.9, 9.3), (4.7, 2.8, 2.2), 0.93),
    "pinky": ((2.65, 8.5), (3.7, 2.1, 1.9), 0.82),
}
PALM_CENTRE, PALM_HALF = np.array([0.0, 4.9, 0.0]), np.array([4.1, 5.0, 1.3])


@dataclass(frozen=True)
class Pose:
    """How the hand is held: each finger's flexion at its three joints (degrees, towards the palm),
    the thumb's, and how strongly `Hand.curl` adds to them."""

    flex: dict  # finger name -> (knuckle, middle, end joint) degrees; "thumb" too
    curl_gain: float = 1.0
    spread_gain: float = 1.0  # how much of Hand.spread the fingers fan out by (< 0: pressed together)


POSES: dict[str, Pose] = {
    # Under the chin: a loose fist, the knuckles under the jaw.
    "chin": Pose({"index": (70, 80, 40), "middle": (75, 85, 40), "ring": (80, 85, 40), "pinky": (85, 85, 40),
                  "thumb": (20, 30, 20)}, curl_gain=0.4),
    # Index and middle fingers across the lips, pressed together (no gap between them over the
    # lips), ring and little finger folded away, the thumb tucked in.
    "mouth": Pose({"index": (42, 6, 4), "middle": (42, 6, 4), "ring": (80, 95, 50), "pinky": (85, 95, 50),
                   "thumb": (70, 40, 20)}, curl_gain=0.2, spread_gain=-0.3),
    # Flat on the cheek, fingers up towards the temple.
    "cheek": Pose({"index": (8, 8, 4), "middle": (6, 8, 4), "ring": (8, 10, 5), "pinky": (10, 12, 6),
                   "thumb": (5, 10, 5)}, curl_gain=0.5),
    # Holding something: fingers wrapped round it.
    "hold": Pose({"index": (60, 70, 35), "middle": (62, 72, 35), "ring": (64, 74, 35), "pinky": (66, 76, 35),
                  "thumb": (25, 25, 15)}, curl_gain=0.15),
}
OBJECTS = ("phone", "cup", "microphone")
# Where the forearm goes from the wrist, per pose (model space, for a hand on the face's +x side):
# down, out to the side and towards the camera, clear of the chest.
FOREARM = {"chin": (0.25, -0.8, 0.55), "mouth": (0.6, -0.75, 0.3), "cheek": (0.3, -1.0, 0.2), "hold": (0.4, -0.85, 0.4)}


@dataclass(frozen=True, eq=False)
class Held:
    hand: SurfaceGeometry  # the hand and its forearm
    object: SurfaceGeometry | None  # what it holds


def hand(params: Hand, shaped: np.ndarray, model: FaceModel) -> Held | None:
    """The hand of one sample (and what it holds) in model space, placed on its shaped mesh (identity
    and expression, no head pose), or None when it has none."""
    if params.pose == "none":
        return None
    if params.pose not in POSES:
        raise FacegenError(f"hand.pose = {params.pose!r}: unknown; choose none or one of {', '.join(POSES)}")
    if params.pose == "hold" and params.object not in OBJECTS:
        raise FacegenError(f"hand.object = {params.object!r}: a hand with pose hold holds one of {', '.join(OBJECTS)}")
    side = 1.0 if params.side >= 0 else -1.0
    v = np.asarray(shaped, np.float64)
    lm = v[model.landmarks68]
    shift = np.array([side * params.shift[0], params.shift[1], 0.0])
    obj_mesh = None
    if params.pose == "hold":
        obj_mesh, frame, anchor_local, away = _object(params, lm, side, shift)
    else:
        frame, anchor_local, away = _placement(params.pose, lm, side)
        frame = (frame[0], frame[1] + shift)
    forearm = np.asarray(FOREARM[params.pose], np.float64)
    pose = POSES[params.pose]
    curl = np.clip(params.curl, 0.0, 1.0) * pose.curl_gain
    rotation, origin = frame
    # The pose's anchor (a point of the hand, in its frame at size 1) lands on the spot.
    origin = origin - rotation @ (anchor_local * params.size * np.array([side, 1.0, 1.0]))
    verts, tris, colours = _hand_mesh(pose, curl, params.spread * pose.spread_gain, params.size)
    verts = verts * np.array([side, 1.0, 1.0])
    if side < 0:
        tris = tris[:, ::-1]  # the mirror image keeps its outside out
    verts = verts @ rotation.T + origin
    # The forearm, from the wrist down and away from the body (the pose's direction in model space).
    wrist = origin + rotation @ np.array([0.0, -0.3, 0.0]) * params.size
    arm = wrist + np.outer([0.0, 6.0, 16.0, 30.0], _unit(forearm * [side, 1.0, 1.0]))
    arm_v, arm_t = tube(arm, np.array([2.6, 2.9, 3.4, 3.7]) * params.size, closed=False, ring=16)
    verts, tris = np.vstack([verts, arm_v]), np.vstack([tris, arm_t + len(verts)])
    colours = np.vstack([colours, np.full((len(arm_v), 3), 0.97, F)]) * np.asarray(params.skin_color, F)
    skin = skin_proxy(v.astype(F), model)
    everything = verts if obj_mesh is None else np.vstack([verts, obj_mesh.vertices])
    move = _clearance(skin, everything, np.asarray(away, np.float64))
    hand_mesh = join([(verts + move, tris, colours)])
    if obj_mesh is not None:
        obj_mesh = join([(obj_mesh.vertices + move, obj_mesh.triangles, obj_mesh.colours)])
    return Held(hand_mesh, obj_mesh)


def _clearance(skin, points: np.ndarray, away: np.ndarray) -> np.ndarray:
    """How far to move points along `away` (unit) so none is within CLEARANCE of the skin."""
    away = away / np.linalg.norm(away)
    moved = np.zeros(3)
    for _ in range(40):
        d, normal = skin.distance((points + moved).astype(F))
        near = np.linalg.norm(normal, axis=-1) > 0  # beyond the proxy's grid a point reads 0: free
        worst = float(d[near].min()) if near.any() else np.inf
        if worst >= CLEARANCE:
            break
        moved = moved + max(CLEARANCE - worst, 0.1) * away
    return moved


def _frame(fingers: np.ndarray, palm: np.ndarray) -> np.ndarray:
    """A rotation taking the hand's frame (fingers +y, palm normal +z) to these model directions."""
    y = np.asarray(fingers, np.float64) / np.linalg.norm(fingers)
    z = np.asarray(palm, np.float64) - np.dot(palm, y) * y
    z /= np.linalg.norm(z)
    return np.stack([np.cross(y, z), y, z], 1)


def _placement(pose: str, lm: np.ndarray, side: float):
    """((rotation, spot), anchor in the hand's frame, the direction away from the face) of a pose."""
    mouth = lm[48:68].mean(0)
    if pose == "chin":  # a loose fist, its knuckles under the chin, the fingers curled towards the neck
        spot = lm[8] + [0.0, -1.2, -0.6]
        rotation = _frame([-side * 0.15, 0.95, 0.25], [-side * 0.2, 0.1, -1.0])
        anchor = np.array([-0.9, 10.4, 0.0])  # over the middle finger's knuckle
        away = [0.0, -0.6, 0.8]
    elif pose == "mouth":  # the palm beside the mouth, index and middle fingers bending across the lips
        spot = np.array([side * (abs(lm[54, 0] - lm[48, 0]) / 2 + 1.4), mouth[1], lm[51, 2] + 1.6])
        rotation = _frame([-side * 0.55, 0.05, 0.83], [-side * 0.83, 0.0, -0.55])
        anchor = np.array([-1.8, 9.6, 0.0])  # between the index and middle knuckles
        away = [side * 0.3, 0.0, 1.0]
    elif pose == "cheek":  # flat on the cheek, fingers up towards the temple
        cheek = (lm[2 if side < 0 else 14] + lm[31 if side < 0 else 35]) / 2
        spot = cheek + [side * 0.5, -0.5, 0.0]
        rotation = _frame([side * 0.05, 1.0, 0.05], [-side * 0.9, 0.0, -0.45])
        anchor = PALM_CENTRE + [0.0, 1.5, PALM_HALF[2]]
        away = [side * 0.8, 0.0, 0.6]
    else:
        raise FacegenError(f"hand pose {pose!r} has no placement")
    return (rotation, spot), anchor, away


def _object(params: Hand, lm: np.ndarray, side: float, shift: np.ndarray):
    """The held object's mesh (model space), the hand's frame and anchor gripping it, the way out."""
    colour = np.asarray(params.object_color, F)
    mouth = lm[48:68].mean(0)
    if params.object == "cup":  # at the lower lip, tipped towards the face
        axis = _unit([0.0, 0.93, -0.37])
        radius, height = 4.0, 9.5
        rim = np.array([0.0, lm[57, 1] + 1.2, lm[57, 2] + 1.0]) + shift
        base = rim - axis * height + np.array([0.0, 0.0, radius])
        mesh = _cup(base, axis, radius, height, colour)
        grip = base + axis * height * 0.45 + np.array([side, 0.0, 0.3]) * radius / np.hypot(1.0, 0.3)
        out = _unit([side, 0.0, 0.3])
        away = [0.0, -0.3, 1.0]
    elif params.object == "microphone":  # the head before the chin, the handle down and forward
        axis = _unit([0.0, 0.8, -0.6])
        head = np.array([0.0, mouth[1] - 2.5, lm[8, 2] + 4.5]) + shift
        mesh = _microphone(head, axis, colour)
        grip = head - axis * 10.0
        out = _unit([side, 0.0, 0.4])
        radius = 1.9
        away = [0.0, -0.5, 1.0]
    else:  # phone: against the ear and the cheek, the screen to the face
        ear = lm[0 if side < 0 else 16] + [side * 0.8, -1.5, -2.5]
        corner = lm[48 if side < 0 else 54] + [side * 1.5, 0.0, -1.5]
        axis = _unit(ear - corner)
        centre = (ear + corner) / 2 + [side * 1.2, 0.0, 0.0] + shift
        facing = _unit([side, 0.0, 0.25])  # the back of the phone faces out from the cheek
        mesh = _phone(centre, axis, facing, colour)
        grip = centre - axis * 3.0 + facing * 0.45
        out = facing
        radius = 0.4
        away = [side * 0.9, 0.0, 0.4]
    # Grip: the palm faces the object (its normal into `out`'s opposite), the fingers round it
    # towards the face, the thumb along its axis.
    fingers = np.cross(axis, out)
    fingers = fingers if fingers[2] < 0 else -fingers
    rotation = _frame(fingers, -out)
    anchor = PALM_CENTRE + [0.0, 2.0, PALM_HALF[2] + radius * 0.2]
    return mesh, (rotation, grip), anchor, away


def _unit(v) -> np.ndarray:
    v = np.asarray(v, np.float64)
    return v / np.linalg.norm(v)


# -- the hand in its own frame ----------------------------------------------------------------------


def _hand_mesh(pose: Pose, curl: float, spread: float, size: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(vertices, triangles, colour factors (n, 3)) of the hand and forearm in the hand's frame."""
    pieces = [(*_rounded_box(PALM_CENTRE, PALM_HALF), np.ones(3, F))]
    fan = {"index": -1.5, "middle": -0.5, "ring": 0.5, "pinky": 1.5}
    for name, ((x, y), lengths, radius) in FINGERS.items():
        flex = np.array(pose.flex[name], np.float64) + curl * np.array([45.0, 60.0, 40.0])
        path, r = _finger(np.array([x, y, 0.0]), np.radians(fan[name] * spread), np.radians(flex), lengths, radius)
        v, t = tube(path, r, closed=False, ring=RING)
        nail = np.where(np.arange(len(v)) >= len(v) - 2 - 3 * RING, 1.0, 0.0)  # the last segments
        shade = np.ones((len(v), 3), F)
        shade[nail > 0] = (1.05, 0.92, 0.9)  # pinker nail ends
        pieces.append((v, t, shade))
    thumb_flex = np.radians(np.array(pose.flex["thumb"], np.float64) + curl * np.array([15.0, 25.0, 20.0]))
    path, r = _thumb(thumb_flex)
    pieces.append((*tube(path, r, closed=False, ring=RING), np.ones(3, F)))
    pieces.append((*tube(np.array([[0.0, 1.2, 0.0], [0.0, -0.6, 0.0]]), np.array([2.7, 2.6]), closed=False,
                         ring=16), np.ones(3, F)))  # the wrist
    mesh = join(pieces)
    return mesh.vertices.astype(np.float64) * size, mesh.triangles, mesh.colours


def _finger(knuckle: np.ndarray, fan: float, flex: np.ndarray, lengths, radius: float):
    """Points along a finger from inside the palm to its rounded tip, bending by `flex` at each joint
    towards +z, fanned by `fan` (radians) about the palm's normal; and the radius at each point."""
    d = np.array([np.sin(fan), np.cos(fan), 0.0])
    side = np.cross(d, [0.0, 0.0, 1.0])  # the joints' axis
    points, radii = [knuckle - d * 1.5], [radius * 1.05]
    p, r = knuckle.copy(), radius
    for k, (length, angle) in enumerate(zip(lengths, flex)):
        d = _rotate(d, side, angle)
        for s in (0.5, 1.0):
            points.append(p + d * length * s)
            radii.append(r * (1 - 0.06 * s))
        p = p + d * length
        r *= 0.95
    for s, shrink in ((0.35, 0.8), (0.6, 0.45)):  # the rounded tip
        points.append(p + d * r * s)
        radii.append(r * shrink)
    return np.array(points), np.array(radii)


def _thumb(flex: np.ndarray):
    """The thumb from its root at the wrist's thumb side, out and towards the palm."""
    p = np.array([-2.6, 1.6, 0.6])
    d = _unit([-0.62, 0.7, 0.35])
    axis = _unit(np.cross(d, [0.0, 0.0, 1.0]))
    points, radii = [p], [1.5]
    r = 1.2
    for length, angle in zip((4.0, 3.1, 2.5), flex):
        d = _rotate(d, axis, -angle)  # towards the palm (+x) and its front
        d = _unit(d + [0.12, 0.0, 0.08])
        for s in (0.5, 1.0):
            points.append(p + d * length * s)
            radii.append(r)
        p = p + d * length
        r *= 0.9
    points += [p + d * r * 0.35, p + d * r * 0.6]
    radii += [r * 0.8, r * 0.45]
    return np.array(points), np.array(radii)


def _rotate(v: np.ndarray, axis: np.ndarray, angle: float) -> np.ndarray:
    """v rotated by `angle` (radians) about the unit `axis` (Rodrigues)."""
    axis = axis / np.linalg.norm(axis)
    return v * np.cos(angle) + np.cross(axis, v) * np.sin(angle) + axis * np.dot(axis, v) * (1 - np.cos(angle))


def _rounded_box(centre: np.ndarray, half: np.ndarray, exponent: float = 4.0, lat: int = 14, lon: int = 24):
    """A superellipsoid (boxy with round edges), outward winding."""
    a = np.linspace(0, np.pi, lat + 2)[1:-1, None]
    b = np.linspace(0, 2 * np.pi, lon, endpoint=False)[None]

    def sp(x):  # signed power: squarer as the exponent grows
        return np.sign(x) * np.abs(x) ** (2.0 / exponent)

    x, y, z = sp(np.sin(a)) * sp(np.cos(b)), sp(np.sin(a)) * sp(np.sin(b)), sp(np.cos(a)) * np.ones_like(b)
    ring = np.stack([x * half[0], y * half[1], z * half[2]], -1).reshape(-1, 3) + centre
    n = lat * lon
    vertices = np.vstack([ring, centre + [0, 0, half[2]], centre - [0, 0, half[2]]])
    j = np.arange(lon)
    triangles = np.concatenate([grid_triangles(lat, lon, closed=True)[:, ::-1],
                                np.stack([np.full(lon, n), (j + 1) % lon, j], 1),
                                np.stack([np.full(lon, n + 1), n - lon + j, n - lon + (j + 1) % lon], 1)])
    return vertices, triangles


# -- objects -------------------------------------------------------------------------------------------


def _basis(axis: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    ref = np.array([1.0, 0.0, 0.0]) if abs(axis[0]) < 0.9 else np.array([0.0, 0.0, 1.0])
    u = _unit(np.cross(axis, ref))
    return u, np.cross(axis, u)


def _cup(base: np.ndarray, axis: np.ndarray, radius: float, height: float, colour) -> SurfaceGeometry:
    """A mug: outer and inner walls, a rim, a bottom and a handle, open at the top."""
    u, w = _basis(axis)
    phi = np.linspace(0, 2 * np.pi, 32, endpoint=False)
    ring = np.cos(phi)[:, None] * u + np.sin(phi)[:, None] * w
    rows = np.linspace(0, 1, 6)[:, None, None]
    outer = base + rows * height * axis + radius * ring[None]
    inner = base + (0.03 + rows * 0.97) * height * axis + (radius - 0.35) * ring[None]
    t = grid_triangles(6, 32, closed=True)
    rim = np.stack([outer[-1], inner[-1]])  # outer top edge to inner top edge
    bottom = np.vstack([base[None], outer[0]])
    j = np.arange(32)
    cap = np.stack([np.zeros(32, int), 1 + (j + 1) % 32, 1 + j], 1)
    pieces = [(outer.reshape(-1, 3), t[:, ::-1], colour), (inner.reshape(-1, 3), t, colour * 0.8),
              (rim.reshape(-1, 3), grid_triangles(2, 32, closed=True)[:, ::-1], colour), (bottom, cap, colour * 0.9)]
    handle = base + axis * height * 0.5 + u * (radius + 1.5 * np.sin(np.linspace(0, np.pi, 9)))[:, None] \
        + axis * (2.8 * np.cos(np.linspace(0, np.pi, 9)))[:, None]
    pieces.append((*tube(handle, 0.45, closed=False), colour))
    return join(pieces)


def _microphone(head: np.ndarray, axis: np.ndarray, colour) -> SurfaceGeometry:
    """A handheld microphone: a grille ball and a tapering handle behind it along -axis."""
    u, w = _basis(axis)
    lat, lon = 10, 20
    a = np.linspace(0, np.pi, lat + 2)[1:-1, None]
    b = np.linspace(0, 2 * np.pi, lon, endpoint=False)[None]
    sphere = (np.sin(a) * np.cos(b))[..., None] * u + (np.sin(a) * np.sin(b))[..., None] * w \
        + np.cos(a)[..., None] * axis
    ball = head + 2.6 * sphere.reshape(-1, 3)
    n = lat * lon
    j = np.arange(lon)
    tris = np.concatenate([grid_triangles(lat, lon, closed=True)[:, ::-1],
                           np.stack([np.full(lon, n), (j + 1) % lon, j], 1),
                           np.stack([np.full(lon, n + 1), n - lon + j, n - lon + (j + 1) % lon], 1)])
    ball = np.vstack([ball, head + 2.6 * axis, head - 2.6 * axis])
    mesh_grey = np.full(3, 0.35, F)
    handle = head - axis * np.linspace(1.5, 19.0, 6)[:, None]
    return join([(ball, tris, mesh_grey), (*tube(handle, np.linspace(2.1, 1.5, 6), closed=False, ring=16), colour)])


def _phone(centre: np.ndarray, axis: np.ndarray, facing: np.ndarray, colour) -> SurfaceGeometry:
    """A phone 7.2 x 14.8 x 0.8 cm: its long axis along `axis`, its back towards `facing`, the screen
    (near black) towards the face."""
    across = _unit(np.cross(axis, facing))
    facing = np.cross(across, axis)
    v, t = _rounded_box(np.zeros(3), np.array([3.6, 7.4, 0.4]), exponent=8.0)
    shade = np.tile(np.asarray(colour, F), (len(v), 1))
    shade[v[:, 2] < -0.3] = (0.01, 0.012, 0.015)  # the screen side (-z, to the face)
    world = centre + v[:, :1] * across + v[:, 1:2] * axis + v[:, 2:3] * facing
    return join([(world, t, shade)])
