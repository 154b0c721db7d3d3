"""Throughput of the training input pipeline and of training steps on this machine (prints numbers).

    python bench/train_throughput.py --data DIR            # DIR: shards from `facegen render --size 256`
    python bench/train_throughput.py                        # renders 256 ibug68 raster images at 256 px first

Loader: samples/s through ShardDataset + the full training augmentation (gzip decode, one warpAffine,
photometric on the crop), uint8 tensors, DataLoader with persistent workers. Target: >= 1000/s with 2
workers at 256 px. Training: images/s of forward + backward + AdamW step on the CPU at batch 16.
Not a timed test: numbers depend on the machine and its load.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader

from facegen.trainer.datasets import ShardDataset
from facegen.trainer.losses import LandmarkLoss
from facegen.trainer.models import create_model
from facegen.trainer.transforms import build_transforms


def bench_stage(ds: ShardDataset, n: int) -> dict:
    """Per-sample cost of each stage in this process (ms)."""
    from facegen.trainer.transforms import Warp
    idx = np.random.default_rng(0).integers(0, len(ds), n)
    t = time.perf_counter()
    raws = [ds.raw(int(i)) for i in idx]
    read = (time.perf_counter() - t) / n * 1e3
    tf = ds.transform
    geo = [x for x in tf.transforms[: [type(y) for y in tf.transforms].index(Warp) + 1]]
    rng = np.random.default_rng(0)
    t = time.perf_counter()
    crops = []
    for r in raws:
        s = dict(r)
        for g in geo:
            s = g(s, rng)
        crops.append(s)
    warp = (time.perf_counter() - t) / n * 1e3
    photometric = tf.transforms[len(geo):]
    for p in photometric:  # warm-up: GaussianNoise draws its per-process noise bank on first use
        if hasattr(p, "_bank"):
            p._bank(rng, crops[0]["image"].size)
    t = time.perf_counter()
    for s in crops:
        for p in photometric:
            s = p(s, rng)
    photo = (time.perf_counter() - t) / n * 1e3
    return {"read+decode_ms": read, "crop+warp_ms": warp, "photometric_ms": photo}


def bench_loader(ds: ShardDataset, workers: int, batch: int, batches: int) -> float:
    loader = DataLoader(ds, batch_size=batch, shuffle=True, num_workers=workers, persistent_workers=workers > 0,
                        drop_last=True)
    it = iter(loader)
    next(it)  # start-up (fork, first opens) is not throughput
    count, t = 0, time.perf_counter()
    for _ in range(batches):
        try:
            b = next(it)
        except StopIteration:
            it = iter(loader)
            b = next(it)
        count += len(b["index"])
    return count / (time.perf_counter() - t)


def bench_train(name: str, size: int, batch: int, steps: int, num_landmarks: int = 68, **kw) -> float:
    torch.manual_seed(0)
    model = create_model(name, num_landmarks, **kw)
    opt = torch.optim.AdamW(model.parameters(), 1e-3)
    loss_fn = LandmarkLoss()
    x = torch.rand(batch, 3, size, size)
    y = torch.rand(batch, num_landmarks, 2) * size
    for i in range(steps + 1):
        if i == 1:
            t = time.perf_counter()
        loss, _ = loss_fn(model(x), y, size, model)
        opt.zero_grad()
        loss.backward()
        opt.step()
    return batch * steps / (time.perf_counter() - t)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=None)
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--batches", type=int, default=40)
    ap.add_argument("--repeats", type=int, default=3, help="loader runs; the median is reported (noisy machines)")
    ap.add_argument("--train-steps", type=int, default=3)
    ap.add_argument("--skip-train", action="store_true")
    args = ap.parse_args()
    data = args.data
    if data is None:
        data = Path(__file__).resolve().parent / "out" / f"ibug68-{args.size}"
        if not (data / "manifest.json").exists():
            subprocess.run([sys.executable, "-m", "facegen.cli", "render", "--spec", "ibug68", "--n", "256",
                            "--out", str(data), "--size", str(args.size), "--renderer", "raster", "--quiet"], check=True)
    torch.set_num_threads(max(1, torch.get_num_threads()))
    probe = ShardDataset([data])
    tf = build_transforms(args.size, train=True, flip_map=probe.flip_map)
    ds = ShardDataset([data], transform=tf)
    print(f"shards: {data} ({len(ds)} samples, {probe.shards.read(0, ('image',))['image'].shape})")
    print("per-sample stages (1 process):", {k: round(v, 3) for k, v in bench_stage(ds, 64).items()})
    for w in sorted({0, args.workers}):
        rates = [bench_loader(ds, w, args.batch, args.batches) for _ in range(args.repeats)]
        print(f"loader: {np.median(rates):8.1f} samples/s median of {args.repeats} "
              f"({', '.join(f'{r:.0f}' for r in rates)})  (workers={w}, batch={args.batch}, input {args.size}px, "
              "full augmentation)")
    if not args.skip_train:
        for name, kw in (("hourglass", {}), ("resnet18", {})):
            rate = bench_train(name, args.size, 16, args.train_steps, **kw)
            print(f"train: {name:10s} {rate:6.2f} images/s  (CPU, batch 16, {args.size}px, {torch.get_num_threads()} threads)")


if __name__ == "__main__":
    main()
