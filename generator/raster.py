"""The fast rasteriser: pyrender (OpenGL) offscreen, headless through EGL.

The pyrender scene is built once per process; per sample only the vertex buffers (positions,
normals, colours) are rewritten with glBufferSubData, and the camera, lights and materials updated.
The eye-blend, eye-occlusion and eyelash strips are not drawn: they are alpha-blended cards in
ICT-FaceKit, not surfaces, and drawn opaque they would hide the eyes.

Pixel convention: pyrender's IntrinsicsCamera puts a pixel's centre at +0.5 (OpenGL), so the
principal point is shifted by `gl_pixel_offset` and pixel centres follow OpenCV (docs/rendering.md).
"""

from __future__ import annotations

import os

os.environ.setdefault("PYOPENGL_PLATFORM", "egl")  # headless; must precede any OpenGL import
os.environ.setdefault("OPENCV_IO_ENABLE_OPENEXR", "1")  # HDRI backgrounds; must precede cv2

from functools import lru_cache  # noqa: E402
from pathlib import Path  # noqa: E402

import cv2  # noqa: E402
import numpy as np  # noqa: E402
import scipy.sparse as sp  # noqa: E402
from matplotlib.path import Path as Polygon  # noqa: E402

from facegen.camera import gl_pixel_offset  # noqa: E402
from facegen.errors import FacegenError  # noqa: E402
from facegen.face_model import FaceModel  # noqa: E402
from facegen.generator.scene import PosedScene, RenderResult, SceneParams  # noqa: E402

# Segmentation classes (docs/rendering.md); each is one pyrender mesh so the SEG pass can tell them apart.
SEGMENT_CLASSES = {
    "background": 0,
    "face": 1,
    "head_neck": 2,
    "eyeball": 3,
    "mouth_interior": 4,
    "teeth": 5,
    "eye_socket": 6,
}
SEGMENT_REGIONS = {
    "face": ("face",),
    "head_neck": ("head_neck",),
    "eyeball": ("sclera_left", "sclera_right", "iris_left", "iris_right"),
    "mouth_interior": ("mouth_socket", "gums_tongue"),
    "teeth": ("teeth",),
    "eye_socket": ("eye_socket_left", "eye_socket_right", "lacrimal_left", "lacrimal_right"),
}
# The face-region mask: everything of the face proper (not the back of the head, neck, ears).
MASK_CLASSES = ("face", "eyeball", "mouth_interior", "teeth", "eye_socket")
NOT_DRAWN = ("eye_blend_left", "eye_blend_right", "eye_occlusion_left", "eye_occlusion_right",
             "eyelashes_left", "eyelashes_right")

# Fixed (linear RGB) colours of the parts that do not follow the skin.
PART_COLOURS = {
    "eyeball": (0.80, 0.76, 0.72),  # sclera; the iris is painted on (see skin_maps)
    "mouth_interior": (0.09, 0.025, 0.025),  # dark: the mouth socket swallows light
    "teeth": (0.78, 0.74, 0.64),
}

FLOATS_PER_VERTEX = 10  # position 3, normal 3, colour 4: pyrender's interleaved layout


class RasterRenderer:
    """pyrender/EGL renderer implementing the `Renderer` protocol (see generator/scene.py)."""

    name = "raster"
    version = "1"  # bump when output pixels change (part of a job's resume key)

    def __init__(self, model: FaceModel, outputs=("rgb", "depth", "segmentation"), backgrounds: Path | None = None,
                 hdris: Path | None = None, device: str = "auto", antialias: bool = False, **_ignored):
        try:
            import pyrender
        except Exception as e:  # noqa: BLE001 - OpenGL platform problems surface here
            raise FacegenError(f"cannot load pyrender/OpenGL ({e}); headless rendering needs EGL "
                               "(libEGL, Mesa) or set PYOPENGL_PLATFORM=osmesa") from None
        self._pr = pyrender
        self.model = model
        self.outputs = tuple(outputs)
        self.backgrounds = Path(backgrounds) if backgrounds else None
        self.hdris = Path(hdris) if hdris else None
        self.antialias = antialias
        self._size: tuple[int, int] | None = None
        self._offscreen = None
        self._build_geometry(model)
        self._build_scene()

    # -- one-off set-up ------------------------------------------------------------------------

    def _build_geometry(self, model: FaceModel) -> None:
        """Index arrays: which vertices/triangles each part draws, in one concatenated vertex order."""
        region_of = {name: i for i, name in enumerate(model.region_names)}
        self.parts: list[tuple[str, np.ndarray, np.ndarray]] = []  # (class, global vertex ids, local tris)
        drawn_vertices, drawn_tris = [], []
        start = 0
        for cls, regions in SEGMENT_REGIONS.items():
            ids = [region_of[r] for r in regions]
            tri_mask = np.isin(model.triangle_region, ids)
            tris = model.triangles[tri_mask]
            verts = np.unique(tris)
            remap = np.full(model.num_vertices, -1, np.int64)
            remap[verts] = np.arange(len(verts))
            self.parts.append((cls, verts, remap[tris].astype(np.uint32)))
            drawn_vertices.append(verts)
            drawn_tris.append(remap[tris] + start)
            start += len(verts)
        self.drawn = np.concatenate(drawn_vertices)  # global id of each drawn vertex
        tris = np.concatenate(drawn_tris)
        self._tris = tris
        self._slices = []
        offset = 0
        for _, verts, _ in self.parts:
            self._slices.append(slice(offset, offset + len(verts)))
            offset += len(verts)
        n, f = len(self.drawn), len(tris)
        # Vertex normal = sum of the adjacent triangles' area-weighted normals: one sparse product.
        rows = tris.ravel()
        cols = np.repeat(np.arange(f), 3)
        self._incidence = sp.csr_matrix((np.ones(3 * f, np.float32), (rows, cols)), shape=(n, f))
        self._base_colours = np.ones((n, 4), np.float32)
        self._skin_maps = skin_maps(model, self.drawn)
        self._vertex_data = np.zeros((n, FLOATS_PER_VERTEX), np.float32)

    def _build_scene(self) -> None:
        pr = self._pr
        self.scene = pr.Scene(bg_color=(0.0, 0.0, 0.0, 0.0), ambient_light=(0.3, 0.3, 0.3))
        self.nodes, self.materials = {}, {}
        neutral = self.model.neutral
        for cls, verts, tris in self.parts:
            material = pr.MetallicRoughnessMaterial(baseColorFactor=(1.0, 1.0, 1.0, 1.0), metallicFactor=0.0,
                                                    roughnessFactor=0.5, doubleSided=True)
            prim = pr.Primitive(positions=neutral[verts], normals=np.zeros((len(verts), 3), np.float32),
                                color_0=np.ones((len(verts), 4), np.float32), indices=tris, material=material)
            self.nodes[cls] = self.scene.add(pr.Mesh([prim]))
            self.materials[cls] = material
        self.primitives = [self.nodes[cls].mesh.primitives[0] for cls, _, _ in self.parts]
        self.camera = pr.IntrinsicsCamera(fx=500.0, fy=500.0, cx=128.0, cy=128.0, znear=10.0, zfar=200.0)
        self.camera_node = self.scene.add(self.camera, pose=np.eye(4))
        self.light_nodes = [self.scene.add(pr.DirectionalLight(color=np.ones(3), intensity=0.0), pose=np.eye(4))
                            for _ in range(3)]
        self.seg_map = {self.nodes[cls]: np.full(3, SEGMENT_CLASSES[cls], np.uint8) for cls in self.nodes}

    def _ensure_context(self, width: int, height: int) -> None:
        if self._offscreen is not None and self._size == (width, height):
            return
        if self._offscreen is not None:
            self._offscreen.delete()
        pr = self._pr
        if not self.antialias:
            _single_sample_framebuffers()
        try:
            self._offscreen = pr.OffscreenRenderer(width, height)
        except Exception as e:  # noqa: BLE001
            raise FacegenError(f"cannot create an offscreen OpenGL context ({e}); check EGL/Mesa "
                               f"(PYOPENGL_PLATFORM={os.environ.get('PYOPENGL_PLATFORM')})") from None
        self._size = (width, height)
        # The first render binds every primitive to the context (creates its vertex buffer).
        self._offscreen.render(self.scene, flags=pr.RenderFlags.SKIP_CULL_FACES)

    # -- per sample ----------------------------------------------------------------------------

    def render(self, params: SceneParams, scene: PosedScene) -> RenderResult:
        pr = self._pr
        cam = scene.camera
        self._ensure_context(cam.width, cam.height)
        self._update_vertices(scene.vertices, params)
        self._update_camera(scene)
        self._update_lights(params)
        colour, depth = self._offscreen.render(self.scene, flags=pr.RenderFlags.SKIP_CULL_FACES)
        drawn = depth > 0
        image = np.where(drawn[..., None], colour, background_image(params, cam.width, cam.height,
                                                                    self.backgrounds, self.hdris))
        segmentation = mask = None
        if "segmentation" in self.outputs or "mask" in self.outputs:
            seg, _ = self._offscreen.render(self.scene, flags=pr.RenderFlags.SEG | pr.RenderFlags.SKIP_CULL_FACES,
                                            seg_node_map=self.seg_map)
            segmentation = np.ascontiguousarray(seg[..., 0])
            mask = np.isin(segmentation, [SEGMENT_CLASSES[c] for c in MASK_CLASSES])
        return RenderResult(image=np.ascontiguousarray(image), depth=depth, mask=mask, segmentation=segmentation)

    def draw_only(self, params: SceneParams, scene: PosedScene):
        """The bare draw (GPU work and readback) with buffers already uploaded; for benchmarks."""
        return self._offscreen.render(self.scene, flags=self._pr.RenderFlags.SKIP_CULL_FACES)

    def _update_vertices(self, vertices: np.ndarray, params: SceneParams) -> None:
        from OpenGL import GL

        v = vertices[self.drawn]
        a, b, c = v[self._tris[:, 0]], v[self._tris[:, 1]], v[self._tris[:, 2]]
        normals = self._incidence @ np.cross(b - a, c - a)
        normals /= np.maximum(np.linalg.norm(normals, axis=1, keepdims=True), 1e-12)
        data = self._vertex_data
        data[:, 0:3] = v
        data[:, 3:6] = normals
        data[:, 6:10] = self._colours(params)
        for cls in self.materials:
            self.materials[cls].roughnessFactor = params.appearance.skin_roughness if cls in ("face", "head_neck") else 0.3
        self._offscreen._platform.make_current()
        for prim, sl in zip(self.primitives, self._slices):
            GL.glBindBuffer(GL.GL_ARRAY_BUFFER, prim._buffers[0])
            GL.glBufferSubData(GL.GL_ARRAY_BUFFER, 0, data[sl].nbytes, np.ascontiguousarray(data[sl]))
        GL.glBindBuffer(GL.GL_ARRAY_BUFFER, 0)

    def _colours(self, params: SceneParams) -> np.ndarray:
        """Per-vertex linear RGBA: skin tone with lips, brows, cheeks and freckles; fixed part colours."""
        app = params.appearance
        m = self._skin_maps
        skin = np.asarray(app.skin_albedo, np.float32)
        rgb = np.broadcast_to(skin, (len(self.drawn), 3)).copy()
        rgb *= 1.0 + app.redness * m["cheeks"][:, None] * np.array([0.25, -0.12, -0.12], np.float32)
        lip = skin * np.array([1.05, 0.55, 0.58], np.float32)
        w = (m["lips"] * (0.4 + 0.6 * app.lip_tint))[:, None]
        rgb = rgb * (1 - w) + lip * w
        brow = np.asarray(app.brow_color, np.float32)
        w = np.clip(m["brows"] * app.brow_density * (m["brow_core"] <= app.brow_thickness), 0, 1)[:, None]
        rgb = rgb * (1 - w) + brow * w
        if app.freckles > 0:
            rgb *= 1.0 - (0.35 * app.freckles * m["freckles"])[:, None]
        iris = np.asarray(app.iris_color, np.float32)
        for cls, sl in zip(SEGMENT_REGIONS, self._slices):
            if cls == "eyeball":
                w = m["iris"][sl, None]
                rgb[sl] = np.asarray(PART_COLOURS["eyeball"], np.float32) * (1 - w) + iris * m["iris_shade"][sl, None] * w
            elif cls in PART_COLOURS:
                rgb[sl] = PART_COLOURS[cls]
            elif cls == "eye_socket":
                rgb[sl] = skin * 0.8
        out = self._base_colours
        out[:, :3] = rgb
        return out

    def _update_camera(self, scene: PosedScene) -> None:
        cam = scene.camera
        K = cam.K
        self.camera.fx, self.camera.fy = float(K[0, 0]), float(K[1, 1])
        # OpenGL pixel centres sit at +0.5: shift the principal point so OpenCV centres line up.
        self.camera.cx, self.camera.cy = float(K[0, 2] + gl_pixel_offset), float(K[1, 2] + gl_pixel_offset)
        # Tight near/far around the head (+-30 cm of its centre) keeps the 24-bit depth precise.
        z = float((cam.R @ scene.head_t + cam.t)[2])
        self.camera.znear, self.camera.zfar = max(z - 30.0, 1.0), z + 30.0
        pose = np.eye(4)
        pose[:3, :3] = cam.R.T @ np.diag([1.0, -1.0, -1.0])  # OpenCV camera axes -> OpenGL's (y up, -z forward)
        pose[:3, 3] = cam.centre
        self.scene.set_pose(self.camera_node, pose)

    def _update_lights(self, params: SceneParams) -> None:
        lighting = params.lighting
        self.scene.ambient_light = np.full(3, lighting.ambient)
        for i, node in enumerate(self.light_nodes):
            if i >= len(lighting.lights):
                node.light.intensity = 0.0
                continue
            light = lighting.lights[i]
            node.light.intensity = float(light.intensity)
            node.light.color = np.asarray(light.color, np.float64)
            self.scene.set_pose(node, light_pose(light.azimuth, light.elevation))

    def close(self) -> None:
        if self._offscreen is not None:
            self._offscreen.delete()
            self._offscreen = None


def light_pose(azimuth: float, elevation: float) -> np.ndarray:
    """Pose of a directional light shining from (azimuth, elevation) towards the face (world space:
    azimuth 0 = from the camera on +z, +90 = from +x). pyrender lights shine along their -z axis."""
    az, el = np.radians([azimuth, elevation])
    z = np.array([np.sin(az) * np.cos(el), np.sin(el), np.cos(az) * np.cos(el)])
    x = np.cross([0.0, 1.0, 0.0], z)
    x = x / np.linalg.norm(x) if np.linalg.norm(x) > 1e-6 else np.array([1.0, 0.0, 0.0])
    y = np.cross(z, x)
    pose = np.eye(4)
    pose[:3, :3] = np.stack([x, y, z], axis=1)
    return pose


_PATCHED = False


def _single_sample_framebuffers() -> None:
    """pyrender draws into a 4x multisampled framebuffer and blits depth with GL_NEAREST, which gives
    the depth of one sub-sample, not of the pixel centre (a ~0.4 px shift). Render single-sampled so
    colour and depth are sampled exactly at pixel centres (and llvmpipe does a quarter of the work)."""
    global _PATCHED
    if _PATCHED:
        return
    import pyrender.renderer as prr
    from OpenGL import GL

    def storage(target, samples, fmt, width, height):  # samples = 0: an ordinary renderbuffer
        return GL.glRenderbufferStorageMultisample(target, 0, fmt, width, height)

    prr.glRenderbufferStorageMultisample = storage
    _PATCHED = True


# -- skin detail maps (per model, computed once) -----------------------------------------------------

def skin_maps(model: FaceModel, drawn: np.ndarray) -> dict[str, np.ndarray]:
    """Soft per-vertex weights in [0, 1] for lips, brows, cheeks, freckles and iris shading.

    Derived from the model's iBUG-68 markup in the frontal (x, y) projection of the neutral mesh."""
    v = model.neutral[drawn].astype(np.float64)
    n = len(drawn)
    lm = model.neutral[model.landmarks68].astype(np.float64)
    face_id = model.region_names.index("face")
    on_face = model.vertex_region[drawn] == face_id
    front = on_face & (v[:, 2] > lm[:, 2].min() - 2.0)
    xy = v[:, :2]

    def inside(points: np.ndarray, grow: float = 0.0) -> np.ndarray:
        points = points[:, :2]
        centre = points.mean(0)
        poly = Polygon(centre + (points - centre) * (1 + grow))
        return poly.contains_points(xy) & front

    lips = inside(lm[48:60], 0.05) & ~inside(lm[60:68], -0.05)
    lips = lips.astype(np.float32)
    # Brows: within a band around the brow polyline, fading at the ends.
    brows = np.zeros(n, np.float32)
    brow_core = np.full(n, 9.0, np.float32)
    for side in (lm[17:22], lm[22:27]):
        d = _distance_to_polyline(xy, side[:, :2] + np.array([0.0, 0.15]))
        band = np.clip(1.0 - (d - 0.25) / 0.25, 0, 1) * front
        brows = np.maximum(brows, band.astype(np.float32))
        brow_core = np.minimum(brow_core, (d / 0.35).astype(np.float32))
    cheeks = np.zeros(n, np.float32)
    for centre in ((lm[2] + lm[31]) / 2, (lm[14] + lm[35]) / 2):
        cheeks = np.maximum(cheeks, np.exp(-np.sum((xy - centre[:2]) ** 2, 1) / (2 * 1.8 ** 2)) * front)
    noise = np.random.default_rng(7).random(n).astype(np.float32)
    centre = lm[30, :2]
    freckles = (noise > 0.85) * np.exp(-np.sum((xy - centre) ** 2, 1) / (2 * 3.0 ** 2)) * front
    # Iris and pupil painted on the sclera's front cap (ICT's iris mesh sits inside the eyeball and is
    # hidden by it): radius in cm around the eyeball's front pole, looking straight ahead.
    iris = np.zeros(n, np.float32)
    iris_shade = np.ones(n, np.float32)
    for region in ("sclera_left", "sclera_right"):
        sel = model.vertex_region[drawn] == model.region_names.index(region)
        if sel.any():
            pts = v[sel]
            pole = pts[np.argmax(pts[:, 2])]
            r = np.linalg.norm(pts[:, :2] - pole[:2], axis=1)
            iris[sel] = np.clip((0.6 - r) / 0.05, 0, 1)
            iris_shade[sel] = np.where(r < 0.25, 0.04, 1.0 - 0.5 * np.clip((r - 0.45) / 0.15, 0, 1))
    return {"lips": lips, "brows": brows, "brow_core": brow_core, "cheeks": cheeks.astype(np.float32),
            "freckles": freckles.astype(np.float32), "iris": iris, "iris_shade": iris_shade}


def _distance_to_polyline(points: np.ndarray, line: np.ndarray) -> np.ndarray:
    best = np.full(len(points), np.inf)
    for a, b in zip(line[:-1], line[1:]):
        ab = b - a
        t = np.clip(((points - a) @ ab) / max(ab @ ab, 1e-12), 0, 1)
        best = np.minimum(best, np.linalg.norm(points - (a + t[:, None] * ab), axis=1))
    return best


# -- backgrounds -------------------------------------------------------------------------------------

def background_image(params: SceneParams, width: int, height: int, photos: Path | None,
                     hdris: Path | None) -> np.ndarray:
    """(H, W, 3) uint8 sRGB background for `params.background`."""
    bg = params.background
    c1 = np.asarray(bg.color, np.float32) * 255
    if bg.kind == "solid":
        return np.broadcast_to(c1.astype(np.uint8), (height, width, 3))
    rng = np.random.default_rng(bg.seed)
    if bg.kind == "gradient":
        c2 = np.asarray(bg.color2, np.float32) * 255
        a = np.radians(bg.angle)
        yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
        t = (xx - width / 2) * np.cos(a) + (yy - height / 2) * np.sin(a)
        t = (t - t.min()) / max(float(np.ptp(t)), 1e-6)
        return (c1 * (1 - t[..., None]) + c2 * t[..., None]).astype(np.uint8)
    if bg.kind == "noise":
        out = np.zeros((height, width, 3), np.float32)
        for cells, amp in ((4, 0.6), (16, 0.3), (64, 0.1)):  # a few octaves of smooth value noise
            grid = rng.random((cells, cells, 3)).astype(np.float32)
            out += amp * cv2.resize(grid, (width, height), interpolation=cv2.INTER_CUBIC)
        c2 = np.asarray(bg.color2, np.float32) * 255
        return np.clip(c1 + (c2 - c1) * out, 0, 255).astype(np.uint8)
    if bg.kind == "photo":
        if photos is None:
            raise FacegenError(f"sample {params.index} wants background photo {bg.photo!r} but no --backgrounds DIR was given")
        return _crop(_load_photo(str(photos / bg.photo)), rng, width, height)
    if bg.kind == "hdri":
        return _hdri_view(params, width, height, hdris)
    raise FacegenError(f"unknown background kind {bg.kind!r}")


@lru_cache(maxsize=32)
def _load_photo(path: str) -> np.ndarray:
    image = cv2.imread(path, cv2.IMREAD_COLOR)
    if image is None:
        raise FacegenError(f"cannot read background photo {path}")
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def _crop(image: np.ndarray, rng: np.random.Generator, width: int, height: int) -> np.ndarray:
    h, w = image.shape[:2]
    scale = rng.uniform(0.5, 1.0)
    cw, ch = max(int(w * scale), 2), max(int(h * scale), 2)
    x0, y0 = int(rng.integers(0, w - cw + 1)), int(rng.integers(0, h - ch + 1))
    return cv2.resize(image[y0:y0 + ch, x0:x0 + cw], (width, height), interpolation=cv2.INTER_AREA)


@lru_cache(maxsize=16)
def _load_hdri(path: str) -> np.ndarray:
    image = cv2.imread(path, cv2.IMREAD_UNCHANGED)
    if image is None:
        raise FacegenError(f"cannot read HDRI {path}")
    image = cv2.cvtColor(image[..., :3], cv2.COLOR_BGR2RGB).astype(np.float32)
    return cv2.resize(image, (1024, 512), interpolation=cv2.INTER_AREA)


def _hdri_view(params: SceneParams, width: int, height: int, hdris: Path | None) -> np.ndarray:
    """The part of the equirectangular HDRI behind the head (rotated), tone-mapped to sRGB."""
    from facegen.generator.sampling import bundled_hdri_dir

    folder = hdris or bundled_hdri_dir()
    name = params.lighting.hdri
    if folder is None or not name or not (Path(folder) / name).exists():
        raise FacegenError(f"sample {params.index}: HDRI {name!r} not found (pass --hdris DIR)")
    env = _load_hdri(str(Path(folder) / name))
    H, W = env.shape[:2]
    fov = 2 * np.arctan(18.0 / params.focal_mm)  # horizontal field of view
    span = max(int(W * fov / (2 * np.pi)), 8)
    centre = int((params.lighting.hdri_rotation / 360.0) * W) % W
    cols = (np.arange(centre - span // 2, centre + span // 2)) % W
    rows_span = max(int(span * height / width), 4)
    rows = np.clip(np.arange(H // 2 - rows_span // 2, H // 2 + rows_span // 2), 0, H - 1)
    view = env[np.ix_(rows, cols)] * params.lighting.hdri_strength
    view = view / (1.0 + view)  # Reinhard
    view = np.power(np.clip(view, 0, 1), 1 / 2.2)
    return (cv2.resize(view, (width, height), interpolation=cv2.INTER_LINEAR) * 255).astype(np.uint8)
