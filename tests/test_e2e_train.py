"""End to end: render a small ibug68 set with the raster renderer, train briefly on the CPU, evaluate on
../shared/data/real300w-mini, score, and predict with the checkpoint alone."""

from __future__ import annotations

import json

import numpy as np
import pytest
from click.testing import CliRunner

from facegen.cli import main
from tests.toy_shards import REAL_MINI

pytestmark = pytest.mark.slow


def _run(args: list[str]) -> str:
    result = CliRunner().invoke(main, args, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.output


def test_render_train_eval_predict(tmp_path, face_model):
    if not REAL_MINI.is_dir():
        pytest.skip(f"{REAL_MINI} is absent (it sits beside the checkout as ../shared/data/real300w-mini)")
    data, run = tmp_path / "i68", tmp_path / "run"
    _run(["render", "--spec", "ibug68", "--n", "32", "--out", str(data), "--renderer", "raster", "--size", "128",
          "--quiet"])
    out = _run(["train", "--data", str(data), "--model", "hourglass", "--model-arg", "stacks=1",
                "--model-arg", "channels=32", "--model-arg", "depth=3", "--input-size", "64", "--steps", "30",
                "--batch-size", "8", "--lr", "2e-3", "--workers", "0", "--val-fraction", "0.1", "--val-every", "15",
                "--seed", "0", "--out", str(run)])
    summary = json.loads(out[out.index("{\n"):])
    assert summary["steps"] == 30
    assert summary["last_loss"] < 0.9 * summary["first_loss"], summary  # training lowers the loss
    assert (run / "best.pt").exists() and (run / "last.pt").exists()

    table = _run(["eval", "--checkpoint", str(run / "best.pt"), "--dataset", "folder", "--root", str(REAL_MINI),
                  "--out", str(tmp_path / "eval"), "--device", "cpu"])
    assert "| all | 12 |" in table
    metrics = json.loads((tmp_path / "eval" / "metrics.json").read_text())
    nme = metrics["metrics"]["inter_ocular"]["all"]["nme"]
    assert np.isfinite(nme) and nme > 0
    assert len(list((tmp_path / "eval" / "predictions").rglob("*.pts"))) == 12
    assert (tmp_path / "eval" / "ced_inter_ocular.png").stat().st_size > 0

    # scoring the written predictions separately gives the same numbers
    table2 = _run(["score", "-p", str(tmp_path / "eval" / "predictions"), "-g", str(REAL_MINI)])
    assert table2.splitlines()[2] == table.splitlines()[2]

    out = _run(["predict", str(REAL_MINI / "lfpw" / "trainset"), "--checkpoint", str(run / "best.pt"),
                "-o", str(tmp_path / "pred"), "--device", "cpu"])
    assert json.loads(out)["inputs"] == 6
    assert (tmp_path / "pred" / "predictions.json").exists()
