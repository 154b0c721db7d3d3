"""`mixed`: every batch holds a set share of real crops (`--real-share`) beside synthetic ones, in one
forward pass (so batch norm sees both). Synthetic crops supervise all the model's points; real crops
supervise the model's iBUG-68 points (the spec's correspondence in the real labels' jaw convention).
Each crop counts equally in the loss. With --occlusion-aware only the synthetic rows are weighted by what
hides their points (real labels do not say)."""

import torch

from facegen.trainer.strategies import Strategy, register_strategy


def loss(run, batches):
    xs, ys = run.inputs(batches["synthetic"])
    xr, yr = run.inputs(batches["real"])
    out = run.forward(torch.cat([xs, xr]))
    ns, nr = len(xs), len(xr)
    loss_s, parts_s = run.supervised(run.rows(out, slice(0, ns)), ys, batches["synthetic"])
    loss_r, parts_r = run.supervised_real(run.rows(out, slice(ns, ns + nr)), yr)
    total = (ns * loss_s + nr * loss_r) / (ns + nr)
    return total, {**{f"syn_{k}": v for k, v in parts_s.items()}, **{f"real_{k}": v for k, v in parts_r.items()}}


STRATEGY = register_strategy(Strategy(
    name="mixed", summary="synthetic and real crops in every batch (--real-share of them real)",
    sources=("synthetic", "real"), loss=loss))
