"""Run under torchrun by tests/test_distributed.py: trains with the TrainConfig given as JSON (argv[1]), then
every rank saves what it trained (model, strategy modules, adapter: bare weights) to OUT/rankR.pt, so the
test can tell whether the ranks stayed together. Only rank 0 writes anything in a real run."""

from __future__ import annotations

import json
import os
import sys

import torch

from facegen.trainer import train as trainer
from facegen.trainer.distributed import unwrap

runs: list = []
forward = trainer.Run.forward


def remember(run, x):  # the run object is local to train(): keep it from its first forward pass
    if not runs:
        runs.append(run)
    return forward(run, x)


if __name__ == "__main__":
    trainer.Run.forward = remember
    cfg = trainer.TrainConfig(**json.loads(sys.argv[1]))
    trainer.train(cfg, progress=False)
    run = runs[0]
    torch.save({"model": run.model.state_dict(),
                "modules": {k: unwrap(m).state_dict() for k, m in run.modules.items()},
                "adapter": unwrap(run.adapter).state_dict() if run.adapter is not None else {}},
               os.path.join(cfg.out, f"rank{os.environ['RANK']}.pt"))
