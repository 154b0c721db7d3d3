"""Losses: heatmap KL / MSE / adaptive wing, coordinate L1 / wing / RMSE, and the combination the trainer uses.

Coordinate losses work in percent of the input crop (px / S * 100), so the wing's (w=10, eps=2) constants
mean the same thing at every input size.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch


def l1(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    return (pred - target).abs().mean()


def wing(pred: torch.Tensor, target: torch.Tensor, w: float = 10.0, eps: float = 2.0) -> torch.Tensor:
    """Wing loss (Feng et al. 2018): log near zero, L1 far away."""
    x = (pred - target).abs()
    c = w - w * math.log(1 + w / eps)
    return torch.where(x < w, w * torch.log1p(x / eps), x - c).mean()


def rmse(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Root of the mean squared point-to-point distance."""
    return ((pred - target) ** 2).sum(-1).mean().clamp_min(1e-12).sqrt()


COORD_LOSSES = {"l1": l1, "wing": wing, "rmse": rmse}


def heatmap_mse(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    return ((pred - target) ** 2).mean() * 100.0  # scaled: gaussian targets are mostly zeros


def adaptive_wing(pred: torch.Tensor, target: torch.Tensor, alpha: float = 2.1, omega: float = 14.0,
                  epsilon: float = 1.0, theta: float = 0.5) -> torch.Tensor:
    """Adaptive wing loss (Wang et al. 2019) on heatmaps with targets in [0, 1]."""
    y, d = target, (pred - target).abs()
    p = alpha - y
    a = omega * (1 / (1 + (theta / epsilon) ** p)) * p * ((theta / epsilon) ** (p - 1)) / epsilon
    c = theta * a - omega * torch.log1p((theta / epsilon) ** p)
    loss = torch.where(d < theta, omega * torch.log1p((d / epsilon) ** p), a * d - c)
    return loss.mean()


def heatmap_kl(log_probs: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """KL(target || softmax) per map, summed over space and averaged over maps: zero at the target, and its
    gradient on the logits (p - t) does not vanish when the prediction is far off (MSE through a softmax does)."""
    t = target.clamp_min(0)
    return (t * (torch.log(t.clamp_min(1e-12)) - log_probs)).sum((-2, -1)).mean()


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
    heatmap loss against gaussian targets for heatmap models (weight 0 turns it off)."""
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

    def __call__(self, output: dict, target: torch.Tensor, size: int, model=None) -> tuple[torch.Tensor, dict]:
        scale = 100.0 / size
        coord_fn = COORD_LOSSES[self.coord]
        parts: dict[str, torch.Tensor] = {}
        heatmaps = output.get("heatmaps")
        if heatmaps:
            stride = output["stride"]
            decoded = [model.decode(h) for h in heatmaps[:-1]] + [output["landmarks"]] if model is not None \
                else [output["landmarks"]]
            parts["coord"] = sum(coord_fn(d.float() * scale, target * scale) for d in decoded) / len(decoded)
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
                    terms = [fn(lp, tgt) for lp in logp]
                else:
                    fn = HEATMAP_LOSSES[self.heatmap]
                    terms = [fn(lp.exp() / peak, tgt / peak) for lp in logp]
                parts["heatmap"] = self.heatmap_weight * sum(terms) / len(terms)
        else:
            parts["coord"] = coord_fn(output["landmarks"].float() * scale, target * scale)
        total = sum(parts.values())
        return total, {k: float(v.detach()) for k, v in parts.items()}
