"""`facegen assets ...`: build the local face-model cache from ICT-FaceKit."""

from __future__ import annotations

import time
from pathlib import Path

import click
from tqdm import tqdm

from facegen.face_model import default_model_path


@click.group()
def assets() -> None:
    """Import and inspect the face model that facegen renders."""


@assets.command("import-ict")
@click.argument("path", required=False, type=click.Path(path_type=Path))
@click.option("--out", type=click.Path(path_type=Path), default=None,
              help="Where to write the model (default: $FACEGEN_HOME/models/ict-facekit.npz).")
def import_ict_cmd(path: Path | None, out: Path | None) -> None:
    """Import ICT-FaceKit from PATH (GitHub's zip, read in place, or a folder / git clone).

    Without PATH, uses ../shared/assets/ict-facekit/ICT-FaceKit-master.zip when present.
    Writes one .npz (neutral mesh, triangles, UVs, regions, 100 identity modes, 57 expression
    blendshapes, iBUG-68 indices) with a content hash.
    """
    from facegen.ict import import_ict

    t0 = time.perf_counter()
    with tqdm(total=158, unit="obj", desc="reading ICT-FaceKit") as bar:
        def progress(done, total, name):
            bar.total = total
            bar.update(done - bar.n)
            bar.set_postfix_str(name, refresh=False)
        model = import_ict(path, progress=progress)
    target = model.save(out or default_model_path())
    click.echo(
        f"face model: {model.num_vertices} vertices, {len(model.triangles)} triangles, "
        f"{model.num_identity} identity modes, {model.num_expressions} expressions\n"
        f"hash {model.hash[:16]}  written to {target}  ({time.perf_counter() - t0:.1f} s)"
    )


@assets.command("info")
@click.option("--model", "model_path", type=click.Path(path_type=Path), default=None, help="A model .npz.")
def info(model_path: Path | None) -> None:
    """Show the cached face model: size, regions, expressions, hash."""
    from facegen.face_model import load_face_model

    m = load_face_model(model_path)
    click.echo(f"{m.source}\nhash {m.hash}")
    click.echo(f"{m.num_vertices} vertices, {len(m.triangles)} triangles, {m.num_identity} identity modes")
    click.echo("regions: " + ", ".join(f"{n} ({len(m.region_vertices(n))})" for n in m.region_names))
    click.echo("expressions: " + ", ".join(m.expression_names))
