"""facegen's Python API: one function per command, with the command's options as keyword arguments.

The command line (facegen/cli.py and the *cli.py modules) parses options and prints; the work is done
here, so `facegen render ...` and `facegen.render(...)` are one implementation. Every function raises
`facegen.FacegenError` (message: what is wrong and what to do) on bad input. Heavy packages (torch,
bpy, pyrender, h5py) are imported when a function runs, never at `import facegen`.

    import facegen
    out = facegen.render("ibug68", 500, "data/i68", renderer="raster", workers=2)
    run = facegen.train([out], out="runs/i68", steps=2000)
    report = facegen.evaluate(run.checkpoint, "../shared/data/real300w-mini", dataset="folder")
    print(report["metrics"]["inter_ocular"]["all"]["nme"])
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from facegen.errors import FacegenError, user_errors
from facegen.trainer import recipe  # constants only (no torch)

if TYPE_CHECKING:
    from facegen.trainer.predictor import Predictor

PathLike = str | Path


# -- render -------------------------------------------------------------------------------------------

def render(spec: str = "dense490", n: int = 1000, out: PathLike = "out", *, size: int = 256,
           shard_size: int = 1000, workers: int | None = None, seed: int = 0, renderer: str | None = None,
           config: PathLike | None = None, backgrounds: PathLike | None = None, hdris: PathLike | None = None,
           outputs: str | Sequence[str] = ("rgb",), executor: str = "local", ray_address: str | None = None,
           gpus_per_worker: float = 0.0, cpus_per_worker: float | None = None, shared_fs: bool = False,
           progress: bool = True) -> Path:
    """Render `n` labelled faces of landmark spec `spec` into HDF5 shards in `out`; returns `out`.

    `facegen render` in Python (the same options; `facegen render --help` says what each does):
    renderer "cycles" (photoreal, Blender; the default when None) or "raster" (fast); outputs "rgb"
    plus any of "depth", "segmentation", "mask", "amodal" (a list or "rgb,depth"); config: a YAML
    overriding the sampling config; backgrounds / hdris: folders of photos / environment maps.
    executor "ray" renders on a Ray cluster (ray_address, gpus_per_worker, cpus_per_worker, shared_fs:
    docs/cluster.md; a Ray this process already joined with ray.init is used as it is). Resumable: the
    same call again renders only what is missing. Read the result with `facegen.open_shards(out)`."""
    from facegen.generator.job import DEFAULT_RENDERER, JobSettings, run_job

    if isinstance(outputs, str):
        outputs = outputs.split(",")
    settings = JobSettings(spec=str(spec), n=int(n), out=str(out), size=int(size), shard_size=int(shard_size),
                           workers=None if workers is None else int(workers), seed=int(seed),
                           renderer=renderer or DEFAULT_RENDERER,
                           config=str(config) if config else None,
                           backgrounds=str(backgrounds) if backgrounds else None,
                           hdris=str(hdris) if hdris else None, outputs=tuple(o.strip() for o in outputs if o.strip()),
                           executor=executor, ray_address=ray_address, gpus_per_worker=float(gpus_per_worker),
                           cpus_per_worker=None if cpus_per_worker is None else float(cpus_per_worker),
                           shared_fs=bool(shared_fs))
    return run_job(settings, progress=progress)


# -- train --------------------------------------------------------------------------------------------

@dataclass
class TrainResult:
    """What `train` leaves: the checkpoints and the run's summary (also in `out/history.json`)."""

    checkpoint: Path  # best.pt: the best validation score (what eval and predict should use)
    last: Path  # last.pt: the last step (resume from it)
    history: Path  # history.json: the summary and every logged loss and validation
    summary: dict  # steps, strategy, first_loss, last_loss, best (validation metric), img_per_s, wall_s ...

    @property
    def best(self) -> float:
        """The best validation metric (NME where there is a validation set, else the training loss)."""
        return self.summary["best"]


def train(data: PathLike | Sequence[PathLike] = (), *, out: PathLike = "runs/train", strategy: str = "synthetic-only",
          model: str = recipe.MODEL, model_args: dict[str, Any] | None = None, steps: int | None = None,
          epochs: int = 10, batch_size: int = recipe.BATCH_SIZE, lr: float = 1e-3,
          input_size: int = recipe.INPUT_SIZE, crop_scale: float = 1.25, gray: bool = False,
          augment: str = "default", workers: int = 2, n_synthetic: int | None = None,
          val_fraction: float = 0.05, val_every: int = 0, val_real: PathLike | None = None,
          test_flip: bool = recipe.TEST_FLIP, coord_loss: str = recipe.COORD_LOSS,
          heatmap_loss: str = recipe.HEATMAP_LOSS, heatmap_weight: float = 1.0, occlusion_aware: bool = False,
          occluded_weight: float = 0.0, real: PathLike | None = None, real_format: str = "auto",
          n_real: int | None = None, real_val_fraction: float = 0.1, real_test_fraction: float = 0.0,
          real_split_seed: int | None = None, real_share: float = 0.25, init: PathLike | None = None,
          unlabelled: PathLike | None = None, da_weight: float = 1.0, adapter: str | None = None,
          seed: int = 0, device: str = "auto", dist_backend: str = "auto", amp: bool = True,
          resume: PathLike | None = None, progress: bool = True) -> TrainResult:
    """Train a landmark detector on shard folders `data` (and / or real faces); returns the checkpoints
    and the summary. `facegen train` in Python: each keyword is the option of the same name
    (`facegen train --help`, docs/trainer.md), `model_args` its --model-arg pairs as a dict,
    `amp=False` its --no-amp. The defaults are the recipe study's winner.

    Strategies: synthetic-only (data), real-only (real), mixed (data + real in every batch), fine-tune
    (init, then real), dann / daln (data + unlabelled real images). In a process torchrun started, this
    process trains as one rank of a DistributedDataParallel run (`dist_backend`: auto, nccl or gloo)."""
    from facegen.trainer.models import list_models
    from facegen.trainer.train import TrainConfig, train as run

    if model not in list_models():
        raise FacegenError(f"unknown model {model!r}; choose one of {', '.join(list_models())}")
    model_args = dict(model_args or {})
    if "in_chans" in model_args:
        raise FacegenError("model_args: in_chans is set by gray (1 channel) or colour (3)")
    data = [data] if isinstance(data, (str, Path)) else list(data)
    optional = lambda p: None if p is None else str(p)  # noqa: E731
    cfg = TrainConfig(data=[str(d) for d in data], model=model, model_kwargs=model_args, out=str(out),
                      input_size=input_size, crop_scale=crop_scale, gray=gray, augment=augment, epochs=epochs,
                      steps=steps, batch_size=batch_size, lr=lr, workers=workers, val_fraction=val_fraction,
                      val_every=val_every, val_real=optional(val_real), test_flip=test_flip,
                      n_synthetic=n_synthetic, coord_loss=coord_loss, heatmap_loss=heatmap_loss,
                      heatmap_weight=heatmap_weight, occlusion_aware=occlusion_aware,
                      occluded_weight=occluded_weight, seed=seed, device=device, dist_backend=dist_backend, amp=amp,
                      resume=optional(resume),
                      strategy=strategy, real=optional(real), real_format=real_format, n_real=n_real,
                      real_val_fraction=real_val_fraction, real_test_fraction=real_test_fraction,
                      real_split_seed=real_split_seed, real_share=real_share, init=optional(init),
                      unlabelled=optional(unlabelled), da_weight=da_weight, adapter=adapter)
    with user_errors():
        summary = run(cfg, progress=progress)
    return TrainResult(checkpoint=Path(summary["best_checkpoint"]), last=Path(summary["last"]),
                       history=Path(out) / "history.json", summary=summary)


# -- evaluate and score ---------------------------------------------------------------------------

def evaluate(checkpoint: PathLike | Predictor, root: PathLike, *, dataset: str = "300w", split: str = "full",
             box: str = "gt", out: PathLike | None = None, flip: bool | None = None,
             device: str = "auto", detector: str = "auto") -> dict:
    """Predict with a checkpoint (a path, or a Predictor from `load_predictor`) on a labelled dataset and
    score it; returns the report. `facegen eval` in Python.

    dataset: "300w" (the official layout; `split` full, common, challenging, private or train),
    "aflw2000", "folder" (any .pts folder) or "shards" (a folder of renders, any spec). box: crop from the
    ground-truth landmark box ("gt", the 300-W protocol) or the face detector ("detector"; `detector`:
    auto, haar, dlib-hog or dlib-cnn, auto = the best installed). out: write
    predictions, metrics.json, metrics.md and CED plots there. flip: test-time flip (None: as trained).

    The report: `metrics[norm][subset]` (count, nme, auc@t, fr@t, in %), `per_image[norm]`,
    `breakdown[norm][subset]` (per face region), `jaw` (the correspondence used) and `modes` (one such
    report per evaluation mode: `nearest`, and `adapter` for a checkpoint with a label adapter)."""
    from facegen.trainer.evaluate import evaluate as run, open_eval_dataset
    from facegen.trainer.predictor import Predictor, load_predictor

    if box not in ("gt", "detector"):
        raise FacegenError(f"box {box!r}: choose gt (the ground-truth landmark box) or detector")
    with user_errors():
        predictor = checkpoint if isinstance(checkpoint, Predictor) else load_predictor(checkpoint, device, flip)
        ds = open_eval_dataset(dataset, root, split)
        return run(predictor, ds, out, box=box, detector=detector)


def score(predictions: PathLike, ground_truth: PathLike, *, subsets: PathLike | None = None,
          norms: Sequence[str] = ("inter_ocular", "inter_pupil", "box"), thresholds: Sequence[float] = (0.08, 0.10),
          auc_method: str = "spiga", out: PathLike | None = None) -> dict:
    """Score predictions against ground truth (each a .pts folder or a JSON list, SPIGA's included):
    NME, AUC and failure rate per subset, CED curves. `facegen score` in Python.

    subsets: SPIGA's *_db_info.json or a {name: [indices]} JSON. norms: inter_ocular (io), inter_pupil
    (ip), box. thresholds: AUC / FR limits as fractions in (0, 1]. auc_method: "spiga" or "ced". out:
    write metrics.json, metrics.md and ced_<norm>.png there. Returns the report: `metrics[norm][subset]`
    {count, nme, auc@t, fr@t} in %, `per_image[norm]` {image: error}, `breakdown` per face region."""
    from facegen.trainer.score import score_files, write_report

    bad = [t for t in thresholds if not 0 < t <= 1]
    if bad:
        raise FacegenError(f"threshold {bad[0]}: a fraction in (0, 1], e.g. 0.08 for 8 %")
    if auc_method not in ("spiga", "ced"):
        raise FacegenError(f"auc_method {auc_method!r}: choose spiga or ced")
    with user_errors():
        report, gt = score_files(predictions, ground_truth, subsets, norms=tuple(norms),
                                 thresholds=tuple(float(t) for t in thresholds), auc_method=auc_method)
        if out is not None:
            write_report(report, gt, out)
    return report
