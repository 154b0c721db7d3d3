"""Draw a landmark spec on the neutral face (front and 3/4 view) so a person can check it.

Rendering: pyrender offscreen (EGL, headless) for a shaded face and its depth buffer; points are drawn
with OpenCV, filled where visible and as hollow rings where the depth buffer says they are hidden.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from facegen.camera import Camera, euler_to_matrix, intrinsics, look_at
from facegen.errors import FacegenError
from facegen.face_model import FaceModel
from facegen.specs import CompiledSpec

VIEW_REGIONS = ("face", "head_neck", "sclera_left", "sclera_right", "iris_left", "iris_right")
HIDDEN_TOL_CM = 0.15


def _render(model: FaceModel, verts: np.ndarray, cam: Camera) -> tuple[np.ndarray, np.ndarray]:
    os.environ.setdefault("PYOPENGL_PLATFORM", "egl")  # headless; must be set before pyrender loads
    import pyrender
    import trimesh

    keep = np.isin(model.triangle_region, [model.region_names.index(r) for r in VIEW_REGIONS])
    mesh = trimesh.Trimesh(verts, model.triangles[keep], process=False)
    mat = pyrender.MetallicRoughnessMaterial(baseColorFactor=(0.78, 0.70, 0.64, 1.0), roughnessFactor=0.8)
    scene = pyrender.Scene(bg_color=(1.0, 1.0, 1.0, 1.0), ambient_light=(0.25, 0.25, 0.25))
    scene.add(pyrender.Mesh.from_trimesh(mesh, material=mat, smooth=True))
    fx = float(cam.K[0, 0])
    pc = pyrender.IntrinsicsCamera(fx, fx, cam.K[0, 2] + 0.5, cam.K[1, 2] + 0.5, znear=1.0, zfar=500.0)
    # OpenCV camera (x right, y down, z forward) -> OpenGL camera (y up, z backward)
    pose = np.eye(4)
    pose[:3, :3] = cam.R.T @ np.diag([1.0, -1.0, -1.0])
    pose[:3, 3] = cam.centre
    scene.add(pc, pose=pose)
    scene.add(pyrender.DirectionalLight(intensity=3.0), pose=pose)
    r = pyrender.OffscreenRenderer(cam.width, cam.height)
    try:
        color, depth = r.render(scene)
    finally:
        r.delete()
    return color, depth


def _palette(groups: list[str]) -> dict[str, tuple[int, int, int]]:
    import matplotlib

    # One saturated colour per feature; left and right share it (the legend still lists both).
    cmap = matplotlib.colormaps["tab10"]
    base: list[str] = []
    for g in groups:
        b = g.removesuffix("_left").removesuffix("_right")
        if b not in base:
            base.append(b)
    return {g: tuple(int(255 * c) for c in cmap(base.index(g.removesuffix("_left").removesuffix("_right")) % 10)[:3][::-1])
            for g in groups}  # BGR


def _posed_view(model: FaceModel, yaw: float, size: int) -> tuple[np.ndarray, Camera, np.ndarray, np.ndarray]:
    """The neutral face turned by `yaw` degrees: (vertices, camera, BGR image, depth)."""
    R = euler_to_matrix(yaw, 0.0, 0.0)
    centre = np.array([0.0, 0.5, 6.0])  # roughly the middle of the face
    verts = (np.asarray(model.neutral, np.float64) - centre) @ R.T + centre
    eye = centre + np.array([0.0, 0.0, 60.0])
    Rc, t = look_at(eye, centre)
    cam = Camera(intrinsics(size * 2.3, size, size), Rc, t, size, size)
    color, depth = _render(model, verts, cam)
    return verts, cam, np.ascontiguousarray(color[:, :, ::-1]), depth  # BGR for OpenCV


def _hidden(uv: np.ndarray, z: np.ndarray, depth: np.ndarray) -> np.ndarray:
    """(L,) bool: behind the rendered surface (or off the image), by the depth buffer around each pixel."""
    h, w = depth.shape
    out = np.ones(len(uv), bool)
    for i, (u, v) in enumerate(uv):
        iu, iv = int(round(u)), int(round(v))
        if 0 <= iu < w and 0 <= iv < h:
            d = depth[max(iv - 1, 0): iv + 2, max(iu - 1, 0): iu + 2]
            d = d[d > 0]
            out[i] = d.size == 0 or z[i] > d.max() + HIDDEN_TOL_CM
    return out


def _dot(img: np.ndarray, uv, colour, r: int, hidden: bool) -> None:
    import cv2

    p = (int(round(uv[0] * 4)), int(round(uv[1] * 4)))  # 2 bits of sub-pixel position
    if hidden:
        cv2.circle(img, p, r * 4, colour, 1, cv2.LINE_AA, shift=2)
    else:
        cv2.circle(img, p, r * 4, colour, -1, cv2.LINE_AA, shift=2)
        cv2.circle(img, p, r * 4, (40, 40, 40), 1, cv2.LINE_AA, shift=2)


def draw_view(spec: CompiledSpec, model: FaceModel, yaw: float, size: int, labels: bool) -> np.ndarray:
    import cv2

    verts, cam, img, depth = _posed_view(model, yaw, size)
    pts = spec.locate(verts, cam.centre)
    uv = cam.project(pts)
    z = cam.to_camera(pts)[:, 2]
    hidden = _hidden(uv, z, depth)
    pal = _palette(list(spec.groups))
    group_of = np.empty(spec.num_points, object)
    for g, ix in spec.groups.items():
        group_of[ix] = g
    r = max(2, int(round(size / 220 * (1.6 if spec.num_points <= 100 else 1.0))))
    for i in np.argsort(-z):
        _dot(img, uv[i], pal[group_of[i]], r, hidden[i])
        if labels:
            cv2.putText(img, str(i), (int(round(uv[i, 0])) + r + 1, int(round(uv[i, 1])) - r),
                        cv2.FONT_HERSHEY_SIMPLEX, 0.25 * size / 512, (0, 0, 0), 1, cv2.LINE_AA)
    return img


def compare_image(a: CompiledSpec, b: CompiledSpec, model: FaceModel, size: int = 768,
                  yaws: tuple[float, ...] = (0.0, 60.0)) -> tuple[np.ndarray, list[float]]:
    """BGR image: the iBUG-68 points of two specs on the neutral face at each yaw, `a` in orange and `b`
    in blue (filled: visible, ring: hidden), a line where they differ. Also returns, per view, the
    largest distance between corresponding points in pixels. A dense spec shows the points of its
    iBUG-68 correspondence."""
    import cv2

    colours = ((0, 140, 255), (220, 110, 20))  # BGR: orange, blue
    index = [s.ibug68 for s in (a, b)]
    views, moved = [], []
    r = max(2, int(round(size / 180)))
    for yaw in yaws:
        verts, cam, img, depth = _posed_view(model, yaw, size)
        uvs, hid = [], []
        for spec, ix in zip((a, b), index):
            pts = spec.locate(verts, cam.centre)[ix]
            uvs.append(cam.project(pts))
            hid.append(_hidden(uvs[-1], cam.to_camera(pts)[:, 2], depth))
        d = np.linalg.norm(uvs[0] - uvs[1], axis=1)
        moved.append(float(d.max()))
        for i in np.flatnonzero(d > 0.5):
            cv2.line(img, tuple(int(round(x)) for x in uvs[0][i]), tuple(int(round(x)) for x in uvs[1][i]),
                     (60, 60, 60), 1, cv2.LINE_AA)
        for k in (1, 0):
            for i in range(68):
                _dot(img, uvs[k][i], colours[k], r, hid[k][i])
        s = size / 768
        cv2.putText(img, f"yaw {yaw:g} deg: largest difference {d.max():.1f} px", (int(10 * s), size - int(14 * s)),
                    cv2.FONT_HERSHEY_SIMPLEX, 0.55 * s, (0, 0, 0), 1, cv2.LINE_AA)
        views.append(img)
    img = np.concatenate(views, axis=1)
    s = size / 768
    for k, spec in enumerate((a, b)):
        y = int((24 + 22 * k) * s)
        cv2.circle(img, (int(18 * s), y - int(5 * s)), int(6 * s), colours[k], -1, cv2.LINE_AA)
        cv2.putText(img, spec.name, (int(30 * s), y), cv2.FONT_HERSHEY_SIMPLEX, 0.6 * s, (0, 0, 0), 1, cv2.LINE_AA)
    return img, moved


def preview_image(spec: CompiledSpec, model: FaceModel, size: int = 768, labels: bool = False,
                  yaw: float = 40.0) -> np.ndarray:
    """BGR image: the front view and a 3/4 view (turned by `yaw` degrees) side by side, with a legend."""
    import cv2

    views = [draw_view(spec, model, 0.0, size, labels), draw_view(spec, model, yaw, size, labels)]
    img = np.concatenate(views, axis=1)
    pal = _palette(list(spec.groups))
    s = size / 768
    y = int(24 * s)
    cv2.putText(img, f"{spec.name}: {spec.num_points} points  (filled: visible, ring: hidden)",
                (int(10 * s), y), cv2.FONT_HERSHEY_SIMPLEX, 0.6 * s, (0, 0, 0), 1, cv2.LINE_AA)
    for g, c in pal.items():
        y += int(20 * s)
        cv2.circle(img, (int(18 * s), y - int(5 * s)), int(6 * s), c, -1, cv2.LINE_AA)
        cv2.putText(img, f"{g} ({len(spec.groups[g])})", (int(30 * s), y), cv2.FONT_HERSHEY_SIMPLEX,
                    0.5 * s, (0, 0, 0), 1, cv2.LINE_AA)
    return img


def write_image(img: np.ndarray, out: Path) -> Path:
    import cv2

    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(out), img):
        raise FacegenError(f"-o {out}: cannot write the image (use a .png path in a writable folder)")
    return out


def write_preview(spec: CompiledSpec, model: FaceModel, out: Path, size: int = 768, labels: bool = False) -> Path:
    return write_image(preview_image(spec, model, size, labels), out)
