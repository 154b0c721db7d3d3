"""`synthetic-only`: the model's own points on rendered shards, nothing else (the baseline)."""

from facegen.trainer.strategies import Strategy, register_strategy


def loss(run, batches):
    x, y = run.inputs(batches["synthetic"])
    return run.supervised(run.forward(x), y, batches["synthetic"])


STRATEGY = register_strategy(Strategy(
    name="synthetic-only", summary="train on rendered shards only", sources=("synthetic",), loss=loss))
