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
    occluder: str  # what a landmark hidden behind a surface of this class is hidden by (OCCLUDERS)


# What hides a landmark: the labels' `occluded_by` (docs/shard-format.md), one code per point, the
# index in this tuple. "none": the point is seen; "self": the face or head itself (the nose over the
# far cheek, an eyelid over the eye, the jaw turned away); "out_of_frame": outside the image or
# behind the camera; the others name what is in front of it. Codes are stable: new ones go last.
OCCLUDERS = ("none", "self", "hair", "facial_hair", "clothing", "eyewear_frame", "lens", "facewear",
             "headwear", "hand", "object", "out_of_frame")
OCCLUDER_ID = {name: i for i, name in enumerate(OCCLUDERS)}

CLASSES = (
    SegmentClass(0, "background", (0, 0, 0), "none"),  # never in front of a hidden point
    SegmentClass(1, "skin", (200, 160, 130), "self"),
    SegmentClass(2, "brows", (60, 30, 10), "self"),  # painted and strand brows: part of the face
    SegmentClass(3, "eyes", (255, 255, 255), "self"),
    SegmentClass(4, "lips", (200, 40, 60), "self"),
    SegmentClass(5, "teeth_mouth", (250, 220, 90), "self"),
    SegmentClass(6, "eyelashes", (20, 200, 200), "self"),
    SegmentClass(7, "head_neck", (90, 90, 220), "self"),
    SegmentClass(8, "scalp_hair", (140, 70, 20), "hair"),
    SegmentClass(9, "facial_hair", (230, 120, 30), "facial_hair"),
    SegmentClass(10, "clothing", (60, 170, 60), "clothing"),
    SegmentClass(11, "eyewear_frame", (250, 250, 60), "eyewear_frame"),
    SegmentClass(12, "lens", (170, 240, 250), "lens"),  # sunglasses; a see-through lens shows what is behind
    SegmentClass(13, "facewear", (120, 200, 250), "facewear"),  # face masks and their straps
    SegmentClass(14, "headwear", (150, 80, 230), "headwear"),
    SegmentClass(15, "hand", (255, 110, 60), "hand"),  # the hand and the forearm
    SegmentClass(16, "object", (120, 120, 120), "object"),  # what a hand holds: phone, cup, microphone
)
CLASS_ID = {c.name: c.id for c in CLASSES}
PALETTE = np.array([c.colour for c in CLASSES], np.uint8)  # row = class id
# Row = class id: the OCCLUDERS code of a point hidden behind that class (256 rows: any uint8 map).
OCCLUDER_OF_CLASS = np.full(256, OCCLUDER_ID["self"], np.uint8)
OCCLUDER_OF_CLASS[[c.id for c in CLASSES]] = [OCCLUDER_ID[c.occluder] for c in CLASSES]
# A colour per occluder (row = code) for previews and contact sheets: none green, self red, ...
OCCLUDER_COLOURS = np.array([(60, 220, 60), (230, 50, 50), (160, 90, 30), (240, 150, 40), (70, 170, 240),
                             (250, 250, 60), (170, 240, 250), (250, 120, 220), (150, 80, 230), (255, 200, 150),
                             (120, 120, 120), (40, 40, 40)], np.uint8)

# Brows and lips are painted on the face part, not parts of their own: a face point takes the brow
# or lip class where the painted shape covers more than this (Cycles: its AOV averaged over the pixel;
# raster: the painted weight at the triangle's provoking vertex).
PAINTED_THRESHOLD = 0.5

# `RenderResult.mask`, the face proper: every class but these (a beard over the face is in it: it
# covers the face, as brows and lips do, and so do glasses and a face mask).
NOT_FACE = ("background", "head_neck", "scalp_hair", "clothing", "headwear", "hand", "object")


def face_mask(segmentation: np.ndarray) -> np.ndarray:
    """(H, W) bool: the face proper (every class but those of NOT_FACE)."""
    mask = segmentation != CLASS_ID[NOT_FACE[0]]
    for name in NOT_FACE[1:]:
        mask &= segmentation != CLASS_ID[name]
    return mask


def colorize(segmentation: np.ndarray) -> np.ndarray:
    """(H, W, 3) uint8 sRGB picture of a segmentation map, one colour per class (`PALETTE`)."""
    return PALETTE[segmentation]
