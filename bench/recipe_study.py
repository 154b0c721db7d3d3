"""The recipe study (docs/recipe-study.md): which detector, loss, input size and batch give the lowest error on
real faces for a fixed CPU budget, trained on the same renders.

    R=/work/study; S=../shared/data
    python bench/recipe_study.py calibrate --train $R/train4000 --out $R/study
    python bench/recipe_study.py screen    --train $R/train4000 --out $R/study --minutes 4
    python bench/recipe_study.py score     --out $R/study --test-shards $R/test-raster --test-shards $R/test-cycles \\
                                           --real300w $S/real300w-mini --aflw $S/aflw2000-3d-half
    python bench/recipe_study.py screen2   ...   # input size and batch of the best head (needs round 1 scored)
    python bench/recipe_study.py final     ...   # the best few and today's recipe at --minutes 30
    python bench/recipe_study.py scaling   ...   # the chosen recipe on 500 / 1000 / 2000 / 3800 renders
    python bench/recipe_study.py repeat    ...   # the best screened and today's again with another seed (noise)
    python bench/recipe_study.py report    --out $R/study

The budget is wall-clock training time on this machine with nothing else running, turned into a number of
steps per candidate from its measured training rate (`calibrate`: images/s of bare forward + backward +
AdamW steps of the candidate's model, loss, input size and batch, measured once in a quiet moment), so
that the runs themselves are fixed step counts: reproducible, and unaffected by load while they run.
Every run is a `facegen train` command (OUT/commands.sh lists them) scored with `facegen eval`'s code on
held-out renders, real300w-mini and the AFLW2000-3D half (box-normalised NME; AFLW2000-3D on its 51
non-jaw points, whose jaw follows the 3D-fit convention), with and without test-time flip. Each phase
skips finished runs, so an interrupted study resumes.
"""

from __future__ import annotations

import argparse
import json
import shlex
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

FACEGEN = [sys.executable, "-m", "facegen.cli"]
BASE = {"input-size": 128, "batch-size": 16}

# round 1: heads and losses at today's input size and batch (resnet18 regression with L1 is today's recipe)
ROUND1 = {
    "r18-reg-l1": {"model": "resnet18", "coord-loss": "l1"},
    "r18-reg-wing": {"model": "resnet18", "coord-loss": "wing"},
    "r18-hm-kl": {"model": "resnet18_heatmap"},
    "r18-hm-kl-wing": {"model": "resnet18_heatmap", "coord-loss": "wing"},
    "r18-hm-awing": {"model": "resnet18_heatmap", "heatmap-loss": "awing"},
    "hourglass": {"model": "hourglass"},
}
# round 2: the best round-1 recipe at other input sizes and batches
ROUND2 = {"s192": {"input-size": 192}, "s256": {"input-size": 256}, "b32": {"batch-size": 32}}
TODAY = "r18-reg-l1"


def options(recipe: dict) -> dict:
    return {**BASE, **recipe}


def train_command(data: Path, out: Path, recipe: dict, steps: int, n_synthetic: int | None = None,
                  seed: int = 0) -> list[str]:
    cmd = FACEGEN + ["train", "--data", str(data), "--out", str(out), "--steps", str(steps), "--seed", str(seed)]
    for k, v in options(recipe).items():
        cmd += [f"--{k}", str(v)]
    if n_synthetic:
        cmd += ["--n-synthetic", str(n_synthetic)]
    return cmd


def bare_rate(recipe: dict, num_landmarks: int = 68, steps: int = 4, repeats: int = 3) -> float:
    """Images/s of bare training steps of the recipe's model, input size and batch (bench/train_throughput.py),
    measured on an idle machine: the best of `repeats` short runs, each started when nothing else runs."""
    sys.path.insert(0, str(Path(__file__).parent))
    from train_throughput import bench_train, wait_quiet

    o = options(recipe)
    rates = []
    for _ in range(repeats):
        wait_quiet()
        rates.append(bench_train(o["model"], int(o["input-size"]), int(o["batch-size"]), steps, num_landmarks))
    return max(rates)


def calibrated(out: Path, name: str, recipe: dict) -> float:
    """The recipe's images/s from OUT/throughput.json, measured now if it is not there yet."""
    path = out / "throughput.json"
    table = json.loads(path.read_text()) if path.exists() else {}
    o = options(recipe)  # the loss costs next to nothing: one rate per model, input size and batch
    key = f"{o['model']} {o['input-size']}px batch {o['batch-size']}"
    if key not in table:
        table[key] = {"name": name, "images_per_s": bare_rate(recipe), "measured": time.strftime("%Y-%m-%d %H:%M")}
        path.write_text(json.dumps(table, indent=1))
        print(f"calibrated {name}: {table[key]['images_per_s']:.2f} images/s", flush=True)
    return table[key]["images_per_s"]


def run(out: Path, data: Path, name: str, recipe: dict, minutes: float, n_synthetic: int | None = None,
        seed: int = 0) -> Path:
    """Train `recipe` for `minutes` of its calibrated rate (skipped when finished); the run's folder."""
    folder = out / "runs" / name
    rate = calibrated(out, name, recipe)
    steps = max(1, int(round(minutes * 60 * rate / options(recipe)["batch-size"])))
    cmd = train_command(data, folder, recipe, steps, n_synthetic, seed)
    if (folder / "history.json").exists():
        return folder
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "recipe.json").write_text(json.dumps({"name": name, "options": options(recipe), "minutes": minutes,
                                                    "steps": steps, "n_synthetic": n_synthetic, "seed": seed,
                                                    "command": shlex.join(cmd[2:])}, indent=1))
    with open(out / "commands.sh", "a") as f:
        f.write(shlex.join(["facegen"] + cmd[3:]) + "\n")
    print(f"{time.strftime('%H:%M:%S')} {name}: {steps} steps ({minutes:g} min at {rate:.1f} images/s)", flush=True)
    t = time.perf_counter()
    with open(folder / "train.log", "w") as log:
        subprocess.run(cmd, check=True, stdout=log, stderr=subprocess.STDOUT)
    print(f"{time.strftime('%H:%M:%S')} {name}: done in {time.perf_counter() - t:.0f} s", flush=True)
    return folder


# -- scoring ------------------------------------------------------------------------------------------------------

def score_run(folder: Path, sets: dict[str, tuple[str, Path]]) -> dict:
    """NMEs of the run's best.pt on every test set, without and with test-time flip (cached in scores.json)."""
    from facegen.trainer.evaluate import evaluate, open_eval_dataset
    from facegen.trainer.predictor import load_predictor
    from facegen.trainer.score import overall

    path = folder / "scores.json"
    scores = json.loads(path.read_text()) if path.exists() else {}
    if all(f"{s}{suffix}" in scores for s in sets for suffix in ("", "+flip")):
        return scores
    predictor = load_predictor(folder / "best.pt", "cpu")
    for flip in (False, True):
        predictor.flip = flip
        for name, (kind, root) in sets.items():
            report = evaluate(predictor, open_eval_dataset(kind, root))
            rows = report["breakdown"]["box"]
            every = max(rows, key=lambda k: rows[k]["count"] if k != "balanced" else -1)  # all images
            entry = {"nme_box": overall(report["metrics"]["box"])["nme"],
                     "no_jaw": rows[every]["groups"]["no_jaw"], "jaw": rows[every]["groups"]["jaw"]}
            if "inter_ocular" in report["metrics"]:
                entry["nme_io"] = overall(report["metrics"]["inter_ocular"])["nme"]
            for sub, row in rows.items():
                if sub.startswith("yaw"):
                    entry[f"no_jaw {sub}"] = row["groups"]["no_jaw"]
            scores[f"{name}{'+flip' if flip else ''}"] = entry
    path.write_text(json.dumps(scores, indent=1))
    return scores


def real_error(scores: dict, flip: bool = False) -> float:
    """The study's criterion: the mean of real300w-mini's NME (box, 68 points) and the AFLW2000-3D half's
    (box, 51 non-jaw points): both real sets count the same, whatever their sizes."""
    f = "+flip" if flip else ""
    return 0.5 * (scores[f"real300w-mini{f}"]["nme_box"] + scores[f"aflw2000-half{f}"]["no_jaw"])


def test_sets(args) -> dict[str, tuple[str, Path]]:
    sets = {Path(p).name: ("shards", Path(p)) for p in args.test_shards}
    sets["real300w-mini"] = ("folder", Path(args.real300w))
    sets["aflw2000-half"] = ("aflw2000", Path(args.aflw))
    return sets


def runs(out: Path) -> list[Path]:
    return sorted(p.parent for p in (out / "runs").glob("*/history.json"))


def best_of(out: Path, names: list[str]) -> str:
    scored = {n: json.loads((out / "runs" / n / "scores.json").read_text()) for n in names}
    return min(scored, key=lambda n: real_error(scored[n]))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("phase", choices=["calibrate", "screen", "screen2", "final", "scaling", "repeat", "score",
                                      "report"])
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--train", type=Path, help="the training renders (all phases train on the same)")
    ap.add_argument("--minutes", type=float, default=4.0, help="training budget of each run of this phase")
    ap.add_argument("--finalists", nargs="*", default=None, help="final: recipe names [the best + today's]")
    ap.add_argument("--recipe", default=None, help="scaling: the recipe name [the best final]")
    ap.add_argument("--n-synthetic", type=int, default=2000, help="renders trained on (screen, screen2, final)")
    # 4000 renders less the trainer's 5 % hold-out leave 3800 to train on
    ap.add_argument("--sizes", type=int, nargs="+", default=[500, 1000, 2000, 3800], help="scaling: renders")
    ap.add_argument("--seed", type=int, default=1, help="repeat: the other training seed (the study's is 0)")
    ap.add_argument("--test-shards", action="append", default=[])
    ap.add_argument("--real300w", default=None)
    ap.add_argument("--aflw", default=None)
    args = ap.parse_args()
    out = args.out
    out.mkdir(parents=True, exist_ok=True)
    catalogue_path = out / "catalogue.json"  # every recipe the study has named, round 2 included
    catalogue = json.loads(catalogue_path.read_text()) if catalogue_path.exists() else dict(ROUND1)
    if args.phase == "calibrate":
        for name, recipe in ROUND1.items():
            calibrated(out, name, recipe)
    elif args.phase == "screen":
        for name, recipe in ROUND1.items():
            run(out, args.train, name, recipe, args.minutes, args.n_synthetic)
    elif args.phase == "screen2":
        head = best_of(out, list(ROUND1))
        for variant, change in ROUND2.items():
            name = f"{head}-{variant}"
            catalogue[name] = {**catalogue[head], **change}
            catalogue_path.write_text(json.dumps(catalogue, indent=1))
            run(out, args.train, name, catalogue[name], args.minutes, args.n_synthetic)
    elif args.phase == "final":
        screened = [n for n in catalogue if (out / "runs" / n / "scores.json").exists()]
        ranked = sorted(screened, key=lambda n: real_error(json.loads((out / "runs" / n / "scores.json").read_text())))
        finalists = args.finalists or list(dict.fromkeys(ranked[:1] + [TODAY]))
        for name in finalists:
            run(out, args.train, f"final-{name}-n{args.n_synthetic}", catalogue[name], args.minutes, args.n_synthetic)
    elif args.phase == "scaling":
        recipe = args.recipe or best_of(out, [n for n in catalogue if (out / "runs" / n / "scores.json").exists()])
        for n in args.sizes:  # 2000 is the screened run itself
            name = recipe if n == args.n_synthetic else f"scaling-{recipe}-n{n}"
            run(out, args.train, name, catalogue[recipe], args.minutes, n_synthetic=n)
    elif args.phase == "repeat":  # how far two seeds of one recipe differ: the screening's noise
        for name in dict.fromkeys([best_of(out, list(ROUND1)), TODAY]):
            run(out, args.train, f"{name}-seed{args.seed}", catalogue[name], args.minutes, args.n_synthetic, args.seed)
    elif args.phase == "score":
        sets = test_sets(args)
        for folder in runs(out):
            scores = score_run(folder, sets)
            print(f"{folder.name:32s} real {real_error(scores):6.3f}  +flip {real_error(scores, True):6.3f}", flush=True)
    elif args.phase == "report":
        write_report(out)


def write_report(out: Path) -> None:
    """report.md (one row per run, every number), results.json, and plots."""
    rows = []
    for folder in runs(out):
        if not (folder / "scores.json").exists():
            continue
        recipe = json.loads((folder / "recipe.json").read_text())
        history = json.loads((folder / "history.json").read_text())
        rows.append({"run": folder.name, **recipe, "summary": history["summary"],
                     "scores": json.loads((folder / "scores.json").read_text())})
    (out / "results.json").write_text(json.dumps(rows, indent=1))
    if not rows:
        return
    sets = [k for k in rows[0]["scores"] if not k.endswith("+flip")]
    head = ["run", "model", "loss", "input", "batch", "n syn", "min", "steps", "img/s"]
    head += [f"{s} {'51 pts' if 'aflw' in s else 'box'}" for s in sets] + ["real300w-mini io"]
    head += ["real (crit.)", "real +flip", "renders +flip"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    order = lambda r: (r["run"].startswith("scaling-"), r["run"].startswith("final-"), r["run"])  # noqa: E731
    for r in sorted(rows, key=order):
        o, s = r["options"], r["scores"]
        loss = o.get("heatmap-loss", "kl") + "+" + o.get("coord-loss", "l1") if "heatmap" in o["model"] or \
            o["model"] == "hourglass" else o.get("coord-loss", "l1")
        cells = [r["run"], o["model"], loss, str(o["input-size"]), str(o["batch-size"]), str(r["n_synthetic"] or "all"),
                 f"{r['minutes']:g}", str(r["steps"]), f"{r['summary'].get('img_per_s') or 0:.1f}"]
        cells += [f"{s[k]['no_jaw' if 'aflw' in k else 'nme_box']:.2f}" for k in sets]
        cells += [f"{s['real300w-mini']['nme_io']:.2f}", f"{real_error(s):.3f}", f"{real_error(s, True):.3f}",
                  f"{s[sets[0] + '+flip']['nme_box']:.2f}"]
        lines.append("| " + " | ".join(cells) + " |")
    (out / "report.md").write_text("\n".join(lines) + "\n\nNME %, box-normalised (sqrt(w*h) of the ground-truth "
                                   "landmark box); aflw2000-half on its 51 non-jaw points; real300w-mini io: inter-ocular. real (crit.): "
                                   "the mean of real300w-mini box and aflw2000-half, the study's criterion; +flip: "
                                   "with test-time flip. img/s: facegen train's own rate.\n")
    plot(out, rows)


def plot(out: Path, rows: list[dict]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    recipe = next((r["run"][len("scaling-"):].rsplit("-n", 1)[0] for r in rows if r["run"].startswith("scaling-")), None)
    scaling = sorted((r for r in rows if r["run"].startswith("scaling-") or r["run"] == recipe),
                     key=lambda r: r["n_synthetic"])
    screened = [r for r in rows if not r["run"].startswith(("final-", "scaling-"))]
    finals = [r for r in rows if r["run"].startswith("final-")]
    fig, axes = plt.subplots(1, 3, figsize=(17, 4.8), dpi=100, gridspec_kw={"width_ratios": [3, 1.3, 1.6]})
    metrics = (("held-out renders", lambda s: s["test-raster"]["nme_box"]),
               ("real300w-mini", lambda s: s["real300w-mini"]["nme_box"]),
               ("AFLW2000-3D half, 51 pts", lambda s: s["aflw2000-half"]["no_jaw"]))
    for ax, group, title in ((axes[0], screened, "screening (same budget each)"),
                             (axes[1], finals, "finals (30 min budget)")):
        names = [r["run"].removeprefix("final-") for r in group]
        x = np.arange(len(names))
        for k, (label, fn) in enumerate(metrics):
            ax.bar(x + (k - 1) * 0.27, [fn(r["scores"]) for r in group], 0.27, label=label)
        ax.set_xticks(x, names, rotation=35, ha="right", fontsize=8)
        ax.set_ylabel("NME box %")
        ax.set_title(title)
        ax.legend(fontsize=7)
        ax.grid(axis="y", alpha=0.3)
    ax = axes[2]
    if scaling:
        ns = [r["n_synthetic"] for r in scaling]
        for label, fn in metrics:
            ax.plot(ns, [fn(r["scores"]) for r in scaling], "o-", label=label)
        ax.set_xscale("log")
        ax.set_xticks(ns, [str(n) for n in ns])
        ax.set_xlabel("renders trained on (same budget)")
        ax.set_ylabel("NME box %")
        ax.set_title(f"data scaling: {recipe}")
        ax.legend(fontsize=7)
        ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(out / "study.png")
    plt.close(fig)


if __name__ == "__main__":
    main()
