"""Face model and spec timings: full ICT-FaceKit import, cache load, spec compile.

    python bench/model_io.py [--ict PATH] [--repeats 3]

Prints medians over repeats (this machine is noisy; compare numbers from one run only).
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path


def median_time(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--ict", type=Path, default=None, help="ICT-FaceKit zip or folder (default: ../shared)")
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()

    from facegen import face_model as fm
    from facegen.ict import import_ict

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "model.npz"
        t_import = median_time(lambda: import_ict(args.ict).save(path), args.repeats)

        def load():
            fm._LOADED.clear()  # measure the file read, not the in-process memo
            return fm.load_face_model(path)

        t_load = median_time(load, max(args.repeats, 5))
        model = load()
        print(f"full import (read {1 + model.num_identity + model.num_expressions} OBJs + write npz): {t_import:.2f} s")
        print(f"cache load ({path.stat().st_size / 2**20:.0f} MiB npz): {t_load * 1000:.0f} ms")

        from facegen import specs

        def load_and_compile(name):
            specs._COMPILED.clear()  # compile_spec memoises per (spec, model) hash: time the real work
            return specs.load_spec(name, model)

        for name in ("ibug68", "dense243", "dense490", "dense1001"):
            t = median_time(lambda: load_and_compile(name), max(args.repeats, 5))
            print(f"spec load + compile {name}: {t * 1000:.1f} ms")


if __name__ == "__main__":
    main()
