"""Losses: heatmap KL / MSE / adaptive wing, coordinate L1 / wing / RMSE, and the combination the trainer uses.

Coordinate losses work in percent of the input crop (px / S * 100), so the wing's (w=10, eps=2) constants
mean the same thing at every input size.

Every loss takes optional per-point `weights` (B, L) (occlusion-aware training, `occlusion_weights`): the
loss of each point is then averaged with those weights, sum(w * loss) / sum(w), over the batch's points, so
masking points (weight 0) leaves the mean over the others, at the scale of the plain loss. Without weights
each loss is the plain mean it always was.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from facegen.generator.segmentation import OCCLUDERS

# Occluders whose points occlusion-aware training down-weights: everything in front of the face that is
# not the face itself. Kept at full weight: "none" (seen), "self" (the face hides the point: a detector
# must infer it from the face's shape, as it must on real faces) and "out_of_frame" (supervised as the
# trainer always has: its place follows from the rest of the face, as for a face the image border cuts).
# New OCCLUDERS codes (added at the end) are occluders, so they are down-weighted too; codes the table
# does not know (255, UNKNOWN_OCCLUDER: real faces' hidden points) keep full weight.
KEPT_OCCLUDERS = ("none", "self", "out_of_frame")
DOWN_WEIGHTED_OCCLUDERS = tuple(o for o in OCCLUDERS if o not in KEPT_OCCLUDERS)


def occlusion_weights(occluded_by: torch.Tensor | np.ndarray, occluded_weight: float = 0.0) -> torch.Tensor:
    """Per-point loss weights from `occluded_by` codes (any shape, uint8): `occluded_weight` for the points
    an occluder hides (DOWN_WEIGHTED_OCCLUDERS), 1 for every other point; float32, same shape."""
    table = torch.ones(256, dtype=torch.float32)
    table[[OCCLUDERS.index(o) for o in DOWN_WEIGHTED_OCCLUDERS]] = float(occluded_weight)
    codes = torch.as_tensor(np.asarray(occluded_by) if isinstance(occluded_by, np.ndarray) else occluded_by)
    return table.to(codes.device)[codes.long()]


def weighted_mean(per_point: torch.Tensor, weights: torch.Tensor | None) -> torch.Tensor:
    """The mean of per-point losses (B, L); with weights (B, L), sum(w * loss) / sum(w) (0 when every
    weight is 0: nothing to learn from, and no gradient)."""
    if weights is None:
        return per_point.mean()
    w = weights.to(per_point.device, per_point.dtype)
    return (per_point * w).sum() / w.sum().clamp_min(1e-12)


def l1(pred: torch.Tensor, target: torch.Tensor, weights: torch.Tensor | None = None) -> torch.Tensor:
    if weights is None:
        return (pred - target).abs().mean()
    return weighted_mean((pred - target).abs().mean(-1), weights)


def wing(pred: torch.Tensor, target: torch.Tensor, weights: torch.Tensor | None = None, w: float = 10.0,
         eps: float = 2.0) -> torch.Tensor:
    """Wing loss (Feng et al. 2018): log near zero, L1 far away."""
    x = (pred - target).abs()
    c = w - w * math.log(1 + w / eps)
    loss = torch.where(x < w, w * torch.log1p(x / eps), x - c)
    return loss.mean() if weights is None else weighted_mean(loss.mean(-1), weights)


def rmse(pred: torch.Tensor, target: torch.Tensor, weights: torch.Tensor | None = None) -> torch.Tensor:
    """Root of the (weighted) mean squared point-to-point distance."""
    return weighted_mean(((pred - target) ** 2).sum(-1), weights).clamp_min(1e-12).sqrt()


COORD_LOSSES = {"l1": l1, "wing": wing, "rmse": rmse}


def heatmap_mse(pred: torch.Tensor, target: torch.Tensor, weights: torch.Tensor | None = None) -> torch.Tensor:
    sq = (pred - target) ** 2
    # scaled: gaussian targets are mostly zeros
    return (sq.mean() if weights is None else weighted_mean(sq.mean((-2, -1)), weights)) * 100.0


def adaptive_wing(pred: torch.Tensor, target: torch.Tensor, weights: torch.Tensor | None = None, alpha: float = 2.1,
                  omega: float = 14.0, epsilon: float = 1.0, theta: float = 0.5) -> torch.Tensor:
    """Adaptive wing loss (Wang et al. 2019) on heatmaps with targets in [0, 1]."""
    y, d = target, (pred - target).abs()
    p = alpha - y
    a = omega * (1 / (1 + (theta / epsilon) ** p)) * p * ((theta / epsilon) ** (p - 1)) / epsilon
    c = theta * a - omega * torch.log1p((theta / epsilon) ** p)
    loss = torch.where(d < theta, omega * torch.log1p((d / epsilon) ** p), a * d - c)
    return loss.mean() if weights is None else weighted_mean(loss.mean((-2, -1)), weights)


def heatmap_kl(log_probs: torch.Tensor, target: torch.Tensor, weights: torch.Tensor | None = None) -> torch.Tensor:
    """KL(target || softmax) per map, summed over space and averaged over maps (with weights: their weighted
    mean): zero at the target, and its gradient on the logits (p - t) does not vanish when the prediction is
    far off (MSE through a softmax does)."""
    t = target.clamp_min(0)
    return weighted_mean((t * (torch.log(t.clamp_min(1e-12)) - log_probs)).sum((-2, -1)), weights)


HEATMAP_LOSSES = {"mse": heatmap_mse, "awing": adaptive_wing}
DISTRIBUTION_LOSSES = {"kl": heatmap_kl}


def gaussian_heatmaps(points: torch.Tensor, height: int, width: int, sigma: float = 1.5) -> torch.Tensor:
    """(B, L, 2) points in heatmap cells -> (B, L, H, W) unnormalised gaussians with peak 1."""
    xs = torch.arange(width, device=points.device, dtype=torch.float32)
    ys = torch.arange(height, device=points.device, dtype=torch.float32)
    gx = torch.exp(-((xs - points[..., 0:1]) ** 2) / (2 * sigma ** 2))  # (B, L, W)
    gy = torch.exp(-((ys - points[..., 1:2]) ** 2) / (2 * sigma ** 2))  # (B, L, H)
    return gy.unsqueeze(-1) * gx.unsqueeze(-2)


@dataclass
class LandmarkLoss:
    """Coordinate loss on the decoded landmarks (every hourglass stack: intermediate supervision), plus a
    heatmap loss against gaussian targets for heatmap models (weight 0 turns it off). Optional per-point
    `weights` (B, L) weight every term alike (the module docstring says how they are normalised)."""
    coord: str = "l1"
    heatmap: str = "kl"
    heatmap_weight: float = 1.0
    sigma: float = 1.5

    def __post_init__(self) -> None:
        if self.coord not in COORD_LOSSES:
            raise ValueError(f"unknown coordinate loss {self.coord!r}; choose one of {', '.join(COORD_LOSSES)}")
        if self.heatmap not in HEATMAP_LOSSES and self.heatmap not in DISTRIBUTION_LOSSES:
            raise ValueError(f"unknown heatmap loss {self.heatmap!r}; choose one of "
                             f"{', '.join([*DISTRIBUTION_LOSSES, *HEATMAP_LOSSES])}")

    def __call__(self, output: dict, target: torch.Tensor, size: int, model=None,
                 weights: torch.Tensor | None = None) -> tuple[torch.Tensor, dict]:
        scale = 100.0 / size
        coord_fn = COORD_LOSSES[self.coord]
        parts: dict[str, torch.Tensor] = {}
        heatmaps = output.get("heatmaps")
        if heatmaps:
            stride = output["stride"]
            decoded = [model.decode(h) for h in heatmaps[:-1]] + [output["landmarks"]] if model is not None \
                else [output["landmarks"]]
            parts["coord"] = sum(coord_fn(d.float() * scale, target * scale, weights) for d in decoded) / len(decoded)
            if self.heatmap_weight > 0:
                # compare the decoder's distribution (softmax of the logits) with a normalised gaussian, both
                # scaled so the target peaks at 1 (the usual range of MSE / adaptive-wing heatmap losses)
                b, l, h, w = heatmaps[-1].shape
                tgt = gaussian_heatmaps((target + 0.5) / stride - 0.5, h, w, self.sigma)
                tgt = tgt / tgt.sum((-2, -1), keepdim=True).clamp_min(1e-12)
                peak = tgt.amax((-2, -1), keepdim=True).clamp_min(1e-12)
                beta = getattr(model, "beta", 1.0)
                logp = [torch.log_softmax(x.float().reshape(b, l, -1) * beta, -1).reshape(b, l, h, w)
                        for x in heatmaps]
                if self.heatmap in DISTRIBUTION_LOSSES:
                    fn = DISTRIBUTION_LOSSES[self.heatmap]
                    terms = [fn(lp, tgt, weights) for lp in logp]
                else:
                    fn = HEATMAP_LOSSES[self.heatmap]
                    terms = [fn(lp.exp() / peak, tgt / peak, weights) for lp in logp]
                parts["heatmap"] = self.heatmap_weight * sum(terms) / len(terms)
        else:
            parts["coord"] = coord_fn(output["landmarks"].float() * scale, target * scale, weights)
        total = sum(parts.values())
        return total, {k: float(v.detach()) for k, v in parts.items()}
