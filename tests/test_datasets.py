from __future__ import annotations

import shutil

import cv2
import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from tests.toy_shards import REAL_MINI, write_toy_shards
from facegen.errors import FacegenError
from facegen.trainer.annotations import read_pts, write_pts
from facegen.trainer.datasets import FaceSynthetics, PtsFolder, Real300W, ShardDataset, split_indices
from facegen.trainer.transforms import apply_matrix, build_transforms


def test_shard_dataset_reads_lazily_and_in_workers(toy_shards):
    ds = ShardDataset([toy_shards], transform=build_transforms(32, train=True, flip_map=np.arange(68)), seed=3)
    assert len(ds) == 48 and ds.num_landmarks == 68
    assert ds.shards._handles == {}  # nothing opened until a sample is read
    item = ds[5]
    assert item["image"].dtype == torch.uint8 and item["image"].shape == (3, 32, 32)
    assert item["landmarks"].shape == (68, 2)
    assert item["occluded_by"].dtype == torch.uint8 and item["occluded_by"].shape == (68,)
    batches = list(DataLoader(ds, batch_size=8, num_workers=2))
    assert sum(len(b["index"]) for b in batches) == 48


def test_shard_dataset_labels_follow_the_crop(toy_shards):
    ds = ShardDataset([toy_shards], transform=build_transforms(48))
    raw = ds.raw(3)
    item = ds[3]
    np.testing.assert_allclose(item["landmarks"].numpy(), apply_matrix(raw["landmarks"], item["matrix"].numpy()),
                               atol=1e-4)
    # landmark box of 1.25 scale: points lie well inside the crop
    lm = item["landmarks"].numpy()
    assert lm.min() > 0 and lm.max() < 47


def test_split_indices_disjoint_and_fixed():
    tr, va = split_indices(100, 0.1, seed=1)
    assert len(va) == 10 and len(set(tr) & set(va)) == 0 and len(tr) + len(va) == 100
    assert np.array_equal(va, split_indices(100, 0.1, seed=1)[1])


def test_missing_shard_folder_is_named(tmp_path):
    with pytest.raises(FacegenError, match="nope"):
        ShardDataset([tmp_path / "nope"])


def _fake_300w(root, counts):
    rng = np.random.default_rng(0)
    for folder, n in counts.items():
        for i in range(n):
            d = root / folder
            d.mkdir(parents=True, exist_ok=True)
            cv2.imwrite(str(d / f"im{i}.jpg"), np.zeros((20, 20, 3), np.uint8))
            write_pts(d / f"im{i}.pts", rng.uniform(2, 18, (68, 2)))


def test_300w_splits(tmp_path):
    counts = {"afw": 2, "helen/trainset": 3, "lfpw/trainset": 1, "helen/testset": 2, "lfpw/testset": 1, "ibug": 2,
              "300W/01_Indoor": 1, "300W/02_Outdoor": 2}
    _fake_300w(tmp_path, counts)
    sizes = {s: len(Real300W(tmp_path, s)) for s in ("train", "common", "challenging", "full", "private")}
    assert sizes == {"train": 6, "common": 3, "challenging": 2, "full": 5, "private": 3}
    with pytest.raises(FacegenError, match="unknown 300-W split"):
        Real300W(tmp_path, "nope")
    with pytest.raises(FacegenError, match="missing ibug"):
        Real300W(tmp_path / "afw", "challenging")


@pytest.mark.skipif(not REAL_MINI.is_dir(), reason=f"{REAL_MINI} absent")
def test_real_mini_folder_including_300vw():
    ds = PtsFolder(REAL_MINI)
    assert len(ds) == 12
    assert "300VW/001/annot/000006" in ds.names
    raw = ds.raw(0)
    assert raw["image"].ndim == 3 and raw["landmarks"].shape == (68, 2)
    assert np.allclose(raw["landmarks"], read_pts(ds.items[0][1]))
    # 1-based -> 0-based: the stored file has 1 more than what the loader returns
    first = [float(v) for v in ds.items[0][1].read_text().split("{")[1].split()[:2]]
    np.testing.assert_allclose(raw["landmarks"][0], np.array(first) - 1, atol=1e-4)
    assert len(Real300W(REAL_MINI, "indoor")) == 2


@pytest.mark.skipif(not REAL_MINI.is_dir(), reason=f"{REAL_MINI} absent")
@pytest.mark.parametrize("ext", [".ppm", ".pgm", ".bmp", ".tif", ".tiff", ".webp"])
def test_pts_folder_reads_every_opencv_format(tmp_path, ext):
    """A .pts beside an image in any format OpenCV reads is read like .png / .jpg (lossless ones exactly)."""
    src = REAL_MINI / "lfpw" / "trainset" / "image_0001"
    bgr = cv2.imread(str(src.with_suffix(".png")))
    if ext == ".pgm":  # grey only; read back as three equal channels
        grey = cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY)
        assert cv2.imwrite(str(tmp_path / f"face{ext}"), grey)
        bgr = cv2.cvtColor(grey, cv2.COLOR_GRAY2BGR)
    else:
        assert cv2.imwrite(str(tmp_path / f"face{ext}"), bgr)
    shutil.copy(src.with_suffix(".pts"), tmp_path / "face.pts")
    raw = PtsFolder(tmp_path).raw(0)
    assert raw["image"].shape == bgr.shape and raw["landmarks"].shape == (68, 2)
    if ext != ".webp":  # lossy by default
        np.testing.assert_array_equal(raw["image"], bgr[:, :, ::-1])


def test_face_synthetics_fixture(tmp_path):
    rng = np.random.default_rng(0)
    for k in ("000000", "000001"):
        cv2.imwrite(str(tmp_path / f"{k}.png"), rng.integers(0, 255, (64, 64, 3), dtype=np.uint8))
        cv2.imwrite(str(tmp_path / f"{k}_seg.png"), rng.integers(0, 19, (64, 64), dtype=np.uint8))
        np.savetxt(tmp_path / f"{k}_ldmks.txt", rng.uniform(10, 50, (70, 2)), fmt="%.4f")
    ds = FaceSynthetics(tmp_path, transform=build_transforms(32))
    assert len(ds) == 2 and ds[1]["landmarks"].shape == (68, 2)
    raw70 = FaceSynthetics(tmp_path, points=70).raw(0)
    assert raw70["landmarks"].shape == (70, 2) and raw70["segmentation"].shape == (64, 64)
    np.testing.assert_allclose(raw70["landmarks"], np.loadtxt(tmp_path / "000000_ldmks.txt"), atol=1e-4)
