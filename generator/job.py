"""The render job: sample -> pose -> render -> label -> write, in shards, resumable.

Shard k holds samples [k * shard_size, min((k + 1) * shard_size, n)). Workers (spawned processes:
OpenGL/EGL and bpy contexts do not survive fork) each build the model, spec and renderer once and
render whole shards. The main process owns the manifest and the progress bar. A re-run of the same
command renders only the shards that are missing; finished shards are never rewritten.
"""

from __future__ import annotations

import gc
import hashlib
import importlib
import itertools
import multiprocessing as mp
import os
import queue
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from facegen.errors import FacegenError
from facegen.shards import (FORMAT_VERSION, MANIFEST, PARTIAL_SUFFIX, ShardWriter, read_manifest, shard_name,
                            write_manifest)

# The renderer `facegen render` uses unless told otherwise: photoreal Cycles (generator/cycles.py);
# `--renderer raster` is the fast pyrender backend. The one place to change the default.
DEFAULT_RENDERER = "cycles"
OUTPUTS = ("rgb", "depth", "segmentation", "mask")
# Samples a worker makes stage by stage (Worker.samples). Larger batches gain little more and hold
# more images in memory (16 at 256 px: ~8 MB).
BATCH = 16
OVERLAP_BATCH = 4  # the same while llvmpipe draws on a spare CPU: what can be prepared during one draw


@dataclass
class JobSettings:
    """Everything a render command was given (paths as strings so it pickles into workers)."""

    spec: str = "dense490"
    n: int = 1000
    out: str = "out"
    size: int = 256
    shard_size: int = 1000
    workers: int = 1
    seed: int = 0
    renderer: str = DEFAULT_RENDERER
    config: str | None = None
    backgrounds: str | None = None
    hdris: str | None = None
    outputs: tuple[str, ...] = ("rgb",)
    model_path: str | None = None

    def shard_ranges(self) -> list[tuple[int, int, int]]:
        """(shard index, first sample, sample count) of every shard of the job."""
        return [(k, start, min(self.shard_size, self.n - start))
                for k, start in enumerate(range(0, self.n, self.shard_size))]


def render(spec: str = "dense490", n: int = 1000, out: str | Path = "out", *, size: int = 256,
           shard_size: int = 1000, workers: int = 1, seed: int = 0, renderer: str = DEFAULT_RENDERER,
           config: str | Path | None = None, backgrounds: str | Path | None = None,
           hdris: str | Path | None = None, outputs=("rgb",), progress: bool = True) -> Path:
    """Render `n` labelled samples of landmark spec `spec` into HDF5 shards in `out` (resumable).

    The Python form of `facegen render`; returns the output folder."""
    settings = JobSettings(spec=str(spec), n=int(n), out=str(out), size=int(size), shard_size=int(shard_size),
                           workers=int(workers), seed=int(seed), renderer=renderer,
                           config=str(config) if config else None,
                           backgrounds=str(backgrounds) if backgrounds else None,
                           hdris=str(hdris) if hdris else None, outputs=tuple(outputs))
    return run_job(settings, progress=progress)


# -- validation and the job's identity ---------------------------------------------------------------

def validate(s: JobSettings) -> None:
    if s.n < 1:
        raise FacegenError(f"--n {s.n}: nothing to render; give the number of images, e.g. --n 1000")
    if s.shard_size < 1:
        raise FacegenError(f"--shard-size {s.shard_size}: must be at least 1 (default 1000)")
    if s.workers < 1:
        raise FacegenError(f"--workers {s.workers}: must be at least 1")
    if not 16 <= s.size <= 4096:
        raise FacegenError(f"--size {s.size}: choose an image size between 16 and 4096 pixels")
    unknown = [o for o in s.outputs if o not in OUTPUTS]
    if unknown:
        raise FacegenError(f"--outputs: unknown {', '.join(unknown)}; choose from {', '.join(OUTPUTS)}")
    if "rgb" not in s.outputs:
        raise FacegenError("--outputs must include rgb")
    from facegen.generator.scene import RENDERERS

    if s.renderer not in RENDERERS:
        raise FacegenError(f"--renderer {s.renderer!r}: choose one of {', '.join(RENDERERS)}")


def renderer_class(name: str):
    from facegen.generator.scene import RENDERERS

    module_name, cls_name = RENDERERS[name].split(":")
    try:
        return getattr(importlib.import_module(module_name), cls_name)
    except ImportError as e:
        raise FacegenError(f"renderer {name!r} is not available here ({e})") from None


@dataclass
class JobContext:
    """What every process needs: the loaded model, compiled spec, config and asset lists."""

    settings: JobSettings
    model: object
    spec: object
    config: dict
    photos: tuple[str, ...]
    hdri_names: tuple[str, ...]
    hdri_dir: str | None
    job: dict = field(default_factory=dict)  # the manifest's `job`: the resume key


def prepare(s: JobSettings) -> JobContext:
    from facegen.face_model import load_face_model
    from facegen.generator import sampling
    from facegen.specs import compile_spec, load_spec

    model = load_face_model(s.model_path)
    spec = compile_spec(load_spec(s.spec), model)
    config = sampling.load_config(s.config)
    photos = tuple(sampling.list_files(Path(s.backgrounds), sampling.PHOTO_SUFFIXES, "--backgrounds")) \
        if s.backgrounds else ()
    hdri_dir = s.hdris or (str(sampling.bundled_hdri_dir()) if sampling.bundled_hdri_dir() else None)
    hdri_names = tuple(sampling.list_hdris(Path(hdri_dir))) if hdri_dir else ()
    cls = renderer_class(s.renderer)
    job = {
        "spec": spec.name,
        "spec_hash": spec.hash,
        "seed": s.seed,
        "config_hash": sampling.config_hash(config),
        "renderer": s.renderer,
        "renderer_version": str(cls.version),
        "model_hash": model.hash,
        "image_size": [s.size, s.size],
        "shard_size": s.shard_size,
        "outputs": list(s.outputs),
        "backgrounds": _names_hash(photos),
        "hdris": _names_hash(hdri_names),
    }
    return JobContext(s, model, spec, config, photos, hdri_names, hdri_dir, job)


def _names_hash(names: tuple[str, ...]) -> str:
    """Which asset files a job drew from (names only: a folder may move between runs)."""
    return hashlib.sha256("\n".join(names).encode()).hexdigest()[:16] if names else ""


def prepare_folder(out: Path, job: dict, n: int) -> dict:
    """Create or check the output folder; returns the manifest to continue from."""
    try:
        out.mkdir(parents=True, exist_ok=True)
        probe = out / ".facegen-write-test"
        probe.write_text("")
        probe.unlink()
    except OSError as e:
        raise FacegenError(f"--out {out}: cannot write there ({e.strerror}); choose a folder you can write to") from None
    manifest = read_manifest(out)
    if manifest is None:
        stray = [p.name for p in out.iterdir() if p.name.startswith("shard-")]
        if stray:
            raise FacegenError(f"--out {out}: holds shards ({stray[0]}, ...) but no {MANIFEST}; "
                               "use an empty folder or the one the job was started in")
        manifest = {"format_version": FORMAT_VERSION, "job": job, "num_samples": n, "shards": []}
    else:
        old = manifest.get("job", {})
        for key in job:
            if old.get(key) != job[key]:
                raise FacegenError(
                    f"--out {out} holds a different job: {key} is {old.get(key)!r} there but {job[key]!r} now. "
                    "Use another --out folder, or repeat the original command to resume it.")
        manifest["num_samples"] = n
    for stale in out.glob(f"*{PARTIAL_SUFFIX}"):  # half-written by a killed run: redo them
        stale.unlink()
    write_manifest(out, manifest)
    return manifest


# -- the per-process worker ---------------------------------------------------------------------------

@dataclass
class Worker:
    """Renders whole shards; built once per process (model, spec, sampler, renderer, labeller)."""

    ctx: JobContext

    def __post_init__(self) -> None:
        import cv2
        from threadpoolctl import threadpool_limits

        from facegen.generator.labels import Labeller
        from facegen.generator.sampling import SceneSampler
        from facegen.generator.scene import create_renderer

        # One BLAS thread while this worker lives: OpenBLAS threads spin-wait between calls, and next
        # to llvmpipe's raster threads and other workers on the same CPUs that costs far more than the
        # small products gain (bench/render_throughput.py, 2 workers: 41 -> 71 images/s).
        self._blas_limit = threadpool_limits(1, user_api="blas")
        self._cv2_threads = cv2.getNumThreads()  # cv2's small per-sample ops: likewise, one thread
        cv2.setNumThreads(1)
        _keep_freed_memory()
        s = self.ctx.settings
        self.sampler = SceneSampler(self.ctx.model, self.ctx.config, s.seed, (s.size, s.size),
                                    photos=self.ctx.photos, hdris=self.ctx.hdri_names)
        self.renderer = create_renderer(s.renderer, self.ctx.model, outputs=s.outputs, backgrounds=s.backgrounds,
                                        hdris=self.ctx.hdri_dir)
        self.labeller = Labeller(self.ctx.spec, self.ctx.model)
        # Nothing made so far (model, renderer, pyrender scene, h5py, numpy, ~150k objects) is ever
        # garbage: keep it out of the cyclic collector's full passes, which otherwise walk it every
        # few hundred samples (~0.4 ms per sample on average).
        gc.freeze()

    def sample(self, index: int) -> dict:
        """One sample, as the shard writer takes it."""
        params, scene = self.prepare(index)
        return self.finish(params, scene, self.renderer.render(params, scene))

    def prepare(self, index: int):
        return self.prepare_batch([index])[0]

    def prepare_batch(self, indices) -> list:
        """(params, posed scene) of each sample, the meshes shaped in one batch."""
        from facegen.generator.scene import pose_scenes

        params = [self.sampler.sample(index) for index in indices]
        return list(zip(params, pose_scenes(params, self.ctx.model)))

    def finish(self, params, scene, result) -> dict:
        labels = self.labeller(params, scene, result.depth)
        sample = {
            "image": result.image, "landmarks_2d": labels.points_2d, "landmarks_3d": labels.points_3d,
            "visibility": labels.visibility, "in_frame": labels.in_frame, "head_pose": labels.head_pose,
            "K": labels.K, "camera_R": labels.camera_R, "camera_t": labels.camera_t,
            "identity": params.identity, "expression": params.expression, "sample_index": params.index,
            "params": params.to_dict(),
        }
        if "depth" in self.ctx.settings.outputs:
            sample["depth"] = result.depth
        if "segmentation" in self.ctx.settings.outputs:
            sample["segmentation"] = result.segmentation
        if "mask" in self.ctx.settings.outputs:
            sample["mask"] = result.mask
        return sample

    def samples(self, first: int, count: int):
        """Samples first .. first+count-1 in order; a sample depends only on (seed, index).

        When every CPU runs a worker, samples are made in batches of BATCH, each stage over the whole
        batch before the next (sample and pose all, draw all, then label all): that keeps each
        stage's code and data in the CPU caches between llvmpipe's draws. With a spare CPU for
        llvmpipe's raster threads and a renderer that can submit a draw and collect it later
        (raster), sample i+1 is prepared and sample i labelled while i+1 is drawn instead; when no
        CPU is spare, that overlap only adds context switches (~15 % more CPU per image)."""
        stop = first + count
        spare_cpu = len(os.sched_getaffinity(0)) > self.ctx.settings.workers
        if hasattr(self.renderer, "submit") and spare_cpu:
            yield from self._overlapped(first, stop)
            return
        render_batch = getattr(self.renderer, "render_batch", None) or (
            lambda items: [self.renderer.render(params, scene) for params, scene in items])
        for start in range(first, stop, BATCH):
            prepared = self.prepare_batch(range(start, min(start + BATCH, stop)))
            results = render_batch(prepared)
            yield from [self.finish(params, scene, result) for (params, scene), result in zip(prepared, results)]

    def _overlapped(self, first: int, stop: int):
        """samples() with sample i+1 prepared and sample i labelled and written while i+1 is drawn.
        Samples are prepared OVERLAP_BATCH at a time: few enough to fit in the time of one draw."""
        upcoming = (item for start in range(first, stop, OVERLAP_BATCH)
                    for item in self.prepare_batch(range(start, min(start + OVERLAP_BATCH, stop))))
        current = next(upcoming)
        self.renderer.submit(*current)
        for following in itertools.chain(upcoming, [None]):  # prepared while `current` is drawn
            result = self.renderer.collect()
            if following is not None:
                self.renderer.submit(*following)
            yield self.finish(*current, result)
            current = following

    def render_shard(self, shard_index: int, first: int, count: int, tick=None) -> dict:
        s, spec, model = self.ctx.settings, self.ctx.spec, self.ctx.model
        from facegen import __version__
        from facegen.generator.sampling import config_yaml

        path = Path(s.out) / shard_name(shard_index)
        attrs = {
            "first_index": first, "facegen_version": __version__, "spec_name": spec.name,
            "spec_yaml": spec.yaml_text, "spec_hash": spec.hash, "landmark_names": list(spec.names),
            "landmark_groups": {g: [int(i) for i in idx] for g, idx in spec.groups.items()},
            "flip_map": np.asarray(spec.flip, np.int64), "ibug68": np.asarray(spec.ibug68, np.int64),
            "model_hash": model.hash, "renderer": s.renderer, "renderer_version": self.ctx.job["renderer_version"],
            "seed": s.seed, "config_yaml": config_yaml(self.ctx.config), "config_hash": self.ctx.job["config_hash"],
            "image_size": [s.size, s.size], "outputs": list(s.outputs),
        }
        writer = ShardWriter(path, count, (s.size, s.size), spec.num_points, model.num_identity,
                             model.num_expressions, attrs, outputs=s.outputs)
        with writer:
            for sample in self.samples(first, count):
                writer.add(sample)
                if tick is not None:
                    tick(1)
        return {"file": path.name, "first_index": first, "num_samples": count, "sha256": _sha256(path)}

    def close(self) -> None:
        self.renderer.close()
        gc.unfreeze()
        _keep_freed_memory(False)
        self._blas_limit.restore_original_limits()
        import cv2

        cv2.setNumThreads(self._cv2_threads)  # as they were before this worker


def _keep_freed_memory(keep: bool = True) -> None:
    """Have glibc's malloc serve and keep large blocks in the heap (keep=False: its defaults again).
    By default every block over 128 KiB (a posed mesh, a depth map, an image, the normals'
    temporaries) is a fresh mmap that is returned to the system when freed, so each sample
    page-faults in a few MB of zeroed memory again: ~1 ms per sample (the vertex normals alone take
    twice as long). The process keeps its peak working set instead (tens of MB). No effect where the
    C library is not glibc."""
    import ctypes
    import ctypes.util

    try:
        mallopt = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6").mallopt
    except (OSError, AttributeError):
        return
    M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3
    mallopt(M_MMAP_THRESHOLD, (64 << 20) if keep else (128 << 10))
    mallopt(M_TRIM_THRESHOLD, (256 << 20) if keep else (128 << 10))


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


# Worker processes: one Worker per process, progress through a queue.
_WORKER: Worker | None = None
_PROGRESS = None
PROGRESS_INTERVAL_S = 0.2  # how often a worker reports its finished images


def _init_worker(ctx: JobContext, progress_queue) -> None:
    global _WORKER, _PROGRESS
    os.environ.setdefault("PYOPENGL_PLATFORM", "egl")
    # llvmpipe starts one raster thread per CPU in every process; with several workers that
    # oversubscribes the CPUs. Share them out (read when the GL context is created).
    os.environ.setdefault("LP_NUM_THREADS", str(max(1, len(os.sched_getaffinity(0)) // ctx.settings.workers)))
    _WORKER = Worker(ctx)
    _PROGRESS = progress_queue


def _render_in_worker(task: tuple[int, int, int]) -> dict:
    parent = os.getppid()
    unreported, reported_at = 0, time.monotonic()

    def tick(n: int) -> None:
        nonlocal unreported, reported_at
        if os.getppid() != parent:  # the job was killed (SIGKILL leaves pool workers orphaned): stop
            os._exit(1)  # the shard stays a .partial, which the next run deletes
        unreported += n
        # A put is a round trip to the manager process: report a few times a second, not per image.
        if time.monotonic() - reported_at >= PROGRESS_INTERVAL_S:
            _PROGRESS.put(unreported)
            unreported, reported_at = 0, time.monotonic()

    entry = _WORKER.render_shard(*task, tick=tick)
    if unreported:
        _PROGRESS.put(unreported)
    return entry


# -- the job --------------------------------------------------------------------------------------------

def run_job(s: JobSettings, progress: bool = True) -> Path:
    validate(s)
    out = Path(s.out)
    ctx = prepare(s)
    manifest = prepare_folder(out, ctx.job, s.n)
    tasks = pending_shards(s, manifest, out)
    if not tasks:
        return out
    from tqdm import tqdm

    done_before = s.n - sum(count for _, _, count in tasks)
    bar = tqdm(total=s.n, initial=done_before, unit="img", desc=f"render {ctx.spec.name}", disable=not progress,
               smoothing=0.05, dynamic_ncols=True)

    def finished(entry: dict) -> None:
        manifest["shards"] = sorted([e for e in manifest["shards"] if e["file"] != entry["file"]] + [entry],
                                    key=lambda e: e["first_index"])
        write_manifest(out, manifest)

    try:
        if s.workers == 1 or len(tasks) == 1:
            worker = Worker(ctx)
            try:
                for task in tasks:
                    finished(worker.render_shard(*task, tick=bar.update))
            finally:
                worker.close()
        else:
            _run_pool(ctx, tasks, bar, finished)
    finally:
        bar.close()
    return out


def _run_pool(ctx: JobContext, tasks, bar, finished) -> None:
    """Spawned workers render whole shards; the main process counts images and writes the manifest."""
    mp_ctx = mp.get_context("spawn")
    with mp_ctx.Manager() as manager:
        progress_queue = manager.Queue()
        with mp_ctx.Pool(min(ctx.settings.workers, len(tasks)), initializer=_init_worker,
                         initargs=(ctx, progress_queue)) as pool:
            _collect(pool, tasks, progress_queue, bar, finished)


def _collect(pool, tasks, progress_queue, bar, finished) -> None:
    """Wait for the shards, counting finished images as workers report them."""
    pending = [pool.apply_async(_render_in_worker, (task,)) for task in tasks]
    while pending:
        _drain(progress_queue, bar, timeout=0.2)
        for result in [r for r in pending if r.ready()]:
            pending.remove(result)
            finished(result.get())  # re-raises a worker's error here
    _drain(progress_queue, bar, timeout=0.0)


def _drain(progress_queue, bar, timeout: float) -> None:
    try:
        bar.update(progress_queue.get(timeout=timeout) if timeout else progress_queue.get_nowait())
        while True:
            bar.update(progress_queue.get_nowait())
    except queue.Empty:
        pass


def pending_shards(s: JobSettings, manifest: dict, out: Path) -> list[tuple[int, int, int]]:
    """Shards still to render: missing, or recorded with another sample count (the job grew)."""
    done = {e["file"]: e for e in manifest["shards"]}
    tasks = []
    for k, first, count in s.shard_ranges():
        entry = done.get(shard_name(k))
        if entry and entry["num_samples"] == count and (out / entry["file"]).exists():
            continue
        (out / shard_name(k)).unlink(missing_ok=True)  # finished but unrecorded (killed before the manifest)
        tasks.append((k, first, count))
    # Drop records of shards beyond a shrunken job.
    keep = {shard_name(k) for k, _, _ in s.shard_ranges()}
    manifest["shards"] = [e for e in manifest["shards"] if e["file"] in keep and e["file"] not in
                          {shard_name(k) for k, _, _ in tasks}]
    return tasks

