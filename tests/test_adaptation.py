"""Domain adaptation (trainer/adaptation.py, strategies dann and daln): the gradient reversal and the
nuclear-norm Wasserstein discrepancy against direct computations on small tensors, the unlabelled-image
source on real300w-mini, and both strategies on toy shards + real300w-mini's images."""

from __future__ import annotations

import json
import math

import cv2
import numpy as np
import pytest
import torch
from click.testing import CliRunner

from facegen.errors import FacegenError
from facegen.trainer.adaptation import grad_reverse, nuclear_norms, nuclear_wasserstein_discrepancy, reversal_coeff
from facegen.trainer.datasets import UnlabelledFaces
from facegen.trainer.models import create_model
from facegen.trainer.strategies import list_strategies
from facegen.trainer.train import TrainConfig, train
from facegen.trainer.transforms import build_transforms
from tests.toy_shards import REAL_MINI

HOURGLASS = ("hourglass", {"channels": 16, "stacks": 1, "depth": 2})
RESNET = ("resnet18", {"width": 8})


# -- gradient reversal and its schedule ---------------------------------------------------------------

def test_reversal_is_the_identity_forward_and_minus_coeff_backward():
    torch.manual_seed(0)
    x = torch.randn(3, 4, requires_grad=True)
    w = torch.randn(3, 4)
    y = grad_reverse(x, 0.7)
    assert torch.equal(y, x)
    (y * w).sum().backward()
    reversed_grad = x.grad.clone()
    x.grad = None
    (x * w).sum().backward()  # the identity's gradient: w
    torch.testing.assert_close(reversed_grad, -0.7 * x.grad, rtol=0, atol=0)
    # through a non-linear function as well
    x.grad = None
    torch.sin(grad_reverse(x, 2.0) ** 2).sum().backward()
    torch.testing.assert_close(x.grad, -2.0 * torch.cos(x.detach() ** 2) * 2 * x.detach())


def test_warm_up_schedule():
    assert reversal_coeff(0.0) == 0.0
    assert reversal_coeff(1.0) == pytest.approx(2 / (1 + math.exp(-10)) - 1) and reversal_coeff(1.0) > 0.9999
    assert reversal_coeff(0.2) == pytest.approx(0.7616, abs=1e-4)
    values = [reversal_coeff(p) for p in np.linspace(0, 1, 11)]
    assert all(a < b for a, b in zip(values, values[1:]))


# -- nuclear-norm Wasserstein discrepancy -----------------------------------------------------------------

def _nuc(p: np.ndarray) -> float:
    return float(np.linalg.svd(p, compute_uv=False).sum())


def _softmax(x: np.ndarray) -> np.ndarray:
    e = np.exp(x - x.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


def test_discrepancy_of_class_predictions_matches_a_direct_computation():
    rng = np.random.default_rng(0)
    s, t = rng.normal(size=(5, 7)) * 2, rng.normal(size=(3, 7)) * 2  # unequal batches
    want = _nuc(_softmax(s)) / 5 - _nuc(_softmax(t)) / 3
    got = nuclear_wasserstein_discrepancy(torch.tensor(s), torch.tensor(t))
    assert float(got) == pytest.approx(want, abs=1e-6)  # computed in float32
    torch_direct = (torch.linalg.svdvals(torch.softmax(torch.tensor(s), 1)).sum() / 5
                    - torch.linalg.svdvals(torch.softmax(torch.tensor(t), 1)).sum() / 3)
    assert float(got) == pytest.approx(float(torch_direct), abs=1e-6)
    # confident, all-different predictions reach the largest norm (B, so 1 after / B); uniform ones are a
    # rank-1 matrix of 1/7s whose one singular value is its Frobenius norm sqrt(5 * 7) / 7
    sharp, uniform = torch.eye(5, 7) * 50, torch.zeros(5, 7)
    assert float(nuclear_wasserstein_discrepancy(sharp, uniform)) == pytest.approx(1 - 1 / math.sqrt(35), abs=1e-5)


def test_discrepancy_of_heatmaps_is_the_mean_over_landmarks_of_each_spatial_softmax():
    rng = np.random.default_rng(1)
    hs, ht = rng.normal(size=(4, 3, 5, 6)), rng.normal(size=(6, 3, 5, 6))  # (B, L, H, W)
    beta = 1.5
    per_landmark = [_nuc(_softmax(beta * hs[:, k].reshape(4, -1))) / 4
                    - _nuc(_softmax(beta * ht[:, k].reshape(6, -1))) / 6 for k in range(3)]
    got = nuclear_wasserstein_discrepancy(torch.tensor(hs), torch.tensor(ht), beta=beta)
    assert float(got) == pytest.approx(np.mean(per_landmark), abs=1e-6)  # computed in float32
    norms = nuclear_norms(torch.tensor(hs), beta)
    assert norms.shape == (3,)
    np.testing.assert_allclose(norms.numpy(), [_nuc(_softmax(beta * hs[:, k].reshape(4, -1))) for k in range(3)],
                               rtol=1e-5)


def test_head_maximises_and_reversed_features_minimise_the_discrepancy():
    """The daln loss -NWD(C(R(f))): the head's gradient is that of -NWD (it ascends NWD), the features'
    is coeff x that of NWD (they descend it)."""
    torch.manual_seed(0)
    f = torch.randn(6, 4, requires_grad=True)
    head = torch.nn.Linear(4, 5)
    coeff = 0.3
    (-nuclear_wasserstein_discrepancy(*head(grad_reverse(f, coeff)).split(3))).backward()
    got_w, got_f = head.weight.grad.clone(), f.grad.clone()
    head.zero_grad()
    f.grad = None
    nuclear_wasserstein_discrepancy(*head(f).split(3)).backward()
    torch.testing.assert_close(got_w, -head.weight.grad)
    torch.testing.assert_close(got_f, coeff * f.grad)


# -- models: features and the task head ---------------------------------------------------------------------

@pytest.mark.parametrize("name,kw", [RESNET, HOURGLASS, ("hourglass", {"channels": 16, "stacks": 2, "depth": 2})])
def test_task_head_on_the_features_gives_the_forward_output(name, kw):
    torch.manual_seed(0)
    m = create_model(name, 68, **kw).eval()
    out = m(torch.rand(2, 3, 32, 32))
    assert out["features"].shape[:2] == (2, m.feature_dim)
    again = m.task_head(out["features"], 32)
    assert torch.equal(again["landmarks"], out["landmarks"])
    if "heatmaps" in out:
        assert torch.equal(again["heatmaps"][-1], out["heatmaps"][-1])


# -- the unlabelled source ----------------------------------------------------------------------------------

def test_unlabelled_faces_are_detected_once_and_cropped_from_their_box():
    from facegen.trainer.annotations import read_pts
    from facegen.trainer.datasets import _FACE_BOXES, PtsFolder
    from facegen.trainer.transforms import landmark_box

    ds = UnlabelledFaces(REAL_MINI, build_transforms(48, train=True, flip_map=np.arange(68)), seed=0)
    images = sorted(p for p in REAL_MINI.rglob("*") if p.suffix in (".jpg", ".png"))
    assert len(ds) + len(ds.skipped) == len(images) == 12 and len(ds) >= 8  # the .pts files are not images
    cached = {k[0]: v for k, v in _FACE_BOXES.items()}  # detected once per image, kept for the next run
    assert all(str(p.resolve()) in cached for p in images)
    assert all(cached[str(p.resolve())] is None for p in ds.skipped)
    # each box is the labelled face's: centres within a fifth of the labels' box side
    labels = dict(PtsFolder(REAL_MINI).items)  # image -> .pts
    for path, box in zip(ds.items, ds.boxes):
        lb = landmark_box(read_pts(labels[path]))
        side = max(lb[2] - lb[0], lb[3] - lb[1])
        assert np.abs((box[:2] + box[2:]) / 2 - (lb[:2] + lb[2:]) / 2).max() < side / 5, path
    raw = ds.raw(0)
    assert raw["landmarks"].shape == (68, 2) and not raw["landmarks"].any() and "box" in raw
    item = ds[0]
    assert item["image"].shape == (3, 48, 48) and item["image"].dtype == torch.uint8
    # the crop is centred on the detected box: its centre maps near the crop's centre (jitter, affine)
    box = ds.boxes[0]
    centre = np.array([(box[0] + box[2]) / 2, (box[1] + box[3]) / 2, 1.0])
    assert np.abs((item["matrix"].numpy().astype(np.float64) @ centre)[:2] - 23.5).max() < 48 * 0.3


def test_unlabelled_folder_errors_name_the_folder(tmp_path):
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "notes.txt").write_text("no images here")
    with pytest.raises(FacegenError, match="empty: no images found"):
        UnlabelledFaces(tmp_path / "empty")
    blank = tmp_path / "blank"
    (blank / "sub").mkdir(parents=True)
    rng = np.random.default_rng(0)
    for i in range(3):
        cv2.imwrite(str(blank / "sub" / f"noise{i}.png"), rng.integers(0, 256, (120, 160, 3), dtype=np.uint8))
    with pytest.raises(FacegenError, match="blank: OpenCV's face detector found no face .* its 3 images"):
        UnlabelledFaces(blank)
    with pytest.raises(FacegenError, match="no such folder"):
        UnlabelledFaces(tmp_path / "missing")


# -- the strategies --------------------------------------------------------------------------------------------

def _cfg(out, model, strategy, **kw):
    name, model_kwargs = model
    base = dict(model=name, model_kwargs=model_kwargs, out=str(out), input_size=32, steps=4, batch_size=8, workers=0,
                val_fraction=0.1, lr=1e-3, seed=1, strategy=strategy, unlabelled=str(REAL_MINI))
    base.update(kw)
    return TrainConfig(**base)


ADAPTATION_RUNS = {"dann-resnet18": ("dann", RESNET, 3e-3), "dann-hourglass": ("dann", HOURGLASS, 1e-2),
                   "daln-hourglass": ("daln", HOURGLASS, 1e-2)}


@pytest.mark.parametrize("run", list(ADAPTATION_RUNS))
def test_adaptation_lowers_the_task_loss(run, toy_shards, tmp_path):
    strategy, model, lr = ADAPTATION_RUNS[run]
    s = train(_cfg(tmp_path, model, strategy, data=[str(toy_shards)], steps=30, lr=lr, log_every=1), progress=False)
    assert s["strategy"] == strategy
    rows = [r for r in json.loads((tmp_path / "history.json").read_text())["history"] if "task" in r]
    task = [r["task"] for r in rows]
    first, last = float(np.mean(task[:3])), float(np.mean(task[-3:]))
    assert last < 0.8 * first, (first, last)
    assert rows[0]["coeff"] == 0.0 and rows[-1]["coeff"] > 0.999
    ck = torch.load(s["last"], weights_only=False)
    if strategy == "dann":
        assert {"domain", "domain_acc"} <= set(rows[-1]) and 0 <= rows[-1]["domain_acc"] <= 1
        assert any(k.startswith("domain.") for k in ck["modules_state"])  # the classifier is saved
    else:
        assert "nwd" in rows[-1] and all(abs(r["nwd"]) <= 1 for r in rows)
        assert "modules_state" not in ck
    assert ck["config"]["unlabelled"] == str(REAL_MINI)


@pytest.mark.parametrize("strategy,model", [("dann", RESNET), ("dann", HOURGLASS), ("daln", HOURGLASS)],
                         ids=["dann-resnet18", "dann-hourglass", "daln-hourglass"])
def test_the_strategy_gradients_are_the_reversed_adaptation_loss(strategy, model):
    """One step's loss at --da-weight 1 minus at 0: on the backbone, -coeff x the gradient of the adaptation
    loss computed directly (no reversal); on the critic (dann's classifier, daln's landmark head), that
    gradient itself. So the critic minimises the adaptation loss and the features maximise it."""
    from facegen.trainer.losses import LandmarkLoss
    from facegen.trainer.strategies import get_strategy
    from facegen.trainer.strategies.dann import pooled
    from facegen.trainer.train import Run

    torch.manual_seed(0)
    name, kw = model
    net = create_model(name, 68, **kw)
    strat = get_strategy(strategy)
    run = Run(TrainConfig(model=name, input_size=32), torch.device("cpu"), None, net, LandmarkLoss(), None,
              torch.nn.ModuleDict(), step=3, total=10)
    run.modules.update(strat.modules(run))
    gen = torch.Generator().manual_seed(0)
    batches = {s: {"image": torch.randint(0, 256, (4, 3, 32, 32), generator=gen, dtype=torch.uint8),
                   "landmarks": torch.rand(4, 68, 2, generator=gen) * 31} for s in ("synthetic", "unlabelled")}
    params = dict(net.named_parameters())
    params.update({f"modules.{k}": v for k, v in run.modules.named_parameters()})

    def grads(weight):
        run.cfg.da_weight = weight
        for p in params.values():
            p.grad = None
        strat.loss(run, batches)[0].backward()
        return {k: p.grad.clone() if p.grad is not None else torch.zeros_like(p) for k, p in params.items()}

    g0, g1 = grads(0.0), grads(1.0)
    x = torch.cat([b["image"].float() / 255 for b in batches.values()])
    f = net(x)["features"]
    if strategy == "dann":
        logits = run.modules["domain"](pooled(f)).squeeze(1)
        bce = torch.nn.functional.binary_cross_entropy_with_logits
        adaptation = (bce(logits[:4], torch.zeros(4)) + bce(logits[4:], torch.ones(4))) / 2
        critic = [k for k in params if k.startswith("modules.domain")]
    else:
        adaptation = -nuclear_wasserstein_discrepancy(*net.task_head(f, 32)["heatmaps"][-1].split(4))
        critic = ["outs.0.weight", "outs.0.bias"]
    backbone = "stem.0.weight"
    names = [backbone, *critic]
    direct = dict(zip(names, torch.autograd.grad(adaptation, [params[k] for k in names])))
    coeff = reversal_coeff(3 / 10)
    scale = direct[backbone].abs().max()
    assert scale > 0
    torch.testing.assert_close(g1[backbone] - g0[backbone], -coeff * direct[backbone], rtol=1e-3, atol=1e-4 * scale)
    for k in critic:
        torch.testing.assert_close(g1[k] - g0[k], direct[k], rtol=1e-3, atol=1e-4 * direct[k].abs().max() + 1e-12)


def test_adaptation_errors_name_what_is_missing(toy_shards, tmp_path):
    assert {"dann", "daln"} <= set(list_strategies())
    for strategy in ("dann", "daln"):
        with pytest.raises(FacegenError, match="--unlabelled FOLDER"):
            train(_cfg(tmp_path / strategy, HOURGLASS, strategy, data=[str(toy_shards)], unlabelled=None),
                  progress=False)
    with pytest.raises(FacegenError, match="--strategy daln .* heatmap model .*--model resnet18 regresses"):
        train(_cfg(tmp_path / "r", RESNET, "daln", data=[str(toy_shards)]), progress=False)
    (tmp_path / "noimages").mkdir()
    with pytest.raises(FacegenError, match="noimages: no images found"):
        train(_cfg(tmp_path / "n", RESNET, "dann", data=[str(toy_shards)], unlabelled=str(tmp_path / "noimages")),
              progress=False)


def test_cli_takes_unlabelled_and_da_weight(toy_shards, tmp_path):
    from facegen.cli import main

    result = CliRunner().invoke(main, ["train", "--help"])
    assert "--unlabelled" in result.output and "--da-weight" in result.output and "--strategy dann" in result.output
    result = CliRunner().invoke(main, ["train", "--strategy", "dann", "--data", str(toy_shards), "--out",
                                       str(tmp_path / "x"), "--workers", "0"])
    assert result.exit_code == 2 and "--unlabelled FOLDER" in result.output, result.output
    result = CliRunner().invoke(main, ["train", "--strategy", "dann", "--data", str(toy_shards), "--unlabelled",
                                       str(REAL_MINI), "--da-weight", "-1"])
    assert result.exit_code == 2 and "'--da-weight'" in result.output, result.output
    result = CliRunner().invoke(main, ["train", "--strategy", "dann", "--data", str(toy_shards), "--unlabelled",
                                       str(REAL_MINI), "--da-weight", "0.5", "--model", "resnet18", "--model-arg",
                                       "width=8", "--input-size", "32", "--steps", "2", "--batch-size", "4",
                                       "--workers", "0", "--out", str(tmp_path / "run")])
    assert result.exit_code == 0, result.output
    ck = torch.load(tmp_path / "run" / "last.pt", weights_only=False)
    assert ck["config"]["da_weight"] == 0.5 and ck["config"]["strategy"] == "dann"
