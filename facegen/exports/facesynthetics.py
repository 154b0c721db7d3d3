"""Microsoft FaceSynthetics' layout: `OUT/NNNNNN.png`, `NNNNNN_ldmks.txt`, `NNNNNN_seg.png`, so code written for
FaceSynthetics (github.com/microsoft/FaceSynthetics) runs on facegen renders.

`_ldmks.txt`: 70 lines "x y": the 68 iBUG points, then the two pupils. facegen labels no pupil: lines 69 and
70 are the centres of each eye's six iBUG points (36-41, the person's right eye, then 42-47), which are the
pupils only when the eyes look straight ahead. Positions are the shards' (pixel centres at integers), to 4
decimals. The format has no visibility: hidden and out-of-frame points are written like the others.

`_seg.png` (only when the shards hold `segmentation`: render with --outputs rgb,segmentation): one uint8
class per pixel in FaceSynthetics' ids, mapped from ours (generator/segmentation.py) by `FS_OF_OURS`:
where FaceSynthetics splits one of our classes (brows, eyes: right and left; lips: top and bottom), the
pixel goes to the side of the face's own landmarks it is on. Right and left are the person's own (iBUG's
36-41 and 17-21 are the right eye and brow). What has no counterpart is written as 255, FaceSynthetics'
"ignore": our eyelashes (strands; the raster renderer draws none), hand and held object. Theirs that never
appear: nose (2) and ears (7, 8): our face skin covers the nose, and the ears are in our head_neck, written
as neck (12) with the scalp and the back of the head.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import numpy as np

from facegen.errors import FacegenError
from facegen.exports import Source, write_png

DESCRIPTION = "Microsoft FaceSynthetics: {id}.png, {id}_ldmks.txt (68 iBUG + 2 pupils), {id}_seg.png"

# FaceSynthetics' classes (their README): id = position; 255 = ignore
FS_CLASSES = ("background", "skin", "nose", "right_eye", "left_eye", "right_brow", "left_brow", "right_ear",
              "left_ear", "mouth_interior", "top_lip", "bottom_lip", "neck", "hair", "beard", "clothing", "glasses",
              "headwear", "facewear")
FS_ID = {name: i for i, name in enumerate(FS_CLASSES)}
IGNORE = 255
# our class -> theirs: a name, "side" (right_ or left_ + the class by the landmarks), "lip" (top or bottom)
FS_OF_OURS = {"background": "background", "skin": "skin", "brows": "side", "eyes": "side", "lips": "lip",
              "teeth_mouth": "mouth_interior", "eyelashes": None, "head_neck": "neck", "scalp_hair": "hair",
              "facial_hair": "beard", "clothing": "clothing", "eyewear_frame": "glasses", "lens": "glasses",
              "facewear": "facewear", "headwear": "headwear", "hand": None, "object": None}
# iBUG-68 points of the person's right and left eye and brow
SIDES = {"eyes": ((36, 42), (42, 48)), "brows": ((17, 22), (22, 27))}


def check(source: Source) -> None:
    """FaceSynthetics' landmarks are iBUG-68's: refuse other points, saying how to get them."""
    if source.is_ibug68:
        return
    n = len(source.names)
    what = (f"its {n} points are not in iBUG-68's order" if n == 68 else f"it has {n} points")
    raise FacegenError(f"{source.root}: spec {source.spec_name!r}: {what}, and FaceSynthetics' _ldmks.txt holds the "
                       "68 iBUG points (+ 2 pupils). Add --points ibug68 to write the spec's iBUG-68 points (the "
                       "nearest spec point for each), or render with --spec ibug68")


def landmarks70(points68: np.ndarray) -> np.ndarray:
    """(68, 2) iBUG points -> (70, 2): + the centre of each eye (right, then left) for the pupils."""
    return np.concatenate([points68, points68[36:42].mean(0, keepdims=True), points68[42:48].mean(0, keepdims=True)])


def _mouth_line(p: np.ndarray) -> np.ndarray:
    """The line between the lips, from the person's right mouth corner to the left: outer corner, inner
    corner, the middle of each inner upper / lower pair, inner and outer corner. (7, 2)"""
    return np.stack([p[48], p[60], (p[61] + p[67]) / 2, (p[62] + p[66]) / 2, (p[63] + p[65]) / 2, p[64], p[54]])


def _upper_side(xy: np.ndarray, line: np.ndarray) -> np.ndarray:
    """(M,) bool: each point is above the polyline (on the nose's side), judged at its nearest segment."""
    a, d = line[:-1], np.diff(line, axis=0)  # (S, 2)
    rel = xy[:, None, :] - a[None]  # (M, S, 2)
    t = np.clip((rel * d).sum(-1) / np.maximum((d * d).sum(-1), 1e-12), 0.0, 1.0)
    dist = np.linalg.norm(rel - t[..., None] * d, axis=-1)
    k = dist.argmin(1)
    r, dk = rel[np.arange(len(xy)), k], d[k]
    # the line runs from the person's right corner to the left: the upper lip is on its left-hand side in
    # image coordinates (y down), where the cross product is negative, whatever the roll
    return dk[:, 0] * r[:, 1] - dk[:, 1] * r[:, 0] < 0


def to_facesynthetics(segmentation: np.ndarray, points68: np.ndarray) -> np.ndarray:
    """Our (H, W) class map -> FaceSynthetics' ids, splitting brows, eyes and lips by the iBUG-68 points."""
    from facegen.generator.segmentation import CLASS_ID

    out = np.full(segmentation.shape, IGNORE, np.uint8)
    for ours, theirs in FS_OF_OURS.items():
        where = segmentation == CLASS_ID[ours]
        if theirs is None or not where.any():
            continue
        if theirs == "side":
            (r0, r1), (l0, l1) = SIDES[ours]
            rows, cols = np.nonzero(where)
            xy = np.stack([cols, rows], 1).astype(np.float64)
            right, left = points68[r0:r1].mean(0), points68[l0:l1].mean(0)
            is_right = np.linalg.norm(xy - right, axis=1) <= np.linalg.norm(xy - left, axis=1)
            name = ours[:-1]  # eyes -> eye, brows -> brow
            out[rows, cols] = np.where(is_right, FS_ID[f"right_{name}"], FS_ID[f"left_{name}"])
        elif theirs == "lip":
            rows, cols = np.nonzero(where)
            xy = np.stack([cols, rows], 1).astype(np.float64)
            upper = _upper_side(xy, _mouth_line(points68))
            out[rows, cols] = np.where(upper, FS_ID["top_lip"], FS_ID["bottom_lip"])
        else:
            out[where] = FS_ID[theirs]
    return out


def write(source: Source, out: Path, advance: Callable[[int], object]) -> dict:
    from facegen.trainer.annotations import write_ldmks

    seg = source.shards.has("segmentation")
    for i in range(len(source)):
        s = source.sample(i, segmentation=seg)
        stem = f"{s['index']:06d}"
        write_png(out / f"{stem}.png", s["image"])
        write_ldmks(out / f"{stem}_ldmks.txt", landmarks70(s["points"]))
        if seg:
            write_png(out / f"{stem}_seg.png", to_facesynthetics(s["segmentation"], s["points"]))
        advance(1)
    summary = {"format": "facesynthetics", "samples": len(source), "points": 70, "out": str(out),
               "files": ["NNNNNN.png", "NNNNNN_ldmks.txt"] + (["NNNNNN_seg.png"] if seg else [])}
    if not seg:
        summary["note"] = ("no _seg.png: these shards hold no segmentation (render with --outputs "
                           "rgb,segmentation to have it)")
    return summary
