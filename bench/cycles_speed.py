"""Seconds per Cycles image at 256^2 and 512^2 (medians), and the share of time outside the Cycles
render call (scene update + readback). Run on a quiet machine:

    .venv/bin/python bench/cycles_speed.py [--n 12] [--preset default] [--threads 0] [--device auto]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from cycles_common import random_params  # noqa: E402

from facegen.face_model import load_face_model  # noqa: E402
from facegen.generator.cycles import CyclesRenderer  # noqa: E402
from facegen.generator.scene import pose_scene  # noqa: E402

if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=12)
    ap.add_argument("--preset", default="default")
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--device", default="auto")
    ap.add_argument("--sizes", default="256,512")
    a = ap.parse_args()
    model = load_face_model()
    r = CyclesRenderer(model, outputs=("rgb", "depth", "segmentation"), preset=a.preset, threads=a.threads, device=a.device)
    inner = []
    cycles_render = r._render

    def timed_render():  # time spent inside bpy.ops.render.render (Cycles sync + path tracing + compositor)
        t = time.perf_counter()
        cycles_render()
        inner.append(time.perf_counter() - t)

    r._render = timed_render
    print(f"device {r.device}, preset {a.preset}, threads {a.threads or 'all'}")
    for size in (int(s) for s in a.sizes.split(",")):
        p = random_params(model, 0, (size, size))
        r.render(p, pose_scene(p, model))  # warm-up
        inner.clear()
        total = []
        for i in range(a.n):
            p = random_params(model, i + 1, (size, size))
            posed = pose_scene(p, model)  # mesh evaluation belongs to the caller, not the renderer
            t = time.perf_counter()
            r.render(p, posed)
            total.append(time.perf_counter() - t)
        total, inner_a = np.array(total), np.array(inner)
        share = np.median((total - inner_a) / total)
        print(f"{size}x{size}: median {np.median(total):.3f} s/image (min {total.min():.3f}, max {total.max():.3f}); "
              f"outside the Cycles render call: median {np.median(total - inner_a):.3f} s = {share:.1%}")
    r.close()
