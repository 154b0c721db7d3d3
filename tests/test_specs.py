"""Landmark specs: built-ins load and are symmetric, contours behave, and each malformed kind fails."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from facegen.camera import euler_to_matrix
from facegen.specs import IBUG68_FLIP, SpecError, compile_spec, load_spec, parse_spec, read_spec

BUILTIN = {"ibug68": 68, "ibug68_3d": 68, "dense243": 243, "dense490": 490, "dense1001": 1001}


def _centre_cam(v: np.ndarray, yaw: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """Vertices turned by yaw about the mesh centroid, and a camera 60 cm in front on +z."""
    c = v.mean(axis=0)
    return (v - c) @ euler_to_matrix(yaw, 0, 0).T + c, c + [0.0, 0.0, 60.0]


@pytest.mark.parametrize("name", list(BUILTIN))
def test_builtin_compiles_symmetric(name, face_model):
    c = load_spec(name, face_model)
    assert c.num_points == BUILTIN[name] == len(c.names)
    assert sorted(c.flip.tolist()) == list(range(c.num_points))
    assert (c.flip[c.flip] == np.arange(c.num_points)).all()
    p = c.frontal_positions(face_model.neutral)
    np.testing.assert_allclose(p[c.flip] * [-1, 1, 1], p, atol=0.05)
    assert np.allclose(c.weights.sum(1), 1) and c.ibug68.shape == (68,)


def test_ibug68_flip_and_frontal_jaw(face_model):
    c = load_spec("ibug68", face_model)
    assert (c.flip == IBUG68_FLIP).all()
    assert IBUG68_FLIP[0] == 16 and IBUG68_FLIP[36] == 45 and IBUG68_FLIP[67] == 65 and IBUG68_FLIP[30] == 30
    assert sorted(c.contours) == [i for i in range(17) if i != 8]
    v, cam = _centre_cam(face_model.neutral.astype(np.float64))
    chosen = c.locate_indices(v, cam)
    assert all(chosen[i] == face_model.landmarks68[i] for i in chosen)
    np.testing.assert_allclose(c.locate(v, cam), v[face_model.landmarks68], atol=1e-9)


def test_contours_follow_turned_face(face_model):
    """Yaw +40 shows the subject's right side: right jaw slides outwards, left jaw inwards, and the
    upper left points move onto the cheek."""
    c = load_spec("ibug68", face_model)
    v, cam = _centre_cam(face_model.neutral.astype(np.float64), 40.0)
    chosen = c.locate_indices(v, cam)
    lm = face_model.landmarks68
    moved = [i for i in chosen if chosen[i] != lm[i]]
    assert len(moved) >= 8
    n0 = face_model.neutral
    for i in range(11, 17):  # far side: inwards on the cheek (nearer the midline, further forward)
        assert abs(n0[chosen[i], 0]) <= abs(n0[lm[i], 0]) + 1e-6 and n0[chosen[i], 2] >= n0[lm[i], 2] - 1e-6
    for i in range(0, 6):  # near side: further back on the head (smaller z in model space)
        assert face_model.neutral[chosen[i], 2] <= face_model.neutral[lm[i], 2] + 1e-9


@pytest.mark.parametrize("name", ["dense243", "dense490", "dense1001"])
def test_dense_covers_face_and_ibug(name, face_model):
    spec = read_spec(name)
    c = compile_spec(spec, face_model)
    p = c.frontal_positions(face_model.neutral)
    d = np.linalg.norm(p[c.ibug68] - face_model.neutral[face_model.landmarks68], axis=1)
    assert d.max() < 1e-6  # the iBUG points are part of every dense spec
    for g in ("oval", "brow_left", "eye_right", "nose", "lips_outer", "lips_inner", "forehead", "chin", "cheek_left"):
        assert len(c.groups[g]) > 0, g
    # denser on lids than on cheeks: mean nearest-neighbour spacing
    def spacing(ix):
        q = p[ix]
        dd = np.linalg.norm(q[:, None] - q[None], axis=2) + np.eye(len(q)) * 1e9
        return dd.min(1).mean()
    assert spacing(c.groups["eye_right"]) < 0.6 * spacing(c.groups["cheek_right"])
    assert all(len(c.contours[i]) >= 2 for i in c.groups["oval"] if i in c.contours)


def test_generate_is_deterministic(face_model, tmp_path):
    from facegen.spec_generate import dense_spec_yaml

    text = dense_spec_yaml(face_model, 333, command="x")
    assert text == dense_spec_yaml(face_model, 333, command="x")
    c = compile_spec(parse_spec(text, "dense333"), face_model)
    assert c.num_points == 333
    shipped = read_spec("dense243").yaml_text
    assert dense_spec_yaml(face_model, 243, command=shipped.split("`")[1]) == shipped


# -- one test per failure kind ----------------------------------------------------------------

GOOD = """name: t
model: ict-facekit
num_points: 3
points:
  - {name: a, vertex: 1225}
  - {name: b, vertex: 3443}
  - {name: tip, vertex: 4}
pairs: [[0, 1]]
ibug68: %s
""" % ([0] * 68)


def _fails(text: str, *needles: str, model=None) -> str:
    with pytest.raises(SpecError) as e:
        s = parse_spec(text, "landmark_specs/x.yaml")
        if model is not None:
            compile_spec(s, model)
    msg = str(e.value.message)
    assert msg.startswith("landmark_specs/x.yaml: "), msg
    for n in needles:
        assert n in msg, msg
    return msg


def test_good_spec_compiles(face_model):
    assert compile_spec(parse_spec(GOOD.replace("vertex: 4}", "vertex: 0}"), "x"), face_model).num_points == 3


def test_bad_yaml():
    _fails("name: [unclosed\n", "not valid YAML")


def test_unknown_key():
    _fails(GOOD.replace("{name: a, vertex: 1225}", "{name: a, vertx: 1225}"), "points[0] 'a'", "unknown key 'vertx'")
    _fails(GOOD + "colour: red\n", "colour", "unknown key")


def test_index_out_of_range(face_model):
    t = GOOD.replace("{name: tip, vertex: 4}", "{name: jaw_3, triangle: 99999, weights: [0.2, 0.3, 0.5]}")
    msg = _fails(t, model=face_model)
    assert msg == "landmark_specs/x.yaml: points[2] 'jaw_3': triangle 99999 out of range (model has 52220 triangles)"
    _fails(GOOD.replace("vertex: 4}", "vertex: 26719}"), "points[2] 'tip'", "vertex 26719 out of range", model=face_model)


def test_degenerate_weights():
    t = GOOD.replace("{name: tip, vertex: 4}", "{name: tip, triangle: 5, weights: [0.5, 0.7, -0.2]}")
    _fails(t, "points[2] 'tip'", "degenerate barycentric weights")
    _fails(t.replace("[0.5, 0.7, -0.2]", "[0.5, 0.5, 0.5]"), "degenerate")


def test_duplicate_point(face_model):
    _fails(GOOD.replace("vertex: 4}", "vertex: 1225}"), "points[2] 'tip'", "duplicate point", "points[0]")
    _fails(GOOD.replace("name: tip", "name: a"), "points[2] 'a'", "duplicate point name")
    # a barycentric corner at vertex 0 of triangle 0 is the same point as a vertex point there
    v0 = int(face_model.triangles[0, 0])
    t = GOOD.replace("vertex: 4}", "triangle: 0, weights: [1, 0, 0]}").replace("vertex: 1225}", f"vertex: {v0}}}")
    t = t.replace("pairs: [[0, 1]]", "pairs: []").replace("{name: b, vertex: 3443}", "{name: b, vertex: 0}")
    msg = _fails(t, "duplicate point", model=face_model)
    assert "points[2]" in msg or "points[1]" in msg


def test_pair_not_mirror_consistent(face_model):
    _fails(GOOD.replace("vertex: 3443}", "vertex: 3444}"), "points[0] 'a'", "not mirror-consistent", model=face_model)
    _fails(GOOD.replace("pairs: [[0, 1]]", "pairs: [[0, 1], [1, 2]]"), "pairs[1]", "already in pairs[0]")
    _fails(GOOD.replace("pairs: [[0, 1]]", "pairs: []"), "points[0] 'a'", "no mirror partner", model=face_model)


def test_wrong_declared_count():
    _fails(GOOD.replace("num_points: 3", "num_points: 4"), "num_points", "declares 4 points but the spec lists 3")


def test_cli_validate_exit_code(tmp_path):
    bad = tmp_path / "x.yaml"
    bad.write_text(GOOD.replace("num_points: 3", "num_points: 5"))
    r = subprocess.run([sys.executable, "-m", "facegen.cli", "specs", "validate", str(bad)],
                       capture_output=True, text=True)
    assert r.returncode == 2 and f"{bad}: num_points: declares 5" in r.stderr
    r = subprocess.run([sys.executable, "-m", "facegen.cli", "specs", "validate", "ibug68"],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr


def test_ibug68_3d_keeps_the_jaw_on_fixed_surface_points(face_model):
    """ibug68_3d's jaw is ibug68's frontal jaw candidates, whatever the view (the 3D-fit convention),
    while ibug68's far-side jaw slides to the visible outline on a turned face."""
    contour, fixed = (load_spec(n, face_model) for n in ("ibug68", "ibug68_3d"))
    assert not fixed.contours and fixed.names == contour.names
    front_v, front_cam = _centre_cam(face_model.neutral)
    np.testing.assert_allclose(fixed.locate(front_v, front_cam), contour.frontal_positions(front_v), atol=1e-9)
    turned_v, cam = _centre_cam(face_model.neutral, yaw=60.0)
    a, b = contour.locate(turned_v, cam), fixed.locate(turned_v, cam)
    np.testing.assert_allclose(b, fixed.frontal_positions(turned_v), atol=1e-9)  # no view dependence
    moved = np.linalg.norm(a[:17] - b[:17], axis=1)
    assert np.allclose(a[17:], b[17:]) and moved.max() > 1.0  # cm: the far jaw moved to the outline


@pytest.mark.parametrize("name", ["dense243", "dense490", "dense1001"])
def test_dense_records_both_ibug_conventions(name, face_model):
    """A dense spec's `ibug68_3d` points sit on ibug68_3d's surface points in a frontal view; turned, the 51
    inner points still agree and the jaw follows the outline (as ibug68's does), not the fixed jaw."""
    dense, fixed, contour = (load_spec(n, face_model) for n in (name, "ibug68_3d", "ibug68"))
    np.testing.assert_allclose(dense.frontal_positions(face_model.neutral)[dense.ibug68_3d],
                               fixed.frontal_positions(face_model.neutral), atol=1e-9)
    turned_v, cam = _centre_cam(face_model.neutral, yaw=60.0)
    d, f, c = (s.locate(turned_v, cam) for s in (dense, fixed, contour))
    np.testing.assert_allclose(d[dense.ibug68_3d][17:], f[17:], atol=1e-9)
    np.testing.assert_allclose(d[dense.ibug68][:17], c[:17], atol=1e-9)
    assert np.linalg.norm(d[dense.ibug68_3d][:17] - f[:17], axis=1).max() > 1.0  # cm


def test_checkpoint_spec_knows_its_jaw_convention():
    from facegen.trainer.predictor import SpecInfo

    def info(name):
        spec = read_spec(name)
        return SpecInfo(name, spec.yaml_text, [p.name for p in spec.points], np.arange(spec.num_points),
                        None if spec.ibug68 is None else np.asarray(spec.ibug68))

    assert info("ibug68").jaw_convention() == "2d" and info("ibug68_3d").jaw_convention() == "3d"
    dense = info("dense490")
    assert dense.jaw_convention() == "2d"
    np.testing.assert_array_equal(dense.correspondence("3d"), read_spec("dense490").ibug68_3d)
    np.testing.assert_array_equal(info("ibug68_3d").correspondence("2d"), np.arange(68))
    assert SpecInfo("toy", "name: toy\n", [], np.arange(10), None).correspondence("3d") is None


def test_specs_compare_draws_the_jaw_difference(face_model, tmp_path):
    """`facegen specs compare` renders both specs on one face: identical when frontal, the far jaw
    apart on a turned face (measured in pixels from the drawn points)."""
    import cv2
    from click.testing import CliRunner

    from facegen.cli import main

    out = tmp_path / "jaw.png"
    r = CliRunner().invoke(main, ["specs", "compare", "ibug68", "ibug68_3d", "-o", str(out), "--yaw", "0",
                                  "--yaw", "60", "--size", "256"])
    assert r.exit_code == 0, r.output
    moved = [float(line.split("difference ")[1].split(" px")[0]) for line in r.output.splitlines() if "px" in line]
    assert moved[0] == 0.0 and moved[1] > 20.0
    img = cv2.imread(str(out))
    assert img.shape == (256, 512, 3) and img.std() > 10
