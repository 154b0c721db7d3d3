"""Landmark metrics: NME under the usual normalisations, CED, AUC and failure rate.

Pure NumPy; knows nothing of models or files (the scorer in `score.py` reads files and calls these).
All errors here are fractions (0.08 = 8 %); the scorer prints percentages like the literature.

Conventions of the field (300-W, iBUG-68 order, 0-based indices):
- inter-ocular: distance between the outer eye corners, points 36 and 45;
- inter-pupil: distance between the eye centres, the means of points 36-41 and 42-47;
- box: sqrt(w * h) of the ground-truth landmark box (the 300-W private-set protocol).
FR is the share of images whose NME exceeds the threshold. AUC comes in two flavours, because published
numbers depend on the integration:
- "spiga" (default; reproduces SPIGA's released 300-W numbers): a 10000-bin histogram of the errors between
  their min and max, cumulative counts placed at the bins' left edges, Simpson's rule up to the threshold,
  divided by the threshold, plus the flat tail when every error is below the threshold. Placing counts at
  left edges shifts the curve by one bin, so it reads ~0.005 points higher than the exact curve. When the
  errors start at 0 the raw formula can exceed 1: Simpson's parabolas overshoot the CED's step at 0 (and
  numpy's histogram spans [-0.5, 0.5] when every error is 0), so a perfect prediction reads 100.04 %.
  `auc_fr` clips both methods to at most 1 (a perfect prediction scores exactly 100 %); the clip never
  touches a published number, all well below 100 %, and `_auc_histogram` keeps SPIGA's formula unclipped.
- "ced": the exact CED sampled every `step` (1e-4) on [0, threshold], trapezoid rule, divided by the
  threshold (ADNet / STAR style code).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

NORMALISATIONS = ("inter_ocular", "inter_pupil", "box")
_ALIASES = {"io": "inter_ocular", "corners": "inter_ocular", "ip": "inter_pupil", "pupils": "inter_pupil",
            "lnd_bbox": "box", "bbox": "box"}


def canonical_norm(norm: str) -> str:
    """Accept short names (io, ip, box) and SPIGA's (corners, pupils, lnd_bbox)."""
    name = _ALIASES.get(norm, norm)
    if name not in NORMALISATIONS:
        raise ValueError(f"unknown normalisation {norm!r}; choose one of {', '.join(NORMALISATIONS)}")
    return name


def normaliser(gt: np.ndarray, norm: str = "inter_ocular") -> np.ndarray:
    """Per-image normalising distance for ground truth (N, 68, 2) (or (68, 2) -> scalar array)."""
    gt = np.asarray(gt, np.float64)
    single = gt.ndim == 2
    gt = gt[None] if single else gt
    norm = canonical_norm(norm)
    if norm != "box" and gt.shape[1] != 68:
        raise ValueError(f"{norm} normalisation needs iBUG-68 landmarks, got {gt.shape[1]} points")
    if norm == "inter_ocular":
        d = np.linalg.norm(gt[:, 36] - gt[:, 45], axis=-1)
    elif norm == "inter_pupil":
        d = np.linalg.norm(gt[:, 36:42].mean(1) - gt[:, 42:48].mean(1), axis=-1)
    else:
        wh = gt.max(1) - gt.min(1)
        d = np.sqrt(wh[:, 0] * wh[:, 1])
    return d[0] if single else d


def nme(pred: np.ndarray, gt: np.ndarray, norm: str = "inter_ocular") -> np.ndarray:
    """Per-image normalised mean error (fraction): mean point-to-point distance / normaliser. (N,)"""
    pred = np.asarray(pred, np.float64)
    gt = np.asarray(gt, np.float64)
    if pred.shape != gt.shape:
        raise ValueError(f"predictions {pred.shape} and ground truth {gt.shape} differ in shape")
    if pred.ndim == 2:
        pred, gt = pred[None], gt[None]
    err = np.linalg.norm(pred - gt, axis=-1).mean(-1)
    return err / normaliser(gt, norm)


def ced(errors: np.ndarray, threshold: float, step: float = 1e-4) -> tuple[np.ndarray, np.ndarray]:
    """Cumulative error distribution: x in [0, threshold] every `step`, y = share of errors <= x."""
    errors = np.sort(np.asarray(errors, np.float64))
    xs = np.arange(0.0, threshold + step / 2, step)
    ys = np.searchsorted(errors, xs, side="right") / max(len(errors), 1)
    return xs, ys


AUC_METHODS = ("spiga", "ced")


def _auc_histogram(errors: np.ndarray, threshold: float, bins: int = 10000) -> float:
    """SPIGA's integration (see the module docstring), written out so its numbers can be matched."""
    from scipy.integrate import simpson

    counts, edges = np.histogram(errors, bins=bins)
    cumulative = np.cumsum(counts) / len(errors)
    base = edges[:bins]
    keep = base < threshold
    base, cumulative = base[keep], cumulative[keep]
    if len(base) == 0:
        return 0.0
    area = simpson(cumulative, x=base) / threshold if len(base) > 1 else 0.0
    if cumulative[-1] == 1:  # the curve is flat at 1 from the last bin to the threshold
        area += (threshold - base[-1]) / threshold
    return float(area)


def auc_fr(errors: np.ndarray, threshold: float = 0.08, step: float = 1e-4,
           method: str = "spiga") -> tuple[float, float]:
    """(AUC, FR) as fractions for per-image errors; `method` is "spiga" or "ced" (module docstring)."""
    errors = np.asarray(errors, np.float64)
    if len(errors) == 0:
        return 0.0, 1.0
    if method == "spiga":
        auc = _auc_histogram(errors, threshold)
    elif method == "ced":
        xs, ys = ced(errors, threshold, step)
        auc = float(np.trapz(ys, xs) / threshold)
    else:
        raise ValueError(f"unknown AUC method {method!r}; choose one of {', '.join(AUC_METHODS)}")
    fr = float(np.mean(errors > threshold))
    return min(auc, 1.0), fr  # the area under a curve <= 1 on [0, threshold], over threshold (module docstring)


@dataclass
class Summary:
    """Metrics of one subset under one normalisation (fractions)."""
    count: int
    nme: float
    auc: dict[float, float]
    fr: dict[float, float]

    def as_percent(self) -> dict:
        return {"count": self.count, "nme": 100 * self.nme,
                **{f"auc@{t:g}": 100 * v for t, v in self.auc.items()},
                **{f"fr@{t:g}": 100 * v for t, v in self.fr.items()}}


def summarise(errors: np.ndarray, thresholds: tuple[float, ...] = (0.08, 0.10), step: float = 1e-4,
              method: str = "spiga") -> Summary:
    """NME, AUC and FR at each threshold for per-image errors (fractions)."""
    errors = np.asarray(errors, np.float64)
    auc, fr = {}, {}
    for t in thresholds:
        auc[t], fr[t] = auc_fr(errors, t, step, method)
    return Summary(count=len(errors), nme=float(errors.mean()) if len(errors) else float("nan"), auc=auc, fr=fr)
