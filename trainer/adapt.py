"""`facegen adapt`: fit a label adapter on a frozen landmark model with real labelled faces (test-time adaptation).

The model's weights never change. It runs on the real training faces (cropped from the ground-truth box,
as `facegen eval` crops), and the adapter (trainer/adapters.py) learns to map its output to the faces'
iBUG-68 labels, with Adam, stopping when the error on held-out real faces has not fallen for `patience`
epochs (FaceSynthetics' recipe); the best epoch's adapter is kept. Epoch 0 is the unfitted adapter, which
is exactly the nearest subset, so the kept adapter is never worse than the nearest subset on validation.

Augmentation (`augment_copies`): besides the plain crop of each training face, that many randomly
augmented crops (the training pipeline: shifted, rotated, scaled, flipped crops with colour changes) are
run through the model. The adapter reads absolute crop coordinates, so seeing the same face at other
positions and rolls teaches it a mapping that follows the face instead of memorising a few crops; with a
few dozen faces it is the main guard against over-fitting. The model's outputs are computed once and
cached when they fit in memory (`CACHE_BYTES`: always for `mlp`), else recomputed every epoch.

Its NMEs are those of single crops: a checkpoint trained with test-time flip (`--test-flip`, the default)
is scored by `facegen eval` on the crop and its mirror, so eval's numbers differ slightly from these (the
same with `facegen eval --no-flip`).

The result is a new checkpoint: the original's contents plus `adapter` (name, construction arguments,
weights, the labels' jaw convention, and what it was fitted on), which `facegen eval` and `facegen
predict` use. The original checkpoint is never overwritten.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator

import numpy as np
import torch
from torch.utils.data import DataLoader

from facegen.errors import FacegenError
from facegen.specs import IBUG68_FLIP
from facegen.trainer.adapters import adapter_record, create_adapter
from facegen.trainer.evaluate import protocol_norm
from facegen.trainer.losses import LandmarkLoss
from facegen.trainer.metrics import nme
from facegen.trainer.predictor import predictor_from, read_checkpoint
from facegen.trainer.transforms import build_transforms

CACHE_BYTES = 2 << 30  # model outputs kept in memory up to this size (heatmaps are large), else recomputed


@dataclass
class AdaptConfig:
    checkpoint: str
    real: str  # real labelled faces: 300-W (its train split), AFLW2000-3D, 300W-LP or a .pts folder
    real_format: str = "auto"
    n_real: int | None = None  # fit on N real faces (the same nested subsets as `facegen train --n-real`)
    real_val_fraction: float = 0.1  # held out for early stopping (fixed by seed, as in `facegen train`)
    real_test_fraction: float = 0.0  # held out and never used (keep it equal to training's to leave its test out)
    real_split_seed: int | None = None  # seed of the val / test hold-out (default: seed), as in `facegen train`
    adapter: str = "mlp"
    adapter_kwargs: dict = field(default_factory=dict)
    out: str | None = None  # default: next to the checkpoint, NAME_adapted.pt
    max_epochs: int = 200
    patience: int = 20  # epochs without a lower validation NME before stopping
    lr: float = 1e-3
    weight_decay: float = 0.0
    batch_size: int = 32
    augment_copies: int = 4  # augmented crops per training face, beside its plain crop
    seed: int = 0
    device: str = "auto"


def default_out(checkpoint: Path | str) -> Path:
    c = Path(checkpoint)
    return c.with_name(f"{c.stem}_adapted{c.suffix or '.pt'}")


class Feed:
    """Batches of (the frozen model's output, the labels) on real faces' crops. `parts` are (dataset,
    passes) pairs: a dataset with an augmenting transform gives new crops at each pass. Outputs are computed
    once and kept when they fit in CACHE_BYTES, else recomputed at every epoch (augmented crops then differ
    from epoch to epoch)."""

    def __init__(self, model: torch.nn.Module, parts: list[tuple[torch.utils.data.Dataset, int]],
                 device: torch.device, heatmaps: bool, batch_size: int):
        self.model, self.device, self.heatmaps, self.batch_size = model, device, heatmaps, batch_size
        self.parts = [(ds, n) for ds, n in parts if n > 0 and len(ds)]
        self.cache: dict[str, torch.Tensor] | None = None
        probe = next(self._run(DataLoader(torch.utils.data.Subset(self.parts[0][0], [0]), batch_size=1)))
        per_face = sum(v.numel() * v.element_size() for v in probe.values())
        if per_face * sum(len(ds) * n for ds, n in self.parts) <= CACHE_BYTES:
            chunks = list(self._stream())
            self.cache = {k: torch.cat([c[k] for c in chunks]) for k in probe}

    @torch.no_grad()
    def _run(self, loader: DataLoader) -> Iterator[dict[str, torch.Tensor]]:
        for batch in loader:
            out = self.model(batch["image"].to(self.device).float() / 255.0)
            got = {"landmarks": out["landmarks"].float().cpu(), "target": batch["landmarks"].float()}
            if self.heatmaps:
                got["heatmaps"] = out["heatmaps"][-1].float().cpu()
            yield got

    def _stream(self, shuffle: bool = False, gen: torch.Generator | None = None) -> Iterator[dict[str, torch.Tensor]]:
        for ds, passes in self.parts:
            for _ in range(passes):
                yield from self._run(DataLoader(ds, batch_size=self.batch_size, shuffle=shuffle, generator=gen))

    def batches(self, shuffle: bool = False, gen: torch.Generator | None = None) -> Iterator[tuple[dict, torch.Tensor]]:
        """(model output as the adapter reads it, labels) on the device, in crop pixels."""
        if self.cache is not None:
            n = len(self.cache["target"])
            order = torch.randperm(n, generator=gen) if shuffle else torch.arange(n)
            chunks = ({k: v[order[i:i + self.batch_size]] for k, v in self.cache.items()}
                      for i in range(0, n, self.batch_size))
        else:
            chunks = self._stream(shuffle, gen)
        for c in chunks:
            output = {"landmarks": c["landmarks"].to(self.device)}
            if self.heatmaps:
                output["heatmaps"] = [c["heatmaps"].to(self.device)]
            yield output, c["target"].to(self.device)


@torch.no_grad()
def feed_nme(adapter: torch.nn.Module, feed: Feed, norm: str) -> float:
    """Mean NME (%) of the adapter's iBUG-68 points on a feed. Crops are similarities of the image, so
    the NME in crop pixels equals `facegen eval`'s in image pixels."""
    adapter.eval()
    errs = [nme(adapter(o)["landmarks"].cpu().numpy(), t.cpu().numpy(), norm) for o, t in feed.batches()]
    adapter.train()
    return float(np.concatenate(errs).mean() * 100)


def adapt(cfg: AdaptConfig, log: Callable[[str], None] = print) -> dict:
    """Fit the adapter, write the adapted checkpoint, return a summary (before / after validation NME)."""
    from facegen.trainer.real_data import RealView, open_real, real_split
    from facegen.trainer.train import seed_everything

    src = Path(cfg.checkpoint)
    out = Path(cfg.out) if cfg.out else default_out(src)
    if out.exists() and out.resolve() == src.resolve():
        raise FacegenError(f"--out {out} is the checkpoint being adapted; write the adapted one to a new file "
                           f"(the default is {default_out(src)})")
    if out.is_dir():
        raise FacegenError(f"--out {out}: is a folder; name the .pt file to write")
    ckpt = read_checkpoint(src)
    if ckpt.get("adapter"):
        log(f"{src} already has a {ckpt['adapter'].get('name')} adapter; the new one replaces it in {out}")
    seed_everything(cfg.seed)
    predictor = predictor_from(ckpt, cfg.device, str(src))
    model, spec, device = predictor.model, predictor.spec, predictor.device
    model.eval()
    for p in model.parameters():  # frozen: only the adapter learns
        p.requires_grad_(False)

    base = open_real(cfg.real, cfg.real_format, seed=cfg.seed)
    convention = base.jaw_convention
    index = spec.correspondence(convention)
    if index is None:
        raise FacegenError(f"{src}: spec {spec.name!r} has no iBUG-68 correspondence to start an adapter from")
    split_seed = cfg.seed if cfg.real_split_seed is None else cfg.real_split_seed
    split = real_split(len(base), cfg.n_real, split_seed, cfg.real_val_fraction, cfg.real_test_fraction)
    if len(split.train) == 0:
        raise FacegenError(f"--real {cfg.real}: no faces left to fit on (--n-real {cfg.n_real}); "
                           "use --n-real 1 or more")
    if len(split.val) == 0:
        raise FacegenError(f"--real {cfg.real}: no faces held out to stop on ({len(base)} faces, --real-val-fraction "
                           f"{cfg.real_val_fraction}); raise --real-val-fraction")
    adapter = create_adapter(cfg.adapter, len(spec.flip_map), index, predictor.input_size, model=model,
                             **cfg.adapter_kwargs).to(device)

    tf = dict(size=predictor.input_size, scale=predictor.crop_scale, gray=predictor.gray)
    plain = build_transforms(**tf, train=False)
    heatmaps = adapter.needs_heatmaps
    faces = RealView(base, split.train, plain)
    augmented = RealView(base, split.train, build_transforms(**tf, train=True, flip_map=IBUG68_FLIP), seed=cfg.seed)
    fit = Feed(model, [(faces, 1), (augmented, cfg.augment_copies)], device, heatmaps, cfg.batch_size)
    val = Feed(model, [(RealView(base, split.val, plain), 1)], device, heatmaps, cfg.batch_size)
    train_plain = Feed(model, [(faces, 1)], device, heatmaps, cfg.batch_size)  # for the before / after report
    norm = protocol_norm(convention)  # the dataset's protocol, as in `facegen eval`

    c = ckpt.get("config", {})
    loss_fn = LandmarkLoss(c.get("coord_loss", "l1"), c.get("heatmap_loss", "kl"), c.get("heatmap_weight", 1.0))
    opt = torch.optim.Adam(adapter.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    gen = torch.Generator().manual_seed(cfg.seed)
    before = {"val": feed_nme(adapter, val, norm), "train": feed_nme(adapter, train_plain, norm)}
    best, best_epoch, best_state, stale, history = before["val"], 0, copy.deepcopy(adapter.state_dict()), 0, []
    log(f"adapt {cfg.adapter}: {len(split.train)} faces to fit (+{cfg.augment_copies} augmented crops each), "
        f"{len(split.val)} to stop on; NME {norm} %, nearest subset: val {best:.3f}")
    epoch = 0
    for epoch in range(1, cfg.max_epochs + 1):
        adapter.train()
        losses = []
        for output, target in fit.batches(shuffle=True, gen=gen):
            loss, _ = loss_fn(adapter(output), target, predictor.input_size, adapter)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            losses.append(float(loss.detach()))
        v = feed_nme(adapter, val, norm)
        history.append({"epoch": epoch, "loss": float(np.mean(losses)), "val_nme": v})
        if v < best:
            best, best_epoch, best_state, stale = v, epoch, copy.deepcopy(adapter.state_dict()), 0
        else:
            stale += 1
        if epoch % 10 == 0 or stale == 0:
            log(f"  epoch {epoch}: loss {np.mean(losses):.4f}, val {v:.3f}{' (best)' if stale == 0 else ''}")
        if stale >= cfg.patience:
            break
    adapter.load_state_dict(best_state)
    after = {"val": feed_nme(adapter, val, norm), "train": feed_nme(adapter, train_plain, norm)}
    test = None
    if len(split.test):  # faces never fitted on nor stopped on: the honest leave-some-out number
        test = Feed(model, [(RealView(base, split.test, plain), 1)], device, heatmaps, cfg.batch_size)
        initial = create_adapter(cfg.adapter, len(spec.flip_map), index, predictor.input_size, model=model,
                                 **cfg.adapter_kwargs).to(device)
        before["test"], after["test"] = feed_nme(initial, test, norm), feed_nme(adapter, test, norm)

    fitted_on = {"by": "facegen adapt", "checkpoint": str(src), "real": str(cfg.real), "format": type(base).__name__,
                 "n_real": cfg.n_real, "n_train": len(split.train), "n_val": len(split.val), "seed": cfg.seed,
                 "split_seed": split_seed, "real_val_fraction": cfg.real_val_fraction,
                 "real_test_fraction": cfg.real_test_fraction, "augment_copies": cfg.augment_copies, "norm": norm,
                 "best_epoch": best_epoch, "val_nme_before": before["val"], "val_nme_after": after["val"]}
    adapted = {**ckpt, "adapter": adapter_record(adapter, convention, fitted_on), "adapt_history": history}
    out.parent.mkdir(parents=True, exist_ok=True)
    torch.save(adapted, out)
    summary = {"adapter": cfg.adapter, "out": str(out), "convention": convention, "norm": norm,
               "n_train": len(split.train), "n_val": len(split.val), "epochs": epoch, "best_epoch": best_epoch,
               "val_nme_before": before["val"], "val_nme_after": after["val"],
               "train_nme_before": before["train"], "train_nme_after": after["train"]}
    if test is not None:
        summary.update(n_test=len(split.test), test_nme_before=before["test"], test_nme_after=after["test"])
    if best_epoch == 0:
        log("the adapter never beat the nearest subset on the held-out faces; it is stored as initialised "
            "(identical to the nearest subset)")
    held_out = f"test {before['test']:.3f} -> {after['test']:.3f}, " if test is not None else ""
    log(f"NME {norm} % (nearest subset -> adapter): {held_out}val {before['val']:.3f} -> {after['val']:.3f}, "
        f"train {before['train']:.3f} -> {after['train']:.3f}; best epoch {best_epoch} of {epoch}; wrote {out}")
    return summary
