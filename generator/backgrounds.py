"""Backgrounds, one implementation for both renderers: the backplate image behind the head
(`backplate`), the HDRI files and their exposure, and the background photos. Photos and HDRIs are
read here and all checked once when a job is set up, so a corrupt file is refused by name before
anything is rendered (not when a sample first draws it, possibly hours into a job).

The backplate is (H, W, 3) uint8 sRGB, the pixels of the finished image where no part of the head is:
the raster backend copies it where nothing was drawn; Cycles decodes it to linear light and puts its
transparent film over it (so where the film is empty the image is the backplate, byte for byte). The
choices, where the two backends used to differ (docs/rendering.md, "Backgrounds"):
- colours are mixed in sRGB, through a 256-entry table per channel (cheap, and exact to the byte);
- gradient: `color` to `color2` across the whole frame whatever the angle (0 deg: left to right,
  90 deg: top to bottom);
- noise: one fractal value-noise field (5 octaves) between `color` and `color2`: a mix of the two
  sampled colours, never a colour the sampler did not draw (the raster backend's per-channel noise did);
- photo: a random window with the frame's aspect ratio (a photo is never stretched), 50-100 % of
  the largest such window, placed at random by `Background.seed` (varied crops of one photo);
- hdri: what the camera sees of the panorama, by the same equirectangular lookup as Cycles' world
  (the sky behind the head is the one that lights it), at the exposure of Cycles' world light.
"""

from __future__ import annotations

import importlib.util
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

os.environ.setdefault("OPENCV_IO_ENABLE_OPENEXR", "1")  # OpenCV reads .exr only when asked to (read on first use)
import cv2  # noqa: E402

from facegen.errors import FacegenError  # noqa: E402

if TYPE_CHECKING:
    from facegen.camera import Camera
    from facegen.generator.scene import Lighting, SceneParams

HDRI_SUFFIXES = (".exr", ".hdr")


_REDUCED = {1: cv2.IMREAD_COLOR, 2: cv2.IMREAD_REDUCED_COLOR_2, 4: cv2.IMREAD_REDUCED_COLOR_4,
            8: cv2.IMREAD_REDUCED_COLOR_8}


def read_photo(path: Path | str, reduce: int = 1) -> np.ndarray:
    """(H, W, 3) uint8 RGB of a background photo; reduce 2, 4 or 8 decodes it that much smaller
    (JPEGs decode several times faster: enough to check a large folder at set-up)."""
    image = cv2.imread(str(path), _REDUCED[reduce])
    if image is None or image.size == 0:
        raise FacegenError(f"background photo {path}: not a readable image (damaged, empty or of an unknown "
                           "format); remove it from the --backgrounds folder or replace it")
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def read_hdri(path: Path | str) -> np.ndarray:
    """(H, W, 3) float32 linear RGB of an equirectangular HDRI (.exr or .hdr)."""
    image = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if image is None or image.ndim != 3 or image.shape[2] < 3 or image.dtype.kind != "f":
        raise FacegenError(f"HDRI {path}: not a readable float .exr/.hdr panorama (damaged or of another kind); "
                           "remove it from the --hdris folder or replace it")
    rgb = cv2.cvtColor(np.ascontiguousarray(image[..., :3]), cv2.COLOR_BGR2RGB).astype(np.float32)
    if not np.isfinite(rgb).all():
        raise FacegenError(f"HDRI {path}: holds NaN or infinite pixels; remove it from the --hdris folder or fix it")
    return rgb


def check_photos(folder: Path | str, names) -> None:
    """Decode every background photo (at 1/8 size), a few at a time; raise the first bad file's error."""
    _check([Path(folder) / name for name in names], lambda path: read_photo(path, reduce=8))


def check_hdris(paths) -> None:
    """Read every HDRI file; raise the first bad file's error."""
    _check([Path(p) for p in paths], read_hdri)


def _check(paths: list[Path], read) -> None:
    with ThreadPoolExecutor(max_workers=min(4, os.cpu_count() or 1)) as pool:
        for _ in pool.map(read, paths):  # re-raises the first error, in file order
            pass


# -- HDRI files: one search order, one loader, one exposure ------------------------------------------

def bundled_hdri_dir() -> Path | None:
    """bpy's bundled studio-light HDRIs (`bpy/<ver>/datafiles/studiolights/world`), found without
    importing bpy (importing it costs seconds and a Blender context)."""
    spec = importlib.util.find_spec("bpy")
    if spec is None or not spec.submodule_search_locations:
        return None
    for root in spec.submodule_search_locations:
        found = sorted(Path(root).glob("*/datafiles/studiolights/world"))
        if found:
            return found[-1]
    return None


@lru_cache(maxsize=256)
def find_hdri(name: str, hdris: Path | str | None) -> Path:
    """The file of HDRI `name` (a file stem, as `Lighting.hdri` stores it): NAME.exr or NAME.hdr in
    the --hdris folder first, then in Blender's bundled studio lights. Looked up once per process
    (a lookup stats up to four paths)."""
    for folder in (hdris, bundled_hdri_dir()):
        for suffix in HDRI_SUFFIXES:
            if folder is not None and (Path(folder) / (name + suffix)).exists():
                return Path(folder) / (name + suffix)
    raise FacegenError(f"HDRI {name!r} not found in --hdris {hdris} nor in Blender's bundled studio lights "
                       f"({bundled_hdri_dir()}); pass --hdris DIR holding {name}.exr or {name}.hdr")


HDRI_MAX_WIDTH = 2048  # panoramas are kept at most this wide: ~2 pixels per degree, 25 MB as float32
HDRI_CACHE_SIZE = 8  # panoramas kept in memory per process (Blender's bundled set is 8)
HDRI_MEAN = 0.3  # mean radiance every HDRI is scaled to at hdri_strength 1 and ambient 0.3


@dataclass(frozen=True, eq=False)
class Panorama:
    pixels: np.ndarray  # (H, W, 3) float32 linear RGB, equirectangular, top row = up
    mean: float  # mean radiance of the file (before any downsizing)


@lru_cache(maxsize=HDRI_CACHE_SIZE)
def load_hdri(path: Path | str) -> Panorama:
    """An HDRI for the backplate and its mean radiance (for the exposure)."""
    image = read_hdri(path)
    mean = max(float(image.mean(dtype=np.float64)), 1e-3)
    h, w = image.shape[:2]
    if w > HDRI_MAX_WIDTH:
        image = cv2.resize(image, (HDRI_MAX_WIDTH, HDRI_MAX_WIDTH * h // w), interpolation=cv2.INTER_AREA)
    return Panorama(image, mean)


def preload_hdris(hdris: Path | str | None) -> None:
    """Load the first HDRI_CACHE_SIZE HDRIs of the folder (default: the bundled ones) with the rest of
    a renderer's set-up: one costs ~30 ms, which would otherwise land on the first samples drawing it."""
    folder = Path(hdris) if hdris else bundled_hdri_dir()
    if folder is None or not folder.is_dir():
        return
    for path in sorted(p for p in folder.iterdir() if p.suffix.lower() in HDRI_SUFFIXES)[:HDRI_CACHE_SIZE]:
        load_hdri(path)


def hdri_exposure(lighting: Lighting, mean: float) -> float:
    """Scale of an HDRI's radiance, for Cycles' world light and for the backplate alike: every
    panorama brought to a similar exposure (mean HDRI_MEAN) at hdri_strength 1 and ambient 0.3."""
    return lighting.hdri_strength * lighting.ambient / 0.3 * HDRI_MEAN / mean


def hdri_view(env: np.ndarray, camera: Camera, rotation_deg: float) -> np.ndarray:
    """(H, W, 3) float32: what the camera sees of an equirectangular panorama (top row up), by the
    lookup of Cycles' Environment texture: pixel ray -> world direction in Blender's axes (x, -z, y of
    the model's: blender_util.MODEL_TO_BLENDER) -> rotated by `rotation_deg` about the vertical ->
    (u, v) on the panorama."""
    w, h = camera.width, camera.height
    # World direction of the ray through pixel (u, v): R^T K^-1 (u, v, 1), affine in u and v, so each
    # component is an outer sum of a row and a column term.
    m = (camera.R.T @ np.linalg.inv(camera.K)).astype(np.float32)
    u, v = np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32)
    x, y, z = ((m[i, 0] * u)[None, :] + (m[i, 1] * v + m[i, 2])[:, None] for i in range(3))
    bx, by, bz = x, -z, y  # Blender's axes
    # A rotation about Blender's z adds to the azimuth, so it only shifts u on the panorama.
    eu = (np.arctan2(by, bx) + np.float32(np.radians(rotation_deg))) * np.float32(-0.5 / np.pi) + np.float32(0.5)
    ev = np.arctan2(bz, np.sqrt(bx * bx + by * by)) * np.float32(1 / np.pi) + np.float32(0.5)  # 5x np.hypot's speed
    H, W = env.shape[:2]
    mx = eu * W - 0.5  # any u: BORDER_WRAP wraps it around the panorama
    my = (1.0 - ev) * H - 0.5
    return cv2.remap(env, mx, my.astype(np.float32), cv2.INTER_LINEAR, borderMode=cv2.BORDER_WRAP)


# -- colour ---------------------------------------------------------------------------------------------

_DECODE = np.array([c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4
                    for c in np.arange(256) / 255.0], np.float32)


def srgb_decode(srgb: np.ndarray) -> np.ndarray:
    """uint8 sRGB -> float32 linear RGB (a table: exact, and srgb_encode gives the bytes back)."""
    return _DECODE[srgb]


def srgb_encode(linear: np.ndarray) -> np.ndarray:
    """Linear RGB -> sRGB uint8, clipped to [0, 1] first (Blender's "Standard" view transform)."""
    x = np.clip(linear, 0.0, 1.0)
    s = np.where(x <= 0.0031308, 12.92 * x, 1.055 * np.power(x, 1 / 2.4) - 0.055)
    return (s * 255.0 + 0.5).astype(np.uint8)


def _srgb8(color) -> np.ndarray:
    """(3,) uint8 of an sRGB colour in [0, 1]."""
    return np.rint(np.clip(np.asarray(color, np.float64), 0.0, 1.0) * 255).astype(np.uint8)


def _mix(color, color2, t: np.ndarray) -> np.ndarray:
    """(H, W, 3) uint8: sRGB `color` (t = 0) to `color2` (t = 1), mixed in sRGB (as colour pickers
    and CSS gradients do), t rounded to 1/255: a step of t moves a channel by at most one level, so
    a 256-entry table per channel gives every byte (cv2.LUT, far cheaper than per-pixel arithmetic)."""
    s = np.arange(256, dtype=np.float32)[:, None] / np.float32(255)
    c1, c2 = _srgb8(color).astype(np.float32), _srgb8(color2).astype(np.float32)
    table = np.ascontiguousarray(np.rint(c1 * (1 - s) + c2 * s).astype(np.uint8).T)  # (3, 256)
    index = cv2.convertScaleAbs(t, alpha=255)  # t in [0, 1] -> rounded uint8
    return cv2.merge([cv2.LUT(index, channel) for channel in table])


# -- the backplate ----------------------------------------------------------------------------------------

def backplate(params: SceneParams, camera: Camera, photos: Path | None, hdris: Path | None) -> np.ndarray:
    """(H, W, 3) uint8 sRGB: what `camera` sees behind the head for `params.background` (the module
    docstring says how each kind is drawn). `photos` is the --backgrounds folder, `hdris` the --hdris one."""
    bg = params.background
    w, h = camera.width, camera.height
    if bg.kind == "solid":
        return cv2.merge([np.full((h, w), c, np.uint8) for c in _srgb8(bg.color)])  # 40x faster than broadcasting
    if bg.kind == "gradient":
        return _mix(bg.color, bg.color2, _ramp(bg.angle, w, h))
    if bg.kind == "noise":
        # A smooth field: made at most NOISE_SIZE large and upsampled once (in sRGB the upsampled
        # colours still mix the two).
        scale = min(1.0, NOISE_SIZE / max(w, h))
        sw, sh = max(round(w * scale), 1), max(round(h * scale), 1)
        small = _mix(bg.color, bg.color2, _value_noise(bg.seed, w, h, sw, sh))
        return small if (sw, sh) == (w, h) else cv2.resize(small, (w, h), interpolation=cv2.INTER_LINEAR)
    if bg.kind == "photo":
        if photos is None:
            raise FacegenError(f"sample {params.index} wants background photo {bg.photo!r} but no --backgrounds DIR "
                               "was given")
        return photo_window(_load_photo(str(Path(photos) / bg.photo)), np.random.default_rng(bg.seed), w, h)
    if bg.kind == "hdri":
        L = params.lighting
        if not L.hdri:
            raise FacegenError(f"sample {params.index}: background kind 'hdri' but no HDRI named (lighting.hdri)")
        env = load_hdri(find_hdri(L.hdri, hdris))
        # Looked up at every pixel, as Cycles looks up its world: computed smaller and upsampled, it
        # was visibly blurrier than Cycles' own render of the world (test_cycles.py).
        return srgb_encode(hdri_view(env.pixels, camera, L.hdri_rotation) * np.float32(hdri_exposure(L, env.mean)))
    raise FacegenError(f"unknown background kind {bg.kind!r}; use solid, gradient, noise, photo or hdri")


def _ramp(angle: float, w: int, h: int) -> np.ndarray:
    """(H, W) float32 from 0 at one corner to 1 at the opposite one, along `angle` (degrees; 0 = left
    to right, 90 = top to bottom): an outer sum of two 1-D ramps, no per-pixel grid needed."""
    a = np.radians(angle)
    tx = (np.arange(w, dtype=np.float32) - np.float32((w - 1) / 2)) * np.float32(np.cos(a))
    ty = (np.arange(h, dtype=np.float32) - np.float32((h - 1) / 2)) * np.float32(np.sin(a))
    lo, hi = tx.min() + ty.min(), tx.max() + ty.max()
    return (ty[:, None] + (tx[None, :] - lo)) * np.float32(1.0 / max(float(hi - lo), 1e-6))


NOISE_SIZE = 128  # noise backplates are made at most this large (longer side) and upsampled


def _value_noise(seed: int, w: int, h: int, sw: int, sh: int) -> np.ndarray:
    """(sh, sw) float32 in [0, 1]: smooth fractal value noise for a w x h frame, made at sw x sh
    (5 octaves of 4 to 64 cells across the longer side, halving amplitudes, each upsampled
    bicubically), contrast raised by a smoothstep."""
    rng = np.random.default_rng(seed)
    n = np.zeros((sh, sw), np.float32)
    amp, total = 1.0, 0.0
    for cells in (4, 8, 16, 32, 64):
        grid = rng.random((cells * h // max(w, h) + 2, cells * w // max(w, h) + 2), dtype=np.float32)
        n += np.float32(amp) * cv2.resize(grid, (sw, sh), interpolation=cv2.INTER_CUBIC)
        total += amp
        amp *= 0.5
    t = np.clip((n * np.float32(1 / total) - np.float32(0.35)) * np.float32(1 / 0.3), 0.0, 1.0)
    return t * t * (3 - 2 * t)


@lru_cache(maxsize=32)
def _load_photo(path: str) -> np.ndarray:
    return read_photo(path)


def photo_window(photo: np.ndarray, rng: np.random.Generator, w: int, h: int) -> np.ndarray:
    """A random window of the photo with the frame's aspect ratio, 50-100 % of the largest such
    window, resized to (w, h)."""
    ph, pw = photo.shape[:2]
    scale = rng.uniform(0.5, 1.0)
    full_w = min(pw, ph * w / h)  # the largest window of aspect w:h
    cw = min(max(int(round(full_w * scale)), 1), pw)
    ch = min(max(int(round(cw * h / w)), 1), ph)
    x0, y0 = int(rng.integers(0, pw - cw + 1)), int(rng.integers(0, ph - ch + 1))
    return cv2.resize(photo[y0:y0 + ch, x0:x0 + cw], (w, h), interpolation=cv2.INTER_AREA)
