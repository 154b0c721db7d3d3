"""What a sample wears (generator/parts.py `dressing`: hair, beard, strand brows, a garment) is drawn
by both backends from the same geometry, is in the depth map, and hides the labels behind it."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from facegen.generator.labels import Labeller
from facegen.generator.parts import dressing
from facegen.generator.scene import Clothing, FacialHair, Hair, pose_scene
from facegen.generator.segmentation import CLASS_ID, OCCLUDER_ID
from tests.test_cycles import make_params

BROWS = np.arange(17, 27)  # iBUG-68 brow points
DRESSING_CLASSES = [CLASS_ID[c] for c in ("scalp_hair", "facial_hair", "clothing")]


def dressed(model, index=1, size=(128, 128), yaw=0.0, hair=None, facial=None, clothing=None):
    """A near-frontal sample wearing what is given (bald, clean-shaven and bare otherwise)."""
    p = make_params(model, index, size=size, yaw=yaw)
    p.head_rotation = (yaw, 0.0, 0.0)
    return dataclasses.replace(p, hair=hair or Hair(), facial_hair=facial or FacialHair(),
                               clothing=clothing or Clothing())


FRINGE = Hair(style="fringe", strands=5000, length=14.0, clumping=0.2, melanin=0.8, seed=5)
BEARD = FacialHair(style="full_beard", strands=4000, length=1.5, brow_strands=200, brow_length=0.8, seed=5)
SHIRT = Clothing(cut="collar_shirt", color=(0.1, 0.2, 0.5), color2=(0.9, 0.9, 0.9), pattern="stripes",
                 pattern_scale=1.0, seed=5)


@pytest.fixture(scope="module")
def ibug68(face_model):
    from facegen.specs import load_spec

    return Labeller(load_spec("ibug68", face_model), face_model)


@pytest.fixture(scope="module")
def raster(face_model):
    from facegen.generator.raster import RasterRenderer

    r = RasterRenderer(face_model, outputs=("rgb", "depth", "segmentation"))
    yield r
    r.close()


@pytest.fixture(scope="module")
def cycles(face_model):
    pytest.importorskip("bpy")
    from facegen.generator.cycles import CyclesRenderer

    r = CyclesRenderer(face_model, outputs=("rgb", "depth", "segmentation"), preset="fast", threads=2, samples=4)
    yield r
    r.close()


def test_dressing_is_posed_with_the_head(face_model):
    """Grown on the head in model space, then posed like it: a yawed head (gravity unchanged in
    model space) wears exactly the rotated geometry, and the same params give the same arrays."""
    a = dressed(face_model, hair=FRINGE, facial=BEARD, clothing=SHIRT)
    b = dataclasses.replace(a, head_rotation=(30.0, 0.0, 0.0))
    pa, pb = pose_scene(a, face_model), pose_scene(b, face_model)
    wa, wb = dressing(a, pa, face_model), dressing(b, pb, face_model)
    again = dressing(a, pa, face_model)
    assert [s.material for s in wa.strands] == ["scalp_hair", "facial_hair", "brows"]
    assert [s.material for s in wa.surfaces] == ["clothing"]
    for x, y in zip(wa.strands, again.strands):
        assert np.array_equal(x.geometry.points, y.geometry.points)
    R = pb.head_R @ pa.head_R.T  # world of a -> world of b
    for x, y in zip((*wa.strands, *wa.surfaces), (*wb.strands, *wb.surfaces)):
        gx, gy = x.geometry, y.geometry
        px = gx.points if hasattr(gx, "points") else gx.vertices
        py = gy.points if hasattr(gy, "points") else gy.vertices
        moved = (px.reshape(-1, 3) - pa.head_t) @ R.T + pb.head_t
        assert np.abs(moved - py.reshape(-1, 3)).max() < 1e-3, x.material


def test_raster_draws_what_the_sample_wears(face_model, raster):
    p = dressed(face_model, hair=FRINGE, facial=BEARD, clothing=SHIRT)
    result = raster.render(p, pose_scene(p, face_model))
    bare = raster.render(dressed(face_model), pose_scene(dressed(face_model), face_model))
    seg = result.segmentation
    for c in DRESSING_CLASSES:
        assert (seg == c).sum() > 50, (c, np.unique(seg, return_counts=True))
    assert not np.isin(bare.segmentation, DRESSING_CLASSES).any()
    worn = np.isin(seg, DRESSING_CLASSES)
    assert (result.depth[worn] > 0).all()  # in the depth map, so it can hide labels
    assert not result.mask[np.isin(seg, [CLASS_ID["scalp_hair"], CLASS_ID["clothing"]])].any()


@pytest.mark.parametrize("backend", ["raster", pytest.param("cycles", marks=pytest.mark.blender)])
def test_a_fringe_hides_the_brows(face_model, ibug68, backend, request):
    """A fringe over the forehead: the brow points behind it are labelled hidden, by hair, and
    visible again on the same face without it, in both backends (their depth maps hold the strands,
    their class maps say what the strands are)."""
    renderer = request.getfixturevalue(backend)
    hidden, by = {}, {}
    for name, hair in (("fringe", FRINGE), ("bald", Hair())):
        p = dressed(face_model, size=(192, 192), hair=hair)
        posed = pose_scene(p, face_model)
        result = renderer.render(p, posed)
        labels = ibug68(p, posed, result.depth, result.segmentation)
        hidden[name] = labels.visibility[BROWS] == 0
        by[name] = labels.occluded_by[BROWS]
    assert not hidden["bald"].any() and not by["bald"].any()
    assert hidden["fringe"].mean() >= 0.7, hidden["fringe"]
    assert (by["fringe"][hidden["fringe"]] == OCCLUDER_ID["hair"]).mean() >= 0.9, by["fringe"]
    assert not by["fringe"][~hidden["fringe"]].any()


@pytest.mark.blender
def test_backends_agree_on_what_covers_the_face(face_model, raster, cycles):
    """One SceneParams: the raster ribbons and garment cover the same pixels as Cycles' curves and
    mesh (segmentation of the worn classes), up to strand edges."""
    p = dressed(face_model, yaw=25.0, size=(160, 160), hair=FRINGE, facial=BEARD, clothing=SHIRT)
    posed = pose_scene(p, face_model)
    a, b = raster.render(p, posed).segmentation, cycles.render(p, posed).segmentation
    for c in DRESSING_CLASSES:
        x, y = a == c, b == c
        iou = (x & y).sum() / max((x | y).sum(), 1)
        assert iou > 0.8, (c, iou)
