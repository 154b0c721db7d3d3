"""Render jobs with several worker processes: both renderers work with any worker count, the same seed
gives the same shards, and a worker that raises, dies or is interrupted ends the job at once with its
own error, leaving the folder resumable. Jobs run as real `facegen render` processes."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from facegen.shards import PARTIAL_SUFFIX

RASTER = ["--spec", "ibug68", "--renderer", "raster", "--size", "64", "--quiet"]
SMALL = dict(n=8, shard_size=2)  # four shards
LONG = dict(n=400, shard_size=100)  # long enough to catch a worker mid-shard


def render_command(out: Path, n: int, shard_size: int, workers: int, extra=RASTER) -> list[str]:
    return [sys.executable, "-m", "facegen.cli", "render", "--out", str(out), "--n", str(n),
            "--shard-size", str(shard_size), "--workers", str(workers), *extra]


def run(command, fault: str | None = None, timeout: float = 300) -> tuple[subprocess.CompletedProcess, float]:
    env = dict(os.environ)
    env.pop("FACEGEN_TEST_FAULT", None)
    if fault:
        env["FACEGEN_TEST_FAULT"] = fault
    start = time.monotonic()
    result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=timeout)
    return result, time.monotonic() - start


def shard_bytes(folder: Path) -> dict[str, str]:
    """Each shard's sha256 (short to print when two folders differ)."""
    import hashlib

    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest()[:12] for p in sorted(folder.glob("shard-*.h5"))}


def manifest_files(folder: Path) -> list[str]:
    return [s["file"] for s in json.loads((folder / "manifest.json").read_text())["shards"]]


def reference_renders(tmp_path_factory, jobs: dict[str, dict]) -> dict[str, Path]:
    """Each job (name -> n and shard_size) rendered cleanly by two local workers (the same bytes as one,
    tested below): the folders to compare other runs with."""
    folders = {}
    for name, size in jobs.items():
        folders[name] = tmp_path_factory.mktemp("reference") / name
        result, _ = run(render_command(folders[name], workers=2, **size))
        assert result.returncode == 0, result.stderr
    return folders


@pytest.fixture(scope="module")
def reference(tmp_path_factory, face_model) -> dict[str, Path]:
    """Clean renders to compare resumed jobs with."""
    return reference_renders(tmp_path_factory, {"small": SMALL, "long": LONG})


def test_one_and_two_raster_workers_give_the_same_shards(reference, tmp_path):
    result, _ = run(render_command(tmp_path / "one", workers=1, **SMALL))
    assert result.returncode == 0, result.stderr
    assert shard_bytes(tmp_path / "one") == shard_bytes(reference["small"])


def test_a_worker_failing_at_start_ends_the_job_and_the_folder_stays_usable(reference, tmp_path):
    out = tmp_path / "d"
    result, seconds = run(render_command(out, workers=2, **SMALL), fault="start")
    print(f"worker fails at start: exit {result.returncode} after {seconds:.1f} s: {result.stderr.strip()}")
    assert result.returncode == 1
    assert "while starting" in result.stderr and "FACEGEN_TEST_FAULT=start" in result.stderr
    assert "Traceback" not in result.stderr
    assert seconds < 60  # the pool used to respawn failing workers forever
    result, _ = run(render_command(out, workers=2, **SMALL))
    assert result.returncode == 0, result.stderr
    assert shard_bytes(out) == shard_bytes(reference["small"])


@pytest.mark.parametrize("workers", [1, 2])
def test_a_worker_failing_mid_shard_names_the_shard_and_keeps_finished_ones(reference, tmp_path, workers):
    out = tmp_path / "d"
    result, seconds = run(render_command(out, workers=workers, **SMALL), fault="shard:1")
    print(f"{workers} worker(s), shard 1 fails: exit {result.returncode} after {seconds:.1f} s: {result.stderr.strip()}")
    assert result.returncode == 1
    assert "shard-00001.h5 (samples 2-3)" in result.stderr and "FACEGEN_TEST_FAULT=shard:1" in result.stderr
    assert "run the same command" in result.stderr and "Traceback" not in result.stderr
    kept = manifest_files(out)
    assert "shard-00001.h5" not in kept and not (out / "shard-00001.h5").exists()
    if workers == 1:
        assert kept == ["shard-00000.h5"]  # rendered before the failing shard
    for name in kept:  # finished shards are whole and stay
        assert (out / name).read_bytes() == (reference["small"] / name).read_bytes()
    result, _ = run(render_command(out, workers=workers, **SMALL))
    assert result.returncode == 0, result.stderr
    assert shard_bytes(out) == shard_bytes(reference["small"])


def worker_pids(parent: int) -> list[int]:
    """The spawned render workers of process `parent` (not multiprocessing's resource tracker)."""
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            cmdline = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        if ppid == parent and b"spawn_main" in cmdline:
            pids.append(int(entry.name))
    return pids


def start_and_wait_for_a_shard(out: Path, command) -> tuple[subprocess.Popen, list[int]]:
    env = {k: v for k, v in os.environ.items() if k != "FACEGEN_TEST_FAULT"}
    # SIGINT as a terminal gives it, even when the suite itself runs in the background (`make test &`
    # ignores SIGINT, and the job would inherit that and rightly keep ignoring it).
    job = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                           preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    deadline = time.monotonic() + 120
    # Both workers rendering: only then has the job certainly left the start of its workers, where
    # it ignores SIGINT (executors/local.py, _sigint_ignored).
    while len(list(out.glob(f"*{PARTIAL_SUFFIX}"))) < 2 or len(worker_pids(job.pid)) < 2:
        assert job.poll() is None, job.communicate()
        assert time.monotonic() < deadline, "no shard started"
        time.sleep(0.01)
    return job, worker_pids(job.pid)


def gone(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    return stat.rsplit(")", 1)[1].split()[0] == "Z"


def test_a_killed_worker_ends_the_job_within_seconds(reference, tmp_path):
    out = tmp_path / "d"
    job, pids = start_and_wait_for_a_shard(out, render_command(out, workers=2, **LONG))
    os.kill(pids[0], signal.SIGKILL)
    killed = time.monotonic()
    _, stderr = job.communicate(timeout=120)
    seconds = time.monotonic() - killed
    print(f"kill -9 of worker {pids[0]}: exit {job.returncode} after {seconds:.1f} s: {stderr.strip()}")
    assert job.returncode == 1
    assert f"render worker {pids[0]} was killed by SIGKILL" in stderr and "shard-0000" in stderr
    assert seconds < 20
    assert all(gone(pid) for pid in pids)
    for name in manifest_files(out):
        assert (out / name).read_bytes() == (reference["long"] / name).read_bytes()
    result, _ = run(render_command(out, workers=2, **LONG))
    assert result.returncode == 0, result.stderr
    assert shard_bytes(out) == shard_bytes(reference["long"])


def test_ctrl_c_stops_every_worker_and_the_job_resumes(reference, tmp_path):
    out = tmp_path / "d"
    job, pids = start_and_wait_for_a_shard(out, render_command(out, workers=2, **LONG))
    job.send_signal(signal.SIGINT)  # to the job only: it must stop its workers itself
    _, stderr = job.communicate(timeout=60)
    print(f"Ctrl-C: exit {job.returncode}: {stderr.strip()}")
    assert job.returncode == 130 and "interrupted" in stderr and "Traceback" not in stderr
    assert all(gone(pid) for pid in pids)
    assert not list(out.glob(f"*{PARTIAL_SUFFIX}"))  # stopped workers delete their half shards
    result, _ = run(render_command(out, workers=2, **LONG))
    assert result.returncode == 0, result.stderr
    assert shard_bytes(out) == shard_bytes(reference["long"])


@pytest.mark.blender
def test_cycles_with_two_workers(face_model, tmp_path):
    """Two Cycles workers, two shards: it finishes, the job's own process never imports bpy (spawned
    workers inherit its sys.path, which bpy fills with Blender's script folders, and then fail to
    import bpy), workers cope when the caller imported bpy all the same, and the shards hold the same
    bytes as one worker's: Cycles' noise depends neither on the render thread count nor on what a
    process rendered before."""
    pytest.importorskip("bpy")
    script = textwrap.dedent(f"""
        import sys, facegen
        job = dict(spec="ibug68", n=4, size=48, shard_size=2, workers=2, renderer="cycles", progress=False)
        facegen.render(out={str(tmp_path / "two")!r}, **job)
        print("bpy imported by the job:", "bpy" in sys.modules)
        import bpy
        facegen.render(out={str(tmp_path / "after-bpy")!r}, **job)
    """)
    start = time.monotonic()
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=600)
    print(f"cycles, 2 workers: {time.monotonic() - start:.1f} s")
    assert result.returncode == 0, result.stderr
    assert "bpy imported by the job: False" in result.stdout
    one, _ = run(render_command(tmp_path / "one", n=4, shard_size=2, workers=1,
                                extra=["--spec", "ibug68", "--renderer", "cycles", "--size", "48", "--quiet"]))
    assert one.returncode == 0, one.stderr
    assert manifest_files(tmp_path / "two") == ["shard-00000.h5", "shard-00001.h5"]
    assert shard_bytes(tmp_path / "two") == shard_bytes(tmp_path / "one") == shard_bytes(tmp_path / "after-bpy")
