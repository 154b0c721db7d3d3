"""Training loop: shards -> augment -> model -> loss, AdamW + cosine, AMP on CUDA, checkpoints, resume.

Checkpoints (`last.pt`, `best.pt`) hold the model, optimiser, scheduler and step, plus the config and the
landmark spec, so `load_checkpoint(best.pt)` predicts with nothing else.
"""

from __future__ import annotations

import json
import math
import random
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader
from tqdm import tqdm

from facegen.errors import FacegenError
from facegen.trainer.datasets import ShardDataset, split_indices
from facegen.trainer.losses import LandmarkLoss
from facegen.trainer.models import create_model
from facegen.trainer.predictor import RESUME_KEYS, Predictor, SpecInfo, pick_device, read_checkpoint
from facegen.trainer.transforms import build_transforms


@dataclass
class TrainConfig:
    data: list[str]
    model: str = "hourglass"
    model_kwargs: dict = field(default_factory=dict)
    out: str = "runs/train"
    input_size: int = 256
    crop_scale: float = 1.25
    gray: bool = False
    augment: str = "default"  # or "none"
    epochs: int = 10
    steps: int | None = None  # overrides epochs when set
    batch_size: int = 16
    lr: float = 1e-3
    weight_decay: float = 1e-4
    warmup_steps: int = 100
    workers: int = 2
    val_fraction: float = 0.05
    val_every: int = 0  # steps; 0 = once per epoch
    val_real: str | None = None
    coord_loss: str = "l1"
    heatmap_loss: str = "kl"
    heatmap_weight: float = 1.0
    seed: int = 0
    device: str = "auto"
    amp: bool = True
    resume: str | None = None
    log_every: int = 10


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def _spec_info(ds: ShardDataset) -> SpecInfo:
    a = ds.shards.attrs
    return SpecInfo(name=str(a.get("spec_name", "")), yaml=ds.spec_yaml, names=ds.shards.landmark_names,
                    flip_map=ds.flip_map, ibug68=ds.ibug68)


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


def _build_model(arch: dict, size: int, device: torch.device) -> torch.nn.Module:
    """The model, run once on a blank image before training: arguments or an input size the architecture
    cannot take fail here, naming the options, rather than in the first step."""
    try:
        model = create_model(arch["name"], arch["num_landmarks"], **arch["kwargs"]).to(device)
        with torch.no_grad():
            model.eval()
            model(torch.zeros(1, arch["kwargs"]["in_chans"], size, size, device=device))
            model.train()
    except Exception as e:  # the architecture's own complaint, whatever its type
        args = " ".join(f"--model-arg {k}={json.dumps(v)}" for k, v in arch["kwargs"].items() if k != "in_chans")
        raise FacegenError(f"--model {arch['name']} {args} cannot run on --input-size {size} images "
                           f"({type(e).__name__}: {e}); change --input-size or the model arguments") from None
    return model


def train(cfg: TrainConfig, progress: bool = True) -> dict:
    """Run training; returns a summary (first/last train loss, best validation, checkpoint paths)."""
    seed_everything(cfg.seed)
    device = pick_device(cfg.device)
    ckpt = read_checkpoint(cfg.resume, RESUME_KEYS) if cfg.resume else None
    full = ShardDataset(cfg.data, seed=cfg.seed)
    spec = _spec_info(full)
    L = full.num_landmarks
    tr_idx, va_idx = split_indices(len(full), cfg.val_fraction, cfg.seed)
    train_tf = build_transforms(cfg.input_size, cfg.crop_scale, train=True, flip_map=spec.flip_map,
                                gray=cfg.gray, augment=cfg.augment)
    eval_tf = build_transforms(cfg.input_size, cfg.crop_scale, train=False, gray=cfg.gray)
    train_ds, val_ds = full.subset(tr_idx, train_tf), full.subset(va_idx, eval_tf)
    if len(train_ds) == 0:
        raise FacegenError(f"{cfg.data}: no training samples after holding out {cfg.val_fraction:.0%}")
    gen = torch.Generator().manual_seed(cfg.seed)
    loader_kw = dict(num_workers=cfg.workers, persistent_workers=cfg.workers > 0, pin_memory=device.type == "cuda")
    train_loader = DataLoader(train_ds, batch_size=cfg.batch_size, shuffle=True, generator=gen,
                              drop_last=len(train_ds) >= cfg.batch_size, **loader_kw)
    val_loader = DataLoader(val_ds, batch_size=cfg.batch_size, num_workers=0) if len(val_ds) else None

    in_chans = 1 if cfg.gray else 3
    arch = {"name": cfg.model, "num_landmarks": L, "kwargs": {"in_chans": in_chans, **cfg.model_kwargs}}
    model = _build_model(arch, cfg.input_size, device)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    total = cfg.steps or cfg.epochs * len(train_loader)
    warmup = min(cfg.warmup_steps, max(1, total // 10))
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: _cosine(s, total, warmup))
    use_amp = cfg.amp and device.type == "cuda"
    scaler = torch.amp.GradScaler("cuda", enabled=use_amp)
    loss_fn = LandmarkLoss(cfg.coord_loss, cfg.heatmap_loss, cfg.heatmap_weight)

    step, best, history = 0, float("inf"), []
    if ckpt is not None:
        if ckpt["arch"] != arch:
            raise FacegenError(f"{cfg.resume}: checkpoint model {ckpt['arch']} differs from the requested {arch}")
        model.load_state_dict(ckpt["model_state"])
        opt.load_state_dict(ckpt["optimizer"])
        sched.load_state_dict(ckpt["scheduler"])
        scaler.load_state_dict(ckpt["scaler"])
        step, best, history = ckpt["step"], ckpt["best"], ckpt.get("history", [])
        gen.manual_seed(cfg.seed + step)  # a new but reproducible shuffle after resuming

    def save(path: Path) -> None:
        torch.save({"model_state": model.state_dict(), "optimizer": opt.state_dict(), "scheduler": sched.state_dict(),
                    "scaler": scaler.state_dict(), "step": step, "best": best, "history": history, "arch": arch,
                    "config": asdict(cfg), "spec": spec.as_dict()}, path)

    real_ds = None
    if cfg.val_real:
        from facegen.trainer.evaluate import open_eval_dataset
        real_ds = open_eval_dataset("folder", cfg.val_real)
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)

    def run_validation() -> dict:
        rec = {"step": step}
        if val_loader is not None:
            rec["val_nme_crop"] = validate(model, val_loader, device, cfg.input_size)
        if real_ds is not None:
            from facegen.trainer.evaluate import evaluate
            model.eval()
            p = Predictor(model, spec, cfg.input_size, cfg.crop_scale, cfg.gray, device)
            rep = evaluate(p, real_ds, norms=("inter_ocular",))
            model.train()
            first = next(iter(rep["metrics"]["inter_ocular"].values()))
            rec["real_nme_io"] = first["nme"]
        return rec

    model.train()
    bar = tqdm(total=total, initial=step, disable=not progress, dynamic_ncols=True, desc=f"train {cfg.model}")
    first_losses, recent, t0, seen = [], [], time.perf_counter(), 0
    val_every = cfg.val_every or len(train_loader)
    while step < total:
        for batch in train_loader:
            if step >= total:
                break
            x = batch["image"].to(device, non_blocking=True).float() / 255.0
            y = batch["landmarks"].to(device, non_blocking=True)
            with torch.autocast(device.type, dtype=torch.float16, enabled=use_amp):
                output = model(x)
            loss, parts = loss_fn(output, y, cfg.input_size, model)
            opt.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            scaler.step(opt)
            scaler.update()
            sched.step()
            step += 1
            seen += len(x)
            lv = float(loss.detach())
            if len(first_losses) < 5:
                first_losses.append(lv)
            recent = (recent + [lv])[-20:]
            rate = seen / (time.perf_counter() - t0)
            bar.update(1)
            bar.set_postfix(loss=f"{np.mean(recent):.3f}", img_s=f"{rate:.1f}", lr=f"{sched.get_last_lr()[0]:.2e}")
            if step % cfg.log_every == 0 or step == total:
                history.append({"step": step, "loss": float(np.mean(recent)), **parts, "img_per_s": rate})
            if step % val_every == 0 or step == total:
                rec = run_validation()
                history.append(rec)
                metric = rec.get("real_nme_io", rec.get("val_nme_crop", np.mean(recent)))
                if metric < best:
                    best = metric
                    save(out / "best.pt")
                save(out / "last.pt")
                bar.write(json.dumps({k: round(v, 4) if isinstance(v, float) else v for k, v in rec.items()}))
    bar.close()
    save(out / "last.pt")
    if not (out / "best.pt").exists():
        save(out / "best.pt")
    summary = {"steps": step, "first_loss": float(np.mean(first_losses)) if first_losses else None,
               "last_loss": float(np.mean(recent)) if recent else None, "best": best,
               "last": str(out / "last.pt"), "best_checkpoint": str(out / "best.pt"),
               "img_per_s": seen / max(time.perf_counter() - t0, 1e-9)}
    (out / "history.json").write_text(json.dumps({"summary": summary, "history": history}, indent=1))
    return summary
