"""The Python API (facegen/api.py, `import facegen`): each function used from Python on tiny inputs, the same
results as its command, a light `import facegen`, and an error type free of the CLI framework.
(`facegen.render` and `facegen.sample_mesh`: tests/test_render_job.py and tests/test_sample_mesh.py.)"""

from __future__ import annotations

import dataclasses
import inspect
import json
import subprocess
import sys
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

import facegen
from facegen.cli import main
from facegen.errors import FacegenError

SPIGA = Path(__file__).resolve().parents[2] / "shared" / "data" / "spiga-300w"
TINY = dict(model="resnet18", model_args={"width": 8}, input_size=32, steps=3, batch_size=8, workers=0,
            device="cpu", seed=1, progress=False)


def test_import_is_light():
    """`import facegen` loads none of the heavy packages, nor the CLI framework (names load on first use)."""
    code = ("import sys, facegen; heavy = ('torch', 'bpy', 'pyrender', 'click', 'numpy', 'h5py'); "
            "print([m for m in sys.modules if m.split('.')[0] in heavy])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]", out
    for name in facegen.__all__:
        assert getattr(facegen, name) is not None, name


def test_error_type_is_not_the_cli_frameworks():
    assert not issubclass(FacegenError, click.ClickException)
    e = FacegenError("--n 0: nothing to render")
    assert str(e) == e.message == "--n 0: nothing to render" and e.exit_code == 2
    e.message += "; more"  # callers add to it (generator/job.py): str follows
    assert str(e).endswith("; more")
    result = CliRunner().invoke(main, ["inspect", "/nonexistent/shards"])  # the CLI maps it: exit 2, no traceback
    assert result.exit_code == 2 and "Error: /nonexistent/shards: no such directory" in result.output


def test_one_load_spec(face_model):
    from facegen import specs

    spec = facegen.load_spec("ibug68")
    assert facegen.load_spec is specs.load_spec and spec.num_points == 68 and "ibug68" in facegen.list_specs()
    assert facegen.read_spec("ibug68").num_points == 68  # the parsed YAML, before compiling
    assert not hasattr(specs, "load_compiled") and not hasattr(facegen, "load_shards")


def test_train_defaults_are_the_commands():
    """train's keyword defaults are TrainConfig's and `facegen train`'s option defaults."""
    from facegen.trainer.cli import train as command
    from facegen.trainer.train import TrainConfig

    config = {f.name: f.default for f in dataclasses.fields(TrainConfig) if f.default is not dataclasses.MISSING}
    ctx = click.Context(command)
    options = {p.name: p.get_default(ctx) for p in command.params}
    renamed = {"model_args": "model_arg", "amp": "no_amp"}
    for name, p in inspect.signature(facegen.train).parameters.items():
        if name in ("data", "model_args", "progress"):
            continue
        assert p.default == config[name], name
        if name != "amp":
            assert p.default == options[renamed.get(name, name)], name


def test_train_load_predictor_evaluate(toy_shards, tmp_path):
    run = facegen.train(toy_shards, out=tmp_path / "run", **TINY)
    assert isinstance(run, facegen.TrainResult) and run.checkpoint == tmp_path / "run" / "best.pt"
    assert run.checkpoint.exists() and run.last.exists() and run.history.exists()
    assert run.summary["steps"] == 3 and run.best == run.summary["best"]

    predictor = facegen.load_predictor(run.checkpoint, device="cpu")
    assert isinstance(predictor, facegen.Predictor) and predictor.num_landmarks == 68

    report = facegen.evaluate(run.checkpoint, toy_shards, dataset="shards", device="cpu", out=tmp_path / "eval")
    assert len(report["per_image"]["box"]) == 48
    assert (tmp_path / "eval" / "metrics.json").exists()
    again = facegen.evaluate(predictor, toy_shards, dataset="shards")  # a Predictor in hand works too
    assert again["per_image"] == report["per_image"]
    # the command is the same function: the same numbers
    result = CliRunner().invoke(main, ["eval", "--checkpoint", str(run.checkpoint), "--dataset", "shards",
                                       "--root", str(toy_shards), "--device", "cpu", "--out", str(tmp_path / "cli")])
    assert result.exit_code == 0, result.output
    assert json.loads((tmp_path / "cli" / "metrics.json").read_text())["metrics"] == report["metrics"]

    with pytest.raises(FacegenError, match="unknown model"):
        facegen.train(toy_shards, out=tmp_path / "bad", **{**TINY, "model": "vit"})
    with pytest.raises(FacegenError, match="box 'eyes'"):
        facegen.evaluate(run.checkpoint, toy_shards, dataset="shards", box="eyes")


def test_score(tmp_path):
    if not SPIGA.is_dir():
        pytest.skip(f"{SPIGA} is absent (../shared/data/spiga-300w beside the checkout)")
    report = facegen.score(SPIGA / "300wpublic_results_300wpublic_test.json", SPIGA / "300wpublic_test.json",
                           subsets=SPIGA / "300wpublic_db_info.json", norms=("io",), out=tmp_path)
    m = report["metrics"]["inter_ocular"]
    assert round(m["full"]["nme"], 3) == 2.994 and round(m["full"]["auc@0.08"], 2) == 62.73  # SPIGA's published
    assert (tmp_path / "metrics.json").exists() and (tmp_path / "ced_inter_ocular.png").exists()
    with pytest.raises(FacegenError, match="threshold 8"):
        facegen.score(SPIGA / "300wpublic_test.json", SPIGA / "300wpublic_test.json", thresholds=(8,))
