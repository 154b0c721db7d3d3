"""Render jobs on Ray clusters built inside this process (tests/test_ray_executor.py runs each in its own
process, so no cluster outlives it or touches the test process):

    python tests/ray_cluster_jobs.py node-loss OUT N SHARD_SIZE
        two one-CPU worker nodes (ray.cluster_utils.Cluster: separate raylets on this machine) whose processes
        see an empty $FACEGEN_HOME and $HOME (no face model: a worker node needs only the installed package),
        one removed while its actor is mid-shard; prints what a worker node sees, "node removed", then "done"
    python tests/ray_cluster_jobs.py gpus OUT N SHARD_SIZE
        a Ray that declares one GPU, two actors reserving half of it each (--gpus-per-worker 0.5); prints the
        most GPUs the job held at once, then "done". (Ray accounts GPUs; the raster renderer draws on Mesa.)
    python tests/ray_cluster_jobs.py other-code OUT N SHARD_SIZE
        one worker node whose Python imports a copy of facegen with one file changed (PYTHONPATH); prints the
        job's error, then "done"
"""

from __future__ import annotations

import logging
import os
import shutil
import sys
import tempfile
import threading
import time
import tomllib
from pathlib import Path

import ray
from ray.cluster_utils import Cluster
from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

import facegen
from facegen.errors import FacegenError
from facegen.shards import PARTIAL_SUFFIX


def render(out: Path, n: int, shard_size: int, **options) -> None:
    facegen.render("ibug68", n, out, size=64, shard_size=shard_size, renderer="raster", executor="ray", workers=2,
                   progress=False, **options)


def node_loss(out: Path, n: int, shard_size: int) -> None:
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 0})  # the driver's node renders nothing
    bare = tempfile.mkdtemp(prefix="bare-node-")
    nodes = [cluster.add_node(num_cpus=1, env_vars={"FACEGEN_HOME": bare, "HOME": bare}) for _ in range(2)]
    doomed = nodes[0]
    cluster.wait_for_nodes()
    ray.init(address=cluster.address, logging_level=logging.ERROR)
    seen = ray.get(_home.options(scheduling_strategy=NodeAffinitySchedulingStrategy(doomed.node_id, soft=False))
                   .remote())
    print(f"a worker node's FACEGEN_HOME: {seen!r} (empty: {not os.listdir(seen)})", flush=True)

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
    shutil.rmtree(bare, ignore_errors=True)


@ray.remote(num_cpus=0)
def _home() -> str:
    return os.environ.get("FACEGEN_HOME", "")


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


def other_code(out: Path, n: int, shard_size: int) -> None:
    copy = Path(tempfile.mkdtemp(prefix="other-facegen-"))
    repo = Path(__file__).resolve().parent.parent
    # the installed layout, as pyproject.toml maps the design card's folders into the package
    layout = tomllib.loads((repo / "pyproject.toml").read_text())["tool"]["setuptools"]["package-dir"]
    for package, folder in layout.items():
        shutil.copytree(repo / folder, copy / package.replace(".", "/"), dirs_exist_ok=True,
                        ignore=shutil.ignore_patterns("__pycache__"))
    with open(copy / "facegen" / "generator" / "hair.py", "a") as f:
        f.write("# a node that runs another version\n")
    os.chdir(copy.parent)  # Ray puts the driver's folder first on its workers' path: not the checkout's facegen/
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 0})
    cluster.add_node(num_cpus=2, env_vars={"PYTHONPATH": str(copy)})
    cluster.wait_for_nodes()
    ray.init(address=cluster.address, logging_level=logging.ERROR)
    try:
        render(out, n, shard_size)
    except FacegenError as e:
        print(f"job failed: {e}", flush=True)
    print("done", flush=True)
    ray.shutdown()
    cluster.shutdown()
    shutil.rmtree(copy, ignore_errors=True)


if __name__ == "__main__":
    job = {"node-loss": node_loss, "gpus": gpus, "other-code": other_code}[sys.argv[1]]
    job(Path(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]))
