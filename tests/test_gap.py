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


# -- rendered shards as a test set, on a real (tiny) checkpoint ----------------------------------------

@pytest.fixture(scope="module")
def rendered(tmp_path_factory, face_model):
    """16 raster renders of ibug68 at 96 px and a resnet18 trained on them for 5 steps (CPU, seconds)."""
    from click.testing import CliRunner

    from facegen.cli import main
    from facegen.trainer.train import TrainConfig, train

    root = tmp_path_factory.mktemp("gap")
    result = CliRunner().invoke(main, ["render", "--spec", "ibug68", "--n", "16", "--out", str(root / "i68"),
                                       "--renderer", "raster", "--size", "96", "--quiet"])
    assert result.exit_code == 0, result.output
    train(TrainConfig(data=[str(root / "i68")], model="resnet18", model_kwargs={"width": 8}, out=str(root / "run"),
                      input_size=64, steps=5, batch_size=8, workers=0, device="cpu"), progress=False)
    return root / "i68", root / "run" / "last.pt"


def test_eval_on_shards_equals_eval_on_the_same_samples_as_pts(rendered, tmp_path):
    from facegen.trainer.datasets import PtsFolder, export_pts
    from facegen.trainer.evaluate import evaluate, open_eval_dataset
    from facegen.trainer.predictor import load_predictor
    from facegen.trainer.score import score_files

    shards, ckpt = rendered
    predictor = load_predictor(ckpt, "cpu")
    ds = open_eval_dataset("shards", shards)
    assert ds.names[:2] == ["000000", "000001"] and len(ds) == 16
    yaw = np.abs(ds.yaw)
    assert ds.subsets()["yaw 0-30"] == np.flatnonzero(yaw < 30).tolist()
    on_shards = evaluate(predictor, ds, tmp_path / "shards")
    assert on_shards["compared"]["points"] == "spec"  # an ibug68 checkpoint on ibug68 shards: its own points
    assert list(on_shards["metrics"]) == ["box", "inter_ocular", "inter_pupil"]
    assert "visible" in on_shards["breakdown"]["box"]["yaw 0-30"]

    folder = export_pts(shards, tmp_path / "pts")
    assert sorted(p.name for p in folder.iterdir())[:2] == ["000000.png", "000000.pts"]
    on_pts = evaluate(predictor, PtsFolder(folder), tmp_path / "folder", norms=("box", "inter_ocular", "inter_pupil"))
    for norm in on_shards["metrics"]:
        for name, e in on_shards["per_image"][norm].items():
            assert on_pts["per_image"][norm][name] == pytest.approx(e, rel=1e-6, abs=1e-9), (norm, name)
    # per subset (the shards' yaw bins, given to the scorer as facegen score --subsets) and per region
    again, _ = score_files(tmp_path / "folder" / "predictions.json", folder, tmp_path / "shards" / "subsets.json",
                           norms=("box", "inter_ocular", "inter_pupil"))
    for norm, rows in on_shards["metrics"].items():
        for subset, row in rows.items():
            assert again["metrics"][norm][subset]["nme"] == pytest.approx(row["nme"], rel=1e-6)
            mine, theirs = on_shards["breakdown"][norm][subset]["groups"], again["breakdown"][norm][subset]["groups"]
            assert mine.keys() == theirs.keys()
            for g in mine:
                assert theirs[g] == pytest.approx(mine[g], rel=1e-6), (norm, subset, g)
    assert (tmp_path / "shards" / "breakdown_box.png").exists()
    assert "| visible | hidden |" in (tmp_path / "shards" / "metrics.md").read_text()

    # compared on iBUG-68 on both sides (the path of a checkpoint of another spec): the same numbers here,
    # since ibug68's correspondence is the identity
    in_ibug = evaluate(predictor, ds, compare="ibug68")
    assert in_ibug["compared"]["points"] == "ibug68"
    assert in_ibug["metrics"]["box"]["all"]["nme"] == pytest.approx(on_shards["metrics"]["box"]["all"]["nme"])


def test_shards_of_another_spec_are_compared_on_ibug68_or_refused(toy_shards):
    from facegen.errors import FacegenError
    from facegen.trainer.datasets import ShardTestSet
    from facegen.trainer.predictor import SpecInfo

    ds = ShardTestSet(toy_shards)  # toy68: points p0..p67, an ibug68 attribute, no YAML points (jaw "2d")
    ibug = SpecInfo("ibug68", "", [f"q{i}" for i in range(68)], np.arange(68), np.arange(68))
    compared = ds.compared_with(ibug)
    assert compared.compared == "ibug68" and compared.ground_truth().shape == (48, 68, 2)
    assert compared.groups()["jaw"] == list(range(17)) and compared.is_ibug68()
    bare = SpecInfo("bare40", "", [f"b{i}" for i in range(40)], np.arange(40), None)
    with pytest.raises(FacegenError, match="no iBUG-68 correspondence"):
        ds.compared_with(bare)


def test_gap_cli_writes_its_report(rendered, tmp_path):
    import json

    from click.testing import CliRunner

    from facegen.cli import main
    from tests.toy_shards import REAL_MINI

    if not REAL_MINI.is_dir():
        pytest.skip(f"{REAL_MINI} is absent (it sits beside the checkout as ../shared/data/real300w-mini)")
    shards, ckpt = rendered
    out = tmp_path / "gap"
    result = CliRunner().invoke(main, ["gap", "--checkpoint", str(ckpt), "--shards", str(shards), "--real",
                                       str(REAL_MINI), "--out", str(out), "--device", "cpu"])
    assert result.exit_code == 0, result.output
    for f in ("gap.md", "gap.json", "gap.png", "sets/i68/metrics.json", "sets/real300w-mini/metrics.md"):
        assert (out / f).stat().st_size > 0, f
    report = json.loads((out / "gap.json").read_text())
    assert [s["name"] for s in report["sets"]] == ["i68", "real300w-mini"]
    syn, real = (s["row"] for s in report["sets"])
    per_set = json.loads((out / "sets" / "real300w-mini" / "metrics.json").read_text())
    assert real["nme"] == pytest.approx(per_set["metrics"]["box"]["all"]["nme"]) and real["n"] == 12
    assert real["regions"]["jaw"] == pytest.approx(per_set["breakdown"]["box"]["all"]["groups"]["jaw"])
    assert real["yaw"] == {} and real["visible"] is None and syn["visible"] is not None and syn["yaw"]
    md = (out / "gap.md").read_text()
    assert "| set | kind | n | NME box % | jaw | brows | nose | eyes | mouth | no_jaw |" in md
    assert f"| real300w-mini | real | 12 | {real['nme']:.2f} |" in md
    assert "## Reading" in md and f"i68 -> real300w-mini: NME x{real['nme'] / syn['nme']:.2f}" in md
    # the same folder twice gets two names
    from facegen.trainer.gap import set_names

    assert set_names([shards, shards, REAL_MINI]) == ["i68", "i68-2", "real300w-mini"]
