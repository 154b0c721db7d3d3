"""Training on several processes: `torchrun ... -m facegen.cli train ...` (docs/trainer.md, "Training on
several GPUs (torchrun)").

torchrun starts one process per GPU (or per share of a CPU machine) and tells each where it stands through
the environment: WORLD_SIZE (processes in all), RANK (this one's number, 0 ... WORLD_SIZE - 1), LOCAL_RANK
(its number on this node), MASTER_ADDR / MASTER_PORT (where the process group meets). `session()` reads
them, joins the process group (NCCL between GPUs, gloo between CPU processes), gives each process its
device (cuda:LOCAL_RANK) and leaves the group at the end. Without torchrun none of this happens: one
process, no process group, the trainer exactly as before.

The trainer (trainer/train.py) wraps what trains in DistributedDataParallel (`wrap`), deals each pass over
the data out to the processes (`RankSampler`), lets rank 0 alone validate and write files, and shares its
decisions (`broadcast`) so that no process goes its own way.
"""

from __future__ import annotations

import math
import os
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta
from typing import Iterator

import torch
import torch.distributed as tdist
from torch.utils.data import Sampler

from facegen.errors import FacegenError
from facegen.trainer.predictor import pick_device

BACKENDS = ("auto", "nccl", "gloo")
TORCHRUN_ENV = ("WORLD_SIZE", "RANK", "LOCAL_RANK")
# how long a collective waits for the slowest rank: the others wait in a broadcast while rank 0 validates
# (real faces, --val-real: minutes on a large set), longer than NCCL's own default of 10 minutes allows
TIMEOUT = timedelta(minutes=30)


@dataclass(frozen=True)
class Dist:
    """Where this process stands: rank 0 of 1 (no process group) unless launched by torchrun."""
    device: torch.device
    rank: int = 0
    world: int = 1
    local_rank: int = 0
    backend: str | None = None  # the process group's backend; None: no process group

    @property
    def enabled(self) -> bool:
        return self.backend is not None

    @property
    def main(self) -> bool:  # the one process that validates, logs and writes files
        return self.rank == 0


def launched() -> bool:
    """True in a process torchrun started (it sets WORLD_SIZE, RANK and LOCAL_RANK)."""
    return all(k in os.environ for k in TORCHRUN_ENV)


def is_main_process() -> bool:
    """Rank 0, or a process torchrun did not start: the one that prints (e.g. the command's summary)."""
    return int(os.environ.get("RANK", "0")) == 0


def _env_int(name: str) -> int:
    try:
        return int(os.environ[name])
    except ValueError:
        raise FacegenError(f"{name}={os.environ[name]!r}: torchrun sets it to a whole number; launch with "
                           "torchrun, or unset WORLD_SIZE, RANK and LOCAL_RANK to train in one process") from None


def rank_device(device: str, local_rank: int, local_world: int) -> torch.device:
    """The device of the process with LOCAL_RANK `local_rank` of `local_world` on its node: auto / cuda ->
    cuda:LOCAL_RANK (CPU under auto without CUDA); cpu -> cpu; cuda:N only with one process per node
    (several would share one GPU)."""
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    dev = pick_device(device)  # a FacegenError when CUDA is missing or cuda:N does not exist
    if dev.type != "cuda":
        return dev
    if dev.index is not None:
        if local_world > 1:
            raise FacegenError(f"--device {device} under torchrun with {local_world} processes on this node: they "
                               f"would all train on that one GPU. Use --device cuda (each process takes "
                               f"cuda:LOCAL_RANK), or CUDA_VISIBLE_DEVICES to choose the GPUs")
        return dev
    count = torch.cuda.device_count()
    if local_rank >= count:
        raise FacegenError(f"torchrun started {local_world} processes on this node (LOCAL_RANK {local_rank}) and "
                           f"it has {count} CUDA device(s): one process per GPU. Launch with --nproc-per-node "
                           f"{count} or fewer, or train on CPUs with --device cpu")
    return torch.device("cuda", local_rank)


def pick_backend(backend: str, device: torch.device) -> str:
    """auto: NCCL between GPUs, gloo between CPU processes. NCCL needs CUDA devices; gloo runs anywhere."""
    if backend not in BACKENDS:
        raise FacegenError(f"--dist-backend {backend}: choose one of {', '.join(BACKENDS)}")
    if backend == "auto":
        backend = "nccl" if device.type == "cuda" else "gloo"
    if backend == "nccl":
        if device.type != "cuda":
            raise FacegenError(f"--dist-backend nccl: NCCL connects GPUs and this run trains on {device}; use "
                               "--dist-backend gloo (or auto) for CPU processes, or --device cuda")
        if not tdist.is_nccl_available():
            raise FacegenError("--dist-backend nccl: this PyTorch build has no NCCL; install a CUDA build of "
                               "PyTorch or use --dist-backend gloo")
    return backend


@contextmanager
def session(device: str = "auto", backend: str = "auto") -> Iterator[Dist]:
    """This process's place in the run: under torchrun, in a process group joined here and left at the end
    (also after an error); otherwise rank 0 of 1 on `device`, with no process group. A process group
    someone else opened (a script calling facegen.train inside its own) is used as it is and left open."""
    if not launched() and not tdist.is_initialized():
        if backend not in ("auto", None):
            raise FacegenError(f"--dist-backend {backend} is for runs launched by torchrun (it sets WORLD_SIZE, "
                               "RANK and LOCAL_RANK); drop it, or launch with torchrun")
        yield Dist(pick_device(device))
        return
    if not tdist.is_available():
        raise FacegenError("this PyTorch build has no torch.distributed; train in one process (without torchrun)")
    ours = not tdist.is_initialized()
    if ours:
        rank, world, local_rank = _env_int("RANK"), _env_int("WORLD_SIZE"), _env_int("LOCAL_RANK")
        local_world = int(os.environ.get("LOCAL_WORLD_SIZE", world))
    else:
        rank, world = tdist.get_rank(), tdist.get_world_size()
        local_rank = int(os.environ.get("LOCAL_RANK", rank))
        local_world = int(os.environ.get("LOCAL_WORLD_SIZE", world))
    dev = rank_device(device, local_rank, local_world)
    if dev.type == "cuda":
        torch.cuda.set_device(dev)  # NCCL and broadcast_object_list use the current device
    if ours:
        name = pick_backend(backend or "auto", dev)
        tdist.init_process_group(name, rank=rank, world_size=world, timeout=TIMEOUT)
    else:
        name = tdist.get_backend()
    try:
        yield Dist(dev, rank, world, local_rank, name)
    finally:
        if ours and tdist.is_initialized():
            tdist.destroy_process_group()


def wrap(module: torch.nn.Module, dist: Dist, own_group: bool = False) -> torch.nn.Module:
    """`module` in DistributedDataParallel (its gradients averaged over the processes in backward, its
    buffers, e.g. batch norm statistics, broadcast from rank 0 before each forward); unchanged without a
    process group or without parameters that train. `own_group`: its gradients travel in a process group of
    its own, so that two wrapped modules in one backward pass never interleave their collectives."""
    if not dist.enabled or not any(p.requires_grad for p in module.parameters()):
        return module
    group = tdist.new_group() if own_group else None  # (the default group's backend)
    ids = [dist.device.index] if dist.device.type == "cuda" else None
    return torch.nn.parallel.DistributedDataParallel(module, device_ids=ids, process_group=group)


def unwrap(module: torch.nn.Module | None) -> torch.nn.Module | None:
    """The module inside a DistributedDataParallel wrapper (what checkpoints save: no `module.` prefixes)."""
    return module.module if isinstance(module, torch.nn.parallel.DistributedDataParallel) else module


class RankSampler(Sampler[int]):
    """The trainer's seeded shuffle, dealt out to the processes: each pass draws one permutation from the
    run's generator (the same on every rank: same seed, same draws, reseeded the same on --resume), pads it
    to a multiple of the world size by repeating its start, and rank r takes positions r, r + W, r + 2W ...
    So the ranks see disjoint parts of a pass (but for the padding) and every pass reshuffles."""

    def __init__(self, n: int, dist: Dist, generator: torch.Generator):
        self.n, self.rank, self.world, self.generator = n, dist.rank, dist.world, generator

    def __len__(self) -> int:
        return math.ceil(self.n / self.world)

    def __iter__(self) -> Iterator[int]:
        perm = torch.randperm(self.n, generator=self.generator).tolist()
        while len(perm) % self.world:  # (a loop: fewer samples than processes repeat more than once)
            perm += perm[:self.world - len(perm) % self.world]
        return iter(perm[self.rank::self.world])


def broadcast(obj, dist: Dist):
    """Rank 0's `obj` on every rank (any picklable object); `obj` itself without a process group."""
    if not dist.enabled:
        return obj
    box = [obj]
    tdist.broadcast_object_list(box, src=0)
    return box[0]


def mean(value: float, dist: Dist) -> float:
    """The mean of a number over the processes (e.g. each rank's loss); the number itself in one process."""
    if not dist.enabled:
        return value
    t = torch.tensor([value], dtype=torch.float64, device=dist.device)
    tdist.all_reduce(t)
    return float(t) / dist.world


def barrier(dist: Dist) -> None:
    """Every rank waits here for the others (e.g. for rank 0's files)."""
    if dist.enabled:
        tdist.barrier(device_ids=[dist.device.index]) if dist.device.type == "cuda" else tdist.barrier()
