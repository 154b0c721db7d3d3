"""The segmentation classes both backends write (`RenderResult.segmentation`, docs/segmentation.md).

Which part of the scene gets which class, and which parts are see-through (drawn by Cycles as films
or strands, never occluding a label), is decided per part in generator/parts.py (`HEAD_PARTS`, and
the hair strands and garments of `dressing`); this
module holds the classes themselves and the rules on top of them.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class SegmentClass:
    id: int  # the value in the (H, W) uint8 map
    name: str
    colour: tuple[int, int, int]  # sRGB uint8, for previews and contact sheets (`colorize`)


CLASSES = (
    SegmentClass(0, "background", (0, 0, 0)),
    SegmentClass(1, "skin", (200, 160, 130)),
    SegmentClass(2, "brows", (60, 30, 10)),
    SegmentClass(3, "eyes", (255, 255, 255)),
    SegmentClass(4, "lips", (200, 40, 60)),
    SegmentClass(5, "teeth_mouth", (250, 220, 90)),
    SegmentClass(6, "eyelashes", (20, 200, 200)),
    SegmentClass(7, "head_neck", (90, 90, 220)),
    SegmentClass(8, "scalp_hair", (140, 70, 20)),
    SegmentClass(9, "facial_hair", (230, 120, 30)),
    SegmentClass(10, "clothing", (60, 170, 60)),
)
CLASS_ID = {c.name: c.id for c in CLASSES}
PALETTE = np.array([c.colour for c in CLASSES], np.uint8)  # row = class id

# Brows and lips are painted on the face part, not parts of their own: a face point takes the brow
# or lip class where the painted shape covers more than this (Cycles: its AOV averaged over the pixel;
# raster: the painted weight at the triangle's provoking vertex).
PAINTED_THRESHOLD = 0.5

# `RenderResult.mask`, the face proper: every class but these (a beard over the face is in it: it
# covers the face, as brows and lips do).
NOT_FACE = ("background", "head_neck", "scalp_hair", "clothing")


def face_mask(segmentation: np.ndarray) -> np.ndarray:
    """(H, W) bool: the face proper (every class but those of NOT_FACE)."""
    mask = segmentation != CLASS_ID[NOT_FACE[0]]
    for name in NOT_FACE[1:]:
        mask &= segmentation != CLASS_ID[name]
    return mask


def colorize(segmentation: np.ndarray) -> np.ndarray:
    """(H, W, 3) uint8 sRGB picture of a segmentation map, one colour per class (`PALETTE`)."""
    return PALETTE[segmentation]
