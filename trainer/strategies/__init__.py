"""Training strategies: how a run mixes synthetic shards, real labelled faces and unlabelled real images.

One file per strategy, each registering a `Strategy` by name (as models do); `facegen train --strategy
NAME` picks one. A strategy says which data sources it reads, where the model's landmark points come
from, and computes the loss of one step from a batch of each source; the trainer (trainer/train.py) does
the rest (data, model, optimiser, validation, checkpoints), the same for every strategy.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable

if TYPE_CHECKING:
    import torch

    from facegen.trainer.train import Run

SOURCES = ("synthetic", "real", "unlabelled")


@dataclass(frozen=True)
class Strategy:
    name: str
    summary: str  # one line for --help and `facegen train --list-strategies`
    sources: tuple[str, ...]  # data it trains on, from SOURCES; the first one's size defines an epoch
    # loss(run, batches) -> (loss, parts): batches maps each source to its batch of this step
    loss: Callable[["Run", dict], tuple["torch.Tensor", dict]]
    points: str = "synthetic"  # where the model's landmark points come from: "synthetic" (the shards' spec),
    # "real" (iBUG-68 in the real labels' jaw convention) or "init" (the --init checkpoint's)
    lr_scale: float = 1.0  # multiplies --lr (fine-tuning continues at a lower rate)
    # modules(run) -> {name: nn.Module} trained beside the model (domain classifiers), saved in checkpoints
    modules: Callable[["Run"], dict] | None = None


STRATEGIES: dict[str, Strategy] = {}


def register_strategy(strategy: Strategy) -> Strategy:
    STRATEGIES[strategy.name] = strategy
    return strategy


def _load() -> None:
    from facegen.trainer.strategies import (daln, dann, fine_tune, mixed, real_only,  # noqa: F401 (registers)
                                            synthetic_only)


def list_strategies() -> list[str]:
    _load()
    return list(STRATEGIES)


def get_strategy(name: str) -> Strategy:
    from facegen.errors import FacegenError

    _load()
    if name not in STRATEGIES:
        raise FacegenError(f"--strategy {name!r}: unknown; choose one of {', '.join(STRATEGIES)}")
    return STRATEGIES[name]
