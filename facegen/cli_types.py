"""Click parameter types shared by the commands: a user's mistake in an option is reported by click, naming
the option, before the command does any work (exit code 2, no traceback)."""

from __future__ import annotations

import math
from pathlib import Path

import click

# Formats cv2.imwrite writes from a colour image (.pbm/.pgm take grey only, .jp2 fails on small images).
IMAGE_WRITE_EXTS = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp", ".ppm")


class FiniteFloat(click.FloatRange):
    """click.FloatRange that also refuses nan and inf (they pass every range comparison)."""

    def convert(self, value, param, ctx):
        value = super().convert(value, param, ctx)
        if not math.isfinite(value):
            self.fail(f"{value} is not a finite number.", param, ctx)
        return value


def _creatable(folder: Path, param, ctx) -> None:
    """Fail unless `folder` or, where it is missing, its nearest existing ancestor is a folder."""
    existing = next(p for p in [folder, *folder.absolute().parents] if p.exists())
    if not existing.is_dir():
        raise click.BadParameter(f"{existing} is a file, not a folder.", ctx, param)


class OutFolder(click.Path):
    """An output folder: an existing folder or one that can be created (not an existing file)."""

    def __init__(self, **kw):
        super().__init__(file_okay=False, **kw)

    def convert(self, value, param, ctx):
        value = super().convert(value, param, ctx)
        _creatable(Path(value), param, ctx)
        return value


class ImageFile(click.Path):
    """An image to write: not a folder, a suffix OpenCV writes (.png, .jpg ...), in a folder that can exist."""

    def __init__(self, **kw):
        super().__init__(dir_okay=False, **kw)

    def convert(self, value, param, ctx):
        value = super().convert(value, param, ctx)
        path = Path(value)
        if path.suffix.lower() not in IMAGE_WRITE_EXTS:
            self.fail(f"{path}: cannot write {path.suffix or 'an image without a suffix'}; "
                      f"name a {', '.join(IMAGE_WRITE_EXTS)} file.", param, ctx)
        _creatable(path.parent, param, ctx)
        return value
