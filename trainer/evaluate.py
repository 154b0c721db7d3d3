"""Predict on 300-W, AFLW2000-3D, any .pts folder or rendered shards with a checkpoint, then score: `facegen eval`.

Predicting and scoring stay separate: predictions are written as a `.pts` folder (and JSON) first, then
`score.py` compares them with the ground truth exactly as `facegen score` would.

Dense specs are scored on iBUG-68 through `to_ibug68`: the nearest subset by default, or any object with
`__call__(pred (N, L, 2)) -> (N, 68, 2)` passed as `adapter`. A checkpoint with a learned label adapter
(trainer/adapters.py, `facegen adapt` or `facegen train --adapter`) is scored both ways, side by side:
`report["modes"]["nearest"]` and `report["modes"]["adapter"]` (the top-level report stays the nearest one).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Callable

import numpy as np

from facegen.errors import FacegenError
from facegen.trainer.annotations import LandmarkSet, derive_subsets, w300_group, write_pts
from facegen.trainer.datasets import AFLW2000, PtsFolder, Real300W, ShardTestSet
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


DATASETS = ("300w", "aflw2000", "folder", "shards")


def protocol_norm(jaw_convention: str) -> str:
    """The normalisation a dataset's results are reported in: 3D-convention labels (AFLW2000-3D, 300W-LP)
    by the ground-truth landmark box, per yaw bin and their balanced mean (3DDFA's protocol); 300-W-style
    labels by the outer eye corners."""
    return "box" if jaw_convention == "3d" else "inter_ocular"


def open_eval_dataset(dataset: str, root: Path | str, split: str = "full") -> PtsFolder | AFLW2000 | ShardTestSet:
    if dataset == "shards":
        return ShardTestSet(root)
    if dataset == "300w":
        return Real300W(root, split)
    if dataset == "aflw2000":
        return AFLW2000(root)
    if dataset == "folder":
        return PtsFolder(root)
    raise FacegenError(f"unknown dataset {dataset!r}; use one of {', '.join(DATASETS)}")


def _images_and_boxes(ds: PtsFolder, box: str = "gt",
                      detector: str = "auto") -> tuple[list[np.ndarray], list[np.ndarray]]:
    images, boxes = [], []
    det = None
    if box == "detector":
        from facegen.trainer.predict import make_detector
        det = make_detector(detector)
    for i in range(len(ds)):
        raw = ds.raw(i)
        b = landmark_box(raw["landmarks"])
        if box == "detector":
            from facegen.trainer.predict import best_face_for
            b = best_face_for(raw["image"], b, det)
        images.append(raw["image"])
        boxes.append(b)
    return images, boxes


def predict_folder(predictor: Predictor, ds: PtsFolder, box: str = "gt") -> np.ndarray:
    """(N, L, 2) predictions for every image; the crop comes from the ground-truth landmark box (300-W
    protocol) or a face detector (`box='detector'`, falls back to the GT box when nothing is found)."""
    return predictor.predict(*_images_and_boxes(ds, box))


def ground_truth_set(ds: PtsFolder | AFLW2000) -> LandmarkSet:
    """The labels as the scorer reads them, with the dataset's subsets (300-W groups or yaw bins)."""
    groups = ds.subsets() if hasattr(ds, "subsets") else {}
    if not groups:
        for i, n in enumerate(ds.names):
            g = w300_group(n)
            if g:
                groups.setdefault(g, []).append(i)
    # point groups and visibility where the dataset knows them (renders); 68-point labels get iBUG-68's regions
    point_groups = ds.groups() if hasattr(ds, "groups") else {}
    visibility = ds.visibility() if hasattr(ds, "visibility") else None
    return LandmarkSet(names=list(ds.names), points=ds.ground_truth().astype(np.float64),
                       subsets=derive_subsets(groups, len(ds)), source=str(ds.root), groups=point_groups,
                       visibility=visibility)


def shard_norms(ds: ShardTestSet) -> tuple[str, ...]:
    """Renders are reported by the landmark box, any spec; by the eyes too when the points are iBUG-68."""
    return ("box", "inter_ocular", "inter_pupil") if ds.is_ibug68() else ("box",)


def evaluate(predictor: Predictor, ds: PtsFolder, out: Path | str | None = None, box: str = "gt",
             adapter: Adapter | None = None, compare: str = "auto", detector: str = "auto", **score_kw) -> dict:
    """Predict, map to iBUG-68, write predictions (`predictions/*.pts`, `predictions.json`), score.

    The report is the nearest-subset one (or the given `adapter`'s), as before; `report["modes"]` holds one
    report per evaluation mode: `nearest` always and, when the predictor has a learned adapter (and no
    `adapter` is given), `adapter`, from the same forward pass and scored the same way. With `out`, the
    adapter mode's files go to `out/adapter/` (`facegen score -p out/adapter/predictions.json -g
    out/ground_truth.json --subsets out/subsets.json` reproduces it) and `modes.md` puts both side by side.
    The report's `jaw` says which correspondence was used and whether the spec's jaw matches the labels'.
    With `box="detector"`, faces are cropped by `detector` (a name from predict.DETECTORS; auto = the best
    installed) and `report["detector"]` names the one that ran.

    Shards (`ShardTestSet`) are compared in the checkpoint's own points when they share its landmark names,
    else on iBUG-68 on both sides (`compare`: auto, spec or ibug68); `report["compared"]` says which."""
    in_spec = False
    if isinstance(ds, ShardTestSet):
        ds = ds.compared_with(predictor.spec, compare)
        in_spec = ds.compared == "spec"
        score_kw.setdefault("norms", shard_norms(ds))
    convention = ds.jaw_convention
    images, boxes = _images_and_boxes(ds, box, detector)
    learned = adapter is None and predictor.adapter is not None and not in_spec  # the adapter gives iBUG-68
    raw = predictor.predict_modes(images, boxes, adapter=learned)
    preds = {"nearest": raw["points"] if in_spec else to_ibug68(raw["points"], predictor.spec, adapter, convention)}
    if learned:
        preds["adapter"] = raw["adapter"]
    gt = ground_truth_set(ds)
    if convention == "3d":  # only the box; 300-W-style sets keep every normalisation by default
        score_kw.setdefault("norms", (protocol_norm(convention),))
    modes = {}
    for mode, pred in preds.items():
        pred_set = LandmarkSet(names=list(ds.names), points=pred.astype(np.float64), source=f"predictions ({mode})")
        modes[mode] = score(pred_set, gt, **score_kw)
    modes["nearest"]["jaw"] = {"labels": convention, "spec": predictor.spec.jaw_convention(),
                               "correspondence": "ibug68_3d" if convention == "3d" else "ibug68"}
    if isinstance(ds, ShardTestSet):
        modes["nearest"]["compared"] = {"points": ds.compared, "spec": ds.spec.name, "count": len(ds.points)}
        if in_spec:  # the same points on both sides: no correspondence involved
            modes["nearest"]["jaw"] = {"labels": convention, "spec": convention, "correspondence": None}
    if learned:
        info = predictor.adapter_info
        modes["adapter"]["jaw"] = {"labels": convention, "adapter": info.get("convention")}
        modes["adapter"]["adapter"] = info
    report = {**modes["nearest"], "modes": modes}
    if box == "detector":
        from facegen.trainer.predict import resolve_detector
        report["detector"] = resolve_detector(detector)
    if out is not None:
        out = Path(out)
        for mode, pred in preds.items():
            where = out if mode == "nearest" else out / mode
            for n, p in zip(ds.names, pred):
                write_pts(where / "predictions" / f"{n}.pts", p)
            (where / "predictions.json").write_text(json.dumps(
                [{"image": n, "landmarks": p.tolist()} for n, p in zip(ds.names, pred)]))
            if mode != "nearest":
                write_report(modes[mode], gt, where)
        (out / "ground_truth.json").write_text(json.dumps(
            [{"image": n, "landmarks": p.tolist()} for n, p in zip(ds.names, gt.points)]))
        write_report(report, gt, out)
        # with ground_truth.json, `facegen score --subsets subsets.json` reproduces this report
        (out / "subsets.json").write_text(json.dumps(gt.subsets))
        if learned:
            (out / "modes.md").write_text(modes_table(report))
    return report


def modes_table(report: dict) -> str:
    """The evaluation modes side by side: NME under each normalisation, then AUC / FR at the first
    threshold under the first normalisation, one column per mode."""
    modes = report.get("modes") or {"nearest": report}
    names = list(modes)
    first = modes[names[0]]
    norms = list(first["metrics"])
    t = first["thresholds"][0]
    head = ["subset", "n"] + [f"NME {n} % {m}" for n in norms for m in names]
    head += [f"{k}@{t:g} % {m}" for k in ("AUC", "FR") for m in names]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for subset, row0 in first["metrics"][norms[0]].items():
        row = [subset, str(row0["count"])]
        row += [f"{modes[m]['metrics'][n][subset]['nme']:.3f}" for n in norms for m in names]
        row += [f"{modes[m]['metrics'][norms[0]][subset][f'{k.lower()}@{t:g}']:.2f}"
                for k in ("AUC", "FR") for m in names]
        lines.append("| " + " | ".join(row) + " |")
    return ("\n".join(lines) + f"\n\nnearest: the spec's nearest point for each iBUG-68 point; adapter: the "
            f"checkpoint's learned label adapter. AUC and FR under {norms[0]} normalisation.\n")
