"""The render job: shard schema, byte-identical determinism, resume after a kill, refusals, CLI errors."""

from __future__ import annotations

import json
import os
from pathlib import Path

import h5py
import numpy as np
import pytest
from click.testing import CliRunner

import facegen
from facegen.cli import main
from facegen.errors import FacegenError
from facegen.generator.segmentation import OCCLUDER_OF_CLASS
from facegen.shards import PARTIAL_SUFFIX

SMALL = dict(spec="ibug68", n=5, size=64, shard_size=2, seed=4, renderer="raster", progress=False)


def shard_bytes(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.glob("shard-*.h5"))}


@pytest.fixture(scope="module")
def rendered(tmp_path_factory, face_model) -> Path:
    out = tmp_path_factory.mktemp("job") / "a"
    facegen.render(out=out, outputs=("rgb", "depth", "segmentation", "mask"), **SMALL)
    return out


def test_shards_follow_the_documented_schema(rendered):
    manifest = json.loads((rendered / "manifest.json").read_text())
    assert manifest["num_samples"] == 5
    assert [s["file"] for s in manifest["shards"]] == ["shard-00000.h5", "shard-00001.h5", "shard-00002.h5"]
    assert [s["num_samples"] for s in manifest["shards"]] == [2, 2, 1]
    for key in ("spec", "spec_hash", "seed", "config_hash", "renderer", "renderer_version", "model_hash",
                "image_size", "shard_size", "outputs"):
        assert key in manifest["job"]
    with h5py.File(rendered / "shard-00001.h5", "r") as f:  # plain h5py, no facegen needed
        n = f.attrs["num_samples"]
        assert n == 2 and f.attrs["first_index"] == 2 and f.attrs["spec_name"] == "ibug68"
        for attr in ("format", "format_version", "facegen_version", "spec_yaml", "spec_hash", "landmark_names",
                     "flip_map", "ibug68", "model_hash", "renderer", "renderer_version", "seed", "config_yaml",
                     "config_hash", "image_size", "outputs", "landmark_groups"):
            assert attr in f.attrs, attr
        shapes = {"image": (n, 64, 64, 3), "landmarks_2d": (n, 68, 2), "landmarks_3d": (n, 68, 3),
                  "visibility": (n, 68), "in_frame": (n, 68), "occluded_by": (n, 68), "head_pose": (n, 6),
                  "K": (n, 3, 3),
                  "camera_R": (n, 3, 3), "camera_t": (n, 3), "identity": (n, 100), "expression": (n, 57),
                  "sample_index": (n,), "params": (n,), "depth": (n, 64, 64), "segmentation": (n, 64, 64),
                  "mask": (n, 64, 64)}
        for name, shape in shapes.items():
            assert f[name].shape == shape, name
        assert list(f["sample_index"][:]) == [2, 3]
        # landmarks_2d = project(K, landmarks_3d) exactly, and params replay the sample.
        p = f["landmarks_3d"][0] @ f["K"][0].T
        assert np.allclose(p[:, :2] / p[:, 2:], f["landmarks_2d"][0], atol=1e-3)
        params = json.loads(f["params"][0])
        assert params["index"] == 2 and params["seed"] == 4
        assert np.allclose(params["identity"], f["identity"][0])
        assert f["image"][:].std() > 10 and (f["depth"][:] > 0).any()
        # a hidden point says what hides it: the class drawn at its nearest pixel (docs/shard-format.md)
        occ, seg, uv = f["occluded_by"][:], f["segmentation"][:], f["landmarks_2d"][:]
        assert np.array_equal(occ == 0, f["visibility"][:] == 1)
        for k, i in zip(*np.nonzero((occ > 0) & (f["in_frame"][:] == 1))):
            u, v = np.clip(np.floor(uv[k, i] + 0.5).astype(int), 0, 63)
            assert occ[k, i] == OCCLUDER_OF_CLASS[seg[k, v, u]]
    shards = facegen.open_shards(rendered)
    assert len(shards) == 5 and shards.num_landmarks == 68
    assert shards[4]["sample_index"] == 4


def test_same_job_gives_identical_bytes_whatever_the_worker_count(rendered, tmp_path):
    again = tmp_path / "b"
    facegen.render(out=again, outputs=("rgb", "depth", "segmentation", "mask"), workers=2, **SMALL)
    assert shard_bytes(again) == shard_bytes(rendered)


def test_resume_renders_only_what_is_missing(rendered, tmp_path):
    import shutil

    work = tmp_path / "resume"
    shutil.copytree(rendered, work)
    original = shard_bytes(rendered)
    # A killed run: shard 1 never finished (a stale .partial), shard 2 was never started.
    (work / "shard-00001.h5").rename(work / ("shard-00001.h5" + PARTIAL_SUFFIX))
    (work / "shard-00002.h5").unlink()
    manifest = json.loads((work / "manifest.json").read_text())
    manifest["shards"] = manifest["shards"][:1]
    (work / "manifest.json").write_text(json.dumps(manifest))
    untouched = work / "shard-00000.h5"
    os.utime(untouched, (1_000_000, 1_000_000))
    facegen.render(out=work, outputs=("rgb", "depth", "segmentation", "mask"), **SMALL)
    assert shard_bytes(work) == original
    assert untouched.stat().st_mtime == 1_000_000  # never rewritten
    assert not list(work.glob(f"*{PARTIAL_SUFFIX}"))
    assert len(json.loads((work / "manifest.json").read_text())["shards"]) == 3


def test_a_folder_of_another_job_is_refused(rendered):
    with pytest.raises(FacegenError, match="seed"):
        facegen.render(out=rendered, outputs=("rgb", "depth", "segmentation", "mask"), **{**SMALL, "seed": 5})
    with pytest.raises(FacegenError, match="spec"):
        facegen.render(out=rendered, outputs=("rgb", "depth", "segmentation", "mask"), **{**SMALL, "spec": "dense243"})


@pytest.mark.parametrize("args, message", [
    (["--n", "0"], "nothing to render"),
    (["--n", "3", "--spec", "nosuchspec"], "unknown spec"),
    (["--n", "3", "--renderer", "povray"], "--renderer"),
    (["--n", "3", "--outputs", "rgb,normals"], "normals"),
    (["--n", "3", "--outputs", "rgb,amodl"], "choose from rgb, depth, segmentation, mask, amodal"),
])
def test_cli_errors_are_clear(tmp_path, args, message):
    result = CliRunner().invoke(main, ["render", "--out", str(tmp_path / "x"), "--quiet", "--renderer", "raster", *args])
    assert result.exit_code == 2, result.output
    assert message in result.output


def test_cli_refuses_an_unwritable_folder(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    result = CliRunner().invoke(main, ["render", "--n", "2", "--spec", "ibug68", "--renderer", "raster",
                                         "--out", str(blocker / "sub"), "--quiet"])
    assert result.exit_code == 2 and "is a file, not a folder" in result.output


def test_inspect_and_preview(rendered, tmp_path):
    result = CliRunner().invoke(main, ["inspect", str(rendered)])
    assert result.exit_code == 0, result.output
    assert "5 samples in 3 shards" in result.output and "ibug68" in result.output and "yaw" in result.output
    assert "hidden by  " in result.output  # the share of points each occluder hides
    out = tmp_path / "grid.png"
    result = CliRunner().invoke(main, ["preview", str(rendered), "-o", str(out), "--n", "4", "--cols", "2"])
    assert result.exit_code == 0, result.output
    import cv2

    assert cv2.imread(str(out)).shape == (256 + 22, 256, 3)  # 2 x 2 tiles of 64 px upscaled x2, a legend
    result = CliRunner().invoke(main, ["preview", str(rendered), "-o", str(out), "--n", "4", "--cols", "2",
                                       "--segmentation"])
    assert result.exit_code == 0, result.output
    sheet = cv2.imread(str(out))[..., ::-1]
    assert sheet.shape == (256 + 22, 512, 3)  # each tile's class map beside it
    from facegen.generator.segmentation import PALETTE

    classes = sheet[:128, 128:256].reshape(-1, 3)  # sample 0's map: only class colours
    assert (classes[:, None] == PALETTE[None]).all(-1).any(-1).all()


def test_preview_segmentation_needs_the_maps(tmp_path):
    out = tmp_path / "rgb"
    facegen.render(out=out, outputs=("rgb",), **{**SMALL, "n": 1})
    result = CliRunner().invoke(main, ["preview", str(out), "-o", str(tmp_path / "g.png"), "--segmentation"])
    assert result.exit_code != 0 and "--outputs rgb,segmentation" in result.output


def test_amodal_masks_are_stored(rendered, tmp_path):
    """`--outputs rgb,segmentation,amodal`: the shards hold the amodal face mask per image, 0/1 like
    `mask`, which holds every pixel where the head's own face is seen; inspect and preview read it."""
    from facegen.generator.parts import HEAD_PARTS
    from facegen.generator.segmentation import CLASS_ID, face_mask

    out = tmp_path / "am"
    runner = CliRunner()
    result = runner.invoke(main, ["render", "--out", str(out), "--quiet", "--renderer", "raster", "--spec", "ibug68",
                                  "--n", "3", "--size", "64", "--seed", "2", "--outputs", "rgb,segmentation,amodal"])
    assert result.exit_code == 0, result.output
    shards = facegen.open_shards(out)
    assert shards.has("amodal") and not shards.has("mask")
    head = [CLASS_ID[p.segment] for p in HEAD_PARTS] + [CLASS_ID["brows"], CLASS_ID["lips"]]
    for i in range(len(shards)):
        s = shards.read(i, keys=("amodal", "segmentation"))
        assert s["amodal"].dtype == np.uint8 and s["amodal"].shape == (64, 64) and s["amodal"].max() == 1
        seen = face_mask(s["segmentation"]) & np.isin(s["segmentation"], head)
        assert not (seen & (s["amodal"] == 0)).any(), i
    shards.close()
    assert "amodal     face" in runner.invoke(main, ["inspect", str(out)]).output
    import cv2

    from facegen.generator.report import AMODAL_OUTLINE

    result = runner.invoke(main, ["preview", str(out), "-o", str(tmp_path / "am.png"), "--amodal", "--segmentation"])
    assert result.exit_code == 0, result.output
    tile = cv2.imread(str(tmp_path / "am.png"))[:128, :128, ::-1]  # sample 0, upscaled x2
    assert (tile == AMODAL_OUTLINE).all(-1).sum() > 50  # the outline over the image
    result = runner.invoke(main, ["preview", str(rendered), "-o", str(tmp_path / "x.png"), "--amodal"])
    assert result.exit_code != 0 and "--outputs rgb,amodal" in result.output  # says how to get the maps
