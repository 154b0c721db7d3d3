"""Training: data -> model -> optimiser -> steps (with validation) -> checkpoints, for every strategy.

`train(cfg)` runs named stages: `build_data` (the sources the strategy reads: synthetic shards, real
labelled faces, unlabelled images, plus held-out validation), `build_model`, `build_optimiser`, then
steps whose loss the strategy computes (trainer/strategies/), `validate_run` and `save_checkpoint`.
AdamW + cosine, AMP on CUDA, resume from `last.pt`.

Checkpoints (`last.pt`, `best.pt`) hold the model, optimiser, scheduler and step, plus the config and the
landmark spec, so `load_predictor(best.pt)` predicts with nothing else.

Under torchrun (trainer/distributed.py) each process trains on its own part of every pass over the data,
with DistributedDataParallel averaging the gradients; rank 0 alone validates, logs and writes the files,
and the checkpoints are the same as one process writes.
"""

from __future__ import annotations

import json
import math
import random
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader
from tqdm import tqdm

from facegen.errors import FacegenError
from facegen.specs import IBUG68_FLIP
from facegen.trainer import distributed, recipe
from facegen.trainer.adapters import adapter_record
from facegen.trainer.datasets import ShardDataset, UnlabelledFaces, split_indices
from facegen.trainer.losses import LandmarkLoss, occlusion_weights
from facegen.trainer.models import create_model
from facegen.trainer.distributed import Dist, RankSampler, unwrap
from facegen.trainer.predictor import RESUME_KEYS, Predictor, SpecInfo, read_checkpoint
from facegen.trainer.transforms import build_transforms


@dataclass
class TrainConfig:
    data: list[str] = field(default_factory=list)  # shard folders (strategies that read synthetic data)
    model: str = recipe.MODEL  # the defaults of model, size, batch, losses and flip: trainer/recipe.py
    model_kwargs: dict = field(default_factory=dict)
    out: str = "runs/train"
    input_size: int = recipe.INPUT_SIZE
    crop_scale: float = 1.25
    gray: bool = False
    augment: str = "default"  # or "none"
    epochs: int = 10
    steps: int | None = None  # overrides epochs when set
    batch_size: int = recipe.BATCH_SIZE
    lr: float = 1e-3
    weight_decay: float = 1e-4
    warmup_steps: int = 100
    workers: int = 2
    val_fraction: float = 0.05
    val_every: int = 0  # steps; 0 = once per epoch
    val_real: str | None = None
    test_flip: bool = recipe.TEST_FLIP  # predictions average the crop and its mirror (saved: eval and predict do the same)
    n_synthetic: int | None = None  # train on the first N rendered samples (nested: a larger N holds a smaller)
    coord_loss: str = recipe.COORD_LOSS
    heatmap_loss: str = recipe.HEATMAP_LOSS
    heatmap_weight: float = 1.0
    # occlusion-aware loss: points an occluder hides (hair, a hand, glasses ...; not the face itself, not out of
    # frame) weigh occluded_weight in every loss term, the others 1 (losses.occlusion_weights); 0 masks them
    occlusion_aware: bool = False
    occluded_weight: float = 0.0
    seed: int = 0
    device: str = "auto"  # under torchrun auto / cuda mean cuda:LOCAL_RANK
    dist_backend: str = "auto"  # under torchrun: nccl (GPUs), gloo (CPUs) or auto (nccl on GPUs, else gloo)
    amp: bool = True
    resume: str | None = None
    log_every: int = 10
    strategy: str = "synthetic-only"  # trainer/strategies/: synthetic-only, real-only, mixed, fine-tune, ...
    real: str | None = None  # real labelled faces: 300-W, AFLW2000-3D, 300W-LP or a .pts folder
    real_format: str = "auto"
    n_real: int | None = None  # how many real faces to train on (a fixed, nested subset by seed); None: all
    real_val_fraction: float = 0.1  # real faces held out to choose the best checkpoint
    real_test_fraction: float = 0.0  # real faces held out for scoring (never trained or validated on)
    real_split_seed: int | None = None  # seed of the real test / validation hold-out (default: seed), so that
    # runs with different seeds can share one test set
    real_share: float = 0.25  # mixed: the share of real crops in every batch
    init: str | None = None  # fine-tune: the checkpoint to start from
    unlabelled: str | None = None  # dann, daln: a folder of real face images (no labels; a face detector crops)
    da_weight: float = 1.0  # dann, daln: weight of the domain adaptation loss beside the landmark loss
    adapter: str | None = None  # label transfer: real labels supervise the model through this adapter (mlp, unet)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def _spec_info(ds: ShardDataset) -> SpecInfo:
    a = ds.shards.attrs
    return SpecInfo(name=str(a.get("spec_name", "")), yaml=ds.spec_yaml, names=ds.shards.landmark_names,
                    flip_map=ds.flip_map, ibug68=ds.ibug68)


def _ibug68_spec_info(jaw_convention: str) -> SpecInfo:
    """The built-in iBUG-68 spec in a jaw convention (the points of a model trained on real labels)."""
    from facegen.specs import read_spec

    spec = read_spec("ibug68_3d" if jaw_convention == "3d" else "ibug68")
    return SpecInfo(spec.name, spec.yaml_text, [p.name for p in spec.points], IBUG68_FLIP.copy(), None)


def _cosine(step: int, total: int, warmup: int) -> float:
    if step < warmup:
        return (step + 1) / warmup
    t = (step - warmup) / max(1, total - warmup)
    return 0.5 * (1 + math.cos(math.pi * min(t, 1.0)))


@torch.no_grad()
def validate(model: torch.nn.Module, loader: DataLoader, device: torch.device, size: int) -> float:
    """Mean point error on held-out synthetic crops, in percent of the crop side."""
    model.eval()
    errs = []
    for batch in loader:
        x = batch["image"].to(device).float() / 255.0
        pred = model(x)["landmarks"].float().cpu()
        errs.append((pred - batch["landmarks"]).norm(dim=-1).mean(-1))
    model.train()
    return float(torch.cat(errs).mean() / size * 100) if errs else float("nan")


# Channels-last (NHWC) memory layout, measured on this 2-CPU machine with the two layouts in turns
# (docs/recipe-study.md, "Training speed"): bare steps at 128 px, batch 16, resnet18_heatmap +7 %,
# resnet18 +12 %, hourglass +19 %; `facegen train` itself +3 % (within its noise). Kept: it never lost.
CHANNELS_LAST = True


def prepare_model(model: torch.nn.Module, channels_last: bool | None = None) -> torch.nn.Module:
    """The model in the memory layout training runs fastest in: channels-last (NHWC) or PyTorch's default
    (`bench/train_throughput.py --layouts` measures both)."""
    if channels_last if channels_last is not None else CHANNELS_LAST:
        return model.to(memory_format=torch.channels_last)
    return model


def _construct_model(arch: dict, size: int, device: torch.device) -> torch.nn.Module:
    """The model, run once on a blank image before training: arguments or an input size the architecture
    cannot take fail here, naming the options, rather than in the first step."""
    try:
        model = prepare_model(create_model(arch["name"], arch["num_landmarks"], **arch["kwargs"]).to(device))
        with torch.no_grad():
            model.eval()
            model(torch.zeros(1, arch["kwargs"]["in_chans"], size, size, device=device))
            model.train()
    except Exception as e:  # the architecture's own complaint, whatever its type
        args = " ".join(f"--model-arg {k}={json.dumps(v)}" for k, v in arch["kwargs"].items() if k != "in_chans")
        raise FacegenError(f"--model {arch['name']} {args} cannot run on --input-size {size} images "
                           f"({type(e).__name__}: {e}); change --input-size or the model arguments") from None
    return model


@dataclass
class Data:
    """What `build_data` found: the model's points and the datasets of each source."""
    spec: SpecInfo
    train: dict[str, torch.utils.data.Dataset]  # source -> training dataset (transforms attached)
    val: torch.utils.data.Dataset | None  # held-out synthetic crops
    real_val: object | None  # held-out real faces (a RealView), scored as `facegen eval` would
    real_convention: str = "2d"  # jaw convention of the real labels


def build_data(cfg: TrainConfig, strategy, init: dict | None = None) -> Data:
    """The datasets a strategy reads, with their transforms, and the spec of the model's points."""
    train_tf = lambda flip: build_transforms(cfg.input_size, cfg.crop_scale, train=True, flip_map=flip,  # noqa: E731
                                             gray=cfg.gray, augment=cfg.augment)
    eval_tf = build_transforms(cfg.input_size, cfg.crop_scale, train=False, gray=cfg.gray)
    sets: dict[str, torch.utils.data.Dataset] = {}
    spec, val = None, None
    if "synthetic" in strategy.sources:
        if not cfg.data:
            raise FacegenError(f"--strategy {strategy.name} trains on rendered shards: give --data FOLDER")
        full = ShardDataset(cfg.data, seed=cfg.seed)
        if cfg.occlusion_aware and not full.shards.has("occluded_by"):
            raise FacegenError(f"--occlusion-aware: the shards of {', '.join(cfg.data)} do not all say what hides "
                               "each point (rendered before facegen labelled occluders: renderer versions below "
                               "raster 6 / cycles 8), so nothing would be masked; render them again or drop "
                               "--occlusion-aware")
        spec = _spec_info(full)
        tr_idx, va_idx = split_indices(len(full), cfg.val_fraction, cfg.seed)
        if cfg.n_synthetic is not None:  # the hold-out stays the same whatever N: runs compare on one set
            if cfg.n_synthetic > len(tr_idx):
                raise FacegenError(f"--n-synthetic {cfg.n_synthetic}: {cfg.data} hold {len(tr_idx)} training samples "
                                   f"after the {cfg.val_fraction:.0%} hold-out; render more or ask for fewer")
            tr_idx = tr_idx[:cfg.n_synthetic]
        sets["synthetic"] = full.subset(tr_idx, train_tf(spec.flip_map))
        val = full.subset(va_idx, eval_tf)
        if len(sets["synthetic"]) == 0:
            raise FacegenError(f"{cfg.data}: no training samples after holding out {cfg.val_fraction:.0%}")
        val = val if len(val) else None
    real_val = None
    convention = "2d"
    if "real" in strategy.sources or cfg.real:
        from facegen.trainer.real_data import RealView, open_real, real_split

        if not cfg.real:
            raise FacegenError(f"--strategy {strategy.name} trains on real labelled faces: give --real FOLDER")
        base = open_real(cfg.real, cfg.real_format, seed=cfg.seed)
        convention = base.jaw_convention
        split_seed = cfg.seed if cfg.real_split_seed is None else cfg.real_split_seed
        split = real_split(len(base), cfg.n_real, split_seed, cfg.real_val_fraction, cfg.real_test_fraction)
        if "real" in strategy.sources:
            if len(split.train) == 0:
                raise FacegenError(f"--strategy {strategy.name}: --n-real {cfg.n_real} leaves no real faces to "
                                   "train on; use --n-real 1 or more (or synthetic-only)")
            sets["real"] = RealView(base, split.train, train_tf(IBUG68_FLIP), seed=cfg.seed)
        real_val = RealView(base, split.val) if len(split.val) else None  # (split.test is never touched here)
    if "unlabelled" in strategy.sources:
        if not cfg.unlabelled:
            raise FacegenError(f"--strategy {strategy.name} adapts to unlabelled real images: "
                               "give --unlabelled FOLDER")
        # flips with the identity map: there are no labels to swap
        sets["unlabelled"] = UnlabelledFaces(cfg.unlabelled, train_tf(np.arange(68)), seed=cfg.seed)
    if strategy.points == "real":
        spec = _ibug68_spec_info(convention)
    elif strategy.points == "init":
        spec = SpecInfo.from_dict(init["spec"])
    return Data(spec, sets, val, real_val, convention)


def build_model(cfg: TrainConfig, spec: SpecInfo, device: torch.device, init: dict | None = None) -> tuple[torch.nn.Module, dict]:
    """The model and its construction arguments; from the --init checkpoint's weights when given."""
    if init is not None:
        arch = init["arch"]
        model = _construct_model(arch, cfg.input_size, device)
        model.load_state_dict(init["model_state"])
        return model, arch
    in_chans = 1 if cfg.gray else 3
    arch = {"name": cfg.model, "num_landmarks": len(spec.flip_map),
            "kwargs": {"in_chans": in_chans, **cfg.model_kwargs}}
    return _construct_model(arch, cfg.input_size, device), arch


@dataclass
class Optimiser:
    opt: torch.optim.Optimizer
    sched: torch.optim.lr_scheduler.LambdaLR
    scaler: torch.amp.GradScaler

    def step(self, loss: torch.Tensor) -> None:
        self.opt.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        self.scaler.step(self.opt)
        self.scaler.update()
        self.sched.step()


def build_optimiser(cfg: TrainConfig, params, total: int, use_amp: bool, lr_scale: float = 1.0) -> Optimiser:
    """AdamW with a linear warm-up and a cosine decay over `total` steps."""
    opt = torch.optim.AdamW(params, lr=cfg.lr * lr_scale, weight_decay=cfg.weight_decay)
    warmup = min(cfg.warmup_steps, max(1, total // 10))
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: _cosine(s, total, warmup))
    return Optimiser(opt, sched, torch.amp.GradScaler("cuda", enabled=use_amp))


@dataclass
class Run:
    """A training run in progress: what a strategy's loss needs to compute one step."""
    cfg: TrainConfig
    device: torch.device
    spec: SpecInfo
    model: torch.nn.Module
    loss_fn: LandmarkLoss
    real_index: np.ndarray | None  # the model's point for each real label (iBUG-68 correspondence)
    modules: torch.nn.ModuleDict  # trained beside the model (strategy modules), saved with it
    use_amp: bool = False
    step: int = 0
    total: int = 0
    # label transfer (--adapter): model points -> iBUG-68, trained jointly, saved as the checkpoint's `adapter`
    adapter: torch.nn.Module | None = None
    adapter_meta: dict = field(default_factory=dict)  # its jaw convention and what it was fitted on
    # under torchrun: the model in DistributedDataParallel, which `forward` runs (its backward averages the
    # gradients over the processes); `model` stays the bare module for its attributes (decode, task_head),
    # validation and checkpoints. None: one process, `forward` runs `model`
    replica: torch.nn.Module | None = None

    def inputs(self, batch: dict) -> tuple[torch.Tensor, torch.Tensor]:
        """(images in [0, 1], landmarks) of a batch, on the run's device."""
        x = batch["image"].to(self.device, non_blocking=True).float() / 255.0
        return x, batch["landmarks"].to(self.device, non_blocking=True)

    def forward(self, x: torch.Tensor) -> dict:
        with torch.autocast(self.device.type, dtype=torch.float16, enabled=self.use_amp):
            return (self.replica if self.replica is not None else self.model)(x)

    def point_weights(self, batch: dict) -> torch.Tensor | None:
        """Per-point loss weights (B, L) of a batch of the model's own points with --occlusion-aware: points
        an occluder hides weigh --occluded-weight, the others 1 (losses.occlusion_weights). None, the plain
        loss, without the option, for batches that do not say what hides their points, and for batches
        where no occluder hides any point (real faces: their hidden points are UNKNOWN_OCCLUDER)."""
        if not self.cfg.occlusion_aware or "occluded_by" not in batch:
            return None
        w = occlusion_weights(batch["occluded_by"], self.cfg.occluded_weight)  # on the CPU: no device sync
        if bool((w == 1).all()):
            return None
        return w.to(self.device, non_blocking=True)

    def supervised(self, output: dict, target: torch.Tensor, batch: dict | None = None) -> tuple[torch.Tensor, dict]:
        """The landmark loss of the model's own points. `batch`, the batch `target` comes from: with
        --occlusion-aware its `occluded_by` weighs the points (`point_weights`) and the parts log the share
        of its points an occluder hides (`occluded`)."""
        weights = self.point_weights(batch) if batch is not None else None
        loss, parts = self.loss_fn(output, target, self.cfg.input_size, self.model, weights)
        if self.cfg.occlusion_aware and batch is not None and "occluded_by" in batch:
            parts["occluded"] = 0.0 if weights is None else float((weights != 1).float().mean())
        return loss, parts

    def supervised_real(self, output: dict, target: torch.Tensor) -> tuple[torch.Tensor, dict]:
        """The landmark loss of real iBUG-68 labels on the model's corresponding points, or through the
        run's label adapter when it has one (then the adapter learns the annotators' placement and the
        gradient reaches the model through it)."""
        if self.adapter is not None:  # float32 outside autocast; the unet adapter decodes like the model
            return self.loss_fn(self.adapter(output), target, self.cfg.input_size, self.adapter)
        return self.supervised(select(output, points=self.real_index), target)

    @staticmethod
    def rows(output: dict, rows: slice) -> dict:
        return select(output, rows=rows)


def select(output: dict, rows: slice | None = None, points: np.ndarray | None = None) -> dict:
    """A model output restricted to some batch rows and / or landmark points (heatmaps included)."""
    def cut(t: torch.Tensor) -> torch.Tensor:
        t = t if rows is None else t[rows]
        return t if points is None else t[:, torch.as_tensor(points, device=t.device)]
    out = dict(output)
    out["landmarks"] = cut(output["landmarks"])
    if output.get("heatmaps"):
        out["heatmaps"] = [cut(h) for h in output["heatmaps"]]
    if "features" in output and rows is not None:
        out["features"] = output["features"][rows]
    return out


def _loaders(cfg: TrainConfig, data: Data, strategy, device: torch.device, gen: torch.Generator,
             dist: Dist | None = None) -> dict[str, DataLoader]:
    """One loader per source; a mixed batch splits --batch-size between synthetic and real crops. Under
    torchrun each rank's loader takes its share of every pass (RankSampler) and --batch-size is per rank."""
    loader_kw = dict(num_workers=cfg.workers, persistent_workers=cfg.workers > 0, pin_memory=device.type == "cuda")
    sizes = {s: cfg.batch_size for s in strategy.sources}
    if "synthetic" in sizes and "real" in sizes:
        sizes["real"] = min(max(1, int(round(cfg.batch_size * cfg.real_share))), cfg.batch_size - 1)
        sizes["synthetic"] = cfg.batch_size - sizes["real"]
    loaders = {}
    for s in strategy.sources:
        ds = data.train[s]
        if dist is not None and dist.enabled:
            sampler = RankSampler(len(ds), dist, gen)
            loaders[s] = DataLoader(ds, batch_size=sizes[s], sampler=sampler, generator=gen,
                                    drop_last=len(sampler) >= sizes[s], **loader_kw)
        else:
            loaders[s] = DataLoader(ds, batch_size=sizes[s], shuffle=True, generator=gen,
                                    drop_last=len(ds) >= sizes[s], **loader_kw)
    return loaders


def _cycle(loader: DataLoader):
    while True:
        yield from loader


def _bare_modules(run: Run) -> torch.nn.ModuleDict:
    """run.modules without their DistributedDataParallel wrappers (torchrun): the state one process saves."""
    return torch.nn.ModuleDict({k: unwrap(m) for k, m in run.modules.items()})


def save_checkpoint(path: Path, run: Run, optim: Optimiser, arch: dict, best: float, history: list) -> None:
    """The bare modules' weights (never DistributedDataParallel's `module.` names): a torchrun checkpoint
    is the same as one process writes, and loads in eval, predict and --resume alike."""
    torch.save({"model_state": run.model.state_dict(), "optimizer": optim.opt.state_dict(),
                "scheduler": optim.sched.state_dict(), "scaler": optim.scaler.state_dict(), "step": run.step,
                "best": best, "history": history, "arch": arch, "config": asdict(run.cfg), "spec": run.spec.as_dict(),
                **({"modules_state": _bare_modules(run).state_dict()} if len(run.modules) else {}),
                **({"adapter": adapter_record(unwrap(run.adapter), **run.adapter_meta)}
                   if run.adapter is not None else {})},
               path)


def validate_run(run: Run, data: Data, val_loader: DataLoader | None, real_folder) -> dict:
    """Held-out synthetic crops (`val_nme_crop`), held-out real faces (`real_val_nme`, the dataset's
    protocol normalisation) and the --val-real folder (`real_nme_io`); with a label adapter, the real
    scores through it as well (`real_val_nme_adapter`, `real_nme_io_adapter`)."""
    from facegen.trainer.evaluate import evaluate, protocol_norm
    from facegen.trainer.score import overall

    rec = {"step": run.step}
    if val_loader is not None:
        rec["val_nme_crop"] = validate(run.model, val_loader, run.device, run.cfg.input_size)
    for key, ds, norm in (("real_val_nme", data.real_val, protocol_norm(data.real_convention)),
                          ("real_nme_io", real_folder, "inter_ocular")):
        if ds is None:
            continue
        run.model.eval()
        p = Predictor(run.model, run.spec, run.cfg.input_size, run.cfg.crop_scale, run.cfg.gray, run.device,
                      adapter=unwrap(run.adapter), adapter_info={"name": run.cfg.adapter, **run.adapter_meta},
                      flip=run.cfg.test_flip)
        rep = evaluate(p, ds, norms=(norm,))
        run.model.train()
        rec[key] = overall(rep["metrics"][norm])["nme"]
        if run.adapter is not None:
            run.adapter.train()
            rec[f"{key}_adapter"] = overall(rep["modes"]["adapter"]["metrics"][norm])["nme"]
    return rec


# best.pt is chosen by the first of these a validation record holds: real faces first (through the adapter
# when the run trains one: that is what its real labels supervise), then the synthetic crops
SELECT_BY = ("real_val_nme_adapter", "real_val_nme", "real_nme_io_adapter", "real_nme_io", "val_nme_crop")


def _check_adapter(cfg: TrainConfig, strategy) -> None:
    """--adapter trains on real labels: refuse the strategies where it would learn nothing or mean nothing."""
    from facegen.trainer.adapters import check_adapter_name

    check_adapter_name(cfg.adapter)
    if strategy.points == "real":
        raise FacegenError(f"--adapter {cfg.adapter} with --strategy {strategy.name}: this model's points already "
                           "are iBUG-68 in the labels' convention, so there is nothing to adapt; drop --adapter")
    if "real" not in strategy.sources:
        raise FacegenError(f"--adapter {cfg.adapter} with --strategy {strategy.name}: the adapter learns from real "
                           "labels and this strategy reads none, so it would stay untrained. Train without it, "
                           "then fit one on the frozen model: facegen adapt --checkpoint OUT/best.pt --real PATH; "
                           "or train it jointly with --strategy mixed or fine-tune")


def _attach_adapter(run: Run, data: Data, init: dict | None) -> None:
    """The run's label adapter, for the real labels' jaw convention; a fine-tune continues the --init
    checkpoint's adapter when it is the same kind for the same points (e.g. one fitted by `facegen adapt`)."""
    from facegen.trainer.adapters import create_adapter

    cfg = run.cfg
    run.adapter = create_adapter(cfg.adapter, len(run.spec.flip_map), run.real_index, cfg.input_size, model=run.model)
    fitted_on = {"by": "facegen train (label transfer)", "strategy": cfg.strategy, "real": cfg.real,
                 "n_real": len(data.train["real"]), "seed": cfg.seed}
    prior = (init or {}).get("adapter") or {}
    if (prior.get("name") == cfg.adapter and prior.get("kwargs") == run.adapter.kwargs
            and prior.get("convention") == data.real_convention):
        run.adapter.load_state_dict(prior["state"])
        fitted_on["continued"] = prior.get("fitted_on")
    run.adapter.to(run.device)
    run.adapter_meta = {"convention": data.real_convention, "fitted_on": fitted_on}


def _check_occlusion(cfg: TrainConfig) -> None:
    if not 0.0 <= cfg.occluded_weight <= 1.0 or not math.isfinite(cfg.occluded_weight):
        raise FacegenError(f"--occluded-weight {cfg.occluded_weight}: a weight in [0, 1] (0 masks the points an "
                           "occluder hides, 1 is plain training)")
    if cfg.occluded_weight != 0.0 and not cfg.occlusion_aware:
        raise FacegenError(f"--occluded-weight {cfg.occluded_weight} weighs occluded points only in occlusion-aware "
                           "training: add --occlusion-aware")


def train(cfg: TrainConfig, progress: bool = True) -> dict:
    """Run training; returns a summary (first/last train loss, best validation, checkpoint paths).
    Launched by torchrun, this process trains as one rank of the run (every rank returns the summary)."""
    from facegen.trainer.strategies import get_strategy

    strategy = get_strategy(cfg.strategy)
    if cfg.adapter:
        _check_adapter(cfg, strategy)
    _check_occlusion(cfg)
    with distributed.session(cfg.device, cfg.dist_backend) as dist:
        return _train(cfg, strategy, dist, progress)


def _train(cfg: TrainConfig, strategy, dist: Dist, progress: bool) -> dict:
    seed_everything(cfg.seed)  # the same on every rank: the ranks start from one model and one shuffle
    device = dist.device
    ckpt = read_checkpoint(cfg.resume, RESUME_KEYS) if cfg.resume else None
    if strategy.points == "init" and not cfg.init and ckpt is None:
        raise FacegenError(f"--strategy {strategy.name} starts from a trained checkpoint: give --init CHECKPOINT")
    init = read_checkpoint(cfg.init) if strategy.points == "init" and cfg.init and ckpt is None else None
    if strategy.points == "init" and ckpt is not None:
        init = ckpt  # resuming: the arch and spec are the run's own
    if init is not None:  # continue as the checkpoint was trained: same model, input size, crop and colour
        c = init.get("config", {})
        cfg = replace(cfg, model=init["arch"]["name"], input_size=int(c.get("input_size", cfg.input_size)),
                      crop_scale=float(c.get("crop_scale", cfg.crop_scale)), gray=bool(c.get("gray", cfg.gray)),
                      model_kwargs={k: v for k, v in init["arch"]["kwargs"].items() if k != "in_chans"})
    data = build_data(cfg, strategy, init)
    for ds in data.train.values():  # each rank augments with its own random stream (rank 0 as one process)
        ds.stream = dist.rank
    spec = data.spec
    gen = torch.Generator().manual_seed(cfg.seed)
    loaders = _loaders(cfg, data, strategy, device, gen, dist)
    val_loader = DataLoader(data.val, batch_size=cfg.batch_size, num_workers=0) if data.val is not None else None

    model, arch = build_model(cfg, spec, device, init if ckpt is None else None)
    real_index = spec.correspondence(data.real_convention) if "real" in strategy.sources else None
    if real_index is None and "real" in strategy.sources:
        raise FacegenError(f"spec {spec.name!r} has no iBUG-68 correspondence, so real labels cannot supervise it")
    use_amp = cfg.amp and device.type == "cuda"
    run = Run(cfg, device, spec, model, LandmarkLoss(cfg.coord_loss, cfg.heatmap_loss, cfg.heatmap_weight),
              real_index, torch.nn.ModuleDict(), use_amp)
    if strategy.modules is not None:
        run.modules.update(strategy.modules(run))
        run.modules.to(device)
    params = [*model.parameters(), *run.modules.parameters()]
    if cfg.adapter:
        _attach_adapter(run, data, init if ckpt is None else None)
        # a fresh adapter learns at the full --lr (fine-tune lowers the rate to protect the trained model)
        params = [{"params": params}, {"params": list(run.adapter.parameters()), "lr": cfg.lr}]
    primary = loaders[strategy.sources[0]]
    run.total = total = cfg.steps or cfg.epochs * len(primary)
    optim = build_optimiser(cfg, params, total, use_amp, strategy.lr_scale)

    best, history = float("inf"), []
    if ckpt is not None:
        if ckpt["arch"] != arch:
            raise FacegenError(f"{cfg.resume}: checkpoint model {ckpt['arch']} differs from the requested {arch}")
        model.load_state_dict(ckpt["model_state"])
        if "modules_state" in ckpt:
            run.modules.load_state_dict(ckpt["modules_state"])
        had = (ckpt.get("adapter") or {}).get("name")
        if had != cfg.adapter:
            say = lambda a: f"--adapter {a}" if a else "no --adapter"  # noqa: E731
            raise FacegenError(f"{cfg.resume}: trained with {say(had)}, resumed with {say(cfg.adapter)}; "
                               "resume with the options it was trained with")
        if run.adapter is not None:
            run.adapter.load_state_dict(ckpt["adapter"]["state"])
        optim.opt.load_state_dict(ckpt["optimizer"])
        optim.sched.load_state_dict(ckpt["scheduler"])
        optim.scaler.load_state_dict(ckpt["scaler"])
        run.step, best, history = ckpt["step"], ckpt["best"], ckpt.get("history", [])
        gen.manual_seed(cfg.seed + run.step)  # a new but reproducible shuffle after resuming

    real_folder = None
    if cfg.val_real:
        from facegen.trainer.evaluate import open_eval_dataset
        real_folder = open_eval_dataset("folder", cfg.val_real)
    out = Path(cfg.out)
    if dist.main:
        out.mkdir(parents=True, exist_ok=True)

    model.train()
    # torchrun: what trains goes into DistributedDataParallel after the checkpoint is loaded (each wrapper
    # broadcasts rank 0's weights; they are equal already). The strategy modules and the adapter are
    # replaced in place (strategies call them); the model is kept bare beside its replica (Run.replica)
    if dist.enabled:
        run.replica = distributed.wrap(model, dist)
        for name in list(run.modules):
            run.modules[name] = distributed.wrap(run.modules[name], dist, own_group=True)
        if run.adapter is not None:
            run.adapter = distributed.wrap(run.adapter, dist, own_group=True)
    bar = tqdm(total=total, initial=run.step, disable=not progress or not dist.main, dynamic_ncols=True,
               desc=f"train {cfg.model} ({strategy.name})")
    first_losses, recent, t0 = [], [], time.perf_counter()
    # images/s of the training steps alone: validation and the first step (loader workers starting) left out
    timed_images, timed_s, first_step = 0, 0.0, run.step + 1
    val_every = cfg.val_every or len(primary)
    streams = {s: _cycle(loader) for s, loader in loaders.items()}
    while run.step < total:
        t_step = time.perf_counter()
        batches = {s: next(stream) for s, stream in streams.items()}
        loss, parts = strategy.loss(run, batches)
        optim.step(loss)
        run.step += 1
        step = run.step
        lv = float(loss.detach())  # (waits for the step to finish on a GPU: the timing below is the step's)
        if step > first_step:  # (under torchrun: this rank's images x the world size, all the ranks' images)
            timed_images += sum(len(b["image"]) for b in batches.values()) * dist.world
            timed_s += time.perf_counter() - t_step
        lv = distributed.mean(lv, dist)  # the loss of the whole (global) batch; parts below are this rank's
        if len(first_losses) < 5:
            first_losses.append(lv)
        recent = (recent + [lv])[-20:]
        rate = timed_images / timed_s if timed_s else 0.0
        bar.update(1)
        bar.set_postfix(loss=f"{np.mean(recent):.3f}", img_s=f"{rate:.1f}", lr=f"{optim.sched.get_last_lr()[0]:.2e}")
        if step % cfg.log_every == 0 or step == total:
            history.append({"step": step, "loss": float(np.mean(recent)), **parts, "img_per_s": rate})
        if step % val_every == 0 or step == total:
            # rank 0 validates and every rank takes its record, so best (and the history) agree everywhere;
            # the others wait for it in the broadcast
            rec = distributed.broadcast(validate_run(run, data, val_loader, real_folder) if dist.main else None,
                                        dist)
            history.append(rec)
            metric = next((rec[k] for k in SELECT_BY if k in rec), np.mean(recent))
            if metric < best:
                best = metric
                if dist.main:
                    save_checkpoint(out / "best.pt", run, optim, arch, best, history)
            if dist.main:
                save_checkpoint(out / "last.pt", run, optim, arch, best, history)
                bar.write(json.dumps({k: round(v, 4) if isinstance(v, float) else v for k, v in rec.items()}))
    bar.close()
    if dist.main:
        save_checkpoint(out / "last.pt", run, optim, arch, best, history)
        if not (out / "best.pt").exists():
            save_checkpoint(out / "best.pt", run, optim, arch, best, history)
    summary = {"steps": run.step, "strategy": strategy.name, "occlusion_aware": cfg.occlusion_aware,
               **({"occluded_weight": cfg.occluded_weight} if cfg.occlusion_aware else {}),
               "first_loss": float(np.mean(first_losses)) if first_losses else None,
               "last_loss": float(np.mean(recent)) if recent else None, "best": best,
               "last": str(out / "last.pt"), "best_checkpoint": str(out / "best.pt"),
               "img_per_s": timed_images / timed_s if timed_s else None, "wall_s": time.perf_counter() - t0,
               **({"world_size": dist.world, "global_batch_size": cfg.batch_size * dist.world} if dist.enabled else {})}
    if dist.main:
        (out / "history.json").write_text(json.dumps({"summary": summary, "history": history}, indent=1))
    distributed.barrier(dist)  # the other ranks return once rank 0's files are written
    return summary
