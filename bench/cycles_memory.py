"""Resident memory of one Cycles worker over a long run: RSS after 50 and after 1000 samples
(tiny images, 1 sample, no denoising, so it finishes in minutes on a quiet machine).

    .venv/bin/python bench/cycles_memory.py [--n 1000] [--size 32]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from cycles_common import random_params  # noqa: E402

from facegen.face_model import load_face_model  # noqa: E402
from facegen.generator.cycles import CyclesRenderer  # noqa: E402
from facegen.generator.scene import pose_scene  # noqa: E402


def rss_mb() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024.0
    return float("nan")


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=1000)
    ap.add_argument("--size", type=int, default=32)
    ap.add_argument("--config", default=None, help="sampling config, as facegen render --config")
    a = ap.parse_args()
    model = load_face_model()
    r = CyclesRenderer(model, outputs=("rgb", "depth", "segmentation"), preset="fast", samples=1, denoise=False)
    print(f"after build: {rss_mb():.1f} MB", flush=True)
    marks = {10, 50, 100, 250, 500, 750, 1000, a.n}
    for i in range(1, a.n + 1):
        p = random_params(model, i, (a.size, a.size), config=a.config)  # varies HDRI, lights, background, hair, clothing
        r.render(p, pose_scene(p, model))
        if i in marks:
            print(f"after {i} samples: RSS {rss_mb():.1f} MB, blender datablocks {r.object_count()}", flush=True)
    r.close()
