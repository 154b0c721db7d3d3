"""The Ray executor: a job's shards rendered on the actors of a Ray cluster (`--executor ray`).

The job (this process, Ray's driver) plans the shards, owns the folder lock, the manifest and the
progress bar, as with the local executor. It puts the job's context (face model, compiled spec,
sampling config) into Ray's object store once; each actor takes it from there, builds one renderer
and renders whole shards, one at a time (bpy holds one scene per process). A worker node therefore
needs only the installed package: no face-model import, no assets beyond those that come with it
(the bundled HDRIs; --backgrounds and --hdris folders must be on every node at the same path).
It must be the same code, though: a node whose facegen sources, Python, numpy or renderer package
differ from the job's would render different shards for the same seed, so its actor stops the job
naming the node and what differs, before it renders anything.

Where a shard goes: by default the actor renders it into a scratch folder on its node and sends the
file back; this process checks its checksum, writes it under a temporary name and renames it (no
shared filesystem needed). With --shared-fs the actor writes straight into --out (same temporary
name, then rename). Either way only this process writes the manifest. An actor removes its scratch
folder when it is closed; a killed actor cannot, so each new actor first removes the scratch folders
on its node whose actor has died (a held flock marks a live one).

Faults: an actor that dies (SIGKILL, the out-of-memory killer, a lost node) loses only the shard it
was on: its images are taken off the progress bar, a new actor is started wherever Ray has room, and
the shard is rendered again from the start, so the finished job is byte-identical to one without a
failure (a sample depends only on (seed, index)). A shard whose actor dies MAX_ATTEMPTS times ends the
job (it is the shard, not the node). An error raised in an actor (bad input, a bug) ends the job at
once with that error, as locally. Actors belong to this process: when it dies, Ray ends them, and the
same command resumes like a local job.
"""

from __future__ import annotations

import fcntl
import hashlib
import importlib
import logging
import os
import platform
import shutil
import sys
import tempfile
from collections import deque
from dataclasses import dataclass, replace
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import ray
from ray.exceptions import ObjectLostError, RayActorError, RayTaskError
from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

from facegen.errors import FacegenError
from facegen.generator.executors import Reporter, WorkerFailed, describe, faulty_tick, inject_fault, where
from facegen.shards import PARTIAL_SUFFIX

MAX_ATTEMPTS = 3  # renders of one shard whose actor died before the job gives up on it
# How often an actor reports its finished images, and the job looks. Every report is a call to a Ray
# actor: at 0.2 s the progress actor alone took ~3 % of a CPU (bench/executor_overhead.py, 2 CPUs).
PROGRESS_INTERVAL_S = 0.5
LOST = (RayActorError, ObjectLostError)  # the actor or node died, or the finished shard's copy was lost with it
SCRATCH_PREFIX = "facegen-shards-"  # an actor's scratch folder in its node's temporary folder ($TMPDIR)
SCRATCH_OWNER = ".owner"  # in it, flock-ed by the actor as long as it lives
CLOSE_WAIT_S = 30  # at the job's end, for the actors to remove their scratch folders
# The packages whose files decide what a shard holds (the spec, sampling config and face model travel
# with the job): their sources, shaders and bundled configs are fingerprinted on every node.
RENDER_PACKAGES = ("facegen", "facegen.generator", "facegen.assets")
CODE_SUFFIXES = (".py", ".vert", ".frag", ".yaml", ".json")  # what pyproject.toml installs of them
RENDERER_PACKAGES = {"cycles": "bpy", "raster": "pyrender"}


def run(ctx, tasks, progress, finished) -> None:
    """Render `tasks` on Ray actors (see executors/__init__.py for the contract)."""
    s = ctx.settings
    started_here = connect(s.ray_address)
    try:
        _Job(ctx, tasks, progress, finished, started_here).run()
    finally:
        if started_here:
            ray.shutdown()


def connect(address: str | None) -> bool:
    """Join the cluster at `address` ("auto": the one started on this machine with `ray start`), or
    start a Ray on this machine when None. True when this call started (and so must stop) Ray."""
    if ray.is_initialized():  # a Python caller connected already: use that cluster
        return False
    try:
        ray.init(address=address, logging_level=logging.ERROR, include_dashboard=False,
                 configure_logging=True, log_to_driver=True)
    except ConnectionError as e:
        raise FacegenError(f"--ray-address {address}: cannot join a Ray cluster there ({e}). Start one with "
                           "`ray start --head` (docs/cluster.md), give its address, or drop --ray-address to "
                           "render on a Ray started on this machine.") from None
    return True


@dataclass
class Slots:
    """How many actors, and what each reserves."""

    actors: int
    cpus: float
    gpus: float


def plan_slots(s, cluster: dict, started_here: bool) -> Slots:
    """--workers actors (default: as many as the cluster has room for), each reserving
    --cpus-per-worker CPUs (default 1; on a Ray this job started, this machine's CPUs shared out) and
    --gpus-per-worker GPUs."""
    cpus_total, gpus_total = cluster.get("CPU", 0.0), cluster.get("GPU", 0.0)
    if s.gpus_per_worker and s.gpus_per_worker > gpus_total:
        raise FacegenError(f"--gpus-per-worker {s.gpus_per_worker}: the Ray cluster has {gpus_total:g} GPUs; "
                           "ask for fewer, or join a cluster with GPUs (--ray-address)")
    cpus = s.cpus_per_worker
    if cpus is None:
        cpus = max(1.0, cpus_total // s.workers) if started_here and s.workers and not s.gpus_per_worker else 1.0
    if cpus > cpus_total:
        raise FacegenError(f"--cpus-per-worker {cpus:g}: the Ray cluster has {cpus_total:g} CPUs; ask for fewer")
    room = int(cpus_total // cpus)
    if s.gpus_per_worker:
        room = min(room, int(gpus_total // s.gpus_per_worker))
    if s.workers and s.workers > room:  # the rest would wait for a free slot until the job's end
        _say(f"--workers {s.workers}: the Ray cluster has room for {room} actors of {cpus:g} CPUs"
             f"{f' and {s.gpus_per_worker:g} GPUs' if s.gpus_per_worker else ''}; rendering with {room}")
    return Slots(min(s.workers or room, room), cpus, s.gpus_per_worker)


@ray.remote(num_cpus=0)
class _Progress:
    """Images finished per (shard, attempt), sent by the actors and taken by the job."""

    def __init__(self):
        self.counts = {}

    def add(self, ticket: tuple, n: int) -> None:
        self.counts[ticket] = self.counts.get(ticket, 0) + n

    def take(self) -> dict:
        counts, self.counts = self.counts, {}
        return counts


@ray.remote(max_restarts=0, max_task_retries=0)
class ShardRenderer:
    """A Ray actor that renders whole shards with one renderer (built at its first shard)."""

    def __init__(self, shipped: list, job_code: dict, renderer: str, threads: int, use_gpu: bool, send_back: bool):
        # `shipped` holds the context's ObjectRef inside a list, so Ray does not unpickle it before
        # _start has checked that this node runs the job's code (other code may not even unpickle it)
        self.shipped, self.job_code, self.renderer = shipped, job_code, renderer
        self.threads, self.use_gpu, self.send_back = threads, use_gpu, send_back
        self.ctx, self.worker, self.scratch, self.owner = None, None, None, None

    def render(self, ticket: tuple, task: tuple, progress) -> tuple[dict, bytes | None]:
        """Render `task` = (shard, first, count); its manifest entry, and its bytes when they go back."""
        if self.worker is None:
            self._start()
        report = Reporter(lambda n: progress.add.remote(ticket, n), PROGRESS_INTERVAL_S)
        folder = self.scratch if self.send_back else self.ctx.settings.out
        entry = self.worker.render_shard(*task, tick=faulty_tick(task, report), folder=folder)
        report.flush()
        if not self.send_back:
            return entry, None
        path = Path(folder) / entry["file"]
        try:
            return entry, path.read_bytes()
        finally:
            path.unlink()

    def close(self) -> None:
        """Remove the scratch folder, let go of the renderer and end this actor (freeing its slot)."""
        if self.scratch:
            shutil.rmtree(self.scratch, ignore_errors=True)
        if self.worker is not None:
            self.worker.close()
        ray.actor.exit_actor()

    def _start(self) -> None:
        from facegen.generator import backgrounds
        from facegen.generator.lock import LOCK_NAME
        from facegen.generator.worker import Worker

        inject_fault("start")
        node = ray.util.get_node_ip_address()
        check_same_code(self.job_code, code_fingerprint(self.renderer), node)
        self.ctx = ray.get(self.shipped[0])
        s = self.ctx.settings
        if not self.send_back and not (Path(s.out) / LOCK_NAME).exists():
            raise FacegenError(f"--shared-fs: --out {s.out} is not there on node {node} (no {LOCK_NAME}); every "
                               "node must mount the output folder at the same path, or drop --shared-fs to have "
                               "the shards sent back")
        if not self.use_gpu:  # Cycles' "auto" device would take a GPU that Ray did not give this actor
            os.environ["CUDA_VISIBLE_DEVICES"] = ""
        elif ray.get_gpu_ids():  # pyrender's EGL device: the GPU Ray gave (CUDA_VISIBLE_DEVICES is Ray's too)
            os.environ["EGL_DEVICE_ID"] = str(ray.get_gpu_ids()[0])
        os.environ.setdefault("PYOPENGL_PLATFORM", "egl")
        if s.hdris is None:  # the HDRIs bundled with this node's bpy
            bundled = backgrounds.bundled_hdri_dir()
            self.ctx.hdri_dir = str(bundled) if bundled else None
        for folder in filter(None, (s.backgrounds, s.hdris)):
            if not Path(folder).is_dir():
                raise FacegenError(f"{folder}: not there on node {node}; --backgrounds and --hdris folders must "
                                   "be on every node at the same path (a shared filesystem)")
        # the renderer's CPU threads; a spare one (threads > 1) lets the raster backend overlap its work
        cpus = len(os.sched_getaffinity(0))
        self.ctx.settings = replace(s, workers=max(1, cpus // self.threads))
        if self.send_back:
            self.scratch, self.owner = scratch_folder()
        self.worker = Worker(self.ctx, threads=self.threads)


def code_fingerprint(renderer: str) -> dict:
    """What decides a shard's bytes besides the job's own inputs: a sha256 of the files of
    RENDER_PACKAGES (sources, shaders, bundled configs) as installed here, the Python version (major.minor)
    and the versions of numpy and of the renderer's package (bpy for Cycles, pyrender for raster)."""
    import numpy

    digest = hashlib.sha256()
    for name in RENDER_PACKAGES:
        folder = Path(importlib.import_module(name).__file__).parent
        files = folder.rglob("*") if name != "facegen" else folder.glob("*")  # facegen's subpackages: not all render
        for path in sorted(f for f in files if f.is_file() and f.suffix in CODE_SUFFIXES):
            digest.update(f"{name}/{path.relative_to(folder).as_posix()}\0".encode())
            digest.update(path.read_bytes())
    python = ".".join(platform.python_version_tuple()[:2])
    package = RENDERER_PACKAGES[renderer]
    try:
        drawn_by = version(package)  # read from its metadata: bpy takes seconds to import
    except PackageNotFoundError:
        drawn_by = "not installed"
    # numpy to the last digit: its random streams and maths may change between releases
    return {"facegen sources (sha256)": digest.hexdigest()[:16], "Python": python, "numpy": numpy.__version__,
            package: drawn_by}


def check_same_code(job: dict, node: dict, where: str) -> None:
    """Stop the job when the node `where` would render with other code than the job's."""
    differ = [f"{key} {node.get(key)} here, {value} in the job" for key, value in job.items() if node.get(key) != value]
    if differ:
        raise FacegenError(f"node {where} runs other code than the job: {'; '.join(differ)}. The same seed would "
                           "give other shards there: install the same facegen and dependencies on every node "
                           "(docs/cluster.md, 'A real cluster'), then run the same command again")


def scratch_folder() -> tuple[str, int]:
    """A new scratch folder for one actor's shards and the descriptor that holds its owner lock
    (kept open for the actor's life), after removing the folders of actors that died on this node."""
    remove_dead_scratch()
    folder = Path(tempfile.mkdtemp(prefix=SCRATCH_PREFIX))
    claim = folder / (SCRATCH_OWNER + ".new")
    fd = os.open(claim, os.O_CREAT | os.O_WRONLY, 0o600)
    fcntl.flock(fd, fcntl.LOCK_EX)
    os.rename(claim, folder / SCRATCH_OWNER)  # a sweep only ever sees an owner file already locked
    return str(folder), fd


def remove_dead_scratch() -> None:
    """Remove this node's scratch folders whose actor has died (its owner lock is free: the kernel
    lets go of an flock when its process ends, however it ends)."""
    for folder in Path(tempfile.gettempdir()).glob(SCRATCH_PREFIX + "*"):
        try:
            fd = os.open(folder / SCRATCH_OWNER, os.O_RDONLY)
        except OSError:
            continue  # being set up, or not an actor's
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            continue  # held: its actor is alive
        finally:
            os.close(fd)
        shutil.rmtree(folder, ignore_errors=True)


class _Job:
    """The driver's loop: keep every actor busy, collect shards, replace dead actors."""

    def __init__(self, ctx, tasks, progress, finished, started_here: bool):
        self.ctx, self.progress, self.finished = ctx, progress, finished
        self.todo = deque(tasks)
        self.out = Path(ctx.settings.out)
        self.slots = plan_slots(ctx.settings, ray.cluster_resources(), started_here)
        shipped = replace(ctx, lock=None)  # the folder lock stays with this process
        self.shipped = ray.put(shipped)  # once: every actor reads it from the object store
        self.code = code_fingerprint(ctx.settings.renderer)
        here = NodeAffinitySchedulingStrategy(ray.get_runtime_context().get_node_id(), soft=False)
        self.counter = _Progress.options(scheduling_strategy=here).remote()
        self.attempts: dict[tuple, int] = {}
        self.shown: dict[tuple, int] = {}  # images on the bar per ticket (shard, attempt) still running
        self.running: dict = {}  # ObjectRef -> (actor, ticket, task)
        self.actors: list = []
        self.closing: dict = {}  # ObjectRef of close() -> the actor with nothing left to render

    def run(self) -> None:
        try:
            for _ in range(min(self.slots.actors, len(self.todo))):
                self._submit(self._new_actor())
            while self.running:
                ready, _ = ray.wait(list(self.running), num_returns=1, timeout=PROGRESS_INTERVAL_S)
                self._show_progress()
                for ref in ready:
                    self._collect(ref)
            if self.closing:
                ray.wait(list(self.closing), num_returns=len(self.closing), timeout=CLOSE_WAIT_S)
        finally:  # on an error, at once: a killed actor's scratch folder goes with the next actor on its node
            for actor in [*self.actors, *self.closing.values()]:  # killing an ended actor does nothing
                ray.kill(actor)
            ray.kill(self.counter)

    def _new_actor(self):
        send_back = not self.ctx.settings.shared_fs
        actor = ShardRenderer.options(num_cpus=self.slots.cpus, num_gpus=self.slots.gpus).remote(
            [self.shipped], self.code, self.ctx.settings.renderer, max(1, round(self.slots.cpus)), self.slots.gpus > 0,
            send_back)
        self.actors.append(actor)
        return actor

    def _submit(self, actor) -> None:
        if not self.todo:  # nothing left for it: it cleans up and ends, freeing its slot
            self.actors.remove(actor)
            self.closing[actor.close.remote()] = actor
            return
        task = self.todo.popleft()
        ticket = (task[0], self.attempts.get(task, 0))
        self.shown[ticket] = 0
        self.running[actor.render.remote(ticket, task, self.counter)] = (actor, ticket, task)

    def _show_progress(self) -> None:
        for ticket, n in ray.get(self.counter.take.remote()).items():
            if ticket in self.shown:  # not a shard already finished or lost
                self.shown[ticket] += n
                self.progress(n)

    def _collect(self, ref) -> None:
        actor, ticket, task = self.running.pop(ref)
        try:
            entry, data = ray.get(ref)
        except LOST as e:
            self._lost(actor, ticket, task, e)
            return
        except RayTaskError as e:
            message = describe(e.cause) if isinstance(e.cause, BaseException) else str(e)
            if os.environ.get("FACEGEN_DEBUG"):
                message += "\n" + str(e)
            raise WorkerFailed(f"render actor failed on {where(task)}: {message}") from None
        if data is not None:
            self._write(entry, data)
        self.progress(task[2] - self.shown.pop(ticket))  # the bar counts each finished shard exactly
        self.finished(entry)
        self._submit(actor)

    def _lost(self, actor, ticket, task, error) -> None:
        """The actor (or its node) died: take its images off the bar and render the shard again."""
        self.progress(-self.shown.pop(ticket))
        self.actors.remove(actor)
        attempts = self.attempts[task] = self.attempts.get(task, 0) + 1
        reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        if attempts >= MAX_ATTEMPTS:
            raise WorkerFailed(f"{where(task)}: its render actor died {attempts} times ({reason}); the shard itself "
                               "may be the cause (memory?). The finished shards are kept.")
        _say(f"render actor died while rendering {where(task)} ({reason}); rendering it again "
             f"(attempt {attempts + 1} of {MAX_ATTEMPTS})")
        self.todo.appendleft(task)
        self._submit(self._new_actor())

    def _write(self, entry: dict, data: bytes) -> None:
        """A shard sent back: checked against its checksum, written under a temporary name, renamed."""
        path = self.out / entry["file"]
        if len(data) != entry["size"] or hashlib.sha256(data).hexdigest() != entry["sha256"]:
            raise WorkerFailed(f"{entry['file']} arrived damaged from its render actor (size or sha256 differs "
                               "from what the actor wrote); run the same command again to render it again")
        tmp = path.with_name(path.name + PARTIAL_SUFFIX)
        try:
            tmp.write_bytes(data)
            os.replace(tmp, path)
        except OSError as e:
            tmp.unlink(missing_ok=True)
            raise WorkerFailed(f"{path}: cannot write it ({describe(e)}); the finished shards are kept: fix the "
                               "cause and run the same command again") from None


def _say(message: str) -> None:
    from tqdm import tqdm

    tqdm.write(message, file=sys.stderr)
