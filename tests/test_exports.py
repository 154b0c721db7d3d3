"""`facegen export`: COCO keypoints and FaceSynthetics files that read back, through our own readers, as the
labels the shards hold (points to 1e-3 px, visibility, the images' pixels), and clear refusals."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
from click.testing import CliRunner

import facegen
from facegen.cli import main
from facegen.exports import IBUG68_LINES
from facegen.exports.coco import read_coco
from facegen.exports.facesynthetics import FS_ID, FS_OF_OURS, IGNORE, SIDES, to_facesynthetics
from facegen.generator.segmentation import CLASS_ID
from tests.toy_shards import write_toy_shards


@pytest.fixture(scope="module")
def rendered(tmp_path_factory, face_model) -> Path:
    """Three small raster renders with segmentation, through the command line."""
    out = tmp_path_factory.mktemp("export") / "i68"
    result = CliRunner().invoke(main, ["render", "--out", str(out), "--quiet", "--renderer", "raster", "--spec",
                                       "ibug68", "--n", "3", "--size", "96", "--seed", "4", "--outputs",
                                       "rgb,segmentation"])
    assert result.exit_code == 0, result.output
    return out


def _export(shards: Path, out: Path, *args: str):
    return CliRunner().invoke(main, ["export", str(shards), "-o", str(out), "--quiet", *args])


def _coco_v(shards) -> np.ndarray:
    vis, in_frame = shards.read_all("visibility"), shards.read_all("in_frame")
    return np.where(vis > 0, 2, np.where(in_frame > 0, 1, 0))


def _rgb(path: Path) -> np.ndarray:
    return cv2.imread(str(path), cv2.IMREAD_COLOR)[:, :, ::-1]


def test_coco_round_trip(rendered, tmp_path):
    out = tmp_path / "coco"
    result = _export(rendered, out, "--format", "coco")
    assert result.exit_code == 0, result.output
    assert "exported 3 samples (68 points each) as coco" in result.output
    coco = read_coco(out / "annotations.json")
    shards = facegen.open_shards(rendered)
    np.testing.assert_allclose(coco.points, shards.read_all("landmarks_2d"), atol=1e-3)
    np.testing.assert_array_equal(coco.v, _coco_v(shards))
    assert coco.names == shards.landmark_names and coco.skeleton == [[a + 1, b + 1] for a, b in IBUG68_LINES]
    for i, name in enumerate(coco.file_names):
        assert name == f"{i:06d}.png" and coco.sizes[i] == (96, 96)
        np.testing.assert_array_equal(_rgb(out / "images" / name), shards.read(i, keys=("image",))["image"])
    # what mmpose's COCO-style face datasets parse (BaseCocoStyleDataset, Face300WDataset, CocoWholeBodyFace)
    doc = json.loads((out / "annotations.json").read_text())
    assert {"id", "file_name", "width", "height"} <= set(doc["images"][0])
    for ann, v, pts in zip(doc["annotations"], coco.v, coco.points):
        assert {"id", "image_id", "category_id", "iscrowd", "keypoints", "num_keypoints", "bbox", "area", "center",
                "scale", "face_box", "face_kpts", "face_valid"} <= set(ann)
        assert ann["num_keypoints"] == (v > 0).sum() and ann["iscrowd"] == 0 and ann["face_kpts"] == ann["keypoints"]
        x, y, w, h = ann["bbox"]
        seen = pts[v > 0]
        assert np.allclose([x, y, x + w, y + h], [*seen.min(0), *seen.max(0)], atol=1e-3)
        assert ann["scale"] == pytest.approx(max(w, h) / 200, abs=1e-6)  # as written: 6 and 4 decimals
        assert ann["center"] == pytest.approx([x + w / 2, y + h / 2], abs=1e-4)
    shards.close()


def test_coco_export_loads_and_scores_in_pycocotools(rendered, tmp_path):
    """The COCO API that mmpose's COCO-style datasets and evaluation build on loads the export, and
    COCOeval scores its own keypoints as results at AP 1 (sigmas for 68 points, as mmpose sets them)."""
    import contextlib
    import io

    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    out = tmp_path / "coco"
    assert _export(rendered, out, "--format", "coco").exit_code == 0
    with contextlib.redirect_stdout(io.StringIO()):  # pycocotools prints its progress
        gt = COCO(str(out / "annotations.json"))
        anns = gt.loadAnns(gt.getAnnIds())
        results = gt.loadRes([{"image_id": a["image_id"], "category_id": 1, "keypoints": a["keypoints"], "score": 1.0}
                              for a in anns])
        ev = COCOeval(gt, results, "keypoints")
        ev.params.kpt_oks_sigmas = np.full(68, 0.025)
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    assert sorted(gt.getImgIds()) == [1, 2, 3] and len(anns) == 3
    assert gt.loadCats(1)[0]["keypoints"] == facegen.open_shards(rendered).landmark_names
    assert ev.stats[0] == pytest.approx(1.0)  # AP over OKS 0.50:0.95


def test_coco_visibility_codes(tmp_path):
    """v: 2 visible, 1 in the image but hidden, 0 outside it (toy shards with all three)."""
    from facegen.generator.segmentation import OCCLUDER_ID

    codes = np.zeros(68, np.uint8)
    codes[[0, 1]] = OCCLUDER_ID["self"]
    codes[2] = OCCLUDER_ID["hand"]
    codes[3] = OCCLUDER_ID["out_of_frame"]
    toy = write_toy_shards(tmp_path / "toy", 4, size=48, occluded_by=codes)
    summary = facegen.export(toy, tmp_path / "coco", "coco", progress=False)
    coco = read_coco(tmp_path / "coco" / "annotations.json")
    assert coco.v[:, :5].tolist() == [[1, 1, 1, 0, 2]] * 4 and (coco.v[:, 4:] == 2).all()
    assert (summary["visible"], summary["hidden"], summary["out_of_frame"]) == (4 * 64, 4 * 3, 4)
    shards = facegen.open_shards(toy)
    np.testing.assert_allclose(coco.points, shards.read_all("landmarks_2d"), atol=1e-3)  # v 0 keeps its position


def test_facesynthetics_round_trip(rendered, tmp_path):
    from facegen.trainer.datasets import FaceSynthetics

    out = tmp_path / "fs"
    result = _export(rendered, out, "--format", "facesynthetics")
    assert result.exit_code == 0, result.output
    shards = facegen.open_shards(rendered)
    lm = shards.read_all("landmarks_2d")
    ds = FaceSynthetics(out, points=70)
    assert ds.names == ["000000", "000001", "000002"]
    allowed = {CLASS_ID[ours]: ({FS_ID[f"right_{ours[:-1]}"], FS_ID[f"left_{ours[:-1]}"]} if fs == "side" else
                                {FS_ID["top_lip"], FS_ID["bottom_lip"]} if fs == "lip" else
                                {IGNORE} if fs is None else {FS_ID[fs]})
               for ours, fs in FS_OF_OURS.items()}
    for i in range(len(ds)):
        raw = ds.raw(i)
        s = shards.read(i, keys=("image", "segmentation"))
        np.testing.assert_allclose(raw["landmarks"][:68], lm[i], atol=1e-3)
        np.testing.assert_allclose(raw["landmarks"][68:], [lm[i][36:42].mean(0), lm[i][42:48].mean(0)], atol=1e-3)
        np.testing.assert_array_equal(raw["image"], s["image"])
        seg = raw["segmentation"]
        assert seg.shape == (96, 96) and seg.dtype == np.uint8
        np.testing.assert_array_equal(seg, to_facesynthetics(s["segmentation"], lm[i]))
        for ours in np.unique(s["segmentation"]):
            assert set(np.unique(seg[s["segmentation"] == ours])) <= allowed[int(ours)], ours
    shards.close()


def test_facesynthetics_splits_sides_and_lips():
    """Brows and eyes go to the person's right or left by the nearer eye / brow; lips above the line between
    them are the top lip, also on a face turned upside down."""
    p = np.zeros((68, 2))
    p[17:22], p[22:27] = [12, 10], [36, 10]  # right brow on the image's left (a face seen from the front)
    p[36:42], p[42:48] = [12, 20], [36, 20]
    p[[48, 60]], p[[54, 64]] = [14, 40], [34, 40]
    p[[61, 62, 63, 65, 66, 67]] = [24, 40]
    seg = np.zeros((48, 48), np.uint8)
    seg[9:12, 8:16] = seg[9:12, 32:40] = CLASS_ID["brows"]
    seg[19:22, 8:16] = seg[19:22, 32:40] = CLASS_ID["eyes"]
    seg[36:40, 16:32] = seg[41:44, 16:32] = CLASS_ID["lips"]
    seg[0, 0], seg[0, 1] = CLASS_ID["hand"], CLASS_ID["head_neck"]
    for flip in (False, True):
        pts, s = (p, seg) if not flip else (np.array([47, 47]) - p, seg[::-1, ::-1])
        fs = to_facesynthetics(s, pts)
        fs = fs[::-1, ::-1] if flip else fs
        assert (fs[9:12, 8:16] == FS_ID["right_brow"]).all() and (fs[9:12, 32:40] == FS_ID["left_brow"]).all()
        assert (fs[19:22, 8:16] == FS_ID["right_eye"]).all() and (fs[19:22, 32:40] == FS_ID["left_eye"]).all()
        assert (fs[36:40, 16:32] == FS_ID["top_lip"]).all() and (fs[41:44, 16:32] == FS_ID["bottom_lip"]).all()
        assert fs[0, 0] == IGNORE and fs[0, 1] == FS_ID["neck"] and fs[5, 5] == FS_ID["background"]
    assert set(SIDES) == {"eyes", "brows"}


def test_dense_spec_to_facesynthetics(tmp_path):
    """Not iBUG-68: refused, saying to add --points ibug68; with it, the spec's iBUG-68 points are written."""
    toy = write_toy_shards(tmp_path / "toy100", 3, size=48, num_landmarks=100)
    result = _export(toy, tmp_path / "fs", "--format", "facesynthetics")
    assert result.exit_code == 2 and "it has 100 points" in result.output and "--points ibug68" in result.output
    assert not (tmp_path / "fs").exists()  # refused before the folder is made
    result = _export(toy, tmp_path / "fs", "--format", "facesynthetics", "--points", "ibug68")
    assert result.exit_code == 0, result.output
    assert "no _seg.png" in result.output  # toy shards hold no segmentation
    from facegen.trainer.annotations import read_ldmks

    shards = facegen.open_shards(toy)
    index = np.asarray(shards.attrs["ibug68"])
    np.testing.assert_allclose(read_ldmks(tmp_path / "fs" / "000002_ldmks.txt")[:68],
                               shards.read_all("landmarks_2d")[2, index], atol=1e-3)


@pytest.mark.parametrize("case", ["not-shards", "missing", "format", "out-not-empty", "out-file", "no-ibug68"])
def test_export_mistakes_are_named(tmp_path, case):
    toy = write_toy_shards(tmp_path / "toy", 2, size=32)
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "x.txt").write_text("x")
    (tmp_path / "notes.txt").write_text("x")
    args, words = {
        "not-shards": ([str(tmp_path / "full"), "--format", "coco", "-o", str(tmp_path / "o")],
                       ["full: no finished shards", "reads a folder written by `facegen render`"]),
        "missing": ([str(tmp_path / "gone"), "--format", "coco", "-o", str(tmp_path / "o")], ["gone", "facegen render"]),
        "format": ([str(toy), "--format", "yolo", "-o", str(tmp_path / "o")], ["'--format'", "'coco', 'facesynthetics'"]),
        "out-not-empty": ([str(toy), "--format", "coco", "-o", str(tmp_path / "full")], ["full", "not empty", "new folder"]),
        "out-file": ([str(toy), "--format", "coco", "-o", str(tmp_path / "notes.txt")], ["'--out'", "notes.txt"]),
        "no-ibug68": ([str(_no_ibug68(tmp_path)), "--format", "coco", "--points", "ibug68", "-o", str(tmp_path / "o")],
                      ["no iBUG-68 correspondence", "--points spec"]),
    }[case]
    result = CliRunner().invoke(main, ["export", *args])
    assert result.exit_code == 2 and "Traceback" not in result.output, result.output
    for word in words:
        assert word in result.output, result.output
    assert not (tmp_path / "o").exists()


def _no_ibug68(tmp_path: Path) -> Path:
    import h5py

    toy = write_toy_shards(tmp_path / "toy_noibug", 2, size=32, num_landmarks=40)
    for f in toy.glob("shard-*.h5"):
        with h5py.File(f, "r+") as h:
            del h.attrs["ibug68"]
    return toy


def test_export_help_teaches():
    result = CliRunner().invoke(main, ["export", "--help"])
    assert result.exit_code == 0
    for needle in ("facegen export data/i68 --format coco", "--points ibug68", "Face300WDataset", "_ldmks.txt"):
        assert needle in result.output
    assert "export" in CliRunner().invoke(main, ["--help"]).output


def test_read_coco_names_a_bad_annotation(tmp_path):
    facegen.export(write_toy_shards(tmp_path / "toy", 3, size=32), tmp_path / "coco", "coco", progress=False)
    doc = json.loads((tmp_path / "coco" / "annotations.json").read_text())
    doc["annotations"][2]["keypoints"] = doc["annotations"][2]["keypoints"][:-3]
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(doc, indent=0))
    from facegen.errors import FacegenError

    with pytest.raises(FacegenError) as e:
        read_coco(bad)
    line = bad.read_text().splitlines().index('"image_id": 3,') - 1  # 1-based: the '{' two lines above
    assert f"bad.json:{line}: annotation 2: 'keypoints' must be [x, y, v] for each of the category's 68" in e.value.message


def test_pycocotools_reads_the_coco_export(tmp_path):
    """What mmpose's COCO-style datasets do first: pycocotools' COCO index, annotations per image (not crowd)."""
    coco_api = pytest.importorskip("pycocotools.coco")
    facegen.export(write_toy_shards(tmp_path / "toy", 3, size=32), tmp_path / "coco", "coco", progress=False)
    api = coco_api.COCO(str(tmp_path / "coco" / "annotations.json"))
    for image_id in api.getImgIds():
        anns = api.loadAnns(api.getAnnIds(imgIds=image_id, iscrowd=False))
        assert len(anns) == 1 and len(anns[0]["keypoints"]) == 3 * 68 and anns[0]["image_id"] == image_id
    assert len(api.loadCats(api.getCatIds())[0]["keypoints"]) == 68
