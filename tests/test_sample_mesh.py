"""The 3D behind every sample: `facegen.sample_mesh` / `facegen mesh` rebuild a rendered sample's posed head
from its stored SceneParams, in the space of its landmarks_3d, and write it with trimesh."""

from __future__ import annotations

import numpy as np
import pytest
import trimesh
from click.testing import CliRunner

import facegen
from facegen.cli import main
from facegen.errors import FacegenError

N = 3


@pytest.fixture(scope="module")
def rendered(tmp_path_factory, face_model):
    """Three raster renders of dense490 (barycentric points, and jaw contours chosen per pose)."""
    out = tmp_path_factory.mktemp("mesh") / "d490"
    assert facegen.render("dense490", N, out, size=64, seed=3, renderer="raster", progress=False) == out
    return out


def test_rebuilt_mesh_carries_the_stored_landmarks(rendered, face_model):
    from facegen.generator.labels import Labeller

    shards = facegen.open_shards(rendered)
    labeller = Labeller(facegen.load_spec("dense490", face_model), face_model)
    for i in range(N):
        mesh = facegen.sample_mesh(rendered, i)
        stored = shards.read(i, ("landmarks_3d",))["landmarks_3d"]
        assert mesh.vertices.shape == (face_model.num_vertices, 3) and mesh.vertices.dtype == np.float32
        assert len(mesh.triangles) == len(face_model.triangles) and mesh.landmark_names == shards.landmark_names
        np.testing.assert_array_equal(mesh.landmarks, stored)  # located as the labeller did: the same numbers
        # the spec located on the rebuilt (camera-space) vertices, as the labeller does: the camera at 0
        located = labeller.locate(mesh.vertices, np.zeros(3))
        np.testing.assert_allclose(located, stored, rtol=0, atol=5e-5)  # float32 vertices at ~60 cm: ~1e-5 cm
    shards.close()


@pytest.mark.parametrize("suffix", [".ply", ".obj"])
def test_written_files_load_back(rendered, face_model, tmp_path, suffix):
    mesh = facegen.sample_mesh(rendered, 1)
    head, points = mesh.save(tmp_path / f"face{suffix}")
    assert head.name == f"face{suffix}" and points.name == f"face-landmarks{suffix}"
    loaded = trimesh.load(head, process=False)
    assert loaded.vertices.shape == (face_model.num_vertices, 3) and loaded.faces.shape == face_model.triangles.shape
    np.testing.assert_allclose(loaded.vertices, mesh.vertices, rtol=0, atol=1e-5)
    np.testing.assert_array_equal(loaded.faces, face_model.triangles)
    np.testing.assert_allclose(np.asarray(trimesh.load(points).vertices), mesh.landmarks, rtol=0, atol=1e-5)


def test_cli_writes_head_landmarks_and_dressing(rendered, face_model, tmp_path):
    out = tmp_path / "m" / "face.obj"
    result = CliRunner().invoke(main, ["mesh", str(rendered), "2", "-o", str(out), "--with-dressing"])
    assert result.exit_code == 0, result.output
    names = sorted(p.name for p in out.parent.iterdir())
    # every sample wears a garment (clothing weights) and has strand brows
    assert names == ["face-dressing.obj", "face-landmarks.obj", "face-strands.ply", "face.obj"], names
    dressing = trimesh.load(out.parent / "face-dressing.obj", process=False)
    assert len(dressing.faces) and dressing.visual.kind == "vertex"
    # the strands: one polyline each (read the PLY header: trimesh turns every edge into an entity, slowly)
    mesh = facegen.sample_mesh(rendered, 2, with_dressing=True)
    strands = [w for w in mesh.dressing if w.triangles is None]
    header = (out.parent / "face-strands.ply").read_bytes().split(b"end_header")[0].decode()
    points = sum(len(w.vertices) for w in strands)
    lines = sum(len(w.vertices) // w.strand_length for w in strands)
    assert f"element vertex {points}" in header and f"element edge {points - lines}" in header, header
    # what is worn sits around the head, in the same camera space
    for worn in mesh.dressing:
        assert abs(np.median(worn.vertices[:, 2]) - np.median(mesh.vertices[:, 2])) < 15, worn.name


def test_mistakes_are_named(rendered, toy_shards, tmp_path):
    with pytest.raises(FacegenError, match="not a SceneParams record"):
        facegen.sample_mesh(toy_shards, 0)
    for args, needle in ((["mesh", str(rendered), "3", "-o", str(tmp_path / "f.ply")], "samples 0-2"),
                         (["mesh", str(rendered), "0", "-o", str(tmp_path / "f.stl")], ".ply or .obj"),
                         (["mesh", str(tmp_path / "none"), "0", "-o", str(tmp_path / "f.ply")], "no such directory")):
        result = CliRunner().invoke(main, args)
        assert result.exit_code == 2 and needle in result.output and "Traceback" not in result.output, result.output
