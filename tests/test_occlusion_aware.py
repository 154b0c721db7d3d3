"""Occlusion-aware losses: the per-point weights from `occluded_by` and the weighted losses (masked points
get no gradient, the others the gradient of the loss over them alone)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from facegen.generator.segmentation import OCCLUDER_ID, OCCLUDERS
from facegen.trainer.datasets import UNKNOWN_OCCLUDER
from facegen.trainer.losses import LandmarkLoss, occlusion_weights

# Every code, then the unknown one: full weight for none, self and out_of_frame (and unknown), W for the rest
CODES = np.array([*range(len(OCCLUDERS)), UNKNOWN_OCCLUDER], np.uint8)
FULL = {"none", "self", "out_of_frame"}


def test_weights_from_occluded_by():
    assert OCCLUDERS[-1] == "out_of_frame" and len(OCCLUDERS) == 12  # the codes this test spells out
    for w in (0.0, 0.25):
        x = w
        #            none self hair beard cloth frame lens mask hat hand obj  out  unknown
        expected = [1.0, 1.0, x, x, x, x, x, x, x, x, x, 1.0, 1.0]
        np.testing.assert_array_equal(occlusion_weights(CODES, w).numpy(), expected)
        got = occlusion_weights(torch.from_numpy(np.stack([CODES, CODES[::-1].copy()])), w)  # any shape, a tensor
        assert got.shape == (2, 13) and got.dtype == torch.float32
        np.testing.assert_array_equal(got[1].numpy(), expected[::-1])
    assert {OCCLUDERS[i] for i in range(len(OCCLUDERS)) if occlusion_weights(CODES, 0.0)[i] == 1} == FULL


def _v(t: torch.Tensor) -> float:
    return float(t.detach())


def _output(b, n, heatmaps, gen):
    """A model output whose landmarks (and heatmap logits) are leaves, so their gradients are the loss's."""
    out = {"landmarks": (torch.rand(b, n, 2, generator=gen) * 31).requires_grad_()}
    if heatmaps:
        out["heatmaps"] = [torch.randn(b, n, 8, 8, generator=gen).requires_grad_()]
        out["stride"] = 4
    return out


@pytest.mark.parametrize("coord,heatmap", [("l1", "kl"), ("wing", "mse"), ("rmse", "awing"), ("l1", None),
                                           ("wing", None), ("rmse", None)])
def test_masked_points_get_no_gradient_and_the_others_the_loss_over_them_alone(coord, heatmap):
    """Weight 0 at the points an occluder hides: zero gradient on their prediction (coordinates and heatmap
    logits); on the other points the loss and its gradient are those of the plain loss computed on the
    kept points only (the weights are normalised by their sum, so masking does not shrink the loss)."""
    gen = torch.Generator().manual_seed(0)
    b, n = 3, 10
    codes = np.zeros((b, n), np.uint8)
    hidden = [1, 4, 5, 8]  # the same points in every row, so "the kept points only" is a plain slice
    codes[:, hidden] = [OCCLUDER_ID["hand"], OCCLUDER_ID["hair"], OCCLUDER_ID["lens"], OCCLUDER_ID["facewear"]]
    codes[:, 2], codes[:, 3] = OCCLUDER_ID["self"], OCCLUDER_ID["out_of_frame"]
    codes[0, 0] = UNKNOWN_OCCLUDER
    keep = [i for i in range(n) if i not in hidden]
    weights = occlusion_weights(codes, 0.0)
    loss_fn = LandmarkLoss(coord, heatmap or "kl", heatmap_weight=1.0)
    target = torch.rand(b, n, 2, generator=gen) * 31
    out = _output(b, n, heatmap is not None, gen)
    leaves = [out["landmarks"], *out.get("heatmaps", [])]

    masked, parts = loss_fn(out, target, 32, None, weights)
    grads = torch.autograd.grad(masked, leaves)
    for g in grads:
        assert g[:, hidden].abs().max() == 0
        assert g[:, keep].abs().max() > 0

    sub = {**out, "landmarks": out["landmarks"][:, keep]}
    if heatmap:
        sub["heatmaps"] = [out["heatmaps"][0][:, keep]]
    alone, parts_alone = loss_fn(sub, target[:, keep], 32, None)
    assert _v(masked) == pytest.approx(_v(alone), rel=1e-5)
    assert parts.keys() == parts_alone.keys() == ({"coord", "heatmap"} if heatmap else {"coord"})
    for g, g_alone in zip(grads, torch.autograd.grad(alone, leaves)):
        torch.testing.assert_close(g[:, keep], g_alone[:, keep], rtol=1e-5, atol=1e-8)

    # weights normalised by their sum: scaling them all changes nothing, all-ones is the plain loss
    assert _v(loss_fn(out, target, 32, None, weights * 3)[0]) == pytest.approx(_v(masked), rel=1e-5)
    assert _v(loss_fn(out, target, 32, None, torch.ones(b, n))[0]) == \
        pytest.approx(_v(loss_fn(out, target, 32, None)[0]), rel=1e-5)
    # a row-dependent mask: still no gradient where the weight is 0
    codes2 = np.zeros((b, n), np.uint8)
    codes2[0, 7], codes2[2, [0, 9]] = OCCLUDER_ID["clothing"], OCCLUDER_ID["object"]
    w2 = occlusion_weights(codes2)
    for g in torch.autograd.grad(loss_fn(out, target, 32, None, w2)[0], leaves):
        assert g[w2 == 0].abs().max() == 0 and g[w2 == 1].abs().max() > 0
