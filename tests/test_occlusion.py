"""What hides each landmark (`occluded_by`, generator/segmentation.py OCCLUDERS): the rule on a class
map with known contents, and real renders where the answer is known (a face turned away hides its
far side behind itself; a face pushed half out of the frame)."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from facegen.generator.labels import Labeller, occluders
from facegen.generator.scene import pose_scene
from facegen.generator.segmentation import CLASS_ID, CLASSES, OCCLUDER_ID, OCCLUDER_OF_CLASS, OCCLUDERS
from tests.test_dressing import dressed


def test_every_class_names_an_occluder():
    assert {c.occluder for c in CLASSES} <= set(OCCLUDERS)
    assert OCCLUDERS[0] == "none" and OCCLUDERS[-1] == "out_of_frame"
    for c in CLASSES:
        assert OCCLUDER_OF_CLASS[c.id] == OCCLUDER_ID[c.occluder]


def test_the_rule_reads_the_class_at_the_nearest_pixel():
    """Hidden points take the occluder of the class drawn at their nearest pixel centre; visible points
    are none whatever is drawn there; points out of the frame are out_of_frame."""
    seg = np.full((8, 8), CLASS_ID["skin"], np.uint8)
    seg[:, 4:] = CLASS_ID["scalp_hair"]
    seg[6:, :] = CLASS_ID["facial_hair"]
    uv = np.array([[1.2, 1.0], [4.4, 2.0], [3.6, 1.0], [2.0, 6.6], [6.0, 1.0], [-3.0, 2.0]])
    visible = np.array([False, False, False, False, True, False])
    in_frame = np.array([True, True, True, True, True, False])
    codes = occluders(uv, visible, in_frame, seg)
    assert [OCCLUDERS[c] for c in codes] == ["self", "hair", "hair", "facial_hair", "none", "out_of_frame"]
    # without a class map a hidden point is hidden by the face itself
    assert [OCCLUDERS[c] for c in occluders(uv, visible, in_frame, None)] == \
        ["self"] * 4 + ["none", "out_of_frame"]


@pytest.fixture(scope="module")
def ibug68(face_model):
    from facegen.specs import load_spec

    return Labeller(load_spec("ibug68", face_model), face_model)


@pytest.fixture(scope="module")
def raster(face_model):
    from facegen.generator.raster import RasterRenderer

    r = RasterRenderer(face_model, outputs=("rgb",))  # the class map comes with every render
    yield r
    r.close()


def labelled(face_model, ibug68, renderer, params):
    posed = pose_scene(params, face_model)
    result = renderer.render(params, posed)
    return ibug68(params, posed, result.depth, result.segmentation)


def consistent(labels) -> None:
    """occluded_by agrees with visibility and in_frame, point by point."""
    assert np.array_equal(labels.occluded_by == OCCLUDER_ID["none"], labels.visibility == 1)
    assert np.array_equal(labels.occluded_by == OCCLUDER_ID["out_of_frame"], labels.in_frame == 0)


def test_a_face_turned_away_hides_its_far_side_behind_itself(face_model, ibug68, raster):
    """At 70 degrees of yaw (bald, bare), the far eye's outer corner and the far half of the mouth
    are behind the nose and cheek: hidden, by the face itself; frontal, nothing is hidden."""
    frontal = labelled(face_model, ibug68, raster, dressed(face_model, size=(160, 160), yaw=0.0))
    turned = labelled(face_model, ibug68, raster, dressed(face_model, size=(160, 160), yaw=70.0))
    consistent(frontal)
    consistent(turned)
    assert (frontal.occluded_by == OCCLUDER_ID["none"]).all()
    hidden = turned.visibility == 0
    assert hidden.sum() >= 8, hidden.sum()
    assert (turned.occluded_by[hidden] == OCCLUDER_ID["self"]).all()


def test_points_outside_the_image_are_out_of_frame(face_model, ibug68, raster):
    p = dressed(face_model, size=(128, 128))
    p = dataclasses.replace(p, head_translation=(13.0, 0.0, 0.0))  # the face partly out on one side
    labels = labelled(face_model, ibug68, raster, p)
    consistent(labels)
    out = labels.occluded_by == OCCLUDER_ID["out_of_frame"]
    assert 5 <= out.sum() <= 60, out.sum()
