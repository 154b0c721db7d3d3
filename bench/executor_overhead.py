"""Ray against the local executor on this machine: the same `facegen render` job (raster, dense490, 256 px)
with each executor and worker count, as whole commands (start-up included, as a user sees it).

    .venv/bin/python bench/executor_overhead.py                      # 1 and 2 workers, 3 runs each (~12 min)
    .venv/bin/python bench/executor_overhead.py --workers 2 --repeats 1 --n 160

Each configuration runs a short job (--n-short images) and a long one (--n); the difference gives the
steady rate, (n - n_short) / (wall - wall_short), and what is left the start-up: wall_short - n_short /
rate (Python, the face model, spawning workers or starting Ray and its actors). Runs alternate between
configurations so drift in the machine's speed falls on all alike; medians are printed. Ray's overhead
is its steady rate and its end-to-end rate against the local executor's with as many workers.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def wall(executor: str, workers: int, n: int, shard_size: int, extra: list[str]) -> float:
    with tempfile.TemporaryDirectory() as out:
        command = [sys.executable, "-m", "facegen.cli", "render", "--spec", "dense490", "--renderer", "raster",
                   "--size", "256", "--n", str(n), "--shard-size", str(shard_size), "--workers", str(workers),
                   "--executor", executor, "--out", out, "--quiet", *extra]
        start = time.perf_counter()
        subprocess.run(command, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        return time.perf_counter() - start


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--workers", default="1,2", help="comma-separated worker (actor) counts")
    ap.add_argument("--n", type=int, default=320, help="images of the long job")
    ap.add_argument("--n-short", type=int, default=0, help="images of the short job [one shard per worker]")
    ap.add_argument("--shard-size", type=int, default=40)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--shared-fs", action="store_true", help="Ray actors write the shards themselves")
    args = ap.parse_args()
    counts = [int(w) for w in args.workers.split(",")]
    configs = [(executor, w) for w in counts for executor in ("local", "ray")]
    extra = {"local": [], "ray": ["--shared-fs"] if args.shared_fs else []}
    times = {(c, n): [] for c in configs for n in ("short", "long")}
    for _ in range(args.repeats):
        for executor, w in configs:
            short = args.n_short or w * args.shard_size
            times[(executor, w), "short"].append(wall(executor, w, short, args.shard_size, extra[executor]))
            times[(executor, w), "long"].append(wall(executor, w, args.n, args.shard_size, extra[executor]))
    print(f"facegen render, raster dense490 256 px, long job {args.n} images, shards of {args.shard_size}; "
          f"medians of {args.repeats} runs; Ray {'--shared-fs' if args.shared_fs else 'shards sent back'}")
    print("executor  workers   end to end    steady rate   start-up")
    rates = {}
    for executor, w in configs:
        short_n = args.n_short or w * args.shard_size
        t_short = statistics.median(times[(executor, w), "short"])
        t_long = statistics.median(times[(executor, w), "long"])
        steady = (args.n - short_n) / (t_long - t_short)
        end_to_end = args.n / t_long
        rates[executor, w] = steady, end_to_end
        start_up = t_short - short_n / steady
        print(f"{executor:8s}  {w:5d}     {end_to_end:6.2f} img/s   {steady:6.2f} img/s   {start_up:5.1f} s   "
              f"(long runs: {', '.join(f'{t:.1f}' for t in times[(executor, w), 'long'])} s)")
    for w in counts:
        (ray_steady, ray_e2e), (local_steady, local_e2e) = rates["ray", w], rates["local", w]
        print(f"{w} worker(s): Ray's overhead {1 - ray_steady / local_steady:+.1%} of the local steady rate, "
              f"{1 - ray_e2e / local_e2e:+.1%} end to end")


if __name__ == "__main__":
    main()
