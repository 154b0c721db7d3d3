"""Bad annotation files name themselves: each reader (`.pts`, FaceSynthetics `_ldmks.txt`, JSON lists) fails
with the file, the line, the reason and what to do, wherever the file is read (score, eval's datasets,
FaceSynthetics). One test per mistake; all tiny, no images decoded."""

from __future__ import annotations

import json

import numpy as np
import pytest
from click.testing import CliRunner

from facegen.cli import main
from facegen.errors import FacegenError
from facegen.trainer.annotations import (load_landmark_set, read_landmark_json, read_ldmks, read_pts, write_ldmks,
                                         write_pts)

FACE = [[30.0 + (i % 17) * 3, 40.0 + (i // 17) * 10] for i in range(68)]
# a good .pts: line 1 version, 2 n_points, 3 {, 4..71 the points, 72 }
GOOD_PTS = ["version: 1", "n_points:  68", "{"] + [f"{x + 1:.6f} {y + 1:.6f}" for x, y in FACE] + ["}"]

# id -> (lines of the file, where the message points, words it must hold)
PTS_CASES = {
    "header-count": (GOOD_PTS[:5] + GOOD_PTS[6:], "b.pts:2", ["n_points 68", "67 points follow", "fix the header"]),
    "non-number": (GOOD_PTS[:5] + ["31.0 4l.5"] + GOOD_PTS[6:], "b.pts:6", ["'31.0 4l.5'", "two numbers", "point 3"]),
    "one-number": (GOOD_PTS[:5] + ["31.0"] + GOOD_PTS[6:], "b.pts:6", ["two numbers"]),
    "no-open-brace": (GOOD_PTS[:2] + GOOD_PTS[3:], "b.pts:3", ["expected '{'", "add a line '{'"]),
    "no-close-brace": (GOOD_PTS[:-1], "b.pts:71", ["without the '}'", "line 3", "add a line '}'"]),
    "cut-short": (GOOD_PTS[:40], "b.pts:40", ["without the '}'", "cut short", "37 of the 68"]),
    "no-version": (GOOD_PTS[1:], "b.pts:1", ["no 'version' line", "add 'version: 1'"]),
    "no-n-points": (GOOD_PTS[:1] + GOOD_PTS[2:], "b.pts:1", ["no 'n_points' line", "add 'n_points: N'"]),
    "n-points-word": (GOOD_PTS[:1] + ["n_points: many"] + GOOD_PTS[2:], "b.pts:2", ["'many'", "whole number"]),
    "empty": ([], "b.pts:1", ["without '{'", "empty"]),
}


def _write(path, lines):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + ("\n" if lines else ""))
    return path


@pytest.mark.parametrize("case", list(PTS_CASES))
def test_bad_pts_is_named_with_its_line(tmp_path, case):
    lines, where, words = PTS_CASES[case]
    with pytest.raises(FacegenError) as e:
        read_pts(_write(tmp_path / "b.pts", lines))
    for needle in [where] + words:
        assert needle in e.value.message, e.value.message


def test_good_files_read_back(tmp_path):
    write_pts(tmp_path / "a.pts", FACE)
    np.testing.assert_allclose(read_pts(tmp_path / "a.pts", 68), FACE, atol=1e-5)
    write_ldmks(tmp_path / "a_ldmks.txt", FACE + [[40.0, 50.0], [60.0, 50.0]])
    np.testing.assert_allclose(read_ldmks(tmp_path / "a_ldmks.txt"), FACE + [[40.0, 50.0], [60.0, 50.0]], atol=1e-4)
    (tmp_path / "a.json").write_text(json.dumps([{"image": "a", "landmarks": FACE}], indent=1))
    names, points = read_landmark_json(tmp_path / "a.json")
    assert names == ["a"] and points.shape == (1, 68, 2)


def test_pts_with_the_wrong_count_in_a_folder_eval_reads(tmp_path):
    """`facegen eval --dataset folder` said "all input arrays must have the same shape"; now the file and its
    n_points line, for a file whose header agrees with its 67 points."""
    from facegen.trainer.evaluate import open_eval_dataset

    write_pts(tmp_path / "a.pts", FACE)
    write_pts(tmp_path / "b.pts", FACE[:67])
    for stem in "ab":
        (tmp_path / f"{stem}.png").write_bytes(b"")  # found by name; never decoded here
    ds = open_eval_dataset("folder", tmp_path)
    for read in (ds.ground_truth, lambda: ds.raw(1)):
        with pytest.raises(FacegenError) as e:
            read()
        assert f"{tmp_path / 'b.pts'}:2: 67 points, but iBUG-68 has 68" in e.value.message
        assert "move it out of the folder" in e.value.message


def test_pts_with_the_wrong_count_in_a_folder_score_reads(tmp_path):
    """The scorer takes any spec: the file that differs from the others is named, by the common count."""
    write_pts(tmp_path / "a.pts", FACE[:67])  # first in name order, yet the odd one
    for stem in "bc":
        write_pts(tmp_path / f"{stem}.pts", FACE)
    with pytest.raises(FacegenError) as e:
        load_landmark_set(tmp_path)
    assert f"{tmp_path / 'a.pts'}:2: 67 points, but 2 of the 3 files" in e.value.message


LDMKS = [f"{x:.4f} {y:.4f}" for x, y in FACE + [[40.0, 50.0], [60.0, 50.0]]]
LDMKS_CASES = {
    "short": (LDMKS[:-1], "_ldmks.txt:69", ["ends after 69 points", "70 are expected", "pupils"]),
    "long": (LDMKS + ["1.0 2.0"], "_ldmks.txt:71", ["beyond the 70", "remove the extra lines"]),
    "non-number": (LDMKS[:3] + ["41.0 x"] + LDMKS[4:], "_ldmks.txt:4", ["'41.0 x'", "two numbers", "fix the line"]),
    "nan": (LDMKS[:3] + ["nan 1.0"] + LDMKS[4:], "_ldmks.txt:4", ["NaN"]),
}


@pytest.mark.parametrize("case", list(LDMKS_CASES))
def test_bad_ldmks_is_named_with_its_line(tmp_path, case):
    """Through the FaceSynthetics dataset, as training reads it."""
    from facegen.trainer.datasets import FaceSynthetics

    lines, where, words = LDMKS_CASES[case]
    _write(tmp_path / "000000_ldmks.txt", lines)
    (tmp_path / "000000.png").write_bytes(b"")
    with pytest.raises(FacegenError) as e:
        FaceSynthetics(tmp_path).raw(0)
    for needle in [f"000000{where}"] + words:
        assert needle in e.value.message, e.value.message


def _entries(n: int = 3) -> list[dict]:
    return [{"imgpath": f"img{i}.png", "landmarks": FACE} for i in range(n)]


def _json_cases() -> dict:
    missing = _entries()
    missing[1]["lmks"] = missing[1].pop("landmarks")
    short = _entries()
    short[2]["landmarks"] = FACE[:67]
    xyz = _entries()
    xyz[1]["landmarks"] = [p + [0.0] for p in FACE]
    pretty = json.dumps(_entries(), indent=1)
    # indent=1: entry i opens on line 2 + 277 i (after the list's '['; '{', imgpath, landmarks: 68 points of 4
    # lines between '[' and ']', '}'); under {"predictions": ...} one line later; a name's points take 274 lines
    return {
        "malformed": (pretty.replace("]\n }", "]\n ", 1), ":279:2:", ["not valid JSON", "missing comma, bracket or quote"]),
        "missing-key": (json.dumps(missing, indent=1), ":279:", ["entry 1 has no 'landmarks'", "its keys: imgpath, lmks"]),
        "count": (json.dumps(short, indent=1), ":556:", ["entry 2 (img2.png) has 67 points", "the other entries have 68",
                                                          "leave it out"]),
        "not-xy": (json.dumps(xyz, indent=1), ":279:", ["entry 1 (img1.png)", "[x, y] numbers"]),
        "one-line": (json.dumps(short), ":1:", ["entry 2 (img2.png) has 67 points"]),
        "by-name": (json.dumps({"a": FACE, "b": FACE[:60], "c": FACE}, indent=1), ":276:", ["key 'b' has 60 points"]),
        "predictions": (json.dumps({"predictions": missing}, indent=1), ":280:", ["entry 1 has no 'landmarks'"]),
    }


@pytest.mark.parametrize("case", list(_json_cases()))
def test_bad_json_is_named_with_its_line(tmp_path, case):
    text, where, words = _json_cases()[case]
    path = tmp_path / "gt.json"
    path.write_text(text)
    with pytest.raises(FacegenError) as e:
        load_landmark_set(path)
    for needle in [f"gt.json{where}"] + words:
        assert needle in e.value.message, e.value.message


def test_bad_files_through_facegen_score(tmp_path):
    """The command line prints the same message: exit 2, no traceback."""
    _write(tmp_path / "pts" / "b.pts", GOOD_PTS[:-1])
    (tmp_path / "gt.json").write_text(json.dumps(_entries()))
    bad = tmp_path / "bad.json"
    bad.write_text(_json_cases()["count"][0])
    for args, needle in ((["-p", str(tmp_path / "pts"), "-g", str(tmp_path / "pts")], "b.pts:71"),
                         (["-p", str(bad), "-g", str(tmp_path / "gt.json")], "bad.json:556: entry 2")):
        result = CliRunner().invoke(main, ["score", *args])
        assert result.exit_code == 2 and "Traceback" not in result.output, result.output
        assert needle in result.output, result.output
