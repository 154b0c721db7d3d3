"""Label adapters: a model's own points (dense, or a synthetic convention) -> iBUG-68 as annotators place them.

Synthetic labels are exact surface points; human iBUG-68 labels are not (the jaw follows the visible
outline, eyebrows and lips are placed by eye). Picking the spec's nearest point for each iBUG point (the
spec's correspondence, `SpecInfo.correspondence(convention)`) leaves that systematic gap. An adapter learns
it from real labelled faces, on the model's output in crop pixels:

- `mlp`: the L predicted points, normalised to the crop ([-1, 1] across it), through a small MLP whose
  output is a residual added to the nearest-subset points. Its last layer starts at zero, so before
  training the adapter IS the nearest subset, bit for bit.
- `unet`: a small U-Net on the model's last heatmaps (heatmap models: hourglass, resnet*_heatmap) that outputs 68 heatmap logits,
  decoded with the model's own soft-argmax. The 68 logits are the correspondence channels of the model's
  logits (a fixed selection) plus the U-Net's output, whose last layer starts at zero: before training it
  decodes exactly to the nearest subset too. The U-Net reads the maps as softmax probabilities scaled to
  peak 1, not raw logits: softmax ignores a per-map offset of the logits, so raw logits carry a nuisance
  the network would have to learn to ignore, and their range depends on how sharp the model's maps are.

Used at test time (`facegen adapt`: frozen model, adapter fitted on real faces, trainer/adapt.py) and at
training time (`facegen train --adapter`: real labels supervise the model through the adapter, trained
jointly). Checkpoints store an adapter as a record (`adapter_record`), rebuilt by `adapter_from_record`.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from facegen.errors import FacegenError

NUM_IBUG = 68


def _check_index(index: Sequence[int], num_points: int) -> list[int]:
    index = [int(i) for i in np.asarray(index).reshape(-1)]
    bad = [i for i in index if not 0 <= i < num_points]
    if len(index) != NUM_IBUG or bad:
        raise FacegenError(f"adapter: the correspondence must give {NUM_IBUG} point indices in [0, {num_points}), "
                           f"got {len(index)}" + (f", {bad[0]} among them" if bad else ""))
    return index


class MLPAdapter(nn.Module):
    """Nearest-subset points + an MLP residual of all L points (module docstring)."""
    name = "mlp"
    needs_heatmaps = False

    def __init__(self, num_points: int, index: Sequence[int], input_size: int, hidden: int = 256, layers: int = 2):
        super().__init__()
        index = _check_index(index, num_points)
        # everything needed to rebuild it from a checkpoint without the model or its spec
        self.kwargs = {"num_points": num_points, "index": index, "input_size": input_size, "hidden": hidden,
                       "layers": layers}
        self.input_size = input_size
        self.register_buffer("index", torch.as_tensor(index, dtype=torch.long), persistent=False)
        dims = [2 * num_points] + [hidden] * layers
        body: list[nn.Module] = []
        for a, b in zip(dims[:-1], dims[1:]):
            body += [nn.Linear(a, b), nn.GELU()]
        self.body = nn.Sequential(*body)
        self.out = nn.Linear(dims[-1], 2 * NUM_IBUG)
        nn.init.zeros_(self.out.weight)  # residual 0: exactly the nearest subset before training
        nn.init.zeros_(self.out.bias)

    def forward(self, output: dict) -> dict:
        pts = output["landmarks"].float()
        s = self.input_size
        x = ((pts + 0.5) / s * 2 - 1).flatten(1)  # the crop spans [-0.5, S - 0.5] px (pixel centres at integers)
        residual = self.out(self.body(x)).view(len(pts), NUM_IBUG, 2) * (s / 2)  # normalised -> px
        return {"landmarks": pts[:, self.index] + residual}


def _block(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, 1, 1), nn.ReLU(inplace=True),
                         nn.Conv2d(cout, cout, 3, 1, 1), nn.ReLU(inplace=True))


class UNetAdapter(nn.Module):
    """68 heatmap logits = the model's correspondence channels + a U-Net residual (module docstring)."""
    name = "unet"
    needs_heatmaps = True

    def __init__(self, num_points: int, index: Sequence[int], input_size: int, stride: int = 4, beta: float = 1.0,
                 channels: int = 32, levels: int = 2):
        super().__init__()
        index = _check_index(index, num_points)
        self.kwargs = {"num_points": num_points, "index": index, "input_size": input_size, "stride": stride,
                       "beta": beta, "channels": channels, "levels": levels}
        self.stride, self.beta = stride, beta
        self.register_buffer("index", torch.as_tensor(index, dtype=torch.long), persistent=False)
        widths = [channels * 2 ** i for i in range(levels + 1)]
        self.enc = nn.ModuleList([_block(num_points, widths[0])] +
                                 [_block(widths[i], widths[i + 1]) for i in range(levels)])
        self.dec = nn.ModuleList(_block(widths[i + 1] + widths[i], widths[i]) for i in reversed(range(levels)))
        self.head = nn.Conv2d(widths[0], NUM_IBUG, 1)
        nn.init.zeros_(self.head.weight)  # residual 0: exactly the selected channels before training
        nn.init.zeros_(self.head.bias)

    def decode(self, heatmaps: torch.Tensor) -> torch.Tensor:
        """The hourglass decoder (soft-argmax at the model's beta and stride): logits -> crop pixels."""
        from facegen.trainer.models.hourglass import soft_argmax

        return (soft_argmax(heatmaps, self.beta) + 0.5) * self.stride - 0.5

    def forward(self, output: dict) -> dict:
        if not output.get("heatmaps"):
            raise FacegenError("the unet adapter reads heatmaps, and this model outputs coordinates only; "
                               "use --adapter mlp (or a heatmap model: resnet18_heatmap, hourglass)")
        h = output["heatmaps"][-1].float()
        b, l, hh, ww = h.shape
        p = torch.softmax(h.reshape(b, l, -1) * self.beta, -1).reshape(b, l, hh, ww)
        x = p / p.amax((-2, -1), keepdim=True).clamp_min(1e-12)  # peak 1, offset-free (module docstring)
        skips = []
        for i, enc in enumerate(self.enc):
            x = enc(x if i == 0 else F.max_pool2d(x, 2, ceil_mode=True))
            skips.append(x)
        for dec, skip in zip(self.dec, reversed(skips[:-1])):
            x = dec(torch.cat([F.interpolate(x, size=skip.shape[-2:], mode="nearest"), skip], 1))
        logits = h[:, self.index] + self.head(x)
        return {"landmarks": self.decode(logits), "heatmaps": [logits], "stride": self.stride}


ADAPTERS: dict[str, type[nn.Module]] = {"mlp": MLPAdapter, "unet": UNetAdapter}


def list_adapters() -> list[str]:
    return list(ADAPTERS)


def check_adapter_name(name: str) -> str:
    if name not in ADAPTERS:
        raise FacegenError(f"--adapter {name!r}: unknown; choose one of {', '.join(ADAPTERS)}")
    return name


def create_adapter(name: str, num_points: int, index: Sequence[int], input_size: int,
                   model: nn.Module | None = None, **kw) -> nn.Module:
    """A fresh adapter for a model with `num_points` points whose nearest-subset correspondence is `index`
    (68 indices; `SpecInfo.correspondence(convention)` for the real labels' jaw convention). `unet` takes
    the model's stride and soft-argmax beta, and refuses a model without heatmaps."""
    cls = ADAPTERS[check_adapter_name(name)]
    if cls.needs_heatmaps:
        if model is None or getattr(model, "stride", None) is None or not hasattr(model, "decode"):
            what = getattr(model, "model_name", type(model).__name__)
            raise FacegenError(f"--adapter {name} works on heatmaps and model {what} regresses coordinates; "
                               "use --adapter mlp, or train a heatmap model (resnet18_heatmap, hourglass)")
        kw = {"stride": int(model.stride), "beta": float(getattr(model, "beta", 1.0)), **kw}
    return cls(num_points, index, input_size, **kw)


def adapter_record(adapter: nn.Module, convention: str, fitted_on: dict | None = None) -> dict:
    """What a checkpoint stores under `adapter`: enough to rebuild it, and where it was fitted."""
    return {"name": adapter.name, "kwargs": dict(adapter.kwargs),
            "state": {k: v.detach().cpu() for k, v in adapter.state_dict().items()},
            "convention": convention, "fitted_on": fitted_on or {}}


def adapter_from_record(record: dict, source: str = "checkpoint") -> nn.Module:
    try:
        adapter = ADAPTERS[check_adapter_name(record["name"])](**record["kwargs"])
        adapter.load_state_dict(record["state"])
    except (KeyError, TypeError, RuntimeError) as e:
        raise FacegenError(f"{source}: its adapter cannot be rebuilt ({type(e).__name__}: {e}); "
                           "fit it again with facegen adapt") from None
    return adapter


def adapter_info(record: dict) -> dict:
    """The record without its weights (for reports and predictions.json)."""
    return {k: record.get(k) for k in ("name", "convention", "fitted_on")}
