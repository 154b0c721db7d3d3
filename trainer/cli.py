"""Click commands `facegen train | adapt | eval | gap | score | predict` (routed here from facegen/cli.py).

Options are checked by their click types (ranges, output folders) before a command starts any work."""

from __future__ import annotations

import json
from pathlib import Path

import click

from facegen.cli_types import FiniteFloat, OutFolder
from facegen.errors import FacegenError, user_errors
from facegen.trainer import recipe

POSITIVE = FiniteFloat(min=0, min_open=True)


def _model_name(ctx, param, value: str) -> str:
    from facegen.trainer.models import list_models

    if value not in list_models():
        raise click.BadParameter(f"unknown model {value!r}; choose one of {', '.join(list_models())}.", ctx, param)
    return value


def _model_kwargs(model: str, pairs: tuple[str, ...]) -> dict:
    """--model-arg KEY=VALUE pairs (VALUE as JSON, else a string), checked against the model's keywords."""
    from facegen.trainer.models import check_model_kwargs

    kwargs = {}
    for pair in pairs:
        k, eq, v = pair.partition("=")
        k = k.strip()
        if not eq or not k:
            raise FacegenError(f"--model-arg {pair}: expected KEY=VALUE, e.g. --model-arg stacks=1")
        if k == "in_chans":
            raise FacegenError(f"--model-arg {pair}: in_chans is set by --gray (1) or --color (3)")
        try:
            kwargs[k] = json.loads(v)
        except json.JSONDecodeError:
            kwargs[k] = v
        try:
            check_model_kwargs(model, {k: kwargs[k]})
        except ValueError as e:
            raise FacegenError(f"--model-arg {pair}: {e}") from None
    return kwargs


def _norm(ctx, param, values: tuple[str, ...]) -> tuple[str, ...]:
    from facegen.trainer.metrics import canonical_norm

    try:
        return tuple(canonical_norm(v) for v in values)
    except ValueError as e:
        raise click.BadParameter(str(e), ctx, param) from None


def _device(ctx, param, value: str) -> str:
    from facegen.trainer.predictor import pick_device

    pick_device(value)  # a FacegenError naming --device if this machine has no such device
    return value


DEVICE = click.option("--device", default="auto", show_default=True, callback=_device,
                      help="auto, cpu, cuda, cuda:1 ...")
FLIP = click.option("--flip/--no-flip", default=None,
                    help="Test-time flip: average the predictions on each crop and its mirror  [default: as the "
                         "checkpoint was trained, facegen train --test-flip]")
DETECTOR = click.option("--detector", type=click.Choice(["auto", "haar", "dlib-hog", "dlib-cnn"]), default="auto",
                        show_default=True,
                        help='Face detector: auto (the best installed: dlib-cnn, dlib-hog, haar), haar (OpenCV), '
                             'dlib-hog or dlib-cnn (pip install "facegen[detectors]").')


REAL_FORMAT = click.option("--real-format", type=click.Choice(["auto", "300w", "aflw2000", "300w-lp", "folder"]),
                           default="auto", show_default=True, help="Layout of --real (auto: recognised from its files).")
STRATEGY_HELP = ("synthetic-only (shards), real-only (--real), mixed (shards + --real in every batch), "
                 "fine-tune (--init checkpoint, then --real at lr x 0.1), dann and daln (shards + --unlabelled "
                 "real images: domain adaptation; daln needs a heatmap model).")


@click.command()
@click.option("--data", "data", multiple=True, type=click.Path(), help="Shard folder (repeatable).")
@click.option("--n-synthetic", default=None, type=click.IntRange(min=1),
              help="Train on the first N rendered samples (a larger N contains a smaller one); default all.")
@click.option("--strategy", default="synthetic-only", show_default=True, help=STRATEGY_HELP)
@click.option("--real", default=None, type=click.Path(exists=True, file_okay=False),
              help="Real labelled faces: 300-W (its train split), AFLW2000-3D, 300W-LP or any .pts folder.")
@REAL_FORMAT
@click.option("--n-real", default=None, type=click.IntRange(min=0),
              help="Train on N real faces, a fixed subset by --seed (a larger N contains a smaller one); default all.")
@click.option("--real-val-fraction", default=0.1, show_default=True, type=FiniteFloat(0, 1, max_open=True),
              help="Real faces held out to choose best.pt (fixed by --seed, whatever --n-real).")
@click.option("--real-test-fraction", default=0.0, show_default=True, type=FiniteFloat(0, 1, max_open=True),
              help="Real faces held out for scoring only (never trained or validated on).")
@click.option("--real-split-seed", default=None, type=click.IntRange(min=0),
              help="Seed of the real val / test hold-out (default --seed): keeps it fixed across seeds.")
@click.option("--real-share", default=0.25, show_default=True, type=FiniteFloat(0, 1, min_open=True, max_open=True),
              help="mixed: share of real crops in every batch.")
@click.option("--init", default=None, type=click.Path(), help="fine-tune: the checkpoint to start from.")
@click.option("--unlabelled", default=None, type=click.Path(exists=True, file_okay=False),
              help="dann, daln: a folder of real face images, searched recursively; no labels needed (any beside "
                   "them are ignored), OpenCV's face detector crops the largest face of each.")
@click.option("--da-weight", default=1.0, show_default=True, type=FiniteFloat(min=0),
              help="dann, daln: weight of the domain adaptation loss beside the landmark loss.")
@click.option("--adapter", default=None, type=click.Choice(["mlp", "unet"]),
              help="mixed / fine-tune: real labels supervise the model through a label adapter trained with it "
                   "(label transfer; unet: heatmap models). Saved in the checkpoint; eval scores both ways.")
@click.option("--model", default=recipe.MODEL, show_default=True, callback=_model_name,
              help="resnet18_heatmap, resnet50_heatmap (heatmaps + soft-argmax), resnet18, resnet50 (coordinate "
                   "regression), hourglass. The defaults of model, sizes, losses and flip are the recipe study's "
                   "winner (docs/recipe-study.md).")
@click.option("--model-arg", multiple=True, help="Model keyword, e.g. --model-arg stacks=1 --model-arg channels=64.")
@click.option("--out", default="runs/train", show_default=True, type=OutFolder(), help="Output folder.")
@click.option("--epochs", default=10, show_default=True, type=click.IntRange(min=1))
@click.option("--steps", default=None, type=click.IntRange(min=1), help="Total optimiser steps (overrides --epochs).")
@click.option("--batch-size", default=recipe.BATCH_SIZE, show_default=True, type=click.IntRange(min=1))
@click.option("--lr", default=1e-3, show_default=True, type=POSITIVE)
@click.option("--input-size", default=recipe.INPUT_SIZE, show_default=True, type=click.IntRange(min=1))
@click.option("--crop-scale", default=1.25, show_default=True, type=POSITIVE)
@click.option("--gray/--color", default=False, show_default=True, help="Grayscale input (ResNet baseline: 128 px).")
@click.option("--augment", type=click.Choice(["default", "none"]), default="default", show_default=True)
@click.option("--workers", default=2, show_default=True, type=click.IntRange(min=0))
@click.option("--val-fraction", default=0.05, show_default=True, type=FiniteFloat(0, 1, max_open=True),
              help="Held-out synthetic share.")
@click.option("--val-every", default=0, show_default=True, type=click.IntRange(min=0),
              help="Validate every N steps (0: each epoch).")
@click.option("--val-real", default=None, type=click.Path(exists=True, file_okay=False),
              help="Real .pts folder scored in iBUG-68 terms.")
@click.option("--test-flip/--no-test-flip", default=recipe.TEST_FLIP, show_default=True,
              help="Predict on each crop and its mirror and average (saved in the checkpoint: eval, predict and "
                   "validation do it too).")
@click.option("--coord-loss", type=click.Choice(["l1", "wing", "rmse"]), default=recipe.COORD_LOSS, show_default=True)
@click.option("--heatmap-loss", type=click.Choice(["kl", "mse", "awing"]), default=recipe.HEATMAP_LOSS,
              show_default=True,
              help="Heatmap models: KL of the softmax heatmap to a gaussian, or MSE / adaptive wing on peak-scaled maps.")
@click.option("--heatmap-weight", default=1.0, show_default=True, type=FiniteFloat(min=0))
@click.option("--occlusion-aware", is_flag=True,
              help="Down-weight (by default mask) the loss of rendered points an occluder hides: hair, facial hair, "
                   "clothing, glasses frames, dark lenses, face masks, hats, hands, held objects (the shards' "
                   "occluded_by). Points the face itself hides and points out of frame keep full weight: a "
                   "detector must infer those from the face. Weighted in the coordinate and heatmap losses alike, "
                   "as a weighted mean over the batch's points, so the loss keeps its scale. Real faces (which do "
                   "not say what hides a point) are trained as without it. Saved in the checkpoint's config.")
@click.option("--occluded-weight", default=0.0, show_default=True, type=FiniteFloat(0, 1),
              help="With --occlusion-aware: the loss weight of an occluded point (0: masked, no gradient; 1: plain "
                   "training). Masking is the default: under a hand or a beard the image holds no evidence of "
                   "the point, so its exact label would teach the model to guess from the face's shape alone.")
@click.option("--seed", default=0, show_default=True, type=click.IntRange(min=0))
@DEVICE
@click.option("--dist-backend", type=click.Choice(["auto", "nccl", "gloo"]), default="auto", show_default=True,
              help="Under torchrun: how the processes exchange gradients (auto: nccl on GPUs, gloo on CPUs). "
                   "Each process takes cuda:LOCAL_RANK; --batch-size is per process.")
@click.option("--no-amp", is_flag=True, help="Disable mixed precision on CUDA.")
@click.option("--resume", default=None, type=click.Path(), help="Continue from a last.pt.")
def train(data, n_synthetic, strategy, real, real_format, n_real, real_val_fraction, real_test_fraction, real_split_seed, real_share,
          init, unlabelled, da_weight, adapter, model,
          model_arg, out, epochs, steps, batch_size, lr, input_size, crop_scale, gray, augment, workers,
          val_fraction, val_every, val_real, test_flip, coord_loss, heatmap_loss, heatmap_weight, occlusion_aware,
          occluded_weight, seed, device, dist_backend, no_amp, resume):
    """Train a landmark detector on shards and / or real faces; writes last.pt, best.pt and history.json.

    \b
    Examples:
      facegen train --data data/i68 --steps 3780 --out runs/i68     # the recipe study's winner, ~30 min on 2 CPUs
      facegen train --data data/i68 --model hourglass --input-size 256 --out runs/hg
      facegen train --data data/i68 --model resnet18 --input-size 128 --gray --steps 2000 --out runs/r18
      facegen train --data data/i68 --n-synthetic 500 --out runs/i68-500  # the first 500 renders only
      facegen train --data data/i68 --occlusion-aware --out runs/i68-occl  # no loss on points an occluder hides
      facegen train --data data/d490 --data data/d490b --val-real ../shared/data/real300w-mini --out runs/d490
      facegen train --data data/i68 --resume runs/hg/last.pt --out runs/hg
    Several GPUs, one process each (DistributedDataParallel; docs/trainer.md, "Training on several GPUs"):
      torchrun --nproc-per-node 8 -m facegen.cli train --data data/i68 --batch-size 32 --out runs/i68-8gpu
    Synthetic + real (docs/trainer.md, "Strategies"):
      A=../shared/data/aflw2000-3d-half
      facegen train --strategy real-only --real $A --n-real 250 --model resnet18 --input-size 128 --out runs/real
      facegen train --strategy mixed --data data/i68_3d --real $A --n-real 50 --real-share 0.25 --out runs/mix
      facegen train --strategy fine-tune --init runs/syn/best.pt --real $A --n-real 50 --steps 500 --out runs/ft
    Synthetic + unlabelled real images (domain adaptation; docs/trainer.md, "Domain adaptation"):
      U=../shared/data/real300w-mini    # any folder of face photos: labels are not read
      facegen train --strategy dann --data data/i68 --unlabelled $U --model resnet18 --input-size 128 --out runs/dann
      facegen train --strategy daln --data data/i68 --unlabelled $U --model hourglass --da-weight 0.5 --out runs/daln
    Label transfer (real labels through a learned adapter, docs/trainer.md, "Adapters"):
      facegen train --strategy mixed --data data/d490 --real $A --n-real 50 --adapter mlp --out runs/mix-mlp

    The points a model learns come from the shards' spec (real labels supervise its iBUG-68 points), or
    are iBUG-68 for real-only. A checkpoint embeds its config and landmark spec: `facegen eval` and
    `facegen predict` need nothing else.
    """
    from facegen.api import train as run
    from facegen.trainer.distributed import is_main_process

    result = run(list(data), out=out, strategy=strategy, model=model, model_args=_model_kwargs(model, model_arg),
                 steps=steps, epochs=epochs, batch_size=batch_size, lr=lr, input_size=input_size,
                 crop_scale=crop_scale, gray=gray, augment=augment, workers=workers, n_synthetic=n_synthetic,
                 val_fraction=val_fraction, val_every=val_every, val_real=val_real, test_flip=test_flip,
                 coord_loss=coord_loss, heatmap_loss=heatmap_loss, heatmap_weight=heatmap_weight,
                 occlusion_aware=occlusion_aware, occluded_weight=occluded_weight, real=real,
                 real_format=real_format, n_real=n_real, real_val_fraction=real_val_fraction,
                 real_test_fraction=real_test_fraction, real_split_seed=real_split_seed, real_share=real_share,
                 init=init, unlabelled=unlabelled, da_weight=da_weight, adapter=adapter, seed=seed, device=device,
                 dist_backend=dist_backend, amp=not no_amp, resume=resume)
    if is_main_process():  # under torchrun: once, from rank 0
        click.echo(json.dumps(result.summary, indent=2))


def _print_report(report: dict) -> None:
    from facegen.trainer.evaluate import modes_table
    from facegen.trainer.score import breakdown_table, markdown_table

    modes = report.get("modes") or {}
    if "adapter" in modes:
        info = modes["adapter"].get("adapter") or {}
        click.echo(f"iBUG-68 two ways: nearest (the spec's nearest point for each) and adapter (the checkpoint's "
                   f"{info.get('name')} adapter, fitted in the {info.get('convention')} jaw convention)")
        click.echo(modes_table(report))
        if info.get("convention") and info["convention"] != report["jaw"]["labels"]:
            click.echo(f"note: the adapter was fitted on {info['convention']}-jaw labels and these are "
                       f"{report['jaw']['labels']}-jaw; its jaw points follow the other convention.")
    else:
        click.echo(markdown_table(report))
    if breakdown_table(report):
        click.echo(breakdown_table(report))
    jaw = report.get("jaw") or {}
    if jaw.get("spec") and jaw["spec"] != jaw["labels"]:
        what = {"2d": "the visible outline (300-W markup)", "3d": "fixed surface points (3D-fit convention)"}
        click.echo(f"note: this model's jaw follows {what[jaw['spec']]}, the labels' jaw {what[jaw['labels']]}; "
                   f"to match them, train on shards rendered with --spec {'ibug68_3d' if jaw['labels'] == '3d' else 'ibug68'}. "
                   "The other 51 points are unaffected.")


@click.command()
@click.option("--checkpoint", required=True, type=click.Path())
@click.option("--dataset", type=click.Choice(["300w", "aflw2000", "folder", "shards"]), default="300w",
              show_default=True, help="300w (official layout), aflw2000 (AFLW2000-3D: .jpg + .mat), folder (any .pts "
                                      "folder) or shards (a folder written by facegen render, any spec).")
@click.option("--root", required=True, type=click.Path(), help="The dataset's folder.")
@click.option("--split", default="full", show_default=True,
              help="300-W split: full, common, challenging, private, train (with --dataset 300w).")
@click.option("--box", type=click.Choice(["gt", "detector"]), default="gt", show_default=True,
              help="Face crop from the ground-truth landmark box (300-W protocol) or the face detector.")
@DETECTOR
@click.option("--out", default=None, type=OutFolder(), help="Write predictions, metrics, CED plots here.")
@FLIP
@DEVICE
def evaluate(checkpoint, dataset, root, split, box, detector, out, flip, device):
    """Predict with a checkpoint on 300-W, AFLW2000-3D, a .pts folder or rendered shards; score per subset.

    \b
    Examples:
      facegen eval --checkpoint runs/hg/best.pt --dataset 300w --root ~/data/300W --out runs/hg/eval
      facegen eval --checkpoint runs/hg/best.pt --dataset folder --root ../shared/data/real300w-mini
      facegen eval --checkpoint runs/hg/best.pt --dataset aflw2000 --root ../shared/data/aflw2000-3d-half
      facegen eval --checkpoint runs/hg/best.pt --dataset shards --root data/i68_test --out runs/hg/eval_syn

    Faces are cropped from the ground-truth box (the 300-W protocol); dense specs are scored on their
    iBUG-68 nearest-point subset. AFLW2000-3D is scored as the field reports it: NME by the
    ground-truth box, per |yaw| bin (0-30, 30-60, 60-90) and their balanced mean.

    Shards (held-out renders, any spec) are scored with no conversion: in the checkpoint's own points
    when they have the same landmark names, else on iBUG-68 on both sides; NME by the landmark box
    (and the eyes when iBUG-68), per |yaw| bin from the rendered head pose.

    Every report breaks the error down per face region (jaw, brows, nose, eyes, mouth, no_jaw ...),
    per subset (so per yaw bin where the pose is known) and, on shards, visible vs self-occluded
    points: a second table, "breakdown" in metrics.json and breakdown_<norm>.png.

    A checkpoint with a label adapter (facegen adapt, or train --adapter) is scored both ways, side by
    side: nearest subset and adapter. metrics.json keeps the nearest-subset report at its top level and
    both under "modes"; the adapter's predictions and report are in OUT/adapter/, the table in modes.md.
    """
    from facegen.api import evaluate as run

    report = run(checkpoint, root, dataset=dataset, split=split, box=box, out=out, flip=flip, device=device,
                 detector=detector)
    if report.get("detector"):
        click.echo(f"faces cropped by the {report['detector']} detector (--detector {detector})")
    _print_report(report)


@click.command()
@click.option("--checkpoint", required=True, type=click.Path())
@click.option("--shards", multiple=True, type=click.Path(exists=True, file_okay=False),
              help="A folder of rendered test shards, any spec (repeatable; e.g. raster then Cycles renders).")
@click.option("--real", multiple=True, type=click.Path(exists=True, file_okay=False),
              help="Real labelled faces (repeatable): 300-W (its full test split), AFLW2000-3D, 300W-LP or any "
                   ".pts folder, recognised by its files.")
@REAL_FORMAT
@click.option("--out", required=True, type=OutFolder(), help="Report folder: gap.md, gap.json, gap.png, sets/.")
@FLIP
@DEVICE
def gap(checkpoint, shards, real, real_format, out, flip, device):
    """Where the error grows from synthetic to real: one checkpoint on several test sets, one report.

    \b
    Example:
      facegen render --spec ibug68 --n 500 --seed 7 --renderer raster --out data/test_raster
      facegen render --spec ibug68 --n 500 --seed 7 --renderer cycles --out data/test_cycles
      facegen gap --checkpoint runs/hg/best.pt --shards data/test_raster --shards data/test_cycles \\
                  --real ../shared/data/real300w-mini --real ../shared/data/aflw2000-3d-half --out runs/hg/gap

    Each set is evaluated as facegen eval does it (OUT/sets/<name>/); gap.md has one row per set,
    ordered as given (shards first, then real): NME by the landmark box overall, per face region
    (jaw, brows, nose, eyes, mouth, no_jaw), per |yaw| bin and visible / hidden points where known,
    inter-ocular where 68 points; then a reading: the synthetic error itself, raster -> Cycles and
    synthetic -> real ratios per region and yaw bin, with the usual remedy. gap.json holds every
    number, gap.png the regions and yaw bins per set. Shards are compared on iBUG-68.
    """
    from facegen.trainer.gap import gap_report, gap_table, open_gap_sets, write_gap
    from facegen.trainer.predictor import load_predictor

    with user_errors():
        predictor = load_predictor(checkpoint, device, flip)
        sets = open_gap_sets(shards, real, real_format)
        report = gap_report(predictor, sets, out)
        write_gap(report, out)
    click.echo(gap_table(report))
    for line in report["reading"]:
        click.echo(f"- {line}")
    click.echo(f"\nreport: {Path(out) / 'gap.md'}")


@click.command()
@click.option("--predictions", "-p", required=True, type=click.Path(), help=".pts folder or JSON list.")
@click.option("--ground-truth", "-g", required=True, type=click.Path(), help=".pts folder or JSON list (SPIGA's).")
@click.option("--subsets", default=None, type=click.Path(), help="SPIGA *_db_info.json or {name: [indices]} JSON.")
@click.option("--norm", "norms", multiple=True, default=("inter_ocular", "inter_pupil", "box"), show_default=True,
              callback=_norm, help="inter_ocular (io), inter_pupil (ip) or box (repeatable).")
@click.option("--threshold", "thresholds", multiple=True, type=FiniteFloat(0, 1, min_open=True), default=(0.08, 0.10),
              show_default=True, help="AUC / FR threshold as a fraction in (0, 1] (repeatable).")
@click.option("--auc-method", type=click.Choice(["spiga", "ced"]), default="spiga", show_default=True)
@click.option("--out", default=None, type=OutFolder(), help="Write metrics.json, metrics.md, ced_*.png here.")
def score(predictions, ground_truth, subsets, norms, thresholds, auc_method, out):
    """Score predictions against ground truth: NME, AUC, FR, CED (knows nothing of models).

    \b
    Examples:
      facegen score --predictions preds/ --ground-truth ~/data/300W/ibug --out scores/      # .pts folders
      S=../shared/data/spiga-300w
      facegen score --predictions $S/300wpublic_results_300wpublic_test.json \\
                    --ground-truth $S/300wpublic_test.json --subsets $S/300wpublic_db_info.json --out scores/
    """
    from facegen.api import score as run

    _print_report(run(predictions, ground_truth, subsets=subsets, norms=norms, thresholds=thresholds,
                      auc_method=auc_method, out=out))


@click.command()
@click.argument("source", type=click.Path())
@click.option("--checkpoint", required=True, type=click.Path())
@click.option("-o", "--out", default="predictions", show_default=True, type=OutFolder())
@click.option("--no-adapter", is_flag=True, help="With an adapted checkpoint: write the model's own points instead "
                                                 "of the adapter's iBUG-68.")
@DETECTOR
@click.option("--smooth/--no-smooth", default=None,
              help="Smooth the box and landmarks over frames (default: on for a video, off for images; a folder "
                   "smoothed is read as frames in name order).")
@FLIP
@DEVICE
def predict(source, checkpoint, out, no_adapter, detector, smooth, flip, device):
    """Detect faces in IMAGE, DIR or VIDEO, predict landmarks, write overlays and JSON.

    \b
    Examples:
      facegen predict photo.jpg --checkpoint runs/hg/best.pt -o out/
      facegen predict clip.mp4 --checkpoint runs/hg/best.pt -o out/     # overlay mp4 + per-frame JSON
      facegen predict photo.jpg --checkpoint runs/hg/best_adapted.pt -o out/   # iBUG-68 via its adapter

    A checkpoint with a label adapter (facegen adapt) predicts iBUG-68 through it; the printed summary's
    "points" says which points were written. --no-adapter writes the model's own points.

    Faces are found by --detector: haar (OpenCV, always there), dlib-hog or dlib-cnn (pip install
    "facegen[detectors]"; dlib-cnn finds turned and dark faces, ~1-2 s an image on a CPU); auto, the
    default, takes the best installed; the summary's "detector" says which ran. Video boxes and landmarks
    are smoothed over frames (an EMA, restarted when the face jumps); --no-smooth turns it off.
    """
    from facegen.trainer.predict import run_predict
    from facegen.trainer.predictor import load_predictor

    with user_errors():
        predictor = load_predictor(checkpoint, device, flip)
        summary = run_predict(predictor, Path(source), Path(out), adapter=not no_adapter, detector=detector,
                              smooth=smooth)
    click.echo(json.dumps(summary))


@click.command()
@click.argument("config", type=click.Path(exists=True, dir_okay=False))
@click.option("--out", default=None, type=OutFolder(), help="Report folder (default: the config's `out`).")
@click.option("--dry-run", is_flag=True, help="List the cells and exit.")
def experiment(config, out, dry_run):
    """Train and score every cell of strategies x N_real x seeds; write a report folder.

    \b
    Example (edit the shard folder and sizes first; docs/trainer.md, "Experiments"):
      facegen render --spec ibug68_3d --n 2000 --size 128 --out data/i68_3d
      facegen experiment trainer/experiments/example.yaml --out runs/exp
    Writes report.md (NME per strategy and N_real, both evaluation modes), results.json (every number),
    nme_vs_nreal.png (one line per strategy) and ced_N.png. Run it again after an interruption:
    finished cells are kept, the rest run.
    """
    from facegen.trainer.experiment import load_experiment, plan_cells, run_experiment

    with user_errors():
        exp = load_experiment(config, out)
        cells = plan_cells(exp)
        if dry_run:
            for c in cells:
                done = (exp.out / "cells" / c.id / "result.json").exists()
                click.echo(f"{c.id}{'  (finished)' if done else ''}")
            click.echo(f"{len(cells)} cells -> {exp.out}")
            return
        run_experiment(exp, echo=click.echo)


@click.command()
@click.option("--checkpoint", required=True, type=click.Path(), help="A checkpoint of facegen train (stays as it is).")
@click.option("--real", required=True, type=click.Path(exists=True, file_okay=False),
              help="Real labelled faces: 300-W (its train split), AFLW2000-3D, 300W-LP or any .pts folder.")
@REAL_FORMAT
@click.option("--n-real", default=None, type=click.IntRange(min=1),
              help="Fit on N real faces, a fixed subset by --seed (the same as facegen train --n-real); default all.")
@click.option("--real-val-fraction", default=0.1, show_default=True,
              type=FiniteFloat(0, 1, min_open=True, max_open=True),
              help="Real faces held out to stop on (fixed by --seed, whatever --n-real).")
@click.option("--real-test-fraction", default=0.0, show_default=True, type=FiniteFloat(0, 1, max_open=True),
              help="Real faces held out and never used (use training's value to keep its test faces out).")
@click.option("--real-split-seed", default=None, type=click.IntRange(min=0),
              help="Seed of the real val / test hold-out (default --seed), as in facegen train.")
@click.option("--adapter", default="mlp", show_default=True, type=click.Choice(["mlp", "unet"]),
              help="mlp: on the predicted points; unet: on the heatmaps (heatmap models).")
@click.option("--out", default=None, type=click.Path(dir_okay=False),
              help="The adapted checkpoint to write [default: CHECKPOINT's name + _adapted.pt, beside it].")
@click.option("--max-epochs", default=200, show_default=True, type=click.IntRange(min=1))
@click.option("--patience", default=20, show_default=True, type=click.IntRange(min=1),
              help="Stop after this many epochs without a lower validation NME.")
@click.option("--lr", default=1e-3, show_default=True, type=POSITIVE, help="Adam's learning rate.")
@click.option("--batch-size", default=32, show_default=True, type=click.IntRange(min=1))
@click.option("--augment-copies", default=4, show_default=True, type=click.IntRange(min=0),
              help="Augmented crops (shift, roll, scale, flip, colour) per training face, beside its plain crop.")
@click.option("--seed", default=0, show_default=True, type=click.IntRange(min=0))
@DEVICE
def adapt(checkpoint, real, real_format, n_real, real_val_fraction, real_test_fraction, real_split_seed, adapter, out,
          max_epochs, patience, lr, batch_size, augment_copies, seed, device):
    """Fit a label adapter on a frozen model: its points -> iBUG-68 as annotators place them.

    The model's weights stay as they are. It runs on the real faces (cropped from the ground-truth box
    as in eval); the adapter learns to map its output to their labels (Adam), stopping when the NME on
    held-out real faces stops falling. It starts as the nearest subset (exactly), and the best epoch
    is kept, so on those faces it is never worse than the nearest subset. Writes a new checkpoint (the
    model + the adapter) that facegen eval (both ways, side by side) and facegen predict use.

    \b
    Examples:
      facegen adapt --checkpoint runs/d490/best.pt --real ../shared/data/real300w-mini
      facegen eval --checkpoint runs/d490/best_adapted.pt --dataset 300w --root ~/data/300W
      A=../shared/data/aflw2000-3d-half
      facegen adapt --checkpoint runs/hg/best.pt --real $A --n-real 200 --real-test-fraction 0.5 \\
                    --adapter unet --out runs/hg/unet200.pt
      facegen predict photo.jpg --checkpoint runs/hg/unet200.pt -o out/

    Score on faces it was not fitted on: another dataset, or with --real-test-fraction the same
    faces facegen train held out (same fraction and --seed, or --real-split-seed). The jaw convention
    is the labels' own: fitted on AFLW2000-3D it places the 3D-fit jaw, on 300-W the visible outline.
    """
    from facegen.trainer.adapt import AdaptConfig, adapt as run

    cfg = AdaptConfig(checkpoint=checkpoint, real=real, real_format=real_format, n_real=n_real,
                      real_val_fraction=real_val_fraction, real_test_fraction=real_test_fraction,
                      real_split_seed=real_split_seed, adapter=adapter, out=out, max_epochs=max_epochs,
                      patience=patience, lr=lr, batch_size=batch_size, augment_copies=augment_copies, seed=seed,
                      device=device)
    with user_errors():
        summary = run(cfg, log=click.echo)
    click.echo(json.dumps(summary, indent=2))
