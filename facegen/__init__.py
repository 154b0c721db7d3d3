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

__all__ = ["FaceModel", "load_face_model", "__version__"]
