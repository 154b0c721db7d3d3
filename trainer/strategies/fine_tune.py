"""`fine-tune`: start from a synthetic checkpoint (`--init`) and continue on real faces alone at a tenth
of the learning rate; the real labels supervise the model's iBUG-68 points (Datagen's recipe)."""

from facegen.trainer.strategies import Strategy, register_strategy


def loss(run, batches):
    x, y = run.inputs(batches["real"])
    return run.supervised_real(run.forward(x), y)


STRATEGY = register_strategy(Strategy(
    name="fine-tune", summary="continue a synthetic checkpoint (--init) on real faces at lr x 0.1",
    sources=("real",), loss=loss, points="init", lr_scale=0.1))
