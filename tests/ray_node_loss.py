"""A render job on a Ray cluster of two one-CPU worker nodes (ray.cluster_utils.Cluster: separate raylets on
this machine), one of which is removed while its actor is mid-shard (tests/test_ray_executor.py runs this in
its own process, so the cluster cannot outlive it or touch the test process).

    python tests/ray_node_loss.py OUT N SHARD_SIZE      # prints what the job said, then "done"
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


def main() -> None:
    out, n, shard_size = Path(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
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
    facegen.render("ibug68", n, out, size=64, shard_size=shard_size, renderer="raster", executor="ray",
                   shared_fs=True, progress=False)  # shared-fs: the partial files show an actor at work
    print("done", flush=True)
    ray.shutdown()
    cluster.shutdown()


if __name__ == "__main__":
    main()
