"""Render throughput of the raster pipeline: end to end (sample -> pose -> render -> label -> HDF5)
with 1 and 2 workers, against the bare pyrender draw of the same meshes, and where the rest goes.

    .venv/bin/python bench/render_throughput.py            # dense490, 256 px, 200 images per run
    .venv/bin/python bench/render_throughput.py --n 400 --workers 1,2

Rates are steady state: each worker builds its renderer first (not timed), then renders one shard.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("PYOPENGL_PLATFORM", "egl")
REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))


def _settings(args, out: str):
    from facegen.generator.job import JobSettings

    return JobSettings(spec=args.spec, n=args.n, out=out, size=args.size, shard_size=args.n, seed=0,
                       renderer="raster", outputs=("rgb",))


def _timed_shard(args, out: str, shard: int, workers: int, barrier, results) -> None:
    """One worker process: build everything, wait for the others, render one shard end to end
    (timed), then draw the same meshes again with nothing else to do (timed: the bare draws)."""
    from facegen.generator.job import Worker, prepare

    settings = _settings(args, out)
    os.environ.setdefault("LP_NUM_THREADS", str(max(1, len(os.sched_getaffinity(0)) // workers)))  # as the job does
    worker = Worker(prepare(settings))
    worker.sample(0)  # warm-up: first draw binds buffers and compiles shaders
    barrier.wait()
    t0 = time.perf_counter()
    worker.render_shard(shard, shard * args.n, args.n)
    end_to_end = time.perf_counter() - t0
    barrier.wait()
    r, bare, lean = worker.renderer, 0.0, 0.0
    for index in range(shard * args.n, (shard + 1) * args.n):
        params, scene = worker.prepare(index)
        r.upload(params, scene)
        t0 = time.perf_counter()
        r.draw_only(params, scene)  # pyrender's OffscreenRenderer.render(): draw, wait, read colour and depth
        t1 = time.perf_counter()
        r.draw()  # facegen's draw and readback of the same buffers
        r.read()
        t2 = time.perf_counter()
        bare, lean = bare + t1 - t0, lean + t2 - t1
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
    """In-process, one worker, stages one after another: seconds per stage over args.n samples."""
    from facegen.generator.job import Worker, prepare
    from facegen.generator.scene import pose_scene
    from facegen.shards import ShardWriter

    with tempfile.TemporaryDirectory() as out:
        settings = _settings(args, out)
        ctx = prepare(settings)
        worker = Worker(ctx)
        worker.sample(0)
        r = worker.renderer
        stages = dict.fromkeys(["sample", "pose (mesh)", "upload (normals, colours, buffers)", "draw + readback",
                                "background", "labels", "write (gzip, HDF5)"], 0.0)
        writer = ShardWriter(Path(out) / "s.h5", args.n, (args.size, args.size), ctx.spec.num_points,
                             ctx.model.num_identity, ctx.model.num_expressions, {}, outputs=("rgb",))
        for i in range(args.n):
            t = [time.perf_counter()]
            params = worker.sampler.sample(i)
            t.append(time.perf_counter())
            scene = pose_scene(params, ctx.model)
            t.append(time.perf_counter())
            r.upload(params, scene)
            t.append(time.perf_counter())
            r.draw()
            colour, depth = r.read()
            t.append(time.perf_counter())
            image = r.compose(params, colour, depth)
            t.append(time.perf_counter())
            labels = worker.labeller(params, scene, depth)
            t.append(time.perf_counter())
            writer.add({"image": image, "landmarks_2d": labels.points_2d, "landmarks_3d": labels.points_3d,
                        "visibility": labels.visibility, "in_frame": labels.in_frame, "head_pose": labels.head_pose,
                        "K": labels.K, "camera_R": labels.camera_R, "camera_t": labels.camera_t,
                        "identity": params.identity, "expression": params.expression, "sample_index": i,
                        "params": params.to_dict()})
            t.append(time.perf_counter())
            for name, a, b in zip(stages, t[:-1], t[1:]):
                stages[name] += b - a
        writer.close()
        worker.close()
    return stages


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=200, help="images per worker and run")
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--spec", default="dense490")
    parser.add_argument("--workers", default="1,2", help="comma-separated worker counts")
    args = parser.parse_args()
    os.environ.setdefault("FACEGEN_HOME", str(REPO / ".cache" / "facegen-test"))

    print(f"raster renderer, {args.spec}, {args.size}x{args.size}, {args.n} images per worker, "
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
    print("workers   end to end   bare pyrender draw   ratio   facegen draw   ratio")
    for w in (int(x) for x in args.workers.split(",")):
        rate, bare, lean = end_to_end(args, w)
        print(f"  {w}       {rate:6.1f} img/s   {bare:6.1f} img/s      {rate / bare:5.0%}   "
              f"{lean:6.1f} img/s   {rate / lean:5.0%}")


if __name__ == "__main__":
    main()
