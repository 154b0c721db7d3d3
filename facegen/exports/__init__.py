"""Rendered shards in the layouts other tools read: `export(SHARDS, OUT, "coco" | "facesynthetics")`.

One module per format (`coco.py`, `facesynthetics.py`), each with `write(source, out, bar) -> summary` and a
reader for its own files; this module opens the shards, picks the points and runs one of them. Nothing here
changes the shard format: an export is a copy of what the shards hold, in another layout
(docs/shard-format.md, "Exports").
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from facegen.errors import FacegenError
from facegen.shards import ShardSet, open_shards

# format name -> module holding `write` and `DESCRIPTION`
FORMATS = {"coco": "facegen.exports.coco", "facesynthetics": "facegen.exports.facesynthetics"}
POINTS = ("spec", "ibug68")

# iBUG-68's contours as pairs of 0-based point indices: jaw, brows, nose bridge and base, eyes, outer and
# inner lips (closed loops for eyes and lips). COCO's `skeleton` holds them 1-based.
IBUG68_LINES = ([(i, i + 1) for r in ((0, 16), (17, 21), (22, 26), (27, 30), (31, 35)) for i in range(r[0], r[1])]
                + [(a, b) for lo, hi in ((36, 41), (42, 47), (48, 59), (60, 67))
                   for a, b in zip(range(lo, hi + 1), [*range(lo + 1, hi + 1), lo])])


@dataclass
class Source:
    """The samples to export: the shards, which of the spec's points (`index`), their names, and whether
    they are iBUG-68 in its order (what FaceSynthetics and the COCO skeleton need)."""
    root: Path
    shards: ShardSet
    index: np.ndarray  # (K,) spec point per exported point
    names: list[str]  # (K,) keypoint names
    points: str  # "spec" or "ibug68"
    is_ibug68: bool

    @property
    def spec_name(self) -> str:
        return str(self.shards.attrs.get("spec_name", ""))

    def __len__(self) -> int:
        return len(self.shards)

    def sample(self, i: int, segmentation: bool = False) -> dict:
        """Sample i: `image` (H, W, 3) RGB, `points` (K, 2), `v` (K,) COCO visibility (2 visible, 1 in frame but
        hidden, 0 out of frame), `index` (the job-wide sample index) and `segmentation` if asked for."""
        keys = ("image", "landmarks_2d", "visibility", "in_frame", "sample_index")
        s = self.shards.read(i, keys=keys + (("segmentation",) if segmentation else ()))
        visible, in_frame = s["visibility"][self.index] > 0, s["in_frame"][self.index] > 0
        out = {"image": s["image"], "points": s["landmarks_2d"][self.index].astype(np.float64),
               "v": np.where(visible, 2, np.where(in_frame, 1, 0)).astype(np.int64), "index": int(s["sample_index"])}
        if segmentation:
            out["segmentation"] = s["segmentation"]
        return out


def open_source(root: Path | str, points: str = "spec") -> Source:
    """The shards under `root` with the points to export: every point of their spec, or `ibug68` (the spec's
    iBUG-68 correspondence, the `ibug68` attribute: the nearest spec point for each iBUG-68 point)."""
    root = Path(root)
    if points not in POINTS:
        raise FacegenError(f"--points {points}: use one of {', '.join(POINTS)}")
    try:
        shards = open_shards(root)
    except FacegenError as e:
        hint = "" if "facegen render" in e.message else (". `facegen export` reads a folder written by `facegen "
                                                         "render` (shard-*.h5 and manifest.json): give that folder")
        raise FacegenError(e.message + hint) from None
    a, names = shards.attrs, shards.landmark_names
    ibug = a.get("ibug68")
    ibug = None if ibug is None or len(ibug) != 68 else np.asarray(ibug, np.int64)
    if points == "ibug68":
        if ibug is None:
            raise FacegenError(f"{root}: spec {a.get('spec_name')!r} ({len(names)} points) has no iBUG-68 "
                               "correspondence (no `ibug68` attribute); export --points spec instead")
        from facegen.specs import read_spec

        return Source(root, shards, ibug, [p.name for p in read_spec("ibug68").points], points, True)
    index = np.arange(len(names))
    return Source(root, shards, index, list(names), points,
                  len(names) == 68 and ibug is not None and np.array_equal(ibug, index))


def format_module(fmt: str):
    if fmt not in FORMATS:
        raise FacegenError(f"--format {fmt}: unknown export format; use one of {', '.join(FORMATS)}")
    return importlib.import_module(FORMATS[fmt])


def claim_folder(out: Path) -> None:
    """Exports go into a new or empty folder: files of an earlier export are never mixed with these."""
    if out.exists() and not out.is_dir():
        raise FacegenError(f"--out {out}: is a file; name a folder for the export")
    if out.is_dir() and any(out.iterdir()):
        raise FacegenError(f"--out {out}: the folder is not empty; export into a new folder (or empty this one)")
    out.mkdir(parents=True, exist_ok=True)


def export(shards: Path | str, out: Path | str, fmt: str, points: str = "spec", progress: bool = True) -> dict:
    """Write the samples of a `facegen render` folder into `out` in format `fmt` (coco, facesynthetics);
    returns the format's summary (counts and the files written). Every input is checked before `out` is
    touched."""
    module = format_module(fmt)
    source = open_source(shards, points)
    module.check(source)
    out = Path(out)
    claim_folder(out)
    from tqdm import tqdm

    bar = tqdm(total=len(source), unit="img", desc=f"export {fmt}", disable=not progress, dynamic_ncols=True)
    try:
        return module.write(source, out, bar.update)
    finally:
        bar.close()
        source.shards.close()


def write_png(path: Path, image: np.ndarray) -> None:
    """An RGB (H, W, 3) or single-channel (H, W) uint8 image as PNG (lossless: the shard's pixels exactly)."""
    import cv2

    pixels = cv2.cvtColor(image, cv2.COLOR_RGB2BGR) if image.ndim == 3 else image
    if not cv2.imwrite(str(path), pixels):
        raise FacegenError(f"{path}: cannot write the image (is the folder writable, the disk full?)")
