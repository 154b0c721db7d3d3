"""Stacked hourglass (Newell et al.) with heatmaps and a sub-pixel soft-argmax decoder (integral regression).

The heatmaps are logits: softmax over space gives a distribution whose mean is the landmark (Sun et al.,
integral regression). The heatmap loss compares that distribution with a normalised gaussian at the target,
so the supervision and the decoder agree and the decoded position is sub-pixel.

Heatmaps are at 1/4 of the input resolution. Heatmap cell j covers input pixels [4j - 0.5, 4j + 3.5], so its
centre in input pixels is 4j + 1.5: x_in = (x_hm + 0.5) * stride - 0.5.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from facegen.trainer.models import register_model


class Residual(nn.Module):
    def __init__(self, cin: int, cout: int):
        super().__init__()
        mid = cout // 2
        self.body = nn.Sequential(nn.BatchNorm2d(cin), nn.ReLU(inplace=True), nn.Conv2d(cin, mid, 1),
                                  nn.BatchNorm2d(mid), nn.ReLU(inplace=True), nn.Conv2d(mid, mid, 3, 1, 1),
                                  nn.BatchNorm2d(mid), nn.ReLU(inplace=True), nn.Conv2d(mid, cout, 1))
        self.skip = nn.Conv2d(cin, cout, 1) if cin != cout else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x) + self.skip(x)


class Hourglass(nn.Module):
    def __init__(self, depth: int, ch: int):
        super().__init__()
        self.up1 = Residual(ch, ch)
        self.low1 = Residual(ch, ch)
        self.low2 = Hourglass(depth - 1, ch) if depth > 1 else Residual(ch, ch)
        self.low3 = Residual(ch, ch)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        low = self.low3(self.low2(self.low1(F.max_pool2d(x, 2))))
        return self.up1(x) + F.interpolate(low, size=x.shape[-2:], mode="nearest")


def soft_argmax(heatmaps: torch.Tensor, beta: float = 1.0) -> torch.Tensor:
    """(B, L, H, W) -> (B, L, 2) expected (x, y) in heatmap cells under softmax(beta * heatmaps)."""
    b, l, h, w = heatmaps.shape
    p = torch.softmax(heatmaps.float().reshape(b, l, -1) * beta, -1).reshape(b, l, h, w)
    xs = torch.arange(w, device=heatmaps.device, dtype=p.dtype)
    ys = torch.arange(h, device=heatmaps.device, dtype=p.dtype)
    return torch.stack([(p.sum(2) * xs).sum(-1), (p.sum(3) * ys).sum(-1)], -1)


class StackedHourglass(nn.Module):
    stride = 4

    def __init__(self, num_landmarks: int, stacks: int = 2, channels: int = 128, depth: int = 4,
                 in_chans: int = 3, beta: float = 1.0):
        super().__init__()
        self.num_landmarks, self.in_chans, self.beta = num_landmarks, in_chans, beta
        self.stem = nn.Sequential(nn.Conv2d(in_chans, 64, 7, 2, 3), nn.BatchNorm2d(64), nn.ReLU(inplace=True),
                                  Residual(64, channels // 2), nn.MaxPool2d(2), Residual(channels // 2, channels // 2),
                                  Residual(channels // 2, channels))
        self.hgs = nn.ModuleList(Hourglass(depth, channels) for _ in range(stacks))
        self.features = nn.ModuleList(
            nn.Sequential(Residual(channels, channels), nn.Conv2d(channels, channels, 1), nn.BatchNorm2d(channels),
                          nn.ReLU(inplace=True)) for _ in range(stacks))
        self.outs = nn.ModuleList(nn.Conv2d(channels, num_landmarks, 1) for _ in range(stacks))
        self.merge_f = nn.ModuleList(nn.Conv2d(channels, channels, 1) for _ in range(stacks - 1))
        self.merge_h = nn.ModuleList(nn.Conv2d(num_landmarks, channels, 1) for _ in range(stacks - 1))
        self.feature_dim = channels  # channels of the feature map the last head reads (domain adaptation)

    def decode(self, heatmaps: torch.Tensor) -> torch.Tensor:
        """Heatmaps -> landmarks in input pixels (sub-pixel, differentiable)."""
        return (soft_argmax(heatmaps, self.beta) + 0.5) * self.stride - 0.5

    def forward(self, x: torch.Tensor) -> dict:
        x = self.stem(x)
        heatmaps = []
        for i, hg in enumerate(self.hgs):
            f = self.features[i](hg(x))
            h = self.outs[i](f)
            heatmaps.append(h)
            if i < len(self.hgs) - 1:
                x = x + self.merge_f[i](f) + self.merge_h[i](h)
        # `features`: the last stack's map (B, C, H/4, W/4), the input of its head (domain adaptation)
        return {"heatmaps": heatmaps, "landmarks": self.decode(heatmaps[-1]), "stride": self.stride, "features": f}

    def task_head(self, features: torch.Tensor, size: int | None = None) -> dict:
        """The last stack's heatmaps and landmarks from its feature map (`features` of `forward`); domain
        adaptation reuses the head on them. `size` (the input side) is not needed: the stride fixes it."""
        h = self.outs[-1](features)
        return {"heatmaps": [h], "landmarks": self.decode(h), "stride": self.stride}


@register_model
def hourglass(num_landmarks: int, **kw) -> nn.Module:
    """2-stack hourglass, 128 channels (small enough for CPU training; raise `stacks`/`channels` on a GPU)."""
    return StackedHourglass(num_landmarks, **kw)
