"""Landmark detector models: one file per family, a tiny registry and one factory (timm style).

Every model maps images (B, C, S, S) float in [0, 1] to a dict with `landmarks` (B, L, 2) in input pixels
(project convention: pixel centres at integers) and, for heatmap models, `heatmaps` (a list, one per stack).
"""

from __future__ import annotations

from typing import Callable

import torch.nn as nn

_MODELS: dict[str, Callable[..., nn.Module]] = {}


def register_model(fn: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
    """Decorator: make `fn(num_landmarks, **kw) -> nn.Module` available to create_model by its name."""
    _MODELS[fn.__name__] = fn
    return fn


def list_models() -> list[str]:
    _load_families()
    return sorted(_MODELS)


def create_model(name: str, num_landmarks: int, **kw) -> nn.Module:
    """The single factory: `create_model('hourglass', 68)`, `create_model('resnet18', 490, in_chans=1)`."""
    _load_families()
    if name not in _MODELS:
        raise ValueError(f"unknown model {name!r}; available: {', '.join(sorted(_MODELS))}")
    model = _MODELS[name](num_landmarks, **kw)
    model.model_name = name
    return model


def _load_families() -> None:
    from facegen.trainer.models import hourglass, resnet  # noqa: F401  (registers on import)
