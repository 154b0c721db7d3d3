"""The render job: sample -> pose -> render -> label -> write, in shards, resumable.

Shard k holds samples [k * shard_size, min((k + 1) * shard_size, n)). The job plans the shards,
validates every input, then claims the output folder; an executor (generator/executors/) renders
the missing shards with workers that each build the model, spec and renderer once. This process owns
the manifest and the progress bar and never imports a renderer's backend (bpy, OpenGL): spawned
workers must find the packages as a fresh interpreter does. A re-run of the same command renders
only the shards that are missing; finished shards are never rewritten.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path

from facegen.errors import FacegenError
from facegen.generator.executors import WorkerFailed
from facegen.shards import FORMAT_VERSION, MANIFEST, PARTIAL_SUFFIX, read_manifest, shard_name, write_manifest

# The renderer `facegen render` uses unless told otherwise: photoreal Cycles (generator/cycles.py);
# `--renderer raster` is the fast pyrender backend. The one place to change the default.
DEFAULT_RENDERER = "cycles"
OUTPUTS = ("rgb", "depth", "segmentation", "mask")


@dataclass
class JobSettings:
    """Everything a render command was given (paths as strings so it pickles into workers)."""

    spec: str = "dense490"
    n: int = 1000
    out: str = "out"
    size: int = 256
    shard_size: int = 1000
    workers: int = 1
    seed: int = 0
    renderer: str = DEFAULT_RENDERER
    config: str | None = None
    backgrounds: str | None = None
    hdris: str | None = None
    outputs: tuple[str, ...] = ("rgb",)
    model_path: str | None = None

    def shard_ranges(self) -> list[tuple[int, int, int]]:
        """(shard index, first sample, sample count) of every shard of the job."""
        return [(k, start, min(self.shard_size, self.n - start))
                for k, start in enumerate(range(0, self.n, self.shard_size))]


def render(spec: str = "dense490", n: int = 1000, out: str | Path = "out", *, size: int = 256,
           shard_size: int = 1000, workers: int = 1, seed: int = 0, renderer: str = DEFAULT_RENDERER,
           config: str | Path | None = None, backgrounds: str | Path | None = None,
           hdris: str | Path | None = None, outputs=("rgb",), progress: bool = True) -> Path:
    """Render `n` labelled samples of landmark spec `spec` into HDF5 shards in `out` (resumable).

    The Python form of `facegen render`; returns the output folder."""
    settings = JobSettings(spec=str(spec), n=int(n), out=str(out), size=int(size), shard_size=int(shard_size),
                           workers=int(workers), seed=int(seed), renderer=renderer,
                           config=str(config) if config else None,
                           backgrounds=str(backgrounds) if backgrounds else None,
                           hdris=str(hdris) if hdris else None, outputs=tuple(outputs))
    return run_job(settings, progress=progress)


# -- validation and the job's identity ---------------------------------------------------------------

def validate(s: JobSettings) -> None:
    if s.n < 1:
        raise FacegenError(f"--n {s.n}: nothing to render; give the number of images, e.g. --n 1000")
    if s.shard_size < 1:
        raise FacegenError(f"--shard-size {s.shard_size}: must be at least 1 (default 1000)")
    if s.workers < 1:
        raise FacegenError(f"--workers {s.workers}: must be at least 1")
    if not 16 <= s.size <= 4096:
        raise FacegenError(f"--size {s.size}: choose an image size between 16 and 4096 pixels")
    unknown = [o for o in s.outputs if o not in OUTPUTS]
    if unknown:
        raise FacegenError(f"--outputs: unknown {', '.join(unknown)}; choose from {', '.join(OUTPUTS)}")
    if "rgb" not in s.outputs:
        raise FacegenError("--outputs must include rgb")
    from facegen.generator.scene import check_renderer

    check_renderer(s.renderer)


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


def prepare(s: JobSettings) -> JobContext:
    from facegen.face_model import load_face_model
    from facegen.generator import sampling
    from facegen.generator.scene import check_renderer
    from facegen.specs import compile_spec, load_spec

    model = load_face_model(s.model_path)
    spec = compile_spec(load_spec(s.spec), model)
    config = sampling.load_config(s.config)
    photos = tuple(sampling.list_files(Path(s.backgrounds), sampling.PHOTO_SUFFIXES, "--backgrounds")) \
        if s.backgrounds else ()
    hdri_dir = s.hdris or (str(sampling.bundled_hdri_dir()) if sampling.bundled_hdri_dir() else None)
    hdri_names = tuple(sampling.list_hdris(Path(hdri_dir))) if hdri_dir else ()
    backend = check_renderer(s.renderer)
    job = {
        "spec": spec.name,
        "spec_hash": spec.hash,
        "seed": s.seed,
        "config_hash": sampling.config_hash(config),
        "renderer": s.renderer,
        "renderer_version": backend.version,
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


def prepare_folder(out: Path, job: dict, n: int) -> dict:
    """Create or check the output folder; returns the manifest to continue from."""
    try:
        out.mkdir(parents=True, exist_ok=True)
        probe = out / ".facegen-write-test"
        probe.write_text("")
        probe.unlink()
    except OSError as e:
        raise FacegenError(f"--out {out}: cannot write there ({e.strerror}); choose a folder you can write to") from None
    manifest = read_manifest(out)
    if manifest is None:
        stray = [p.name for p in out.iterdir() if p.name.startswith("shard-")]
        if stray:
            raise FacegenError(f"--out {out}: holds shards ({stray[0]}, ...) but no {MANIFEST}; "
                               "use an empty folder or the one the job was started in")
        manifest = {"format_version": FORMAT_VERSION, "job": job, "num_samples": n, "shards": []}
    else:
        old = manifest.get("job", {})
        for key in job:
            if old.get(key) != job[key]:
                raise FacegenError(
                    f"--out {out} holds a different job: {key} is {old.get(key)!r} there but {job[key]!r} now. "
                    "Use another --out folder, or repeat the original command to resume it.")
        manifest["num_samples"] = n
    for stale in out.glob(f"*{PARTIAL_SUFFIX}"):  # half-written by a killed run: redo them
        stale.unlink()
    write_manifest(out, manifest)
    return manifest


# -- the job --------------------------------------------------------------------------------------------

def run_job(s: JobSettings, progress: bool = True) -> Path:
    validate(s)
    out = Path(s.out)
    ctx = prepare(s)
    manifest = prepare_folder(out, ctx.job, s.n)
    tasks = pending_shards(s, manifest, out)
    if not tasks:
        return out
    from tqdm import tqdm

    done_before = s.n - sum(count for _, _, count in tasks)
    bar = tqdm(total=s.n, initial=done_before, unit="img", desc=f"render {ctx.spec.name}", disable=not progress,
               smoothing=0.05, dynamic_ncols=True)

    def finished(entry: dict) -> None:
        manifest["shards"] = sorted([e for e in manifest["shards"] if e["file"] != entry["file"]] + [entry],
                                    key=lambda e: e["first_index"])
        write_manifest(out, manifest)

    from facegen.generator.executors import local

    try:
        local.run(ctx, tasks, bar.update, finished)
    except WorkerFailed as e:
        kept = len(manifest["shards"])
        e.message += (f"\n{kept} of {len(s.shard_ranges())} shards are finished and kept in {out / MANIFEST}; "
                      "fix the cause and run the same command again to render the rest.")
        raise
    finally:
        bar.close()
    return out


def pending_shards(s: JobSettings, manifest: dict, out: Path) -> list[tuple[int, int, int]]:
    """Shards still to render: missing, or recorded with another sample count (the job grew)."""
    done = {e["file"]: e for e in manifest["shards"]}
    tasks = []
    for k, first, count in s.shard_ranges():
        entry = done.get(shard_name(k))
        if entry and entry["num_samples"] == count and (out / entry["file"]).exists():
            continue
        (out / shard_name(k)).unlink(missing_ok=True)  # finished but unrecorded (killed before the manifest)
        tasks.append((k, first, count))
    # Drop records of shards beyond a shrunken job.
    keep = {shard_name(k) for k, _, _ in s.shard_ranges()}
    manifest["shards"] = [e for e in manifest["shards"] if e["file"] in keep and e["file"] not in
                          {shard_name(k) for k, _, _ in tasks}]
    return tasks

