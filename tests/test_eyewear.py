"""Glasses (generator/eyewear.py): fitted to each face without touching it, drawn by both backends
from the same geometry, and labelled: sunglasses and frames hide the points behind them, clear lenses
do not."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from facegen.generator.eyewear import CLEARANCE, FRAMES, LENS_THICKNESS, LENSES, glasses, lens_layout
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
    """Whatever the identity and expression, no point of the face behind a lens comes closer to its
    back surface than CLEARANCE, and the temples stay outside the skin."""
    from matplotlib.path import Path

    from facegen.generator.eyewear import _face_vertices
    from facegen.generator.hair import skin_proxy

    face_ids = _face_vertices(face_model)
    rng = np.random.default_rng(3)
    for k in range(4):
        shaped = face_model.meshes(rng.normal(size=(1, face_model.num_identity)).astype(np.float32) * 1.5,
                                   rng.uniform(0, 0.7, (1, face_model.num_expressions)).astype(np.float32))[0]
        g = glasses(dataclasses.replace(CLEAR, frame=frame, size=float(rng.uniform(1.35, 1.7))), shaped, face_model)
        face = shaped[face_ids].astype(np.float64)
        back_rims = g.lenses.vertices[lens_layout(g.lenses)["back_rim"]]
        for lens in range(2):
            ring = back_rims[lens]  # the back surface bulges forward from it: its rim is its rearmost
            inside = Path(ring[:, :2]).contains_points(face[:, :2])
            a = np.c_[ring[:, :2], np.ones(len(ring))]
            coef = np.linalg.lstsq(a, ring[:, 2], rcond=None)[0]
            gap = np.c_[face[inside, :2], np.ones(inside.sum())] @ coef - face[inside, 2]
            assert inside.sum() > 20 and gap.min() >= CLEARANCE - 1e-3, (frame, k, lens, gap.min())
        skin = skin_proxy(shaped.astype(np.float32), face_model)
        d, _ = skin.distance(g.frame.vertices)
        assert d.min() > -0.05, (frame, k, d.min())


def test_lenses_are_closed_thin_plano_solids(face_model):
    """Each lens is a closed solid wound outwards (every edge shared by two triangles that cross it in
    opposite directions, a positive volume), its front surface the back one moved LENS_THICKNESS
    along the lens's normal: parallel faces, no optical power."""
    g = glasses(CLEAR, face_model.neutral, face_model)
    v, t = g.lenses.vertices.astype(np.float64), g.lenses.triangles
    layout = lens_layout(g.lenses)
    for lens in range(2):
        rows = t[len(t) // 2 * lens:len(t) // 2 * (lens + 1)]
        # closed once the edge band's copies of the rims are merged with the faces' rims
        key = np.round(v * 1e4).astype(np.int64)
        _, ids = np.unique(key, axis=0, return_inverse=True)
        tri = ids.ravel()[rows]
        edges = np.concatenate([tri[:, [0, 1]], tri[:, [1, 2]], tri[:, [2, 0]]])
        directed = {tuple(e) for e in edges.tolist()}
        assert len(directed) == len(edges) and all((b, a) in directed for a, b in directed)
        a, b, c = (v[rows[:, k]] for k in range(3))
        volume = np.einsum("ij,ij->i", a, np.cross(b, c)).sum() / 6
        front, back = v[layout["front_rim"][lens]], v[layout["back_rim"][lens]]
        area = abs(0.5 * np.sum(back[:, 0] * np.roll(back[:, 1], -1) - np.roll(back[:, 0], -1) * back[:, 1]))
        assert 0.9 * LENS_THICKNESS * area < volume < 1.2 * LENS_THICKNESS * area, (volume, area)
        step = front - back
        assert np.allclose(step, step[0], atol=1e-5) and abs(np.linalg.norm(step[0]) - LENS_THICKNESS) < 1e-5
        assert step[0][2] > 0.95 * LENS_THICKNESS  # forward, away from the face


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


@pytest.mark.blender
def test_clear_lenses_refract_in_cycles_and_the_labels_stay(face_model, ibug68, raster, cycles):
    """Turned 40 degrees (the camera's rays meet the lenses at 40-55 degrees), clear lenses refract:
    against the same lenses letting the light straight through (their Ray Portals without a
    direction: the same closures and weights, the same path choices), the image changes inside the
    lenses and hardly outside them, and the eyes' labels are the same: a plano lens moves what is
    seen through it by under 0.1 cm, and the data passes see through it both ways."""
    p = dataclasses.replace(dressed(face_model, size=(192, 192), yaw=40.0), eyewear=CLEAR)
    dark = dataclasses.replace(p, eyewear=dataclasses.replace(CLEAR, lens_opacity=0.9))
    lens = raster.render(dark, pose_scene(dark, face_model)).segmentation == CLASS_ID["lens"]
    refracted, labels = rendered(face_model, ibug68, cycles, CLEAR, yaw=40.0)
    tree = cycles.materials["lens"].node_tree
    portals = [n.inputs["Direction"] for n in tree.nodes if n.bl_idname == "ShaderNodeBsdfRayPortal"]
    links = [(link.from_socket, link.to_socket) for socket in portals for link in socket.links]
    assert len(portals) == len(links) == 2  # going into the lens and leaving it
    for socket in portals:
        tree.links.remove(socket.links[0])
    try:
        straight, straight_labels = rendered(face_model, ibug68, cycles, CLEAR, yaw=40.0)
    finally:
        for a, b in links:
            tree.links.new(a, b)
    diff = np.abs(refracted.image.astype(int) - straight.image.astype(int)).sum(-1)
    assert lens.sum() > 400
    assert diff[lens].mean() > 5 and diff[lens].mean() > 10 * diff[~lens].mean(), (diff[lens].mean(), diff[~lens].mean())
    for field in ("points_2d", "visibility", "occluded_by"):
        assert np.array_equal(getattr(labels, field)[EYES], getattr(straight_labels, field)[EYES]), field
    assert (labels.occluded_by[EYES] != OCCLUDER_ID["lens"]).all()


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
