"""The backplate both backends draw behind the head (generator/backgrounds.py): each kind as
documented, deterministic, and the raster backend's background pixels are exactly the backplate
(tests/test_cycles.py checks that Cycles' are too)."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from facegen.errors import FacegenError
from facegen.generator.backgrounds import (
    backplate, bundled_hdri_dir, find_hdri, hdri_view, load_hdri, srgb_decode, srgb_encode,
)
from facegen.generator.scene import Background, Lighting, SceneParams, make_camera

KINDS = ("solid", "gradient", "noise", "photo", "hdri")
C1, C2 = (0.9, 0.2, 0.1), (0.1, 0.3, 0.8)


def params_with(kind: str, size=(96, 64), seed: int = 5, **background) -> SceneParams:
    """A sample whose background is `kind` (the head is irrelevant here)."""
    bg = Background(kind=kind, color=C1, color2=C2, angle=30.0, photo="coords.png" if kind == "photo" else "",
                    seed=seed)
    bg = dataclasses.replace(bg, **background)
    return SceneParams(index=0, seed=1, identity=np.zeros(1, np.float32), expression=np.zeros(1, np.float32),
                       image_size=size, focal_mm=50.0, background=bg,
                       lighting=Lighting(hdri="forest" if kind == "hdri" else "", hdri_rotation=40.0))


def plate(params: SceneParams, photos=None) -> np.ndarray:
    return backplate(params, make_camera(params), photos, None)


def needs_hdris():
    if bundled_hdri_dir() is None:
        pytest.skip("Blender's bundled HDRIs (the bpy package) are not installed")


def test_srgb_round_trip_is_exact():
    """Cycles composites its film over the decoded backplate: empty film must give the bytes back."""
    x = np.arange(256, dtype=np.uint8)
    assert np.array_equal(srgb_encode(srgb_decode(x)), x)


@pytest.mark.parametrize("kind", KINDS)
def test_each_kind_is_a_frame_of_bytes_and_deterministic(kind, background_photos):
    if kind == "hdri":
        needs_hdris()
    p = params_with(kind)
    a, b = plate(p, background_photos), plate(p, background_photos)
    assert a.shape == (64, 96, 3) and a.dtype == np.uint8
    assert np.array_equal(a, b)
    if kind in ("noise", "photo"):  # another seed: another noise field or photo window
        assert not np.array_equal(a, plate(params_with(kind, seed=6), background_photos))
    if kind == "hdri":
        turned = dataclasses.replace(p, lighting=dataclasses.replace(p.lighting, hdri_rotation=200.0))
        assert not np.array_equal(a, plate(turned))


def test_solid_and_gradient_colours():
    c1, c2 = np.rint(np.array(C1) * 255), np.rint(np.array(C2) * 255)
    assert (plate(params_with("solid")) == c1).all()
    # 0 deg: color on the left, color2 on the right, full range across the frame
    g = plate(params_with("gradient", angle=0.0))
    assert (g[:, 0] == c1).all() and (g[:, -1] == c2).all()
    assert (g == g[:1]).all()  # constant down each column
    # 90 deg: color at the top, color2 at the bottom; any angle spans both colours corner to corner
    g = plate(params_with("gradient", angle=90.0))
    assert np.array_equal(g[0, 0], c1) and np.array_equal(g[-1, 0], c2)
    g = plate(params_with("gradient", angle=30.0))
    assert np.array_equal(g[0, 0], c1) and np.array_equal(g[-1, -1], c2)


def test_noise_mixes_the_two_colours_only():
    """Every noise pixel is a mix of the two colours (in sRGB: one weight t for all channels, to a
    level of rounding), both extremes appear, and the field is smooth."""
    n = plate(params_with("noise", size=(160, 120))).astype(np.float64)
    c1, c2 = np.rint(np.array(C1) * 255), np.rint(np.array(C2) * 255)
    # The weights each channel allows (its byte +-1), intersected over the channels: not empty.
    a, b = ((n + d - c1) / (c2 - c1) for d in (-1.0, 1.0))
    lo, hi = np.minimum(a, b).max(axis=-1), np.maximum(a, b).min(axis=-1)
    assert (lo <= hi).all()
    t = (lo + hi) / 2
    assert t.min() < 0.02 and t.max() > 0.98
    assert np.abs(np.diff(t, axis=1)).mean() < 0.05


def test_photo_window_keeps_the_aspect_ratio(background_photos):
    """The photo's red channel is its column and green its row: in the window both advance by the
    same number of photo pixels per frame pixel (no stretching), and different seeds move the window."""
    windows = []
    for seed in range(4):
        img = plate(params_with("photo", size=(96, 48), seed=seed), background_photos).astype(np.float64)
        per_col = np.polyfit(np.arange(96), img[24, :, 0], 1)[0] * 299 / 255  # photo columns per frame column
        per_row = np.polyfit(np.arange(48), img[:, 48, 1], 1)[0] * 199 / 255  # photo rows per frame row
        assert per_col == pytest.approx(per_row, rel=0.05), seed
        assert 0.5 * 300 / 96 * 0.95 < per_col < 300 / 96 * 1.05  # 50-100 % of the widest 2:1 window
        windows.append((img[0, 0, 0], img[0, 0, 1]))
    assert len(set(windows)) == 4


def test_photo_without_folder_and_unknown_hdri_are_named():
    with pytest.raises(FacegenError, match="coords.png"):
        plate(params_with("photo"))
    with pytest.raises(FacegenError, match="nowhere_sky"):
        find_hdri("nowhere_sky", None)


def test_hdri_view_turns_with_the_rotation():
    """Turning the panorama by a whole number of its columns shifts what the camera sees by exactly
    those columns: the backplate follows `hdri_rotation` as Cycles' world mapping does."""
    needs_hdris()
    env = load_hdri(find_hdri("forest", None)).pixels
    camera = make_camera(params_with("hdri"))
    W = env.shape[1]
    turned = hdri_view(env, camera, 40.0 + 360.0 * 64 / W)
    rolled = hdri_view(np.roll(env, 64, axis=1), camera, 40.0)
    np.testing.assert_allclose(turned, rolled, atol=1e-4)
    assert not np.allclose(turned, hdri_view(env, camera, 40.0), atol=1e-2)


@pytest.fixture(scope="module")
def raster(face_model, background_photos):
    from facegen.generator.raster import RasterRenderer

    r = RasterRenderer(face_model, outputs=("rgb", "depth"), backgrounds=background_photos)
    yield r
    r.close()


def sample_with_background(face_model, kind: str, size=(96, 64)) -> SceneParams:
    """A sampled head, further away than usual, in front of params_with(kind)'s background."""
    from facegen.generator.sampling import SceneSampler, load_config

    p = SceneSampler(face_model, load_config(), seed=3, image_size=size).sample(0)
    ref = params_with(kind, size=size)
    return dataclasses.replace(p, camera_distance=1.5 * p.camera_distance, background=ref.background,
                               lighting=dataclasses.replace(p.lighting, hdri=ref.lighting.hdri,
                                                            hdri_rotation=ref.lighting.hdri_rotation))


@pytest.mark.parametrize("kind", KINDS)
def test_raster_background_is_the_backplate(kind, face_model, raster, background_photos):
    """Through the raster backend's own path: where it drew nothing, its image is the backplate."""
    from facegen.generator.scene import pose_scene

    if kind == "hdri":
        needs_hdris()
    p = sample_with_background(face_model, kind)
    result = raster.render(p, pose_scene(p, face_model))
    empty = result.depth == 0
    assert 0.2 < empty.mean() < 0.95
    assert np.array_equal(result.image[empty], plate(p, background_photos)[empty])
