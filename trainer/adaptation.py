"""Pieces of unsupervised domain adaptation (synthetic -> unlabelled real): the gradient reversal layer, its
warm-up schedule and the nuclear-norm Wasserstein discrepancy. The strategies that use them are
trainer/strategies/dann.py and daln.py; docs/trainer.md, "Domain adaptation", explains the choices.
"""

from __future__ import annotations

import math

import torch


class GradientReversal(torch.autograd.Function):
    """Identity forward; the gradient times -coeff backward (Ganin & Lempitsky 2015). A critic after it
    descends the loss it feeds while what lies before it (the features) ascends that loss: one backward
    pass plays both sides of the adversarial game."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, coeff: float) -> torch.Tensor:
        ctx.coeff = float(coeff)
        return x.view_as(x)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> tuple[torch.Tensor, None]:
        return grad.neg() * ctx.coeff, None


def grad_reverse(x: torch.Tensor, coeff: float = 1.0) -> torch.Tensor:
    return GradientReversal.apply(x, coeff)


def reversal_coeff(progress: float, gamma: float = 10.0) -> float:
    """The reversal's weight at `progress` = step / total steps: 2 / (1 + exp(-gamma p)) - 1, from 0 to ~1
    (DANN's schedule): the critic learns before its gradient reaches the features, which keeps its early
    noise out of them."""
    return 2.0 / (1.0 + math.exp(-gamma * min(max(progress, 0.0), 1.0))) - 1.0


def nuclear_norms(logits: torch.Tensor, beta: float = 1.0) -> torch.Tensor:
    """The nuclear norm of the batch's softmax predictions: `logits` (B, K) -> a scalar, the norm of the
    (B, K) matrix of class distributions; (B, L, *cells) -> (L,), one (B, prod(cells)) matrix per landmark
    (each landmark's map through a softmax over its cells: heatmaps (B, L, H, W) give distributions over
    H*W cells). `beta` scales the logits as the model's decoder does."""
    x = logits.float() * beta
    if x.dim() == 2:
        p = torch.softmax(x, -1)  # (B, K)
    else:
        p = torch.softmax(x.reshape(x.shape[0], x.shape[1], -1), -1).transpose(0, 1)  # (L, B, cells)
    if p.shape[-1] > p.shape[-2]:  # same singular values; LAPACK is several times faster on tall matrices
        p = p.transpose(-2, -1)
    # svdvals: the gradient of a sum of singular values (U V^T) has no 1 / (s_i^2 - s_j^2) terms, unlike the
    # singular vectors', so it stays finite when singular values repeat (near-uniform maps early on)
    return torch.linalg.svdvals(p).sum(-1)


def nuclear_wasserstein_discrepancy(source: torch.Tensor, target: torch.Tensor, beta: float = 1.0) -> torch.Tensor:
    """NWD (Chen et al., CVPR 2022): ||softmax(C(f_s))||_* / B_s - ||softmax(C(f_t))||_* / B_t from the task
    head's logits on source and target features. For a batch of distributions the nuclear norm is large when
    they are confident and diverse: the head as critic maximises it (source predictions confident, target
    ones not); the features, behind a gradient reversal, minimise it. With per-landmark distributions
    ((B, L, *cells) logits) the norms are averaged over landmarks."""
    return nuclear_norms(source, beta).mean() / source.shape[0] - nuclear_norms(target, beta).mean() / target.shape[0]


def adaptation_step(run, batches) -> tuple[dict, int, torch.Tensor, dict, float]:
    """What dann and daln share: one forward pass over the synthetic batch and the unlabelled real one
    (so batch norm sees both domains), the landmark loss of the synthetic rows, and the reversal
    coefficient of this step. Returns (output, synthetic rows, task loss, its parts, coefficient)."""
    xs, ys = run.inputs(batches["synthetic"])
    xt, _ = run.inputs(batches["unlabelled"])  # the labels are dummies
    out = run.forward(torch.cat([xs, xt]))
    task, parts = run.supervised(run.rows(out, slice(0, len(xs))), ys, batches["synthetic"])
    return out, len(xs), task, parts, reversal_coeff(run.step / max(run.total, 1))
