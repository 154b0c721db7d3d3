"""Scoring: predictions + ground truth -> per-subset NME / AUC / FR and CED curves.

Separate from predicting (as in SPIGA's benchmark): this module reads landmark files and knows nothing
of models, so any detector's output can be scored the same way.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from facegen.errors import FacegenError
from facegen.trainer.annotations import YAW_BINS, LandmarkSet, align, load_landmark_set
from facegen.trainer.metrics import NORMALISATIONS, canonical_norm, ced, nme, summarise

DEFAULT_THRESHOLDS = (0.08, 0.10)


def score(pred: LandmarkSet, gt: LandmarkSet, norms: tuple[str, ...] = NORMALISATIONS,
          thresholds: tuple[float, ...] = DEFAULT_THRESHOLDS, auc_method: str = "spiga") -> dict:
    """Report dict: {norm: {subset: {count, nme, auc@t, fr@t} in %}} plus per-image errors."""
    p = align(pred, gt)
    if p.shape[1:] != gt.points.shape[1:]:
        raise FacegenError(f"{pred.source}: predictions have {p.shape[1]} points, {gt.source} {gt.points.shape[1]}; "
                           "map dense predictions to iBUG-68 first (facegen.trainer.evaluate.to_ibug68)")
    bad = np.flatnonzero(~np.isfinite(p).all((1, 2)))  # files are checked as they are read; a model's output here
    if len(bad):
        raise FacegenError(f"{pred.source}: {gt.names[bad[0]]}: predicted landmarks are not finite (NaN or Inf)")
    subsets = gt.subsets or {"all": list(range(len(gt)))}
    norms = tuple(canonical_norm(n) for n in norms)
    if gt.points.shape[1] != 68:  # eye-based normalisations need the iBUG-68 layout
        norms = tuple(n for n in norms if n == "box") or ("box",)
    report: dict = {"auc_method": auc_method, "thresholds": list(thresholds), "subsets": {},
                    "metrics": {}, "per_image": {}}
    for norm in norms:
        with np.errstate(divide="ignore", invalid="ignore"):
            errors = nme(p, gt.points, norm)
        bad = np.flatnonzero(~np.isfinite(errors))
        if len(bad):
            raise FacegenError(f"{gt.source}: {gt.names[bad[0]]}: its {norm} distance is 0, so errors cannot be "
                               "normalised by it; fix the annotation or choose another --norm")
        report["per_image"][norm] = {n: float(e) for n, e in zip(gt.names, errors)}
        report["metrics"][norm] = {name: summarise(errors[idx], thresholds, method=auc_method).as_percent()
                                   for name, idx in subsets.items()}
    report["subsets"] = {k: len(v) for k, v in subsets.items()}
    if set(YAW_BINS) <= set(subsets):  # AFLW2000-3D's protocol, from `facegen eval` or its subsets.json
        add_balanced(report, tuple(YAW_BINS))
    return report


def overall(rows: dict) -> dict:
    """The row of one normalisation that covers every image: `all`, or the subset that equals it (the
    scorer keeps one name for one set, e.g. `full` when every image is 300-W full)."""
    if "all" in rows:
        return rows["all"]
    return max((r for k, r in rows.items() if k != "balanced"), key=lambda r: r["count"])


def add_balanced(report: dict, parts: tuple[str, ...], name: str = "balanced") -> dict:
    """Add a row `name` to every normalisation: the unweighted mean of each metric over the subsets
    `parts` (AFLW2000-3D's yaw bins: its "balanced" NME, which counts each pose range equally)."""
    for rows in report["metrics"].values():
        present = [rows[p] for p in parts if p in rows and rows[p]["count"]]
        if len(present) != len(parts):
            continue
        rows[name] = {k: (sum(r["count"] for r in present) if k == "count" else float(np.mean([r[k] for r in present])))
                      for k in present[0]}
    report["subsets"][name] = sum(report["subsets"][p] for p in parts if p in report["subsets"])
    report["balanced_over"] = list(parts)
    return report


def markdown_table(report: dict) -> str:
    """One row per subset: count, NME under each normalisation, AUC/FR at each threshold (first norm)."""
    norms = list(report["metrics"])
    main = norms[0]
    ths = report["thresholds"]
    head = ["subset", "n"] + [f"NME {n} %" for n in norms]
    head += [f"AUC@{t:g} %" for t in ths] + [f"FR@{t:g} %" for t in ths]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for subset in report["metrics"][main]:
        row = [subset, str(report["metrics"][main][subset]["count"])]
        row += [f"{report['metrics'][n][subset]['nme']:.3f}" for n in norms]
        row += [f"{report['metrics'][main][subset][f'auc@{t:g}']:.2f}" for t in ths]
        row += [f"{report['metrics'][main][subset][f'fr@{t:g}']:.2f}" for t in ths]
        lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines) + f"\n\nAUC and FR under {main} normalisation (AUC: {report['auc_method']}).\n"


def plot_ced(report: dict, gt: LandmarkSet, norm: str, path: Path, threshold: float) -> None:
    """CED curves (one per subset) for one normalisation, as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    errors = np.array([report["per_image"][norm][n] for n in gt.names])
    subsets = gt.subsets or {"all": list(range(len(gt)))}
    fig, ax = plt.subplots(figsize=(5, 4), dpi=100)
    for name, idx in subsets.items():
        xs, ys = ced(errors[idx], threshold)
        ax.plot(xs * 100, ys * 100, label=f"{name} (NME {100 * errors[idx].mean():.2f})")
    ax.set_xlabel(f"NME ({norm}) %")
    ax.set_ylabel("images %")
    ax.set_xlim(0, threshold * 100)
    ax.set_ylim(0, 100)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def write_report(report: dict, gt: LandmarkSet, out: Path | str) -> list[Path]:
    """metrics.json, metrics.md and one ced_<norm>.png per normalisation under `out`."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    written = [out / "metrics.json", out / "metrics.md"]
    written[0].write_text(json.dumps(report, indent=2) + "\n")
    written[1].write_text(markdown_table(report))
    for norm in report["metrics"]:
        path = out / f"ced_{norm}.png"
        plot_ced(report, gt, norm, path, max(report["thresholds"]))
        written.append(path)
    return written


def score_files(predictions: Path | str, ground_truth: Path | str, subsets: Path | str | None = None,
                **kw) -> tuple[dict, LandmarkSet]:
    """Load both sides (folders of .pts or JSON lists) and score them."""
    gt = load_landmark_set(ground_truth, subsets)
    pred = load_landmark_set(predictions)
    return score(pred, gt, **kw), gt
