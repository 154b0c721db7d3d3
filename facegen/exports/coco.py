"""COCO keypoints: `OUT/annotations.json` + `OUT/images/NNNNNN.png`, in the layout mmpose's face datasets read.

One image and one face annotation per sample. Each annotation holds what mmpose's COCO-style datasets parse
(`BaseCocoStyleDataset`, `Face300WDataset`, and for iBUG-68 `CocoWholeBodyFaceDataset`): `keypoints`
[x, y, v] * K, `num_keypoints`, `bbox` [x, y, w, h], `area`, `iscrowd` 0, `category_id` 1, `center` and
`scale` (300-W's: the box centre and its larger side / 200), and for iBUG-68 also `face_box`, `face_kpts`
and `face_valid`. The category names the keypoints and, for iBUG-68, its contours as `skeleton` (1-based).

Positions are the shards' (pixel centres at integers, the top-left pixel's centre at (0, 0): OpenCV's and
mmpose's convention), written to 4 decimals. v: 2 visible, 1 in the image but hidden (behind the face
itself or something in front of it), 0 outside the image. Points with v 0 keep their projected position
(outside the image) where COCO would write 0, 0; tools read v first, and nothing is lost.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from facegen.errors import FacegenError
from facegen.exports import IBUG68_LINES, Source, write_png

DESCRIPTION = "COCO keypoints JSON + PNG images (mmpose's Face300WDataset / COCO-style face datasets)"
ANNOTATIONS = "annotations.json"
IMAGES = "images"


def check(source: Source) -> None:
    """Any spec exports to COCO (the skeleton is iBUG-68's contours, or empty for other points)."""


def _box(points: np.ndarray, v: np.ndarray) -> list[float]:
    """The tight box [x, y, w, h] of the points in the image (all zeros when none is)."""
    if not (v > 0).any():
        return [0.0, 0.0, 0.0, 0.0]
    p = points[v > 0]
    lo, hi = p.min(0), p.max(0)
    return [round(float(lo[0]), 4), round(float(lo[1]), 4), round(float(hi[0] - lo[0]), 4),
            round(float(hi[1] - lo[1]), 4)]


def annotation(sample: dict, ibug68: bool) -> dict:
    """One sample's COCO annotation (ids: the job-wide sample index + 1)."""
    kpts = [v for (x, y), vis in zip(sample["points"], sample["v"]) for v in (round(float(x), 4), round(float(y), 4),
                                                                          int(vis))]
    box = _box(sample["points"], sample["v"])
    ann = {"id": sample["index"] + 1, "image_id": sample["index"] + 1, "category_id": 1, "iscrowd": 0,
           "keypoints": kpts, "num_keypoints": int((sample["v"] > 0).sum()), "bbox": box,
           "area": round(box[2] * box[3], 4), "center": [round(box[0] + box[2] / 2, 4), round(box[1] + box[3] / 2, 4)],
           "scale": round(max(box[2], box[3]) / 200.0, 6)}
    if ibug68:  # COCO-WholeBody's face fields: the same points and box
        ann.update(face_box=box, face_kpts=kpts, face_valid=bool(ann["num_keypoints"]))
    return ann


def write(source: Source, out: Path, advance: Callable[[int], object]) -> dict:
    """Write every sample's PNG, then annotations.json (last, under a temporary name: a file that is there
    is whole)."""
    (out / IMAGES).mkdir()
    images, annotations = [], []
    for i in range(len(source)):
        s = source.sample(i)
        name = f"{s['index']:06d}.png"
        write_png(out / IMAGES / name, s["image"])
        h, w = s["image"].shape[:2]
        images.append({"id": s["index"] + 1, "file_name": name, "width": int(w), "height": int(h)})
        annotations.append(annotation(s, source.is_ibug68))
        advance(1)
    from facegen import __version__

    doc = {"info": {"description": f"facegen export of {source.root.name} (spec {source.spec_name}, points "
                                   f"{source.points})", "version": __version__,
                    "pixels": "pixel centres at integer coordinates: the top-left pixel's centre is (0, 0)",
                    "visibility": "v 2 visible, 1 in the image but hidden, 0 outside the image"},
           "licenses": [], "images": images, "annotations": annotations,
           "categories": [{"id": 1, "name": "face", "supercategory": "face", "keypoints": list(source.names),
                           "skeleton": [[a + 1, b + 1] for a, b in IBUG68_LINES] if source.is_ibug68 else []}]}
    tmp = out / (ANNOTATIONS + ".partial")
    tmp.write_text(json.dumps(doc, separators=(",", ":")))
    os.replace(tmp, out / ANNOTATIONS)
    v = np.array([a["keypoints"][2::3] for a in annotations])
    return {"format": "coco", "samples": len(images), "points": len(source.names), "out": str(out),
            "files": [str(out / ANNOTATIONS), str(out / IMAGES) + "/"],
            "visible": int((v == 2).sum()), "hidden": int((v == 1).sum()), "out_of_frame": int((v == 0).sum())}


@dataclass
class CocoKeypoints:
    """A COCO keypoints file read back: per annotation (in file order) its image's file and size, points
    (N, K, 2), v (N, K); the category's keypoint names and skeleton."""
    file_names: list[str]
    sizes: list[tuple[int, int]]  # (width, height)
    points: np.ndarray
    v: np.ndarray
    names: list[str]
    skeleton: list[list[int]]


def read_coco(path: Path | str) -> CocoKeypoints:
    """Read a COCO keypoints JSON with one category (ours, or any such file); mistakes name the file and the
    line where the annotation starts."""
    from facegen.trainer.annotations import json_line, read_json

    path = Path(path)
    doc, text = read_json(path, "COCO keypoints: {'images': [...], 'annotations': [...], 'categories': [...]}")
    for key in ("images", "annotations", "categories"):
        if not isinstance(doc, dict) or not isinstance(doc.get(key), list):
            raise FacegenError(f"{path}: no '{key}' list; a COCO keypoints file holds images, annotations and "
                               "categories")
    if not doc["categories"] or "keypoints" not in doc["categories"][0]:
        raise FacegenError(f"{path}:{json_line(text, 'categories')}: the category names no 'keypoints'")
    names = list(doc["categories"][0]["keypoints"])
    images = {im["id"]: im for im in doc["images"]}
    files, sizes, points, vis = [], [], [], []
    def where(i: int) -> str:  # only on a mistake: finding the line reads the text again
        return f"{path}:{json_line(text, 'annotations', i)}: annotation {i}"

    for i, ann in enumerate(doc["annotations"]):
        k = ann.get("keypoints") if isinstance(ann, dict) else None
        if not isinstance(k, list) or len(k) != 3 * len(names):
            raise FacegenError(f"{where(i)}: 'keypoints' must be [x, y, v] for each of the category's {len(names)} "
                               f"keypoints ({3 * len(names)} numbers)")
        if ann.get("image_id") not in images:
            raise FacegenError(f"{where(i)}: image_id {ann.get('image_id')!r} is not in 'images'")
        im = images[ann["image_id"]]
        a = np.asarray(k, np.float64).reshape(-1, 3)
        files.append(im["file_name"])
        sizes.append((int(im["width"]), int(im["height"])))
        points.append(a[:, :2])
        vis.append(a[:, 2].astype(np.int64))
    return CocoKeypoints(files, sizes, np.asarray(points).reshape(-1, len(names), 2),
                         np.asarray(vis, np.int64).reshape(-1, len(names)), names,
                         list(doc["categories"][0].get("skeleton", [])))
