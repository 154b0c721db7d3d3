"""The scene description every renderer shares: `SceneParams` (every random choice of one sample),
the posed mesh and camera built from it, and the renderer protocol.

SceneParams is plain data (numbers, short strings, small arrays). `to_dict`/`from_dict` round-trip it
through JSON, which is how a shard stores it, so any sample can be rendered again from its record.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Protocol, runtime_checkable

import cv2
import numpy as np

from facegen.camera import Camera, euler_to_matrix, intrinsics, look_at
from facegen.face_model import FaceModel


@dataclass
class Light:
    kind: str  # "directional" | "point" | "area"
    azimuth: float  # degrees, around the face: 0 = from the camera, +90 = from the subject's left (+x)
    elevation: float  # degrees above the horizon
    intensity: float  # renderer-neutral relative strength; 1.0 = a normal key light
    color: tuple[float, float, float] = (1.0, 1.0, 1.0)
    size: float = 0.0  # area-light edge / point-light radius, cm (0 = hard)


MAX_LIGHTS = 3  # lights one sample may have: both backends build this many once and reuse them


@dataclass
class Lighting:
    ambient: float = 0.3  # raster: ambient term; cycles: scales the world/HDRI strength
    lights: list[Light] = field(default_factory=list)  # at most MAX_LIGHTS
    hdri: str = ""  # HDRI name (file stem): Cycles' world light and the "hdri" backplate; "" = none
    hdri_rotation: float = 0.0  # degrees about the vertical axis
    hdri_strength: float = 1.0


@dataclass
class Background:
    """The image behind the head; generator/backgrounds.py draws it for both backends."""

    kind: str = "solid"  # "solid" | "gradient" | "noise" | "photo" | "hdri" (the panorama of lighting.hdri)
    color: tuple[float, float, float] = (0.5, 0.5, 0.5)  # sRGB in [0, 1]
    color2: tuple[float, float, float] = (0.2, 0.2, 0.2)  # gradient and noise: mixed with `color`
    angle: float = 0.0  # gradient direction, degrees: 0 = color on the left, 90 = color at the top
    photo: str = ""  # file name inside --backgrounds DIR for kind == "photo"
    seed: int = 0  # the noise field, and where the photo window is


@dataclass
class Appearance:
    skin_albedo: tuple[float, float, float] = (0.62, 0.45, 0.36)  # linear RGB base colour
    skin_roughness: float = 0.45
    iris_color: tuple[float, float, float] = (0.25, 0.15, 0.08)
    brow_color: tuple[float, float, float] = (0.08, 0.06, 0.05)
    brow_density: float = 0.8
    brow_thickness: float = 1.0
    lip_tint: float = 0.5
    redness: float = 0.3
    freckles: float = 0.0
    extra: dict = field(default_factory=dict)  # backend-specific appearance choices (stored, replayable)


@dataclass
class Hair:
    """Scalp hair, grown as strands by generator/hair.py (styles: hair.STYLES). Colour follows the
    Principled Hair BSDF's melanin model (the same colour in both backends: hair.strand_colours)."""

    style: str = "bald"  # a name of hair.STYLES
    strands: int = 0  # strands grown (sampling.yaml: hair.strands x the sampled density)
    length: float = 0.0  # cm, a strand's length at the crown (the style shapes it over the scalp)
    clumping: float = 0.0  # 0 = every strand on its own .. 1 = tips pulled into clumps
    curl: float = 0.0  # 0 = straight .. 1 = tight curls (waves in between)
    frizz: float = 0.0  # random bends growing towards the tip, 0 .. 1
    parting: float = 0.0  # where the parting runs: -1 = over the right eye, 0 = centre, +1 = left
    melanin: float = 0.5  # 0 = white/blond .. 1 = black
    melanin_redness: float = 0.1  # pheomelanin share: 0 = ash .. 1 = red
    grey: float = 0.0  # share of white strands
    seed: int = 0  # root positions and every per-strand jitter


@dataclass
class FacialHair:
    """Beard and moustache strands (generator/hair.py, `FACIAL_STYLES`), coloured like the scalp hair;
    brows are strands for everyone (their colour, density and thickness are in Appearance)."""

    style: str = "none"  # a name of hair.FACIAL_STYLES: none, stubble, moustache, goatee, full_beard, ...
    strands: int = 0  # beard / moustache strands grown over the style's whole area
    length: float = 0.0  # cm
    brow_strands: int = 0  # per brow (0: the painted brows only, as in records made before strands)
    brow_length: float = 0.8  # cm, an eyebrow hair
    seed: int = 0


@dataclass
class Clothing:
    """A garment over the neck and shoulders (generator/clothing.py, `CUTS`)."""

    cut: str = "none"  # a name of clothing.CUTS ("none": the bare bust of older records)
    color: tuple[float, float, float] = (0.2, 0.25, 0.35)  # linear RGB
    color2: tuple[float, float, float] = (0.8, 0.8, 0.8)  # the pattern's second colour
    pattern: str = "plain"  # plain | stripes | checks | melange
    pattern_scale: float = 1.0  # cm, stripe / check width
    seed: int = 0


@dataclass
class Eyewear:
    """Glasses fitted to the face (generator/eyewear.py, `FRAMES`)."""

    frame: str = "none"  # none | a name of eyewear.FRAMES (round, rectangular, cat_eye, browline, ...)
    lens: str = "clear"  # clear | tinted | sun: how the sampler chose lens_opacity
    lens_color: tuple[float, float, float] = (0.95, 0.95, 0.95)  # linear RGB the lens lets through
    lens_opacity: float = 0.02  # share of the light the lens stops; >= eyewear.OPAQUE hides what is behind
    frame_color: tuple[float, float, float] = (0.03, 0.03, 0.03)  # linear RGB
    metal: bool = False  # a metal frame (Cycles: metallic; raster: shinier)
    thickness: float = 0.25  # cm, the rims' tube diameter
    size: float = 1.5  # lens width / the eye's corner-to-corner width


@dataclass
class Facewear:
    """A face mask over the nose, mouth and chin (generator/facewear.py, `KINDS`), shaped on the
    sample's own face, so it follows the jaw and the expression."""

    kind: str = "none"  # none | surgical | cloth | respirator
    color: tuple[float, float, float] = (0.55, 0.7, 0.8)  # linear RGB
    color2: tuple[float, float, float] = (0.9, 0.9, 0.9)  # the pattern's second colour
    pattern: str = "plain"  # a name of clothing.PATTERNS
    pattern_scale: float = 1.0  # cm
    fit: float = 0.3  # cm the mask stands off the skin where it rests on it (a loose mask: more)
    top: float = 0.5  # its upper edge up the nose: 0 = the nose tip .. 1 = the bridge between the eyes
    seed: int = 0


@dataclass
class Headwear:
    """Something worn on the head (generator/headwear.py, `KINDS`), seated on the scalp over the hair."""

    kind: str = "none"  # none | cap | beanie | headband | brimmed_hat
    color: tuple[float, float, float] = (0.1, 0.1, 0.12)  # linear RGB
    color2: tuple[float, float, float] = (0.8, 0.8, 0.8)
    pattern: str = "plain"  # a name of clothing.PATTERNS
    pattern_scale: float = 1.0  # cm
    depth: float = 0.0  # cm lower on the forehead than the kind's usual seat (negative: higher)
    tilt: float = 0.0  # degrees tipped back (+: the front rides up) or forward (-)
    brim: float = 1.0  # the brim's reach, times the kind's usual (caps and brimmed hats)
    seed: int = 0


@dataclass
class Hand:
    """A hand in front of the face, maybe holding something (generator/hands.py, `POSES`, `OBJECTS`)."""

    pose: str = "none"  # none | chin | mouth | cheek | hold (holding `object` up to the face)
    side: int = 1  # +1: the subject's left hand (on the left of the face), -1: the right
    skin_color: tuple[float, float, float] = (0.62, 0.45, 0.36)  # linear RGB, near the face's skin_albedo
    size: float = 1.0  # times an adult hand (about 19 cm from wrist to middle fingertip)
    curl: float = 0.2  # how bent the fingers are: 0 straight .. 1 a fist
    spread: float = 5.0  # degrees between neighbouring fingers
    shift: tuple[float, float] = (0.0, 0.0)  # cm across and up the face from where the pose puts it
    object: str = "none"  # none | phone | cup | microphone (pose "hold" only)
    object_color: tuple[float, float, float] = (0.05, 0.05, 0.06)  # linear RGB


@dataclass
class SceneParams:
    index: int  # sample index within the job
    seed: int  # the job's global seed; the sample's RNG derives from (seed, index)
    identity: np.ndarray  # (K_id,) float32, N(0, 1) weights
    expression: np.ndarray  # (K_ex,) float32 in [0, 1], the final blendshape weights (gaze included)
    gaze: tuple[float, float] = (0.0, 0.0)  # eye yaw, pitch in degrees (folded into `expression`)
    head_rotation: tuple[float, float, float] = (0.0, 0.0, 0.0)  # yaw, pitch, roll, degrees
    head_translation: tuple[float, float, float] = (0.0, 0.0, 0.0)  # cm, world space
    focal_mm: float = 50.0  # 35 mm-equivalent focal length (36 mm sensor width)
    camera_distance: float = 60.0  # cm from the camera to the head pivot
    image_size: tuple[int, int] = (256, 256)  # width, height
    lighting: Lighting = field(default_factory=Lighting)
    background: Background = field(default_factory=Background)
    appearance: Appearance = field(default_factory=Appearance)
    # Absent from records made before hair and clothing: those load as bald and bare.
    hair: Hair = field(default_factory=Hair)
    facial_hair: FacialHair = field(default_factory=FacialHair)
    clothing: Clothing = field(default_factory=Clothing)
    eyewear: Eyewear = field(default_factory=Eyewear)  # absent from records made before glasses: none
    # Absent from records made before them: none.
    facewear: Facewear = field(default_factory=Facewear)
    headwear: Headwear = field(default_factory=Headwear)
    hand: Hand = field(default_factory=Hand)

    def to_dict(self) -> dict:
        """Plain JSON-ready data (what dataclasses.asdict gives, without its deep copies: it runs
        once per rendered sample)."""
        d = {f.name: _plain(getattr(self, f.name)) for f in fields(self) if f.name not in ("identity", "expression")}
        d["identity"] = np.asarray(self.identity, np.float32).tolist()
        d["expression"] = np.asarray(self.expression, np.float32).tolist()
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "SceneParams":
        d = dict(d)
        d["identity"] = np.asarray(d["identity"], np.float32)
        d["expression"] = np.asarray(d["expression"], np.float32)
        d["lighting"] = Lighting(**{**d["lighting"], "lights": [Light(**x) for x in d["lighting"]["lights"]]})
        d["background"] = Background(**d["background"])
        d["appearance"] = Appearance(**d["appearance"])
        for name, kind in (("hair", Hair), ("facial_hair", FacialHair), ("clothing", Clothing), ("eyewear", Eyewear),
                           ("facewear", Facewear), ("headwear", Headwear), ("hand", Hand)):
            d[name] = kind(**d.get(name, {}))
        for f in fields(cls):  # JSON turns tuples into lists
            if isinstance(d.get(f.name), list) and f.name not in ("identity", "expression"):
                d[f.name] = tuple(d[f.name])
        return cls(**d)


def _plain(value):
    if hasattr(value, "__dataclass_fields__"):
        return {f.name: _plain(getattr(value, f.name)) for f in fields(value)}
    if isinstance(value, (list, tuple)):
        return type(value)(_plain(v) for v in value)
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value


# The head rotates about this point (model space, cm): roughly between the ears, behind the eyes.
HEAD_PIVOT = np.array([0.0, 0.0, 0.0])


@dataclass(frozen=True, eq=False)
class PosedScene:
    """What a renderer draws: the mesh in world space and the camera, both from one SceneParams."""

    vertices: np.ndarray  # (V, 3) float32 world-space vertices (head pose applied)
    camera: Camera
    head_R: np.ndarray  # (3, 3) head rotation applied to the model
    head_t: np.ndarray  # (3,) world position of the head pivot


def make_camera(params: SceneParams) -> Camera:
    """Camera on +z at `camera_distance` from the pivot, looking at it, world +y up."""
    w, h = params.image_size
    focal_px = params.focal_mm / 36.0 * w
    eye = np.array([0.0, 0.0, params.camera_distance])
    R, t = look_at(eye, np.zeros(3))
    return Camera(K=intrinsics(focal_px, w, h), R=R, t=t, width=w, height=h)


def pose_scene(params: SceneParams, model: FaceModel) -> PosedScene:
    """Shape the mesh (identity + expression), apply the head pose and build the camera."""
    return pose_scenes([params], model)[0]


def pose_scenes(params: list[SceneParams], model: FaceModel) -> list[PosedScene]:
    """pose_scene for several samples, their meshes shaped in one batch (FaceModel.meshes: faster,
    and the same vertices as one at a time)."""
    shaped = model.meshes(np.stack([p.identity for p in params]), np.stack([p.expression for p in params]))
    return [_posed(p, v) for p, v in zip(params, shaped)]


def _posed(params: SceneParams, v: np.ndarray) -> PosedScene:
    R = euler_to_matrix(*params.head_rotation)
    t = HEAD_PIVOT + np.asarray(params.head_translation, np.float64)
    # world = R (v - pivot) + t as one 3x4 affine map; cv2.transform is ~15x faster than a numpy
    # (V, 3) @ (3, 3) product; both agree with a float64 product to float32 rounding (~2e-6 cm).
    affine = np.hstack([R, (t - R @ HEAD_PIVOT)[:, None]])
    world = cv2.transform(v.reshape(1, -1, 3), affine).reshape(-1, 3)
    return PosedScene(vertices=world, camera=make_camera(params), head_R=R, head_t=t)


@dataclass
class RenderResult:
    image: np.ndarray  # (H, W, 3) uint8 sRGB
    depth: np.ndarray  # (H, W) float32 camera-space z in cm; 0 where nothing was drawn
    mask: np.ndarray  # (H, W) bool, True on the face region (skin of the face area)
    # (H, W) uint8 classes (docs/segmentation.md): the labels' occluders come from it, whatever the
    # job stores; None only from a renderer that cannot tell classes apart
    segmentation: np.ndarray | None = None
    # (H, W) bool, the amodal face mask: the face proper (`mask`'s rule) as the head's own parts alone
    # draw it, with nothing the sample wears in front (hair, beard, glasses, garment: parts.dressing);
    # the head still hides itself (the nose over the far cheek). None unless the outputs ask for "amodal"
    amodal: np.ndarray | None = None


class Renderer(Protocol):
    """What a render worker calls. The optional ways of rendering are declared, not probed: a
    renderer with `supports_batch` has BatchRenderer's render_batch, one with `supports_async` has
    AsyncRenderer's submit/collect; the worker (generator/worker.py) chooses by these flags."""

    name: str
    version: str  # bump when output pixels change; stored in shards, part of the resume key
    supports_batch: bool
    supports_async: bool

    def render(self, params: SceneParams, scene: PosedScene) -> RenderResult: ...

    def close(self) -> None: ...


@runtime_checkable
class BatchRenderer(Renderer, Protocol):
    def render_batch(self, items: list[tuple[SceneParams, PosedScene]]) -> list[RenderResult]:
        """render() of each (params, scene), in order, the same results as one at a time."""


@runtime_checkable
class AsyncRenderer(Renderer, Protocol):
    def submit(self, params: SceneParams, scene: PosedScene) -> None:
        """Start rendering one sample and return before it is done."""

    def collect(self) -> RenderResult:
        """The result of the sample submitted last (one at a time)."""


@dataclass(frozen=True)
class Backend:
    """A renderer by name: where its class lives, its version and the package it needs. Readable
    without importing the backend: the render job's own process never imports bpy or OpenGL."""

    target: str  # "module:Class"; the class takes (model: FaceModel, **options), see create_renderer
    version: str  # bump when output pixels change: stored in shards, part of the resume key
    requires: str  # top-level package the backend imports


# Version history. raster 2: colours in mesh.vert; 3: identity modes summed block by block
# (FaceModel.meshes: vertices differ by ~1e-7 cm), lights in a fixed order; 4: one backplate for both
# backends (generator/backgrounds.py, docs/rendering.md "Backgrounds": colours rounded, 5-octave
# two-colour noise, photo windows keeping the aspect ratio, the HDRI seen through the camera at the
# world's exposure). cycles 2: composited backplate, new presets and hair/occlusion materials;
# 3: float32 posing; 4: identity modes summed block by block; 5: a fixed pool of lights, unused ones
# dark (pixels no longer depend on what the process rendered before); 6: the shared backplate
# (colours mixed in sRGB, gradients span the frame, noise made at 128 px, random photo windows, the
# --hdris folder searched before the bundled HDRIs, HDRI exposure from the file as OpenCV reads it).
# raster 5, cycles 7: what the sample wears (parts.dressing: scalp hair, beards, strand brows, garments).
# raster 6, cycles 8: the labels say what hides each point (occluded_by; pixels unchanged).
# raster 7, cycles 9: glasses (generator/eyewear.py; the sampling config's eyewear section).
# raster 8, cycles 10: face masks, headwear, hands and what they hold (generator/facewear.py,
# headwear.py, hands.py; the sampling config's facewear, headwear and hands sections).
# raster 9, cycles 11: lenses are closed 0.2 cm solids, their back surface where the lens was (the
# front surface and the rims 0.2 and 0.1 cm further out); Cycles refracts through them (Ray Portal
# BSDFs), allows two more transparent bounces in the fast and default presets and no Russian
# roulette on a path's first two transparent bounces (docs/rendering.md "Glasses").
RENDERERS = {
    "raster": Backend("facegen.generator.raster:RasterRenderer", version="9", requires="pyrender"),
    "cycles": Backend("facegen.generator.cycles:CyclesRenderer", version="11", requires="bpy"),
}


def check_renderer(name: str) -> Backend:
    """The backend called `name` if it can load here (checked without importing it)."""
    import importlib.util

    from facegen.errors import FacegenError

    if name not in RENDERERS:
        raise FacegenError(f"--renderer {name!r}: choose one of {', '.join(RENDERERS)}")
    backend = RENDERERS[name]
    if importlib.util.find_spec(backend.requires) is None:
        raise FacegenError(f"renderer {name!r} needs the {backend.requires} package, which is not installed here; "
                           "install facegen's dependencies (make install) or pick another --renderer")
    return backend


def create_renderer(name: str, model: FaceModel, **options) -> Renderer:
    """The single factory for renderers (imports the backend lazily: bpy and OpenGL are heavy).
    options: outputs=("rgb", "depth", "segmentation"), backgrounds=Path|None, hdris=Path|None,
    threads=0 (CPU threads; 0 = every CPU), device="auto"; a backend ignores what it does not use."""
    import importlib

    module_name, cls_name = check_renderer(name).target.split(":")
    return getattr(importlib.import_module(module_name), cls_name)(model, **options)
