"""`daln`: discriminator-free adversarial adaptation (Chen et al., CVPR 2022) from synthetic shards to
unlabelled real images (`--unlabelled`). No domain classifier: the landmark head itself is the critic,
through the nuclear-norm Wasserstein discrepancy of its predictions (trainer/adaptation.py). The head,
applied once more to the features behind a gradient reversal, maximises the discrepancy; the features
minimise it, which makes real predictions as confident and varied as synthetic ones.

Heatmap models only: each landmark's heatmap through a spatial softmax is a distribution over the map's
cells (the one the decoder takes the mean of), its "class" prediction; the nuclear norm is taken per
landmark over the batch and averaged. A coordinate-regression head has no such distribution (docs/trainer.md,
"Domain adaptation", says why binning its coordinates would not be one), so daln refuses it."""

from facegen.errors import FacegenError
from facegen.trainer.adaptation import adaptation_step, grad_reverse, nuclear_wasserstein_discrepancy
from facegen.trainer.strategies import Strategy, register_strategy


def modules(run):
    """No module of its own; this hook runs once before the first step, where a head without heatmaps is
    refused (heatmap models decode their maps, `decode`; coordinate regressors have none)."""
    if not hasattr(run.model, "decode"):
        raise FacegenError(f"--strategy daln reuses the landmark head as its critic and needs its per-landmark "
                           f"heatmaps (distributions over the map's cells): use a heatmap model (--model resnet18_heatmap or hourglass). "
                           f"--model {run.cfg.model} regresses coordinates; --strategy dann adapts it.")
    return {}


def loss(run, batches):
    out, ns, task, parts, coeff = adaptation_step(run, batches)
    heatmaps = run.model.task_head(grad_reverse(out["features"].float(), coeff), run.cfg.input_size)["heatmaps"][-1]
    nwd = nuclear_wasserstein_discrepancy(heatmaps[:ns], heatmaps[ns:], beta=getattr(run.model, "beta", 1.0))
    # minimising -NWD: the head (the critic) maximises the discrepancy, the reversed features minimise it
    return task - run.cfg.da_weight * nwd, {"task": float(task.detach()), **parts, "nwd": float(nwd.detach()),
                                            "coeff": coeff}


STRATEGY = register_strategy(Strategy(
    name="daln", summary="shards + unlabelled real images (--unlabelled): the landmark head as critic (nuclear-norm "
                         "Wasserstein discrepancy); heatmap models", sources=("synthetic", "unlabelled"), loss=loss,
    modules=modules))
