"""ResNet18 / ResNet50 trunks (own code; no torchvision) with two heads: direct coordinate regression
(`resnet18`, `resnet50`) and heatmaps decoded by soft-argmax (`resnet18_heatmap`, `resnet50_heatmap`)."""

from __future__ import annotations

import torch
import torch.nn as nn

from facegen.trainer.models import register_model
from facegen.trainer.models.hourglass import soft_argmax


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


def resnet_trunk(block: type, layers: list[int], in_chans: int = 3, width: int = 64) -> tuple[nn.Module, nn.Module, int]:
    """(stem, stages, channels): the 7x7 stride-2 stem with max pool, and four stages; features at 1/32 of the
    input, `channels` deep. Both heads keep them as `stem` and `stages` (the checkpoints' parameter names)."""
    stem = nn.Sequential(nn.Conv2d(in_chans, width, 7, 2, 3, bias=False), nn.BatchNorm2d(width),
                         nn.ReLU(inplace=True), nn.MaxPool2d(3, 2, 1))
    stages, cin = [], width
    for i, n in enumerate(layers):
        planes = width * 2 ** i
        blocks = []
        for j in range(n):
            blocks.append(block(cin, planes, 2 if (j == 0 and i > 0) else 1))
            cin = planes * block.expansion
        stages.append(nn.Sequential(*blocks))
    return stem, nn.Sequential(*stages), cin


def _init_convs(model: nn.Module) -> None:
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")


class ResNetRegressor(nn.Module):
    """ResNet trunk, global average pool, linear layer to 2L normalised coordinates.

    The head predicts positions as fractions of the input (0..1 across the crop's edges), initialised at
    the centre, and converts to pixels: x_px = x_frac * S - 0.5."""

    def __init__(self, num_landmarks: int, block: type, layers: list[int], in_chans: int = 3, width: int = 64):
        super().__init__()
        self.num_landmarks = num_landmarks
        self.in_chans = in_chans
        self.stem, self.stages, cin = resnet_trunk(block, layers, in_chans, width)
        self.feature_dim = cin  # size of the pooled feature vector the head reads (domain adaptation)
        self.head = nn.Linear(cin, num_landmarks * 2)
        nn.init.zeros_(self.head.weight)
        nn.init.constant_(self.head.bias, 0.5)
        _init_convs(self)

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


class ResNetHeatmap(nn.Module):
    """ResNet trunk + three stride-2 deconvolutions to heatmaps at 1/4 of the input (Xiao et al. 2018, "Simple
    Baselines"), decoded by soft-argmax (integral regression, Sun et al. 2018) like the hourglass: the heatmaps
    are logits, their spatial softmax a distribution whose mean is the landmark, sub-pixel and differentiable.
    Heatmap cell j is centred on input pixel 4j + 1.5 (the hourglass's convention)."""
    stride = 4

    def __init__(self, num_landmarks: int, block: type, layers: list[int], in_chans: int = 3, width: int = 64,
                 head_channels: int = 128, beta: float = 1.0):
        super().__init__()
        self.num_landmarks, self.in_chans, self.beta = num_landmarks, in_chans, beta
        self.stem, self.stages, cin = resnet_trunk(block, layers, in_chans, width)
        up = []
        for _ in range(3):  # 1/32 -> 1/4
            up += [nn.ConvTranspose2d(cin, head_channels, 4, 2, 1, bias=False), nn.BatchNorm2d(head_channels),
                   nn.ReLU(inplace=True)]
            cin = head_channels
        self.up = nn.Sequential(*up)
        self.out = nn.Conv2d(head_channels, num_landmarks, 1)
        self.feature_dim = head_channels  # channels of the map the head reads (domain adaptation)
        _init_convs(self)

    def decode(self, heatmaps: torch.Tensor) -> torch.Tensor:
        """Heatmaps -> landmarks in input pixels."""
        return (soft_argmax(heatmaps, self.beta) + 0.5) * self.stride - 0.5

    def forward(self, x: torch.Tensor) -> dict:
        f = self.up(self.stages(self.stem(x)))
        return {**self.task_head(f), "features": f}

    def task_head(self, features: torch.Tensor, size: int | None = None) -> dict:
        """Heatmaps and landmarks from the upsampled feature map (`features` of `forward`)."""
        h = self.out(features)
        return {"heatmaps": [h], "landmarks": self.decode(h), "stride": self.stride}


@register_model
def resnet18_heatmap(num_landmarks: int, in_chans: int = 3, **kw) -> nn.Module:
    return ResNetHeatmap(num_landmarks, BasicBlock, [2, 2, 2, 2], in_chans=in_chans, **kw)


@register_model
def resnet50_heatmap(num_landmarks: int, in_chans: int = 3, **kw) -> nn.Module:
    return ResNetHeatmap(num_landmarks, Bottleneck, [3, 4, 6, 3], in_chans=in_chans, **kw)
