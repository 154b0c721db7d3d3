"""`dann`: domain-adversarial training (Ganin & Lempitsky, JMLR 2016) from synthetic shards to unlabelled
real images (`--unlabelled`). A small classifier tells the two domains apart from the features the
landmark head reads (pooled over space for heatmap models); a gradient reversal between them makes the
features work against it, so synthetic and real crops come to look alike to the head. The reversal's
weight rises from 0 to ~1 over the run (trainer/adaptation.py, `reversal_coeff`); `--da-weight` scales the
domain loss. Both domains go through the model in one forward pass (batch norm sees both)."""

import torch
import torch.nn.functional as F
from torch import nn

from facegen.trainer.adaptation import adaptation_step, grad_reverse
from facegen.trainer.strategies import Strategy, register_strategy

HIDDEN = 256


def pooled(features: torch.Tensor) -> torch.Tensor:
    """Feature vectors (B, C): a feature map (B, C, H, W) averaged over space."""
    return features.mean((2, 3)) if features.dim() == 4 else features


def modules(run):
    c = run.model.feature_dim
    return {"domain": nn.Sequential(nn.Linear(c, HIDDEN), nn.ReLU(inplace=True), nn.Linear(HIDDEN, HIDDEN),
                                    nn.ReLU(inplace=True), nn.Linear(HIDDEN, 1))}


def loss(run, batches):
    out, ns, task, parts, coeff = adaptation_step(run, batches)
    logits = run.modules["domain"](grad_reverse(pooled(out["features"]).float(), coeff)).squeeze(1)
    labels = torch.cat([torch.zeros(ns), torch.ones(len(logits) - ns)]).to(logits.device)  # synthetic 0, real 1
    bce = F.binary_cross_entropy_with_logits(logits, labels, reduction="none")
    domain = (bce[:ns].mean() + bce[ns:].mean()) / 2  # each domain counts the same, whatever its batch size
    accuracy = ((logits > 0).float() == labels).float().mean()
    return task + run.cfg.da_weight * domain, {"task": float(task.detach()), **parts, "domain": float(domain.detach()),
                                               "domain_acc": float(accuracy), "coeff": coeff}


STRATEGY = register_strategy(Strategy(
    name="dann", summary="shards + unlabelled real images (--unlabelled): a domain classifier behind gradient reversal",
    sources=("synthetic", "unlabelled"), loss=loss, modules=modules))
