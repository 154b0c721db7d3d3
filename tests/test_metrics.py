from __future__ import annotations

import json

import numpy as np
import pytest

from facegen.trainer.annotations import LandmarkSet, derive_subsets, load_landmark_set, read_pts, write_pts
from facegen.trainer.metrics import auc_fr, nme, normaliser
from facegen.trainer.score import score, write_report


def _face(rng: np.random.Generator) -> np.ndarray:
    pts = rng.uniform(0, 100, (68, 2))
    pts[36] = [30, 40]
    pts[45] = [70, 40]
    return pts


def test_normalisers():
    rng = np.random.default_rng(0)
    g = _face(rng)
    assert normaliser(g, "inter_ocular") == pytest.approx(40.0)
    pupils = np.linalg.norm(g[36:42].mean(0) - g[42:48].mean(0))
    assert normaliser(g, "ip") == pytest.approx(pupils)
    wh = g.max(0) - g.min(0)
    assert normaliser(g, "box") == pytest.approx(np.sqrt(wh[0] * wh[1]))
    with pytest.raises(ValueError, match="unknown normalisation"):
        normaliser(g, "diagonal-ish")


def test_nme_of_a_constant_shift():
    rng = np.random.default_rng(1)
    g = np.stack([_face(rng) for _ in range(3)])
    p = g + np.array([3.0, 4.0])  # every point 5 px off; inter-ocular 40 px
    np.testing.assert_allclose(nme(p, g), 5 / 40)


@pytest.mark.parametrize("method", ["spiga", "ced"])
def test_auc_and_fr(method):
    # half the images perfect, half failing: AUC ~ 0.5, FR = 0.5
    errors = np.array([0.0] * 50 + [0.2] * 50)
    auc, fr = auc_fr(errors, 0.08, method=method)
    assert fr == 0.5
    assert auc == pytest.approx(0.5, abs=2e-3)
    # uniform errors on [0, 0.08]: the CED is the diagonal, area 1/2
    auc, fr = auc_fr(np.linspace(0, 0.08, 10001), 0.08, method=method)
    assert auc == pytest.approx(0.5, abs=2e-3) and fr == 0.0


@pytest.mark.parametrize("method", ["spiga", "ced"])
def test_perfect_prediction_scores_auc_100(method):
    """SPIGA's raw formula reads 100.04 % for a perfect prediction (Simpson's overshoot at the CED's step, see
    metrics' docstring); the scorer clips: a perfect prediction scores exactly 100 %, nothing scores more."""
    from facegen.trainer.metrics import _auc_histogram

    assert _auc_histogram(np.zeros(10), 0.08) > 1  # the formula itself, kept for the golden comparison
    rng = np.random.default_rng(3)
    g = np.stack([_face(rng) for _ in range(4)])
    gts = LandmarkSet(names=list("abcd"), points=g)
    m = score(gts, gts, norms=("inter_ocular",), thresholds=(0.08, 0.1, 1.0), auc_method=method)
    assert m["metrics"]["inter_ocular"]["all"] == {"count": 4, "nme": 0.0, "auc@0.08": 100.0, "auc@0.1": 100.0,
                                                   "auc@1": 100.0, "fr@0.08": 0.0, "fr@0.1": 0.0, "fr@1": 0.0}
    for errors in ([0.0] * 9 + [1e-9], [0.0, 0.0, 0.079], [0.02] * 5):
        assert auc_fr(np.asarray(errors), 0.08, method=method)[0] <= 1.0


def test_pts_round_trip_is_one_based(tmp_path):
    pts = np.array([[0.0, 0.0], [10.5, 20.25]], np.float32)
    write_pts(tmp_path / "a.pts", pts)
    assert "1.000000 1.000000" in (tmp_path / "a.pts").read_text()
    np.testing.assert_allclose(read_pts(tmp_path / "a.pts"), pts)


def test_score_folder_against_json_with_300w_subsets(tmp_path):
    rng = np.random.default_rng(2)
    names = ["helen/testset/a", "lfpw/testset/b", "ibug/c", "ibug/d"]
    gt = {n: _face(rng) for n in names}
    for n, g in gt.items():
        write_pts(tmp_path / "gt" / f"{n}.pts", g)
    preds = [{"image": n, "landmarks": (g + [0.0, 4.0]).tolist()} for n, g in gt.items()]
    (tmp_path / "pred.json").write_text(json.dumps(preds[::-1]))  # order differs: matched by name
    gts = load_landmark_set(tmp_path / "gt")
    assert set(gts.subsets) >= {"full", "common", "challenging", "ibug"}
    assert len(gts.subsets["common"]) == 2 and len(gts.subsets["full"]) == 4
    report = score(load_landmark_set(tmp_path / "pred.json"), gts)
    assert report["metrics"]["inter_ocular"]["full"]["nme"] == pytest.approx(10.0)
    files = write_report(report, gts, tmp_path / "out")
    assert all(f.exists() and f.stat().st_size > 0 for f in files)
    assert "| full | 4 | 10.000 |" in (tmp_path / "out" / "metrics.md").read_text()


def test_derive_subsets_private():
    s = derive_subsets({"indoor": [0, 1], "outdoor": [2]}, 3)
    assert s["private"] == [0, 1, 2]


def test_missing_prediction_is_named(tmp_path):
    rng = np.random.default_rng(3)
    write_pts(tmp_path / "gt" / "x.pts", _face(rng))
    write_pts(tmp_path / "gt" / "y.pts", _face(rng))
    write_pts(tmp_path / "pred" / "x.pts", _face(rng))
    from facegen.errors import FacegenError
    with pytest.raises(FacegenError, match="'y'"):
        score(load_landmark_set(tmp_path / "pred"), load_landmark_set(tmp_path / "gt"))
