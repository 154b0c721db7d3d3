"""Composable transforms on samples: geometric pieces build one affine matrix, photometric pieces edit pixels.

A sample is a dict: `image` (H, W, 3|1) uint8, `landmarks` (L, 2) float32 in the project's pixel convention
(the centre of the top-left pixel is (0, 0); docs/shard-format.md), optional `visibility` (L,), optional
`box` (x0, y0, x1, y1) a face box to crop from (else the landmark box is used).

Geometric transforms (FaceCrop, RandomAffine, RandomFlip) only compose `sample["matrix"]` (3x3, original
image -> output pixels) and set `sample["size"]`; `Warp` then applies it once with cv2.warpAffine and maps
the labels with the same matrix. With pixel centres at integer coordinates cv2.warpAffine's convention
is exactly `dst(M @ p) = src(p)`, so labels need no half-pixel correction; the half pixel enters only in
the crop's scale (output pixel u spans [u - 0.5, u + 0.5]). Photometric transforms run after the warp on the
small crop, which is what keeps the loader fast.

Every transform is `t(sample, rng) -> sample` with `rng` a numpy Generator (determinism lives in the caller).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable, Sequence

import cv2
import numpy as np

Sample = dict
Transform = Callable[[Sample, np.random.Generator], Sample]


# -- matrices ----------------------------------------------------------------------------------------

def crop_matrix(center: Sequence[float], side: float, size: int) -> np.ndarray:
    """3x3 map from image pixels to a size x size crop of the square (side px) centred at `center`.

    The square's edges map to the crop's edges (-0.5 and size - 0.5), so pixel centres stay consistent."""
    s = size / float(side)
    cx, cy = center
    # u + 0.5 = (x - (cx - side/2)) * s
    return np.array([[s, 0, (side / 2 - cx) * s - 0.5],
                     [0, s, (side / 2 - cy) * s - 0.5],
                     [0, 0, 1]], np.float64)


def about_center(size: int, angle_deg: float = 0.0, scale: float = 1.0, flip: bool = False,
                 shift: Sequence[float] = (0.0, 0.0)) -> np.ndarray:
    """3x3 map of a size x size image onto itself: flip, scale and rotate about the centre, then shift (px)."""
    c = (size - 1) / 2.0  # the image centre in pixel-centre coordinates
    a = math.radians(angle_deg)
    f = -1.0 if flip else 1.0
    r00, r01 = math.cos(a) * scale * f, -math.sin(a) * scale
    r10, r11 = math.sin(a) * scale * f, math.cos(a) * scale
    # Scalar arithmetic: this runs per sample in the loader, where small numpy calls add up.
    return np.array([[r00, r01, c + float(shift[0]) - (r00 + r01) * c],
                     [r10, r11, c + float(shift[1]) - (r10 + r11) * c],
                     [0.0, 0.0, 1.0]])


def apply_matrix(points: np.ndarray, matrix: np.ndarray) -> np.ndarray:
    """Map (..., 2) points with a 3x3 (or 2x3) affine matrix."""
    m = np.asarray(matrix, np.float64)
    p = np.asarray(points, np.float64)
    return (p @ m[:2, :2].T + m[:2, 2]).astype(np.float32)


def invert(matrix: np.ndarray) -> np.ndarray:
    m = np.eye(3)
    m[:2] = np.asarray(matrix, np.float64)[:2]
    return np.linalg.inv(m)


def landmark_box(points: np.ndarray) -> np.ndarray:
    """(x0, y0, x1, y1) of finite points."""
    p = np.asarray(points, np.float64)
    p = p[np.isfinite(p).all(1)]
    return np.concatenate([p.min(0), p.max(0)])


# -- geometric -----------------------------------------------------------------------------------------

@dataclass
class FaceCrop:
    """Square crop around the face box (sample['box'] if present, else the landmark box), side = scale x
    the box's longer side; starts the matrix. `jitter` moves the centre by up to that fraction of the side."""
    size: int = 256
    scale: float = 1.25
    jitter: float = 0.0

    def __call__(self, sample: Sample, rng: np.random.Generator) -> Sample:
        box = sample.get("box")
        box = landmark_box(sample["landmarks"]) if box is None else np.asarray(box, np.float64)
        center = np.array([(box[0] + box[2]) / 2, (box[1] + box[3]) / 2])
        side = max(box[2] - box[0], box[3] - box[1], 1.0) * self.scale
        if self.jitter:
            center = center + rng.uniform(-self.jitter, self.jitter, 2) * side
        crop = crop_matrix(center, side, self.size)
        sample["matrix"] = crop @ sample["matrix"] if "matrix" in sample else crop
        sample["size"] = self.size
        return sample


@dataclass
class RandomAffine:
    """Random rotation (deg), scale factor range and translation (fraction of the output) about the centre."""
    rotation: float = 30.0
    scale: tuple[float, float] = (0.85, 1.15)
    translate: float = 0.05
    p: float = 1.0

    def __call__(self, sample: Sample, rng: np.random.Generator) -> Sample:
        if rng.random() >= self.p:
            return sample
        size = sample["size"]
        m = about_center(size, angle_deg=rng.uniform(-self.rotation, self.rotation),
                         scale=rng.uniform(*self.scale), shift=rng.uniform(-self.translate, self.translate, 2) * size)
        sample["matrix"] = m @ sample["matrix"]
        return sample


@dataclass
class RandomFlip:
    """Horizontal flip with the spec's flip map (point i takes partner flip_map[i]'s label)."""
    flip_map: np.ndarray
    p: float = 0.5

    def __call__(self, sample: Sample, rng: np.random.Generator) -> Sample:
        if rng.random() >= self.p:
            return sample
        fm = np.asarray(self.flip_map)
        sample["matrix"] = about_center(sample["size"], flip=True) @ sample["matrix"]
        sample["landmarks"] = np.asarray(sample["landmarks"])[fm]
        for key in ("visibility", "occluded_by"):
            if key in sample:
                sample[key] = np.asarray(sample[key])[fm]
        sample["flipped"] = not sample.get("flipped", False)
        return sample


@dataclass
class Warp:
    """Apply the composed matrix once: image via cv2.warpAffine (bilinear, black border), labels exactly."""
    border: int = cv2.BORDER_CONSTANT

    def __call__(self, sample: Sample, rng: np.random.Generator | None = None) -> Sample:
        m = sample["matrix"] if "matrix" in sample else np.eye(3)
        size = sample.get("size") or sample["image"].shape[1]
        image = cv2.warpAffine(sample["image"], m[:2], (size, size), flags=cv2.INTER_LINEAR, borderMode=self.border)
        if image.ndim == 2:
            image = image[:, :, None]
        sample["image"] = image
        sample["landmarks"] = apply_matrix(sample["landmarks"], m)
        return sample


# -- photometric (run on the crop) ---------------------------------------------------------------------------

@dataclass
class ColorJitter:
    """Brightness, contrast and saturation factors in 1 +- the given ranges, applied together as one 3x4
    colour matrix (cv2.transform on uint8, saturating): a fifth of the cost of doing them one by one."""
    brightness: float = 0.3
    contrast: float = 0.3
    saturation: float = 0.3
    p: float = 0.8

    def __call__(self, sample: Sample, rng: np.random.Generator) -> Sample:
        if rng.random() >= self.p:
            return sample
        img = sample["image"]
        b = 1 + rng.uniform(-self.brightness, self.brightness)
        c = 1 + rng.uniform(-self.contrast, self.contrast)
        s = 1 + rng.uniform(-self.saturation, self.saturation)
        channels = img.shape[-1] if img.ndim == 3 else 1
        if channels == 3:  # saturation: blend with the luminance (BT.601 weights, as cv2's RGB2GRAY)
            saturate = s * np.eye(3) + (1 - s) * np.tile([0.299, 0.587, 0.114], (3, 1))
        else:
            saturate = np.eye(channels)
        mean = float(np.mean(cv2.mean(img)[:channels]))  # contrast pivots on the mean level
        # x' = b * (c * (S x - mean) + mean), the mean of S x being the mean of x (S keeps grey levels)
        matrix = np.hstack([b * c * saturate, np.full((channels, 1), b * (1 - c) * mean)])
        sample["image"] = cv2.transform(img, matrix).reshape(img.shape)
        return sample


@dataclass
class GaussianBlur:
    sigma: tuple[float, float] = (0.3, 1.5)
    p: float = 0.2

    def __call__(self, sample: Sample, rng: np.random.Generator) -> Sample:
        if rng.random() < self.p:
            img = cv2.GaussianBlur(sample["image"], (0, 0), rng.uniform(*self.sigma))
            sample["image"] = img.reshape(sample["image"].shape)
        return sample


@dataclass
class GaussianNoise:
    """Additive Gaussian pixel noise with a random standard deviation (grey levels).

    The noise is a random window of a per-process bank of 2^21 N(0, 1) draws (a different offset each
    time, so neighbouring samples get unrelated noise): drawing 200k fresh normals costs ~0.8 ms per
    256 px image, a third of the loader's budget per sample; a window costs ~0.15 ms."""
    std: tuple[float, float] = (2.0, 10.0)
    p: float = 0.2
    bank_size: int = 1 << 21

    def __call__(self, sample: Sample, rng: np.random.Generator) -> Sample:
        if rng.random() < self.p:
            img = sample["image"]
            bank = self._bank(rng, img.size)
            start = int(rng.integers(0, len(bank) - img.size + 1))
            noise = bank[start:start + img.size].reshape(img.shape)
            sample["image"] = cv2.addWeighted(img, 1.0, noise, float(rng.uniform(*self.std)), 0.0,
                                              dtype=cv2.CV_8U).reshape(img.shape)
        return sample

    def _bank(self, rng: np.random.Generator, min_size: int) -> np.ndarray:
        bank = self.__dict__.get("_noise")
        if bank is None or len(bank) < min_size:  # first use in this process (drawn from its rng)
            bank = rng.standard_normal(max(self.bank_size, 2 * min_size), np.float32)
            self.__dict__["_noise"] = bank
        return bank

    def __getstate__(self) -> dict:  # workers draw their own bank
        return {k: v for k, v in self.__dict__.items() if k != "_noise"}


@dataclass
class JpegCompression:
    quality: tuple[int, int] = (30, 90)
    p: float = 0.2

    def __call__(self, sample: Sample, rng: np.random.Generator) -> Sample:
        if rng.random() < self.p:
            img = sample["image"]
            ok, buf = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, int(rng.integers(*self.quality))])
            if ok:
                sample["image"] = cv2.imdecode(buf, cv2.IMREAD_UNCHANGED).reshape(img.shape)
        return sample


@dataclass
class Cutout:
    """Occlude a random rectangle (side a fraction of the crop) with a flat random colour."""
    size: tuple[float, float] = (0.1, 0.4)
    p: float = 0.3

    def __call__(self, sample: Sample, rng: np.random.Generator) -> Sample:
        if rng.random() >= self.p:
            return sample
        img = sample["image"].copy()
        h, w = img.shape[:2]
        ch, cw = (np.array(rng.uniform(*self.size, 2)) * [h, w]).astype(int)
        y, x = int(rng.integers(0, max(h - ch, 1))), int(rng.integers(0, max(w - cw, 1)))
        img[y:y + ch, x:x + cw] = rng.integers(0, 256, img.shape[-1], dtype=np.uint8)
        sample["image"] = img
        return sample


@dataclass
class ToGray:
    """Single-channel luminance (the ResNet baseline's 128 px grayscale input)."""

    def __call__(self, sample: Sample, rng: np.random.Generator | None = None) -> Sample:
        img = sample["image"]
        if img.shape[-1] == 3:
            sample["image"] = cv2.cvtColor(img, cv2.COLOR_RGB2GRAY)[:, :, None]
        return sample


@dataclass
class Compose:
    transforms: list = field(default_factory=list)

    def __call__(self, sample: Sample, rng: np.random.Generator | None = None) -> Sample:
        rng = rng if rng is not None else np.random.default_rng()
        for t in self.transforms:
            sample = t(sample, rng)
        return sample


def build_transforms(size: int = 256, scale: float = 1.25, train: bool = False, flip_map: np.ndarray | None = None,
                     gray: bool = False, augment: str = "default") -> Compose:
    """The standard pipelines: eval = crop + warp; train adds affine, flip and photometric augmentation."""
    ts: list = [FaceCrop(size, scale, jitter=0.05 if train and augment != "none" else 0.0)]
    if train and augment != "none":
        ts.append(RandomAffine())
        if flip_map is not None:
            ts.append(RandomFlip(flip_map))
    ts.append(Warp())
    if train and augment != "none":
        ts += [ColorJitter(), GaussianBlur(), GaussianNoise(), JpegCompression(), Cutout()]
    if gray:
        ts.append(ToGray())
    return Compose(ts)
