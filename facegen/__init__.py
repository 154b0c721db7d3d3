"""facegen: synthetic faces with exact landmark labels, and detectors trained and scored on them.

Python API (each function is its command's implementation; keyword arguments mirror the options):
    facegen.render("ibug68", 500, "data/i68", renderer="raster")   -> the shard folder (facegen render)
    facegen.open_shards("data/i68")                                -> ShardSet: len, [i] -> dict of arrays
    facegen.sample_mesh("data/i68", 0).save("face.ply")            -> a sample's posed 3D head (facegen mesh)
    facegen.export("data/i68", "data/i68_coco", "coco")            -> summary dict (facegen export)
    facegen.train(["data/i68"], out="runs/i68", steps=2000)        -> TrainResult: .checkpoint, .summary
    facegen.load_predictor("runs/i68/best.pt")                     -> Predictor: .predict(images, boxes)
    facegen.evaluate(ckpt, ROOT, dataset="folder")                 -> report dict (facegen eval)
    facegen.score(PREDICTIONS, GROUND_TRUTH, subsets=...)          -> report dict (facegen score)
    facegen.load_spec("dense490"), facegen.list_specs()            -> compiled landmark spec, built-in names
    facegen.load_face_model()                                      -> the imported parametric face model
Errors the user can act on are `facegen.FacegenError`.

Names load on first use (PEP 562), so `import facegen` imports neither numpy nor torch, bpy or pyrender.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

from facegen.errors import FacegenError

# public name -> "module:attribute", imported when first used
_LAZY = {
    "render": "facegen.api:render",
    "train": "facegen.api:train",
    "TrainResult": "facegen.api:TrainResult",
    "evaluate": "facegen.api:evaluate",
    "score": "facegen.api:score",
    "load_predictor": "facegen.trainer.predictor:load_predictor",
    "Predictor": "facegen.trainer.predictor:Predictor",
    "open_shards": "facegen.shards:open_shards",
    "ShardSet": "facegen.shards:ShardSet",
    "sample_mesh": "facegen.generator.sample_mesh:sample_mesh",
    "SampleMesh": "facegen.generator.sample_mesh:SampleMesh",
    "export": "facegen.exports:export",
    "load_spec": "facegen.specs:load_spec",
    "read_spec": "facegen.specs:read_spec",
    "list_specs": "facegen.specs:list_specs",
    "CompiledSpec": "facegen.specs:CompiledSpec",
    "load_face_model": "facegen.face_model:load_face_model",
    "FaceModel": "facegen.face_model:FaceModel",
}

__all__ = [*_LAZY, "FacegenError", "__version__"]


def __getattr__(name: str):
    if name == "__version__":
        from importlib.metadata import PackageNotFoundError, version

        try:
            value = version("facegen")
        except PackageNotFoundError:  # running from a source tree without install
            value = "0.0.0+src"
    elif name in _LAZY:
        module, attr = _LAZY[name].split(":")
        value = getattr(importlib.import_module(module), attr)
    else:
        raise AttributeError(f"module 'facegen' has no attribute {name!r}")
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))


if TYPE_CHECKING:  # for editors and type checkers: the same names, imported eagerly
    from facegen.api import TrainResult, evaluate, render, score, train
    from facegen.exports import export
    from facegen.face_model import FaceModel, load_face_model
    from facegen.generator.sample_mesh import SampleMesh, sample_mesh
    from facegen.shards import ShardSet, open_shards
    from facegen.specs import CompiledSpec, list_specs, load_spec, read_spec
    from facegen.trainer.predictor import Predictor, load_predictor
