"""`facegen render | inspect | preview | mesh | verify`: the generator's commands (routed here by facegen/cli.py)."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from facegen.cli_types import FiniteFloat, ImageFile
from facegen.generator.job import DEFAULT_RENDERER, OUTPUTS


def _outputs(ctx, param, value: str) -> tuple[str, ...]:
    return tuple(v.strip() for v in value.split(",") if v.strip())


@click.command()
@click.option("--spec", default="dense490", show_default=True,
              help="Landmark spec: ibug68, dense243, dense490, dense1001 or a YAML file.")
@click.option("--n", "n", type=int, required=True, help="Number of images to render.")
@click.option("--out", type=click.Path(path_type=Path), required=True, help="Output folder (created).")
@click.option("--size", type=int, default=256, show_default=True, help="Image width and height in pixels.")
@click.option("--shard-size", type=int, default=1000, show_default=True, help="Images per HDF5 shard.")
@click.option("--workers", type=int, default=None,
              help="Render processes; each renders whole shards with its own renderer and CPUs/N threads. "
                   "[default: 1; with --executor ray, as many actors as the cluster has room for]")
@click.option("--seed", type=int, default=0, show_default=True,
              help="Global seed; sample i draws from (seed, i), whatever the worker count.")
@click.option("--renderer", default=DEFAULT_RENDERER, show_default=True, help="cycles (Blender, photoreal) or raster (pyrender, fast).")
@click.option("--config", type=click.Path(path_type=Path), default=None,
              help="YAML overriding any subset of assets/sampling.yaml (pose, expression, lighting, hair, "
                   "clothing, and how often glasses, masks, headwear and hands appear...).")
@click.option("--backgrounds", type=click.Path(path_type=Path), default=None,
              help="Folder of background photos (jpg/png); enables the 'photo' background kind.")
@click.option("--hdris", type=click.Path(path_type=Path), default=None,
              help="Folder of .exr/.hdr environment maps (default: the 8 bundled with Blender).")
@click.option("--outputs", default="rgb", show_default=True, callback=_outputs,
              help=f"Comma-separated per-pixel outputs ({', '.join(OUTPUTS)}), rgb always among them: "
                   "depth (camera z, cm), segmentation (classes, docs/segmentation.md), mask (the face as "
                   "seen), amodal (the face as it would be seen with nothing worn in front of it: no hair, "
                   "beard, glasses, mask, hat, hand or garment; the head still hides itself). Stored per "
                   "image in the shards "
                   "(docs/shard-format.md).")
@click.option("--executor", type=click.Choice(["local", "ray"]), default="local", show_default=True,
              help="Where shards are rendered: processes on this machine, or actors on a Ray cluster "
                   "(pip install 'facegen[cluster]'; docs/cluster.md).")
@click.option("--ray-address", default=None,
              help="With --executor ray: the cluster to join (HOST:PORT, or auto for the one `ray start` "
                   "began on this machine). [default: start a Ray on this machine]")
@click.option("--gpus-per-worker", type=FiniteFloat(min=0), default=0, show_default=True,
              help="With --executor ray: GPUs each actor reserves (1, or 0.5 for two per GPU); Cycles "
                   "renders on the one Ray gives it. 0: actors render on CPUs and never touch a GPU.")
@click.option("--cpus-per-worker", type=FiniteFloat(min=0, min_open=True), default=None,
              help="With --executor ray: CPUs each actor reserves (its renderer's threads). [default: 1; on a "
                   "Ray this job starts, this machine's CPUs shared out among --workers]")
@click.option("--shared-fs", is_flag=True,
              help="With --executor ray: actors write shards straight into --out, which every node mounts at "
                   "the same path. Default: shards travel back and this process writes them.")
@click.option("--quiet", is_flag=True, help="No progress bar.")
def render(spec, n, out, size, shard_size, workers, seed, renderer, config, backgrounds, hdris, outputs, executor,
           ray_address, gpus_per_worker, cpus_per_worker, shared_fs, quiet):
    """Render labelled synthetic faces into HDF5 shards (resumable).

    \b
    Examples:
      facegen render --spec dense490 --n 10000 --out data/d490                  # Cycles (photoreal)
      facegen render --spec dense490 --n 10000 --out data/r490 --renderer raster --workers 2   # fast
      facegen render --spec ibug68 --n 2000 --out data/i68 --workers 2 --size 192
      facegen render --spec dense490 --n 500 --out data/bg --backgrounds ~/photos --outputs rgb,depth,segmentation
      facegen render --spec dense490 --n 100 --out data/frontal --config frontal.yaml
      facegen render --spec dense490 --n 500 --out data/am --outputs rgb,segmentation,amodal
      facegen render --spec ibug68 --n 16 --out data/acc --config bench/configs/accessories.yaml   # hands, masks, hats up
      facegen render --spec dense490 --n 100000 --out data/d490 --executor ray --ray-address auto --gpus-per-worker 1

    Every option and input file (spec, --config, each background photo and HDRI) is checked before
    anything is written to --out. Interrupted, or a worker failed? Run the same command again:
    finished shards are kept as they are and only the missing samples are rendered; a finished shard
    found truncated or damaged (its size or HDF5 header) is said and rendered again; a larger --n
    adds shards. A folder holding finished shards of a different job (spec, seed, config, renderer,
    size...) is refused with what differs; one that another render job is writing is refused with
    that job's pid and host (one job per folder: DIR/render.lock). Read the shards with `facegen.open_shards(DIR)` or plain
    h5py (docs/shard-format.md); look at them with `facegen inspect DIR` and `facegen preview DIR`.
    """
    from facegen.api import render as run

    try:
        folder = run(spec, n, out, size=size, shard_size=shard_size, workers=workers, seed=seed, renderer=renderer,
                     config=config, backgrounds=backgrounds, hdris=hdris, outputs=outputs, executor=executor,
                     ray_address=ray_address, gpus_per_worker=gpus_per_worker, cpus_per_worker=cpus_per_worker,
                     shared_fs=shared_fs, progress=not quiet)
    except KeyboardInterrupt:
        click.echo(f"\ninterrupted: the finished shards in {out} are kept; run the same command to render the rest",
                   err=True)
        sys.exit(130)
    click.echo(f"{n} images in {folder} (read with facegen.open_shards({str(folder)!r}))")


@click.command()
@click.argument("directory", type=click.Path(path_type=Path))
def inspect(directory: Path) -> None:
    """Summarise a shard folder: counts, spec, renderer, seed, label and pose statistics.

    \b
    Example:
      facegen inspect data/d490
    """
    from facegen.generator.report import summarise

    click.echo(summarise(directory))


@click.command()
@click.argument("directory", type=click.Path(path_type=Path))
@click.option("-o", "--output", type=ImageFile(path_type=Path), required=True, help="PNG (or JPEG...) to write.")
@click.option("--n", "n", type=click.IntRange(min=1), default=16, show_default=True, help="Samples to show.")
@click.option("--cols", type=click.IntRange(min=1), default=4, show_default=True, help="Columns of the grid.")
@click.option("--start", type=click.IntRange(min=0), default=0, show_default=True, help="First sample index.")
@click.option("--scale", type=FiniteFloat(min=0, min_open=True), default=2.0, show_default=True,
              help="Upscale each image (landmarks stay crisp).")
@click.option("--segmentation", is_flag=True,
              help="Show each sample's segmentation classes beside it (shards rendered with "
                   "--outputs rgb,segmentation; colours in docs/segmentation.md).")
@click.option("--amodal", is_flag=True,
              help="Outline each sample's amodal face mask (the face with nothing worn in front of it) "
                   "over the image (shards rendered with --outputs rgb,amodal).")
def preview(directory: Path, output: Path, n: int, cols: int, start: int, scale: float, segmentation: bool,
            amodal: bool) -> None:
    """Draw a contact sheet of samples with their landmarks.

    Visible points are green; a hidden point takes the colour of what hides it (red: the face
    itself; hair, a beard, clothing, ...: the legend under the sheet names each; codes in
    docs/shard-format.md); out-of-frame points are not drawn.

    \b
    Examples:
      facegen preview data/d490 -o grid.png --n 16 --cols 4
      facegen preview data/seg -o seg.png --segmentation   # classes beside each image
      facegen preview data/am -o am.png --amodal           # the face behind hair and glasses, outlined
    """
    from facegen.generator.report import contact_sheet

    path = contact_sheet(directory, output, n=n, cols=cols, start=start, scale=scale, segmentation=segmentation,
                         amodal=amodal)
    click.echo(f"wrote {path}")


@click.command()
@click.argument("directory", type=click.Path(path_type=Path))
@click.argument("index", type=click.IntRange(min=0))
@click.option("-o", "--out", type=click.Path(dir_okay=False, path_type=Path), required=True,
              help="The head's file: .ply or .obj (the landmarks and dressing go beside it).")
@click.option("--with-dressing", is_flag=True,
              help="Also write what the sample wears: garment, glasses, mask, headwear, hand and what it holds "
                   "(OUT-dressing, one coloured mesh) and hair, beard and brow strands (OUT-strands.ply, polylines).")
def mesh(directory: Path, index: int, out: Path, with_dressing: bool) -> None:
    """Rebuild the posed 3D head of sample INDEX of a shard folder, from its stored parameters.

    The head is the face model shaped and posed as rendered, in the sample's camera space (x right,
    y down, z forward, cm): the space of the shard's landmarks_3d. Beside it, OUT-landmarks (.ply or
    .obj, as OUT) holds the spec's points on that mesh, in the spec's order: the sample's landmarks_3d.

    \b
    Examples:
      facegen mesh data/d490 0 -o face.ply        # face.ply, face-landmarks.ply
      facegen mesh data/d490 12 -o face.obj --with-dressing
    """
    from facegen.generator.sample_mesh import SUFFIXES, sample_mesh

    if out.suffix.lower() not in SUFFIXES:
        raise click.BadParameter(f"{out}: name a .ply or .obj file.", param_hint="'-o' / '--out'")
    written = sample_mesh(directory, index, with_dressing=with_dressing).save(out)
    for path in written:
        click.echo(f"wrote {path}")


@click.command()
@click.argument("directory", type=click.Path(path_type=Path))
def verify(directory: Path) -> None:
    """Check every finished shard of a render folder: present, the size and sha256 the manifest
    records, an intact HDF5 header. Prints one line per shard; exits 1 if any is damaged (and says
    how to render it again), 0 if all are intact.

    \b
    Example:
      facegen verify data/d490
    """
    from facegen.generator.lock import holder
    from facegen.shards import verify_folder

    manifest, results, notes = verify_folder(directory)
    held = holder(directory)
    if held is not None:
        click.echo(f"note: a render job is writing {directory} now (pid {held.get('pid')} on {held.get('host')}); "
                   "only the shards it has finished are checked")
    done = sum(e["num_samples"] for e, _ in results)
    click.echo(f"{directory}: {len(results)} shards, {done} of {manifest.get('num_samples', done)} samples")
    width = max((len(e["file"]) for e, _ in results), default=0)
    for e, problem in results:
        click.echo(f"  {e['file']:<{width}}  {'ok' if problem is None else 'DAMAGED: ' + problem}")
    for note in notes:
        click.echo(f"  note: {note}")
    damaged = [e["file"] for e, problem in results if problem is not None]
    if not damaged:
        click.echo(f"all {len(results)} shards intact")
        return
    names = " ".join(str(Path(directory) / f) for f in damaged)
    click.echo(f"{len(damaged)} of {len(results)} shards damaged. Delete them (rm {names}) and re-run the render "
               f"command that made {directory} (its settings are in {Path(directory) / 'manifest.json'}, `job`): "
               "it renders them again and keeps the intact ones.")
    sys.exit(1)
