"""Render throughput of the raster pipeline: end to end (sample -> pose -> render -> label -> HDF5)
with 1 and 2 workers, against the bare pyrender draw of the same meshes, and where the rest goes.

    .venv/bin/python bench/render_throughput.py            # dense490, 256 px, 300 images per worker, 5 runs (~5 min)
    .venv/bin/python bench/render_throughput.py --n 100 --repeats 1 --workers 2   # a quick look
    .venv/bin/python bench/render_throughput.py --config bench/configs/bare.yaml   # without hair and clothing

Rates are steady state: each worker builds its renderer first (not timed), then renders one shard.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("PYOPENGL_PLATFORM", "egl")
REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))


def _settings(args, out: str, workers: int = 1):
    from facegen.generator.job import JobSettings

    return JobSettings(spec=args.spec, n=args.n, out=out, size=args.size, shard_size=args.n, seed=0,
                       renderer="raster", outputs=("rgb",), workers=workers,
                       config=str(REPO / args.config) if args.config else None)


def _timed_shard(args, out: str, shard: int, workers: int, barrier, results) -> None:
    """One worker process: build everything, wait for the others, render one shard end to end
    (timed), then draw the same meshes again with nothing else to do (timed: the bare draws), all
    workers in step: first every pyrender draw, then every facegen draw."""
    from facegen.generator.job import prepare
    from facegen.generator.worker import Worker
    from tests.raster_helpers import pyrender_draw

    settings = _settings(args, out, workers)  # the worker count decides how a worker orders its stages
    os.environ.setdefault("LP_NUM_THREADS", str(max(1, len(os.sched_getaffinity(0)) // workers)))  # as the job does
    worker = Worker(prepare(settings))
    worker.sample(0)  # warm-up: first draw binds buffers and compiles shaders
    barrier.wait()
    t0 = time.perf_counter()
    worker.render_shard(shard, shard * args.n, args.n)
    end_to_end = time.perf_counter() - t0
    r = worker.renderer

    def draws(draw) -> float:
        """Seconds spent in `draw` over the shard's meshes (uploaded untimed before each)."""
        barrier.wait()
        seconds = 0.0
        for index in range(shard * args.n, (shard + 1) * args.n):
            params, scene = worker.prepare(index)
            r.upload(params, scene)
            t0 = time.perf_counter()
            draw(params, scene)
            seconds += time.perf_counter() - t0
        return seconds

    # pyrender's OffscreenRenderer.render() (draw, wait, read colour and depth), then facegen's draw
    # and readback of the same buffers. One kind at a time in every worker: a worker's draws then
    # share the CPUs with draws of the same kind, not with a mix that depends on how the workers'
    # loops happen to line up (interleaved, the bare rate varied by +-6 % from run to run).
    bare = draws(lambda params, scene: pyrender_draw(r))
    lean = draws(lambda params, scene: (r.draw(), r.read()))
    results.put((end_to_end, bare, lean))
    worker.close()


def end_to_end(args, workers: int) -> tuple[float, float, float]:
    """(end-to-end, bare pyrender draw, facegen draw) images per second with `workers` processes of
    args.n images each."""
    ctx = mp.get_context("spawn")
    barrier, results = ctx.Barrier(workers), ctx.Queue()
    with tempfile.TemporaryDirectory() as out:
        procs = [ctx.Process(target=_timed_shard, args=(args, out, k, workers, barrier, results)) for k in range(workers)]
        for p in procs:
            p.start()
        times = [results.get() for _ in procs]
        for p in procs:
            p.join()
    return (workers * args.n / max(t[0] for t in times), sum(args.n / t[1] for t in times),
            sum(args.n / t[2] for t in times))


def breakdown(args) -> dict[str, float]:
    """In-process, one worker, stages one after another as a worker runs them when every CPU is busy
    (Worker.samples: batches of BATCH, each stage over the batch): seconds per stage over args.n samples."""
    from facegen.generator.job import prepare
    from facegen.generator.worker import BATCH, Worker
    from facegen.generator.scene import RenderResult, pose_scenes
    from facegen.shards import ShardWriter

    with tempfile.TemporaryDirectory() as out:
        settings = _settings(args, out)
        ctx = prepare(settings)
        worker = Worker(ctx)
        worker.sample(0)
        r = worker.renderer
        stages = dict.fromkeys(["sample", "pose (mesh)", "vertex normals", "hair and clothing (grow, ribbons)",
                                "upload (buffers, uniforms)",
                                "draw + readback", "background", "labels", "write (deflate, HDF5)"], 0.0)
        writer = ShardWriter(Path(out) / "s.h5", args.n, (args.size, args.size), ctx.spec.num_points,
                             ctx.model.num_identity, ctx.model.num_expressions, {}, outputs=("rgb",))
        clock = time.perf_counter
        for start in range(0, args.n, BATCH):  # the stages of Worker.samples and RasterRenderer.render_batch
            indices = range(start, min(start + BATCH, args.n))
            t0 = clock()
            params = [worker.sampler.sample(i) for i in indices]
            t1 = clock()
            scenes = pose_scenes(params, ctx.model)
            t2 = clock()
            vertex_data = [r.vertex_data(scene) for scene in scenes]
            t3 = clock()
            worn = [r.dressing_data(p, scene) for p, scene in zip(params, scenes)]
            t4 = clock()
            stages["sample"] += t1 - t0
            stages["pose (mesh)"] += t2 - t1
            stages["vertex normals"] += t3 - t2
            stages["hair and clothing (grow, ribbons)"] += t4 - t3
            drawn = []
            for p, scene, data, dress in zip(params, scenes, vertex_data, worn):
                t0 = clock()
                r.upload(p, scene, data, dress)
                t1 = clock()
                r.draw()
                drawn.append(r.read())
                t2 = clock()
                stages["upload (buffers, uniforms)"] += t1 - t0
                stages["draw + readback"] += t2 - t1
            t0 = clock()
            images = [r.compose(p, scene.camera, colour, depth)
                      for p, scene, (colour, depth, _) in zip(params, scenes, drawn)]
            t1 = clock()
            labels = [worker.labeller(p, scene, depth, classes)
                      for p, scene, (_, depth, classes) in zip(params, scenes, drawn)]
            t2 = clock()
            for p, image, lab, (_, depth, classes) in zip(params, images, labels, drawn):
                writer.add(worker.record(p, lab, RenderResult(image, depth, None, classes)))
            t3 = clock()
            stages["background"] += t1 - t0
            stages["labels"] += t2 - t1
            stages["write (deflate, HDF5)"] += t3 - t2
        writer.close()
        worker.close()
    return stages


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=300, help="images per worker and run")
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--spec", default="dense490")
    parser.add_argument("--config", default=None, help="sampling config (repo-relative), as facegen render --config")
    parser.add_argument("--workers", default="1,2", help="comma-separated worker counts")
    parser.add_argument("--repeats", type=int, default=5,
                        help="runs per worker count: the machine's speed drifts between runs, so medians are printed")
    args = parser.parse_args()
    os.environ.setdefault("FACEGEN_HOME", str(REPO / ".cache" / "facegen-test"))

    print(f"raster renderer, {args.spec}, {args.size}x{args.size}, {args.n} images per worker, "
          f"config {args.config or 'default'}, "
          f"{len(os.sched_getaffinity(0))} CPUs, load average {os.getloadavg()[0]:.1f} (other processes skew rates)")
    stages = breakdown(args)
    total = sum(stages.values())
    print("\nper-sample time, 1 worker, stages run one after another (no overlap):")
    for name, seconds in stages.items():
        print(f"  {name:<36} {1000 * seconds / args.n:7.2f} ms  {seconds / total:6.1%}")
    print(f"  {'total':<36} {1000 * total / args.n:7.2f} ms")
    print(f"share of time outside the draw: {1 - stages['draw + readback'] / total:.1%}  (with a spare CPU the job "
          "overlaps it with the draw: it prepares sample i+1 and labels/writes sample i while llvmpipe draws)")
    print("\nbare draws of the same meshes in the same processes: pyrender = OffscreenRenderer.render() (draw, "
          "blit, read back,\nlinearise depth); facegen = the pipeline's own draw and leaner readback (same pixels)")
    print("workers   end to end   bare pyrender draw   ratio   facegen draw   ratio" +
          ("   (medians of %d runs)" % args.repeats if args.repeats > 1 else ""))
    for w in (int(x) for x in args.workers.split(",")):
        runs = [end_to_end(args, w) for _ in range(args.repeats)]
        rate, bare, lean = (statistics.median(r[k] for r in runs) for k in range(3))
        ratio, lean_ratio = statistics.median(r[0] / r[1] for r in runs), statistics.median(r[0] / r[2] for r in runs)
        print(f"  {w}       {rate:6.1f} img/s   {bare:6.1f} img/s      {ratio:5.0%}   "
              f"{lean:6.1f} img/s   {lean_ratio:5.0%}")
        if args.repeats > 1:
            print("          runs: " + ", ".join(f"{r[0]:.1f}/{r[1]:.1f} ({r[0] / r[1]:.0%})" for r in runs))


if __name__ == "__main__":
    main()
