"""`facegen render --executor ray` on a real local Ray cluster (started by each job): the shards are
byte-identical to the local executor's, whether they travel back to the job or the actors write them
(--shared-fs); an actor killed with SIGKILL mid-shard, or a whole node removed from a two-node cluster
(tests/ray_cluster_jobs.py), costs only that shard, rendered again, and leaves no scratch file behind; worker
nodes need no face model; a node that runs other code stops the job before rendering; an error in an actor
ends the job naming the shard; a killed job resumes. Jobs run as real `facegen render` processes."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from facegen.generator.executors.ray_cluster import SCRATCH_PREFIX
from facegen.shards import PARTIAL_SUFFIX
from tests.test_render_workers import (RASTER, SMALL, manifest_files, reference_renders, render_command, run,
                                      shard_bytes)

RAY = [*RASTER, "--executor", "ray"]
MEDIUM = dict(n=240, shard_size=60)  # four shards, each long enough (~10 s on 2 CPUs) to be caught mid-way


@pytest.fixture(scope="module")
def local(tmp_path_factory, face_model) -> dict[str, Path]:
    """The same jobs with the local executor, to compare with."""
    return reference_renders(tmp_path_factory, {"small": SMALL, "medium": MEDIUM})


def entries(folder: Path) -> list[dict]:
    return json.loads((folder / "manifest.json").read_text())["shards"]


@pytest.mark.parametrize("mode", [[], ["--shared-fs"]], ids=["shards-sent-back", "shared-fs"])
def test_ray_renders_the_local_executors_shards(local, tmp_path, mode):
    out = tmp_path / "ray"
    result, seconds = run(render_command(out, workers=2, extra=[*RAY, *mode], **SMALL))
    print(f"ray {mode or 'sent back'}: {seconds:.1f} s")
    assert result.returncode == 0, result.stderr
    assert shard_bytes(out) == shard_bytes(local["small"])
    assert entries(out) == entries(local["small"])  # the manifest too: sizes and checksums
    assert not list(out.glob(f"*{PARTIAL_SUFFIX}"))


def ray_actors(busy: bool = True) -> list[int]:
    """Pids of this machine's render actors (Ray titles a process by the method it runs)."""
    title = b"ray::ShardRenderer.render" if busy else b"ray::ShardRenderer"
    pids = []
    for entry in Path("/proc").iterdir():
        try:
            if entry.name.isdigit() and (entry / "cmdline").read_bytes().startswith(title):
                pids.append(int(entry.name))
        except OSError:
            continue
    return pids


def start_job(command, **env) -> subprocess.Popen:
    env = {**{k: v for k, v in os.environ.items() if k != "FACEGEN_TEST_FAULT"}, **env}
    return subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def wait_for(condition, job: subprocess.Popen | None, what: str, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert job is None or job.poll() is None, job.communicate()
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


@pytest.fixture
def node_tmp():
    """A $TMPDIR of its own for a job and its Ray (short: Ray puts its sockets there), holding the
    actors' scratch folders."""
    folder = Path(tempfile.mkdtemp(prefix="fg-", dir="/tmp"))
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


def test_an_actor_killed_mid_shard_costs_only_that_shard(local, tmp_path, node_tmp):
    out = tmp_path / "ray"
    job = start_job(render_command(out, workers=2, extra=RAY, **MEDIUM), TMPDIR=str(node_tmp))
    # an actor is mid-shard once the shard file in its scratch folder has images in it
    scratch = f"{SCRATCH_PREFIX}*/*{PARTIAL_SUFFIX}"
    wait_for(lambda: ray_actors() and any(p.stat().st_size > 100_000 for p in node_tmp.glob(scratch)),
             job, "an actor rendering")
    victim = ray_actors()[0]
    os.kill(victim, signal.SIGKILL)
    _, stderr = job.communicate(timeout=300)
    print(f"kill -9 of actor {victim}: exit {job.returncode}: {stderr.strip()[-600:]}")
    assert job.returncode == 0, stderr
    assert "render actor died while rendering shard-0000" in stderr and "attempt 2 of 3" in stderr
    assert shard_bytes(out) == shard_bytes(local["medium"])
    assert entries(out) == entries(local["medium"])
    assert not list(out.glob(f"*{PARTIAL_SUFFIX}"))
    # the killed actor's half-written shard was removed by the actor that replaced it, the others'
    # scratch folders by the actors themselves
    assert not list(node_tmp.glob(f"{SCRATCH_PREFIX}*"))


def cluster_job(kind: str, out: Path, size: dict) -> subprocess.CompletedProcess:
    """A job on a Ray cluster built in its own process (tests/ray_cluster_jobs.py)."""
    result = subprocess.run([sys.executable, str(Path(__file__).with_name("ray_cluster_jobs.py")), kind, str(out),
                             str(size["n"]), str(size["shard_size"])], capture_output=True, text=True, timeout=600)
    print(f"{kind}: exit {result.returncode}: {result.stdout.strip()} {result.stderr.strip()[-600:]}")
    assert result.returncode == 0 and "done" in result.stdout, result.stderr
    return result


def test_a_node_lost_mid_shard_costs_only_that_shard(local, tmp_path):
    out = tmp_path / "ray"
    result = cluster_job("node-loss", out, MEDIUM)
    # the nodes rendered without a face model of their own: the job shipped it
    assert "bare-node-" in result.stdout and "(empty: True)" in result.stdout
    assert "node removed" in result.stdout
    assert "render actor died while rendering shard-0000" in result.stderr
    assert shard_bytes(out) == shard_bytes(local["medium"])
    assert entries(out) == entries(local["medium"])


def test_actors_reserve_the_gpus_asked_for(local, tmp_path):
    out = tmp_path / "ray"
    result = cluster_job("gpus", out, MEDIUM)  # two actors at --gpus-per-worker 0.5 on a Ray with one GPU
    assert "GPUs held: 1" in result.stdout  # both at once: each reserved its half
    assert shard_bytes(out) == shard_bytes(local["medium"])


def test_a_node_with_other_code_stops_the_job_before_rendering(tmp_path):
    out = tmp_path / "ray"
    result = cluster_job("other-code", out, SMALL)  # its node imports a facegen with one file changed
    assert "job failed: render actor failed on shard-0000" in result.stdout
    assert "runs other code than the job: facegen sources (sha256)" in result.stdout
    assert "install the same facegen" in result.stdout
    assert not list(out.glob("shard-*"))  # nothing rendered with the other code


def test_code_fingerprints_name_what_differs():
    from importlib.metadata import version

    from facegen.errors import FacegenError
    from facegen.generator.executors.ray_cluster import check_same_code, code_fingerprint

    here = code_fingerprint("raster")
    assert code_fingerprint("raster") == here and len(here["facegen sources (sha256)"]) == 16
    assert here["pyrender"] == version("pyrender") and code_fingerprint("cycles")["bpy"] == version("bpy")
    check_same_code(here, dict(here), "10.0.0.7")  # the same code: nothing to say
    with pytest.raises(FacegenError, match=r"node 10\.0\.0\.7 runs other code than the job: numpy 1\.0 here, "):
        check_same_code(here, {**here, "numpy": "1.0"}, "10.0.0.7")


def test_an_error_in_an_actor_ends_the_job_naming_the_shard(local, tmp_path):
    out = tmp_path / "ray"
    result, _ = run(render_command(out, workers=2, extra=RAY, **SMALL), fault="shard:1")
    print(f"shard 1 fails on Ray: exit {result.returncode}: {result.stderr.strip()[-600:]}")
    assert result.returncode == 1
    assert "render actor failed on shard-00001.h5 (samples 2-3)" in result.stderr
    assert "FACEGEN_TEST_FAULT=shard:1" in result.stderr and "run the same command" in result.stderr
    assert "shard-00001.h5" not in manifest_files(out)
    for name in manifest_files(out):  # finished shards are whole and stay
        assert (out / name).read_bytes() == (local["small"] / name).read_bytes()
    result, _ = run(render_command(out, workers=2, extra=RAY, **SMALL))
    assert result.returncode == 0, result.stderr
    assert shard_bytes(out) == shard_bytes(local["small"])


def test_a_killed_ray_job_resumes_like_a_local_one(local, tmp_path):
    out = tmp_path / "ray"
    command = render_command(out, workers=2, extra=RAY, **MEDIUM)
    job = start_job(command)
    wait_for(lambda: (out / "manifest.json").exists() and manifest_files(out), job, "a finished shard")
    job.kill()  # SIGKILL: no clean-up at all; Ray ends the job's actors, the lock dies with the job
    job.communicate()
    finished = {name: (out / name).stat() for name in manifest_files(out)}
    result, _ = run(command)
    assert result.returncode == 0, result.stderr
    assert shard_bytes(out) == shard_bytes(local["medium"])
    for name, before in finished.items():  # kept, not rendered again
        after = (out / name).stat()
        assert (after.st_ino, after.st_mtime_ns) == (before.st_ino, before.st_mtime_ns)
    wait_for(lambda: not ray_actors(busy=False), None, "the killed job's actors to end", 60)


def test_ray_options_without_the_ray_executor_are_refused(tmp_path):
    result, _ = run(render_command(tmp_path / "d", workers=1, extra=[*RASTER, "--shared-fs"], **SMALL))
    assert result.returncode == 2
    assert "are for --executor ray" in result.stderr
    assert not (tmp_path / "d").exists()


def test_a_cluster_address_nothing_answers_on_is_named_at_once(tmp_path):
    result, seconds = run(render_command(tmp_path / "d", workers=1, extra=[*RAY, "--ray-address", "127.0.0.1:1"],
                                         **SMALL))
    assert result.returncode == 2 and seconds < 30  # Ray alone retries for minutes
    assert "--ray-address 127.0.0.1:1: nothing answers there" in result.stderr and "ray start --head" in result.stderr
    assert not (tmp_path / "d").exists()


def test_slots_fill_the_cluster_or_follow_the_options(capsys):
    from facegen.errors import FacegenError
    from facegen.generator.executors.ray_cluster import Slots, plan_slots
    from facegen.generator.job import JobSettings

    def slots(cluster, started_here=False, **options):
        return plan_slots(JobSettings(executor="ray", **options), cluster, started_here)

    assert slots({"CPU": 8.0}) == Slots(8, 1.0, 0.0)  # as many one-CPU actors as fit
    assert slots({"CPU": 8.0}, workers=2) == Slots(2, 1.0, 0.0)
    assert slots({"CPU": 8.0}, started_here=True, workers=2) == Slots(2, 4.0, 0.0)  # this machine's CPUs shared
    assert slots({"CPU": 16.0, "GPU": 2.0}, gpus_per_worker=0.5) == Slots(4, 1.0, 0.5)  # two actors per GPU
    assert slots({"CPU": 8.0}, workers=6, cpus_per_worker=2) == Slots(4, 2.0, 0.0)
    assert "--workers 6: the Ray cluster has room for 4 actors of 2 CPUs; rendering with 4" in capsys.readouterr().err
    with pytest.raises(FacegenError, match="the Ray cluster has 0 GPUs"):
        slots({"CPU": 8.0}, gpus_per_worker=1)
