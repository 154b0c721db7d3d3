"""facegen: synthetic faces with exact landmark labels, and detectors trained and scored on them.

Python API (mirrors the CLI):
    facegen.load_face_model()        the imported parametric face model
    facegen.load_spec("dense490")    a compiled landmark spec
    facegen.render(...)              render labelled samples into HDF5 shards
    facegen.open_shards(DIR)         read shards back
    facegen.export(DIR, OUT, "coco") write shards as COCO keypoints or FaceSynthetics files
"""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("facegen")
except PackageNotFoundError:  # running from a source tree without install
    __version__ = "0.0.0+src"

from facegen.face_model import FaceModel, load_face_model  # noqa: E402
from facegen.shards import load_shards, open_shards  # noqa: E402



def load_spec(name_or_path: str):
    """A landmark spec (built-in name or YAML path) compiled against the default face model."""
    from facegen.specs import load_compiled

    return load_compiled(name_or_path)


def render(*args, **kwargs):
    """Render labelled samples into HDF5 shards: `facegen.render("dense490", 1000, "out/d490", workers=2)`
    (the Python form of `facegen render`; see `facegen.generator.job.render`)."""
    from facegen.generator.job import render as _render

    return _render(*args, **kwargs)


def export(shards, out, format: str, points: str = "spec", progress: bool = True) -> dict:
    """Write a `facegen render` folder as COCO keypoints or FaceSynthetics files (the Python form of
    `facegen export`; see `facegen.exports.export`)."""
    from facegen.exports import export as _export

    return _export(shards, out, format, points, progress)


__all__ = ["FaceModel", "load_face_model", "load_spec", "open_shards", "load_shards", "render", "export",
           "__version__"]
