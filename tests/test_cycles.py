"""The Cycles backend: labels land where Blender draws, visibility agrees with depth, passes align,
the scene is built once, renders are deterministic. Tiny renders (96-128 px, few samples).

bpy holds one scene per process, so one renderer serves the whole module."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

pytest.importorskip("bpy")

from facegen.camera import Camera  # noqa: E402
from facegen.generator.scene import (  # noqa: E402
    Appearance, Background, Clothing, FacialHair, Hair, Light, Lighting, PosedScene, SceneParams, pose_scene,
)
from tests import cycles_helpers  # noqa: E402

pytestmark = pytest.mark.blender


def make_params(model, index: int, size=(112, 112), yaw=None) -> SceneParams:
    """A hand-built sample from a seeded RNG (stands in for the sampler in these tests)."""
    rng = np.random.default_rng(1000 + index)
    expr = np.zeros(model.num_expressions, np.float32)
    expr[rng.choice(model.num_expressions, 3, replace=False)] = rng.uniform(0, 0.6, 3)
    return SceneParams(
        index=index, seed=7,
        identity=(rng.normal(size=model.num_identity) * 0.7).astype(np.float32),
        expression=expr,
        head_rotation=(float(rng.uniform(-35, 35)) if yaw is None else yaw, float(rng.uniform(-15, 15)), float(rng.uniform(-10, 10))),
        focal_mm=float(rng.uniform(50, 85)), camera_distance=float(rng.uniform(40, 55)), image_size=size,
        lighting=Lighting(ambient=0.3, lights=[Light("area", float(rng.uniform(-60, 60)), 20.0, 1.0, size=30.0)],
                          hdri=str(rng.choice(["studio", "city", "forest", "interior"])),
                          hdri_rotation=float(rng.uniform(0, 360))),
        background=Background(kind="noise", color=(0.6, 0.5, 0.4), color2=(0.1, 0.2, 0.3), seed=index),
        appearance=Appearance(skin_albedo=tuple(rng.uniform([0.2, 0.1, 0.06], [0.7, 0.5, 0.4])),
                              brow_density=0.9, brow_thickness=1.2, lip_tint=0.8),
    )


def surface_points(model, posed: PosedScene, n: int, rng, regions=("face",)) -> np.ndarray:
    """Random barycentric points on random triangles of the given regions (world space)."""
    tris = np.concatenate([model.region_triangles(r) for r in regions])
    pick = model.triangles[rng.choice(tris, n)]
    w = rng.dirichlet([1.0, 1.0, 1.0], n)
    return np.einsum("nk,nkc->nc", w, posed.vertices[pick].astype(np.float64))


@pytest.fixture(scope="module")
def renderer(face_model, background_photos):
    from facegen.generator.cycles import CyclesRenderer

    r = CyclesRenderer(face_model, outputs=("rgb", "depth", "segmentation"), preset="fast", threads=2, samples=4,
                       backgrounds=background_photos)
    yield r
    r.close()


@pytest.fixture(scope="module")
def raster(face_model, background_photos):
    """The raster backend with the same options, for cross-backend checks."""
    from facegen.generator.scene import create_renderer

    r = create_renderer("raster", face_model, outputs=("rgb", "depth"), backgrounds=background_photos)
    yield r
    r.close()


def spread_out(uv: np.ndarray, w: int, h: int, min_dist: float = 10.0, border: float = 6.0) -> np.ndarray:
    """Indices of points inside the frame and at least `min_dist` px from each other."""
    keep = []
    for i, p in enumerate(uv):
        if not (border <= p[0] <= w - 1 - border and border <= p[1] <= h - 1 - border):
            continue
        if all(np.linalg.norm(p - uv[j]) >= min_dist for j in keep):
            keep.append(i)
    return np.array(keep)


def centroids(img: np.ndarray, uv: np.ndarray, win: int = 5) -> np.ndarray:
    out = []
    for u, v in uv:
        cu, cv = int(round(u)), int(round(v))
        patch = img[cv - win: cv + win + 1, cu - win: cu + win + 1]
        ys, xs = np.mgrid[cv - win: cv + win + 1, cu - win: cu + win + 1]
        s = patch.sum()
        out.append((np.nan, np.nan) if s <= 0 else ((patch * xs).sum() / s, (patch * ys).sum() / s))
    return np.array(out)


@pytest.mark.parametrize("case", ["square", "shifted_principal_point"])
def test_markers_land_where_the_camera_projects(renderer, face_model, case):
    params = make_params(face_model, 1, size=(128, 128) if case == "square" else (160, 112))
    posed = pose_scene(params, face_model)
    if case == "shifted_principal_point":  # a non-centred principal point exercises the lens shift
        K = posed.camera.K.copy()
        K[0, 2] += 7.3
        K[1, 2] -= 4.6
        cam = posed.camera
        posed = replace(posed, camera=Camera(K=K, R=cam.R, t=cam.t, width=cam.width, height=cam.height))
    rng = np.random.default_rng(3)
    pts = surface_points(face_model, posed, 200, rng)
    uv = posed.camera.project(pts)
    keep = spread_out(uv, posed.camera.width, posed.camera.height)
    assert len(keep) >= 15
    img = cycles_helpers.render_markers(renderer, params, posed, pts[keep], radius_px=1.5, samples=64)
    err = np.linalg.norm(centroids(img, uv[keep]) - uv[keep], axis=1)
    print(f"marker error ({case}): worst {np.nanmax(err):.3f} px, median {np.nanmedian(err):.3f} px over {len(keep)}")
    assert not np.isnan(err).any()
    assert err.max() < 0.25


def test_visibility_agrees_with_the_cycles_depth_pass(renderer, face_model):
    """Ray-cast visibility vs the same rule applied to Cycles' own z pass, over turned poses."""
    rng = np.random.default_rng(5)
    agree = total = n_hidden = 0
    for index in range(3):
        params = make_params(face_model, 10 + index, size=(192, 192), yaw=[-60.0, 0.0, 50.0][index])
        posed = pose_scene(params, face_model)
        res = renderer.render(params, posed)
        pts = surface_points(face_model, posed, 500, rng, regions=("face", "head_neck"))
        ours = cycles_helpers.visibility(renderer, pts, posed)
        theirs = depth_visibility(pts, posed, res.depth)
        agree += int((ours == theirs).sum())
        total += len(pts)
        n_hidden += int((~theirs).sum())
    share = agree / total
    print(f"visibility: ray cast vs cycles depth pass agree on {share:.4f} of {total} points ({n_hidden} hidden)")
    assert n_hidden > 50  # the turned poses must hide points, or the test proves nothing
    assert share >= 0.99


def test_visibility_agrees_with_the_raster_depth_test(renderer, raster, face_model):
    """Cross-backend: visibility from Blender's ray casting vs the raster backend's depth buffer, on
    the dense1001 labels of sampled scenes (what a shard stores) and on random face-surface points;
    the two depth sources are independent, the rule (labels.visible_from_depths) is shared."""
    from facegen.generator.labels import Labeller
    from facegen.generator.sampling import SceneSampler, load_config
    from facegen.specs import load_spec

    labeller = Labeller(load_spec("dense1001", face_model), face_model)
    sampler = SceneSampler(face_model, load_config(None), seed=5)
    rng = np.random.default_rng(11)
    agree = total = hidden = 0
    for index in range(8):
        # The head alone: the ray cast sees the head object, not hair or clothing (test_dressing).
        params = replace(sampler.sample(index), hair=Hair(), facial_hair=FacialHair(), clothing=Clothing())
        posed = pose_scene(params, face_model)
        depth = raster.render(params, posed).depth
        labels = labeller(params, posed, depth)
        points = np.concatenate([labeller.locate(posed.vertices, posed.camera.centre),
                                 surface_points(face_model, posed, 300, rng)])
        theirs = np.concatenate([labels.visibility.astype(bool),
                                 depth_visibility(points[len(labels.visibility):], posed, depth)])
        ours = cycles_helpers.visibility(renderer, points, posed)
        agree += int((ours == theirs).sum())
        total += len(points)
        hidden += int((~theirs).sum())
    print(f"visibility: cycles ray cast vs raster depth test agree on {agree / total:.4f} of {total} points "
          f"({hidden} hidden)")
    assert hidden > 0.05 * total  # the poses hide a real share of points: the comparison means something
    assert agree / total >= 0.99


def depth_visibility(points: np.ndarray, posed: PosedScene, depth: np.ndarray) -> np.ndarray:
    from facegen.generator.labels import depth_test, in_frame_mask

    cam = posed.camera
    pc = cam.to_camera(points)
    uv = cam.project_camera(pc)
    return in_frame_mask(uv, pc[:, 2], cam.width, cam.height) & depth_test(uv, pc[:, 2], depth)


def test_depth_and_segmentation_align_with_the_image(renderer, face_model):
    params = make_params(face_model, 2, size=(128, 128), yaw=10.0)
    params.expression[face_model.expression_index("jawOpen")] = 0.6  # show teeth and mouth
    posed = pose_scene(params, face_model)
    res = renderer.render(params, posed)
    seg, depth = res.segmentation, res.depth
    assert res.image.shape == (128, 128, 3) and res.image.dtype == np.uint8
    assert seg.shape == depth.shape == res.mask.shape == (128, 128)
    assert ((seg > 0) == (depth > 0)).all()  # one coverage for both passes
    present = set(np.unique(seg).tolist())
    for cls in (0, 1, 2, 3, 4, 5, 7):
        assert cls in present, f"class {cls} missing; present {sorted(present)}"
    # Depth is camera z (not ray length): the iBUG landmark vertices of the face, where visible.
    pts = posed.vertices[face_model.landmarks68[27:48]].astype(np.float64)
    uv = posed.camera.project(pts)
    z = posed.camera.to_camera(pts)[:, 2]
    vis = cycles_helpers.visibility(renderer, pts, posed)
    ui, vi = np.rint(uv[vis]).astype(int).T
    assert np.median(np.abs(depth[vi, ui] - z[vis])) < 0.1
    # Brows lie above the eyes, lips below the nose tip, in the image.
    rows = {c: np.nonzero(seg == c)[0].mean() for c in (2, 3, 4)}
    assert rows[2] < rows[3] < rows[4]
    nose_v = posed.camera.project(posed.vertices[face_model.landmarks68[30:31]])[0, 1]
    assert rows[4] > nose_v
    # The background class shows the backplate, the face is not it: images differ there.
    assert res.mask[seg == 1].all() and not res.mask[seg == 0].any()


def test_scene_is_built_once_and_reused(renderer, face_model):
    import bpy

    before = renderer.object_count()
    pointers = [o.as_pointer() for o in bpy.data.objects]
    for index in range(4):
        p = make_params(face_model, 30 + index, size=(64, 64))
        p.lighting.lights = p.lighting.lights[: index % 2 + 1]
        p.lighting.hdri = ["studio", "night", "sunset", "forest"][index]
        renderer.render(p, pose_scene(p, face_model))
    # Light pool may grow to the largest count seen (2 here), nothing else.
    assert renderer.object_count() <= before + 2
    assert all(ptr in {o.as_pointer() for o in bpy.data.objects} for ptr in pointers)


def test_asking_for_a_gpu_never_times_the_cpu(renderer):
    """device "auto" falls back to the CPU; "GPU" (bench/gpu_check.sh asks for it) does not: on a
    machine whose Blender finds no GPU it is an error that says so, on one that does it is that GPU."""
    import bpy

    from facegen.errors import FacegenError
    from facegen.generator.blender_util import setup_device

    scene = bpy.data.scenes.new("device-check")  # not the renderer's scene; the device preference is global
    try:
        found = setup_device(scene, "auto")
        if found == "CPU":
            with pytest.raises(FacegenError, match="Cycles device GPU: this machine's Blender finds no OPTIX / CUDA"):
                setup_device(scene, "GPU")
            assert scene.cycles.device == "CPU"
        else:
            assert setup_device(scene, "GPU") == found and scene.cycles.device == "GPU"
    finally:
        bpy.data.scenes.remove(scene)


def test_declares_what_it_can_do(renderer):
    """One render at a time: the worker must not look for batch or async methods."""
    from facegen.generator.scene import AsyncRenderer, BatchRenderer

    assert not renderer.supports_batch and not isinstance(renderer, BatchRenderer)
    assert not renderer.supports_async and not isinstance(renderer, AsyncRenderer)


def test_same_params_same_image(renderer, face_model):
    p = make_params(face_model, 3, size=(64, 64))
    posed = pose_scene(p, face_model)
    a = renderer.render(p, posed)
    other = make_params(face_model, 4, size=(64, 64))
    renderer.render(other, pose_scene(other, face_model))  # change the resident scene in between
    b = renderer.render(p, posed)
    assert np.array_equal(a.image, b.image)
    assert np.array_equal(a.segmentation, b.segmentation) and np.array_equal(a.depth, b.depth)


def test_both_backends_draw_the_same_parts(renderer, raster, face_model):
    """The same SceneParams gives the same geometry in both backends: the parts of generator/parts.py
    (`scene_parts`), each triangle (winding included) with its part's material, at the posed positions.
    Cycles draws every part, the see-through ones in its overlay object; raster the others. Read
    back from Blender's meshes and from the raster backend's GPU buffers."""
    from facegen.generator.parts import scene_parts
    from tests import raster_helpers
    from tests.raster_helpers import canonical

    params = make_params(face_model, 5, size=(64, 64))
    posed = pose_scene(params, face_model)
    renderer.render(params, posed)
    drawn_cycles = cycles_helpers.drawn_geometry(renderer)
    raster.render(params, posed)
    drawn_raster = raster_helpers.drawn_geometry(raster)
    parts = scene_parts(params, posed, face_model)
    for part in parts:
        expected = canonical(part.vertex_ids[part.triangles])
        obj = drawn_cycles["facegen_overlay" if part.see_through else "facegen_head"]
        rows = obj["material"] == part.material
        assert np.array_equal(canonical(obj["triangles"][rows]), expected), part.name
        np.testing.assert_allclose(obj["positions"][rows], posed.vertices[obj["triangles"][rows]], atol=1e-4)
        in_raster = drawn_raster["part"] == part.name
        assert in_raster.any() != part.see_through, part.name
        if not part.see_through:
            assert np.array_equal(canonical(drawn_raster["triangles"][in_raster]), expected), part.name
    assert np.array_equal(drawn_raster["positions"], posed.vertices[drawn_raster["triangles"]])
    def count(see_through):
        return sum(len(p.triangles) for p in parts if p.see_through == see_through)

    # Nothing else is drawn.
    assert len(drawn_cycles["facegen_head"]["triangles"]) == len(drawn_raster["triangles"]) == count(False)
    assert len(drawn_cycles["facegen_overlay"]["triangles"]) == count(True)


BACKGROUNDS = {  # one of each kind (the photo: tests/conftest.py's background_photos)
    "solid": Background(kind="solid", color=(0.7, 0.4, 0.2)),
    "gradient": Background(kind="gradient", color=(0.9, 0.2, 0.1), color2=(0.1, 0.3, 0.8), angle=120.0),
    "noise": Background(kind="noise", color=(0.6, 0.5, 0.4), color2=(0.1, 0.2, 0.3), seed=9),
    "photo": Background(kind="photo", photo="coords.png", seed=4),
    "hdri": Background(kind="hdri"),
}


@pytest.mark.parametrize("kind", list(BACKGROUNDS))
def test_both_backends_show_the_same_background(renderer, raster, face_model, background_photos, kind):
    """The same SceneParams gives the same background in both backends: away from the head (3 px
    beyond what either drew, past Cycles' pixel filter), Cycles' image (its film over the backplate)
    and the raster image (the backplate where nothing was drawn) are the same bytes: the backplate's."""
    import cv2

    from facegen.generator.backgrounds import backplate

    params = replace(make_params(face_model, 40, size=(96, 80)), background=BACKGROUNDS[kind], camera_distance=80.0)
    posed = pose_scene(params, face_model)
    ours, theirs = renderer.render(params, posed), raster.render(params, posed)
    drawn = ((ours.segmentation > 0) | (theirs.depth > 0)).astype(np.uint8)
    free = cv2.dilate(drawn, np.ones((7, 7), np.uint8)) == 0
    assert 0.3 < free.mean() < 0.9
    plate = backplate(params, posed.camera, background_photos, None)
    assert np.array_equal(ours.image[free], plate[free])
    assert np.array_equal(theirs.image[free], plate[free])


def test_hdri_backplate_is_the_world_cycles_lights_with(renderer, face_model):
    """The HDRI backplate shows the panorama where Cycles' world has it and as bright: Cycles' own
    render of its world (head hidden, film opaque) matches the backplate seen through Cycles' pixel
    filter (about a Gaussian of 0.5 px), to a level or so on average and with no offset; the same
    backplate a pixel off, or turned by 10 degrees, does not."""
    import cv2

    from facegen.generator.backgrounds import backplate, srgb_decode, srgb_encode

    params = replace(make_params(face_model, 41, size=(96, 80)), background=BACKGROUNDS["hdri"])
    params.lighting.hdri, params.lighting.hdri_rotation = "forest", 75.0
    posed = pose_scene(params, face_model)
    world = cycles_helpers.render_world(renderer, params, posed, samples=64).astype(np.float64)[4:-4, 4:-4]

    def seen(background_params, dx=0.0):
        linear = srgb_decode(backplate(background_params, posed.camera, None, None))
        linear = cv2.warpAffine(cv2.GaussianBlur(linear, (0, 0), 0.5), np.float32([[1, 0, dx], [0, 1, 0]]),
                                linear.shape[1::-1], borderMode=cv2.BORDER_REFLECT)
        return srgb_encode(linear).astype(np.float64)[4:-4, 4:-4]

    diff = world - seen(params)
    print(f"world vs backplate: mean |diff| {np.abs(diff).mean():.2f}, mean {diff.mean():+.2f}, "
          f"99th percentile {np.percentile(np.abs(diff), 99):.0f} levels")
    assert np.abs(diff).mean() < 1.5 and abs(diff.mean()) < 0.5 and np.percentile(np.abs(diff), 99) < 15
    assert np.abs(world - seen(params, dx=1.0)).mean() > 2 * np.abs(diff).mean()
    turned = replace(params, lighting=replace(params.lighting, hdri_rotation=85.0))
    assert np.abs(world - seen(turned)).mean() > 2 * np.abs(diff).mean()
