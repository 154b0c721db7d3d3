from __future__ import annotations

import pytest
import torch

from facegen.trainer.losses import LandmarkLoss, adaptive_wing, gaussian_heatmaps, rmse, wing
from facegen.trainer.models import create_model, list_models
from facegen.trainer.models.hourglass import soft_argmax


@pytest.mark.parametrize("name,kw,L,size,chans", [
    ("hourglass", dict(stacks=2, channels=32, depth=3), 68, 64, 3),
    ("hourglass", dict(stacks=1, channels=32, depth=2), 490, 64, 3),
    ("resnet18", dict(width=16), 68, 64, 1),
    ("resnet50", dict(width=8), 243, 64, 3),
    ("resnet18_heatmap", dict(width=8, head_channels=16), 68, 64, 3),
    ("resnet50_heatmap", dict(width=8, head_channels=16), 98, 64, 1),
])
def test_models_any_landmark_count(name, kw, L, size, chans):
    torch.manual_seed(0)
    m = create_model(name, L, in_chans=chans, **kw)
    out = m(torch.rand(2, chans, size, size))
    assert out["landmarks"].shape == (2, L, 2)
    loss, parts = LandmarkLoss()(out, torch.rand(2, L, 2) * size, size, m)
    loss.backward()
    assert torch.isfinite(loss) and "coord" in parts
    assert all(p.grad is not None for p in m.parameters() if p.requires_grad)


def test_registry():
    assert {"hourglass", "resnet18", "resnet50", "resnet18_heatmap", "resnet50_heatmap"} <= set(list_models())
    with pytest.raises(ValueError, match="unknown model"):
        create_model("vit-huge", 68)


def test_soft_argmax_is_sub_pixel():
    pts = torch.tensor([[[10.3, 20.7], [3.0, 4.5]]])
    logits = torch.log(gaussian_heatmaps(pts, 32, 32, sigma=1.5) + 1e-30)
    est = soft_argmax(logits)
    assert (est - pts).abs().max() < 0.05


def test_hourglass_decoder_maps_cells_to_input_pixels():
    m = create_model("hourglass", 1, stacks=1, channels=16, depth=1)
    target_px = torch.tensor([[[37.0, 21.0]]])  # input pixels; stride 4 -> cell (8.875, 4.875)
    h = gaussian_heatmaps((target_px + 0.5) / 4 - 0.5, 16, 16, sigma=1.0)
    assert (m.decode(torch.log(h + 1e-30)) - target_px).abs().max() < 0.05


def test_resnet_heatmap_head_is_at_a_quarter_of_the_input_and_decodes_like_the_hourglass():
    m = create_model("resnet18_heatmap", 3, width=8, head_channels=16).eval()
    out = m(torch.rand(1, 3, 96, 96))
    assert out["heatmaps"][0].shape == (1, 3, 24, 24) and out["stride"] == 4
    assert torch.allclose(out["landmarks"], m.decode(out["heatmaps"][0]))
    target_px = torch.tensor([[[37.0, 21.0]]])
    h = gaussian_heatmaps((target_px + 0.5) / 4 - 0.5, 24, 24, sigma=1.0)
    assert (m.decode(torch.log(h + 1e-30)) - target_px).abs().max() < 0.05


def test_regression_checkpoints_keep_their_parameter_names():
    """The ResNet trunk is shared by both heads; the regressor's parameters keep the names old checkpoints use."""
    names = set(create_model("resnet18", 68, width=8).state_dict())
    assert {"stem.0.weight", "stages.0.0.conv1.weight", "stages.3.1.bn2.running_var", "head.weight"} <= names


def test_heatmap_loss_is_minimal_at_the_matching_logits():
    m = create_model("hourglass", 2, stacks=1, channels=16, depth=1)
    target = torch.tensor([[[30.0, 22.0], [27.5, 40.2]]])  # away from the border (truncated gaussians)
    cells = (target + 0.5) / 4 - 0.5
    good = torch.log(gaussian_heatmaps(cells, 16, 16, 1.5) + 1e-30)
    bad = torch.log(gaussian_heatmaps(cells + 2, 16, 16, 1.5) + 1e-30)
    out = lambda h: {"heatmaps": [h], "landmarks": m.decode(h), "stride": 4}
    for kind in ("kl", "mse", "awing"):
        loss = LandmarkLoss(heatmap=kind, heatmap_weight=1.0)
        lg, pg = loss(out(good), target, 64, m)
        lb, pb = loss(out(bad), target, 64, m)
        assert pg["heatmap"] < 1e-5 and pg["coord"] < 0.05 and lb > lg, kind


def test_coordinate_and_heatmap_losses_zero_at_target():
    x = torch.rand(3, 5, 2)
    assert wing(x, x) == 0 and rmse(x, x) < 1e-5
    hm = torch.rand(2, 3, 8, 8)
    assert adaptive_wing(hm, hm) == 0
    assert wing(x + 20, x) > wing(x + 1, x) > 0
