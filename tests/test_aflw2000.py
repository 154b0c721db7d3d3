"""AFLW2000-3D: the reader (official .jpg + .mat layout, 1-based MATLAB pixels, yaw from Pose_Para) and
the protocol the field reports (NME by the ground-truth box, per |yaw| bin and their balanced mean)."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest
from click.testing import CliRunner
from scipy.io import savemat

from facegen.trainer.annotations import LandmarkSet
from facegen.trainer.datasets import AFLW2000, PtsFolder
from facegen.trainer.score import score
from tests.conftest import require_shared

YAWS = [5.0, -20.0, 45.0, -50.0, 75.0, 355.0]  # degrees; 355 wraps to -5


def face_points(rng) -> np.ndarray:
    """(3, 68) plausible pt3d_68: a ring of points in a 100 px face, 1-based pixels."""
    t = np.linspace(0, 2 * np.pi, 68, endpoint=False)
    xy = np.stack([120 + 40 * np.cos(t), 110 + 50 * np.sin(t)]) + rng.normal(0, 3, (2, 68))
    return np.vstack([xy, rng.normal(0, 10, (1, 68))])


@pytest.fixture(scope="module")
def fixture_set(tmp_path_factory):
    root = tmp_path_factory.mktemp("aflw")
    rng = np.random.default_rng(0)
    points = {}
    for i, yaw in enumerate(YAWS):
        name = f"image{i * 2 + 2:05d}"
        pt3d = face_points(rng)
        savemat(root / f"{name}.mat", {"pt3d_68": pt3d, "Pose_Para": [[0.1, np.radians(yaw), -0.05, 200, 220, -90, 0.0015]],
                                        "roi": [[0, 0, 240, 240]]})
        cv2.imwrite(str(root / f"{name}.jpg"), np.full((240, 240, 3), 90 + 20 * i, np.uint8))
        points[name] = pt3d
    return root, points


def test_reader_converts_matlab_pixels_and_reads_the_yaw(fixture_set):
    root, points = fixture_set
    ds = AFLW2000(root)
    assert ds.names == sorted(points) and len(ds) == len(YAWS)
    for i, name in enumerate(ds.names):
        assert np.allclose(ds.ground_truth()[i], points[name][:2].T - 1.0)  # 1-based -> 0-based
        assert ds.raw(i)["image"].shape == (240, 240, 3)
    assert np.allclose(ds.yaw, [5, -20, 45, -50, 75, -5])
    assert ds.subsets() == {"yaw 0-30": [0, 1, 5], "yaw 30-60": [2, 3], "yaw 60-90": [4]}


def test_reader_agrees_with_the_official_pts_of_real_faces():
    """On the real AFLW2000-3D half in ../shared: the .mat's pt3d_68 gives the same points as the
    derived 1-based .pts (rounded to 3 decimals), and the yaw bins hold every image."""
    root = require_shared("data", "aflw2000-3d-half")
    ds = AFLW2000(root)
    assert len(ds) == 1000
    assert np.abs(ds.ground_truth() - PtsFolder(root).ground_truth()).max() < 1e-3
    bins = ds.subsets()
    assert sum(len(v) for v in bins.values()) == 1000 and min(len(v) for v in bins.values()) > 100


def test_broken_mat_is_named(tmp_path):
    savemat(tmp_path / "image00002.mat", {"pt3d_68": np.zeros((3, 10))})
    cv2.imwrite(str(tmp_path / "image00002.jpg"), np.zeros((8, 8, 3), np.uint8))
    with pytest.raises(Exception, match="image00002.mat"):
        AFLW2000(tmp_path)


def test_protocol_box_nme_per_yaw_bin_and_balanced():
    """Errors of known size: each image's prediction is shifted by k % of its box size, so each bin's NME
    and the balanced mean are known exactly."""
    rng = np.random.default_rng(1)
    gt = np.stack([face_points(rng)[:2].T for _ in range(6)])
    box = np.sqrt(np.ptp(gt[..., 0], 1) * np.ptp(gt[..., 1], 1))
    shift = np.array([1.0, 1.0, 3.0, 3.0, 9.0, 1.0]) / 100  # bins: {0,1,5} -> 1 %, {2,3} -> 3 %, {4} -> 9 %
    pred = gt + (shift * box)[:, None, None] * np.array([1.0, 0.0])
    subsets = {"all": list(range(6)), "yaw 0-30": [0, 1, 5], "yaw 30-60": [2, 3], "yaw 60-90": [4]}
    names = [f"i{i}" for i in range(6)]
    # the scorer adds the balanced row itself whenever the subsets are the three yaw bins
    report = score(LandmarkSet(names, pred, source="p"), LandmarkSet(names, gt, subsets, source="g"), norms=("box",))
    rows = report["metrics"]["box"]
    assert rows["yaw 0-30"]["nme"] == pytest.approx(1.0) and rows["yaw 30-60"]["nme"] == pytest.approx(3.0)
    assert rows["yaw 60-90"]["nme"] == pytest.approx(9.0)
    assert rows["balanced"]["nme"] == pytest.approx((1 + 3 + 9) / 3)
    assert rows["all"]["nme"] == pytest.approx(shift.mean() * 100)
    assert rows["balanced"]["count"] == 6


def test_eval_cli_scores_aflw2000_with_its_protocol(fixture_set, toy_shards, tmp_path):
    from facegen.cli import main
    from facegen.trainer.train import TrainConfig, train

    train(TrainConfig(data=[str(toy_shards)], model="resnet18", model_kwargs={"width": 8}, out=str(tmp_path / "run"),
                      input_size=32, steps=1, batch_size=8, workers=0), progress=False)
    root, _ = fixture_set
    result = CliRunner().invoke(main, ["eval", "--checkpoint", str(tmp_path / "run" / "last.pt"), "--dataset", "aflw2000",
                                       "--root", str(root), "--out", str(tmp_path / "eval")])
    assert result.exit_code == 0, result.output
    assert "| balanced | 6 |" in result.output and "yaw 60-90" in result.output and "NME box %" in result.output
    report = json.loads((tmp_path / "eval" / "metrics.json").read_text())
    assert list(report["metrics"]) == ["box"]
    bins = [report["metrics"]["box"][b]["nme"] for b in ("yaw 0-30", "yaw 30-60", "yaw 60-90")]
    assert report["metrics"]["box"]["balanced"]["nme"] == pytest.approx(np.mean(bins))
    assert json.loads((tmp_path / "eval" / "subsets.json").read_text())["yaw 60-90"] == [4]
    # scoring stays separate from predicting: `facegen score` on what eval wrote gives the same report
    again = CliRunner().invoke(main, ["score", "-p", str(tmp_path / "eval" / "predictions.json"),
                                      "-g", str(tmp_path / "eval" / "ground_truth.json"),
                                      "--subsets", str(tmp_path / "eval" / "subsets.json"), "--norm", "box"])
    assert again.exit_code == 0, again.output
    assert again.output.splitlines()[:8] == result.output.splitlines()[:8]


def test_300w_lp_reader_reads_both_conventions(tmp_path):
    from facegen.trainer.datasets import W300LP

    rng = np.random.default_rng(2)
    expected = {}
    for group in ("AFW", "HELEN"):
        (tmp_path / group).mkdir()
        (tmp_path / "landmarks" / group).mkdir(parents=True)
        name = f"{group}_1_0"
        p3, p2 = face_points(rng)[:2].T, face_points(rng)[:2].T
        savemat(tmp_path / "landmarks" / group / f"{name}_pts.mat", {"pts_3d": p3, "pts_2d": p2})
        savemat(tmp_path / group / f"{name}.mat", {"Pose_Para": [[0.0, np.radians(40.0), 0.0, 0, 0, 0, 1e-3]]})
        cv2.imwrite(str(tmp_path / group / f"{name}.jpg"), np.zeros((240, 240, 3), np.uint8))
        expected[f"{group}/{name}"] = (p3, p2)
    three, two = W300LP(tmp_path), W300LP(tmp_path, convention="2d")
    assert three.names == two.names == sorted(expected)
    for i, name in enumerate(three.names):
        assert np.allclose(three.ground_truth()[i], expected[name][0] - 1)
        assert np.allclose(two.ground_truth()[i], expected[name][1] - 1)
    assert np.allclose(three.yaw, 40.0) and three.raw(0)["image"].shape == (240, 240, 3)
    with pytest.raises(Exception, match="landmarks"):
        W300LP(tmp_path / "AFW")
