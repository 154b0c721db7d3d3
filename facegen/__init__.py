"""facegen: synthetic faces with exact landmark labels, and detectors trained and scored on them.

Python API (mirrors the CLI):
    facegen.load_face_model()        the imported parametric face model
    facegen.load_spec("dense490")    a compiled landmark spec
    facegen.render(...)              render labelled samples into HDF5 shards
    facegen.open_shards(DIR)         read shards back
"""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("facegen")
except PackageNotFoundError:  # running from a source tree without install
    __version__ = "0.0.0+src"

from facegen.face_model import FaceModel, load_face_model  # noqa: E402



def load_spec(name_or_path: str):
    """A landmark spec (built-in name or YAML path) compiled against the default face model."""
    from facegen.specs import load_compiled

    return load_compiled(name_or_path)


__all__ = ["FaceModel", "load_face_model", "load_spec", "__version__"]
