"""The amodal face mask (`--outputs amodal`, RenderResult.amodal): the face proper drawn with the head's
own parts alone, nothing the sample wears in front of it. Both backends, small renders."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from facegen.generator.scene import pose_scene
from facegen.generator.segmentation import CLASS_ID, face_mask
from tests.test_dressing import BEARD, FRINGE, SHIRT, dressed
from tests.test_eyewear import SUN

SIZE = (96, 96)
HEAD_CLASSES = [CLASS_ID[c] for c in ("skin", "brows", "eyes", "lips", "teeth_mouth", "eyelashes", "head_neck")]
OVER_THE_FACE = [CLASS_ID[c] for c in ("scalp_hair", "eyewear_frame", "lens")]


def worn_and_bare(model, yaw=25.0):
    """A sample with a fringe, a beard, a shirt and sunglasses, and the same sample wearing nothing."""
    worn = dataclasses.replace(dressed(model, size=SIZE, yaw=yaw, hair=FRINGE, facial=BEARD, clothing=SHIRT),
                               eyewear=SUN)
    return worn, dressed(model, size=SIZE, yaw=yaw)


@pytest.mark.blender
def test_the_amodal_layer_leaves_cycles_main_pixels_alone(face_model, request):
    """The amodal view layer renders after the main one: image, depth and classes are those of a
    renderer without it, bit for bit. First in the module: bpy holds one scene at a time, so the
    plain renderer is made and closed before the module's amodal one."""
    pytest.importorskip("bpy")
    from facegen.generator.cycles import CyclesRenderer

    p, _ = worn_and_bare(face_model)
    posed = pose_scene(p, face_model)
    plain = CyclesRenderer(face_model, outputs=("rgb", "depth", "segmentation"), preset="fast", threads=2, samples=4)
    try:
        expected = plain.render(p, posed)
    finally:
        plain.close()
    assert expected.amodal is None
    result = request.getfixturevalue("cycles").render(p, posed)
    for field in ("image", "depth", "segmentation", "mask"):
        assert np.array_equal(getattr(result, field), getattr(expected, field)), field


@pytest.fixture(scope="module")
def raster(face_model):
    from facegen.generator.raster import RasterRenderer

    r = RasterRenderer(face_model, outputs=("rgb", "depth", "segmentation", "amodal"))
    yield r
    r.close()


@pytest.fixture(scope="module")
def cycles(face_model):
    pytest.importorskip("bpy")
    from facegen.generator.cycles import CyclesRenderer

    r = CyclesRenderer(face_model, outputs=("rgb", "depth", "segmentation", "amodal"), preset="fast", threads=2,
                       samples=4)
    yield r
    r.close()


@pytest.fixture(scope="module")
def renders(face_model, request):
    """Per backend (made on first use): the worn and the bare sample's results."""
    cache = {}

    def get(backend):
        if backend not in cache:
            renderer = request.getfixturevalue(backend)
            cache[backend] = [renderer.render(p, pose_scene(p, face_model)) for p in worn_and_bare(face_model)]
        return cache[backend]

    return get


@pytest.mark.parametrize("backend", ["raster", pytest.param("cycles", marks=pytest.mark.blender)])
def test_amodal_is_the_face_with_nothing_worn(backend, renders):
    """With nothing worn the amodal mask is the visible face mask; with hair, beard, shirt and
    sunglasses it is still that same mask (the head is the same): it covers the face behind the
    fringe and the lenses, and every pixel where the face itself is seen. The head still hides itself
    (the face is turned 25 degrees): it is the visible face of the bare head, not the face's extent."""
    worn, bare = renders(backend)
    assert bare.amodal.dtype == bool and bare.amodal.shape == bare.mask.shape
    assert np.array_equal(bare.amodal, bare.mask)
    assert np.array_equal(bare.amodal, face_mask(bare.segmentation))
    assert np.array_equal(worn.amodal, bare.amodal)
    seen_face = worn.mask & np.isin(worn.segmentation, HEAD_CLASSES)
    assert not (seen_face & ~worn.amodal).any()  # amodal holds the visible face
    covered = worn.amodal & np.isin(worn.segmentation, OVER_THE_FACE)  # the face behind hair and glasses
    assert (covered & (worn.segmentation == CLASS_ID["scalp_hair"])).sum() > 30
    assert (covered & (worn.segmentation == CLASS_ID["lens"])).sum() > 100
    assert not worn.mask[covered & (worn.segmentation == CLASS_ID["scalp_hair"])].any()  # lost by the mask
    # Only what is worn can stick out of it: beard strands below the jaw, a frame or lens past the cheek.
    outside = worn.mask & ~worn.amodal
    assert np.isin(worn.segmentation[outside], [CLASS_ID[c] for c in ("facial_hair", "eyewear_frame", "lens")]).all()


@pytest.mark.blender
def test_backends_agree_on_the_amodal_face(renders):
    a, b = renders("raster")[0].amodal, renders("cycles")[0].amodal
    iou = (a & b).sum() / (a | b).sum()
    assert iou > 0.95, iou


def test_the_amodal_pass_leaves_the_raster_results_alone(face_model, raster):
    """The head-only draw after the readback changes nothing of the sample's own results nor of the
    next sample's draw; a batch gives what one at a time does."""
    from facegen.generator.scene import pose_scenes

    params = [*worn_and_bare(face_model), dressed(face_model, index=2, size=SIZE, yaw=-30.0, hair=FRINGE)]
    scenes = pose_scenes(params, face_model)
    fields = ("image", "depth", "segmentation", "mask")
    raster.outputs = ("rgb", "depth", "segmentation")
    try:
        plain = [raster.render(p, s) for p, s in zip(params, scenes)]
    finally:
        raster.outputs = ("rgb", "depth", "segmentation", "amodal")
    assert all(r.amodal is None for r in plain)
    alone = [raster.render(p, s) for p, s in zip(params, scenes)]
    batch = raster.render_batch(list(zip(params, scenes)))
    for a, b, c in zip(plain, alone, batch):
        for field in fields:
            assert np.array_equal(getattr(a, field), getattr(b, field)), field
            assert np.array_equal(getattr(a, field), getattr(c, field)), field
        assert np.array_equal(b.amodal, c.amodal)
