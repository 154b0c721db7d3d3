"""ICT-FaceKit import: the model reproduces the official OBJs, and bad sources fail clearly."""

from __future__ import annotations

import shutil
import zipfile

import numpy as np
import pytest

from facegen.errors import FacegenError
from facegen.ict import _parse_vertices, import_ict
from tests.conftest import require_shared

PREFIX = "ICT-FaceKit-master/FaceXModel/"
IBUG68_README = [
    1225, 1888, 1052, 367, 1719, 1722, 2199, 1447, 966, 3661, 4390, 3927, 3924, 2608, 3272, 4088, 3443, 268,
    493, 1914, 2044, 1401, 3615, 4240, 4114, 2734, 2509, 978, 4527, 4942, 4857, 1140, 2075, 1147, 4269, 3360,
    1507, 1542, 1537, 1528, 1518, 1511, 3742, 3751, 3756, 3721, 3725, 3732, 5708, 5695, 2081, 0, 4275, 6200,
    6213, 6346, 6461, 5518, 5957, 5841, 5702, 5711, 5533, 6216, 6207, 6470, 5517, 5966,
]


def _obj_vertices(name: str) -> np.ndarray:
    zip_path = require_shared("assets", "ict-facekit", "ICT-FaceKit-master.zip")
    with zipfile.ZipFile(zip_path) as z:
        return _parse_vertices(z.read(PREFIX + name), name, None)


def test_model_contents(face_model):
    m = face_model
    assert m.neutral.shape == (26719, 3) and m.identity_basis.shape == (100, 26719, 3)
    assert m.expression_basis.shape == (57, 26719, 3) and len(m.expression_names) == 57
    assert "jawOpen" in m.expression_names and "eyeBlink_L" in m.expression_names
    assert m.triangles.max() < m.num_vertices and m.triangle_uvs.max() < len(m.uvs)
    # 25836 quads split in two + 548 triangles
    assert len(m.triangles) == 2 * 25836 + 548
    assert list(m.landmarks68) == IBUG68_README
    assert len(m.region_vertices("face")) == 9409 and len(m.region_vertices("eyelashes_left")) == 684
    assert len(m.region_triangles("teeth")) > 0 and len(m.hash) == 64


@pytest.mark.parametrize("kind,index", [("identity", 0), ("identity", 41), ("identity", 99),
                                        ("expression", "jawOpen"), ("expression", "eyeBlink_R"),
                                        ("expression", "mouthSmile_L"), ("expression", "cheekRaiser_R")])
def test_mesh_reproduces_obj(face_model, kind, index):
    m = face_model
    if kind == "identity":
        w = np.zeros(m.num_identity)
        w[index] = 1.0
        got, name = m.mesh(identity=w), f"identity{index:03d}.obj"
    else:
        w = np.zeros(m.num_expressions)
        w[m.expression_index(index)] = 1.0
        got, name = m.mesh(expression=w), f"{index}.obj"
    assert np.abs(got - _obj_vertices(name)).max() < 1e-4


def test_neutral_mesh_matches(face_model):
    assert np.abs(face_model.mesh() - _obj_vertices("generic_neutral_mesh.obj")).max() < 1e-4


@pytest.fixture(scope="module")
def unpacked_ict(tmp_path_factory):
    """The official zip unpacked to a folder, as a `git clone` would give it."""
    zip_path = require_shared("assets", "ict-facekit", "ICT-FaceKit-master.zip")
    root = tmp_path_factory.mktemp("ict")
    with zipfile.ZipFile(zip_path) as z:
        z.extractall(root)
    return root / "ICT-FaceKit-master"


def test_folder_import_equals_zip_import(face_model, unpacked_ict):
    assert import_ict(unpacked_ict).hash == face_model.hash
    assert import_ict(unpacked_ict / "FaceXModel").hash == face_model.hash


def test_wrong_folder_says_where_to_get_ict(tmp_path):
    with pytest.raises(FacegenError, match=r"not an ICT-FaceKit folder.*github.com/ICT-VGL"):
        import_ict(tmp_path)
    with pytest.raises(FacegenError, match="does not exist"):
        import_ict(tmp_path / "nope")
    (tmp_path / "x.zip").write_bytes(b"not a zip")
    with pytest.raises(FacegenError, match="not a zip file"):
        import_ict(tmp_path / "x.zip")


def test_missing_file_is_named(unpacked_ict, tmp_path):
    broken = tmp_path / "ict"
    shutil.copytree(unpacked_ict / "FaceXModel", broken / "FaceXModel")
    (broken / "FaceXModel" / "identity042.obj").unlink()
    with pytest.raises(FacegenError, match="identity042.obj is missing"):
        import_ict(broken)


@pytest.mark.parametrize("keep,message", [(0.2, r"jawOpen.obj: \d+ vertices, expected 26719"),
                                          (0.5, r"jawOpen.obj: \d+ faces, expected 26384")])
def test_truncated_obj_is_named(unpacked_ict, tmp_path, keep, message):
    broken = tmp_path / "ict"
    shutil.copytree(unpacked_ict / "FaceXModel", broken / "FaceXModel")
    obj = broken / "FaceXModel" / "jawOpen.obj"
    data = obj.read_bytes()
    obj.write_bytes(data[: int(len(data) * keep)])
    with pytest.raises(FacegenError, match=message):
        import_ict(broken)


def test_cli_import_and_load(tmp_path, monkeypatch):
    from click.testing import CliRunner

    from facegen.cli import main
    from facegen.face_model import load_face_model

    zip_path = require_shared("assets", "ict-facekit", "ICT-FaceKit-master.zip")
    out = tmp_path / "model.npz"
    result = CliRunner().invoke(main, ["assets", "import-ict", str(zip_path), "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "57 expressions" in result.output
    assert load_face_model(out).num_vertices == 26719

    monkeypatch.setenv("FACEGEN_HOME", str(tmp_path / "empty"))
    result = CliRunner().invoke(main, ["assets", "info"])
    assert result.exit_code == 2 and "facegen assets import-ict" in result.output


def test_meshes_do_not_depend_on_their_batch(face_model):
    """A render job shapes meshes in batches; each must be bit for bit what `mesh` gives alone (so a
    sample depends only on its seed and index, not on the batching or the worker count)."""
    m = face_model
    rng = np.random.default_rng(3)
    identities = rng.standard_normal((7, m.num_identity)).astype(np.float32)
    expressions = (rng.random((7, m.num_expressions)) * (rng.random((7, m.num_expressions)) < 0.15)).astype(np.float32)
    batch = m.meshes(identities, expressions)
    for i in range(7):
        assert np.array_equal(batch[i], m.mesh(identities[i], expressions[i])), i
    assert np.array_equal(m.meshes(identities[2:5], expressions[2:5]), batch[2:5])
    dense = m.neutral + np.einsum("k,kvc->vc", identities[0], m.identity_basis) \
        + np.einsum("k,kvc->vc", expressions[0], m.expression_basis)
    assert np.abs(batch[0] - dense).max() < 1e-4
