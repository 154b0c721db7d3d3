"""Landmark detector models: one file per family, a tiny registry and one factory (timm style).

Every model maps images (B, C, S, S) float in [0, 1] to a dict with `landmarks` (B, L, 2) in input pixels
(project convention: pixel centres at integers) and, for heatmap models, `heatmaps` (a list, one per stack).
Each also returns `features`, what its landmark head reads (`feature_dim` channels), and `task_head(features,
size)` gives the head's output from them: domain adaptation (trainer/strategies/dann.py, daln.py) needs both.
"""

from __future__ import annotations

import inspect
import math
from typing import Any, Callable

import torch.nn as nn

_MODELS: dict[str, Callable[..., nn.Module]] = {}


def register_model(fn: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
    """Decorator: make `fn(num_landmarks, **kw) -> nn.Module` available to create_model by its name."""
    _MODELS[fn.__name__] = fn
    return fn


def list_models() -> list[str]:
    _load_families()
    return sorted(_MODELS)


def _factory(name: str) -> Callable[..., nn.Module]:
    _load_families()
    if name not in _MODELS:
        raise ValueError(f"unknown model {name!r}; available: {', '.join(sorted(_MODELS))}")
    return _MODELS[name]


def _defaults(fn: Callable) -> dict[str, Any]:
    return {p.name: p.default for p in inspect.signature(fn).parameters.values()
            if p.default is not p.empty and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)}


def model_keywords(name: str) -> dict[str, Any]:
    """The keyword arguments model `name` accepts, with their defaults: the factory's own and, when the factory
    passes `**kw` on, those of the model class it builds (the nn.Module its code names whose first argument
    is `num_landmarks`)."""
    fn = _factory(name)
    accepted = _defaults(fn)
    if any(p.kind is p.VAR_KEYWORD for p in inspect.signature(fn).parameters.values()):
        for ref in fn.__code__.co_names:
            cls = fn.__globals__.get(ref)
            if (isinstance(cls, type) and issubclass(cls, nn.Module)
                    and next(iter(inspect.signature(cls).parameters), None) == "num_landmarks"):
                accepted = {**_defaults(cls), **accepted}
                break
    return accepted


def check_model_kwargs(name: str, kw: dict[str, Any]) -> None:
    """ValueError naming the first keyword `name` does not accept, or whose value does not fit its default:
    same type (an int where the default is a float is fine) and, where the default is a positive number,
    a positive finite value (sizes, counts, scales)."""
    accepted = model_keywords(name)
    for k, v in kw.items():
        if k not in accepted:
            raise ValueError(f"model {name!r} takes no keyword {k!r}; it accepts "
                             + ", ".join(f"{a}={d!r}" for a, d in accepted.items()))
        d = accepted[k]
        number = isinstance(v, (int, float)) and not isinstance(v, bool)
        fits = (isinstance(v, bool) if isinstance(d, bool) else
                number and isinstance(v, int) if isinstance(d, int) else
                number if isinstance(d, float) else True)
        if not fits:
            raise ValueError(f"model {name!r} keyword {k!r} takes {type(d).__name__} values (default {d!r}), "
                             f"not {v!r}")
        if isinstance(d, (int, float)) and not isinstance(d, bool) and d > 0 and not 0 < v < math.inf:
            raise ValueError(f"model {name!r} keyword {k!r} must be > 0 and finite (default {d!r}), not {v!r}")


def create_model(name: str, num_landmarks: int, **kw) -> nn.Module:
    """The single factory: `create_model('hourglass', 68)`, `create_model('resnet18', 490, in_chans=1)`."""
    check_model_kwargs(name, kw)
    model = _MODELS[name](num_landmarks, **kw)
    model.model_name = name
    return model


def _load_families() -> None:
    from facegen.trainer.models import hourglass, resnet  # noqa: F401  (registers on import)
