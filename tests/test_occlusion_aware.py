"""Occlusion-aware training (facegen train --occlusion-aware): the per-point weights from `occluded_by`, the
weighted losses (masked points get no gradient, the others the gradient of the loss over them alone) and
a real run on toy shards whose points carry occluder codes."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from facegen.cli import main
from facegen.generator.segmentation import OCCLUDER_ID, OCCLUDERS
from facegen.trainer.datasets import UNKNOWN_OCCLUDER
from facegen.trainer.losses import LandmarkLoss, occlusion_weights
from facegen.trainer.train import Run, TrainConfig

# Every code, then the unknown one: full weight for none, self and out_of_frame (and unknown), W for the rest
CODES = np.array([*range(len(OCCLUDERS)), UNKNOWN_OCCLUDER], np.uint8)
FULL = {"none", "self", "out_of_frame"}


def test_weights_from_occluded_by():
    assert OCCLUDERS[-1] == "out_of_frame" and len(OCCLUDERS) == 12  # the codes this test spells out
    for w in (0.0, 0.25):
        x = w
        #            none self hair beard cloth frame lens mask hat hand obj  out  unknown
        expected = [1.0, 1.0, x, x, x, x, x, x, x, x, x, 1.0, 1.0]
        np.testing.assert_array_equal(occlusion_weights(CODES, w).numpy(), expected)
        got = occlusion_weights(torch.from_numpy(np.stack([CODES, CODES[::-1].copy()])), w)  # any shape, a tensor
        assert got.shape == (2, 13) and got.dtype == torch.float32
        np.testing.assert_array_equal(got[1].numpy(), expected[::-1])
    assert {OCCLUDERS[i] for i in range(len(OCCLUDERS)) if occlusion_weights(CODES, 0.0)[i] == 1} == FULL


def _v(t: torch.Tensor) -> float:
    return float(t.detach())


def _output(b, n, heatmaps, gen):
    """A model output whose landmarks (and heatmap logits) are leaves, so their gradients are the loss's."""
    out = {"landmarks": (torch.rand(b, n, 2, generator=gen) * 31).requires_grad_()}
    if heatmaps:
        out["heatmaps"] = [torch.randn(b, n, 8, 8, generator=gen).requires_grad_()]
        out["stride"] = 4
    return out


@pytest.mark.parametrize("coord,heatmap", [("l1", "kl"), ("wing", "mse"), ("rmse", "awing"), ("l1", None),
                                           ("wing", None), ("rmse", None)])
def test_masked_points_get_no_gradient_and_the_others_the_loss_over_them_alone(coord, heatmap):
    """Weight 0 at the points an occluder hides: zero gradient on their prediction (coordinates and heatmap
    logits); on the other points the loss and its gradient are those of the plain loss computed on the
    kept points only (the weights are normalised by their sum, so masking does not shrink the loss)."""
    gen = torch.Generator().manual_seed(0)
    b, n = 3, 10
    codes = np.zeros((b, n), np.uint8)
    hidden = [1, 4, 5, 8]  # the same points in every row, so "the kept points only" is a plain slice
    codes[:, hidden] = [OCCLUDER_ID["hand"], OCCLUDER_ID["hair"], OCCLUDER_ID["lens"], OCCLUDER_ID["facewear"]]
    codes[:, 2], codes[:, 3] = OCCLUDER_ID["self"], OCCLUDER_ID["out_of_frame"]
    codes[0, 0] = UNKNOWN_OCCLUDER
    keep = [i for i in range(n) if i not in hidden]
    weights = occlusion_weights(codes, 0.0)
    loss_fn = LandmarkLoss(coord, heatmap or "kl", heatmap_weight=1.0)
    target = torch.rand(b, n, 2, generator=gen) * 31
    out = _output(b, n, heatmap is not None, gen)
    leaves = [out["landmarks"], *out.get("heatmaps", [])]

    masked, parts = loss_fn(out, target, 32, None, weights)
    grads = torch.autograd.grad(masked, leaves)
    for g in grads:
        assert g[:, hidden].abs().max() == 0
        assert g[:, keep].abs().max() > 0

    sub = {**out, "landmarks": out["landmarks"][:, keep]}
    if heatmap:
        sub["heatmaps"] = [out["heatmaps"][0][:, keep]]
    alone, parts_alone = loss_fn(sub, target[:, keep], 32, None)
    assert _v(masked) == pytest.approx(_v(alone), rel=1e-5)
    assert parts.keys() == parts_alone.keys() == ({"coord", "heatmap"} if heatmap else {"coord"})
    for g, g_alone in zip(grads, torch.autograd.grad(alone, leaves)):
        torch.testing.assert_close(g[:, keep], g_alone[:, keep], rtol=1e-5, atol=1e-8)

    # weights normalised by their sum: scaling them all changes nothing, all-ones is the plain loss
    assert _v(loss_fn(out, target, 32, None, weights * 3)[0]) == pytest.approx(_v(masked), rel=1e-5)
    assert _v(loss_fn(out, target, 32, None, torch.ones(b, n))[0]) == \
        pytest.approx(_v(loss_fn(out, target, 32, None)[0]), rel=1e-5)
    # a row-dependent mask: still no gradient where the weight is 0
    codes2 = np.zeros((b, n), np.uint8)
    codes2[0, 7], codes2[2, [0, 9]] = OCCLUDER_ID["clothing"], OCCLUDER_ID["object"]
    w2 = occlusion_weights(codes2)
    for g in torch.autograd.grad(loss_fn(out, target, 32, None, w2)[0], leaves):
        assert g[w2 == 0].abs().max() == 0 and g[w2 == 1].abs().max() > 0


def test_run_weights_only_batches_an_occluder_hides_points_of():
    """Run.point_weights: None (the plain loss, exactly) without --occlusion-aware, for a batch without
    occluded_by and for real faces (seen 0, hidden 255: no occluder named); weights otherwise."""
    def run(**kw):
        return Run(TrainConfig(**kw), torch.device("cpu"), None, None, LandmarkLoss(), None, torch.nn.ModuleDict())

    synthetic = {"occluded_by": torch.tensor([[0, 1, OCCLUDER_ID["hand"], 11], [0, 0, 0, 0]], dtype=torch.uint8)}
    real = {"occluded_by": torch.tensor([[0, UNKNOWN_OCCLUDER, 0, 0]], dtype=torch.uint8)}
    assert run().point_weights(synthetic) is None
    on = run(occlusion_aware=True, occluded_weight=0.5)
    torch.testing.assert_close(on.point_weights(synthetic), torch.tensor([[1, 1, 0.5, 1], [1, 1, 1, 1.0]]))
    assert on.point_weights(real) is None and on.point_weights({}) is None


def test_occluded_weight_needs_occlusion_aware(tmp_path):
    from facegen.errors import FacegenError
    from facegen.trainer.train import train

    with pytest.raises(FacegenError, match="add --occlusion-aware"):
        train(TrainConfig(out=str(tmp_path), occluded_weight=0.5), progress=False)
    with pytest.raises(FacegenError, match=r"in \[0, 1\]"):
        train(TrainConfig(out=str(tmp_path), occlusion_aware=True, occluded_weight=2.0), progress=False)


@pytest.fixture(scope="module")
def occluded_shards(tmp_path_factory):
    """16 toy faces whose 68 points are hidden alike: 17 by occluders (hand, hair, lens, facewear), 10 by the
    face itself, 5 out of frame, the rest seen."""
    from tests.toy_shards import write_toy_shards

    codes = np.zeros(68, np.uint8)
    codes[0:17] = np.resize([OCCLUDER_ID[o] for o in ("hand", "hair", "lens", "facewear")], 17)
    codes[17:27], codes[27:32] = OCCLUDER_ID["self"], OCCLUDER_ID["out_of_frame"]
    return write_toy_shards(tmp_path_factory.mktemp("occl") / "shards", 16, size=64, occluded_by=codes)


def test_facegen_train_occlusion_aware_runs_and_records_it(occluded_shards, tmp_path):
    """A real `facegen train --occlusion-aware` run on the default (heatmap) recipe's model, made tiny: it
    finishes, logs the share of masked points (so the weights reached the loss) and says it was
    occlusion-aware in its summary, history.json and checkpoints."""
    out = tmp_path / "run"
    result = CliRunner().invoke(main, [
        "train", "--data", str(occluded_shards), "--occlusion-aware", "--model-arg", "width=8", "--input-size", "32",
        "--steps", "3", "--batch-size", "4", "--workers", "0", "--val-fraction", "0.25", "--device", "cpu",
        "--no-test-flip", "--seed", "0", "--out", str(out)], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    summary = json.loads(result.output[result.output.index("{\n"):])
    assert summary["steps"] == 3 and np.isfinite(summary["last_loss"])
    assert summary["occlusion_aware"] is True and summary["occluded_weight"] == 0.0
    history = json.loads((out / "history.json").read_text())
    assert history["summary"]["occlusion_aware"] is True
    steps = [r for r in history["history"] if "loss" in r]
    assert steps and all(r["occluded"] == pytest.approx(17 / 68) for r in steps)
    for name in ("best.pt", "last.pt"):
        config = torch.load(out / name, weights_only=False)["config"]
        assert config["occlusion_aware"] is True and config["occluded_weight"] == 0.0
        assert config["model"] == "resnet18_heatmap"


def test_mixed_batches_weigh_only_their_synthetic_rows(occluded_shards, tmp_path):
    """--strategy mixed with --occlusion-aware: the synthetic rows are weighted, the real faces' loss is the
    plain one (their occluders are unknown), and the run trains."""
    from tests.toy_shards import REAL_MINI

    from facegen.trainer.train import train

    if not REAL_MINI.is_dir():
        pytest.skip(f"{REAL_MINI} is absent")
    cfg = TrainConfig(data=[str(occluded_shards)], model="resnet18", model_kwargs={"width": 8}, out=str(tmp_path),
                      input_size=32, steps=2, batch_size=4, workers=0, val_fraction=0.25, seed=0, device="cpu",
                      strategy="mixed", real=str(REAL_MINI), real_share=0.5, log_every=1, test_flip=False,
                      occlusion_aware=True)
    summary = train(cfg, progress=False)
    assert summary["steps"] == 2 and np.isfinite(summary["last_loss"])
    steps = [r for r in json.loads((tmp_path / "history.json").read_text())["history"] if "loss" in r]
    assert all(r["syn_occluded"] == pytest.approx(17 / 68) and "real_occluded" not in r for r in steps)


def test_shards_without_occluder_labels_are_refused(tmp_path):
    """Shards rendered before occluded_by existed cannot be trained occlusion-aware: the run says so rather
    than masking nothing."""
    import h5py

    from facegen.errors import FacegenError
    from facegen.trainer.strategies import get_strategy
    from facegen.trainer.train import build_data
    from tests.toy_shards import write_toy_shards

    old = write_toy_shards(tmp_path / "old", 8, size=32)
    for f in old.glob("*.h5"):
        with h5py.File(f, "a") as h5:
            del h5["occluded_by"]
    cfg = TrainConfig(data=[str(old)], out=str(tmp_path / "run"), input_size=32, occlusion_aware=True)
    with pytest.raises(FacegenError, match="render them again or drop --occlusion-aware"):
        build_data(cfg, get_strategy("synthetic-only"))
    build_data(TrainConfig(data=[str(old)], out=str(tmp_path / "run"), input_size=32), get_strategy("synthetic-only"))
