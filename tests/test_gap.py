"""Where the error comes from: per-region, per-yaw-bin and visible / hidden breakdowns of every report,
rendered shards as a test set (`facegen eval --dataset shards`), and `facegen gap`."""

from __future__ import annotations

import numpy as np
import pytest

from facegen.trainer.annotations import IBUG68_REGIONS, LandmarkSet, derive_subsets, merge_regions
from facegen.trainer.score import breakdown_table, score, write_report

JAW, EYES = IBUG68_REGIONS["jaw"], IBUG68_REGIONS["eyes"]


def known_errors() -> tuple[LandmarkSet, LandmarkSet]:
    """5 faces whose ground-truth box is exactly 100 px (points 0 and 16 at opposite corners) and whose outer
    eye corners are 40 px apart; predictions off by designed amounts: every eye point 1 px, every jaw point
    3 px on the frontal faces (yaw 0-30: faces 0, 1), 4 px at yaw 30-60 (face 4), 6 px at yaw 60-90 (2, 3);
    the rest exact. Jaw points 0-7 are hidden in every face."""
    rng = np.random.default_rng(0)
    gt = rng.uniform(10, 90, (5, 68, 2))
    gt[:, 0], gt[:, 16] = [0.0, 0.0], [100.0, 100.0]
    gt[:, 36], gt[:, 45] = [30.0, 40.0], [70.0, 40.0]
    pred = gt.copy()
    jaw_px = np.array([3.0, 3.0, 6.0, 6.0, 4.0])
    pred[:, JAW, 0] += jaw_px[:, None]
    pred[:, EYES, 1] += 1.0
    vis = np.ones((5, 68), bool)
    vis[:, :8] = False
    names = [f"f{i}" for i in range(5)]
    subsets = derive_subsets({"yaw 0-30": [0, 1], "yaw 30-60": [4], "yaw 60-90": [2, 3]}, 5)
    return (LandmarkSet(names, pred, source="pred"),
            LandmarkSet(names, gt, subsets, source="gt", visibility=vis))


def test_breakdown_per_region_yaw_bin_and_visibility_is_exact():
    pred, gt = known_errors()
    report = score(pred, gt, norms=("box", "inter_ocular"))
    box = report["breakdown"]["box"]
    assert list(box) == ["all", "yaw 0-30", "yaw 30-60", "yaw 60-90", "balanced"]
    assert list(box["all"]["groups"]) == ["jaw", "brows", "nose", "eyes", "mouth", "no_jaw"]
    # box = 100 px: a region's NME in % is its points' mean error in px
    expected_jaw = {"all": (3 + 3 + 6 + 6 + 4) / 5, "yaw 0-30": 3.0, "yaw 30-60": 4.0, "yaw 60-90": 6.0,
                    "balanced": (3 + 4 + 6) / 3}
    for subset, jaw in expected_jaw.items():
        g = box[subset]["groups"]
        assert g["jaw"] == pytest.approx(jaw), subset
        assert g["eyes"] == pytest.approx(1.0) and g["brows"] == g["nose"] == g["mouth"] == 0.0
        assert g["no_jaw"] == pytest.approx(12 / 51)  # 12 eye points of the 51 outside the jaw
    assert box["all"]["points"] == {"jaw": 17, "brows": 10, "nose": 9, "eyes": 12, "mouth": 20, "no_jaw": 51}
    # hidden: jaw points 0-7, (3 + 3 + 6 + 6 + 4) / 5 px; visible: per face 9 jaw points + 12 eye points at 1 px
    assert box["all"]["hidden"] == pytest.approx(22 / 5)
    assert box["all"]["visible"] == pytest.approx((9 * 22 + 12 * 5) / (60 * 5))
    assert (box["all"]["n_visible"], box["all"]["n_hidden"]) == (300, 40)
    assert box["yaw 60-90"]["hidden"] == pytest.approx(6.0)
    assert box["yaw 60-90"]["visible"] == pytest.approx((9 * 6 + 12) / 60)
    # another normalisation divides by its own distance: 40 px between the outer eye corners
    io = report["breakdown"]["inter_ocular"]
    assert io["yaw 60-90"]["groups"]["jaw"] == pytest.approx(6 / 40 * 100)
    assert io["all"]["groups"]["eyes"] == pytest.approx(1 / 40 * 100)
    # the plain metrics are untouched by the breakdown: mean over faces of (17 jaw + 12 eye errors) / 68
    per_face = (17 * np.array([3, 3, 6, 6, 4]) + 12) / 68
    assert report["metrics"]["box"]["all"]["nme"] == pytest.approx(per_face.mean())


def test_breakdown_reaches_the_report_files(tmp_path):
    pred, gt = known_errors()
    report = score(pred, gt, norms=("box",))
    files = write_report(report, gt, tmp_path)
    assert tmp_path / "breakdown_box.png" in files and (tmp_path / "breakdown_box.png").stat().st_size > 0
    md = (tmp_path / "metrics.md").read_text()
    assert "| subset | n | jaw | brows | nose | eyes | mouth | no_jaw | visible | hidden |" in md
    assert "| yaw 60-90 | 2 | 6.000 | 0.000 | 0.000 | 1.000 | 0.000 | 0.235 | 1.100 | 6.000 |" in md
    import json

    assert json.loads((tmp_path / "metrics.json").read_text())["breakdown"]["box"]["yaw 30-60"]["groups"]["jaw"] == pytest.approx(4.0)


def test_regions_merge_spec_groups():
    groups = {"oval": [0, 1], "chin": [2], "brow_left": [3], "brow_right": [4], "eye_left": [5], "eye_right": [6],
              "nose": [7], "lips_outer": [8], "lips_inner": [9], "cheek_left": [10], "cheek_right": [11],
              "forehead": [12]}
    assert merge_regions(groups, 13) == {"jaw": [0, 1, 2], "brows": [3, 4], "nose": [7], "eyes": [5, 6],
                                         "mouth": [8, 9], "cheeks": [10, 11], "forehead": [12],
                                         "no_jaw": list(range(3, 13))}
    # without a spec, 68 points are iBUG-68's regions; other counts get none (and no breakdown columns)
    g = np.zeros((2, 68, 2))
    assert LandmarkSet(["a", "b"], g).regions()["mouth"] == list(range(48, 68))
    report = score(LandmarkSet(["a"], np.ones((1, 5, 2))), LandmarkSet(["a"], np.arange(10.0).reshape(1, 5, 2)))
    assert report["breakdown"]["box"]["all"]["groups"] == {} and breakdown_table(report) == ""
