"""`facegen specs ...`: list, show, validate, preview and generate landmark specs."""

from __future__ import annotations

from pathlib import Path

import click

from facegen.cli_types import ImageFile
from facegen.errors import FacegenError


@click.group()
def specs() -> None:
    """Landmark specs: NAME is a built-in name (see `facegen specs list`) or a path to a YAML file."""


@specs.command("list")
def list_cmd() -> None:
    """List the built-in specs."""
    from facegen.specs import list_specs, read_spec

    for name in list_specs():
        s = read_spec(name)
        click.echo(f"{name:<12} {s.num_points:>5} points  {s.description}")


@specs.command()
@click.argument("name")
@click.option("--yaml", "as_yaml", is_flag=True, help="Print the YAML text instead of a summary.")
def show(name: str, as_yaml: bool) -> None:
    """Summarise a spec: points per kind and group, pairs, iBUG-68 correspondence."""
    from facegen.specs import load_spec, read_spec

    s = read_spec(name)
    if as_yaml:
        click.echo(s.yaml_text, nl=False)
        return
    c = load_spec(name)
    kinds: dict[str, int] = {}
    for p in s.points:
        kinds[p.kind] = kinds.get(p.kind, 0) + 1
    click.echo(f"name:        {c.name}\ndescription: {s.description}\nsource:      {s.path}\nmodel:       {s.model_id}")
    click.echo(f"points:      {c.num_points} ({', '.join(f'{v} {k}' for k, v in kinds.items())})")
    click.echo(f"pairs:       {len(s.pairs)} (midline points: {c.num_points - 2 * len(s.pairs)})")
    click.echo(f"hash:        {c.hash}")
    click.echo("groups:")
    for g, ix in c.groups.items():
        click.echo(f"  {g:<14} {len(ix):>5}")
    if s.ibug68 is not None:
        click.echo(f"ibug68:      {list(c.ibug68)}")


@specs.command()
@click.argument("files", nargs=-1, required=True)
def validate(files: tuple[str, ...]) -> None:
    """Check spec files (schema and against the face model); exit 2 on the first problem."""
    from facegen.specs import load_spec

    for f in files:
        c = load_spec(f)
        click.echo(f"{f}: ok ({c.num_points} points, {len(c.contours)} contours)")


@specs.command()
@click.argument("name")
@click.option("-o", "--out", type=ImageFile(path_type=Path), required=True, help="PNG (or JPEG...) to write.")
@click.option("--labels", is_flag=True, help="Write each point's index beside it.")
@click.option("--size", default=768, show_default=True, type=click.IntRange(1, 4096),
              help="Pixels per view (two views side by side).")
def preview(name: str, out: Path, labels: bool, size: int) -> None:
    """Draw the spec on the neutral face, front and 3/4 view (filled dots visible, rings hidden)."""
    from facegen.face_model import load_face_model
    from facegen.spec_preview import write_preview
    from facegen.specs import load_spec

    model = load_face_model()
    write_preview(load_spec(name, model), model, out, size=size, labels=labels)
    click.echo(f"wrote {out}")


@specs.command()
@click.argument("first")
@click.argument("second")
@click.option("-o", "--out", type=ImageFile(path_type=Path), required=True, help="PNG (or JPEG...) to write.")
@click.option("--yaw", "yaws", multiple=True, type=click.FloatRange(-90, 90), default=(0.0, 60.0), show_default=True,
              help="Head turn in degrees of each view (repeatable).")
@click.option("--size", default=768, show_default=True, type=click.IntRange(64, 4096), help="Pixels per view.")
def compare(first: str, second: str, out: Path, yaws: tuple[float, ...], size: int) -> None:
    """Draw the iBUG-68 points of two specs on the same turned face, to see where they differ.

    \b
    Example (the jaw conventions of 300-W and of AFLW2000-3D / 300W-LP):
      facegen specs compare ibug68 ibug68_3d -o jaw_conventions.png --yaw 0 --yaw 60
    """
    from facegen.face_model import load_face_model
    from facegen.spec_preview import compare_image, write_image
    from facegen.specs import load_spec

    model = load_face_model()
    img, moved = compare_image(load_spec(first, model), load_spec(second, model), model, size, yaws)
    write_image(img, out)
    for yaw, d in zip(yaws, moved):
        click.echo(f"yaw {yaw:g}: largest difference {d:.1f} px ({100 * d / size:.1f} % of the view)")
    click.echo(f"wrote {out}")


@specs.command()
@click.option("--points", "n", type=int, required=True,
              help="Number of points (68 writes ibug68, or ibug68_3d with --name ibug68_3d).")
@click.option("--name", default=None, help="Spec name (default: denseN).")
@click.option("--line-fraction", default=0.6, show_default=True,
              help="Share of the non-iBUG points on lids, lips, brows, nose and oval lines; the rest fill the skin.")
@click.option("-o", "--out", type=click.Path(dir_okay=False, path_type=Path), required=True)
def generate(n: int, name: str | None, line_fraction: float, out: Path) -> None:
    """Generate a symmetric dense spec with exactly N points (deterministic)."""
    from facegen.face_model import load_face_model
    from facegen.spec_generate import dense_spec_yaml, ibug68_spec_yaml
    from facegen.specs import compile_spec, parse_spec

    if n < 68:
        raise FacegenError(f"--points {n}: a spec needs at least the 68 iBUG points")
    if not 0.0 <= line_fraction <= 1.0:
        raise FacegenError(f"--line-fraction {line_fraction}: must be between 0 and 1")
    model = load_face_model()
    name = name or ("ibug68" if n == 68 else f"dense{n}")
    opts = f" --line-fraction {line_fraction}" if line_fraction != 0.6 else ""
    cmd = f"facegen specs generate --points {n} --name {name}{opts} -o {out.name}"
    if n == 68 and name in ("ibug68", "ibug68_3d"):
        text = ibug68_spec_yaml(model, cmd, jaw_3d=name == "ibug68_3d")
    else:
        text = dense_spec_yaml(model, n, name, line_fraction, cmd)
    compile_spec(parse_spec(text, str(out)), model)  # never write a spec that would not load
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text, encoding="utf-8")
    click.echo(f"wrote {out} ({n} points)")
