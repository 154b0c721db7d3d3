"""Render jobs on Ray clusters built inside this process (tests/test_ray_executor.py runs each in its own
process, so no cluster outlives it or touches the test process):

    python tests/ray_cluster_jobs.py node-loss OUT N SHARD_SIZE
        two one-CPU worker nodes (ray.cluster_utils.Cluster: separate raylets on this machine), one removed
        while its actor is mid-shard; prints "node removed", then "done"
    python tests/ray_cluster_jobs.py gpus OUT N SHARD_SIZE
        a Ray that declares one GPU, two actors reserving half of it each (--gpus-per-worker 0.5); prints the
        most GPUs the job held at once, then "done". (Ray accounts GPUs; the raster renderer draws on Mesa.)
"""

from __future__ import annotations

import logging
import sys
import threading
import time
from pathlib import Path

import ray
from ray.cluster_utils import Cluster

import facegen
from facegen.shards import PARTIAL_SUFFIX


def render(out: Path, n: int, shard_size: int, **options) -> None:
    facegen.render("ibug68", n, out, size=64, shard_size=shard_size, renderer="raster", executor="ray", workers=2,
                   progress=False, **options)


def node_loss(out: Path, n: int, shard_size: int) -> None:
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 0})  # the driver's node renders nothing
    doomed = cluster.add_node(num_cpus=1)
    cluster.add_node(num_cpus=1)
    cluster.wait_for_nodes()
    ray.init(address=cluster.address, logging_level=logging.ERROR)

    def remove_a_node() -> None:  # once an actor is mid-shard: its .partial holds images
        while not any(p.stat().st_size > 100_000 for p in out.glob(f"*{PARTIAL_SUFFIX}")):
            time.sleep(0.05)
        cluster.remove_node(doomed)
        print("node removed", flush=True)

    threading.Thread(target=remove_a_node, daemon=True).start()
    render(out, n, shard_size, shared_fs=True)  # shared-fs: the partial files show an actor at work
    print("done", flush=True)
    ray.shutdown()
    cluster.shutdown()


def gpus(out: Path, n: int, shard_size: int) -> None:
    ray.init(num_cpus=2, num_gpus=1, logging_level=logging.ERROR)
    held, rendering = [0.0], True

    def watch() -> None:
        while rendering:
            held[0] = max(held[0], 1.0 - ray.available_resources().get("GPU", 0.0))  # absent: none left
            time.sleep(0.05)

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    render(out, n, shard_size, gpus_per_worker=0.5)
    rendering = False
    watcher.join()
    print(f"GPUs held: {held[0]:g}", flush=True)
    print("done", flush=True)
    ray.shutdown()


if __name__ == "__main__":
    {"node-loss": node_loss, "gpus": gpus}[sys.argv[1]](Path(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]))
