"""Every user mistake in a non-render command is named: exit code 2, a message naming the option, key or file
(and line), never a traceback. One row per mistake; nothing here trains beyond building a model once."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from facegen.cli import main
from facegen.trainer.annotations import write_pts

FACE = [[30.0 + (i % 17) * 3, 40.0 + (i // 17) * 10] for i in range(68)]

# (id, command line with {placeholders}, words the message must contain)
CASES = [
    # train: every numeric option's range, checked by click before anything is opened
    ("train-steps-0", "train --data {toy} --steps 0", ["'--steps'", "0"]),
    ("train-epochs-0", "train --data {toy} --epochs 0", ["'--epochs'"]),
    ("train-batch-size-0", "train --data {toy} --batch-size 0", ["'--batch-size'"]),
    ("train-lr-0", "train --data {toy} --lr 0", ["'--lr'"]),
    ("train-lr-nan", "train --data {toy} --lr nan", ["'--lr'", "finite"]),
    ("train-input-size-0", "train --data {toy} --input-size 0", ["'--input-size'"]),
    ("train-crop-scale-0", "train --data {toy} --crop-scale 0", ["'--crop-scale'"]),
    ("train-workers-neg", "train --data {toy} --workers -1", ["'--workers'"]),
    ("train-val-fraction-1", "train --data {toy} --val-fraction 1", ["'--val-fraction'"]),
    ("train-val-every-neg", "train --data {toy} --val-every -1", ["'--val-every'"]),
    ("train-heatmap-weight-neg", "train --data {toy} --heatmap-weight -0.5", ["'--heatmap-weight'"]),
    ("train-occluded-weight-range", "train --data {toy} --occlusion-aware --occluded-weight 1.5",
     ["'--occluded-weight'"]),
    ("train-occluded-weight-alone", "train --data {toy} --occluded-weight 0.5 --out {tmp}/ow",
     ["--occluded-weight 0.5", "add --occlusion-aware"]),
    ("train-seed-neg", "train --data {toy} --seed -1", ["'--seed'"]),
    ("train-device", "train --data {toy} --device tpu", ["--device tpu"]),
    ("train-data-missing", "train --data {missing}", ["missing"]),
    ("train-val-real-missing", "train --data {toy} --val-real {missing}", ["'--val-real'", "missing"]),
    ("train-out-file", "train --data {toy} --out {txt}", ["'--out'", "notes.txt"]),
    ("train-out-under-file", "train --data {toy} --out {txt}/run", ["'--out'", "notes.txt", "not a folder"]),
    # train: the model and its keywords
    ("train-model-unknown", "train --data {toy} --model vit", ["'--model'", "hourglass, resnet18"]),
    ("train-model-arg-unknown", "train --data {toy} --model resnet18 --model-arg depth=7",
     ["--model-arg depth=7", "'depth'", "width=64"]),
    ("train-model-arg-syntax", "train --data {toy} --model-arg stacks", ["--model-arg stacks", "KEY=VALUE"]),
    ("train-model-arg-value", "train --data {toy} --model hourglass --model-arg stacks=[1", ["--model-arg stacks=[1", "int"]),
    ("train-model-arg-zero", "train --data {toy} --model hourglass --model-arg channels=0", ["--model-arg channels=0", "> 0"]),
    ("train-model-arg-in-chans", "train --data {toy} --model-arg in_chans=1", ["in_chans", "--gray"]),
    ("train-model-too-deep", "train --data {toy} --model hourglass --workers 0 --input-size 64 --model-arg depth=7 "
     "--model-arg channels=8 --out {tmp}/deep", ["--input-size 64", "--model-arg depth=7"]),
    # train: --resume
    ("train-resume-text", "train --data {toy} --resume {txt} --out {tmp}/r", ["notes.txt", "checkpoint"]),
    ("train-resume-missing", "train --data {toy} --resume {missing} --out {tmp}/r", ["missing", "no such checkpoint"]),
    ("train-resume-folder", "train --data {toy} --resume {empty} --out {tmp}/r", ["empty", "folder"]),
    # eval / predict: outputs and checkpoints checked before predicting anything
    ("eval-out-file", "eval --checkpoint {missing} --dataset folder --root {pts} --out {txt}",
     ["'--out'", "notes.txt"]),
    ("eval-checkpoint-text", "eval --checkpoint {txt} --dataset folder --root {pts}", ["notes.txt", "checkpoint"]),
    ("eval-device", "eval --checkpoint {txt} --root {pts} --device cuda:x", ["--device cuda:x"]),
    ("predict-out-file", "predict {pts} --checkpoint {txt} -o {txt}", ["'--out'", "notes.txt"]),
    # score: options, and files named with their line
    ("score-threshold-neg", "score -p {gt} -g {gt} --threshold -1", ["'--threshold'", "0<x<=1"]),
    ("score-threshold-percent", "score -p {gt} -g {gt} --threshold 8", ["'--threshold'"]),
    ("score-norm", "score -p {gt} -g {gt} --norm diagonal", ["'--norm'", "inter_ocular"]),
    ("score-out-file", "score -p {gt} -g {gt} --out {txt}", ["'--out'", "notes.txt"]),
    ("score-subsets-broken", "score -p {gt} -g {gt} --subsets {broken}", ["broken.json:2:1", "JSON"]),
    ("score-subsets-shape", "score -p {gt} -g {gt} --subsets {badsubsets}", ["subsets.json", "'helen'"]),
    ("score-predictions-broken", "score -p {broken} -g {gt}", ["broken.json:2:1", "JSON"]),
    ("score-predictions-binary", "score -p {image} -g {gt}", ["face.png", "not a text file"]),
    ("score-json-nan", "score -p {nanjson} -g {gt}", ["nan.json", "entry 0", "finite"]),
    ("score-pts-nan", "score -p {nanpts} -g {gt}", ["face.pts:5", "NaN"]),
    ("score-pts-short-line", "score -p {shortpts} -g {gt}", ["face.pts:6", "two numbers"]),
    ("score-pts-count", "score -p {fewpts} -g {gt}", ["face.pts", "n_points 68"]),
    ("score-zero-normaliser", "score -p {gt} -g {flatgt} --norm io", ["flat.json", "inter_ocular distance is 0"]),
    # preview, inspect, specs preview
    ("preview-scale-0", "preview {toy} -o {tmp}/p.png --scale 0", ["'--scale'"]),
    ("preview-not-image", "preview {toy} -o {tmp}/p.txt", ["'--output'", ".txt", ".png"]),
    ("preview-out-folder", "preview {toy} -o {empty}", ["'--output'", "directory"]),
    ("preview-start-beyond", "preview {toy} -o {tmp}/p.png --start 1000", ["--start 1000", "48 samples"]),
    ("preview-start-neg", "preview {toy} -o {tmp}/p.png --start -1", ["'--start'"]),
    ("preview-n-neg", "preview {toy} -o {tmp}/p.png --n -3", ["'--n'"]),
    ("preview-cols-0", "preview {toy} -o {tmp}/p.png --cols 0", ["'--cols'"]),
    ("preview-no-shards", "preview {empty} -o {tmp}/p.png", ["empty", "no finished shards"]),
    ("inspect-no-shards", "inspect {empty}", ["empty", "no finished shards"]),
    ("verify-missing", "verify {missing}", ["missing", "no such directory"]),
    ("verify-no-manifest", "verify {toy}", ["manifest.json", "re-run the render command"]),
    ("specs-preview-size-0", "specs preview ibug68 --size 0 -o {tmp}/s.png", ["'--size'"]),
    ("specs-preview-not-image", "specs preview ibug68 -o {tmp}/s.txt", ["'--out'", ".txt"]),
]


@pytest.fixture(scope="module")
def paths(tmp_path_factory, toy_shards) -> dict[str, str]:
    tmp = tmp_path_factory.mktemp("cli")
    (tmp / "notes.txt").write_text("not a checkpoint\n")
    (tmp / "empty").mkdir()
    (tmp / "broken.json").write_text('{"helen": [0,\n')
    (tmp / "subsets.json").write_text(json.dumps({"helen": "0-3"}))
    (tmp / "gt.json").write_text(json.dumps([{"image": "a", "landmarks": FACE}]))
    (tmp / "flat.json").write_text(json.dumps([{"image": "a", "landmarks": [[5.0, 5.0]] * 68}]))
    (tmp / "nan.json").write_text(json.dumps([{"image": "a", "landmarks": [[float("nan"), 1.0]] + FACE[1:]}]))
    (tmp / "face.png").write_bytes(b"\x89PNG\r\n\x1a\n\xff\xfe")
    good = tmp / "pts" / "face.pts"
    write_pts(good, FACE)
    lines = good.read_text().splitlines()  # 1 version, 2 n_points, 3 {, 4.. points
    for name, edit in {"nanpts": lambda ls: ls[:4] + ["nan 3.0"] + ls[5:],
                       "shortpts": lambda ls: ls[:5] + ["1.0"] + ls[6:],
                       "fewpts": lambda ls: ls[:5] + ls[6:]}.items():
        (tmp / name).mkdir()
        (tmp / name / "face.pts").write_text("\n".join(edit(lines)) + "\n")
    out = {name: str(tmp / name) for name in ("notes.txt", "empty", "broken.json", "pts", "nanpts", "shortpts",
                                              "fewpts", "face.png")}
    return {"tmp": str(tmp), "toy": str(toy_shards), "missing": str(tmp / "missing"), "txt": out["notes.txt"],
            "empty": out["empty"], "broken": out["broken.json"], "badsubsets": str(tmp / "subsets.json"),
            "gt": str(tmp / "gt.json"), "flatgt": str(tmp / "flat.json"), "nanjson": str(tmp / "nan.json"),
            "image": out["face.png"], "pts": out["pts"], "nanpts": out["nanpts"], "shortpts": out["shortpts"],
            "fewpts": out["fewpts"]}


@pytest.mark.parametrize("line,needles", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_mistake_is_named(paths, line, needles):
    result = CliRunner().invoke(main, line.format(**paths).split())
    assert isinstance(result.exception, SystemExit), result.exception  # handled by click, not a crash
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    for needle in needles:
        assert needle in result.output, result.output


def test_rejected_train_creates_nothing(paths, tmp_path):
    """Options are checked before --out is created (and before any training)."""
    for bad in (["--steps", "0"], ["--model", "resnet18", "--model-arg", "depth=7"], ["--resume", paths["txt"]]):
        result = CliRunner().invoke(main, ["train", "--data", paths["toy"], "--out", str(tmp_path / "run"), *bad])
        assert result.exit_code == 2 and not (tmp_path / "run").exists(), result.output


# A mistake, then the command a user would type next: it works, and the data read is untouched.
CORRECTED = [
    ("preview {toy} -o {tmp}/p.txt --scale 0", "preview {toy} -o {tmp}/p.png --scale 1"),
    ("preview {toy} -o {tmp}/p.png --start 1000", "preview {toy} -o {tmp}/p.png --start 40"),
    ("score -p {gt} -g {gt} --threshold -1", "score -p {gt} -g {gt} --threshold 0.08"),
    ("score -p {nanpts} -g {pts}", "score -p {pts} -g {pts}"),
    ("specs preview ibug68 --size 0 -o {tmp}/s.png", "specs preview ibug68 --size 96 -o {tmp}/s.png"),
]


@pytest.mark.parametrize("bad,good", CORRECTED)
def test_the_corrected_command_then_works_and_nothing_was_changed(paths, face_model, bad, good):
    from pathlib import Path

    shards = {p.name: p.read_bytes() for p in sorted(Path(paths["toy"]).iterdir())}
    assert CliRunner().invoke(main, bad.format(**paths).split()).exit_code == 2
    result = CliRunner().invoke(main, good.format(**paths).split())
    assert result.exit_code == 0, result.output
    assert {p.name: p.read_bytes() for p in sorted(Path(paths["toy"]).iterdir())} == shards
