"""Glasses (generator/eyewear.py): fitted to each face without touching it, drawn by both backends
from the same geometry, and labelled: sunglasses and frames hide the points behind them, clear lenses
do not."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from facegen.generator.eyewear import CLEARANCE, FRAMES, LENSES, glasses
from facegen.generator.labels import Labeller
from facegen.generator.scene import Eyewear, pose_scene
from facegen.generator.segmentation import CLASS_ID, OCCLUDER_ID
from tests.test_dressing import dressed

EYES = np.arange(36, 48)  # iBUG-68 eye points
CLEAR = Eyewear(frame="round", lens="clear", lens_color=(0.95, 0.95, 0.95), lens_opacity=0.02, thickness=0.3)
SUN = Eyewear(frame="aviator", lens="sun", lens_color=(0.4, 0.4, 0.35), lens_opacity=0.9, thickness=0.3,
              metal=True, frame_color=(0.5, 0.4, 0.2))


def test_frame_and_lens_names_match_the_sampling_config():
    from facegen.generator.config_schema import Frames, Lenses
    from facegen.generator.sampling import load_config

    config = load_config()
    assert set(config["eyewear"]["frames"]) == set(FRAMES) == set(Frames.model_fields)
    assert set(config["eyewear"]["lenses"]) == set(LENSES) == set(Lenses.model_fields)


@pytest.mark.parametrize("frame", sorted(FRAMES))
def test_glasses_clear_the_face_of_every_identity(face_model, frame):
    """Whatever the identity and expression, no point of the face behind a lens comes closer to it
    than CLEARANCE, and the temples stay outside the skin."""
    from matplotlib.path import Path

    from facegen.generator.eyewear import OUTLINE_POINTS, _face_vertices
    from facegen.generator.hair import skin_proxy

    face_ids = _face_vertices(face_model)
    rng = np.random.default_rng(3)
    for k in range(4):
        shaped = face_model.meshes(rng.normal(size=(1, face_model.num_identity)).astype(np.float32) * 1.5,
                                   rng.uniform(0, 0.7, (1, face_model.num_expressions)).astype(np.float32))[0]
        g = glasses(dataclasses.replace(CLEAR, frame=frame, size=float(rng.uniform(1.35, 1.7))), shaped, face_model)
        face = shaped[face_ids].astype(np.float64)
        for lens in range(2):
            ring = g.lenses.vertices[lens * (OUTLINE_POINTS + 1) + 1:(lens + 1) * (OUTLINE_POINTS + 1)]
            inside = Path(ring[:, :2]).contains_points(face[:, :2])
            a = np.c_[ring[:, :2], np.ones(len(ring))]
            coef = np.linalg.lstsq(a, ring[:, 2], rcond=None)[0]
            gap = np.c_[face[inside, :2], np.ones(inside.sum())] @ coef - face[inside, 2]
            assert inside.sum() > 20 and gap.min() >= CLEARANCE - 1e-3, (frame, k, lens, gap.min())
        skin = skin_proxy(shaped.astype(np.float32), face_model)
        d, _ = skin.distance(g.frame.vertices)
        assert d.min() > -0.05, (frame, k, d.min())


@pytest.fixture(scope="module")
def ibug68(face_model):
    from facegen.specs import load_spec

    return Labeller(load_spec("ibug68", face_model), face_model)


@pytest.fixture(scope="module")
def raster(face_model):
    from facegen.generator.raster import RasterRenderer

    r = RasterRenderer(face_model, outputs=("rgb",))
    yield r
    r.close()


@pytest.fixture(scope="module")
def cycles(face_model):
    pytest.importorskip("bpy")
    from facegen.generator.cycles import CyclesRenderer

    r = CyclesRenderer(face_model, outputs=("rgb",), preset="fast", threads=2, samples=8)
    yield r
    r.close()


def rendered(face_model, ibug68, renderer, eyewear, yaw=0.0):
    p = dataclasses.replace(dressed(face_model, size=(192, 192), yaw=yaw), eyewear=eyewear)
    posed = pose_scene(p, face_model)
    result = renderer.render(p, posed)
    return result, ibug68(p, posed, result.depth, result.segmentation)


@pytest.mark.parametrize("backend", ["raster", pytest.param("cycles", marks=pytest.mark.blender)])
def test_sunglasses_hide_the_eyes_and_clear_lenses_do_not(face_model, ibug68, backend, request):
    renderer = request.getfixturevalue(backend)
    result, bare = rendered(face_model, ibug68, renderer, Eyewear())
    assert (bare.occluded_by[EYES] == OCCLUDER_ID["none"]).all()
    result, clear = rendered(face_model, ibug68, renderer, CLEAR)
    assert (clear.occluded_by[EYES] == OCCLUDER_ID["none"]).all(), clear.occluded_by[EYES]
    assert (result.segmentation == CLASS_ID["eyewear_frame"]).sum() > 150  # the frame is drawn
    # through a clear lens the eyes are seen: their class, not the lens's
    u, v = np.round(clear.points_2d[EYES]).astype(int).T
    assert (result.segmentation[v, u] != CLASS_ID["lens"]).mean() >= 0.9
    result, sun = rendered(face_model, ibug68, renderer, SUN)
    hidden = sun.occluded_by[EYES]
    assert np.isin(hidden, [OCCLUDER_ID["lens"], OCCLUDER_ID["eyewear_frame"]]).mean() >= 0.75, hidden
    assert (hidden == OCCLUDER_ID["lens"]).sum() >= 6, hidden
    assert (result.segmentation == CLASS_ID["lens"]).sum() > 400


def test_a_frame_hides_what_is_behind_it(face_model, ibug68, raster):
    """Turned 60 degrees, the near rim and temple cross the far side of the face: the points they
    cover are labelled hidden by the frame (the nearest surface in front of them, even where the
    nose would hide them too), and the frame is drawn there, in front of them."""
    from facegen.generator.labels import VISIBILITY_TOLERANCE_CM

    result, worn = rendered(face_model, ibug68, raster, dataclasses.replace(CLEAR, frame="rectangular",
                                                                            thickness=0.4), yaw=60.0)
    by_frame = np.flatnonzero(worn.occluded_by == OCCLUDER_ID["eyewear_frame"])
    assert len(by_frame) >= 2, worn.occluded_by
    u, v = np.floor(worn.points_2d[by_frame] + 0.5).astype(int).T
    assert (result.segmentation[v, u] == CLASS_ID["eyewear_frame"]).all()
    assert (result.depth[v, u] + VISIBILITY_TOLERANCE_CM < worn.points_3d[by_frame, 2]).all()
    assert (worn.visibility[by_frame] == 0).all()


@pytest.mark.blender
def test_backends_agree_on_where_the_glasses_are(face_model, raster, cycles):
    p = dataclasses.replace(dressed(face_model, size=(160, 160), yaw=20.0), eyewear=SUN)
    posed = pose_scene(p, face_model)
    a, b = raster.render(p, posed).segmentation, cycles.render(p, posed).segmentation
    for c in ("lens", "eyewear_frame"):
        x, y = a == CLASS_ID[c], b == CLASS_ID[c]
        iou = (x & y).sum() / max((x | y).sum(), 1)
        assert iou > (0.8 if c == "lens" else 0.5), (c, iou)
