"""`facegen train` under torchrun (trainer/distributed.py): real two-process runs on CPU (gloo) on toy
shards, the rank sampler, one process unchanged, and the errors that name a bad launch."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.distributed as tdist

from facegen.errors import FacegenError
from facegen.trainer import distributed
from facegen.trainer.distributed import Dist, RankSampler
from facegen.trainer.predictor import load_predictor
from facegen.trainer.train import TrainConfig, train
from tests.toy_shards import REAL_MINI

TINY = ["--model", "resnet18", "--model-arg", "width=8", "--input-size", "32", "--batch-size", "8",
        "--workers", "0", "--val-fraction", "0.1", "--seed", "1", "--device", "cpu"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _torchrun(*args: str, nproc: int = 2) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", str(nproc),
           "--master-port", str(_free_port()), *args]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}  # two processes on a small machine: one thread each
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=env)
    assert p.returncode == 0, f"{' '.join(cmd)}\n{p.stdout[-3000:]}\n{p.stderr[-5000:]}"
    return p


def test_torchrun_two_cpu_processes_train_one_checkpoint_and_resume(toy_shards, tmp_path):
    out = tmp_path / "run"
    p = _torchrun("-m", "facegen.cli", "train", "--data", str(toy_shards), *TINY, "--steps", "4", "--out", str(out))
    assert p.stdout.count('"steps": 4') == 1  # the summary, printed by rank 0 alone
    assert sorted(f.name for f in out.iterdir()) == ["best.pt", "history.json", "last.pt"]
    summary = json.loads((out / "history.json").read_text())["summary"]
    assert summary["steps"] == 4 and summary["world_size"] == 2 and summary["global_batch_size"] == 16
    ck = torch.load(out / "last.pt", weights_only=False)
    assert ck["step"] == 4 and not any(k.startswith("module.") for k in ck["model_state"])
    # 43 training crops: 22 per rank, 2 batches of 8 a pass, so validation at steps 2 and 4
    assert [r["step"] for r in ck["history"] if "val_nme_crop" in r] == [2, 4]
    assert load_predictor(out / "best.pt", device="cpu").num_landmarks == 68  # as eval and predict load it

    _torchrun("-m", "facegen.cli", "train", "--data", str(toy_shards), *TINY, "--steps", "6", "--out", str(out),
              "--resume", str(out / "last.pt"))
    ck = torch.load(out / "last.pt", weights_only=False)
    assert ck["step"] == 6 and [r["step"] for r in ck["history"] if "val_nme_crop" in r] == [2, 4, 6]


def test_ranks_keep_the_same_weights_with_a_strategy_module(toy_shards, tmp_path):
    """dann trains a domain classifier beside the model (in its own DistributedDataParallel): after the run
    every rank holds the same weights as rank 0 (batch norm's running statistics aside: each rank updates
    them from its own batch in a step, and DDP broadcasts rank 0's before the next)."""
    if not REAL_MINI.exists():
        pytest.skip(f"{REAL_MINI} is missing (the unlabelled images)")
    cfg = dict(data=[str(toy_shards)], model="resnet18", model_kwargs={"width": 8}, input_size=32, steps=3,
               batch_size=8, workers=0, val_fraction=0.1, seed=1, device="cpu", out=str(tmp_path),
               strategy="dann", unlabelled=str(REAL_MINI))
    _torchrun(str(Path(__file__).with_name("ddp_rank_states.py")), json.dumps(cfg))
    a, b = (torch.load(tmp_path / f"rank{r}.pt", weights_only=False) for r in (0, 1))
    assert len(a["modules"]["domain"]) == 6  # the classifier's three linear layers
    for k, v in a["model"].items():
        if "running_" not in k:
            assert torch.equal(v, b["model"][k]), k
    for k, v in a["modules"]["domain"].items():
        assert torch.equal(v, b["modules"]["domain"][k]), k


def test_rank_sampler_deals_one_shuffle_out():
    def passes(rank: int, world: int, n: int = 10) -> list[list[int]]:
        sampler = RankSampler(n, Dist(torch.device("cpu"), rank, world), torch.Generator().manual_seed(5))
        return [list(sampler), list(sampler)]

    ranks = [passes(r, 3) for r in range(3)]
    for k in range(2):  # each pass: 4 each (10 padded to 12 with the pass's first two), all the samples
        got = [ranks[r][k] for r in range(3)]
        assert [len(g) for g in got] == [4, 4, 4]
        assert set(sum(got, [])) == set(range(10))
    assert ranks[0][0] != ranks[0][1]  # every pass reshuffles
    assert passes(0, 1)[0] == torch.randperm(10, generator=torch.Generator().manual_seed(5)).tolist()
    assert [len(x) for x in passes(1, 4, n=2)] == [1, 1]  # fewer samples than ranks: repeated


def test_one_process_without_torchrun_is_unchanged(toy_shards, tmp_path, monkeypatch):
    """No torchrun: rank 0 of 1, no process group, no wrapper, the summary as before (the recorded loss
    history of tests/test_strategies.py checks the numbers)."""
    for k in distributed.TORCHRUN_ENV:
        monkeypatch.delenv(k, raising=False)
    with distributed.session("cpu") as dist:
        assert (dist.rank, dist.world, dist.enabled, dist.main) == (0, 1, False, True)
        assert not tdist.is_initialized()
    s = train(TrainConfig(data=[str(toy_shards)], model="resnet18", model_kwargs={"width": 8}, out=str(tmp_path),
                          input_size=32, steps=2, batch_size=8, workers=0, val_fraction=0.1, seed=1), progress=False)
    assert s["steps"] == 2 and "world_size" not in s and not tdist.is_initialized()


def test_bad_launches_name_the_cause_and_the_fix(monkeypatch):
    with pytest.raises(FacegenError, match="NCCL connects GPUs.*--dist-backend gloo"):
        distributed.pick_backend("nccl", torch.device("cpu"))
    for k in distributed.TORCHRUN_ENV:
        monkeypatch.delenv(k, raising=False)
    with pytest.raises(FacegenError, match="launched by torchrun"):
        with distributed.session("cpu", "nccl"):
            pass
    monkeypatch.setenv("WORLD_SIZE", "1")
    monkeypatch.setenv("RANK", "0")
    monkeypatch.setenv("LOCAL_RANK", "0")
    with pytest.raises(FacegenError, match="--dist-backend nccl"):  # refused before the process group starts
        with distributed.session("cpu", "nccl"):
            pass
    assert not tdist.is_initialized()
    # a node with one GPU and torchrun --nproc-per-node 2 (what torch.cuda reports, on any machine)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    assert distributed.rank_device("cuda", 0, 2) == torch.device("cuda", 0)
    with pytest.raises(FacegenError, match="LOCAL_RANK 1.*1 CUDA device.*--nproc-per-node 1 or fewer"):
        distributed.rank_device("cuda", 1, 2)
    with pytest.raises(FacegenError, match="--device cuda:0 under torchrun with 2 processes"):
        distributed.rank_device("cuda:0", 0, 2)
