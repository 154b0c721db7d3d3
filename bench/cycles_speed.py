"""Cycles speed, two ways (medians; run on a quiet machine):

1. jobs: `facegen render --renderer cycles` end to end (worker start-up included) with 1 and with 2
   workers on the same job, images/s each: which worker count to use on this machine.
2. images: seconds per image at 256^2 and 512^2 in one renderer, and the share of time outside the
   Cycles render call (scene update + readback).

    .venv/bin/python bench/cycles_speed.py [--workers 1,2] [--job-n 32] [--repeats 3]
                                           [--n 12] [--preset default] [--threads 0] [--device auto]
                                           [--config bench/configs/bare.yaml]   # without hair, clothing

The jobs run first: this process imports bpy only for the per-image part.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from cycles_common import random_params  # noqa: E402

from facegen.errors import FacegenError  # noqa: E402
from facegen.face_model import load_face_model  # noqa: E402
from facegen.generator.executors.local import threads_per_worker  # noqa: E402
from facegen.generator.job import JobSettings, run_job  # noqa: E402
from facegen.generator.scene import pose_scene  # noqa: E402


def job_rates(workers: list[int], n: int, size: int, repeats: int) -> None:
    """The same job (4 shards) with each worker count, `repeats` times, interleaved."""
    times: dict[int, list[float]] = {w: [] for w in workers}
    for _ in range(repeats):
        for w in workers:
            out = Path(tempfile.mkdtemp(prefix="facegen-cycles-bench-"))
            try:
                start = time.perf_counter()
                run_job(JobSettings(spec="dense490", n=n, out=str(out), size=size, shard_size=max(1, n // 4),
                                    workers=w, renderer="cycles"), progress=False)
                times[w].append(time.perf_counter() - start)
            finally:
                shutil.rmtree(out, ignore_errors=True)
    print(f"facegen render --renderer cycles, {n} images of {size}x{size} in 4 shards, end to end "
          f"(medians of {repeats}):")
    base = None
    for w in workers:
        rate = n / float(np.median(times[w]))
        base = base or rate
        runs = ", ".join(f"{n / t:.2f}" for t in times[w])
        print(f"  {w} worker(s) x {threads_per_worker(w) if w > 1 else 'all'} threads: {rate:.2f} images/s "
              f"({rate / base:.2f}x)   runs: {runs}")


def image_times(n: int, preset: str, threads: int, device: str, sizes: list[int], config: str | None = None) -> None:
    from facegen.generator.cycles import CyclesRenderer  # imports bpy: after the jobs

    model = load_face_model()
    r = CyclesRenderer(model, outputs=("rgb", "depth", "segmentation"), preset=preset, threads=threads, device=device)
    inner = []
    cycles_render = r._render

    def timed_render():  # time spent inside bpy.ops.render.render (Cycles sync + path tracing + compositor)
        t = time.perf_counter()
        cycles_render()
        inner.append(time.perf_counter() - t)

    r._render = timed_render
    print(f"one renderer: device {r.device}, preset {preset}, threads {threads or 'all'}")
    for size in sizes:
        p = random_params(model, 0, (size, size), config=config)
        r.render(p, pose_scene(p, model))  # warm-up
        inner.clear()
        total = []
        for i in range(n):
            p = random_params(model, i + 1, (size, size), config=config)
            posed = pose_scene(p, model)  # mesh evaluation belongs to the caller, not the renderer
            t = time.perf_counter()
            r.render(p, posed)
            total.append(time.perf_counter() - t)
        total, inner_a = np.array(total), np.array(inner)
        share = np.median((total - inner_a) / total)
        print(f"  {size}x{size}: median {np.median(total):.3f} s/image (min {total.min():.3f}, max {total.max():.3f}); "
              f"outside the Cycles render call: median {np.median(total - inner_a):.3f} s = {share:.1%}")
    r.close()


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--workers", default="1,2", help="worker counts for the job timing ('' to skip)")
    ap.add_argument("--job-n", type=int, default=32, help="images per timed job")
    ap.add_argument("--job-size", type=int, default=256)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--n", type=int, default=12, help="images per size in one renderer (0 to skip)")
    ap.add_argument("--preset", default="default")
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--device", default="auto",
                    help="Cycles device: auto (a GPU if Blender finds one, else the CPU), CPU, or GPU (no fallback)")
    ap.add_argument("--sizes", default="256,512")
    ap.add_argument("--config", default=None, help="sampling config of the per-image part (e.g. bench/configs/bare.yaml)")
    a = ap.parse_args()
    if a.workers:
        job_rates([int(w) for w in a.workers.split(",")], a.job_n, a.job_size, a.repeats)
    if a.n:
        try:
            image_times(a.n, a.preset, a.threads, a.device, [int(s) for s in a.sizes.split(",")], a.config)
        except FacegenError as e:  # e.g. --device GPU on a machine where Blender finds none
            sys.exit(str(e))
