"""Training strategies (trainer/strategies/) on tiny data: toy shards and the 12 real faces of real300w-mini."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from facegen.errors import FacegenError
from facegen.trainer.real_data import open_real, real_split
from facegen.trainer.strategies import list_strategies
from facegen.trainer.train import TrainConfig, train
from tests.toy_shards import REAL_MINI, SHARED

AFLW_HALF = SHARED / "data" / "aflw2000-3d-half"
GOLDEN = Path(__file__).parent / "data" / "train_history_before_split.json"


def _cfg(out, **kw):
    base = dict(model="resnet18", model_kwargs={"width": 8}, out=str(out), input_size=32, steps=4, batch_size=8,
                workers=0, val_fraction=0.1, lr=1e-3, seed=1)
    base.update(kw)
    return TrainConfig(**base)


@pytest.mark.parametrize("model,kwargs", [("resnet18", {"width": 8}),
                                          ("hourglass", {"channels": 16, "stacks": 1, "depth": 2})])
def test_synthetic_only_keeps_the_loss_history_of_the_single_function_trainer(toy_shards, tmp_path, model, kwargs,
                                                                             monkeypatch):
    """Recorded from `train()` before it was split into stages (same toy shards, seed and settings), in
    PyTorch's default memory layout: channels-last sums in another order (losses differ by ~1e-4)."""
    monkeypatch.setattr("facegen.trainer.train.CHANNELS_LAST", False)
    cfg = TrainConfig(data=[str(toy_shards)], model=model, model_kwargs=kwargs, out=str(tmp_path / model),
                      input_size=32, steps=12, batch_size=8, workers=0, val_fraction=0.1, lr=1e-3, seed=3,
                      log_every=1, val_every=6)
    train(cfg, progress=False)
    got = json.loads((tmp_path / model / "history.json").read_text())["history"]
    want = json.loads(GOLDEN.read_text())[model]
    assert [sorted(r) for r in want] == [sorted(k for k in r if k != "img_per_s") for r in got]
    for w, g in zip(want, got):
        for k, v in w.items():
            assert g[k] == pytest.approx(v, rel=1e-5, abs=1e-6), (w["step"], k)


def test_real_split_is_fixed_by_seed_and_nested_in_n():
    a, b = real_split(100, 10, seed=4, val_fraction=0.1, test_fraction=0.2), real_split(100, 40, seed=4, val_fraction=0.1, test_fraction=0.2)
    np.testing.assert_array_equal(a.val, b.val)
    np.testing.assert_array_equal(a.test, b.test)
    assert set(a.train) <= set(b.train) and len(a.train) == 10 and len(b.train) == 40
    assert not (set(b.train) & set(b.val)) and not (set(b.train) & set(b.test)) and not (set(b.val) & set(b.test))
    np.testing.assert_array_equal(real_split(100, 10, seed=4, val_fraction=0.1, test_fraction=0.2).train, a.train)
    assert set(real_split(100, 10, seed=5, val_fraction=0.1, test_fraction=0.2).train) != set(a.train)
    with pytest.raises(FacegenError, match="only 70 real faces"):
        real_split(100, 71, seed=4, val_fraction=0.1, test_fraction=0.2)


def test_real_folders_are_recognised():
    assert type(open_real(REAL_MINI)).__name__ == "PtsFolder"
    ds = open_real(AFLW_HALF)
    assert type(ds).__name__ == "AFLW2000" and ds.jaw_convention == "3d" and len(ds) == 1000


def _falls(summary_path: Path, head: int = 3) -> tuple[float, float]:
    losses = [r["loss"] for r in json.loads(summary_path.read_text())["history"] if "loss" in r]
    return float(np.mean(losses[:head])), float(np.mean(losses[-head:]))


STRATEGY_RUNS = {
    "synthetic-only": dict(),
    "real-only": dict(data=[], real=str(REAL_MINI)),
    "mixed": dict(real=str(REAL_MINI), real_share=0.5),
}


@pytest.mark.parametrize("name", list(STRATEGY_RUNS))
def test_strategy_lowers_its_loss(name, toy_shards, tmp_path):
    kw = {"data": [str(toy_shards)], **STRATEGY_RUNS[name]}
    s = train(_cfg(tmp_path / name, strategy=name, steps=30, lr=3e-3, log_every=1, **kw), progress=False)
    assert s["strategy"] == name
    first, last = _falls(tmp_path / name / "history.json")
    assert last < 0.8 * first, (first, last)


def test_fine_tune_starts_from_the_checkpoint_and_lowers_the_real_loss(toy_shards, tmp_path):
    train(_cfg(tmp_path / "syn", data=[str(toy_shards)], steps=10, input_size=40), progress=False)
    s = train(_cfg(tmp_path / "ft", strategy="fine-tune", init=str(tmp_path / "syn" / "last.pt"), real=str(REAL_MINI),
                   steps=30, lr=3e-2, log_every=1), progress=False)
    ck = torch.load(tmp_path / "ft" / "last.pt", weights_only=False)
    assert ck["config"]["input_size"] == 40 and ck["spec"]["name"] == "toy68"  # continued as the init was trained
    assert ck["optimizer"]["param_groups"][0]["initial_lr"] == pytest.approx(3e-3)  # a tenth of --lr
    first, last = _falls(tmp_path / "ft" / "history.json")
    assert last < 0.8 * first, (first, last)
    assert any("real_val_nme" in r for r in json.loads((tmp_path / "ft" / "history.json").read_text())["history"])


def test_real_only_takes_the_real_labels_jaw_convention(tmp_path):
    s = train(_cfg(tmp_path / "r", strategy="real-only", real=str(AFLW_HALF), n_real=8, steps=2), progress=False)
    ck = torch.load(s["last"], weights_only=False)
    assert ck["spec"]["name"] == "ibug68_3d" and ck["arch"]["num_landmarks"] == 68


def test_strategy_errors_name_what_is_missing(toy_shards, tmp_path):
    with pytest.raises(FacegenError, match="--real"):
        train(_cfg(tmp_path / "m", strategy="mixed", data=[str(toy_shards)]), progress=False)
    with pytest.raises(FacegenError, match="--init"):
        train(_cfg(tmp_path / "f", strategy="fine-tune", real=str(REAL_MINI)), progress=False)
    with pytest.raises(FacegenError, match="--data"):
        train(_cfg(tmp_path / "s", strategy="synthetic-only"), progress=False)
    with pytest.raises(FacegenError, match="unknown; choose one of"):
        train(_cfg(tmp_path / "x", strategy="nope", data=[str(toy_shards)]), progress=False)
    with pytest.raises(FacegenError, match="--n-real 0 leaves no real faces"):
        train(_cfg(tmp_path / "z", strategy="real-only", real=str(REAL_MINI), n_real=0), progress=False)
    assert {"synthetic-only", "real-only", "mixed", "fine-tune"} <= set(list_strategies())
