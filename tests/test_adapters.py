"""Label adapters (trainer/adapters.py): exact nearest-subset start, label transfer in training, `facegen adapt`,
and eval / predict with an adapted checkpoint. Tiny data: toy shards with 100 points (a "dense" spec whose
iBUG-68 correspondence is a proper subset) and the 12 real faces of real300w-mini."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from facegen.cli import main
from facegen.errors import FacegenError
from facegen.trainer.adapt import AdaptConfig, adapt, default_out
from facegen.trainer.adapters import adapter_from_record, adapter_record, create_adapter
from facegen.trainer.evaluate import evaluate, open_eval_dataset
from facegen.trainer.models import create_model
from facegen.trainer.predictor import load_predictor
from facegen.trainer.real_data import RealView, open_real, real_split
from facegen.trainer.train import TrainConfig, train
from tests.toy_shards import REAL_MINI, write_toy_shards

pytestmark = pytest.mark.skipif(not REAL_MINI.is_dir(), reason=f"{REAL_MINI} absent")

HOURGLASS = {"channels": 16, "stacks": 1, "depth": 2}


@pytest.fixture(scope="module")
def dense_shards(tmp_path_factory) -> Path:
    """48 toy faces with 100 points; their iBUG-68 correspondence picks 68 of them."""
    return write_toy_shards(tmp_path_factory.mktemp("dense") / "shards", 48, size=64, num_landmarks=100)


def _cfg(out, **kw):
    # no test-time flip: adapt measures single crops, and these tests compare its numbers with eval's
    base = dict(model="resnet18", model_kwargs={"width": 8}, out=str(out), input_size=32, steps=4, batch_size=8,
                workers=0, val_fraction=0.1, lr=1e-3, seed=1, device="cpu", test_flip=False)
    base.update(kw)
    return TrainConfig(**base)


@pytest.fixture(scope="module")
def synthetic_checkpoints(dense_shards, tmp_path_factory) -> dict[str, Path]:
    """Tiny synthetic-only checkpoints (coordinates and heatmaps) of the 100-point spec."""
    out = tmp_path_factory.mktemp("syn")
    for name, model, kw in (("resnet", "resnet18", {"width": 8}), ("hourglass", "hourglass", HOURGLASS)):
        train(_cfg(out / name, data=[str(dense_shards)], model=model, model_kwargs=kw, steps=10), progress=False)
    return {"resnet": out / "resnet" / "last.pt", "hourglass": out / "hourglass" / "last.pt"}


def _index(num_points: int = 100) -> np.ndarray:
    return np.random.default_rng(0).choice(num_points, 68, replace=False)


def test_mlp_adapter_starts_exactly_at_the_nearest_subset():
    torch.manual_seed(0)
    pts = torch.rand(5, 100, 2) * 40 - 4  # crop pixels, some outside the crop
    index = _index()
    adapter = create_adapter("mlp", 100, index, 32)
    got = adapter({"landmarks": pts})["landmarks"]
    assert torch.equal(got, pts[:, index])  # bit for bit
    # rebuilt from its checkpoint record it is the same function
    again = adapter_from_record(adapter_record(adapter, "2d"))
    assert torch.equal(again({"landmarks": pts})["landmarks"], got)


def test_unet_adapter_starts_exactly_at_the_nearest_subset_and_needs_heatmaps():
    torch.manual_seed(0)
    model = create_model("hourglass", 100, **HOURGLASS).eval()
    with torch.no_grad():
        out = model(torch.rand(3, 3, 32, 32))
        out["heatmaps"] = [h * 30 for h in out["heatmaps"]]  # peaked maps, as a trained model's
        out["landmarks"] = model.decode(out["heatmaps"][-1])
        index = _index()
        adapter = create_adapter("unet", 100, index, 32, model=model)
        got = adapter(out)
    assert torch.equal(got["landmarks"], out["landmarks"][:, index])  # bit for bit
    assert got["heatmaps"][0].shape == (3, 68, 8, 8)
    with pytest.raises(FacegenError, match="--adapter mlp"):
        create_adapter("unet", 100, index, 32, model=create_model("resnet18", 100, width=8))
    with pytest.raises(FacegenError, match="choose one of mlp, unet"):
        create_adapter("linear", 100, index, 32)


def _losses(run_dir: Path) -> list[float]:
    return [r["loss"] for r in json.loads((run_dir / "history.json").read_text())["history"] if "loss" in r]


@pytest.mark.parametrize("strategy,adapter,model", [("mixed", "mlp", "resnet"), ("fine-tune", "mlp", "resnet"),
                                                    ("mixed", "unet", "hourglass")])
def test_strategies_with_an_adapter_lower_their_loss_and_save_it(strategy, adapter, model, dense_shards,
                                                                  synthetic_checkpoints, tmp_path):
    kw = dict(model="resnet18", model_kwargs={"width": 8}) if model == "resnet" else \
        dict(model="hourglass", model_kwargs=HOURGLASS)
    if strategy == "mixed":
        kw.update(data=[str(dense_shards)], real_share=0.5)
    else:
        kw.update(init=str(synthetic_checkpoints[model]), lr=3e-2)
    s = train(_cfg(tmp_path, strategy=strategy, real=str(REAL_MINI), adapter=adapter, steps=30, log_every=1,
                   **{"lr": 3e-3, **kw}), progress=False)
    losses = _losses(tmp_path)
    first, last = np.mean(losses[:3]), np.mean(losses[-3:])
    assert last < 0.8 * first, (first, last)
    ck = torch.load(s["last"], weights_only=False)
    rec = ck["adapter"]
    assert rec["name"] == adapter and rec["convention"] == "2d" and rec["fitted_on"]["strategy"] == strategy
    # the adapter learned: its residual is no longer zero (it started exactly at the nearest subset)
    last_layer = rec["state"]["out.weight" if adapter == "mlp" else "head.weight"]
    assert last_layer.abs().sum() > 0
    history = json.loads((tmp_path / "history.json").read_text())["history"]
    assert any("real_val_nme_adapter" in r for r in history)
    assert load_predictor(s["last"], "cpu").adapter is not None


def test_adapter_refuses_strategies_where_it_means_nothing(dense_shards, tmp_path):
    with pytest.raises(FacegenError, match="facegen adapt"):
        train(_cfg(tmp_path / "s", data=[str(dense_shards)], adapter="mlp"), progress=False)
    with pytest.raises(FacegenError, match="nothing to adapt"):
        train(_cfg(tmp_path / "r", strategy="real-only", real=str(REAL_MINI), adapter="mlp"), progress=False)
    with pytest.raises(FacegenError, match="--adapter mlp"):
        train(_cfg(tmp_path / "u", strategy="mixed", data=[str(dense_shards)], real=str(REAL_MINI), adapter="unet"),
              progress=False)


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_adapt_fits_on_held_out_faces_and_eval_and_predict_use_it(synthetic_checkpoints, tmp_path):
    ckpt = tmp_path / "best.pt"
    ckpt.write_bytes(synthetic_checkpoints["resnet"].read_bytes())
    before_sha = _sha(ckpt)
    runner = CliRunner()
    r = runner.invoke(main, ["adapt", "--checkpoint", str(ckpt), "--real", str(REAL_MINI), "--real-val-fraction",
                             "0.25", "--max-epochs", "30", "--patience", "10", "--device", "cpu"])
    assert r.exit_code == 0, r.output
    summary = json.loads(r.output[r.output.index("{"):])
    out = default_out(ckpt)
    assert summary["out"] == str(out) and out.name == "best_adapted.pt" and _sha(ckpt) == before_sha
    # the toy model knows nothing of real faces: fitted on 9 faces, the adapter must beat the nearest subset
    # on the 3 held-out ones by a wide margin, and on the faces it was fitted on
    assert summary["n_train"] == 9 and summary["n_val"] == 3 and summary["best_epoch"] > 0
    assert summary["val_nme_after"] < 0.7 * summary["val_nme_before"], summary
    assert summary["train_nme_after"] < 0.7 * summary["train_nme_before"], summary

    # eval on the held-out faces scores both modes; they match what adapt measured in crop pixels
    p = load_predictor(out, "cpu")
    assert p.adapter is not None and p.adapter_info["convention"] == "2d"
    base = open_real(REAL_MINI)
    val = RealView(base, real_split(len(base), None, 0, 0.25).val)
    report = evaluate(p, val)
    assert set(report["modes"]) == {"nearest", "adapter"}
    nme = {m: r["metrics"]["inter_ocular"]["all"]["nme"] for m, r in report["modes"].items()}
    assert nme["nearest"] == pytest.approx(summary["val_nme_before"], rel=1e-4)
    assert nme["adapter"] == pytest.approx(summary["val_nme_after"], rel=1e-4)
    assert report["metrics"] == report["modes"]["nearest"]["metrics"]  # top level: the nearest subset, as before
    plain = evaluate(load_predictor(ckpt, "cpu"), val)
    assert plain["metrics"] == report["metrics"] and set(plain["modes"]) == {"nearest"}

    # facegen eval writes both; facegen score reproduces the adapter's table from its files
    ev = tmp_path / "eval"
    r = runner.invoke(main, ["eval", "--checkpoint", str(out), "--dataset", "folder", "--root", str(REAL_MINI),
                             "--out", str(ev), "--device", "cpu"])
    assert r.exit_code == 0, r.output
    assert "NME inter_ocular % nearest | NME inter_ocular % adapter" in r.output
    metrics = json.loads((ev / "metrics.json").read_text())
    assert set(metrics["modes"]) == {"nearest", "adapter"} and (ev / "modes.md").exists()
    assert len(list((ev / "adapter" / "predictions").rglob("*.pts"))) == 12
    r = runner.invoke(main, ["score", "-p", str(ev / "adapter" / "predictions.json"), "-g",
                             str(ev / "ground_truth.json"), "--norm", "io", "--out", str(tmp_path / "score")])
    assert r.exit_code == 0, r.output
    rescored = json.loads((tmp_path / "score" / "metrics.json").read_text())
    assert rescored["metrics"]["inter_ocular"]["all"]["nme"] == pytest.approx(
        metrics["modes"]["adapter"]["metrics"]["inter_ocular"]["all"]["nme"], rel=1e-6)

    # facegen predict writes the adapter's iBUG-68 points, and says so
    image = next(REAL_MINI.rglob("*.png"))
    r = runner.invoke(main, ["predict", str(image), "--checkpoint", str(out), "-o", str(tmp_path / "pred"),
                             "--device", "cpu"])
    assert r.exit_code == 0, r.output
    pred = json.loads((tmp_path / "pred" / "predictions.json").read_text())
    assert pred["adapter"]["name"] == "mlp" and len(pred["landmark_names"]) == 68 and "adapter" in pred["points"]
    faces = next(iter(pred["results"].values()))
    assert faces and all(len(f["landmarks"]) == 68 for f in faces)
    r = runner.invoke(main, ["predict", str(image), "--checkpoint", str(out), "-o", str(tmp_path / "raw"),
                             "--no-adapter", "--device", "cpu"])
    raw = json.loads((tmp_path / "raw" / "predictions.json").read_text())
    assert raw["adapter"] is None and all(len(f["landmarks"]) == 100 for f in next(iter(raw["results"].values())))


def test_adapt_unet_on_heatmaps(synthetic_checkpoints, tmp_path):
    s = adapt(AdaptConfig(str(synthetic_checkpoints["hourglass"]), str(REAL_MINI), adapter="unet",
                          real_val_fraction=0.25, max_epochs=12, patience=5, out=str(tmp_path / "unet.pt"),
                          device="cpu"), log=lambda m: None)
    assert s["best_epoch"] > 0 and s["val_nme_after"] < 0.9 * s["val_nme_before"], s
    rep = evaluate(load_predictor(tmp_path / "unet.pt", "cpu"), open_eval_dataset("folder", REAL_MINI))
    assert rep["modes"]["adapter"]["adapter"]["name"] == "unet"
    with pytest.raises(FacegenError, match="works on heatmaps"):
        adapt(AdaptConfig(str(synthetic_checkpoints["resnet"]), str(REAL_MINI), adapter="unet", device="cpu"))


def test_adapt_never_overwrites_its_checkpoint_and_names_what_is_missing(synthetic_checkpoints, tmp_path):
    ck = synthetic_checkpoints["resnet"]
    with pytest.raises(FacegenError, match="is the checkpoint being adapted"):
        adapt(AdaptConfig(str(ck), str(REAL_MINI), out=str(ck), device="cpu"))
    with pytest.raises(FacegenError, match="no such checkpoint"):
        adapt(AdaptConfig(str(tmp_path / "nope.pt"), str(REAL_MINI), out=str(tmp_path / "x.pt"), device="cpu"))
    with pytest.raises(FacegenError, match="raise --real-val-fraction"):
        adapt(AdaptConfig(str(ck), str(REAL_MINI), real_val_fraction=0.0, out=str(tmp_path / "x.pt"), device="cpu"))
    with pytest.raises(FacegenError, match="only 11 real faces"):
        adapt(AdaptConfig(str(ck), str(REAL_MINI), n_real=12, real_val_fraction=0.1, out=str(tmp_path / "x.pt"),
                          device="cpu"))


# (command line with {placeholders}, words the message must contain): exit code 2, no traceback
CLI_MISTAKES = [
    ("adapt --checkpoint {txt} --real {real}", ["notes.txt", "checkpoint"]),
    ("adapt --checkpoint {resnet} --real {missing}", ["'--real'", "missing"]),
    ("adapt --checkpoint {resnet} --real {real} --out {tmp}", ["'--out'"]),
    ("adapt --checkpoint {resnet} --real {real} --out {resnet}", ["is the checkpoint being adapted", "_adapted.pt"]),
    ("adapt --checkpoint {resnet} --real {real} --real-val-fraction 0", ["'--real-val-fraction'"]),
    ("adapt --checkpoint {resnet} --real {real} --adapter linear", ["'--adapter'", "mlp"]),
    ("adapt --checkpoint {resnet} --real {real} --adapter unet", ["--adapter unet", "--adapter mlp"]),
    ("adapt --checkpoint {resnet} --real {real} --n-real 12", ["--n-real 12", "only 11 real faces"]),
    ("train --data {shards} --adapter mlp --out {tmp}/a", ["--strategy synthetic-only", "facegen adapt"]),
    ("train --strategy real-only --real {real} --adapter mlp --out {tmp}/b", ["nothing to adapt"]),
]


@pytest.mark.parametrize("line,needles", CLI_MISTAKES, ids=[c[0].split(" --")[0] + str(i) for i, c in
                                                            enumerate(CLI_MISTAKES)])
def test_adapter_mistakes_are_named(line, needles, synthetic_checkpoints, dense_shards, tmp_path):
    (tmp_path / "notes.txt").write_text("not a checkpoint\n")
    paths = {"txt": tmp_path / "notes.txt", "real": REAL_MINI, "missing": tmp_path / "missing", "tmp": tmp_path,
             "resnet": synthetic_checkpoints["resnet"], "shards": dense_shards}
    result = CliRunner().invoke(main, line.format(**paths).split())
    assert isinstance(result.exception, SystemExit), result.exception
    assert result.exit_code == 2 and "Traceback" not in result.output, result.output
    for needle in needles:
        assert needle in result.output, result.output
    assert not default_out(synthetic_checkpoints["resnet"]).exists()


def test_resume_keeps_the_adapter(dense_shards, tmp_path):
    kw = dict(strategy="mixed", data=[str(dense_shards)], real=str(REAL_MINI), adapter="mlp", real_share=0.5)
    train(_cfg(tmp_path, steps=4, **kw), progress=False)
    saved = torch.load(tmp_path / "last.pt", weights_only=False)["adapter"]["state"]
    with pytest.raises(FacegenError, match="trained with --adapter mlp, resumed with no --adapter"):
        train(_cfg(tmp_path, steps=6, resume=str(tmp_path / "last.pt"), **{**kw, "adapter": None}), progress=False)
    # resumed at its last step, it saves the adapter it read (a fresh one would have a zero last layer)
    train(_cfg(tmp_path, steps=4, resume=str(tmp_path / "last.pt"), **kw), progress=False)
    resumed = torch.load(tmp_path / "last.pt", weights_only=False)["adapter"]["state"]
    assert saved["out.weight"].abs().sum() > 0 and torch.equal(resumed["out.weight"], saved["out.weight"])
    assert train(_cfg(tmp_path, steps=6, resume=str(tmp_path / "last.pt"), **kw), progress=False)["steps"] == 6


def test_adapt_reports_faces_left_out_of_fitting_and_stopping(synthetic_checkpoints, tmp_path):
    """--real-test-fraction: faces neither fitted on nor used to stop; adapt scores them before and after,
    the same numbers eval gives on them."""
    ckpt = tmp_path / "best.pt"
    ckpt.write_bytes(synthetic_checkpoints["resnet"].read_bytes())
    r = CliRunner().invoke(main, ["adapt", "--checkpoint", str(ckpt), "--real", str(REAL_MINI), "--real-val-fraction",
                                  "0.25", "--real-test-fraction", "0.25", "--max-epochs", "20", "--device", "cpu"])
    assert r.exit_code == 0, r.output
    summary = json.loads(r.output[r.output.index("{"):])
    assert summary["n_test"] == 3 and summary["n_val"] == 3 and summary["n_train"] == 6
    assert "test " in r.output
    base = open_real(REAL_MINI)
    test = RealView(base, real_split(len(base), None, 0, 0.25, 0.25).test)
    report = evaluate(load_predictor(default_out(ckpt), "cpu"), test)
    nme = {m: rep["metrics"]["inter_ocular"]["all"]["nme"] for m, rep in report["modes"].items()}
    assert nme["nearest"] == pytest.approx(summary["test_nme_before"], rel=1e-4)
    assert nme["adapter"] == pytest.approx(summary["test_nme_after"], rel=1e-4)
