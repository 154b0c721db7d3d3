"""Throughput of the training input pipeline and of training on this machine (prints numbers).

    python bench/train_throughput.py --data DIR            # DIR: shards from `facegen render --size 256`
    python bench/train_throughput.py                        # renders 256 ibug68 raster images at 256 px first
    python bench/train_throughput.py --data DIR --skip-loader --model resnet18_heatmap --input-size 128 --batch-size 16

Loader: samples/s through ShardDataset + the full training augmentation (gzip decode, one warpAffine,
photometric on the crop), uint8 tensors, DataLoader with persistent workers. Target: >= 1000/s with 2
workers at 256 px.
Training, for each --model: images/s of a bare step (forward + backward + AdamW on one random batch held in
memory, the model's own loss) against `facegen train` on the shards (its steps only: validation and the
first step, when loader workers start, are not timed) at the same batch and input size, and their ratio.
Target: train >= 80 % of bare. Not a timed test: numbers depend on the machine and its load.
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
from facegen.trainer.train import CHANNELS_LAST, prepare_model
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


def busy_cpus(interval: float = 1.0) -> float:
    """How many CPUs of this machine were busy over the last `interval` seconds (Linux /proc/stat)."""
    def sample() -> tuple[int, int]:
        fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
        idle = fields[3] + fields[4]  # idle + iowait
        return sum(fields) - idle, sum(fields)
    b0, t0 = sample()
    time.sleep(interval)
    b1, t1 = sample()
    import os
    return (b1 - b0) / max(t1 - t0, 1) * os.cpu_count()


def wait_quiet(limit: float = 0.3, timeout: float = 900.0) -> float:
    """Wait (up to `timeout` s) until the machine is idle, i.e. fewer than `limit` CPUs busy: throughput
    measured beside another heavy job reads as low as half. Returns the busy CPUs last seen."""
    t = time.perf_counter()
    busy = busy_cpus()
    while busy > limit and time.perf_counter() - t < timeout:
        time.sleep(5)
        busy = busy_cpus()
    if busy > limit:
        print(f"warning: {busy:.1f} CPUs busy with other work; throughput will read low", flush=True)
    return busy


def bench_train(name: str, size: int, batch: int, steps: int, num_landmarks: int = 68, channels_last: bool | None = None,
                device: str = "cpu", **kw) -> float:
    """Bare training steps: one random batch in memory, the model, its loss, AdamW; the first step untimed.
    On CUDA with AMP as `facegen train` runs it (float16 autocast, gradient scaler)."""
    torch.manual_seed(0)
    dev = torch.device(device)
    amp = dev.type == "cuda"
    channels_last = CHANNELS_LAST if channels_last is None else channels_last
    model = prepare_model(create_model(name, num_landmarks, **kw), channels_last).to(dev)
    opt = torch.optim.AdamW(model.parameters(), 1e-3)
    scaler = torch.amp.GradScaler("cuda", enabled=amp)
    loss_fn = LandmarkLoss()
    x = torch.rand(batch, 3, size, size, device=dev)
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    y = torch.rand(batch, num_landmarks, 2, device=dev) * size
    for i in range(steps + 3):  # three warm-up steps (cuDNN picks its algorithms)
        if i == 3:
            _sync(dev)
            t = time.perf_counter()
        with torch.autocast(dev.type, dtype=torch.float16, enabled=amp):
            loss, _ = loss_fn(model(x), y, size, model)
        opt.zero_grad()
        scaler.scale(loss).backward()
        scaler.step(opt)
        scaler.update()
    _sync(dev)
    return batch * steps / (time.perf_counter() - t)


def _sync(dev: torch.device) -> None:
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)


def bench_facegen_train(data: Path, name: str, size: int, batch: int, steps: int, workers: int,
                        device: str = "cpu") -> float:
    """`facegen train` on the shards for `steps` steps: its own images/s (training steps only)."""
    import tempfile

    from facegen.trainer.train import TrainConfig, train

    with tempfile.TemporaryDirectory() as out:
        cfg = TrainConfig(data=[str(data)], model=name, input_size=size, batch_size=batch, steps=steps,
                          workers=workers, out=out, val_fraction=0.0, device=device)
        return train(cfg, progress=False)["img_per_s"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=None)
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--batches", type=int, default=40)
    ap.add_argument("--repeats", type=int, default=3, help="loader runs, and bare runs of each layout with --layouts; medians are reported "
                    "(noisy machines)")
    ap.add_argument("--model", action="append", default=None, help="repeatable [resnet18, hourglass]")
    ap.add_argument("--input-size", type=int, default=None, help="training input size [--size]")
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--train-steps", type=int, default=30, help="timed steps of each training measurement")
    ap.add_argument("--train-workers", type=int, default=None, help="loader workers of facegen train [its default]")
    ap.add_argument("--layouts", action="store_true", help="also bare steps in channels-last memory layout")
    ap.add_argument("--skip-loader", action="store_true")
    ap.add_argument("--skip-train", action="store_true")
    ap.add_argument("--device", default="cpu", help="training device: cpu, or cuda (with AMP, as facegen train)")
    ap.add_argument("--no-wait", action="store_true", help="measure at once, not after the machine is idle")
    args = ap.parse_args()
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        sys.exit(f"--device {args.device}: torch {torch.__version__} sees no CUDA GPU (a CPU build, or no driver: "
                 "`nvidia-smi` must list the GPU)")
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
    if not args.skip_loader:
        print("per-sample stages (1 process):", {k: round(v, 3) for k, v in bench_stage(ds, 64).items()})
        for w in sorted({0, args.workers}):
            rates = [bench_loader(ds, w, args.batch, args.batches) for _ in range(args.repeats)]
            print(f"loader: {np.median(rates):8.1f} samples/s median of {args.repeats} "
                  f"({', '.join(f'{r:.0f}' for r in rates)})  (workers={w}, batch={args.batch}, input {args.size}px, "
                  "full augmentation)")
    if not args.skip_train:
        from facegen.trainer.train import TrainConfig

        size = args.input_size or args.size
        workers = TrainConfig.workers if args.train_workers is None else args.train_workers
        for name in args.model or ["resnet18", "hourglass"]:
            # the two layouts measured in turns, --repeats times each, so that drift in the machine's
            # speed falls on both alike; medians
            rates = {False: [], True: []}
            for _ in range(args.repeats if args.layouts else 1):
                for channels_last in (False, True) if args.layouts else (CHANNELS_LAST,):
                    if not args.no_wait:
                        wait_quiet()
                    rates[channels_last].append(bench_train(name, size, args.batch_size, args.train_steps,
                                                            probe.num_landmarks, channels_last=channels_last,
                                                            device=args.device))
            if args.layouts:
                nchw, nhwc = float(np.median(rates[False])), float(np.median(rates[True]))
                print(f"bare:  {name:18s} contiguous {nchw:6.2f} images/s   channels-last {nhwc:6.2f} images/s "
                      f"({nhwc / nchw:5.1%}; medians of {args.repeats} in turns: "
                      f"{', '.join(f'{a:.1f}/{b:.1f}' for a, b in zip(rates[False], rates[True]))})")
            bare = float(np.median(rates[CHANNELS_LAST]))  # in the layout facegen train uses
            if not args.no_wait:
                wait_quiet()
            ours = bench_facegen_train(data, name, size, args.batch_size, args.train_steps + 1, workers, args.device)
            print(f"train: {name:18s} bare {bare:6.2f} images/s   facegen train {ours:6.2f} images/s   "
                  f"{ours / bare:5.1%} of bare  ({_where(args.device)}, batch {args.batch_size}, {size}px, "
                  f"{workers} loader workers)")


def _where(device: str) -> str:
    if torch.device(device).type == "cuda":
        return f"{torch.cuda.get_device_name(torch.device(device))}, AMP float16"
    return f"CPU, {torch.get_num_threads()} threads"


if __name__ == "__main__":
    main()
