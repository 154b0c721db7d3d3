"""The recipe `facegen train` uses when no model flags are given: the winner of the recipe study
(docs/recipe-study.md, bench/recipe_study.py), the lowest error on real faces for a fixed CPU budget without
losing on held-out renders. One place, read by TrainConfig and the CLI's defaults (no torch import here, so
`facegen train --help` stays fast).
"""

from __future__ import annotations

MODEL = "resnet18_heatmap"  # ResNet-18 trunk + deconvolution head, heatmaps decoded by soft-argmax
INPUT_SIZE = 128            # px: at a fixed budget, more steps beat more pixels on this machine
BATCH_SIZE = 16
COORD_LOSS = "l1"           # on the decoded points, beside the heatmap loss
HEATMAP_LOSS = "kl"         # the softmax heatmap against a normalised gaussian
TEST_FLIP = True            # average the crop and its mirror at prediction time (free in training)
