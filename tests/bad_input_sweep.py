"""A sweep of bad (and some valid-but-unusual) user inputs across every `facegen` command.

Not collected by pytest (the name does not start with test_); run it by hand against an installed
`facegen`:

    python tests/bad_input_sweep.py --facegen .venv/bin/facegen [--only SUBSTR] [--report FILE.md] [--keep]

Each case runs the given executable as a real subprocess (in its own empty folder, the case's {tmp})
and is classed:
- clear:   expected to fail and did: non-zero exit, no Python traceback, and the message names what
           the case says it must (the option, the config key path, the file name). A case marked `ok`
           (a valid but unusual input) that succeeded is counted as clear too.
- unclear: failed, but with a traceback or without naming the option / key / file.
- wrong:   exit 0 where it must fail, finished data changed or dropped (a case's check failed: for a
           failing render on a folder of finished shards, any shard's bytes or the manifest changed;
           or the corrected command after a failed start did not succeed), or an `ok` case failed.

Adding a case: one row in CASES below. `args` is the command line after `facegen`, split with shlex
once the placeholders are filled in (see PLACEHOLDERS); `names` are the strings the error message
must hold (case-insensitive); `setup` runs before the command, `check` after it. Fixtures are built
once per run in a temporary folder, with the Python interpreter of the facegen under test (numpy,
cv2 and h5py come from there; this script itself needs only the standard library).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent
SHARED = Path(os.environ.get("FACEGEN_SHARED", HERE.parents[1] / "shared"))
if not (SHARED / "data").is_dir():
    SHARED = Path("/work/shared")
REAL_MINI = SHARED / "data" / "real300w-mini"
SPIGA = SHARED / "data" / "spiga-300w"

TIMEOUT_S = 300  # per command; a command still running then is killed and counts as wrong

# Command prefixes, used in CASES as placeholders. The finished render fixture is `{FIN} --n 4`.
PREFIXES = {
    "{R}": "render --spec ibug68 --renderer raster --quiet --size 64",
    "{FIN}": "{R} --shard-size 2 --seed 0",
    "{TD}": "{T} --data {toy} --out {tmp}/run",
    "{T}": "train --steps 2 --batch-size 4 --input-size 64 --workers 0 --device cpu",
    "{E}": "eval --checkpoint {ckpt} --device cpu --dataset folder",
    "{P}": "predict --checkpoint {ckpt} --device cpu",
    "{S}": "score -g {spiga}/300wpublic_test.json",
    "{D}": "{tmp}/D",
}


def expand(text: str) -> str:
    while True:
        new = text
        for k, v in PREFIXES.items():
            new = new.replace(k, v)
        if new == text:
            return text
        text = new


PLACEHOLDERS = {
    **{k: f"`{v}`" for k, v in PREFIXES.items()},
    "{tmp}": "the case's own empty folder (also its working directory)",
    "{fin}": "a fresh copy of the finished raster render (`{FIN} --n 4`: 4 samples, 2 shards) in {tmp}/fin",
    "{fx}": "the run's fixture folder (configs/, specs/, real/, images/, json/, photos/, hdris/, ...)",
    "{toy}": "24 toy training samples (tests/toy_shards.py), shards of 8, 64 px",
    "{ckpt}": "last.pt of a 2-step hourglass training on {toy} (`{TD}`)",
    "{spiga}": "shared/data/spiga-300w (read only)",
    "{file}": "an existing regular file {tmp}/taken.txt",
    "{dir}": "an existing empty folder {tmp}/taken",
}


# -- setup and check steps (each carries a short description for the report) ---------------------------

@dataclass
class Step:
    desc: str
    fn: object
    before: object = None  # for checks: run after setup, before the command (e.g. a snapshot)


def run_first(args: str) -> Step:
    """Setup: a facegen command that must succeed before the case's command runs."""
    def fn(ctx, case):
        res = ctx.facegen(args, case)
        if res.code != 0:
            return f"setup command failed (exit {res.code}): {res.message}"
    return Step(f"first: `facegen {args}`", fn)


def write_file(path: str, text: str) -> Step:
    def fn(ctx, case):
        p = Path(ctx.fill(path, case))
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(text)
    return Step(f"write {path}: {text!r}", fn)


def remove(path: str) -> Step:
    def fn(ctx, case):
        p = Path(ctx.fill(path, case))
        shutil.rmtree(p) if p.is_dir() else p.unlink()
    return Step(f"remove {path}", fn)


def truncate(path: str) -> Step:
    def fn(ctx, case):
        p = Path(ctx.fill(path, case))
        data = p.read_bytes()
        p.write_bytes(data[: len(data) // 2])
    return Step(f"cut {path} to half its bytes", fn)


def remember(folder: str) -> Step:
    """Setup: note the shards' checksums (for `restored`)."""
    def fn(ctx, case):
        case.state["original"] = snapshot(Path(ctx.fill(folder, case)))
    return Step(f"note {folder}'s shards", fn)


def restored(folder: str) -> Step:
    """Check: every shard (and the manifest) is back as it was noted by `remember`."""
    def fn(ctx, case):
        return _compare(case.state["original"], snapshot(Path(ctx.fill(folder, case))))
    return Step(f"{folder}: every shard and the manifest back as they were", fn)


def copy(src: str, dst: str) -> Step:
    def fn(ctx, case):
        shutil.copytree(ctx.fill(src, case), ctx.fill(dst, case))
    return Step(f"copy {src} to {dst}", fn)


def steps(*parts: Step) -> Step:
    def fn(ctx, case):
        for s in parts:
            problem = s.fn(ctx, case)
            if problem:
                return problem
    return Step("; ".join(s.desc for s in parts), fn)


def snapshot(folder: Path) -> dict[str, str]:
    """sha256 of every shard and of manifest.json in a render folder."""
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.glob("*"))
            if p.is_file() and (p.name.startswith("shard-") and p.suffix == ".h5" or p.name == "manifest.json")}


def unchanged(folder: str) -> Step:
    """Check: the finished shards' bytes and manifest.json are as they were before the command."""
    def before(ctx, case):
        case.state["snap"] = snapshot(Path(ctx.fill(folder, case)))

    def fn(ctx, case):
        return _compare(case.state["snap"], snapshot(Path(ctx.fill(folder, case))))
    return Step(f"{folder}: finished shards and manifest unchanged", fn, before)


def kept(folder: str) -> Step:
    """Check (for a command that may add shards): every finished shard keeps its bytes and stays listed
    in manifest.json."""
    def before(ctx, case):
        case.state["snap"] = {k: v for k, v in snapshot(Path(ctx.fill(folder, case))).items() if k != "manifest.json"}

    def fn(ctx, case):
        path = Path(ctx.fill(folder, case))
        problem = _compare(case.state["snap"], snapshot(path))
        if problem:
            return problem
        try:
            listed = {e["file"] for e in json.loads((path / "manifest.json").read_text())["shards"]}
        except (OSError, ValueError, KeyError, TypeError) as e:
            return f"manifest.json unreadable after the command ({e})"
        dropped = sorted(set(case.state["snap"]) - listed)
        if dropped:
            return "finished shards dropped from manifest.json: " + ", ".join(dropped)
    return Step(f"{folder}: finished shards keep their bytes and stay in manifest.json", fn, before)


def _compare(old: dict, new: dict) -> str | None:
    changed = [n for n in old if n in new and new[n] != old[n]]
    lost = [n for n in old if n not in new]
    if changed or lost:
        return "finished data touched: " + ", ".join([f"{n} changed" for n in changed] + [f"{n} removed" for n in lost])
    return None


def then(args: str, remove_first: str | None = None) -> Step:
    """Check: (after removing a file, as the user would) the corrected command succeeds."""
    def fn(ctx, case):
        if remove_first:
            Path(ctx.fill(remove_first, case)).unlink()
        res = ctx.facegen(args, case)
        if res.code != 0:
            return f"the corrected command `{args}` failed (exit {res.code}): {res.message}"
    pre = f"remove {remove_first}, then " if remove_first else "then "
    return Step(pre + f"`facegen {args}` must succeed", fn)


def follow_manifest_advice(folder: str, args: str) -> Step:
    """Check: delete the damaged manifest (as the message advises), re-run: must succeed, shards kept."""
    def before(ctx, case):
        case.state["snap"] = {k: v for k, v in snapshot(Path(ctx.fill(folder, case))).items() if k != "manifest.json"}

    def fn(ctx, case):
        Path(ctx.fill(folder, case), "manifest.json").unlink(missing_ok=True)
        res = ctx.facegen(args, case)
        if res.code != 0:
            return f"after deleting manifest.json the same command failed (exit {res.code}): {res.message}"
        return _compare(case.state["snap"], snapshot(Path(ctx.fill(folder, case))))
    return Step(f"delete {folder}/manifest.json, re-run `facegen {args}`: must succeed, shards unchanged", fn, before)


def auc_at_most_100(out: str | None = None) -> Step:
    """Check: every AUC printed (and in metrics.json) is <= 100 %."""
    def fn(ctx, case):
        values = []
        lines = [ln for ln in case.result.stdout.splitlines() if ln.startswith("|")]
        if lines:
            head = [h.strip() for h in lines[0].strip("|").split("|")]
            cols = [i for i, h in enumerate(head) if h.upper().startswith("AUC")]
            for ln in lines[2:]:
                cells = [c.strip() for c in ln.strip("|").split("|")]
                for i in cols:
                    try:
                        values.append(float(cells[i]))
                    except (ValueError, IndexError):
                        pass
        if out:
            metrics = Path(ctx.fill(out, case)) / "metrics.json"
            if metrics.exists():
                def walk(x, key=""):
                    if isinstance(x, dict):
                        for k, v in x.items():
                            walk(v, str(k))
                    elif isinstance(x, (int, float)) and key.lower().startswith("auc"):
                        values.append(float(x))
                walk(json.loads(metrics.read_text()))
        if not values:
            return "no AUC found in the output"
        if max(values) > 100:
            return f"AUC {max(values):.2f} % > 100 % for predictions identical to the ground truth"
    return Step("every AUC printed (and in metrics.json) <= 100 %", fn)


def refuse_or_noop(folder: str) -> Step:
    """Marker check: exit 0 is acceptable when nothing finished was changed (see classify)."""
    s = unchanged(folder)
    s.desc += " (exit 0 allowed only if so)"
    s.noop_ok = True
    return s


# -- the cases -----------------------------------------------------------------------------------------

@dataclass
class Case:
    id: str
    args: str
    names: tuple[str, ...] = ()
    expect: str = "fail"  # "fail" or "ok"
    setup: Step | None = None
    check: Step | None = None
    env: dict = field(default_factory=dict)
    state: dict = field(default_factory=dict)
    result: object = None


def C(id, args, names=(), expect="fail", setup=None, check=None, env=None) -> Case:
    return Case(id, args, tuple(names), expect, setup, check, env or {})


OK = "ok"

CASES = [
    # ---- render: options ---------------------------------------------------------------------------
    C("render-n-zero", "{R} --n 0 --out {D}", ["--n"]),
    C("render-n-negative", "{R} --n -5 --out {D}", ["--n"]),
    C("render-n-text", "{R} --n many --out {D}", ["--n"]),
    C("render-n-float", "{R} --n 2.5 --out {D}", ["--n"]),
    C("render-n-missing", "{R} --out {D}", ["--n"]),
    C("render-size-zero", "{R} --n 2 --size 0 --out {D}", ["--size"]),
    C("render-size-negative", "{R} --n 2 --size -64 --out {D}", ["--size"]),
    C("render-size-tiny", "{R} --n 2 --size 8 --out {D}", ["--size"]),
    C("render-size-huge", "{R} --n 2 --size 100000 --out {D}", ["--size"]),
    C("render-size-text", "{R} --n 2 --size big --out {D}", ["--size"]),
    C("render-shard-size-zero", "{R} --n 2 --shard-size 0 --out {D}", ["--shard-size"]),
    C("render-shard-size-negative", "{R} --n 2 --shard-size -3 --out {D}", ["--shard-size"]),
    C("render-workers-zero", "{R} --n 2 --workers 0 --out {D}", ["--workers"]),
    C("render-workers-negative", "{R} --n 2 --workers -2 --out {D}", ["--workers"]),
    C("render-workers-text", "{R} --n 2 --workers all --out {D}", ["--workers"]),
    C("render-seed-text", "{R} --n 2 --seed x --out {D}", ["--seed"]),
    C("render-unknown-renderer", "{R} --n 2 --renderer povray --out {D}", ["povray"]),
    C("render-unknown-output", "{R} --n 2 --outputs rgb,normals --out {D}", ["normals"]),
    C("render-outputs-without-rgb", "{R} --n 2 --outputs depth --out {D}", ["--outputs"]),
    C("render-outputs-empty", "{R} --n 2 --outputs , --out {D}", ["--outputs"]),
    C("render-unknown-spec", "{R} --n 2 --spec nosuchspec --out {D}", ["nosuchspec"]),
    C("render-spec-missing-file", "{R} --n 2 --spec {fx}/specs/absent.yaml --out {D}", ["absent.yaml"]),
    C("render-spec-not-yaml", "{R} --n 2 --spec {fx}/specs/notyaml.yaml --out {D}", ["notyaml.yaml"]),
    C("render-spec-vertex-out-of-range", "{R} --n 2 --spec {fx}/specs/farvertex.yaml --out {D}",
      ["farvertex.yaml"]),
    C("render-out-is-file", "{R} --n 2 --out {file}", ["taken.txt"]),
    C("render-out-below-file", "{R} --n 2 --out {file}/sub", ["taken.txt"]),
    C("render-size-min", "{R} --n 1 --size 16 --out {D}", expect=OK),
    C("render-shard-bigger-than-n", "{R} --n 1 --shard-size 1000 --out {D}", expect=OK),
    C("render-all-outputs", "{R} --n 1 --outputs rgb,depth,segmentation,mask --out {D}", expect=OK),
    C("render-outputs-spaces", "{R} --n 1 --outputs ' rgb , depth ' --out {D}", expect=OK),
    C("render-out-with-space", "{R} --n 1 --out '{tmp}/my renders/a'", expect=OK),
    # ---- render: sampling configs ------------------------------------------------------------------
    C("config-missing", "{R} --n 2 --config {fx}/configs/absent.yaml --out {D}", ["absent.yaml"]),
    C("config-is-folder", "{R} --n 2 --config {fx}/configs --out {D}", ["configs"]),
    C("config-yaw-std-text", "{R} --n 2 --config {fx}/configs/yaw_wide.yaml --out {D}", ["head_pose.yaw_std"]),
    C("config-focal-number", "{R} --n 2 --config {fx}/configs/focal_number.yaml --out {D}", ["camera.focal_mm"]),
    C("config-lights-reversed", "{R} --n 2 --config {fx}/configs/lights_reversed.yaml --out {D}",
      ["lighting.num_lights"]),
    C("config-lights-too-many", "{R} --n 2 --config {fx}/configs/lights_many.yaml --out {D}",
      ["lighting.num_lights"]),
    C("config-weights-all-zero", "{R} --n 2 --config {fx}/configs/weights_zero.yaml --out {D}",
      ["background.kinds"]),
    C("config-weight-negative", "{R} --n 2 --config {fx}/configs/weight_negative.yaml --out {D}",
      ["background.kinds"]),
    C("config-unknown-background-kind", "{R} --n 2 --config {fx}/configs/kind_plasma.yaml --out {D}",
      ["plasma"]),
    C("config-yaw-std-negative", "{R} --n 2 --config {fx}/configs/yaw_negative.yaml --out {D}",
      ["head_pose.yaw_std"]),
    C("config-face-fraction-negative", "{R} --n 2 --config {fx}/configs/behind_head.yaml --out {D}",
      ["camera.face_fraction"]),
    C("config-num-modes-500", "{R} --n 2 --config {fx}/configs/modes_500.yaml --out {D}",
      ["identity.num_modes"]),
    C("config-unknown-expression", "{R} --n 2 --config {fx}/configs/wink.yaml --out {D}", ["eyeWink"]),
    C("config-unknown-key", "{R} --n 2 --config {fx}/configs/yaw_sd.yaml --out {D}", ["yaw_sd"]),
    C("config-unknown-section", "{R} --n 2 --config {fx}/configs/weather.yaml --out {D}", ["weather"]),
    C("config-not-yaml", "{R} --n 2 --config {fx}/configs/not_yaml.yaml --out {D}", ["not_yaml.yaml"]),
    C("config-a-list", "{R} --n 2 --config {fx}/configs/a_list.yaml --out {D}", ["a_list.yaml"]),
    C("config-probability-above-1", "{R} --n 2 --config {fx}/configs/prob.yaml --out {D}",
      ["expression.neutral_prob"]),
    C("config-yaw-max-200", "{R} --n 2 --config {fx}/configs/yaw_max.yaml --out {D}", ["head_pose.yaw_max"]),
    C("config-yaw-std-bool", "{R} --n 2 --config {fx}/configs/yaw_bool.yaml --out {D}", ["head_pose.yaw_std"]),
    # ---- render: backgrounds and HDRIs -------------------------------------------------------------
    C("backgrounds-missing", "{R} --n 2 --backgrounds {fx}/nowhere --out {D}", ["nowhere"]),
    C("backgrounds-empty", "{R} --n 2 --backgrounds {fx}/empty --out {D}", ["--backgrounds"]),
    C("backgrounds-is-file", "{R} --n 2 --backgrounds {fx}/plain.txt --out {D}", ["plain.txt"]),
    C("hdris-missing", "{R} --n 2 --hdris {fx}/nowhere --out {D}", ["nowhere"]),
    C("hdris-empty", "{R} --n 2 --hdris {fx}/empty --out {D}", ["--hdris"]),
    C("cycles-corrupt-exr", "render --spec ibug68 --renderer cycles --quiet --size 64 --n 1 "
      "--hdris {fx}/corrupt-hdris --out {tmp}/D", ["broken.exr"]),
    # ---- render: failed start, then the corrected command on the same folder -----------------------
    C("restart-after-bad-seed", "{R} --n 2 --seed -1 --out {D}", ["--seed"],
      check=then("{R} --n 2 --seed 0 --out {D}")),
    C("restart-after-bad-config", "{R} --n 2 --config {fx}/configs/yaw_wide.yaml --out {D}",
      ["head_pose.yaw_std"], check=then("{R} --n 2 --out {D}")),
    C("restart-after-unknown-expression", "{R} --n 2 --config {fx}/configs/wink.yaml --out {D}",
      ["eyeWink"], check=then("{R} --n 2 --out {D}")),
    C("restart-after-corrupt-jpg", "{R} --n 2 --backgrounds {tmp}/photos --out {D}", ["broken.jpg"],
      setup=copy("{fx}/corrupt-photos", "{tmp}/photos"),
      check=then("{R} --n 2 --backgrounds {tmp}/photos --out {D}", remove_first="{tmp}/photos/broken.jpg")),
    C("restart-after-corrupt-exr", "{R} --n 2 --hdris {tmp}/hdris --out {D}", ["broken.exr"],
      setup=copy("{fx}/corrupt-hdris", "{tmp}/hdris"),
      check=then("{R} --n 2 --hdris {tmp}/hdris --out {D}", remove_first="{tmp}/hdris/broken.exr")),
    C("restart-after-bad-spec", "{R} --n 2 --spec {fx}/specs/notyaml.yaml --out {D}", ["notyaml.yaml"],
      check=then("{R} --n 2 --out {D}")),
    # ---- render: a folder with finished shards -----------------------------------------------------
    C("finished-n-8-then-3", "{R} --n 3 --shard-size 4 --out {D}", ["--n"],
      setup=run_first("{R} --n 8 --shard-size 4 --out {D}"), check=refuse_or_noop("{D}")),
    C("finished-n-below", "{FIN} --n 1 --out {fin}", ["--n"]),
    C("finished-other-seed", "{FIN} --n 4 --seed 5 --out {fin}", ["--seed"]),
    C("finished-other-spec", "{FIN} --n 4 --spec dense243 --out {fin}", ["--spec"]),
    C("finished-other-size", "{FIN} --n 4 --size 96 --out {fin}", ["--size"]),
    C("finished-other-shard-size", "{FIN} --n 4 --shard-size 3 --out {fin}", ["--shard-size"]),
    C("finished-other-config", "{FIN} --n 4 --config {fx}/configs/frontal.yaml --out {fin}", ["--config"]),
    C("finished-bad-seed", "{FIN} --n 6 --seed -1 --out {fin}", ["--seed"]),
    C("finished-bad-config", "{FIN} --n 6 --config {fx}/configs/yaw_wide.yaml --out {fin}",
      ["head_pose.yaw_std"]),
    C("finished-corrupt-manifest", "{FIN} --n 4 --out {fin}", ["manifest.json"],
      setup=write_file("{fin}/manifest.json", '{"shards": ['),
      check=follow_manifest_advice("{fin}", "{FIN} --n 4 --out {fin}")),
    C("finished-manifest-not-object", "{FIN} --n 4 --out {fin}", ["manifest.json"],
      setup=write_file("{fin}/manifest.json", "[1, 2, 3]"),
      check=follow_manifest_advice("{fin}", "{FIN} --n 4 --out {fin}")),
    C("finished-manifest-deleted", "{FIN} --n 4 --out {fin}", expect=OK,
      setup=remove("{fin}/manifest.json"), check=kept("{fin}")),
    C("finished-grow", "{FIN} --n 6 --out {fin}", expect=OK, check=kept("{fin}")),
    C("finished-same-again", "{FIN} --n 4 --out {fin}", expect=OK, check=unchanged("{fin}")),
    C("finished-truncated-shard", "{FIN} --n 4 --out {fin}", expect=OK,
      setup=steps(remember("{fin}"), truncate("{fin}/shard-00001.h5")), check=restored("{fin}")),
    C("finished-locked-elsewhere", "{FIN} --n 4 --out {fin}", ["render.lock", "elsewhere-host"],
      setup=write_file("{fin}/render.lock", '{"pid": 1, "host": "elsewhere-host", "started": "?"}'),
      check=unchanged("{fin}")),
    # ---- verify ------------------------------------------------------------------------------------
    C("verify-missing", "verify {tmp}/nowhere", ["nowhere"]),
    C("verify-no-manifest", "verify {fin}", ["manifest.json"], setup=remove("{fin}/manifest.json")),
    C("verify-truncated-shard", "verify {fin}", ["shard-00001.h5", "damaged"],
      setup=truncate("{fin}/shard-00001.h5")),
    C("verify-finished", "verify {fin}", expect=OK),
    # ---- inspect -----------------------------------------------------------------------------------
    C("inspect-missing", "inspect {tmp}/nowhere", ["nowhere"]),
    C("inspect-empty", "inspect {fx}/empty", ["empty"]),
    C("inspect-a-file", "inspect {fx}/plain.txt", ["plain.txt"]),
    C("inspect-junk-shard", "inspect {fx}/junk-shards", ["shard-00000.h5"]),
    C("inspect-truncated-shard", "inspect {fin}", ["shard-00001.h5"], setup=truncate("{fin}/shard-00001.h5")),
    C("inspect-corrupt-manifest", "inspect {fin}", ["manifest.json"],
      setup=write_file("{fin}/manifest.json", '{"shards": [')),
    C("inspect-finished", "inspect {fin}", expect=OK),
    # ---- preview -----------------------------------------------------------------------------------
    C("preview-scale-zero", "preview {fin} -o {tmp}/grid.png --scale 0", ["--scale"]),
    C("preview-scale-negative", "preview {fin} -o {tmp}/grid.png --scale -2", ["--scale"]),
    C("preview-scale-text", "preview {fin} -o {tmp}/grid.png --scale big", ["--scale"]),
    C("preview-o-txt", "preview {fin} -o out.txt", ["out.txt"]),
    C("preview-o-existing-folder", "preview {fin} -o {dir}", ["taken"]),
    C("preview-n-zero", "preview {fin} -o {tmp}/grid.png --n 0", ["--n"]),
    C("preview-cols-zero", "preview {fin} -o {tmp}/grid.png --cols 0", ["--cols"]),
    C("preview-start-beyond", "preview {fin} -o {tmp}/grid.png --start 100", ["--start"]),
    C("preview-start-negative", "preview {fin} -o {tmp}/grid.png --start -1", ["--start"]),
    C("preview-missing-folder", "preview {tmp}/nowhere -o {tmp}/grid.png", ["nowhere"]),
    C("preview-empty-folder", "preview {fx}/empty -o {tmp}/grid.png", ["empty"]),
    C("preview-o-missing", "preview {fin}", ["--output"]),
    C("preview-n-more-than-held", "preview {fin} -o {tmp}/grid.png --n 50", expect=OK),
    # ---- specs -------------------------------------------------------------------------------------
    C("specs-show-unknown", "specs show nosuchspec", ["nosuchspec"]),
    C("specs-show-missing-file", "specs show {fx}/specs/absent.yaml", ["absent.yaml"]),
    C("specs-show-not-yaml", "specs show {fx}/specs/notyaml.yaml", ["notyaml.yaml"]),
    C("specs-validate-not-yaml", "specs validate {fx}/specs/notyaml.yaml", ["notyaml.yaml"]),
    C("specs-validate-empty-file", "specs validate {fx}/specs/emptyspec.yaml", ["emptyspec.yaml"]),
    C("specs-validate-a-list", "specs validate {fx}/specs/listspec.yaml", ["listspec.yaml"]),
    C("specs-validate-missing-key", "specs validate {fx}/specs/nopoints.yaml", ["points"]),
    C("specs-validate-unknown-key", "specs validate {fx}/specs/colour.yaml", ["colour"]),
    C("specs-validate-vertex-out-of-range", "specs validate {fx}/specs/farvertex.yaml", ["farvertex.yaml"]),
    C("specs-validate-vertex-negative", "specs validate {fx}/specs/negvertex.yaml", ["negvertex.yaml"]),
    C("specs-validate-duplicate-point", "specs validate {fx}/specs/twice.yaml", ["twice.yaml"]),
    C("specs-validate-a-folder", "specs validate {fx}/specs", ["specs"]),
    C("specs-validate-good-then-bad", "specs validate ibug68 {fx}/specs/notyaml.yaml", ["notyaml.yaml"]),
    C("specs-preview-size-zero", "specs preview ibug68 -o {tmp}/p.png --size 0", ["--size"]),
    C("specs-preview-size-negative", "specs preview ibug68 -o {tmp}/p.png --size -100", ["--size"]),
    C("specs-preview-size-text", "specs preview ibug68 -o {tmp}/p.png --size big", ["--size"]),
    C("specs-preview-unknown-spec", "specs preview nosuchspec -o {tmp}/p.png", ["nosuchspec"]),
    C("specs-preview-o-existing-folder", "specs preview ibug68 -o {dir}", ["taken"]),
    C("specs-preview-o-txt", "specs preview ibug68 -o p.txt --size 64", ["p.txt"]),
    C("specs-generate-too-few", "specs generate --points 10 -o {tmp}/s.yaml", ["--points"]),
    C("specs-generate-negative", "specs generate --points -68 -o {tmp}/s.yaml", ["--points"]),
    C("specs-generate-text", "specs generate --points lots -o {tmp}/s.yaml", ["--points"]),
    C("specs-generate-line-fraction", "specs generate --points 100 --line-fraction 2 -o {tmp}/s.yaml",
      ["--line-fraction"]),
    C("specs-generate-o-existing-folder", "specs generate --points 68 -o {dir}", ["taken"]),
    # ---- assets ------------------------------------------------------------------------------------
    C("assets-import-missing", "assets import-ict {tmp}/nowhere.zip --out {tmp}/m.npz", ["nowhere.zip"]),
    C("assets-import-text-file", "assets import-ict {fx}/plain.txt --out {tmp}/m.npz", ["plain.txt"]),
    C("assets-import-corrupt-zip", "assets import-ict {fx}/broken.zip --out {tmp}/m.npz", ["broken.zip"]),
    C("assets-import-empty-folder", "assets import-ict {fx}/empty --out {tmp}/m.npz", ["empty"]),
    C("assets-info-missing", "assets info --model {tmp}/nowhere.npz", ["nowhere.npz"]),
    C("assets-info-text-file", "assets info --model {fx}/plain.txt", ["plain.txt"]),
    C("assets-info-corrupt-npz", "assets info --model {fx}/broken.npz", ["broken.npz"]),
    C("assets-info-no-model-imported", "assets info", ["import-ict"], env={"FACEGEN_HOME": "{tmp}/home"}),
    C("render-no-model-imported", "{R} --n 2 --out {D}", ["import-ict"], env={"FACEGEN_HOME": "{tmp}/home"}),
    # ---- train -------------------------------------------------------------------------------------
    C("train-steps-zero", "{TD} --steps 0", ["--steps"]),
    C("train-steps-negative", "{TD} --steps -3", ["--steps"]),
    C("train-epochs-zero", "train --data {toy} --epochs 0 --batch-size 4 --input-size 64 --workers 0 --device cpu --out {tmp}/run", ["--epochs"]),
    C("train-batch-size-zero", "{TD} --batch-size 0", ["--batch-size"]),
    C("train-batch-size-text", "{TD} --batch-size big", ["--batch-size"]),
    C("train-lr-negative", "{TD} --lr -0.1", ["--lr"]),
    C("train-lr-nan", "{TD} --lr nan", ["--lr"]),
    C("train-input-size-zero", "{TD} --input-size 0", ["--input-size"]),
    C("train-input-size-negative", "{TD} --input-size -64", ["--input-size"]),
    C("train-crop-scale-zero", "{TD} --crop-scale 0", ["--crop-scale"]),
    C("train-workers-negative", "{TD} --workers -1", ["--workers"]),
    C("train-val-fraction-above-1", "{TD} --val-fraction 1.5", ["--val-fraction"]),
    C("train-val-fraction-1", "{TD} --val-fraction 1", ["--val-fraction"]),
    C("train-val-fraction-negative", "{TD} --val-fraction -0.2", ["--val-fraction"]),
    C("train-val-every-negative", "{TD} --val-every -5", ["--val-every"]),
    C("train-heatmap-weight-negative", "{TD} --heatmap-weight -1", ["--heatmap-weight"]),
    C("train-unknown-model", "{TD} --model transformer9", ["transformer9"]),
    C("train-model-arg-depth", "{TD} --model-arg depth=7", ["depth"]),
    C("train-model-arg-bad-value", "{TD} --model-arg stacks=many", ["stacks"]),
    C("train-model-arg-no-equals", "{TD} --model-arg stacks", ["stacks"]),
    C("train-data-missing", "{T} --data {tmp}/nowhere --out {tmp}/run", ["nowhere"]),
    C("train-data-empty", "{T} --data {fx}/empty --out {tmp}/run", ["empty"]),
    C("train-data-a-file", "{T} --data {fx}/plain.txt --out {tmp}/run", ["plain.txt"]),
    C("train-data-junk-shard", "{T} --data {fx}/junk-shards --out {tmp}/run", ["shard-00000.h5"]),
    C("train-data-pts-folder", "{T} --data {fx}/real/good --out {tmp}/run", ["good"]),
    C("train-resume-text-file", "{TD} --resume {fx}/plain.txt", ["plain.txt"]),
    C("train-resume-missing", "{TD} --resume {tmp}/gone.pt", ["gone.pt"]),
    C("train-resume-other-model", "{TD} --model resnet18 --resume {ckpt}", ["last.pt"]),
    C("train-out-is-file", "{TD} --out {file}", ["taken.txt"]),
    C("train-val-real-missing", "{TD} --val-real {tmp}/nowhere", ["nowhere"]),
    C("train-val-real-nan", "{TD} --val-real {fx}/real/nan", ["nanpts.pts"]),
    C("train-device-unknown", "{TD} --device gpu0", ["--device"]),
    C("train-device-missing-cuda", "{TD} --device cuda:7", ["--device"]),
    C("train-batch-larger-than-data", "{TD} --batch-size 64", expect=OK),
    C("train-on-render-folder", "{T} --data {fin} --out {tmp}/run", expect=OK),
    # ---- eval --------------------------------------------------------------------------------------
    C("eval-checkpoint-missing", "eval --checkpoint {tmp}/gone.pt --dataset folder --root {fx}/real/good",
      ["gone.pt"]),
    C("eval-checkpoint-text", "eval --checkpoint {fx}/plain.txt --dataset folder --root {fx}/real/good",
      ["plain.txt"]),
    C("eval-checkpoint-folder", "eval --checkpoint {fx}/empty --dataset folder --root {fx}/real/good",
      ["empty"]),
    C("eval-root-missing", "{E} --root {tmp}/nowhere", ["nowhere"]),
    C("eval-root-empty", "{E} --root {fx}/empty", ["empty"]),
    C("eval-300w-layout-missing", "eval --checkpoint {ckpt} --device cpu --dataset 300w --root {fx}/real/good",
      ["good"]),
    C("eval-unknown-split", "eval --checkpoint {ckpt} --device cpu --dataset 300w --root {fx}/real/good "
      "--split everything", ["everything"]),
    C("eval-out-is-file", "{E} --root {fx}/real/good --out {file}", ["taken.txt"]),
    C("eval-device-unknown", "{E} --root {fx}/real/good --device gpu0", ["--device"]),
    C("eval-pts-nan", "{E} --root {fx}/real/nan", ["nanpts.pts"]),
    C("eval-pts-67-points", "{E} --root {fx}/real/count", ["short67.pts"]),
    C("eval-pts-no-brace", "{E} --root {fx}/real/brace", ["nobrace.pts"]),
    C("eval-pts-words", "{E} --root {fx}/real/words", ["words.pts"]),
    C("eval-pts-without-image", "{E} --root {fx}/real/lonely", ["lonely.pts"]),
    C("eval-image-corrupt", "{E} --root {fx}/real/badimage", ["badimage.png"]),
    C("eval-image-ppm", "{E} --root {fx}/real/ppm", expect=OK),
    C("eval-image-bmp", "{E} --root {fx}/real/bmp", expect=OK),
    C("eval-image-tif", "{E} --root {fx}/real/tif", expect=OK),
    C("eval-image-webp", "{E} --root {fx}/real/webp", expect=OK),
    C("eval-good", "{E} --root {fx}/real/good --out {tmp}/ev", expect=OK),
    # ---- score -------------------------------------------------------------------------------------
    C("score-threshold-negative", "{S} -p {spiga}/300wpublic_results_300wpublic_test.json --threshold -1",
      ["--threshold"]),
    C("score-threshold-zero", "{S} -p {spiga}/300wpublic_results_300wpublic_test.json --threshold 0",
      ["--threshold"]),
    C("score-threshold-text", "{S} -p {spiga}/300wpublic_results_300wpublic_test.json --threshold high",
      ["--threshold"]),
    C("score-unknown-norm", "{S} -p {spiga}/300wpublic_results_300wpublic_test.json --norm elbow", ["elbow"]),
    C("score-unknown-auc-method", "{S} -p {spiga}/300wpublic_results_300wpublic_test.json --auc-method x",
      ["--auc-method"]),
    C("score-identical-auc", "{S} -p {spiga}/300wpublic_test.json --out {tmp}/sc", expect=OK,
      check=auc_at_most_100("{tmp}/sc")),
    C("score-predictions-missing", "{S} -p {tmp}/gone.json", ["gone.json"]),
    C("score-ground-truth-missing", "score -p {spiga}/300wpublic_test.json -g {tmp}/gone.json", ["gone.json"]),
    C("score-json-truncated", "{S} -p {fx}/json/truncated.json", ["truncated.json"]),
    C("score-json-number", "{S} -p {fx}/json/number.json", ["number.json"]),
    C("score-json-no-landmarks", "{S} -p {fx}/json/nolandmarks.json", ["nolandmarks.json"]),
    C("score-json-empty-list", "{S} -p {fx}/json/emptylist.json", ["emptylist.json"]),
    C("score-json-xyz", "score -g {fx}/json/gt10.json -p {fx}/json/xyz.json", ["xyz.json"]),
    C("score-json-strings", "score -g {fx}/json/gt10.json -p {fx}/json/strings.json", ["strings.json"]),
    C("score-json-67-points", "score -g {fx}/json/gt10.json -p {fx}/json/pred67.json", ["pred67.json"]),
    C("score-json-ragged", "score -g {fx}/json/gt10.json -p {fx}/json/ragged.json", ["ragged.json"]),
    C("score-json-fewer", "score -g {fx}/json/gt10.json -p {fx}/json/pred5.json", ["pred5.json"]),
    C("score-json-nan", "score -g {fx}/json/gt10.json -p {fx}/json/prednan.json", ["prednan.json"]),
    C("score-subsets-broken", "{S} -p {spiga}/300wpublic_results_300wpublic_test.json "
      "--subsets {fx}/json/broken.json", ["broken.json"]),
    C("score-subsets-missing", "{S} -p {spiga}/300wpublic_results_300wpublic_test.json "
      "--subsets {tmp}/gone.json", ["gone.json"]),
    C("score-subsets-out-of-range", "score -g {fx}/json/gt10.json -p {fx}/json/gt10.json "
      "--subsets {fx}/json/subsets_range.json", ["subsets_range.json"]),
    C("score-subsets-text", "score -g {fx}/json/gt10.json -p {fx}/json/gt10.json "
      "--subsets {fx}/json/subsets_text.json", ["subsets_text.json"]),
    C("score-subsets-a-list", "score -g {fx}/json/gt10.json -p {fx}/json/gt10.json "
      "--subsets {fx}/json/subsets_list.json", ["subsets_list.json"]),
    C("score-gt-pts-nan", "score -g {fx}/real/nan -p {fx}/real/clean", ["nanpts.pts"]),
    C("score-pts-folder-empty", "score -g {fx}/real/good -p {fx}/empty", ["empty"]),
    C("score-out-is-file", "{S} -p {spiga}/300wpublic_results_300wpublic_test.json --out {file}",
      ["taken.txt"]),
    # ---- predict -----------------------------------------------------------------------------------
    C("predict-source-missing", "{P} {tmp}/nowhere.jpg -o {tmp}/pr", ["nowhere.jpg"]),
    C("predict-source-empty-folder", "{P} {fx}/empty -o {tmp}/pr", ["empty"]),
    C("predict-source-text", "{P} {fx}/plain.txt -o {tmp}/pr", ["plain.txt"]),
    C("predict-source-corrupt-jpg", "{P} {fx}/images/broken.jpg -o {tmp}/pr", ["broken.jpg"]),
    C("predict-source-corrupt-video", "{P} {fx}/images/broken.mp4 -o {tmp}/pr", ["broken.mp4"]),
    C("predict-checkpoint-missing", "predict {fx}/images/face.bmp --checkpoint {tmp}/gone.pt --device cpu "
      "-o {tmp}/pr", ["gone.pt"]),
    C("predict-checkpoint-text", "predict {fx}/images/face.bmp --checkpoint {fx}/plain.txt --device cpu "
      "-o {tmp}/pr", ["plain.txt"]),
    C("predict-out-is-file", "{P} {fx}/images/face.bmp -o {file}", ["taken.txt"]),
    C("predict-device-unknown", "{P} {fx}/images/face.bmp -o {tmp}/pr --device gpu0", ["--device"]),
    C("predict-image-ppm", "{P} {fx}/images/face.ppm -o {tmp}/pr", expect=OK),
    C("predict-image-webp", "{P} {fx}/images/face.webp -o {tmp}/pr", expect=OK),
    C("predict-image-tif", "{P} {fx}/images/face.tif -o {tmp}/pr", expect=OK),
    C("predict-folder-of-other-formats", "{P} {fx}/otherformats -o {tmp}/pr", expect=OK),
    # ---- the command line itself -------------------------------------------------------------------
    C("unknown-command", "rendr --n 2", ["rendr"]),
    C("unknown-option", "{R} --n 2 --out {D} --colour red", ["--colour"]),
]


# -- fixtures ------------------------------------------------------------------------------------------

CONFIGS = {
    "yaw_wide": "head_pose: {yaw_std: wide}",
    "focal_number": "camera: {focal_mm: 50}",
    "lights_reversed": "lighting: {num_lights: [3, 1]}",
    "lights_many": "lighting: {num_lights: [1, 5]}",
    "weights_zero": "background: {kinds: {solid: 0, gradient: 0, noise: 0, photo: 0, hdri: 0}}",
    "weight_negative": "background: {kinds: {solid: -1}}",
    "kind_plasma": "background: {kinds: {plasma: 1}}",
    "yaw_negative": "head_pose: {yaw_std: -5}",
    "behind_head": "camera: {face_fraction: [-1.0, 0.0]}",
    "modes_500": "identity: {num_modes: 500}",
    "wink": "expression: {groups: {wink: {prob: 0.5, weight: [0.2, 0.8], shapes: [eyeWink]}}}",
    "yaw_sd": "head_pose: {yaw_sd: 10}",
    "weather": "weather: {rain: 0.5}",
    "not_yaml": "head_pose: {yaw_std: [",
    "a_list": "- 1\n- 2",
    "prob": "expression: {neutral_prob: 1.5}",
    "yaw_max": "head_pose: {yaw_max: 200}",
    "yaw_bool": "head_pose: {yaw_std: true}",
    "frontal": "head_pose: {yaw_std: 5.0}",
}

SPEC_HEAD = "name: {name}\ndescription: bad spec for the sweep\nmodel: ict-facekit\n"
SPECS = {
    "notyaml": "name: broken\npoints: [\n",
    "emptyspec": "",
    "listspec": "- 1\n- 2\n",
    "nopoints": SPEC_HEAD.format(name="nopoints"),
}
# Edits of the built-in ibug68 spec, each breaking one thing: (file stem, old text, new text).
SPEC_EDITS = [
    ("colour", "model: ict-facekit\n", "model: ict-facekit\ncolour: red\n"),
    ("farvertex", "vertex: 966}", "vertex: 99999999}"),
    ("negvertex", "vertex: 966}", "vertex: -4}"),
    ("twice", "  - {name: jaw_08, group: jaw, vertex: 966}\n",
     "  - {name: jaw_08, group: jaw, vertex: 966}\n  - {name: jaw_08, group: jaw, vertex: 966}\n"),
]


def make_file_fixtures(fx: Path) -> None:
    """Everything a Python with numpy and cv2 can write (runs in the facegen under test's interpreter)."""
    os.environ.setdefault("OPENCV_IO_ENABLE_OPENEXR", "1")
    import cv2
    import numpy as np

    sys.path.insert(0, str(HERE))
    from toy_shards import write_toy_shards

    write_toy_shards(fx / "toy", 24, size=64, shard_size=8)
    (fx / "empty").mkdir()
    (fx / "plain.txt").write_text("just some text, not what was asked for\n")
    (fx / "broken.zip").write_bytes(b"PK\x03\x04 this is not really a zip")
    (fx / "broken.npz").write_bytes(b"PK\x03\x04 not an npz either")
    (fx / "junk-shards").mkdir()
    (fx / "junk-shards" / "shard-00000.h5").write_text("not HDF5\n")
    for sub, table in (("configs", CONFIGS), ("specs", SPECS)):
        (fx / sub).mkdir()
        for name, text in table.items():
            (fx / sub / f"{name}.yaml").write_text(text + ("\n" if text else ""))

    import facegen.landmark_specs

    ibug68 = (Path(facegen.landmark_specs.__file__).parent / "ibug68.yaml").read_text()
    for stem, old, new in SPEC_EDITS:
        assert old in ibug68, (stem, old)
        (fx / "specs" / f"{stem}.yaml").write_text(ibug68.replace(old, new, 1).replace("name: ibug68", f"name: {stem}", 1))

    photos = fx / "photos"
    photos.mkdir()
    cv2.imwrite(str(photos / "good.jpg"), np.full((40, 60, 3), 120, np.uint8))
    shutil.copytree(photos, fx / "corrupt-photos")
    (fx / "corrupt-photos" / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    hdris = fx / "hdris"
    hdris.mkdir()
    assert cv2.imwrite(str(hdris / "grey.exr"), np.full((32, 64, 3), 0.5, np.float32))
    shutil.copytree(hdris, fx / "corrupt-hdris")
    (fx / "corrupt-hdris" / "broken.exr").write_bytes(b"v/1\x01 truncated exr")

    # real faces (.pts + image) and broken variants, one folder each
    src = REAL_MINI / "lfpw" / "trainset"
    real = fx / "real"
    good = real / "good"
    good.mkdir(parents=True)
    for stem in ("image_0001", "image_0002"):
        shutil.copy(src / f"{stem}.pts", good)
        shutil.copy(src / f"{stem}.png", good)
    pts_text = (src / "image_0001.pts").read_text()
    image = cv2.imread(str(src / "image_0001.png"))
    lines = pts_text.splitlines()
    first = next(i for i, ln in enumerate(lines) if ln.strip() == "{") + 1
    variants = {
        "nan/nanpts": "\n".join(lines[:first] + ["nan " + lines[first].split()[1]] + lines[first + 1:]),
        "count/short67": "\n".join([ln.replace("68", "67") if ln.startswith("n_points") else ln
                                    for ln in lines[:first]] + lines[first:first + 67] + ["}"]),
        "brace/nobrace": "\n".join(ln for ln in lines if ln.strip() != "}"),
        "words/words": "\n".join(lines[:first] + ["left eye"] + lines[first + 1:]),
        "lonely/lonely": pts_text,
        "clean/nanpts": pts_text,
        "badimage/badimage": pts_text,
    }
    for key, text in variants.items():
        folder, stem = key.split("/")
        (real / folder).mkdir()
        (real / folder / f"{stem}.pts").write_text(text + "\n")
        if folder == "badimage":
            (real / folder / f"{stem}.png").write_bytes(b"\x89PNG\r\n\x1a\n broken")
        elif folder != "lonely":
            cv2.imwrite(str(real / folder / f"{stem}.png"), image)
    for ext in ("ppm", "bmp", "tif", "webp"):
        (real / ext).mkdir()
        (real / ext / f"face_{ext}.pts").write_text(pts_text)
        assert cv2.imwrite(str(real / ext / f"face_{ext}.{ext}"), image)

    images = fx / "images"
    images.mkdir()
    other = fx / "otherformats"
    other.mkdir()
    for ext in ("ppm", "bmp", "tif", "webp"):
        assert cv2.imwrite(str(images / f"face.{ext}"), image)
        if ext != "bmp":
            assert cv2.imwrite(str(other / f"face.{ext}"), image)
    (images / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    (images / "broken.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42 not a video")

    # JSON landmark lists
    js = fx / "json"
    js.mkdir()
    gt = json.loads((SPIGA / "300wpublic_test.json").read_text())[:10]
    gt10 = [{"imgpath": e["imgpath"], "landmarks": e["landmarks"]} for e in gt]
    (js / "gt10.json").write_text(json.dumps(gt10))

    def variant(name, fn):
        entries = json.loads(json.dumps(gt10))
        (js / name).write_text(json.dumps(fn(entries)))

    def xyz(es):
        for e in es:
            e["landmarks"] = [p + [0.0] for p in e["landmarks"]]
        return es

    def strings(es):
        for e in es:
            e["landmarks"] = [["left", "eye"] for _ in e["landmarks"]]
        return es

    def p67(es):
        for e in es:
            e["landmarks"] = e["landmarks"][:67]
        return es

    def ragged(es):
        es[3]["landmarks"] = es[3]["landmarks"][:60]
        return es

    def pnan(es):
        es[0]["landmarks"][30][0] = float("nan")
        return es

    variant("xyz.json", xyz)
    variant("strings.json", strings)
    variant("pred67.json", p67)
    variant("ragged.json", ragged)
    variant("pred5.json", lambda es: es[:5])
    variant("prednan.json", pnan)
    (js / "truncated.json").write_text('[{"imgpath": "a.jpg", "landmarks": [[1, 2], ')
    (js / "number.json").write_text("42\n")
    (js / "nolandmarks.json").write_text('[{"imgpath": "a.jpg", "points": [[1, 2]]}]\n')
    (js / "emptylist.json").write_text("[]\n")
    (js / "broken.json").write_text('{"test_subsets": {"helen": [0, 1, ')
    (js / "subsets_range.json").write_text('{"a": [0, 1, 99999]}\n')
    (js / "subsets_text.json").write_text('{"a": ["first", "second"]}\n')
    (js / "subsets_list.json").write_text("[0, 1, 2]\n")


# -- running ---------------------------------------------------------------------------------------------

@dataclass
class Result:
    code: int | str  # exit status, or "timeout"
    stdout: str
    stderr: str

    @property
    def text(self) -> str:
        return self.stdout + "\n" + self.stderr

    @property
    def traceback(self) -> bool:
        return "Traceback" in self.text

    short: str | None = None

    @property
    def message(self) -> str:
        if self.short is not None:
            return self.short
        """The line that says what went wrong: click's `Error:` line, a traceback's last line, or the
        first line of stderr (then stdout)."""
        err = re.search(r"(?<![\w])Error: [^\r\n]*", self.text)  # click's line (maybe after a progress bar)
        if err:
            return err.group(0).strip()
        if self.traceback:
            lines = self.text.splitlines()
            errors = [ln for ln in lines if re.match(r"[A-Za-z_][\w.]*(Error|Exception|Exit|Interrupt)\b", ln)]
            tail = errors or [ln for ln in lines if ln.strip() and not ln.startswith((" ", "\t"))]
            return tail[-1].strip() if tail else ""
        for stream in ((self.stdout, self.stderr) if self.code == 0 else (self.stderr, self.stdout)):
            first = [ln.strip() for ln in re.split(r"[\r\n]+", stream) if ln.strip()]
            if first:
                return first[0]
        return ""

    @message.setter
    def message(self, value: str) -> None:
        self.short = value


class Context:
    def __init__(self, facegen: Path, root: Path):
        self.exe = facegen
        self.root = root
        self.fx = root / "fx"
        self.python = self._interpreter()
        self._built: dict[str, Path] = {}

    def _interpreter(self) -> str:
        first = self.exe.read_bytes()[:200].split(b"\n")[0].decode(errors="replace")
        if first.startswith("#!"):
            cand = first[2:].strip().split()[0]
            if Path(cand).exists():
                return cand
        return sys.executable

    # fixtures built on first use
    def build_files(self) -> None:
        self.fx.mkdir(parents=True)
        res = subprocess.run([self.python, str(Path(__file__).resolve()), "--_make-fixtures", str(self.fx)],
                             capture_output=True, text=True, timeout=TIMEOUT_S)
        if res.returncode != 0:
            sys.exit(f"building the fixtures failed:\n{res.stdout}\n{res.stderr}")

    def finished(self) -> Path:
        if "finished" not in self._built:
            out = self.fx / "finished"
            res = self._run(shlex.split(expand(f"{{FIN}} --n 4 --out {out}")), self.root, {})
            if res.code != 0:
                sys.exit(f"fixture: the finished render failed (exit {res.code}): {res.text[-2000:]}")
            self._built["finished"] = out
        return self._built["finished"]

    def checkpoint(self) -> Path:
        if "ckpt" not in self._built:
            run = self.fx / "run"
            args = expand("{TD}").replace("{toy}", str(self.fx / "toy")).replace("{tmp}/run", str(run))
            res = self._run(shlex.split(args), self.root, {})
            if res.code != 0 or not (run / "last.pt").exists():
                sys.exit(f"fixture: the 2-step training failed (exit {res.code}): {res.text[-2000:]}")
            self._built["ckpt"] = run / "last.pt"
        return self._built["ckpt"]

    def fill(self, text: str, case: Case) -> str:
        tmp = case.state["tmp"]
        text = expand(text)
        if "{fin}" in text and not (tmp / "fin").exists():
            shutil.copytree(self.finished(), tmp / "fin")
        if "{ckpt}" in text:
            text = text.replace("{ckpt}", str(self.checkpoint()))
        if "{file}" in text:
            f = tmp / "taken.txt"
            if not f.exists():
                f.write_text("a file the user already has\n")
        if "{dir}" in text:
            (tmp / "taken").mkdir(exist_ok=True)
        return (text.replace("{tmp}", str(tmp)).replace("{fin}", str(tmp / "fin")).replace("{fx}", str(self.fx))
                .replace("{toy}", str(self.fx / "toy")).replace("{spiga}", str(SPIGA))
                .replace("{file}", str(tmp / "taken.txt")).replace("{dir}", str(tmp / "taken")))

    def _run(self, argv: list[str], cwd: Path, env: dict) -> Result:
        full_env = {**os.environ, **env}
        try:
            res = subprocess.run([str(self.exe), *argv], cwd=cwd, env=full_env, capture_output=True, text=True,
                                 stdin=subprocess.DEVNULL, timeout=TIMEOUT_S, errors="replace")
            return Result(res.returncode, res.stdout, res.stderr)
        except subprocess.TimeoutExpired as e:
            out = e.stdout.decode(errors="replace") if isinstance(e.stdout, bytes) else (e.stdout or "")
            err = e.stderr.decode(errors="replace") if isinstance(e.stderr, bytes) else (e.stderr or "")
            return Result("timeout", out, err + f"\n(still running after {TIMEOUT_S} s: killed)")

    def facegen(self, args: str, case: Case) -> Result:
        env = {k: self.fill(v, case) for k, v in case.env.items()}
        return self._run(shlex.split(self.fill(args, case)), case.state["tmp"], env)


def classify(case: Case, res: Result, problem: str | None) -> tuple[str, str]:
    """(class, note)."""
    if case.expect == OK:
        if res.code != 0:
            return "wrong", f"a valid input failed (exit {res.code})"
        if problem:
            return "wrong", problem
        return "clear", "succeeded as it should"
    if res.code == 0:
        if problem is None and getattr(case.check, "noop_ok", False):
            return "clear", "exit 0 and nothing finished was changed"
        return "wrong", problem or "exit 0: the bad input was accepted"
    if res.code == "timeout":
        return "wrong", "still running at the time limit: the bad input was not refused"
    if problem:
        return "wrong", problem
    if res.traceback:
        return "unclear", "Python traceback"
    low = res.text.lower()
    missing = [n for n in case.names if n.lower() not in low]
    if missing:
        return "unclear", "message does not name " + ", ".join(missing)
    return "clear", ""


def run_case(ctx: Context, case: Case, root: Path) -> tuple[str, Result, str]:
    tmp = root / "cases" / re.sub(r"[^A-Za-z0-9_.-]", "_", case.id)
    tmp.mkdir(parents=True)
    case.state = {"tmp": tmp}
    if "{fin}" in case.args:
        ctx.fill("{fin}", case)
    check = case.check
    if check is None and case.expect != OK and "{fin}" in case.args:
        check = unchanged("{fin}")  # a failing command never touches finished shards
    if case.setup is not None:
        problem = case.setup.fn(ctx, case)
        if problem:
            return "wrong", Result("setup", "", problem), problem
    if check is not None and check.before is not None:
        check.before(ctx, case)
    res = ctx.facegen(case.args, case)
    case.result = res
    problem = check.fn(ctx, case) if check is not None else None
    cls, note = classify(case, res, problem)
    if check is not None and check is not case.check:
        case.state["auto_check"] = check.desc
    return cls, res, note


def shorten(text: str, ctx: Context, case: Case) -> str:
    """A message with the temporary paths written as their placeholders."""
    return (text.replace(str(case.state["tmp"]), "{tmp}").replace(str(ctx.fx), "{fx}")
            .replace(str(ctx.root), "{root}").replace(str(SPIGA), "{spiga}"))


def md_escape(s: str) -> str:
    return s.replace("|", "\\|").replace("\n", " ")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--facegen", required=True, type=Path, help="the facegen executable to test")
    ap.add_argument("--only", default=None, help="run the cases whose id contains this")
    ap.add_argument("--report", type=Path, default=None, help="write a markdown report here")
    ap.add_argument("--keep", action="store_true", help="keep the temporary folder (printed)")
    ap.add_argument("--list", action="store_true", help="list the case ids and exit")
    ap.add_argument("--_make-fixtures", dest="make_fixtures", type=Path, help=argparse.SUPPRESS)
    if argv is None and "--_make-fixtures" in sys.argv:
        i = sys.argv.index("--_make-fixtures")
        make_file_fixtures(Path(sys.argv[i + 1]))
        return 0
    args = ap.parse_args(argv)
    ids = [c.id for c in CASES]
    dupes = {i for i in ids if ids.count(i) > 1}
    assert not dupes, f"duplicate case ids: {dupes}"
    cases = [c for c in CASES if args.only is None or args.only in c.id]
    if args.list:
        for c in cases:
            print(f"{c.id:<40} {c.expect:<4} {c.args}")
        return 0
    exe = args.facegen.expanduser()
    exe = exe if exe.is_absolute() else Path.cwd() / exe
    if not exe.exists():
        sys.exit(f"--facegen {exe}: no such file")
    root = Path(tempfile.mkdtemp(prefix="facegen-sweep-"))
    ctx = Context(exe, root)
    t0 = time.perf_counter()
    ctx.build_files()
    rows = []
    counts = {"clear": 0, "unclear": 0, "wrong": 0}
    try:
        for case in cases:
            t = time.perf_counter()
            cls, res, note = run_case(ctx, case, root)
            counts[cls] += 1
            msg = res.message = shorten(res.message, ctx, case)
            note = shorten(note, ctx, case)
            print(f"{case.id:<40} {cls:<8} exit={res.code!s:<7} {msg[:160]}"
                  + (f"  [{note}]" if note and cls != "clear" else "") + f"  ({time.perf_counter() - t:.1f} s)",
                  flush=True)
            rows.append((case, cls, res, note))
    finally:
        total = sum(counts.values())
        summary = (f"tried {total}, clear {counts['clear']}, unclear {counts['unclear']}, wrong {counts['wrong']}"
                   f"  ({time.perf_counter() - t0:.0f} s)")
        print(summary)
        if args.report:
            write_report(args.report, exe, rows, summary)
        if args.keep:
            print(f"kept {root}")
        else:
            shutil.rmtree(root, ignore_errors=True)
    return 0


def write_report(path: Path, exe: Path, rows, summary: str) -> None:
    where = f"facegen: `{exe}`"
    repo = exe.parent.parent.parent  # REPO/.venv/bin/facegen
    try:
        head = subprocess.run(["git", "-C", str(repo), "log", "-1", "--format=%h %s"], capture_output=True,
                              text=True, timeout=10)
        if head.returncode == 0 and head.stdout.strip():
            dirty = subprocess.run(["git", "-C", str(repo), "status", "--porcelain", "--untracked-files=no"],
                                   capture_output=True, text=True, timeout=10).stdout.strip()
            where += f" (checkout {repo} at {head.stdout.strip()}{', with local changes' if dirty else ''})"
    except (OSError, subprocess.SubprocessError):
        pass
    lines = ["# facegen bad-input sweep", "", f"{where}, {time.strftime('%Y-%m-%d %H:%M')}  ", f"{summary}", "",
             "Placeholders in the args:", *[f"- `{k}`: {v}" for k, v in PLACEHOLDERS.items()], "",
             "| id | args | expect | must name | setup / check | class | exit | message | note |",
             "|---|---|---|---|---|---|---|---|---|"]
    for case, cls, res, note in rows:
        sc = " / ".join(x for x in (case.setup.desc if case.setup else "",
                                    case.check.desc if case.check else case.state.get("auto_check", "")) if x)
        if case.env:
            sc = (sc + "; " if sc else "") + "env " + ", ".join(f"{k}={v}" for k, v in case.env.items())
        lines.append("| " + " | ".join(md_escape(x) for x in (
            case.id, f"`{case.args}`", case.expect, ", ".join(f"`{n}`" for n in case.names), sc, f"**{cls}**",
            str(res.code), res.message[:200], note)) + " |")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    sys.exit(main())
