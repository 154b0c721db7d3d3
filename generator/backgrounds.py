"""Background photos and HDRI files: read by one piece of code for both renderers, and all checked
once when a job is set up, so a corrupt file is refused by name before anything is rendered (not
when a sample first draws it, possibly hours into a job)."""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

os.environ.setdefault("OPENCV_IO_ENABLE_OPENEXR", "1")  # OpenCV reads .exr only when asked to (read on first use)
import cv2  # noqa: E402

from facegen.errors import FacegenError  # noqa: E402


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
