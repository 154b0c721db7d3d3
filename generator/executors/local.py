"""The local executor: a job's shards rendered on this machine, in this process (one worker) or in
spawned worker processes (OpenGL/EGL and bpy contexts do not survive fork), each building its
model, spec and renderer once and rendering whole shards.

Each worker process talks to the job over its own pipe: it is sent one shard at a time and answers
with progress counts, the finished shard's manifest entry, or its own error. A worker that raises or
dies (kill -9, the out-of-memory killer) ends the job at once with that error and the shard it was
on; the other workers are stopped and nothing is respawned. Workers ignore Ctrl-C (the job stops
them) and die with the job, so none is left behind. Each worker process holds the job's folder lock
(JobContext.lock, passed to it at spawn: generator/lock.py) until it exits, so no other job can take
the folder while a worker of this one still writes in it.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import re
import signal
import sys
import threading
import time
import traceback
from collections import deque
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from multiprocessing import resource_tracker
from multiprocessing.connection import Connection, wait

from facegen.errors import FacegenError
from facegen.generator.executors import Reporter, WorkerFailed, describe, faulty_tick, inject_fault, where
from facegen.generator.worker import Worker

PROGRESS_INTERVAL_S = 0.2  # how often a worker process reports its finished images
STOP_GRACE_S = 10.0  # how long a stopped worker may take to delete its half-written shard


def run(ctx, tasks, progress, finished) -> None:
    """Render `tasks` with min(--workers, number of shards) workers (see executors/__init__.py)."""
    workers = min(ctx.settings.workers, len(tasks))
    if workers == 1:
        _run_inline(ctx, tasks, progress, finished)
    else:
        _run_processes(ctx, tasks, workers, progress, finished)


def threads_per_worker(workers: int) -> int:
    """CPU threads each of `workers` renderers gets: the CPUs shared out, at least one each."""
    return max(1, len(os.sched_getaffinity(0)) // workers)


def _run_inline(ctx, tasks, progress, finished) -> None:
    """One worker in this process, with every CPU (the renderer's own thread default)."""
    task = None
    try:
        inject_fault("start")
        worker = Worker(ctx)
        try:
            for task in tasks:
                finished(worker.render_shard(*task, tick=faulty_tick(task, progress)))
        finally:
            worker.close()
    except (FacegenError, KeyboardInterrupt):
        raise
    except Exception as e:  # a bug or an environment problem: say where, keep finished shards
        trace = "\n" + traceback.format_exc() if os.environ.get("FACEGEN_DEBUG") else ""
        raise WorkerFailed(f"rendering {where(task)} failed: {describe(e)}{trace}") from e


# -- worker processes ----------------------------------------------------------------------------

@dataclass
class _Process:
    process: mp.Process
    conn: Connection  # the job's end of the worker's pipe
    task: tuple[int, int, int] | None = None  # the shard it is rendering


def _run_processes(ctx, tasks, workers: int, progress, finished) -> None:
    mp_ctx = mp.get_context("spawn")
    todo = deque(tasks)
    procs: list[_Process] = []
    try:
        with _sigint_ignored():  # inherited through exec: Ctrl-C reaches the job only, which stops them
            for i in range(workers):
                job_end, worker_end = mp_ctx.Pipe()
                process = mp_ctx.Process(target=_worker_main, name=f"facegen-render-{i}", daemon=True,
                                         args=(ctx, threads_per_worker(workers), worker_end))
                process.start()
                worker_end.close()
                procs.append(_Process(process, job_end))
        for p in procs:
            _send_next(p, todo)
        while any(p.task is not None for p in procs):
            busy = [p for p in procs if p.task is not None]
            ready = wait([p.conn for p in busy] + [p.process.sentinel for p in busy])
            for p in busy:
                if p.conn in ready:
                    _receive(p, todo, progress, finished)
                if p.process.sentinel in ready and p.task is not None:
                    _receive(p, todo, progress, finished)  # its last words, if any
                    p.process.join(1.0)  # reaped: its exit code or signal is known
                    raise WorkerFailed(f"render worker {p.process.pid} {_death(p.process)} while rendering "
                                       f"{where(p.task)}")
        for p in procs:  # every shard done: each worker was sent None and closes its renderer
            p.process.join(STOP_GRACE_S)
    finally:
        _stop(procs)


def _send_next(p: _Process, todo: deque) -> None:
    p.task = todo.popleft() if todo else None
    try:
        p.conn.send(p.task)
    except (BrokenPipeError, ConnectionResetError, EOFError):
        pass  # it died; its sentinel says so


def _receive(p: _Process, todo: deque, progress, finished) -> None:
    """Handle everything worker `p` has sent so far."""
    try:
        while p.conn.poll():
            kind, *payload = p.conn.recv()
            if kind == "progress":
                progress(payload[0])
            elif kind == "done":
                finished(payload[0])
                _send_next(p, todo)
            elif kind == "failed":  # the task the worker was on (None: it was still setting up)
                task, message, trace = payload
                if os.environ.get("FACEGEN_DEBUG"):
                    message += "\n" + trace
                raise WorkerFailed(f"render worker {p.process.pid} failed "
                                   f"{'on ' + where(task) if task else 'while starting'}: {message}")
    except (EOFError, ConnectionResetError, OSError):
        pass  # the pipe closed: the process ended, which its sentinel reports


def _stop(procs: list[_Process]) -> None:
    """Stop every worker still running: SIGTERM stops one after its current image (deleting its
    .partial), the closed pipe one waiting for work; SIGKILL after a grace period."""
    for p in procs:
        p.conn.close()
        if p.process.is_alive():
            p.process.terminate()
    deadline = time.monotonic() + STOP_GRACE_S
    for p in procs:
        p.process.join(max(0.0, deadline - time.monotonic()))
        if p.process.is_alive():
            p.process.kill()
            p.process.join()


def _death(process: mp.Process) -> str:
    code = process.exitcode
    if code is not None and code < 0:
        name = signal.Signals(-code).name
        hint = " (kill -9, or the kernel's out-of-memory killer: see `dmesg`)" if -code == signal.SIGKILL else ""
        return f"was killed by {name}{hint}"
    return f"exited with code {code}"


@contextmanager
def _sigint_ignored():
    """SIGINT ignored while workers start (they inherit that through exec: Ctrl-C reaches the job
    only, which stops them), and blocked meanwhile, so a Ctrl-C in that window is held, not lost:
    Linux keeps a blocked signal pending even while it is ignored, and delivers it to the job's own
    handler once that is back (a worker's start can take seconds while another one already renders).
    Only if no other thread of the job takes it: the kernel may hand it to a thread that does not
    block it (tqdm's monitor, off in job.py; numpy's BLAS threads, still there), which drops it. The
    resource tracker is started first: starting it unblocks SIGINT."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    resource_tracker.ensure_running()
    mask = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
        signal.pthread_sigmask(signal.SIG_SETMASK, mask)


def _worker_main(ctx, threads: int, conn: Connection) -> None:
    """A worker process: set up once, then render the shards the job sends until it sends None.

    The job stops a worker with SIGTERM, which only sets a flag: the worker stops after its current
    image or batch stage, from a known place (`_stop_if_asked`, inside the shard writer's `with`, which
    then deletes the .partial), or on the closed pipe while it waits for work. An exception raised by
    the signal handler itself could land anywhere, even in a destructor that Python only reports."""
    _die_with_parent()
    _drop_blender_script_paths()
    signal.signal(signal.SIGTERM, _on_stop)
    os.environ.setdefault("PYOPENGL_PLATFORM", "egl")
    task, worker, code = None, None, 0
    try:
        inject_fault("start")
        worker = Worker(ctx, threads=threads, between=_stop_if_asked)
        while not _STOPPING and (task := conn.recv()) is not None:
            report = Reporter(lambda n: conn.send(("progress", n)), PROGRESS_INTERVAL_S, before=_stop_if_asked)
            entry = worker.render_shard(*task, tick=faulty_tick(task, report))
            report.flush()
            conn.send(("done", entry))
    except _Stopped:
        code = 143
    except BaseException as e:  # noqa: BLE001 - everything goes back to the job, which stops
        code = 143 if _STOPPING or isinstance(e, EOFError) else 1  # EOFError: the job closed the pipe
        if code == 1:
            with suppress(OSError):
                conn.send(("failed", task, describe(e), traceback.format_exc()))
    finally:
        if worker is not None:
            with suppress(Exception):  # close the renderer here: its destructors fail at interpreter exit
                worker.close()
    sys.exit(code)


class _Stopped(BaseException):
    """Raised at a worker's next image once the job asked it to stop."""


_STOPPING = False


def _on_stop(*_) -> None:
    global _STOPPING
    _STOPPING = True


def _stop_if_asked() -> None:
    """Where a worker stops once asked: after each image (the progress tick) and between a batch's stages."""
    if _STOPPING:
        raise _Stopped


def _drop_blender_script_paths() -> None:
    """Forget Blender's script folders (`.../bpy/4.5/scripts/modules`, ...) on the inherited sys.path.
    A process that imported bpy has them in front of site-packages and spawn hands its sys.path to
    every child, where `import bpy` then finds Blender's script package instead of the module
    ("No module named '_bpy'"). bpy puts them back when it is imported."""
    sys.path[:] = [p for p in sys.path if not re.search(r"[/\\]\d+\.\d+[/\\]scripts([/\\]|$)", p)]


def _die_with_parent() -> None:
    """Have the kernel stop this worker (SIGTERM) when the job's process dies, even by SIGKILL."""
    parent = os.getppid()
    try:
        import ctypes

        PR_SET_PDEATHSIG = 1
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    except (OSError, AttributeError):  # not Linux: the job's atexit still stops its daemon workers
        return
    if os.getppid() != parent:  # it died before the request took effect
        sys.exit(143)
