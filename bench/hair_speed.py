"""Time generator/hair.py per style: median ms of scalp_strands (7000 strands, the style's mid length)
and of facial_strands + brow_strands, one thread, on the neutral face of the cached face model.

    python bench/hair_speed.py [--repeats 7]
"""

from __future__ import annotations

import argparse
import os
import time

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import numpy as np  # noqa: E402
import yaml  # noqa: E402

from facegen.face_model import load_face_model  # noqa: E402
from facegen.generator import hair  # noqa: E402
from facegen.generator.sampling import DEFAULT_CONFIG  # noqa: E402
from facegen.generator.scene import Appearance, FacialHair, Hair  # noqa: E402


def median_ms(fn, repeats: int) -> float:
    fn()  # caches, first-call imports
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return 1000 * float(np.median(times))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()
    model = load_face_model()
    shaped = model.neutral.copy()
    gravity = np.array([0.0, -1.0, 0.0])
    config = yaml.safe_load(DEFAULT_CONFIG.read_text())
    start = time.perf_counter()
    hair.scalp_strands(Hair(style="buzz", strands=10, length=0.5), shaped, model, gravity)
    print(f"per-model tables (once): {1000 * (time.perf_counter() - start):.0f} ms")
    for name, style in config["hair"]["styles"].items():
        if "strands" not in style:
            continue
        h = Hair(style=name, strands=7000, length=float(np.mean(style["length"])), clumping=0.35,
                 curl=float(np.mean(style.get("curl", [0, 0]))), frizz=0.2, parting=0.3, seed=1)
        ms = median_ms(lambda: hair.scalp_strands(h, shaped, model, gravity), args.repeats)
        print(f"scalp  {name:14s} 7000 x {hair.STYLES[name].points:2d} points  {ms:6.1f} ms")
    h = Hair(style="crew", strands=6000, length=2.0, melanin=0.5, seed=1)
    for name, style in config["facial_hair"]["styles"].items():
        if "strands" not in style:
            continue
        f = FacialHair(style=name, strands=int(style["strands"][1]), length=float(np.mean(style["length"])),
                       brow_strands=300, brow_length=0.8, seed=2)
        ms = median_ms(lambda: (hair.facial_strands(f, h, shaped, model, gravity),
                                hair.brow_strands(Appearance(brow_density=1.0), f, shaped, model)), args.repeats)
        print(f"facial {name:14s} {f.strands:4d} + brows 2 x 300     {ms:6.1f} ms")


if __name__ == "__main__":
    main()
