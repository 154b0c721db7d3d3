"""Scoring: predictions + ground truth -> per-subset NME / AUC / FR and CED curves.

Separate from predicting (as in SPIGA's benchmark): this module reads landmark files and knows nothing
of models, so any detector's output can be scored the same way.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from facegen.errors import FacegenError
from facegen.trainer.annotations import NO_JAW, YAW_BINS, LandmarkSet, align, load_landmark_set
from facegen.trainer.metrics import NORMALISATIONS, canonical_norm, ced, nme, normaliser, summarise

DEFAULT_THRESHOLDS = (0.08, 0.10)


def score(pred: LandmarkSet, gt: LandmarkSet, norms: tuple[str, ...] = NORMALISATIONS,
          thresholds: tuple[float, ...] = DEFAULT_THRESHOLDS, auc_method: str = "spiga") -> dict:
    """Report dict: `metrics` {norm: {subset: {count, nme, auc@t, fr@t} in %}}, `per_image` errors and
    `breakdown` {norm: {subset: per region and visible / hidden NME %}} (see `breakdown`)."""
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
                    "metrics": {}, "per_image": {}, "breakdown": {}}
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
        report["breakdown"][norm] = breakdown(p, gt, norm, subsets)
    report["subsets"] = {k: len(v) for k, v in subsets.items()}
    if set(YAW_BINS) <= set(subsets):  # AFLW2000-3D's protocol, from `facegen eval` or its subsets.json
        add_balanced(report, tuple(YAW_BINS))
    return report


def _percent(values: np.ndarray) -> float | None:
    return float(100 * values.mean()) if values.size else None


def breakdown(pred: np.ndarray, gt: LandmarkSet, norm: str, subsets: dict[str, list[int]]) -> dict:
    """Where the error is, per subset: {subset: {count, groups: {region: NME %}, points: {region: its point
    count}, and with known visibility visible / hidden: NME %, n_visible / n_hidden: (image, point) pairs}}.

    A region's NME of an image is the mean distance over the region's points / the image's normaliser; the
    subset's is the mean over its images. Visible / hidden NME is the mean of distance / normaliser over the
    (image, point) pairs that are visible / hidden (None where there are none)."""
    regions = gt.regions()
    with np.errstate(divide="ignore", invalid="ignore"):
        per_point = np.linalg.norm(pred - gt.points, axis=-1) / normaliser(gt.points, norm)[:, None]  # (N, L)
    vis = None if gt.visibility is None else np.asarray(gt.visibility, bool)
    out = {}
    for name, idx in subsets.items():
        e = per_point[idx]
        row: dict = {"count": len(idx),
                     "groups": {r: _percent(e[:, pts].mean(1)) for r, pts in regions.items()},
                     "points": {r: len(pts) for r, pts in regions.items()}}
        if vis is not None:
            v = vis[idx]
            row.update(visible=_percent(e[v]), hidden=_percent(e[~v]), n_visible=int(v.sum()),
                       n_hidden=int((~v).sum()))
        out[name] = row
    return out


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
    for rows in report.get("breakdown", {}).values():  # the same unweighted mean of each region's NME
        present = [rows[p] for p in parts if p in rows and rows[p]["count"]]
        if len(present) == len(parts):
            rows[name] = _balanced_breakdown(present)
    report["subsets"][name] = sum(report["subsets"][p] for p in parts if p in report["subsets"])
    report["balanced_over"] = list(parts)
    return report


def _balanced_breakdown(rows: list[dict]) -> dict:
    def mean(values):
        values = [v for v in values if v is not None]
        return float(np.mean(values)) if values else None

    out = {"count": sum(r["count"] for r in rows),
           "groups": {g: mean([r["groups"][g] for r in rows]) for g in rows[0]["groups"]},
           "points": dict(rows[0]["points"])}
    if "visible" in rows[0]:
        out.update(visible=mean([r["visible"] for r in rows]), hidden=mean([r["hidden"] for r in rows]),
                   n_visible=sum(r["n_visible"] for r in rows), n_hidden=sum(r["n_hidden"] for r in rows))
    return out


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


def _cell(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"


def breakdown_table(report: dict, norm: str | None = None) -> str:
    """Where the error is: one row per subset, NME % per region, then visible / hidden points (if known)."""
    if not report.get("breakdown"):
        return ""
    norm = norm or next(iter(report["breakdown"]))
    rows = report["breakdown"][norm]
    first = next(iter(rows.values()))
    regions = list(first["groups"])
    vis = "visible" in first
    if not regions and not vis:
        return ""
    head = ["subset", "n"] + regions + (["visible", "hidden"] if vis else [])
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for subset, r in rows.items():
        cells = [subset, str(r["count"])] + [_cell(r["groups"][g]) for g in regions]
        cells += [_cell(r["visible"]), _cell(r["hidden"])] if vis else []
        lines.append("| " + " | ".join(cells) + " |")
    note = (f"\nNME {norm} % per face region (a region's mean point error / the face's normaliser)"
            + ("; visible / hidden: over the points visible or self-occluded in the image" if vis else "")
            + (f"; {NO_JAW}: every point outside the jaw" if NO_JAW in regions else "") + ".\n")
    return "\n".join(lines) + "\n" + note


def plot_breakdown(report: dict, norm: str, path: Path) -> bool:
    """Grouped bars: regions (and visible / hidden) on x, one bar per subset. False when there is nothing."""
    rows = report.get("breakdown", {}).get(norm) or {}
    if not rows:
        return False
    first = next(iter(rows.values()))
    labels = list(first["groups"]) + (["visible", "hidden"] if "visible" in first else [])
    if not labels:
        return False
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(max(5.0, 0.9 * len(labels) + 2), 4), dpi=100)
    width = 0.8 / len(rows)
    for k, (subset, r) in enumerate(rows.items()):
        values = [r["groups"].get(g) for g in first["groups"]] + ([r["visible"], r["hidden"]] if "visible" in r else [])
        xs = np.arange(len(labels)) + (k - (len(rows) - 1) / 2) * width
        ax.bar(xs, [np.nan if v is None else v for v in values], width, label=f"{subset} (n {r['count']})")
    ax.set_xticks(np.arange(len(labels)), labels, rotation=30, ha="right")
    ax.set_ylabel(f"NME ({norm}) %")
    ax.grid(axis="y", alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return True


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
    written[1].write_text(markdown_table(report) + ("\n" + breakdown_table(report) if breakdown_table(report) else ""))
    for norm in report["metrics"]:
        path = out / f"ced_{norm}.png"
        plot_ced(report, gt, norm, path, max(report["thresholds"]))
        written.append(path)
        path = out / f"breakdown_{norm}.png"
        if plot_breakdown(report, norm, path):
            written.append(path)
    return written


def score_files(predictions: Path | str, ground_truth: Path | str, subsets: Path | str | None = None,
                **kw) -> tuple[dict, LandmarkSet]:
    """Load both sides (folders of .pts or JSON lists) and score them."""
    gt = load_landmark_set(ground_truth, subsets)
    pred = load_landmark_set(predictions)
    return score(pred, gt, **kw), gt
