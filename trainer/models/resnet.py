"""ResNet18 / ResNet50 with a direct coordinate-regression head (own code; no torchvision)."""

from __future__ import annotations

import torch
import torch.nn as nn

from facegen.trainer.models import register_model


class BasicBlock(nn.Module):
    expansion = 1

    def __init__(self, cin: int, planes: int, stride: int = 1):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, planes, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.down = _downsample(cin, planes, stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = torch.relu(self.bn1(self.conv1(x)))
        y = self.bn2(self.conv2(y))
        return torch.relu(y + (self.down(x) if self.down is not None else x))


class Bottleneck(nn.Module):
    expansion = 4

    def __init__(self, cin: int, planes: int, stride: int = 1):
        super().__init__()
        out = planes * 4
        self.conv1 = nn.Conv2d(cin, planes, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = nn.Conv2d(planes, out, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(out)
        self.down = _downsample(cin, out, stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = torch.relu(self.bn1(self.conv1(x)))
        y = torch.relu(self.bn2(self.conv2(y)))
        y = self.bn3(self.conv3(y))
        return torch.relu(y + (self.down(x) if self.down is not None else x))


def _downsample(cin: int, cout: int, stride: int) -> nn.Module | None:
    if stride == 1 and cin == cout:
        return None
    return nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))


class ResNetRegressor(nn.Module):
    """ResNet trunk, global average pool, linear layer to 2L normalised coordinates.

    The head predicts positions as fractions of the input (0..1 across the crop's edges), initialised at
    the centre, and converts to pixels: x_px = x_frac * S - 0.5."""

    def __init__(self, num_landmarks: int, block: type, layers: list[int], in_chans: int = 3, width: int = 64):
        super().__init__()
        self.num_landmarks = num_landmarks
        self.in_chans = in_chans
        self.stem = nn.Sequential(nn.Conv2d(in_chans, width, 7, 2, 3, bias=False), nn.BatchNorm2d(width),
                                  nn.ReLU(inplace=True), nn.MaxPool2d(3, 2, 1))
        stages, cin = [], width
        for i, n in enumerate(layers):
            planes = width * 2 ** i
            blocks = []
            for j in range(n):
                blocks.append(block(cin, planes, 2 if (j == 0 and i > 0) else 1))
                cin = planes * block.expansion
            stages.append(nn.Sequential(*blocks))
        self.stages = nn.Sequential(*stages)
        self.feature_dim = cin  # size of the pooled feature vector the head reads (domain adaptation)
        self.head = nn.Linear(cin, num_landmarks * 2)
        nn.init.zeros_(self.head.weight)
        nn.init.constant_(self.head.bias, 0.5)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    def forward(self, x: torch.Tensor) -> dict:
        f = self.stages(self.stem(x)).mean((2, 3))
        return {**self.task_head(f, x.shape[-1]), "features": f}

    def task_head(self, features: torch.Tensor, size: int) -> dict:
        """The landmarks the head reads from pooled `features` (B, C) of `size` px inputs (what `forward`
        returns as `features`): domain adaptation reuses the head on them."""
        frac = self.head(features).view(-1, self.num_landmarks, 2)
        return {"landmarks": frac * size - 0.5}


@register_model
def resnet18(num_landmarks: int, in_chans: int = 3, **kw) -> nn.Module:
    return ResNetRegressor(num_landmarks, BasicBlock, [2, 2, 2, 2], in_chans=in_chans, **kw)


@register_model
def resnet50(num_landmarks: int, in_chans: int = 3, **kw) -> nn.Module:
    return ResNetRegressor(num_landmarks, Bottleneck, [3, 4, 6, 3], in_chans=in_chans, **kw)
