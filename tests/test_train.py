from __future__ import annotations

import numpy as np
import pytest
import torch

from facegen.errors import FacegenError
from facegen.trainer.evaluate import NearestSubsetAdapter, to_ibug68
from facegen.trainer.predictor import SpecInfo, load_predictor
from facegen.trainer.train import TrainConfig, train


def _cfg(data, out, **kw):
    base = dict(data=[str(data)], model="resnet18", model_kwargs={"width": 8}, out=str(out), input_size=32,
                steps=4, batch_size=8, workers=0, val_fraction=0.1, lr=1e-3, seed=1)
    base.update(kw)
    return TrainConfig(**base)


def test_seeded_runs_are_identical_and_checkpoint_predicts(toy_shards, tmp_path):
    a = train(_cfg(toy_shards, tmp_path / "a"), progress=False)
    b = train(_cfg(toy_shards, tmp_path / "b"), progress=False)
    assert a["last_loss"] == b["last_loss"]
    wa = torch.load(tmp_path / "a" / "last.pt", weights_only=False)["model_state"]
    wb = torch.load(tmp_path / "b" / "last.pt", weights_only=False)["model_state"]
    assert all(torch.equal(wa[k], wb[k]) for k in wa)

    p = load_predictor(tmp_path / "a" / "best.pt", device="cpu")  # the checkpoint alone
    assert p.input_size == 32 and p.num_landmarks == 68 and p.spec.name == "toy68"
    img = np.zeros((64, 64, 3), np.uint8)
    pred = p.predict([img, img], [[10, 10, 50, 50], [0, 0, 20, 20]])
    assert pred.shape == (2, 68, 2)
    # the same crop content at a different place: the prediction moves with the box
    shifted = p.predict([np.zeros((64, 64, 3), np.uint8)], [[20, 10, 60, 50]])[0]
    np.testing.assert_allclose(shifted - pred[0], np.tile([10.0, 0.0], (68, 1)), atol=1e-3)


def test_resume_continues_from_the_saved_step(toy_shards, tmp_path):
    train(_cfg(toy_shards, tmp_path / "r", steps=3), progress=False)
    s = train(_cfg(toy_shards, tmp_path / "r", steps=5, resume=str(tmp_path / "r" / "last.pt")), progress=False)
    assert s["steps"] == 5
    assert torch.load(tmp_path / "r" / "last.pt", weights_only=False)["step"] == 5
    with pytest.raises(FacegenError, match="differs"):
        train(_cfg(toy_shards, tmp_path / "r", steps=6, model_kwargs={"width": 16},
                   resume=str(tmp_path / "r" / "last.pt")), progress=False)


def test_to_ibug68_nearest_subset():
    spec = SpecInfo("d", "", [f"p{i}" for i in range(100)], np.arange(100), np.arange(68) + 10)
    pred = np.random.default_rng(0).random((3, 100, 2))
    np.testing.assert_array_equal(to_ibug68(pred, spec), pred[:, 10:78])
    with pytest.raises(FacegenError, match="no iBUG-68 correspondence"):
        NearestSubsetAdapter(SpecInfo("d", "", [], np.arange(100), None))
    # a learned adapter plugs in at the same seam
    assert to_ibug68(pred, spec, adapter=lambda p: p[:, :68] * 0).sum() == 0


def test_missing_checkpoint_is_named(tmp_path):
    with pytest.raises(FacegenError, match="nope.pt"):
        load_predictor(tmp_path / "nope.pt")


def test_test_time_flip_makes_predictions_mirror_equivariant(toy_shards, tmp_path):
    """With test-time flip, predicting on a mirrored image gives the mirror of the prediction (each point
    where its partner was): true for any weights only if the mirrored crop's points are mapped back right."""
    train(_cfg(toy_shards, tmp_path / "f", steps=2, test_flip=True), progress=False)
    p = load_predictor(tmp_path / "f" / "best.pt", device="cpu")
    assert p.flip  # saved in the checkpoint
    img = np.random.default_rng(0).integers(0, 255, (64, 80, 3), dtype=np.uint8)
    box = [12.0, 8.0, 52.0, 48.0]  # and the same face box in the mirrored image (x -> 79 - x)
    mirrored_box = [79 - box[2], box[1], 79 - box[0], box[3]]
    a = p.predict([img], [box])[0]
    b = p.predict([img[:, ::-1].copy()], [mirrored_box])[0]
    expect = a[p.spec.flip_map].copy()
    expect[:, 0] = 79 - expect[:, 0]
    np.testing.assert_allclose(b, expect, atol=1e-3)
    p.flip = False  # without it the model alone is not equivariant
    a, b = p.predict([img], [box])[0], p.predict([img[:, ::-1].copy()], [mirrored_box])[0]
    expect = a[p.spec.flip_map].copy()
    expect[:, 0] = 79 - expect[:, 0]
    assert np.abs(b - expect).max() > 0.01
    assert load_predictor(tmp_path / "f" / "best.pt", device="cpu", flip=False).flip is False


def test_n_synthetic_trains_on_the_first_renders_and_keeps_the_hold_out(toy_shards, tmp_path):
    from facegen.trainer.strategies import get_strategy
    from facegen.trainer.train import build_data

    full = build_data(_cfg(toy_shards, tmp_path), get_strategy("synthetic-only"))
    some = build_data(_cfg(toy_shards, tmp_path, n_synthetic=5), get_strategy("synthetic-only"))
    assert len(some.train["synthetic"]) == 5
    np.testing.assert_array_equal(some.train["synthetic"].indices, full.train["synthetic"].indices[:5])
    np.testing.assert_array_equal(some.val.indices, full.val.indices)
    with pytest.raises(FacegenError, match="--n-synthetic 999"):
        build_data(_cfg(toy_shards, tmp_path, n_synthetic=999), get_strategy("synthetic-only"))
