"""The render job: sample -> pose -> render -> label -> write, in shards, resumable.

Shard k holds samples [k * shard_size, min((k + 1) * shard_size, n)) (see plan_shards for a job
that grew). The job validates every input, then locks the output folder (generator/lock.py: one job
per folder), claims it, drops finished shards that fail the cheap check (`drop_damaged`) and plans
the shards; an executor (generator/executors/) renders the missing shards with workers that each
build the model, spec and renderer once. This process owns the manifest and the progress bar and
never imports a renderer's backend (bpy, OpenGL): spawned workers must find the packages as a fresh
interpreter does. A re-run of the same command renders only the shards that are missing or damaged;
finished shards are never rewritten.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import sys
from dataclasses import dataclass, field, replace
from pathlib import Path

from facegen.errors import FacegenError
from facegen.generator.executors import WorkerFailed
from facegen.shards import (FORMAT_VERSION, MANIFEST, PARTIAL_SUFFIX, read_manifest, shard_name, shard_problem,
                            write_manifest)

# The renderer `facegen render` uses unless told otherwise: photoreal Cycles (generator/cycles.py);
# `--renderer raster` is the fast pyrender backend. The one place to change the default.
DEFAULT_RENDERER = "cycles"
# Per-pixel outputs a job can store (generator/cli.py's --outputs help says what each is).
OUTPUTS = ("rgb", "depth", "segmentation", "mask", "amodal")


@dataclass
class JobSettings:
    """Everything a render command was given (paths as strings so it pickles into workers)."""

    spec: str = "dense490"
    n: int = 1000
    out: str = "out"
    size: int = 256
    shard_size: int = 1000
    workers: int | None = None  # None: 1 locally; with Ray, as many actors as the cluster has room for
    seed: int = 0
    renderer: str = DEFAULT_RENDERER
    config: str | None = None
    backgrounds: str | None = None
    hdris: str | None = None
    outputs: tuple[str, ...] = ("rgb",)
    model_path: str | None = None
    # where the shards are rendered (generator/executors/): "local" processes or a Ray cluster
    executor: str = "local"
    ray_address: str | None = None  # None: start a Ray on this machine; "auto" or "HOST:PORT": join one
    gpus_per_worker: float = 0.0  # GPUs Ray reserves for each render actor (Cycles renders on them)
    cpus_per_worker: float | None = None  # CPUs Ray reserves for each actor (None: 1, or this machine's shared out)
    shared_fs: bool = False  # Ray actors write into --out themselves (it is on a filesystem every node mounts)


# -- validation and the job's identity ---------------------------------------------------------------

def validate(s: JobSettings) -> None:
    """The options alone (no file is read): ranges, names, and an --out that can be a folder."""
    if s.n < 1:
        raise FacegenError(f"--n {s.n}: nothing to render; give the number of images, e.g. --n 1000")
    if s.shard_size < 1:
        raise FacegenError(f"--shard-size {s.shard_size}: must be at least 1 (default 1000)")
    if s.workers is not None and s.workers < 1:
        raise FacegenError(f"--workers {s.workers}: must be at least 1")
    from facegen.generator.executors import EXECUTORS

    if s.executor not in EXECUTORS:
        raise FacegenError(f"--executor {s.executor}: choose {' or '.join(EXECUTORS)}")
    if s.executor == "ray" and importlib.util.find_spec("ray") is None:
        raise FacegenError("--executor ray needs Ray, which is not installed: pip install 'facegen[cluster]'")
    if s.executor == "local" and (s.ray_address or s.gpus_per_worker or s.cpus_per_worker or s.shared_fs):
        raise FacegenError("--ray-address, --gpus-per-worker, --cpus-per-worker and --shared-fs are for "
                           "--executor ray; add it, or drop them")
    if s.ray_address:
        _check_reachable(s.ray_address)
    if s.gpus_per_worker < 0 or (s.cpus_per_worker is not None and s.cpus_per_worker <= 0):
        raise FacegenError("--gpus-per-worker must be 0 or more and --cpus-per-worker more than 0 "
                           "(e.g. --gpus-per-worker 1, or 0.5 for two actors per GPU)")
    if s.seed < 0:
        raise FacegenError(f"--seed {s.seed}: must be 0 or more (sample i draws from (seed, i))")
    if not 16 <= s.size <= 4096:
        raise FacegenError(f"--size {s.size}: choose an image size between 16 and 4096 pixels")
    unknown = [o for o in s.outputs if o not in OUTPUTS]
    if unknown:
        raise FacegenError(f"--outputs: unknown {', '.join(unknown)}; choose from {', '.join(OUTPUTS)} "
                           "(comma-separated, e.g. --outputs rgb,segmentation,amodal)")
    if "rgb" not in s.outputs:
        raise FacegenError("--outputs must include rgb")
    from facegen.generator.scene import check_renderer

    check_renderer(s.renderer)
    out = Path(s.out)
    blocker = next((p for p in (out, *out.parents) if p.exists()), None)
    if blocker is not None and not blocker.is_dir():
        raise FacegenError(f"--out {out}: {blocker} is a file, not a folder; choose a folder for the shards")
    if blocker is not None and not os.access(blocker, os.W_OK | os.X_OK):
        raise FacegenError(f"--out {out}: cannot write in {blocker}; choose a folder you can write to")


def _check_reachable(address: str) -> None:
    """A HOST:PORT that nothing answers on, said at once (Ray itself retries for minutes)."""
    import socket

    host, sep, port = address.rpartition(":")
    if address == "auto" or "://" in address or not sep or not port.isdigit():
        return  # "auto" and ray:// client addresses: Ray's own message
    try:
        socket.create_connection((host, int(port)), timeout=5).close()
    except OSError as e:
        raise FacegenError(f"--ray-address {address}: nothing answers there ({e.strerror or e}). Start the cluster's "
                           "head with `ray start --head --port PORT` (docs/cluster.md) and give HOST:PORT, use auto "
                           "for one started on this machine, or drop --ray-address to start a Ray here.") from None


@dataclass
class JobContext:
    """What every process needs: the loaded model, compiled spec, config and asset lists."""

    settings: JobSettings
    model: object
    spec: object
    config: dict
    photos: tuple[str, ...]
    hdri_names: tuple[str, ...]
    hdri_dir: str | None
    job: dict = field(default_factory=dict)  # the manifest's `job`: the resume key
    lock: object = None  # the folder lock's open file (lock.InheritedLock): worker processes hold it too


def prepare(s: JobSettings) -> JobContext:
    """Load and check every input: face model, spec, sampling config (schema, expression names),
    background photos and HDRIs (each file opened). Writes nothing."""
    from facegen.face_model import load_face_model
    from facegen.generator import backgrounds, sampling
    from facegen.generator.scene import check_renderer
    from facegen.specs import load_spec

    model = load_face_model(s.model_path)
    spec = load_spec(s.spec, model)
    config = sampling.load_config(s.config)
    photos = tuple(sampling.list_files(Path(s.backgrounds), sampling.PHOTO_SUFFIXES, "--backgrounds")) \
        if s.backgrounds else ()
    hdri_dir = s.hdris or (str(backgrounds.bundled_hdri_dir()) if backgrounds.bundled_hdri_dir() else None)
    hdri_names = tuple(sampling.list_hdris(Path(hdri_dir))) if hdri_dir else ()
    where = s.config or "the sampling config"
    sampling.check_config_against_model(config, model, where)
    sampling.check_backgrounds(config, bool(photos), bool(hdri_names), where)
    if photos:
        backgrounds.check_photos(s.backgrounds, photos)
    backgrounds.check_hdris([backgrounds.find_hdri(name, s.hdris) for name in hdri_names])  # the file each sample gets
    job = {
        "spec": spec.name,
        "spec_hash": spec.hash,
        "seed": s.seed,
        "config_hash": sampling.config_hash(config),
        "renderer": s.renderer,
        "renderer_version": check_renderer(s.renderer).version,
        "model_hash": model.hash,
        "image_size": [s.size, s.size],
        "shard_size": s.shard_size,
        "outputs": list(s.outputs),
        "backgrounds": _names_hash(photos),
        "hdris": _names_hash(hdri_names),
    }
    return JobContext(s, model, spec, config, photos, hdri_names, hdri_dir, job)


def _names_hash(names: tuple[str, ...]) -> str:
    """Which asset files a job drew from (names only: a folder may move between runs)."""
    return hashlib.sha256("\n".join(names).encode()).hexdigest()[:16] if names else ""


# -- the output folder ------------------------------------------------------------------------------

# How to ask for each part of a job's identity again (for the "different job" message).
JOB_OPTIONS = {
    "spec": "--spec", "seed": "--seed", "renderer": "--renderer", "image_size": "--size",
    "shard_size": "--shard-size", "outputs": "--outputs", "config_hash": "--config (the sampling config)",
    "backgrounds": "--backgrounds (the photo file names)", "hdris": "--hdris (the HDRI file names)",
    "spec_hash": "the spec's points (the spec file was edited)", "model_hash": "the face model (re-imported)",
    "renderer_version": "the renderer's version (facegen was updated)",
}


def claim_folder(out: Path, job: dict, n: int) -> dict:
    """Create or check the output folder; returns the manifest to continue from.

    A folder with finished shards takes only the same job, and an --n that keeps every finished
    shard; a folder whose job finished nothing (a failed start) is taken over. A manifest lost or
    deleted is rebuilt from the shards' own records."""
    from facegen.shards import rebuild_manifest

    manifest = read_manifest(out) if out.is_dir() else None
    if manifest is None and out.is_dir() and any(out.glob("shard-*.h5")):
        manifest = rebuild_manifest(out)
    if manifest and manifest.get("shards"):
        _check_same_job(out, manifest, job)
        _check_keeps_finished(out, manifest, n)
        manifest["num_samples"] = n
    else:
        manifest = {"format_version": FORMAT_VERSION, "job": job, "num_samples": n, "shards": []}
    try:
        out.mkdir(parents=True, exist_ok=True)
        probe = out / ".facegen-write-test"
        probe.write_text("")
        probe.unlink()
    except OSError as e:
        raise FacegenError(f"--out {out}: cannot write there ({e.strerror}); choose a folder you can write to") from None
    for stale in out.glob(f"*{PARTIAL_SUFFIX}"):  # half-written by a killed run: redo them
        stale.unlink()
    save_manifest(out, manifest)
    return manifest


def save_manifest(out: Path, manifest: dict, then: str = "run the same command again") -> None:
    """write_manifest, with a failure (a full disk) as a FacegenError: the manifest on disk stays as
    it was (write_manifest is atomic and leaves no partial file)."""
    try:
        write_manifest(out, manifest)
    except OSError as e:
        raise FacegenError(f"{out / MANIFEST}: cannot write it ({e.strerror or e}); it is kept as it was, with the "
                           f"finished shards it lists. Free some space (or fix the cause) and {then}.") from None


def _check_same_job(out: Path, manifest: dict, job: dict) -> None:
    old = manifest.get("job", {})
    differ = [key for key in job if old.get(key) != job[key]]
    if not differ:
        return
    lines = []
    for key in differ:
        if key in ("config_hash", "backgrounds", "hdris", "spec_hash", "model_hash", "renderer_version"):
            lines.append(f"  {JOB_OPTIONS[key]} differs")
        else:
            was, now = old.get(key), job[key]
            if key == "image_size":
                was, now = (was or [None])[0], now[0]
            if key == "outputs":
                was, now = ",".join(was or []), ",".join(now)
            lines.append(f"  {JOB_OPTIONS[key]} is {was} there but {now} now")
    count = len(manifest["shards"])
    raise FacegenError(
        f"--out {out} holds {count} finished shard{'s' * (count != 1)} of a different job:\n" + "\n".join(lines) +
        f"\nTo add to that job, repeat its settings (see {out / MANIFEST}, `job`); to start over, delete the "
        "folder or choose another --out.")


def _check_keeps_finished(out: Path, manifest: dict, n: int) -> None:
    beyond = [e for e in manifest["shards"] if e["first_index"] + e["num_samples"] > n]
    if beyond:
        held = max(e["first_index"] + e["num_samples"] for e in manifest["shards"])
        e = beyond[-1]
        raise FacegenError(
            f"--n {n}: {out} already holds samples 0-{held - 1} in finished shards ({e['file']} holds samples "
            f"{e['first_index']}-{e['first_index'] + e['num_samples'] - 1}); finished shards are never dropped. "
            f"Use --n {held} or more to add to them, read the first {n} with facegen.open_shards, or render "
            "into another --out. Nothing was changed.")


def drop_damaged(out: Path, manifest: dict, notify) -> None:
    """Forget (and delete) every finished shard that is missing or fails the cheap check (size, HDF5
    header: `facegen.shards.shard_problem`), saying so; plan_shards then renders its samples again.
    A shard damaged without changing its size is found by `facegen verify` (checksums), not here."""
    kept = []
    for e in manifest["shards"]:
        problem = shard_problem(out / e["file"], e)
        if problem is None:
            kept.append(e)
            continue
        last = e["first_index"] + e["num_samples"] - 1
        notify(f"{out / e['file']}: {problem}; rendering its samples {e['first_index']}-{last} again")
        (out / e["file"]).unlink(missing_ok=True)
    if len(kept) != len(manifest["shards"]):
        manifest["shards"] = kept
        save_manifest(out, manifest)


def plan_shards(s: JobSettings, manifest: dict, out: Path) -> list[tuple[int, int, int]]:
    """Shards still to render, as (shard index, first sample, count).

    Finished shards (in the manifest, file present) keep their ranges. The samples they do not cover
    are cut on the job's grid (shard k starts at k * shard_size), so an interrupted job resumes into
    the shards a clean run makes; a grown job adds shards after its last one. A new shard takes its
    grid index as its name unless that is taken (after a short last shard), then the next free one."""
    finished = sorted((e for e in manifest["shards"] if (out / e["file"]).exists()), key=lambda e: e["first_index"])
    manifest["shards"] = finished  # a record whose file was deleted: render that range again
    used = {int(e["file"][len("shard-"):-len(".h5")]) for e in finished}
    tasks, start = [], 0
    for limit in [e["first_index"] for e in finished] + [s.n]:
        while start < limit:
            stop = min(limit, (start // s.shard_size + 1) * s.shard_size)
            k = start // s.shard_size
            if start % s.shard_size or k in used:
                k = max(used | {t[0] for t in tasks} | {-1}) + 1
            used.add(k)
            tasks.append((k, start, stop - start))
            start = stop
        covering = next((e for e in finished if e["first_index"] == limit), None)
        if covering is not None:
            start = limit + covering["num_samples"]
    for k, _, _ in tasks:  # finished but unrecorded (killed before the manifest): render again
        (out / shard_name(k)).unlink(missing_ok=True)
    return tasks


# -- the job --------------------------------------------------------------------------------------------

def _tell(message: str) -> None:
    import click

    click.echo(message, err=True)


def lock_folder(out: Path):
    """Create --out and take its lock (generator/lock.py), or stop naming the job that holds it."""
    from facegen.generator import lock

    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise FacegenError(f"--out {out}: cannot write there ({e.strerror}); choose a folder you can write to") from None
    program = os.path.basename(sys.argv[0])
    if program in ("", "cli.py", "__main__.py"):  # python -m facegen.cli
        program = "facegen"
    return lock.acquire(out, [program, *sys.argv[1:]])


def run_job(s: JobSettings, progress: bool = True, notify=_tell) -> Path:
    """Run a render job. notify(message): what the job says about the folder (a stale lock taken
    over, a damaged shard rendered again); stderr by default."""
    validate(s)
    if s.workers is None and s.executor == "local":
        s = replace(s, workers=1)
    ctx = prepare(s)  # every input checked: nothing is written into --out before this passes
    out = Path(s.out)
    folder_lock = lock_folder(out)
    try:
        if folder_lock.took_over:
            notify(folder_lock.took_over)
        ctx.lock = folder_lock.for_workers()
        _run_locked(s, ctx, out, progress, notify)
    finally:
        folder_lock.release()
    return out


def _run_locked(s: JobSettings, ctx: JobContext, out: Path, progress: bool, notify) -> None:
    manifest = claim_folder(out, ctx.job, s.n)
    drop_damaged(out, manifest, notify)
    tasks = plan_shards(s, manifest, out)
    if not tasks:
        return
    from tqdm import tqdm

    # No tqdm monitor thread: a thread that does not block SIGINT would take (and lose) a Ctrl-C
    # pressed while the workers start (executors/local.py, _sigint_ignored).
    tqdm.monitor_interval = 0
    total = len(manifest["shards"]) + len(tasks)  # shards when the job is done
    done_before = s.n - sum(count for _, _, count in tasks)
    bar = tqdm(total=s.n, initial=done_before, unit="img", desc=f"render {ctx.spec.name}", disable=not progress,
               smoothing=0.05, dynamic_ncols=True)

    def finished(entry: dict) -> None:
        manifest["shards"] = sorted([e for e in manifest["shards"] if e["file"] != entry["file"]] + [entry],
                                    key=lambda e: e["first_index"])
        save_manifest(out, manifest, f"run the same command again: it renders the finished but unrecorded "
                                     f"{entry['file']} and the rest again")

    from facegen.generator import executors

    try:
        executors.run(ctx, tasks, bar.update, finished)
    except WorkerFailed as e:
        kept = len(manifest["shards"])
        e.message += (f"\n{kept} of {total} shards are finished and kept in {out / MANIFEST}; "
                      "fix the cause and run the same command again to render the rest.")
        raise
    finally:
        bar.close()
