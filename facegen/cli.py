"""The `facegen` command line: one click group whose sub-commands load lazily.

Each area owns its commands in its own module; this file only names them, so `facegen --help`
starts in a fraction of a second without importing torch or bpy.
"""

from __future__ import annotations

import importlib
import os

import click

from facegen.errors import FacegenError

# command name -> "module:attribute" of a click command or group
COMMANDS = {
    "assets": "facegen.assets_cli:assets",
    "specs": "facegen.specs_cli:specs",
    "render": "facegen.generator.cli:render",
    "inspect": "facegen.generator.cli:inspect",
    "preview": "facegen.generator.cli:preview",
    "mesh": "facegen.generator.cli:mesh",
    "export": "facegen.exports.cli:export",
    "verify": "facegen.generator.cli:verify",
    "train": "facegen.trainer.cli:train",
    "adapt": "facegen.trainer.cli:adapt",
    "eval": "facegen.trainer.cli:evaluate",
    "gap": "facegen.trainer.cli:gap",
    "score": "facegen.trainer.cli:score",
    "predict": "facegen.trainer.cli:predict",
    "experiment": "facegen.trainer.cli:experiment",
}

SHORT_HELP = {
    "assets": "Import the ICT-FaceKit face model into the local cache.",
    "specs": "List, show, validate, preview and generate landmark specs.",
    "render": "Render labelled synthetic faces into HDF5 shards.",
    "inspect": "Summarise a folder of shards: counts, spec, label and pose statistics.",
    "preview": "Draw a contact sheet of rendered samples with their landmarks.",
    "mesh": "Rebuild the posed 3D head of a rendered sample (PLY or OBJ) with its 3D landmarks.",
    "export": "Write shards as COCO keypoints (mmpose) or in FaceSynthetics' layout.",
    "verify": "Check every shard of a folder against the manifest's sizes and checksums.",
    "train": "Train a landmark detector on shards (and optionally real data).",
    "adapt": "Fit a label adapter (model points -> iBUG-68) on real faces.",
    "eval": "Predict with a checkpoint on 300-W, AFLW2000-3D, a .pts folder or shards and score it.",
    "gap": "Where the error grows from synthetic to real: shards and real sets in one report.",
    "score": "Score predictions against ground truth: NME, AUC, FR, CED.",
    "predict": "Detect faces and predict landmarks on images or a video.",
    "experiment": "Compare training strategies x real-set sizes x seeds on real faces; report and plots.",
}


class UserError(click.ClickException):
    """A FacegenError as click reports it: `Error: MESSAGE` on stderr, exit code the error's own."""

    def __init__(self, error: FacegenError):
        super().__init__(error.message)
        self.exit_code = error.exit_code


class LazyGroup(click.Group):
    def invoke(self, ctx: click.Context):
        # The library raises FacegenError (no click in it); the command line reports it as click does
        # its own errors. Sub-commands' option callbacks run inside this call too.
        try:
            return super().invoke(ctx)
        except FacegenError as e:
            raise UserError(e) from None

    def list_commands(self, ctx: click.Context) -> list[str]:
        return list(COMMANDS)

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        target = COMMANDS.get(name)
        if target is None:
            return None
        module_name, attr = target.split(":")
        return getattr(importlib.import_module(module_name), attr)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        # Short help without importing every module.
        with formatter.section("Commands"):
            formatter.write_dl([(name, SHORT_HELP[name]) for name in COMMANDS])


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="facegen")
@click.option("--debug", is_flag=True, help="Add the Python traceback to a render worker's error (FACEGEN_DEBUG=1).")
def main(debug: bool) -> None:
    """facegen: synthetic faces with exact landmarks, and detectors trained on them.

    \b
    Typical session:
      facegen assets import-ict                 # once: build the face model cache
      facegen specs preview dense490 -o p.png   # look at a landmark spec
      facegen render --spec dense490 --n 10000 --out data/d490
      facegen preview data/d490 -o grid.png
      facegen train --data data/d490 --model hourglass --out runs/hg
      facegen eval --checkpoint runs/hg/best.pt --dataset 300w --root PATH

    Files: the imported face model lives in $FACEGEN_HOME (default ~/.cache/facegen).
    """
    if debug:
        os.environ["FACEGEN_DEBUG"] = "1"


if __name__ == "__main__":
    main()
