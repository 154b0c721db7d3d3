"""`facegen render` on bad input: every option and input file is checked before the output folder is
touched, the error names the option, key or file, and the corrected command then works on the same
folder with every finished shard unchanged. Also: the folder rules (a job that finished nothing
never locks a folder, finished shards are never rewritten or dropped, a lost manifest is rebuilt)."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

import facegen
from facegen.cli import main

BASE = ["--spec", "ibug68", "--renderer", "raster", "--size", "64", "--quiet", "--shard-size", "2", "--seed", "0"]


def render(out: Path, *args: str):
    return CliRunner().invoke(main, ["render", "--out", str(out), *BASE, *args])


def snapshot(folder: Path) -> dict[str, tuple[bytes, float]]:
    """Every file's bytes and modification time."""
    return {p.name: (p.read_bytes(), p.stat().st_mtime_ns) for p in sorted(folder.iterdir())}


def assert_clear_error(result, *names: str) -> None:
    assert result.exit_code not in (0, None), result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), \
        f"raised {result.exception!r} instead of a clear error"  # CliRunner keeps a traceback's exception
    assert "Traceback" not in result.output
    for name in names:
        assert name in result.output, f"{name!r} not in: {result.output}"


@pytest.fixture(scope="module")
def finished(tmp_path_factory, face_model) -> Path:
    """A folder holding a finished 4-sample job (two shards)."""
    out = tmp_path_factory.mktemp("finished") / "job"
    assert render(out, "--n", "4").exit_code == 0
    return out


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> Path:
    """Bad and good input files."""
    d = tmp_path_factory.mktemp("inputs")
    configs = {
        "yaw_wide": "head_pose: {yaw_std: wide}",
        "focal_number": "camera: {focal_mm: 50}",
        "lights_reversed": "lighting: {num_lights: [3, 1]}",
        "weights_zero": "background: {kinds: {solid: 0, gradient: 0, noise: 0, photo: 0, hdri: 0}}",
        "yaw_negative": "head_pose: {yaw_std: -5}",
        "behind_head": "camera: {face_fraction: [-1.0, 0.0]}",
        "modes_500": "identity: {num_modes: 500}",
        "unknown_expression": "expression: {groups: {wink: {prob: 0.5, weight: [0.2, 0.8], shapes: [eyeWink]}}}",
        "unknown_key": "head_pose: {yaw_sd: 10}",
        "not_yaml": "head_pose: {yaw_std: [",
        "a_list": "- 1\n- 2",
        "too_many_lights": "lighting: {num_lights: [1, 5]}",
        "probability": "expression: {neutral_prob: 1.5}",
    }
    for name, text in configs.items():
        (d / f"{name}.yaml").write_text(text + "\n")
    (d / "bad-spec.yaml").write_text("name: broken\npoints: [\n")
    import cv2

    photos = d / "photos"
    photos.mkdir()
    cv2.imwrite(str(photos / "good.jpg"), np.full((40, 60, 3), 120, np.uint8))
    corrupt_photos = d / "corrupt-photos"
    shutil.copytree(photos, corrupt_photos)
    (corrupt_photos / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    (d / "empty").mkdir()
    hdris = d / "hdris"
    hdris.mkdir()
    os.environ.setdefault("OPENCV_IO_ENABLE_OPENEXR", "1")
    cv2.imwrite(str(hdris / "grey.exr"), np.full((32, 64, 3), 0.5, np.float32))
    corrupt_hdris = d / "corrupt-hdris"
    shutil.copytree(hdris, corrupt_hdris)
    (corrupt_hdris / "broken.exr").write_bytes(b"v/1\x01 truncated exr")
    (d / "a-file").write_text("not a folder")
    return d


# (id, bad arguments, what the message must name). The corrected command is the finished job's own
# with a larger --n: it must then add shards without touching the finished ones.
CASES = [
    ("seed negative", ["--seed", "-1"], ["--seed"]),
    ("n zero", ["--n", "0"], ["--n"]),
    ("n below the finished shards", ["--n", "1"], ["--n 1", "already holds", "shard-00001.h5"]),
    ("shard size zero", ["--shard-size", "0"], ["--shard-size"]),
    ("workers zero", ["--workers", "0"], ["--workers"]),
    ("size too small", ["--size", "8"], ["--size"]),
    ("unknown renderer", ["--renderer", "povray"], ["--renderer", "povray"]),
    ("unknown output", ["--outputs", "rgb,normals"], ["--outputs", "normals"]),
    ("outputs without rgb", ["--outputs", "depth"], ["--outputs", "rgb"]),
    ("unknown spec", ["--spec", "nosuchspec"], ["nosuchspec"]),
    ("broken spec file", ["--spec", "{files}/bad-spec.yaml"], ["bad-spec.yaml"]),
    ("missing config", ["--config", "{files}/missing.yaml"], ["--config", "missing.yaml"]),
    ("config: text for a number", ["--config", "{files}/yaw_wide.yaml"], ["yaw_wide.yaml", "head_pose.yaw_std"]),
    ("config: number for a range", ["--config", "{files}/focal_number.yaml"], ["focal_number.yaml", "camera.focal_mm"]),
    ("config: reversed range", ["--config", "{files}/lights_reversed.yaml"], ["lighting.num_lights"]),
    ("config: all weights zero", ["--config", "{files}/weights_zero.yaml"], ["weights_zero.yaml", "background.kinds"]),
    ("config: negative std", ["--config", "{files}/yaw_negative.yaml"], ["head_pose.yaw_std"]),
    ("config: camera behind the head", ["--config", "{files}/behind_head.yaml"], ["camera.face_fraction"]),
    ("config: more modes than the model", ["--config", "{files}/modes_500.yaml"], ["identity.num_modes", "100"]),
    ("config: unknown expression", ["--config", "{files}/unknown_expression.yaml"], ["eyeWink", "unknown_expression.yaml"]),
    ("config: unknown key", ["--config", "{files}/unknown_key.yaml"], ["yaw_sd"]),
    ("config is a folder", ["--config", "{files}/empty"], ["--config", "empty"]),
    ("config: not YAML", ["--config", "{files}/not_yaml.yaml"], ["not_yaml.yaml"]),
    ("config: a list", ["--config", "{files}/a_list.yaml"], ["a_list.yaml"]),
    ("config: more lights than drawn", ["--config", "{files}/too_many_lights.yaml"], ["lighting.num_lights"]),
    ("config: probability above 1", ["--config", "{files}/probability.yaml"], ["expression.neutral_prob"]),
    ("missing backgrounds folder", ["--backgrounds", "{files}/nowhere"], ["--backgrounds", "nowhere"]),
    ("empty backgrounds folder", ["--backgrounds", "{files}/empty"], ["--backgrounds", "empty"]),
    ("corrupt background photo", ["--backgrounds", "{files}/corrupt-photos"], ["broken.jpg"]),
    ("corrupt HDRI", ["--hdris", "{files}/corrupt-hdris"], ["broken.exr"]),
    ("empty HDRI folder", ["--hdris", "{files}/empty"], ["--hdris", "empty"]),
    ("different seed", ["--seed", "5"], ["different job", "--seed is 0 there but 5 now"]),
    ("different spec and size", ["--spec", "dense243", "--size", "96"],
     ["different job", "--spec is ibug68 there but dense243 now", "--size is 64 there but 96 now"]),
]


@pytest.mark.parametrize("case, args, names", CASES, ids=[c[0] for c in CASES])
def test_bad_render_input_is_named_and_changes_nothing(finished, files, tmp_path, case, args, names):
    out = tmp_path / "job"
    shutil.copytree(finished, out)
    before = snapshot(out)
    result = render(out, "--n", "4", *[a.replace("{files}", str(files)) for a in args])
    assert_clear_error(result, *names)
    assert snapshot(out) == before  # nothing written, nothing removed
    result = render(out, "--n", "6")  # the corrected command
    assert result.exit_code == 0, result.output
    after = snapshot(out)
    for name in ("shard-00000.h5", "shard-00001.h5"):
        assert after[name] == before[name]  # same bytes, never rewritten
    assert json.loads((out / "manifest.json").read_text())["num_samples"] == 6 and "shard-00002.h5" in after


def test_an_out_that_is_a_file_is_refused_before_anything_runs(files):
    result = render(files / "a-file", "--n", "2")
    assert_clear_error(result, "a-file", "not a folder")
    result = render(files / "a-file" / "sub", "--n", "2")
    assert_clear_error(result, "a-file", "not a folder")


def test_nothing_is_written_into_out_before_the_inputs_pass(files, tmp_path):
    out = tmp_path / "new"
    assert_clear_error(render(out, "--n", "2", "--config", str(files / "yaw_wide.yaml")), "head_pose.yaw_std")
    assert not out.exists()


def test_a_job_that_finished_nothing_never_locks_its_folder(tmp_path, monkeypatch):
    out = tmp_path / "job"
    monkeypatch.setenv("FACEGEN_TEST_FAULT", "start")  # the workers fail: a manifest with no shard is left
    assert_clear_error(render(out, "--n", "4", "--seed", "3"), "FACEGEN_TEST_FAULT")
    assert json.loads((out / "manifest.json").read_text())["shards"] == []
    monkeypatch.delenv("FACEGEN_TEST_FAULT")
    result = render(out, "--n", "4", "--seed", "0")  # another job takes the folder over
    assert result.exit_code == 0, result.output
    assert json.loads((out / "manifest.json").read_text())["job"]["seed"] == 0


def test_a_grown_job_adds_samples_and_keeps_its_short_last_shard(tmp_path):
    out, fresh = tmp_path / "grown", tmp_path / "fresh"
    assert render(out, "--n", "5").exit_code == 0  # shards [0,2) [2,4) [4,5)
    before = snapshot(out)
    assert render(out, "--n", "8").exit_code == 0
    assert render(fresh, "--n", "8").exit_code == 0
    after = snapshot(out)
    for name in ("shard-00000.h5", "shard-00001.h5", "shard-00002.h5"):
        assert after[name] == before[name]
    manifest = json.loads((out / "manifest.json").read_text())
    assert [(e["file"], e["first_index"], e["num_samples"]) for e in manifest["shards"]] == [
        ("shard-00000.h5", 0, 2), ("shard-00001.h5", 2, 2), ("shard-00002.h5", 4, 1),
        ("shard-00003.h5", 5, 1), ("shard-00004.h5", 6, 2)]
    a, b = facegen.open_shards(out), facegen.open_shards(fresh)
    assert len(a) == len(b) == 8
    for i in range(8):  # the same samples as a fresh job of 8, in other shard boundaries
        x, y = a[i], b[i]
        assert x["sample_index"] == y["sample_index"] == i
        assert np.array_equal(x["image"], y["image"]) and np.array_equal(x["landmarks_2d"], y["landmarks_2d"])
    assert render(out, "--n", "10").exit_code == 0  # and again: names never collide
    assert len(facegen.open_shards(out)) == 10


def test_a_lost_or_damaged_manifest_is_rebuilt_from_the_shards(finished, tmp_path):
    out = tmp_path / "job"
    shutil.copytree(finished, out)
    original = json.loads((out / "manifest.json").read_text())
    shards = {name: data for name, data in snapshot(out).items() if name.startswith("shard-")}
    (out / "manifest.json").write_text('{"shards": [')  # damaged: refused, with what to do
    assert_clear_error(render(out, "--n", "4"), "manifest.json", "delete it", "rebuilt")
    (out / "manifest.json").unlink()  # doing what the message says works
    result = render(out, "--n", "4")
    assert result.exit_code == 0, result.output
    assert json.loads((out / "manifest.json").read_text()) == original
    after = snapshot(out)
    assert all(after[name] == data for name, data in shards.items())

    from facegen.shards import rebuild_manifest

    assert rebuild_manifest(out) == original
