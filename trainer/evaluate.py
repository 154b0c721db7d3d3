"""Predict on 300-W (or any .pts folder) with a checkpoint, then score: `facegen eval`.

Predicting and scoring stay separate: predictions are written as a `.pts` folder (and JSON) first, then
`score.py` compares them with the ground truth exactly as `facegen score` would.

Dense specs are scored on iBUG-68 through `to_ibug68`, the seam where a learned adapter can plug in: any
object with `__call__(pred (N, L, 2)) -> (N, 68, 2)` can be passed as `adapter`.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Callable

import numpy as np

from facegen.errors import FacegenError
from facegen.trainer.annotations import LandmarkSet, derive_subsets, w300_group, write_pts
from facegen.trainer.datasets import AFLW2000, PtsFolder, Real300W
from facegen.trainer.predictor import Predictor, SpecInfo
from facegen.trainer.score import score, write_report
from facegen.trainer.transforms import landmark_box

Adapter = Callable[[np.ndarray], np.ndarray]


class NearestSubsetAdapter:
    """iBUG-68 from a spec's points by the spec's correspondence: `ibug68` indices, or `ibug68_3d` for a
    dataset that labels the jaw on fixed surface points (AFLW2000-3D)."""

    def __init__(self, spec: SpecInfo, convention: str = "2d"):
        index = spec.correspondence(convention)
        if index is None:
            raise FacegenError(f"spec {spec.name!r} has {len(spec.flip_map)} points and no iBUG-68 correspondence; "
                               "it cannot be scored on iBUG-68 labels")
        self.index = index

    def __call__(self, pred: np.ndarray) -> np.ndarray:
        return np.asarray(pred)[..., self.index, :]


def to_ibug68(pred: np.ndarray, spec: SpecInfo, adapter: Adapter | None = None, convention: str = "2d") -> np.ndarray:
    """Predictions in a spec's points (..., L, 2) -> iBUG-68 (..., 68, 2). The default adapter takes the
    spec's point for each iBUG point in the dataset's jaw `convention`; a learned adapter replaces it here."""
    return (adapter or NearestSubsetAdapter(spec, convention))(pred)


DATASETS = ("300w", "aflw2000", "folder")
# What each benchmark reports by default: 300-W normalises by the eye corners (and more), AFLW2000-3D
# by the ground-truth landmark box, per yaw bin and their balanced mean (3DDFA's protocol).
PROTOCOL_NORMS = {"aflw2000": ("box",)}


def open_eval_dataset(dataset: str, root: Path | str, split: str = "full") -> PtsFolder | AFLW2000:
    if dataset == "300w":
        return Real300W(root, split)
    if dataset == "aflw2000":
        return AFLW2000(root)
    if dataset == "folder":
        return PtsFolder(root)
    raise FacegenError(f"unknown dataset {dataset!r}; use one of {', '.join(DATASETS)}")


def predict_folder(predictor: Predictor, ds: PtsFolder, box: str = "gt") -> np.ndarray:
    """(N, L, 2) predictions for every image; the crop comes from the ground-truth landmark box (300-W
    protocol) or a face detector (`box='detector'`, falls back to the GT box when nothing is found)."""
    images, boxes = [], []
    for i in range(len(ds)):
        raw = ds.raw(i)
        b = landmark_box(raw["landmarks"])
        if box == "detector":
            from facegen.trainer.predict import best_face_for
            b = best_face_for(raw["image"], b)
        images.append(raw["image"])
        boxes.append(b)
    return predictor.predict(images, boxes)


def ground_truth_set(ds: PtsFolder | AFLW2000) -> LandmarkSet:
    """The labels as the scorer reads them, with the dataset's subsets (300-W groups or yaw bins)."""
    groups = ds.subsets() if hasattr(ds, "subsets") else {}
    if not groups:
        for i, n in enumerate(ds.names):
            g = w300_group(n)
            if g:
                groups.setdefault(g, []).append(i)
    return LandmarkSet(names=list(ds.names), points=ds.ground_truth().astype(np.float64),
                       subsets=derive_subsets(groups, len(ds)), source=str(ds.root))


def evaluate(predictor: Predictor, ds: PtsFolder, out: Path | str | None = None, box: str = "gt",
             adapter: Adapter | None = None, **score_kw) -> dict:
    """Predict, map to iBUG-68, write predictions (`predictions/*.pts`, `predictions.json`), score.
    The report's `jaw` says which correspondence was used and whether the spec's jaw matches the labels'."""
    convention = ds.jaw_convention
    pred = to_ibug68(predict_folder(predictor, ds, box), predictor.spec, adapter, convention)
    pred_set = LandmarkSet(names=list(ds.names), points=pred.astype(np.float64), source="predictions")
    gt = ground_truth_set(ds)
    if convention == "3d":  # AFLW2000-3D (and 300W-LP) are scored by the box, as the field reports them
        score_kw.setdefault("norms", PROTOCOL_NORMS["aflw2000"])
    report = score(pred_set, gt, **score_kw)
    spec_jaw = predictor.spec.jaw_convention()
    report["jaw"] = {"labels": convention, "spec": spec_jaw,
                     "correspondence": "ibug68_3d" if convention == "3d" else "ibug68"}
    if out is not None:
        out = Path(out)
        for n, p in zip(ds.names, pred):
            write_pts(out / "predictions" / f"{n}.pts", p)
        for name, points in (("predictions", pred), ("ground_truth", gt.points)):
            (out / f"{name}.json").write_text(json.dumps(
                [{"image": n, "landmarks": p.tolist()} for n, p in zip(ds.names, points)]))
        write_report(report, gt, out)
        # with ground_truth.json, `facegen score --subsets subsets.json` reproduces this report
        (out / "subsets.json").write_text(json.dumps(gt.subsets))
    return report
