"""The per-process render worker: model, spec, sampler, renderer and labeller built once, whole shards
rendered in order (sample -> pose -> render -> label -> write). Used in process by a one-worker job
and inside every worker process of an executor."""

from __future__ import annotations

import gc
import itertools
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Callable

import numpy as np

from facegen.shards import ShardWriter, shard_entry, shard_name

if TYPE_CHECKING:
    from facegen.generator.job import JobContext

# Samples a worker makes stage by stage (Worker.samples). Larger batches gain little more and hold
# more images in memory (16 at 256 px: ~8 MB).
BATCH = 16
OVERLAP_BATCH = 4  # the same while llvmpipe draws on a spare CPU: what can be prepared during one draw


@dataclass
class Worker:
    """Renders whole shards; built once per process (model, spec, sampler, renderer, labeller)."""

    ctx: JobContext
    threads: int = 0  # CPU threads for the renderer (0: its own default, every CPU)
    # Called between the stages of a batch (sample and pose, draw, label): raises to stop the shard
    # there. A batch of 16 Cycles images takes longer than a stopped worker may (executors/local.py).
    between: Callable[[], None] | None = None

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
                                        hdris=self.ctx.hdri_dir, threads=self.threads)
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
        return self.record(params, self.labeller(params, scene, result.depth, result.segmentation), result)

    def record(self, params, labels, result) -> dict:
        """The shard writer's sample from one render and its labels (the job's outputs only)."""
        sample = {
            "image": result.image, "landmarks_2d": labels.points_2d, "landmarks_3d": labels.points_3d,
            "visibility": labels.visibility, "in_frame": labels.in_frame, "occluded_by": labels.occluded_by,
            "head_pose": labels.head_pose,
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
        if "amodal" in self.ctx.settings.outputs:
            if result.amodal is None:
                from facegen.errors import FacegenError

                raise FacegenError(f"renderer {self.ctx.settings.renderer!r} gave no amodal mask; render "
                                   "without amodal in --outputs or with --renderer raster / cycles")
            sample["amodal"] = result.amodal
        return sample

    def samples(self, first: int, count: int):
        """Samples first .. first+count-1 in order; a sample depends only on (seed, index).

        When every CPU runs a worker, samples are made in batches of BATCH, each stage over the whole
        batch before the next (sample and pose all, draw all, then label all): that keeps each
        stage's code and data in the CPU caches between llvmpipe's draws. With a spare CPU for
        llvmpipe's raster threads and a renderer that can submit a draw and collect it later
        (`supports_async`: raster), sample i+1 is prepared and sample i labelled while i+1 is drawn
        instead; when no CPU is spare, that overlap only adds context switches (~15 % more CPU per
        image)."""
        stop = first + count
        spare_cpu = len(os.sched_getaffinity(0)) > (self.ctx.settings.workers or 1)
        if self.renderer.supports_async and spare_cpu:
            yield from self._overlapped(first, stop)
            return
        if self.renderer.supports_batch:
            render_batch = self.renderer.render_batch
        else:
            def render_batch(items):
                return [self.renderer.render(params, scene) for params, scene in items]
        for start in range(first, stop, BATCH):
            prepared = self.prepare_batch(range(start, min(start + BATCH, stop)))
            self._between()
            results = render_batch(prepared)
            self._between()
            yield from [self.finish(params, scene, result) for (params, scene), result in zip(prepared, results)]

    def _between(self) -> None:
        if self.between is not None:
            self.between()

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

    def render_shard(self, shard_index: int, first: int, count: int, tick=None, folder: str | None = None) -> dict:
        """Render samples first .. first+count-1 into shard `shard_index` in `folder` (default: the job's
        --out; a Ray actor that sends its shards back renders into a scratch folder); its manifest entry."""
        s, spec, model = self.ctx.settings, self.ctx.spec, self.ctx.model
        from facegen import __version__
        from facegen.generator.sampling import config_yaml

        path = Path(folder or s.out) / shard_name(shard_index)
        attrs = {
            "first_index": first, "facegen_version": __version__, "spec_name": spec.name,
            "spec_yaml": spec.yaml_text, "spec_hash": spec.hash, "landmark_names": list(spec.names),
            "landmark_groups": {g: [int(i) for i in idx] for g, idx in spec.groups.items()},
            "flip_map": np.asarray(spec.flip, np.int64), "ibug68": np.asarray(spec.ibug68, np.int64),
            "model_hash": model.hash, "renderer": s.renderer, "renderer_version": self.ctx.job["renderer_version"],
            "seed": s.seed, "config_yaml": config_yaml(self.ctx.config), "config_hash": self.ctx.job["config_hash"],
            "image_size": [s.size, s.size], "outputs": list(s.outputs),
            "job": self.ctx.job,  # the manifest's resume key: a lost manifest is rebuilt from the shards
        }
        writer = ShardWriter(path, count, (s.size, s.size), spec.num_points, model.num_identity,
                             model.num_expressions, attrs, outputs=s.outputs)
        with writer:
            for sample in self.samples(first, count):
                writer.add(sample)
                if tick is not None:
                    tick(1)
        return shard_entry(path, first, count)  # size and sha256 of the file as written

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

