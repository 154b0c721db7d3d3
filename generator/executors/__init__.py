"""Executors: where a render job's shards are rendered. The job (generator/job.py) plans the shards,
validates every input, claims the output folder and owns the manifest; an executor only runs the
planned shards and reports back. Every executor is one function with this signature:

    run(ctx: JobContext, tasks: list[(shard_index, first_sample, count)],
        progress: Callable[[int], None],   # images finished since the last call (negative: taken back)
        finished: Callable[[dict], None])  # a shard's manifest entry, once its file is final

It returns when every task is done, or raises `WorkerFailed` (a FacegenError naming the worker's
own error and the shard it was on) after stopping its other workers; shards reported through
`finished` before that stay, so the same command resumes. `local` renders in processes on this
machine; `ray` on the actors of a Ray cluster (executors/ray_cluster.py).
"""

from __future__ import annotations

import errno
import os
import time
import traceback

from facegen.errors import FacegenError
from facegen.shards import shard_name

EXECUTORS = ("local", "ray")
# Test hook: make a worker fail on purpose. "start" raises while a worker sets up, "shard:K" after
# the first image of shard K (tests/test_render_workers.py, tests/test_ray_executor.py).
FAULT_ENV = "FACEGEN_TEST_FAULT"


class WorkerFailed(FacegenError):
    """A render worker died or raised: the job stops, finished shards are kept."""

    exit_code = 1


def run(ctx, tasks, progress, finished) -> None:
    """Render `tasks` with the executor the job's settings name."""
    if ctx.settings.executor == "ray":
        from facegen.generator.executors import ray_cluster as executor
    else:
        from facegen.generator.executors import local as executor
    executor.run(ctx, tasks, progress, finished)


class Reporter:
    """A worker's finished images, counted per tick and sent with `send(n)` every `interval` seconds (not
    per image); `before()` runs at every tick (the local workers' stop check)."""

    def __init__(self, send, interval: float, before=None):
        self.send, self.interval, self.before = send, interval, before
        self.unsent, self.sent_at = 0, time.monotonic()

    def __call__(self, n: int) -> None:
        if self.before is not None:
            self.before()
        self.unsent += n
        if time.monotonic() - self.sent_at >= self.interval:
            self.flush()

    def flush(self) -> None:
        if self.unsent:
            self.send(self.unsent)
        self.unsent, self.sent_at = 0, time.monotonic()


# -- what every executor says about a failure --------------------------------------------------------

def where(task) -> str:
    if task is None:
        return "the worker's set-up"
    k, first, count = task
    return f"{shard_name(k)} (samples {first}-{first + count - 1})"


def describe(e: BaseException) -> str:
    """A worker's error in one line: its own message, and where in the code when it is not a user error."""
    if isinstance(e, FacegenError):
        return e.message
    if disk_full(e):
        return f"the disk is full ({e}); the half-written shard was deleted (free some space)"
    frames = traceback.extract_tb(e.__traceback__)
    at = f" (at {os.path.basename(frames[-1].filename)}:{frames[-1].lineno} in {frames[-1].name})" if frames else ""
    return f"{type(e).__name__}: {e}{at}"


def disk_full(e: BaseException) -> bool:
    """ENOSPC, from Python's own writes or from HDF5 (whose errors carry the text, not always errno)."""
    return isinstance(e, OSError) and (e.errno == errno.ENOSPC or "No space left on device" in str(e))


def inject_fault(where: str) -> None:
    if os.environ.get(FAULT_ENV) == where:
        raise RuntimeError(f"{FAULT_ENV}={where}: failure injected for a test")


def faulty_tick(task, tick):
    """`tick`, raising after the shard's first image when FACEGEN_TEST_FAULT=shard:K names this shard."""
    if os.environ.get(FAULT_ENV) != f"shard:{task[0]}":
        return tick

    def faulty(n: int) -> None:
        tick(n)
        inject_fault(f"shard:{task[0]}")

    return faulty
