"""The 3D behind a sample: its posed head rebuilt from the SceneParams record its shard stores.

`sample_mesh(DIR, INDEX)` shapes the face model with the sample's identity and expression, poses it
(generator/scene.py pose_scene) and moves it into the sample's camera space: the space of the shard's
`landmarks_3d` (x right, y down, z forward, cm; docs/shard-format.md). Its `landmarks` are the spec's
points located on that mesh as the labeller located them for the render, so they equal the stored
`landmarks_3d`. With `with_dressing`, what the sample wears (generator/parts.py dressing) comes too.

`SampleMesh.save("face.ply")` writes (by suffix, .ply or .obj; trimesh):
  face.ply            the head: every vertex and triangle of the face model, in its order
  face-landmarks.ply  the spec's points, in the spec's order (the shard's landmark_names): a point cloud
  face-dressing.ply   with dressing: garment, glasses, mask, headwear, hand ... as one mesh, coloured
  face-strands.ply    with dressing: hair, beard and brow strands as polylines (PLY edges, whatever the suffix:
                      OBJ has no line elements that trimesh writes)
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from facegen.errors import FacegenError

SUFFIXES = (".ply", ".obj")


@dataclass
class WornMesh:
    """One thing the sample wears, in camera space: a surface (triangles) or strands (polylines)."""

    name: str  # its material (generator/parts.py DRESSING_MATERIALS): clothing, scalp_hair, hand ...
    vertices: np.ndarray  # (n, 3) float32 cm
    triangles: np.ndarray | None  # (F, 3) surfaces; None for strands
    strand_length: int = 0  # strands: points per strand (vertices hold the strands one after the other)
    colours: np.ndarray | None = None  # (n, 3) float32 linear RGB per vertex


@dataclass
class SampleMesh:
    """One sample's posed head in its camera space (cm), with its 3D landmarks."""

    index: int  # the sample's index in the shard folder
    vertices: np.ndarray  # (V, 3) float32: the face model's vertices, posed, in camera space
    triangles: np.ndarray  # (F, 3) int32: the face model's triangles
    landmarks: np.ndarray  # (L, 3) float32: the spec's points on this mesh (= the shard's landmarks_3d)
    landmark_names: list[str]
    dressing: list[WornMesh] = field(default_factory=list)

    def save(self, path: str | Path) -> list[Path]:
        """Write the head to `path` (.ply or .obj) and its landmarks (and dressing) beside it; returns the
        files written (see the module doc)."""
        import trimesh

        path = Path(path)
        suffix = path.suffix.lower()
        if suffix not in SUFFIXES:
            raise FacegenError(f"{path}: cannot write {path.suffix or 'a file without a suffix'}; name a .ply or "
                               ".obj file")
        path.parent.mkdir(parents=True, exist_ok=True)
        beside = lambda what, ext=suffix: path.with_name(f"{path.stem}-{what}{ext}")  # noqa: E731
        written = [path, beside("landmarks")]
        trimesh.Trimesh(self.vertices, self.triangles, process=False).export(path)
        trimesh.PointCloud(self.landmarks).export(written[1])
        surfaces = [w for w in self.dressing if w.triangles is not None]
        if surfaces:
            written.append(beside("dressing"))
            _surfaces_mesh(surfaces).export(written[-1])
        strands = [w for w in self.dressing if w.triangles is None]
        if strands:
            written.append(beside("strands", ".ply"))
            _strands_path(strands).export(written[-1], file_type="ply")
        return written


def sample_mesh(shards: str | Path, index: int, *, with_dressing: bool = False, model=None) -> SampleMesh:
    """The posed 3D head of sample `index` of a shard folder, rebuilt from its stored SceneParams, in
    the sample's camera space (the space of its `landmarks_3d`), with the spec's points located on it.
    with_dressing: add what it wears (hair strands, garment, glasses, mask, headwear, hand). model: the
    face model (default: the cached one; it must be the one the shards were rendered with)."""
    from facegen.face_model import load_face_model
    from facegen.generator.labels import Labeller
    from facegen.generator.scene import SceneParams, pose_scene
    from facegen.shards import open_shards
    from facegen.specs import compile_spec, parse_spec

    shards = open_shards(shards)
    try:
        if not shards.has("params"):
            raise FacegenError(f"{shards.files[0].parent}: these shards hold no SceneParams records (`params`), "
                               "so their samples cannot be rebuilt")
        n = len(shards)
        if not 0 <= index < n:
            raise FacegenError(f"sample {index}: the folder holds samples 0-{n - 1}")
        record = shards.read(index, ("params",))["params"]
        try:
            params = SceneParams.from_dict(record)
        except (KeyError, TypeError) as e:
            raise FacegenError(f"{shards.files[0].parent}: sample {index}'s params is not a SceneParams record "
                               f"({type(e).__name__}: {e}), so it cannot be rebuilt") from None
        model = model or load_face_model()
        made_with = shards.attrs.get("model_hash")
        if made_with and made_with != model.hash:
            raise FacegenError(f"{shards.files[0].parent}: rendered with face model {made_with}, but the one "
                               f"loaded is {model.hash}; import the model it was rendered with "
                               "(facegen assets import-ict)")
        spec = compile_spec(parse_spec(shards.spec_yaml, f"{shards.files[0]} (spec_yaml)"), model)
        names = shards.landmark_names
    finally:
        shards.close()
    scene = pose_scene(params, model)
    cam = scene.camera
    # As the labeller does it: the points located on the world-space mesh, then into camera space.
    landmarks = cam.to_camera(Labeller(spec, model).locate(scene.vertices, cam.centre)).astype(np.float32)
    worn = _dressing(params, scene, model, cam) if with_dressing else []
    return SampleMesh(index=index, vertices=cam.to_camera(scene.vertices).astype(np.float32),
                      triangles=np.asarray(model.triangles, np.int32), landmarks=landmarks,
                      landmark_names=list(names), dressing=worn)


def _dressing(params, scene, model, cam) -> list[WornMesh]:
    from facegen.generator.parts import dressing

    worn = dressing(params, scene, model)
    out = []
    for w in worn.strands:
        pts = w.geometry.points
        colours = np.repeat(w.geometry.colours, pts.shape[1], axis=0)
        out.append(WornMesh(w.material, cam.to_camera(pts.reshape(-1, 3)).astype(np.float32), None, pts.shape[1],
                            colours))
    for w in worn.surfaces:
        g = w.geometry
        out.append(WornMesh(w.material, cam.to_camera(g.vertices).astype(np.float32),
                            np.asarray(g.triangles, np.int32), colours=g.colours))
    return out


def _srgb8(linear: np.ndarray) -> np.ndarray:
    """(n, 3) linear RGB in [0, 1] -> (n, 4) sRGB uint8 RGBA, for viewers' vertex colours."""
    c = np.clip(np.asarray(linear, np.float64), 0, 1)
    srgb = np.where(c <= 0.0031308, 12.92 * c, 1.055 * c ** (1 / 2.4) - 0.055)
    return np.column_stack([np.round(255 * srgb), np.full(len(c), 255)]).astype(np.uint8)


def _surfaces_mesh(surfaces: list[WornMesh]):
    import trimesh

    meshes = [trimesh.Trimesh(w.vertices, w.triangles, process=False,
                              vertex_colors=None if w.colours is None else _srgb8(w.colours)) for w in surfaces]
    return trimesh.util.concatenate(meshes)


def _strands_path(strands: list[WornMesh]):
    from trimesh.path import Path3D
    from trimesh.path.entities import Line

    vertices = np.concatenate([w.vertices for w in strands])
    entities, start = [], 0
    for w in strands:
        for first in range(start, start + len(w.vertices), w.strand_length):
            entities.append(Line(np.arange(first, first + w.strand_length)))
        start += len(w.vertices)
    return Path3D(entities=entities, vertices=vertices, process=False)
