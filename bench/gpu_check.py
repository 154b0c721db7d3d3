"""The parts of bench/gpu_check.sh (run that): each part a subprocess with its own time limit, so one
that fails or hangs costs only its own minutes. The limits add up to under 8 minutes (one more when the
face model has to be imported first)."""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
PY = sys.executable
CPUS = len(os.sched_getaffinity(0))

# What the GPU sees through EGL (pyrender's platform), and what torch sees.
ENVIRONMENT = """
import os, torch
print(f"torch {torch.__version__}, CUDA {torch.version.cuda}, GPU: "
      f"{torch.cuda.get_device_name(0) if torch.cuda.is_available() else 'none'}; {os.cpu_count()} CPUs")
import pyrender
from OpenGL import GL
r = pyrender.OffscreenRenderer(64, 64)
print("EGL (raster renderer):", GL.glGetString(GL.GL_VENDOR).decode(), "/", GL.glGetString(GL.GL_RENDERER).decode())
r.delete()
"""
FACE_MODEL = """
from facegen.face_model import load_face_model
m = load_face_model()
print(f"face model {m.hash}: {m.num_identity} identity, {m.num_expressions} expression components")
"""


def part(title: str, command: list[str], budget_s: float, images: int = 0) -> bool:
    """Run one part; `images`: also print images/s over its whole run (start-up included)."""
    print(f"\n== {title} (limit {budget_s:.0f} s)", flush=True)
    start = time.monotonic()
    # its own process group: a part stopped at its limit takes its render workers and loader processes
    # with it, instead of leaving them to slow every later part
    process = subprocess.Popen(command, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                               start_new_session=True)
    try:
        out, _ = process.communicate(timeout=budget_s)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        out, _ = process.communicate()
        print(_tail(out) + f"\n-- {title}: NOT MEASURED, ran past its {budget_s:.0f} s limit")
        return False
    finally:
        with contextlib.suppress(ProcessLookupError):  # whatever it left running
            os.killpg(process.pid, signal.SIGKILL)
    print(_tail(out))
    ok, took = process.returncode == 0, time.monotonic() - start
    rate = f" ({images / took:.1f} images/s, start-up included)" if ok and images else ""
    print(f"-- {title}: {'done' if ok else f'FAILED (exit {process.returncode})'} in {took:.0f} s{rate}", flush=True)
    return ok


def _tail(text: str, lines: int = 40) -> str:
    kept = [line for line in text.splitlines() if "%|" not in line]  # progress bars
    return "\n".join(kept[-lines:])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--data-n", type=int, default=512, help="raster images rendered for the loader and training")
    ap.add_argument("--keep", type=Path, default=None, help="keep the rendered shards here")
    args = ap.parse_args()
    began = time.monotonic()
    fg = [PY, "-m", "facegen.cli"]
    part("environment", [PY, "-c", ENVIRONMENT], 45)
    if not part("face model", [PY, "-c", FACE_MODEL], 30):
        part("face model import", [*fg, "assets", "import-ict"], 60)
    part("Cycles on the GPU: s/image at 256 and 512 px, default preset",
         [PY, "bench/cycles_speed.py", "--device", "GPU", "--sizes", "256,512", "--n", "6", "--workers", ""], 110)
    part("raster through EGL: images/s end to end (dense490, 256 px)",
         [PY, "bench/render_throughput.py", "--n", "48", "--repeats", "1", "--workers", f"1,{CPUS}"], 90)
    data = args.keep or Path(tempfile.mkdtemp(prefix="facegen-gpu-check-"))
    workers = CPUS
    # no hair or clothing (bench/configs/bare.yaml): quick to make, and the loader and training cost the same
    rendered = part(f"shards for the loader and training: {args.data_n} ibug68 raster images, 256 px, bare config, "
                    f"{workers} workers",
                    [*fg, "render", "--config", "bench/configs/bare.yaml", "--spec", "ibug68", "--renderer", "raster",
                     "--n", str(args.data_n), "--size", "256", "--shard-size", "32", "--workers", str(workers),
                     "--out", str(data / "ibug68-256"), "--quiet"], 60, images=args.data_n)
    if rendered:
        part(f"loader: samples/s with {CPUS} workers (full augmentation)",
             [PY, "bench/train_throughput.py", "--data", str(data / "ibug68-256"), "--skip-train", "--workers",
              str(CPUS), "--repeats", "1"], 45)
        part("training on the GPU with AMP: images/s of resnet18 and hourglass (bare step and facegen train)",
             [PY, "bench/train_throughput.py", "--data", str(data / "ibug68-256"), "--skip-loader", "--device", "cuda",
              "--batch-size", "64", "--train-steps", "40", "--train-workers", str(CPUS), "--no-wait"], 110)
    if args.keep is None:
        shutil.rmtree(data, ignore_errors=True)
    print(f"\ngpu check finished in {time.monotonic() - began:.0f} s")


if __name__ == "__main__":
    main()
