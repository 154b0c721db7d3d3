"""Trusting a render folder: one job per folder (DIR/render.lock), finished shards verified (sizes and
checksums in the manifest; render re-runs re-render damaged shards, `facegen verify` checks fully, the
readers refuse a shard of the wrong size), and a full disk leaves no partial file and loses nothing.
Real raster render jobs at 64 px (one with two worker processes); the shards are real files."""

from __future__ import annotations

import errno
import json
import multiprocessing as mp
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

import facegen
from facegen.cli import main
from facegen.errors import FacegenError
from facegen.generator import lock
from facegen.shards import HDF5_SIGNATURE, PARTIAL_SUFFIX, file_sha256, shard_problem

ARGS = ["--spec", "ibug68", "--renderer", "raster", "--size", "64", "--quiet", "--shard-size", "2", "--seed", "1",
        "--n", "4"]


def render(out: Path, *extra: str, **kw):
    return CliRunner().invoke(main, ["render", "--out", str(out), *ARGS, *extra], **kw)


def manifest(folder: Path) -> dict:
    return json.loads((folder / "manifest.json").read_text())


def shard_bytes(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.glob("shard-*.h5"))}


@pytest.fixture(scope="module")
def finished(tmp_path_factory, face_model) -> Path:
    """A finished 4-sample job in two shards."""
    out = tmp_path_factory.mktemp("trust") / "job"
    result = render(out)
    assert result.exit_code == 0, result.output
    return out


@pytest.fixture
def job(finished, tmp_path) -> Path:
    """A copy of the finished job to damage."""
    out = tmp_path / "job"
    shutil.copytree(finished, out)
    return out


def dead_pid() -> int:
    """The pid of a process that has ended."""
    p = subprocess.Popen([sys.executable, "-c", "pass"])
    p.wait()
    return p.pid


# -- one job per folder ------------------------------------------------------------------------------

def test_the_manifest_records_each_shards_size_and_checksum(finished):
    entries = manifest(finished)["shards"]
    assert [e["file"] for e in entries] == ["shard-00000.h5", "shard-00001.h5"]
    for e in entries:
        path = finished / e["file"]
        assert e["size"] == path.stat().st_size and e["sha256"] == file_sha256(path)
        assert path.read_bytes()[:8] == HDF5_SIGNATURE
    assert not (finished / lock.LOCK_NAME).exists()  # released (deleted) when the job ended


def test_a_second_job_stops_at_once_and_the_running_one_finishes(finished, tmp_path):
    """A real job in a subprocess, frozen (SIGSTOP) once it holds the folder so that it is certainly still
    running; a second job into the same folder stops with a message naming the folder and the first job."""
    out = tmp_path / "busy"
    env = {k: v for k, v in os.environ.items() if k != "FACEGEN_TEST_FAULT"}
    first = subprocess.Popen([sys.executable, "-m", "facegen.cli", "render", "--out", str(out), *ARGS[:-1], "16"],
                             env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                             start_new_session=True)
    try:
        deadline = time.monotonic() + 120
        while not (out / lock.LOCK_NAME).exists() or not (out / lock.LOCK_NAME).read_text().strip():
            assert first.poll() is None, first.communicate()
            assert time.monotonic() < deadline, "the first job never took the lock"
            time.sleep(0.05)
        os.killpg(first.pid, signal.SIGSTOP)
        record = json.loads((out / lock.LOCK_NAME).read_text())
        assert record["pid"] == first.pid and record["host"] == socket.gethostname()
        before = {p.name: p.stat().st_mtime_ns for p in out.iterdir()}
        started = time.monotonic()
        result = render(out, "--n", "16")
        seconds = time.monotonic() - started
        print(f"second job: exit {result.exit_code} after {seconds:.1f} s: {result.output.strip()}")
        assert result.exit_code == 2, result.output
        for words in (f"--out {out} is being written by another render job", f"pid {first.pid}",
                      f"host {socket.gethostname()}", "choose another --out", "Nothing was changed"):
            assert words in result.output, result.output
        assert "Traceback" not in result.output and "BlockingIOError" not in result.output
        assert {p.name: p.stat().st_mtime_ns for p in out.iterdir()} == before  # the first job untouched
    finally:
        os.killpg(first.pid, signal.SIGCONT)
    _, stderr = first.communicate(timeout=300)
    assert first.returncode == 0, stderr
    assert len(facegen.open_shards(out)) == 16 and not (out / lock.LOCK_NAME).exists()
    assert CliRunner().invoke(main, ["verify", str(out)]).exit_code == 0


def _hold(held: lock.InheritedLock, conn) -> None:
    """A spawned process holding a folder lock it was given, like a render worker, until told to go."""
    conn.send("holding")
    conn.recv()


def test_worker_processes_hold_the_lock_until_they_end(tmp_path):
    """A worker left running by a killed job keeps the folder locked; once it ends, the lock file is
    taken over (its job's pid is gone)."""
    held = lock.acquire(tmp_path, ["facegen", "render", "(test)"])
    ctx = mp.get_context("spawn")
    job_end, worker_end = ctx.Pipe()
    worker = ctx.Process(target=_hold, args=(held.for_workers(), worker_end))
    worker.start()
    assert job_end.recv() == "holding"
    record = json.loads(held.path.read_text())
    held.path.write_text(json.dumps({**record, "pid": dead_pid()}))  # as if the job's process had been killed
    os.close(held.fd)  # its own descriptor goes with it, without deleting the file
    with pytest.raises(FacegenError, match="its render workers are stopping"):
        lock.acquire(tmp_path)
    job_end.send("go")
    worker.join(30)
    taken = lock.acquire(tmp_path)
    assert taken.took_over and "no longer running" in taken.took_over
    taken.release()
    assert not (tmp_path / lock.LOCK_NAME).exists()


def test_a_killed_jobs_workers_keep_the_folder_until_they_end(tmp_path):
    """The real executor: kill -9 of a two-worker job's own process while its workers are frozen
    mid-shard. The workers still hold the folder (a new job is refused: they are stopping); once they
    run again they stop (PR_SET_PDEATHSIG), and the same command takes the folder over and completes."""
    from tests.test_render_workers import worker_pids

    out = tmp_path / "killed"
    env = {k: v for k, v in os.environ.items() if k != "FACEGEN_TEST_FAULT"}
    command = [sys.executable, "-m", "facegen.cli", "render", "--out", str(out), *ARGS[:-1], "24",
               "--shard-size", "6", "--workers", "2"]
    job = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while len(list(out.glob(f"*{PARTIAL_SUFFIX}"))) < 2 or len(worker_pids(job.pid)) < 2:
        assert job.poll() is None and time.monotonic() < deadline, "the workers never started a shard"
        time.sleep(0.01)
    workers = worker_pids(job.pid)
    for pid in workers:
        os.kill(pid, signal.SIGSTOP)
    os.kill(job.pid, signal.SIGKILL)
    job.wait()
    try:
        result = render(out, "--n", "24", "--shard-size", "6")
        assert result.exit_code == 2, result.output
        assert f"pid {job.pid}" in result.output and "render workers are stopping" in result.output
    finally:
        for pid in workers:
            os.kill(pid, signal.SIGCONT)
    deadline = time.monotonic() + 60
    while lock.holder(out) is not None:
        assert time.monotonic() < deadline, "the workers never let go of the folder"
        time.sleep(0.05)
    result = render(out, "--n", "24", "--shard-size", "6")
    assert result.exit_code == 0, result.output
    assert f"took over the lock left by render job pid {job.pid}" in result.output
    assert len(facegen.open_shards(out)) == 24


def test_a_stale_lock_is_taken_over_on_this_host_and_refused_from_another(job):
    path = job / lock.LOCK_NAME
    stale = {"pid": 4242, "host": "render-box-7", "started": "2026-01-01 00:00:00 UTC", "command": "facegen render"}
    path.write_text(json.dumps(stale))  # left by a job on another host
    result = render(job)
    assert result.exit_code == 2, result.output
    for words in (str(path), "render-box-7", "pid 4242", f"delete {path}"):
        assert words in result.output, result.output
    assert path.exists()  # left for the user to judge
    pid = dead_pid()
    path.write_text(json.dumps({**stale, "pid": pid, "host": socket.gethostname()}))  # a killed job, this host
    result = render(job)
    assert result.exit_code == 0, result.output
    assert f"took over the lock left by render job pid {pid}" in result.output
    assert not path.exists()


# -- finished shards are verified ----------------------------------------------------------------------

def test_a_truncated_shard_is_refused_by_readers_found_by_verify_and_rendered_again(finished, job):
    from facegen.trainer.datasets import ShardDataset

    original = shard_bytes(finished)
    damaged = job / "shard-00001.h5"
    damaged.write_bytes(original["shard-00001.h5"][: len(original["shard-00001.h5"]) // 2])
    size = damaged.stat().st_size
    for read in (facegen.open_shards, lambda d: ShardDataset([d])):
        with pytest.raises(FacegenError) as e:
            read(job)
        assert str(damaged) in e.value.message and "truncated or damaged" in e.value.message
        assert "Re-run the render command" in e.value.message
    result = CliRunner().invoke(main, ["verify", str(job)])
    assert result.exit_code == 1, result.output
    assert "shard-00000.h5  ok" in result.output
    assert f"shard-00001.h5  DAMAGED: {size} bytes but the manifest records" in result.output
    assert "re-run the render command" in result.output
    result = render(job)  # the same command again
    assert result.exit_code == 0, result.output
    assert f"{damaged}: {size} bytes but the manifest records" in result.output
    assert "rendering its samples 2-3 again" in result.output
    assert shard_bytes(job) == original  # the same bytes as before the damage
    assert manifest(job) == manifest(finished)
    assert CliRunner().invoke(main, ["verify", str(job)]).output.endswith("all 2 shards intact\n")


def test_verify_finds_damage_that_keeps_the_size(finished, job):
    result = CliRunner().invoke(main, ["verify", str(job)])
    assert result.exit_code == 0 and "all 2 shards intact" in result.output, result.output
    path = job / "shard-00000.h5"
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF  # one flipped byte in an image chunk
    path.write_bytes(bytes(data))
    result = CliRunner().invoke(main, ["verify", str(job)])
    assert result.exit_code == 1, result.output
    assert "shard-00000.h5  DAMAGED: its sha256 differs from the manifest's" in result.output
    assert f"rm {path}" in result.output
    path.unlink()  # as the message says
    assert render(job).exit_code == 0
    assert shard_bytes(job) == shard_bytes(finished)


def test_the_cheap_check_without_recorded_sizes(finished, job):
    """Manifests written before sizes were recorded: the HDF5 header's own end-of-file address still
    catches a cut shard, and a file that is not HDF5 at all is caught by its first bytes."""
    entry = {k: v for k, v in manifest(finished)["shards"][1].items() if k != "size"}
    path = job / entry["file"]
    assert shard_problem(path, entry) is None
    data = path.read_bytes()
    path.write_bytes(data[:-100])
    assert "HDF5 header says" in shard_problem(path, entry)
    path.write_bytes(b"\0" * len(data))
    assert "HDF5's signature" in shard_problem(path, entry)
    assert shard_problem(job / "shard-00009.h5", entry) == "missing"


# -- a full disk -------------------------------------------------------------------------------------

def _full_disk_at(monkeypatch, stage: str) -> None:
    """Make the write of the job's second shard (or of the manifest recording it) fail with ENOSPC at
    `stage`, as a full disk would; what was written before the failure stays on disk."""
    import facegen.shards as shards

    def enospc(path):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))

    if stage == "create":  # the file is made, then its first write fails
        real_file = shards.h5py.File

        def create(name, mode="r", **kw):
            if str(name).endswith("shard-00001.h5" + PARTIAL_SUFFIX):
                Path(name).write_bytes(HDF5_SIGNATURE)
                enospc(name)
            return real_file(name, mode, **kw)
        monkeypatch.setattr(shards.h5py, "File", create)
    elif stage == "image":  # mid-shard: the second shard's second image
        real_add = shards.ShardWriter.add

        def add(self, sample):
            if self.path.name == "shard-00001.h5" and self.count == 1:
                enospc(self.tmp)
            return real_add(self, sample)
        monkeypatch.setattr(shards.ShardWriter, "add", add)
    elif stage == "flush":  # closing the complete file (HDF5 flushes its metadata)
        real_close = shards.ShardWriter.close

        def close(self):
            if self.path.name == "shard-00001.h5":
                close_file = self.file.close
                self.file.close = lambda: (close_file(), enospc(self.tmp))
            return real_close(self)
        monkeypatch.setattr(shards.ShardWriter, "close", close)
    elif stage == "manifest":  # the manifest update that records the second shard
        real_write_text = Path.write_text

        def write_text(self, text, *args, **kw):
            if self.name == "manifest.json" + PARTIAL_SUFFIX and "shard-00001.h5" in text:
                real_write_text(self, text[: len(text) // 2])
                enospc(self)
            return real_write_text(self, text, *args, **kw)
        monkeypatch.setattr(Path, "write_text", write_text)


@pytest.mark.parametrize("stage", ["create", "image", "flush", "manifest"])
def test_a_full_disk_leaves_no_partial_file_and_loses_no_finished_shard(finished, tmp_path, monkeypatch, stage):
    out = tmp_path / "full"
    with monkeypatch.context() as m:
        _full_disk_at(m, stage)
        result = render(out)
    print(f"disk full at {stage}: exit {result.exit_code}: {result.output.strip()}")
    assert result.exit_code in (1, 2) and "Traceback" not in result.output
    assert "No space left on device" in result.output and "run the same command again" in result.output
    assert not list(out.glob(f"*{PARTIAL_SUFFIX}"))
    assert not (out / lock.LOCK_NAME).exists()
    assert [e["file"] for e in manifest(out)["shards"]] == ["shard-00000.h5"]  # the finished shard kept
    assert (out / "shard-00000.h5").read_bytes() == (finished / "shard-00000.h5").read_bytes()
    result = render(out)  # space freed: the same command completes the job
    assert result.exit_code == 0, result.output
    assert shard_bytes(out) == shard_bytes(finished)
    assert CliRunner().invoke(main, ["verify", str(out)]).exit_code == 0
