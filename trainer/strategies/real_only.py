"""`real-only`: an iBUG-68 model trained on real labelled faces alone (the reference the others are
compared with). Its points are iBUG-68 in the real labels' own jaw convention."""

from facegen.trainer.strategies import Strategy, register_strategy


def loss(run, batches):
    x, y = run.inputs(batches["real"])
    return run.supervised(run.forward(x), y)


STRATEGY = register_strategy(Strategy(
    name="real-only", summary="train on real labelled faces only (--real)", sources=("real",), loss=loss,
    points="real"))
