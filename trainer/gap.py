"""`facegen gap`: one checkpoint on several test sets, ordered synthetic -> real, in one report that shows
where the error grows: per face region, per |yaw| bin, visible vs hidden points.

Each set is evaluated exactly as `facegen eval` does it (its full report goes to OUT/sets/<name>/); the
gap report takes the numbers under box normalisation, the one every set has, so rows are comparable.
Shards are compared on iBUG-68 here (as the real labels are), whatever their spec: the same points and the
same box on every row.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from facegen.errors import FacegenError
from facegen.trainer.annotations import NO_JAW, REGION_ORDER, YAW_BINS

NORM = "box"
REGIONS = (*REGION_ORDER, NO_JAW)
# Thresholds of the reading (ratios of NME): where a difference is worth a sentence.
RENDERER_GAP = 1.2      # Cycles / raster above this: the renderer costs accuracy
NO_GAP = 1.2            # synthetic -> real growth below this in every region: no gap worth a remedy
UNIFORM_SPREAD = 1.5    # largest / smallest region growth below this: the error grows about uniformly
JAW_DOMINANT = 1.5      # jaw growth / the rest's growth above this: the jaw's labels differ
OWN_DOMAIN_SHARE = 0.5  # synthetic / real error above this: the model has not learnt its own domain


@dataclass
class GapSet:
    """One test set of the report: `kind` synthetic (shards) or real; `renderer` of shards (raster, cycles)."""
    name: str
    kind: str
    dataset: object
    source: str
    renderer: str | None = None


def set_names(paths: Sequence[Path | str]) -> list[str]:
    """Folder names, a repeated one numbered (`test`, `test-2`): table rows and OUT/sets/<name> folders."""
    names: list[str] = []
    for p in paths:
        base = Path(p).resolve().name or "set"
        name, k = base, 2
        while name in names:
            name, k = f"{base}-{k}", k + 1
        names.append(name)
    return names


def open_real_test(path: Path | str, fmt: str = "auto"):
    """A real test set by its files (trainer/real_data.py's recognition): 300-W's full test split (helen,
    lfpw test sets + ibug) in the official layout, AFLW2000-3D, 300W-LP or any .pts folder."""
    from facegen.trainer.datasets import AFLW2000, PtsFolder, Real300W, W300LP
    from facegen.trainer.real_data import REAL_FORMATS, detect_format

    root = Path(path)
    if not root.is_dir():
        raise FacegenError(f"--real {root}: no such folder (a 300-W, AFLW2000-3D, 300W-LP or .pts folder)")
    if fmt not in REAL_FORMATS:
        raise FacegenError(f"--real-format {fmt!r}: use one of {', '.join(REAL_FORMATS)}")
    fmt = detect_format(root) if fmt == "auto" else fmt
    if fmt == "300w":
        return Real300W(root, "full")
    if fmt == "aflw2000":
        return AFLW2000(root)
    if fmt == "300w-lp":
        return W300LP(root)
    return PtsFolder(root)


def open_gap_sets(shards: Sequence[Path | str], real: Sequence[Path | str], real_format: str = "auto") -> list[GapSet]:
    """Shard folders then real folders, in the order given (synthetic -> real)."""
    from facegen.trainer.datasets import ShardTestSet

    if not shards and not real:
        raise FacegenError("no test sets: give at least one --shards or --real folder")
    names = set_names([*shards, *real])
    sets = []
    for name, path in zip(names, shards):
        ds = ShardTestSet(path)
        sets.append(GapSet(name, "synthetic", ds, str(path), str(ds.shards.attrs.get("renderer", "")) or None))
    for name, path in zip(names[len(shards):], real):
        sets.append(GapSet(name, "real", open_real_test(path, real_format), str(path)))
    return sets


def _overall_name(rows: dict) -> str:
    """The subset that covers every image (as score.overall picks it), by name."""
    if "all" in rows:
        return "all"
    return max((k for k in rows if k != "balanced"), key=lambda k: rows[k]["count"])


def gap_row(report: dict) -> dict:
    """One set's numbers (NME % under box normalisation): n, nme, inter_ocular (68 points), regions, yaw
    bins present, visible / hidden where known."""
    rows = report["metrics"][NORM]
    overall = _overall_name(rows)
    br = report["breakdown"][NORM][overall]
    io = report["metrics"].get("inter_ocular")
    return {"n": rows[overall]["count"], "nme": rows[overall]["nme"],
            "inter_ocular": io[_overall_name(io)]["nme"] if io else None,
            "regions": {r: br["groups"].get(r) for r in REGIONS},
            "yaw": {b: rows[b]["nme"] for b in YAW_BINS if b in rows},
            "visible": br.get("visible"), "hidden": br.get("hidden")}


def gap_report(predictor, sets: Sequence[GapSet], out: Path | str | None = None) -> dict:
    """Evaluate `predictor` on every set (its eval report under OUT/sets/<name>/ when `out` is given) and
    gather the comparable numbers and the reading. Shards are compared on iBUG-68."""
    from facegen.trainer.evaluate import evaluate

    entries = []
    for s in sets:
        where = Path(out) / "sets" / s.name if out is not None else None
        kw = {"compare": "ibug68"} if s.kind == "synthetic" else {}
        report = evaluate(predictor, s.dataset, where, **kw)
        entries.append({"name": s.name, "kind": s.kind, "renderer": s.renderer, "source": s.source,
                        "report_dir": f"sets/{s.name}" if where is not None else None,
                        "jaw": report.get("jaw"), "row": gap_row(report),
                        "report": {k: report[k] for k in ("subsets", "metrics", "breakdown") if k in report}})
    report = {"norm": NORM, "spec": predictor.spec.name, "regions": list(REGIONS), "yaw_bins": list(YAW_BINS),
              "sets": entries}
    report["reading"] = reading(report)
    return report


def _ratio(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None or a <= 0 else b / a


def reading(report: dict) -> list[str]:
    """Sentences read off the numbers: the synthetic error itself, raster -> Cycles, synthetic -> real
    per region and per yaw bin, each with the usual remedy."""
    sets = report["sets"]
    syn = [s for s in sets if s["kind"] == "synthetic"]
    real = [s for s in sets if s["kind"] == "real"]
    out = []
    if syn:
        s0 = syn[0]
        text = f"Synthetic: NME {s0['row']['nme']:.2f} % on {s0['name']} (held-out renders)."
        if real:
            share = s0["row"]["nme"] / max(r["row"]["nme"] for r in real)
            if share >= OWN_DOMAIN_SHARE:
                text += (f" That is {share:.0%} of the largest real error: the model has not learnt its own "
                         "domain yet; train longer or use a larger model before changing the data.")
            else:
                text += (f" That is {share:.0%} of the largest real error: the model has learnt its own domain; "
                         "the rest of the error comes from what differs between renders and real faces.")
        out.append(text)
    by_renderer = {s["renderer"]: s for s in syn if s["renderer"]}
    if "raster" in by_renderer and "cycles" in by_renderer:
        a, b = by_renderer["raster"]["row"]["nme"], by_renderer["cycles"]["row"]["nme"]
        r = _ratio(a, b)
        if r is not None:
            text = f"Raster -> Cycles: NME x{r:.2f} ({a:.2f} -> {b:.2f} %)."
            text += (" The renderer costs accuracy: render (part of) the training set with Cycles."
                     if r >= RENDERER_GAP else " The renderer costs little.")
            out.append(text)
    if syn and real:
        ref = syn[-1]  # the renders closest to real faces in the order given
        for s in real:
            out.append(_region_sentence(ref, s))
            yaw = _yaw_sentence(ref, s)
            if yaw:
                out.append(yaw)
        if not any(s["row"]["yaw"] for s in real):
            out.append("No real set has a known head pose, so the error is not compared per yaw bin "
                       "(AFLW2000-3D has one).")
    if not out:
        out.append("One kind of test set only: add shards (--shards) and real faces (--real) to compare them.")
    return out


def _region_sentence(ref: dict, s: dict) -> str:
    total = _ratio(ref["row"]["nme"], s["row"]["nme"])
    ratios = {r: _ratio(ref["row"]["regions"].get(r), s["row"]["regions"].get(r)) for r in REGION_ORDER}
    ratios = {r: v for r, v in ratios.items() if v is not None}
    head = f"{ref['name']} -> {s['name']}: NME x{total:.2f}" if total else f"{ref['name']} -> {s['name']}"
    if not ratios:
        return head + "."
    parts = ", ".join(f"{r} x{v:.2f}" for r, v in ratios.items())
    top = max(ratios, key=ratios.get)
    text = f"{head}; per region {parts}; largest: {top}."
    rest = _ratio(ref["row"]["regions"].get(NO_JAW), s["row"]["regions"].get(NO_JAW))
    if total is not None and max(ratios.values()) < NO_GAP:
        text += f" No region grows by x{NO_GAP:g} or more: real faces score about as well as renders here."
    elif top == "jaw" and rest and ratios["jaw"] >= JAW_DOMINANT * rest:
        conv = (s.get("jaw") or {}).get("labels")
        text += (f" The jaw grows {ratios['jaw'] / rest:.1f}x more than the other points (x{rest:.2f}): the "
                 "labels place the jaw differently (a label convention gap); fit a label adapter (facegen adapt)"
                 + (" or render with --spec ibug68_3d, whose jaw follows 3D-fit labels" if conv == "3d" else "")
                 + ", or score on no_jaw.")
    elif max(ratios.values()) <= UNIFORM_SPREAD * min(ratios.values()):
        text += (f" The error grows about uniformly (x{min(ratios.values()):.2f} to x{max(ratios.values()):.2f}): "
                 "an appearance gap; domain adaptation (--strategy dann / daln) or mixing real faces "
                 "(--strategy mixed) is the usual remedy.")
    else:
        text += (f" The error grows most in the {top} points: look at how renders and real labels differ "
                 "there first.")
    return text


def _yaw_sentence(ref: dict, s: dict) -> str | None:
    bins = [b for b in YAW_BINS if b in s["row"]["yaw"]]
    if not bins:
        return None
    ratios = {b: _ratio(ref["row"]["yaw"].get(b), s["row"]["yaw"][b]) for b in bins}
    known = {b: v for b, v in ratios.items() if v is not None}
    missing = [b for b in bins if ratios[b] is None]
    text = f"{ref['name']} -> {s['name']} per |yaw| bin: " + ", ".join(
        f"{b} x{v:.2f}" for b, v in known.items()) if known else f"{ref['name']} -> {s['name']} per |yaw| bin:"
    if missing:
        text += f" ({', '.join(missing)}: no renders in that bin to compare with)"
    if known:
        top = max(known, key=known.get)
        text += f"; largest at {top}."
        if top != "yaw 0-30":
            text += " Render more faces at large yaw (the sampling config's head-pose range) and check the jaw there."
    return text


def _cell(v: float | None) -> str:
    return "-" if v is None else f"{v:.2f}"


def gap_table(report: dict) -> str:
    """One row per test set: n, NME box % overall, per region, per yaw bin and visible / hidden where known,
    and inter-ocular overall where 68 points."""
    sets = report["sets"]
    bins = [b for b in report["yaw_bins"] if any(b in s["row"]["yaw"] for s in sets)]
    vis = any(s["row"]["visible"] is not None for s in sets)
    io = any(s["row"]["inter_ocular"] is not None for s in sets)
    head = ["set", "kind", "n", "NME box %"] + list(report["regions"]) + bins
    head += ["visible", "hidden"] if vis else []
    head += ["NME inter_ocular %"] if io else []
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for s in sets:
        r = s["row"]
        kind = s["kind"] + (f" ({s['renderer']})" if s["renderer"] else "")
        cells = [s["name"], kind, str(r["n"]), _cell(r["nme"])] + [_cell(r["regions"].get(g)) for g in report["regions"]]
        cells += [_cell(r["yaw"].get(b)) for b in bins]
        cells += [_cell(r["visible"]), _cell(r["hidden"])] if vis else []
        cells += [_cell(r["inter_ocular"])] if io else []
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def gap_markdown(report: dict) -> str:
    return (f"# Where the error comes from ({report['spec']} checkpoint)\n\n" + gap_table(report)
            + "\nNME % under box normalisation (sqrt(w * h) of the ground-truth landmark box), so every row is "
              "comparable; shards compared on iBUG-68 like the real labels. Regions: jaw 0-16, brows, nose, eyes, "
              "mouth; no_jaw = every point outside the jaw. Yaw bins where the head pose is known (renders, "
              "AFLW2000-3D); visible / hidden points where known (renders). Each set's full report: sets/<name>/.\n"
            + "\n## Reading\n\n" + "\n".join(f"- {t}" for t in report["reading"]) + "\n")


def plot_gap(report: dict, path: Path) -> None:
    """Left: NME per region, one bar per set (synthetic -> real); right: NME per yaw bin, one line per set."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sets = report["sets"]
    labels = ["all", *report["regions"]]
    fig, (left, right) = plt.subplots(1, 2, figsize=(12, 4.5), dpi=100, gridspec_kw={"width_ratios": [3, 2]})
    width = 0.8 / len(sets)
    for k, s in enumerate(sets):
        values = [s["row"]["nme"]] + [s["row"]["regions"].get(g) for g in report["regions"]]
        xs = np.arange(len(labels)) + (k - (len(sets) - 1) / 2) * width
        left.bar(xs, [np.nan if v is None else v for v in values], width, label=f"{s['name']} ({s['kind']})")
    left.set_xticks(np.arange(len(labels)), labels)
    left.set_ylabel("NME (box) %")
    left.set_title("per face region")
    left.grid(axis="y", alpha=0.3)
    left.legend(fontsize=8)
    bins = list(report["yaw_bins"])
    drawn = False
    for s in sets:
        ys = [s["row"]["yaw"].get(b) for b in bins]
        if any(v is not None for v in ys):
            right.plot(range(len(bins)), [np.nan if v is None else v for v in ys], "o-", label=s["name"])
            drawn = True
    right.set_xticks(range(len(bins)), bins)
    right.set_title("per |yaw| bin")
    right.set_ylabel("NME (box) %")
    right.set_ylim(bottom=0)
    right.grid(alpha=0.3)
    if drawn:
        right.legend(fontsize=8)
    else:
        right.text(0.5, 0.5, "no set with a known head pose", ha="center", va="center", transform=right.transAxes)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def write_gap(report: dict, out: Path | str) -> list[Path]:
    """gap.md (table + reading), gap.json (every number, each set's metrics and breakdown), gap.png."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    files = [out / "gap.md", out / "gap.json", out / "gap.png"]
    files[0].write_text(gap_markdown(report))
    files[1].write_text(json.dumps(report, indent=2) + "\n")
    plot_gap(report, files[2])
    return files
