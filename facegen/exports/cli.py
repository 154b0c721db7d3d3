"""`facegen export`: rendered shards in COCO keypoints or FaceSynthetics layout."""

from __future__ import annotations

import click

from facegen.cli_types import OutFolder
from facegen.exports import FORMATS, POINTS


@click.command()
@click.argument("shards", type=click.Path())
@click.option("--format", "fmt", required=True, type=click.Choice(list(FORMATS)),
              help="coco: annotations.json + images/ (mmpose's COCO-style face datasets); facesynthetics: "
                   "{id}.png, {id}_ldmks.txt, {id}_seg.png (Microsoft FaceSynthetics).")
@click.option("-o", "--out", required=True, type=OutFolder(), help="A new or empty folder for the export.")
@click.option("--points", type=click.Choice(POINTS), default="spec", show_default=True,
              help="spec: every point of the shards' spec; ibug68: the spec's iBUG-68 points (the nearest spec "
                   "point for each; what facesynthetics needs from a dense spec).")
@click.option("--quiet", is_flag=True, help="No progress bar.")
def export(shards, fmt, out, points, quiet):
    """Write the samples of a `facegen render` folder (SHARDS) in a layout other tools read.

    \b
    Examples:
      facegen render --spec ibug68 --n 1000 --renderer raster --outputs rgb,segmentation --out data/i68
      facegen export data/i68 --format coco -o data/i68_coco
      facegen export data/i68 --format facesynthetics -o data/i68_fs
      facegen export data/d490 --format coco -o data/d490_coco                      # all 490 points
      facegen export data/d490 --format facesynthetics --points ibug68 -o data/d490_fs

    \b
    coco: OUT/annotations.json + OUT/images/NNNNNN.png. One face per image: keypoints [x, y, v] with
      v 2 visible, 1 in the image but hidden, 0 outside it; num_keypoints, bbox (the landmark box),
      center and scale (300-W's), the keypoint names and, for iBUG-68, its contours as skeleton.
      mmpose reads it as Face300WDataset(data_root=OUT, ann_file='annotations.json',
      data_prefix=dict(img='images/')); pycocotools' COCO(OUT/annotations.json) too.
    facesynthetics: OUT/NNNNNN.png, NNNNNN_ldmks.txt (70 lines 'x y': iBUG-68, then two pupils: each
      eye's centre), NNNNNN_seg.png (FaceSynthetics' class ids; shards rendered with --outputs
      rgb,segmentation). Needs iBUG-68 points: --points ibug68 for other specs.

    Positions keep the shards' pixel convention (the top-left pixel's centre is 0, 0); images are PNG,
    the shards' pixels exactly. docs/shard-format.md, "Exports", has every field and the class mapping.
    """
    from facegen.exports import export as run

    summary = run(shards, out, fmt, points, progress=not quiet)
    click.echo(f"exported {summary['samples']} samples ({summary['points']} points each) as {fmt} into {out}: "
               f"{', '.join(summary['files'])}")
    if fmt == "coco":
        click.echo(f"keypoints: {summary['visible']} visible (v 2), {summary['hidden']} hidden (v 1), "
                   f"{summary['out_of_frame']} outside the image (v 0)")
    if "note" in summary:
        click.echo(f"note: {summary['note']}")
