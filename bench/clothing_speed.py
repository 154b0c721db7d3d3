"""Median time of one `clothing.garment` call per cut (the template is built before timing).

    .venv/bin/python bench/clothing_speed.py [--repeats 30]
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from facegen.face_model import load_face_model
from facegen.generator import clothing
from facegen.generator.scene import Clothing


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=30)
    args = parser.parse_args()
    model = load_face_model()
    rng = np.random.default_rng(0)
    shaped = model.mesh(rng.standard_normal(model.num_identity).astype(np.float32))
    for cut in clothing.CUTS:
        clothing.garment(Clothing(cut=cut), shaped, model)  # builds the template once
        times = {}
        for pattern in clothing.PATTERNS:
            runs = []
            for seed in range(args.repeats):
                start = time.perf_counter()
                g = clothing.garment(Clothing(cut=cut, pattern=pattern, seed=seed), shaped, model)
                runs.append(time.perf_counter() - start)
            times[pattern] = 1000 * float(np.median(runs))
        print(f"{cut:13s} {len(g.vertices):6d} vertices {len(g.triangles):6d} triangles  median ms: "
              + "  ".join(f"{p} {t:.1f}" for p, t in times.items()))


if __name__ == "__main__":
    main()
