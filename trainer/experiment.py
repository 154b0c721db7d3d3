"""`facegen experiment CONFIG.yaml`: strategies x real-set sizes x seeds, each cell trained and scored on
real faces, then one report (the comparison of the Datagen study: error against the number of real faces,
one line per strategy).

Cells run one after another; each writes `cells/<id>/result.json` (atomically) when it is scored, and a
rerun skips the cells that have one, so a killed experiment resumes where it stopped (an unfinished
cell starts again from scratch). The report is rebuilt from every result after each cell:
`report.md` (table), `results.json` (every number), `nme_vs_nreal.png`, `ced_<N>.png`.

Config (trainer/experiments/example.yaml is a complete one; docs/trainer.md explains it):

    data: [data/i68_3d]                  # rendered shards (strategies that read them)
    real: {path: ../shared/data/aflw2000-3d-half, test_fraction: 0.2, val_fraction: 0.1, split_seed: 0}
    test: held-out                       # or {dataset: 300w|aflw2000|folder, root: PATH, split: full}
    strategies: [synthetic-only, real-only, mixed, fine-tune, {strategy: mixed, adapter: mlp}]
    n_real: [0, 50, 250, all]
    seeds: [0, 1]
    train: {model: resnet18, input_size: 128, steps: 500, batch_size: 16}   # any TrainConfig field
    adapt: mlp                           # optional: also fit a test-time adapter on each cell's real faces

With `adapt`, every cell whose model has no adapter of its own gets one fitted afterwards on the same
real training faces (`facegen adapt`), and is scored in both modes: `nearest` (the spec's nearest
points) and `adapter`. The synthetic-only model is trained once per seed and adapted at every N.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass, fields
from pathlib import Path

import numpy as np
import yaml

from facegen.errors import FacegenError
from facegen.trainer.score import overall

CONFIG_KEYS = {"name", "data", "real", "test", "strategies", "n_real", "seeds", "train", "out", "adapt"}
REAL_KEYS = {"path", "format", "test_fraction", "val_fraction", "split_seed"}
TEST_KEYS = {"dataset", "root", "split"}
# TrainConfig fields a cell sets itself; the config's `train` section may not
CELL_FIELDS = {"data", "out", "strategy", "real", "real_format", "n_real", "real_val_fraction", "real_test_fraction",
               "real_split_seed", "init", "seed", "resume", "adapter"}


@dataclass(frozen=True)
class Cell:
    strategy: str
    adapter: str | None
    n_real: int | None  # None: all the real training faces
    seed: int

    @property
    def variant(self) -> str:
        return self.strategy + (f"+{self.adapter}" if self.adapter else "")

    @property
    def labelled(self) -> bool:
        """Whether the strategy trains on labelled real faces (else one model serves every N_real)."""
        from facegen.trainer.strategies import get_strategy

        return "real" in get_strategy(self.strategy).sources

    @property
    def id(self) -> str:
        return f"{self.variant}_n{'all' if self.n_real is None else self.n_real}_s{self.seed}"


@dataclass
class Experiment:
    path: Path
    name: str
    data: list[str]
    real: dict
    test: str | dict
    variants: list[tuple[str, str | None]]
    n_real: list[int | None]
    seeds: list[int]
    train: dict
    out: Path
    adapt: dict | None = None  # AdaptConfig fields of the test-time adapter (None: no test-time adapter)


def _fail(path: Path, key: str, why: str) -> FacegenError:
    return FacegenError(f"{path}: {key}: {why}")


def load_experiment(path: Path | str, out: Path | str | None = None) -> Experiment:
    """Read and check an experiment config; every problem names the file, the key and what to write."""
    from facegen.trainer.strategies import list_strategies
    from facegen.trainer.train import TrainConfig

    path = Path(path)
    try:
        d = yaml.safe_load(path.read_text())
    except OSError as e:
        raise FacegenError(f"{path}: cannot read the experiment config ({e.strerror})") from None
    except yaml.YAMLError as e:
        raise FacegenError(f"{path}: not valid YAML ({e})") from None
    if not isinstance(d, dict):
        raise FacegenError(f"{path}: an experiment config is a YAML mapping (see trainer/experiments/example.yaml)")
    unknown = sorted(set(d) - CONFIG_KEYS)
    if unknown:
        raise _fail(path, unknown[0], f"unknown key; the keys are {', '.join(sorted(CONFIG_KEYS))}")
    base = path.parent

    def rel(p) -> str:  # paths in the config are relative to the config file; ~ is the home folder
        p = Path(str(p)).expanduser()
        return str(p if p.is_absolute() else (base / p))

    data = d.get("data") or []
    if isinstance(data, str):
        data = [data]
    if not isinstance(data, list) or not all(isinstance(x, str) for x in data):
        raise _fail(path, "data", "a shard folder or a list of them")
    real = d.get("real")
    if isinstance(real, str):
        real = {"path": real}
    if not isinstance(real, dict) or "path" not in real:
        raise _fail(path, "real", "{path: FOLDER, ...} with the real labelled faces (300-W, AFLW2000-3D, .pts)")
    bad = sorted(set(real) - REAL_KEYS)
    if bad:
        raise _fail(path, f"real.{bad[0]}", f"unknown key; use {', '.join(sorted(REAL_KEYS))}")
    real = {"format": "auto", "test_fraction": 0.2, "val_fraction": 0.1, "split_seed": 0, **real,
            "path": rel(real["path"])}
    for k in ("test_fraction", "val_fraction"):
        if not (isinstance(real[k], (int, float)) and 0 <= real[k] < 1):
            raise _fail(path, f"real.{k}", f"a fraction in [0, 1), not {real[k]!r}")
    test = d.get("test", "held-out")
    if test != "held-out":
        if not isinstance(test, dict) or set(test) - TEST_KEYS or "dataset" not in test or "root" not in test:
            raise _fail(path, "test", "held-out (the real set's test faces) or {dataset: 300w|aflw2000|folder, "
                                      "root: PATH, split: full}")
        if test["dataset"] not in ("300w", "aflw2000", "folder"):
            raise _fail(path, "test.dataset", f"300w, aflw2000 or folder, not {test['dataset']!r}")
        test = {"split": "full", **test, "root": rel(test["root"])}
    elif real["test_fraction"] == 0:
        raise _fail(path, "real.test_fraction", "is 0, so `test: held-out` has no faces; hold some out (0.2)")

    variants = []
    for i, s in enumerate(d.get("strategies") or []):
        name, adapter = (s, None) if isinstance(s, str) else (s.get("strategy"), s.get("adapter")) \
            if isinstance(s, dict) else (None, None)
        if name not in list_strategies():
            raise _fail(path, f"strategies[{i}]", f"{s!r}: a strategy name ({', '.join(list_strategies())}) or "
                                                  "{strategy: NAME, adapter: mlp}")
        variants.append((name, adapter))
    if not variants:
        raise _fail(path, "strategies", "list at least one strategy")
    n_real = []
    for v in d.get("n_real", ["all"]):
        if v == "all":
            n_real.append(None)
        elif isinstance(v, int) and not isinstance(v, bool) and v >= 0:
            n_real.append(v)
        else:
            raise _fail(path, "n_real", f"{v!r}: counts of real faces (0, 50, ...) or all")
    seeds = d.get("seeds", [0])
    if not (isinstance(seeds, list) and seeds and all(isinstance(s, int) and s >= 0 for s in seeds)):
        raise _fail(path, "seeds", "a list of seeds >= 0, e.g. [0, 1, 2]")
    train = d.get("train") or {}
    allowed = {f.name for f in fields(TrainConfig)} - CELL_FIELDS
    for k in train:
        if k not in allowed:
            why = "is set by each cell" if k in CELL_FIELDS else "not a training option"
            raise _fail(path, f"train.{k}", f"{why}; the options are {', '.join(sorted(allowed))}")
    if any(v[0] != "real-only" for v in variants) and not data:
        raise _fail(path, "data", "the synthetic strategies need rendered shards (facegen render ... --out FOLDER)")
    adapt = d.get("adapt")
    if adapt is not None:
        adapt = {"adapter": adapt} if isinstance(adapt, str) else adapt
        from facegen.trainer.adapt import AdaptConfig

        allowed_adapt = {f.name for f in fields(AdaptConfig)} - {"checkpoint", "out", "real", "real_format", "n_real",
                                                                  "real_val_fraction", "real_test_fraction",
                                                                  "real_split_seed", "seed"}
        if not isinstance(adapt, dict) or set(adapt) - allowed_adapt:
            raise _fail(path, "adapt", f"an adapter kind (mlp, unet) or a mapping of {', '.join(sorted(allowed_adapt))}")
    return Experiment(path, str(d.get("name", path.stem)), [rel(x) for x in data], real, test, variants, n_real,
                      seeds, dict(train), Path(out) if out else Path(rel(d.get("out", f"runs/{path.stem}"))), adapt)


def plan_cells(exp: Experiment) -> list[Cell]:
    """Every cell in run order. Strategies without labelled real faces (synthetic-only, dann, daln) first,
    one model per seed at N = 0 (fine-tune starts from synthetic-only's); at N > 0 they appear only with
    `adapt`, reusing that model under a test-time adapter fitted on N faces. The strategies that train on
    labelled real faces run at every N > 0."""
    cells = []
    for seed in exp.seeds:
        for name, adapter in exp.variants:
            if not Cell(name, adapter, 0, seed).labelled:
                cells.append(Cell(name, adapter, 0, seed))
    for seed in exp.seeds:
        for n in exp.n_real:
            for name, adapter in exp.variants:
                cell = Cell(name, adapter, n, seed)
                if n != 0 and (cell.labelled or exp.adapt):
                    cells.append(cell)
    return cells


def _train_config(exp: Experiment, cell: Cell, folder: Path):
    from facegen.trainer.train import TrainConfig

    kw = dict(exp.train)
    kw.setdefault("workers", min(2, os.cpu_count() or 1))
    init = None
    if cell.strategy == "fine-tune":
        init = str(exp.out / "cells" / Cell("synthetic-only", None, 0, cell.seed).id / "best.pt")
        if not Path(init).exists():
            raise FacegenError(f"{exp.path}: fine-tune starts from the synthetic-only cell of seed {cell.seed}: "
                               "list synthetic-only in strategies")
    uses_real = cell.labelled
    extra = {"adapter": cell.adapter} if cell.adapter else {}
    return TrainConfig(data=exp.data if cell.strategy != "real-only" else [], out=str(folder), strategy=cell.strategy,
                       real=exp.real["path"], real_format=exp.real["format"],
                       n_real=cell.n_real if uses_real else 0, real_val_fraction=exp.real["val_fraction"],
                       real_test_fraction=exp.real["test_fraction"], real_split_seed=exp.real["split_seed"],
                       init=init, seed=cell.seed, **extra, **kw)


def _adapt_cell(exp: Experiment, cell: Cell, checkpoint: Path, folder: Path) -> dict:
    """A test-time adapter on the cell's own real training faces (the same split as its training)."""
    from facegen.trainer.adapt import AdaptConfig, adapt

    cfg = AdaptConfig(**{"device": exp.train.get("device", "auto"), **exp.adapt}, checkpoint=str(checkpoint),
                      out=str(folder / "adapted.pt"), real=exp.real["path"], real_format=exp.real["format"],
                      n_real=cell.n_real, real_val_fraction=exp.real["val_fraction"],
                      real_test_fraction=exp.real["test_fraction"], real_split_seed=exp.real["split_seed"],
                      seed=cell.seed)
    return adapt(cfg, log=lambda line: None)


def _test_set(exp: Experiment):
    from facegen.trainer.evaluate import open_eval_dataset
    from facegen.trainer.real_data import RealView, open_real, real_split

    if exp.test == "held-out":
        base = open_real(exp.real["path"], exp.real["format"])
        split = real_split(len(base), None, exp.real["split_seed"], exp.real["val_fraction"], exp.real["test_fraction"])
        return RealView(base, split.test)
    return open_eval_dataset(exp.test["dataset"], exp.test["root"], exp.test["split"])


def _score_cell(checkpoint: Path, test_set, folder: Path) -> dict:
    """Both evaluation modes where the checkpoint has an adapter: {mode: {norm: {subset: metrics}}}, plus
    each mode's per-image errors for the CED curves."""
    from facegen.trainer.evaluate import evaluate
    from facegen.trainer.predictor import load_predictor

    report = evaluate(load_predictor(checkpoint), test_set, folder / "eval")
    modes = report.get("modes") or {"nearest": report}
    return {mode: {"metrics": r["metrics"], "per_image": r["per_image"]} for mode, r in modes.items()}


def run_experiment(exp: Experiment, progress: bool = True, echo=print) -> dict:
    """Train and score every cell not finished yet, then write the report; returns the results."""
    from facegen.trainer.train import train

    cells = plan_cells(exp)
    (exp.out / "cells").mkdir(parents=True, exist_ok=True)
    (exp.out / "experiment.yaml").write_text(exp.path.read_text())
    test_set = _test_set(exp)
    todo = [c for c in cells if not (exp.out / "cells" / c.id / "result.json").exists()]
    if len(todo) < len(cells):
        echo(f"{len(cells) - len(todo)} of {len(cells)} cells already finished in {exp.out}; running the other "
             f"{len(todo)}")
    durations: list[float] = []
    for k, cell in enumerate(todo):
        left = "" if not durations else f", about {_minutes(np.mean(durations) * (len(todo) - k))} left"
        echo(f"[{k + 1}/{len(todo)}] {cell.variant}  N_real={'all' if cell.n_real is None else cell.n_real}  "
             f"seed={cell.seed}{left}")
        t0 = time.perf_counter()
        folder = exp.out / "cells" / cell.id
        if folder.exists():  # an unfinished cell from a killed run: start it again
            import shutil
            shutil.rmtree(folder)
        if not cell.labelled and cell.n_real != 0:  # trained once, in its N = 0 cell
            folder.mkdir(parents=True)
            checkpoint = exp.out / "cells" / Cell(cell.strategy, cell.adapter, 0, cell.seed).id / "best.pt"
            summary = {"reused": str(checkpoint)}
        else:
            summary = train(_train_config(exp, cell, folder), progress=progress)
            checkpoint = folder / "best.pt"
        if exp.adapt and cell.n_real != 0 and not cell.adapter:
            summary["adapt"] = _adapt_cell(exp, cell, checkpoint, folder)
            checkpoint = folder / "adapted.pt"
        result = {"cell": cell.__dict__ | {"id": cell.id, "variant": cell.variant, "labelled": cell.labelled},
                  "train": summary,
                  "modes": _score_cell(checkpoint, test_set, folder), "seconds": time.perf_counter() - t0}
        tmp = folder / "result.json.tmp"
        tmp.write_text(json.dumps(result))
        tmp.replace(folder / "result.json")
        durations.append(result["seconds"])
        write_report(exp, cells)
    results = write_report(exp, cells)
    echo(f"report: {exp.out / 'report.md'}  ({exp.out / 'nme_vs_nreal.png'}, {exp.out / 'results.json'})")
    return results


def _minutes(seconds: float) -> str:
    return f"{seconds / 60:.1f} min" if seconds >= 60 else f"{seconds:.0f} s"


def _norm(metrics: dict) -> str:
    return "box" if "box" in metrics and "inter_ocular" not in metrics else next(iter(metrics))


def write_report(exp: Experiment, cells: list[Cell]) -> dict:
    """report.md, results.json and the figures from every finished cell."""
    done = []
    for c in cells:
        f = exp.out / "cells" / c.id / "result.json"
        if f.exists():
            done.append(json.loads(f.read_text()))
    rows: dict[tuple[str, str], dict] = {}  # (variant, mode) -> {n_real: [nme per seed]}
    norm = None
    for r in done:
        for mode, rep in r["modes"].items():
            norm = norm or _norm(rep["metrics"])
            m = overall(rep["metrics"][norm])
            n = r["cell"]["n_real"]
            rows.setdefault((r["cell"]["variant"], mode), {}).setdefault("all" if n is None else n, []).append(m)
    ns = [("all" if n is None else n) for n in exp.n_real]
    results = {"name": exp.name, "norm": norm, "test": exp.test, "real": exp.real, "cells": done,
               "table": {f"{v} [{mode}]": {str(n): _agg(ms) for n, ms in per_n.items()}
                         for (v, mode), per_n in rows.items()}}
    (exp.out / "results.json").write_text(json.dumps(results, indent=1))
    lines = [f"# {exp.name}", "",
             f"NME % ({norm} normalisation) on {'the held-out real test faces' if exp.test == 'held-out' else exp.test['root']}"
             f", mean ± std over seeds {exp.seeds}; columns: real training faces (N_real). "
             "Strategies without labelled real faces (synthetic-only, dann, daln) use none: their "
             "nearest-subset value is repeated.", "",
             "| strategy | mode | " + " | ".join(str(n) for n in ns) + " |",
             "|---|---|" + "---|" * len(ns)]
    for (v, mode), per_n in rows.items():
        cells_txt = []
        for n in ns:
            ms = per_n.get(n) or per_n.get(0)
            cells_txt.append("" if not ms else _fmt(_agg(ms)))
        lines.append(f"| {v} | {mode} | " + " | ".join(cells_txt) + " |")
    lines += ["", f"{len(done)} of {len(cells)} cells finished. Figures: nme_vs_nreal.png, ced_N.png."]
    (exp.out / "report.md").write_text("\n".join(lines) + "\n")
    if done:
        _plot_curves(exp, rows, ns, norm)
        _plot_ced(exp, done, norm)
    return results


def _labelled(result: dict) -> bool:
    c = result["cell"]
    return c["labelled"] if "labelled" in c else Cell(c["strategy"], c["adapter"], c["n_real"], c["seed"]).labelled


def _agg(ms: list[dict]) -> dict:
    nme = [m["nme"] for m in ms]
    return {"nme": float(np.mean(nme)), "nme_std": float(np.std(nme)), "seeds": len(ms),
            **{k: float(np.mean([m[k] for m in ms])) for k in ms[0] if k not in ("nme", "count")}}


def _fmt(a: dict) -> str:
    return f"{a['nme']:.2f}" + (f" ± {a['nme_std']:.2f}" if a["seeds"] > 1 else "")


def _plot_curves(exp: Experiment, rows: dict, ns: list, norm: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    numeric = [n for n in ns if n != "all" and n != 0]
    top = max(numeric, default=1)
    xpos = {n: (top * 2 if n == "all" else n) for n in ns if n != 0}  # "all" drawn right of the largest N
    fig, ax = plt.subplots(figsize=(6, 4), dpi=100)
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for k, ((v, mode), per_n) in enumerate(rows.items()):
        label = f"{v} ({mode})" if mode != "nearest" else v
        colour = colours[k % len(colours)]
        if 0 in per_n:  # trained without labelled real faces: one value for every N
            a = _agg(per_n[0])
            ax.axhline(a["nme"], ls="--", color=colour, label=f"{label}: {a['nme']:.2f}")
            continue
        xs = [n for n in ns if n in per_n and n in xpos]
        if not xs:
            continue
        ys = [_agg(per_n[n]) for n in xs]
        ax.errorbar([xpos[n] for n in xs], [y["nme"] for y in ys], yerr=[y["nme_std"] for y in ys], marker="o",
                    capsize=3, color=colour, label=label)
    ax.set_xscale("log")
    ax.xaxis.set_minor_locator(matplotlib.ticker.NullLocator())
    ax.set_xticks([xpos[n] for n in ns if n in xpos])
    ax.set_xticklabels([str(n) for n in ns if n in xpos])
    ax.set_xlabel("real training faces (N_real)")
    ax.set_ylabel(f"NME % ({norm})")
    ax.set_title(exp.name, fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(exp.out / "nme_vs_nreal.png")
    plt.close(fig)


def _plot_ced(exp: Experiment, done: list[dict], norm: str) -> None:
    """One CED figure per N_real: each strategy's curve in each mode (first seed), and the synthetic-only
    model without real faces on every figure."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from facegen.trainer.metrics import ced

    first = exp.seeds[0]
    for n in exp.n_real:
        if n == 0:
            continue
        chosen = [r for r in done if r["cell"]["seed"] == first and r["cell"]["n_real"] in (n, 0)]
        if not chosen:
            continue
        fig, ax = plt.subplots(figsize=(5, 4), dpi=100)
        for r in chosen:
            for mode, rep in r["modes"].items():
                if r["cell"]["n_real"] != 0 and mode == "nearest" and not _labelled(r):
                    continue  # the N = 0 cell draws the model without real faces
                e = np.array(list(rep["per_image"][norm].values()))
                xs, ys = ced(e, 0.1)
                ax.plot(xs * 100, ys * 100, label=f"{r['cell']['variant']}{'' if mode == 'nearest' else ' (' + mode + ')'}"
                                                  f" {100 * e.mean():.2f}")
        ax.set_xlabel(f"NME % ({norm})")
        ax.set_ylabel("images %")
        ax.set_xlim(0, 10)
        ax.set_ylim(0, 100)
        ax.grid(alpha=0.3)
        ax.set_title(f"N_real = {'all' if n is None else n}", fontsize=10)
        ax.legend(fontsize=7, loc="lower right")
        fig.tight_layout()
        fig.savefig(exp.out / f"ced_{'all' if n is None else n}.png")
        plt.close(fig)
