"""`facegen experiment`: a tiny grid on toy shards and the 12 real faces of real300w-mini."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from facegen.cli import main
from tests.toy_shards import REAL_MINI

CONFIG = """
name: tiny
data: [{shards}]
real: {{path: {real}, test_fraction: 0.25, val_fraction: 0.1}}
strategies: [synthetic-only, real-only, mixed, fine-tune, {{strategy: mixed, adapter: mlp}}, dann]
n_real: [0, 4, all]
seeds: [0]
train: {{model: resnet18, model_kwargs: {{width: 8}}, input_size: 32, steps: 3, batch_size: 4, workers: 0,
        unlabelled: {real}}}
adapt: {{adapter: mlp, max_epochs: 4, augment_copies: 1}}
"""


@pytest.fixture
def config(toy_shards, tmp_path):
    path = tmp_path / "exp.yaml"
    path.write_text(CONFIG.format(shards=toy_shards, real=REAL_MINI))
    return path


def test_experiment_writes_its_report_and_resumes_without_retraining(config, tmp_path):
    out = tmp_path / "exp"
    r = CliRunner().invoke(main, ["experiment", str(config), "--out", str(out)])
    assert r.exit_code == 0, r.output
    # synthetic-only and dann (no labelled real faces) trained once, adapted at N = 4 and all; 4 trained
    # variants at each N
    assert "[14/14] dann  N_real=all" in r.output and "left" in r.output
    for f in ("report.md", "results.json", "nme_vs_nreal.png", "ced_4.png", "ced_all.png"):
        assert (out / f).stat().st_size > 0, f
    results = json.loads((out / "results.json").read_text())
    assert len(results["cells"]) == 14 and results["norm"] == "inter_ocular"
    table = (out / "report.md").read_text()
    for row in ("| synthetic-only | nearest |", "| synthetic-only | adapter |", "| mixed | nearest |",
                "| mixed | adapter |", "| mixed+mlp | adapter |", "| real-only | nearest |"):
        assert row in table, row
    cells = {c["cell"]["id"]: c for c in results["cells"]}
    assert set(cells["mixed_n4_s0"]["modes"]) == {"nearest", "adapter"}  # a test-time adapter on its 4 faces
    assert "adapt" in cells["mixed_n4_s0"]["train"] and "adapt" not in cells["mixed+mlp_n4_s0"]["train"]
    assert cells["synthetic-only_n4_s0"]["train"]["reused"].endswith("synthetic-only_n0_s0/best.pt")
    assert cells["dann_nall_s0"]["train"]["reused"].endswith("dann_n0_s0/best.pt")
    assert "| dann | adapter |" in table
    # every cell is scored on the same 3 held-out faces
    assert {sum(1 for _ in c["modes"]["nearest"]["per_image"]["inter_ocular"]) for c in results["cells"]} == {3}

    stamps = {p: p.stat().st_mtime_ns for p in out.glob("cells/*/best.pt")}
    (out / "cells" / "mixed_n4_s0" / "result.json").unlink()  # as if killed while that cell ran
    r = CliRunner().invoke(main, ["experiment", str(config), "--out", str(out)])
    assert r.exit_code == 0, r.output
    assert "13 of 14 cells already finished" in r.output and "[1/1] mixed  N_real=4" in r.output
    changed = [p.parent.name for p, t in stamps.items() if p.stat().st_mtime_ns != t]
    assert changed == ["mixed_n4_s0"]


def test_experiment_config_errors_name_the_key(config, tmp_path):
    text = config.read_text()
    for bad, key in ((text.replace("mixed", "mixd"), "strategies[2]"), (text.replace("n_real: [0, 4, all]", "n_real: [-1]"), "n_real"),
                     (text + "colour: red\n", "colour"), (text.replace("steps: 3", "seed: 3"), "train.seed")):
        config.write_text(bad)
        r = CliRunner().invoke(main, ["experiment", str(config), "--dry-run"])
        assert r.exit_code != 0 and key in r.output and str(config) in r.output, r.output


@pytest.mark.parametrize("name,cells", [("example", 16), ("datagen_300w", 3 * (1 + 6 * 5))])
def test_shipped_configs_load_and_plan(name, cells):
    from pathlib import Path

    from facegen.trainer.experiment import load_experiment, plan_cells

    exp = load_experiment(Path(__file__).parents[1] / "trainer" / "experiments" / f"{name}.yaml")
    assert len(plan_cells(exp)) == cells and exp.adapt == {"adapter": "mlp"}
