from __future__ import annotations

import numpy as np
import pytest

from facegen.trainer.transforms import (Compose, FaceCrop, RandomAffine, RandomFlip, Warp, apply_matrix,
                                        build_transforms, crop_matrix, invert)


def _sample(points, h=200, w=240):
    return {"image": np.zeros((h, w, 3), np.uint8), "landmarks": np.asarray(points, np.float32)}


def _centroid(img: np.ndarray) -> np.ndarray:
    m = img[..., 0].astype(np.float64)
    m = np.where(m > 0.05 * m.max(), m, 0)  # ignore interpolation dust
    ys, xs = np.mgrid[: m.shape[0], : m.shape[1]]
    return np.array([(m * xs).sum() / m.sum(), (m * ys).sum() / m.sum()])


def test_label_round_trip_through_inverse():
    rng = np.random.default_rng(0)
    pts = rng.uniform(20, 180, (68, 2)).astype(np.float32)
    t = Compose([FaceCrop(128, 1.3, jitter=0.1), RandomAffine(rotation=40, p=1.0), Warp()])
    s = t(_sample(pts), rng)
    back = apply_matrix(s["landmarks"], invert(s["matrix"]))
    assert np.abs(back - pts).max() < 1e-3


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_dot_follows_its_label(seed):
    """Draw a blurred dot at a label, warp image and label together, find the dot at the warped label."""
    import cv2

    rng = np.random.default_rng(seed)
    img = np.zeros((200, 240, 3), np.uint8)
    dot = np.array([97.0, 83.0])
    cv2.circle(img, (int(dot[0]), int(dot[1])), 4, (255, 255, 255), -1)
    img = cv2.GaussianBlur(img, (0, 0), 2.0)
    assert np.abs(_centroid(img) - dot).max() < 0.05  # the dot's centroid is where we drew it
    pts = np.array([dot, [60, 50], [150, 140]], np.float32)
    t = Compose([FaceCrop(96, 1.4), RandomAffine(rotation=45, scale=(0.7, 1.3), translate=0.1, p=1.0),
                 RandomFlip(np.array([0, 2, 1]), p=1.0), Warp()])
    s = t({"image": img, "landmarks": pts}, rng)
    assert np.abs(_centroid(s["image"]) - s["landmarks"][0]).max() < 0.15


def test_crop_maps_box_edges_to_crop_edges():
    m = crop_matrix((50.0, 60.0), 40.0, 128)
    # left/top edge of the square -> -0.5; right/bottom edge -> 127.5; centre -> 63.5
    np.testing.assert_allclose(apply_matrix(np.array([[30.0, 40.0], [70.0, 80.0], [50, 60]]), m),
                               [[-0.5, -0.5], [127.5, 127.5], [63.5, 63.5]], atol=1e-5)


def test_flip_uses_flip_map_and_mirrors_about_centre():
    pts = np.array([[40, 50], [80, 50], [60, 90]], np.float32)
    t = Compose([FaceCrop(64, 1.0), Warp()])
    ref = t(_sample(pts.copy()), np.random.default_rng(0))["landmarks"]
    flipped = Compose([FaceCrop(64, 1.0), RandomFlip(np.array([1, 0, 2]), p=1.0), Warp()])(
        {**_sample(pts.copy()), "visibility": np.array([1, 0, 1]), "occluded_by": np.array([0, 2, 0])},
        np.random.default_rng(0))
    # point 0 (left eye) now holds the mirrored right eye: x -> 63 - x
    np.testing.assert_allclose(flipped["landmarks"][0], [63 - ref[1][0], ref[1][1]], atol=1e-4)
    np.testing.assert_allclose(flipped["landmarks"][2], [63 - ref[2][0], ref[2][1]], atol=1e-4)
    assert flipped["visibility"].tolist() == [0, 1, 1]
    assert flipped["occluded_by"].tolist() == [2, 0, 0]  # what hides a point travels with it


def test_training_pipeline_is_deterministic_and_shaped():
    rng_pts = np.random.default_rng(5).uniform(50, 150, (68, 2))
    img = np.random.default_rng(6).integers(0, 255, (200, 240, 3), dtype=np.uint8)
    t = build_transforms(64, train=True, flip_map=np.arange(68))
    a = t({"image": img, "landmarks": rng_pts.copy()}, np.random.default_rng(7))
    b = t({"image": img, "landmarks": rng_pts.copy()}, np.random.default_rng(7))
    assert a["image"].shape == (64, 64, 3) and a["image"].dtype == np.uint8
    assert np.array_equal(a["image"], b["image"]) and np.array_equal(a["landmarks"], b["landmarks"])
    g = build_transforms(32, gray=True)({"image": img, "landmarks": rng_pts.copy()}, np.random.default_rng(0))
    assert g["image"].shape == (32, 32, 1)
