"""Click commands `facegen train | eval | score | predict` (routed here from facegen/cli.py)."""

from __future__ import annotations

import json
from pathlib import Path

import click

from facegen.errors import FacegenError


def _fail(e: Exception) -> None:
    raise click.ClickException(str(e))


@click.command()
@click.option("--data", "data", multiple=True, required=True, type=click.Path(), help="Shard folder (repeatable).")
@click.option("--model", default="hourglass", show_default=True, help="hourglass, resnet18, resnet50.")
@click.option("--model-arg", multiple=True, help="Model keyword, e.g. --model-arg stacks=1 --model-arg channels=64.")
@click.option("--out", default="runs/train", show_default=True, type=click.Path(), help="Output folder.")
@click.option("--epochs", default=10, show_default=True)
@click.option("--steps", default=None, type=int, help="Total optimiser steps (overrides --epochs).")
@click.option("--batch-size", default=16, show_default=True)
@click.option("--lr", default=1e-3, show_default=True)
@click.option("--input-size", default=256, show_default=True)
@click.option("--crop-scale", default=1.25, show_default=True)
@click.option("--gray/--color", default=False, show_default=True, help="Grayscale input (ResNet baseline: 128 px).")
@click.option("--augment", type=click.Choice(["default", "none"]), default="default", show_default=True)
@click.option("--workers", default=2, show_default=True)
@click.option("--val-fraction", default=0.05, show_default=True, help="Held-out synthetic share.")
@click.option("--val-every", default=0, show_default=True, help="Validate every N steps (0: each epoch).")
@click.option("--val-real", default=None, type=click.Path(), help="Real .pts folder scored in iBUG-68 terms.")
@click.option("--coord-loss", type=click.Choice(["l1", "wing", "rmse"]), default="l1", show_default=True)
@click.option("--heatmap-loss", type=click.Choice(["kl", "mse", "awing"]), default="kl", show_default=True,
              help="Hourglass: KL of the softmax heatmap to a gaussian, or MSE / adaptive wing on peak-scaled maps.")
@click.option("--heatmap-weight", default=1.0, show_default=True)
@click.option("--seed", default=0, show_default=True)
@click.option("--device", default="auto", show_default=True, help="auto, cpu, cuda, cuda:1 ...")
@click.option("--no-amp", is_flag=True, help="Disable mixed precision on CUDA.")
@click.option("--resume", default=None, type=click.Path(), help="Continue from a last.pt.")
def train(data, model, model_arg, out, epochs, steps, batch_size, lr, input_size, crop_scale, gray, augment, workers,
          val_fraction, val_every, val_real, coord_loss, heatmap_loss, heatmap_weight, seed, device, no_amp, resume):
    """Train a landmark detector on shards; writes last.pt, best.pt and history.json to --out.

    \b
    Examples:
      facegen train --data data/i68 --model hourglass --out runs/hg
      facegen train --data data/i68 --model resnet18 --input-size 128 --gray --steps 2000 --out runs/r18
      facegen train --data data/d490 --data data/d490b --val-real ../shared/data/real300w-mini --out runs/d490
      facegen train --data data/i68 --resume runs/hg/last.pt --out runs/hg

    A checkpoint embeds its config and landmark spec: `facegen eval` and `facegen predict` need nothing else.
    """
    from facegen.trainer.train import TrainConfig, train as run

    kwargs = {}
    for a in model_arg:
        k, _, v = a.partition("=")
        try:
            kwargs[k] = json.loads(v)
        except json.JSONDecodeError:
            kwargs[k] = v
    cfg = TrainConfig(data=list(data), model=model, model_kwargs=kwargs, out=out, input_size=input_size,
                      crop_scale=crop_scale, gray=gray, augment=augment, epochs=epochs, steps=steps,
                      batch_size=batch_size, lr=lr, workers=workers, val_fraction=val_fraction, val_every=val_every,
                      val_real=val_real, coord_loss=coord_loss, heatmap_loss=heatmap_loss,
                      heatmap_weight=heatmap_weight, seed=seed, device=device, amp=not no_amp, resume=resume)
    try:
        summary = run(cfg)
    except (FacegenError, ValueError) as e:
        _fail(e)
    click.echo(json.dumps(summary, indent=2))


def _print_report(report: dict) -> None:
    from facegen.trainer.score import markdown_table
    click.echo(markdown_table(report))


@click.command()
@click.option("--checkpoint", required=True, type=click.Path())
@click.option("--dataset", type=click.Choice(["300w", "folder"]), default="300w", show_default=True)
@click.option("--root", required=True, type=click.Path(), help="300-W root (official layout) or a .pts folder.")
@click.option("--split", default="full", show_default=True,
              help="300-W split: full, common, challenging, private, train (with --dataset 300w).")
@click.option("--box", type=click.Choice(["gt", "detector"]), default="gt", show_default=True,
              help="Face crop from the ground-truth landmark box (300-W protocol) or the face detector.")
@click.option("--out", default=None, type=click.Path(), help="Write predictions, metrics, CED plots here.")
@click.option("--device", default="auto", show_default=True)
def evaluate(checkpoint, dataset, root, split, box, out, device):
    """Predict with a checkpoint on 300-W (or any .pts folder) and score per subset.

    \b
    Examples:
      facegen eval --checkpoint runs/hg/best.pt --dataset 300w --root ~/data/300W --out runs/hg/eval
      facegen eval --checkpoint runs/hg/best.pt --dataset folder --root ../shared/data/real300w-mini

    Faces are cropped from the ground-truth box (the 300-W protocol); dense specs are scored on their
    iBUG-68 nearest-point subset.
    """
    from facegen.trainer.evaluate import evaluate as run, open_eval_dataset
    from facegen.trainer.predictor import load_checkpoint

    try:
        predictor = load_checkpoint(checkpoint, device)
        ds = open_eval_dataset(dataset, root, split)
        report = run(predictor, ds, out, box=box)
    except (FacegenError, ValueError) as e:
        _fail(e)
    _print_report(report)


@click.command()
@click.option("--predictions", "-p", required=True, type=click.Path(), help=".pts folder or JSON list.")
@click.option("--ground-truth", "-g", required=True, type=click.Path(), help=".pts folder or JSON list (SPIGA's).")
@click.option("--subsets", default=None, type=click.Path(), help="SPIGA *_db_info.json or {name: [indices]} JSON.")
@click.option("--norm", "norms", multiple=True, default=("inter_ocular", "inter_pupil", "box"), show_default=True)
@click.option("--threshold", "thresholds", multiple=True, type=float, default=(0.08, 0.10), show_default=True)
@click.option("--auc-method", type=click.Choice(["spiga", "ced"]), default="spiga", show_default=True)
@click.option("--out", default=None, type=click.Path(), help="Write metrics.json, metrics.md, ced_*.png here.")
def score(predictions, ground_truth, subsets, norms, thresholds, auc_method, out):
    """Score predictions against ground truth: NME, AUC, FR, CED (knows nothing of models).

    \b
    Examples:
      facegen score --predictions preds/ --ground-truth ~/data/300W/ibug --out scores/      # .pts folders
      S=../shared/data/spiga-300w
      facegen score --predictions $S/300wpublic_results_300wpublic_test.json \\
                    --ground-truth $S/300wpublic_test.json --subsets $S/300wpublic_db_info.json --out scores/
    """
    from facegen.trainer.score import score_files, write_report

    try:
        report, gt = score_files(predictions, ground_truth, subsets, norms=tuple(norms),
                                 thresholds=tuple(thresholds), auc_method=auc_method)
        if out:
            write_report(report, gt, out)
    except (FacegenError, ValueError) as e:
        _fail(e)
    _print_report(report)


@click.command()
@click.argument("source", type=click.Path())
@click.option("--checkpoint", required=True, type=click.Path())
@click.option("-o", "--out", default="predictions", show_default=True, type=click.Path())
@click.option("--device", default="auto", show_default=True)
def predict(source, checkpoint, out, device):
    """Detect faces in IMAGE, DIR or VIDEO, predict landmarks, write overlays and JSON.

    \b
    Examples:
      facegen predict photo.jpg --checkpoint runs/hg/best.pt -o out/
      facegen predict clip.mp4 --checkpoint runs/hg/best.pt -o out/     # overlay mp4 + per-frame JSON
    """
    from facegen.trainer.predict import run_predict
    from facegen.trainer.predictor import load_checkpoint

    try:
        summary = run_predict(load_checkpoint(checkpoint, device), Path(source), Path(out))
    except (FacegenError, ValueError) as e:
        _fail(e)
    click.echo(json.dumps(summary))
