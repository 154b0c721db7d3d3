"""HDF5 shards: the one format the generator writes and the trainer reads (docs/shard-format.md).

A shard holds `n` consecutive samples of one render job. It is written under `NAME.partial` and
renamed when complete, so a killed job never leaves a half shard that looks whole; a write that fails
(a full disk) deletes the partial file. Shards are byte-deterministic: no HDF5 timestamps, fixed
chunking and compression. The manifest records each finished shard's size and sha256: `shard_problem`
checks the size and the HDF5 header cheaply (render re-runs), `verify_folder` the checksums too
(`facegen verify`), and the readers refuse a shard whose size disagrees with the manifest.
"""

from __future__ import annotations

import hashlib
import json
import os
from contextlib import suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

import h5py
import numpy as np
from isal import isal_zlib

from facegen.errors import FacegenError

FORMAT = "facegen-shard"
FORMAT_VERSION = 1
MANIFEST = "manifest.json"
PARTIAL_SUFFIX = ".partial"
HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"  # the first 8 bytes of an HDF5 file (no user block)

# Per-image chunks use HDF5's standard gzip (deflate) filter, so any HDF5 reader decodes them. The
# deflate streams themselves are made and read by ISA-L (python-isal): at its level 2 it writes them
# about 4x faster than zlib's fastest level at a few per cent more bytes, and inflates them about 2x
# faster; both run once per sample (in the render loop and in the training loader).
COMPRESSION = dict(compression="gzip", compression_opts=1)  # what the file records; decoders ignore it
DEFLATE_LEVEL = 2  # isal_zlib levels are 0-3


def shard_name(shard_index: int) -> str:
    return f"shard-{shard_index:05d}.h5"


def _dataset_specs(h: int, w: int, num_landmarks: int, k_id: int, k_ex: int, outputs: tuple[str, ...]) -> dict:
    """Per-sample datasets: name -> (dtype, shape after the sample axis, chunked one image at a time).
    Optional outputs (depth, segmentation, mask, amodal) exist only when the job asked for them."""
    specs = {
        "image": (np.uint8, (h, w, 3), True),
        "landmarks_2d": (np.float32, (num_landmarks, 2), False),
        "landmarks_3d": (np.float32, (num_landmarks, 3), False),
        "visibility": (np.uint8, (num_landmarks,), False),
        "in_frame": (np.uint8, (num_landmarks,), False),
        "occluded_by": (np.uint8, (num_landmarks,), False),
        "head_pose": (np.float32, (6,), False),
        "K": (np.float32, (3, 3), False),
        "camera_R": (np.float32, (3, 3), False),
        "camera_t": (np.float32, (3,), False),
        "identity": (np.float32, (k_id,), False),
        "expression": (np.float32, (k_ex,), False),
        "sample_index": (np.int64, (), False),
    }
    if "depth" in outputs:
        specs["depth"] = (np.float32, (h, w), True)
    if "segmentation" in outputs:
        specs["segmentation"] = (np.uint8, (h, w), True)
    if "mask" in outputs:
        specs["mask"] = (np.uint8, (h, w), True)
    if "amodal" in outputs:
        specs["amodal"] = (np.uint8, (h, w), True)
    return specs


class ShardWriter:
    """Write one shard of `num_samples` samples; `add()` each sample in order, then `close()`.

    attrs: file attributes (see docs/shard-format.md); strings, numbers, lists of numbers, or
    dicts/lists of strings (stored as JSON text)."""

    def __init__(self, path: Path, num_samples: int, image_size: tuple[int, int], num_landmarks: int,
                 num_identity: int, num_expressions: int, attrs: dict[str, Any], outputs: tuple[str, ...] = ("rgb",)):
        self.path = Path(path)
        self.tmp = self.path.with_name(self.path.name + PARTIAL_SUFFIX)
        self.num_samples = num_samples
        self.count = 0
        w, h = image_size
        self.file = None
        try:
            self._create(h, w, num_landmarks, num_identity, num_expressions, attrs, tuple(outputs))
        except BaseException:  # a full disk, a bad attribute: no partial file is left behind
            self.abort()
            raise

    def _create(self, h, w, num_landmarks, num_identity, num_expressions, attrs, outputs) -> None:
        self.file = h5py.File(self.tmp, "w", track_order=False)
        self.file.attrs["format"] = FORMAT
        self.file.attrs["format_version"] = FORMAT_VERSION
        self.file.attrs["num_samples"] = self.num_samples
        for key, value in attrs.items():
            self.file.attrs[key] = _attr_value(value)
        self.specs = _dataset_specs(h, w, num_landmarks, num_identity, num_expressions, outputs)
        # Images go to disk one chunk per sample; the small per-sample arrays are gathered in memory
        # and written in one go on close (thousands of tiny h5py writes cost more than the render).
        self.buffers: dict[str, np.ndarray] = {}
        for name, (dtype, shape, per_image_chunk) in self.specs.items():
            kw = dict(chunks=(1, *shape), **COMPRESSION) if per_image_chunk else {}
            self.file.create_dataset(name, shape=(self.num_samples, *shape), dtype=dtype, track_times=False, **kw)
            if not per_image_chunk:
                self.buffers[name] = np.zeros((self.num_samples, *shape), dtype)
        # Low-level handles of the per-image datasets (looking a dataset up by name costs ~50 us).
        self.chunked = {name: self.file[name].id for name in self.specs if name not in self.buffers}
        self.file.create_dataset("params", shape=(self.num_samples,), dtype=h5py.string_dtype(), track_times=False)
        self.params: list[str] = []

    def add(self, sample: dict[str, Any]) -> None:
        """sample: every array named in the schema (optional outputs if requested) + `params` (dict)."""
        if self.count >= self.num_samples:
            raise ValueError(f"{self.path}: shard already holds {self.num_samples} samples")
        i = self.count
        for name in self.specs:
            if name not in sample:
                raise KeyError(f"sample is missing {name!r}")
            if name in self.buffers:
                self.buffers[name][i] = sample[name]
            else:
                dtype, shape, _ = self.specs[name]
                self.chunked[name].write_direct_chunk((i,) + (0,) * len(shape),
                                                      _gzip(np.ascontiguousarray(sample[name], dtype)))
        self.params.append(json.dumps(sample["params"], sort_keys=True))
        self.count += 1

    def close(self) -> Path:
        """Finish the shard: flush, close and rename to its final name (only if complete). On any
        failure (too few samples, a full disk while flushing) the partial file is deleted."""
        try:
            if self.count != self.num_samples:
                raise ValueError(f"{self.path}: {self.count} of {self.num_samples} samples written; not finalising")
            for name, values in self.buffers.items():
                self.file[name][...] = values
            self.file["params"][...] = np.array(self.params, dtype=object)
            self.file.close()
            os.replace(self.tmp, self.path)
        except BaseException:
            self.abort()
            raise
        return self.path

    def abort(self) -> None:
        """Close and delete the partial file (errors closing it are dropped: it is deleted anyway)."""
        try:
            if self.file is not None:
                with suppress(Exception):  # a full disk fails the flush too
                    self.file.close()
        finally:
            self.tmp.unlink(missing_ok=True)

    def __enter__(self) -> "ShardWriter":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()


def _gzip(array: np.ndarray) -> bytes:
    """One chunk compressed as HDF5's deflate filter stores it (a zlib stream), written directly:
    skips h5py's per-write selection and filter-pipeline overhead."""
    return isal_zlib.compress(array.tobytes(), DEFLATE_LEVEL)


def inflate_chunk(raw: bytes, size: int) -> bytes:
    """The inverse of `_gzip` for a chunk of `size` bytes (any zlib stream: also chunks h5py wrote)."""
    # bufsize = the exact size: starting small grows the output by repeated reallocation, which costs
    # as much again as the inflate itself.
    return isal_zlib.decompress(raw, bufsize=size)


def _attr_value(value: Any) -> Any:
    """HDF5 attributes hold numbers, strings and numeric arrays; anything nested is stored as JSON."""
    if value is None:
        return ""
    nested = isinstance(value, dict) or (
        isinstance(value, (list, tuple)) and any(isinstance(v, (str, dict, list, tuple)) for v in value))
    return json.dumps(value, sort_keys=True) if nested else value


# -- manifest --------------------------------------------------------------------------------------

def read_manifest(directory: Path) -> dict | None:
    path = Path(directory) / MANIFEST
    if not path.exists():
        return None
    try:
        manifest = json.loads(path.read_text())
        if not isinstance(manifest, dict) or not isinstance(manifest.get("shards"), list):
            raise ValueError("no list of shards")
        for entry in manifest["shards"]:
            int(entry["first_index"]), int(entry["num_samples"]), str(entry["file"])
        return manifest
    except (ValueError, TypeError, KeyError) as e:  # json.JSONDecodeError is a ValueError
        raise FacegenError(f"{path} is damaged ({e}); delete it and re-run the same render command: the "
                           "manifest is rebuilt from the finished shards' own records.") from None


def rebuild_manifest(directory: Path) -> dict:
    """The manifest of a folder of finished shards, from the records each shard carries (its job,
    first sample and count): what `facegen render` does when manifest.json is missing."""
    directory = Path(directory)
    entries, job = [], None
    for path in sorted(directory.glob("shard-*.h5")):
        try:
            with h5py.File(path, "r") as f:
                record = json.loads(f.attrs["job"]) if "job" in f.attrs else None
                first, count = int(f.attrs["first_index"]), int(f.attrs["num_samples"])
        except (OSError, KeyError, ValueError) as e:
            raise FacegenError(f"{path}: cannot read its records to rebuild {MANIFEST} ({e}); delete this "
                               "shard (it will be rendered again) and re-run the render command") from None
        if record is None:
            raise FacegenError(f"{path}: carries no job record (written before facegen stored one in each shard), "
                               f"so {MANIFEST} cannot be rebuilt from it; render into a new folder")
        if job is not None and record != job:
            raise FacegenError(f"{path}: belongs to another render job than {entries[0]['file']}; a folder holds "
                               "one job: move one of them elsewhere")
        job = record
        entries.append(shard_entry(path, first, count))
    entries.sort(key=lambda e: e["first_index"])
    return {"format_version": FORMAT_VERSION, "job": job, "shards": entries,
            "num_samples": max((e["first_index"] + e["num_samples"] for e in entries), default=0)}


def shard_entry(path: Path, first_index: int, num_samples: int) -> dict:
    """A finished shard's manifest entry: its file, samples, size in bytes and sha256."""
    return {"file": Path(path).name, "first_index": int(first_index), "num_samples": int(num_samples),
            "size": Path(path).stat().st_size, "sha256": file_sha256(path)}


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def write_manifest(directory: Path, manifest: dict) -> None:
    """Atomic write of manifest.json: the old one stays whole if this fails (a full disk), and no
    partial file is left."""
    path = Path(directory) / MANIFEST
    tmp = path.with_name(path.name + PARTIAL_SUFFIX)
    try:
        tmp.write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


# -- checking finished shards ------------------------------------------------------------------------

def shard_problem(path: Path, entry: dict) -> str | None:
    """What is wrong with a finished shard, checked cheaply (a stat and its first bytes): missing, a
    size other than the manifest's, not an HDF5 file, or shorter than its own HDF5 header says.
    None when it passes. `verify_shard` also compares the checksum."""
    path = Path(path)
    try:
        size = path.stat().st_size
        with open(path, "rb") as f:
            head = f.read(64)
    except FileNotFoundError:
        return "missing"
    except OSError as e:
        return f"cannot be read ({e.strerror})"
    expected = entry.get("size")
    if expected is not None and size != int(expected):
        return f"{size} bytes but the manifest records {int(expected)}: truncated or damaged"
    if head[:8] != HDF5_SIGNATURE:
        return "does not start with HDF5's signature: overwritten or damaged"
    end = _hdf5_end(head)
    if end is not None and end > size:
        return f"{size} bytes but its HDF5 header says {end}: truncated"
    return None


def _hdf5_end(head: bytes) -> int | None:
    """The file size an HDF5 superblock records (base address + end-of-file address), or None for
    a superblock version this does not know."""
    version = head[8] if len(head) > 8 else -1
    if version in (0, 1):
        width, base_at = (head[13] if len(head) > 13 else 0), (24 if version == 0 else 28)
    elif version in (2, 3):
        width, base_at = head[9], 12
    else:
        return None
    eof_at = base_at + 2 * width
    if width not in (2, 4, 8) or len(head) < eof_at + width:
        return None
    base = int.from_bytes(head[base_at:base_at + width], "little")
    return base + int.from_bytes(head[eof_at:eof_at + width], "little")


def verify_shard(path: Path, entry: dict) -> str | None:
    """`shard_problem`, then the sha256 against the manifest's (when it records one)."""
    problem = shard_problem(path, entry)
    if problem is None and entry.get("sha256") and file_sha256(path) != entry["sha256"]:
        problem = "its sha256 differs from the manifest's: damaged"
    return problem


def verify_folder(directory: Path) -> tuple[dict, list[tuple[dict, str | None]], list[str]]:
    """Check every finished shard of a render folder fully (size, HDF5 header, sha256).

    Returns the manifest, (entry, problem or None) per shard, and notes that are not damage (files
    the manifest does not list: a killed job's leftovers, or a job still running)."""
    directory = Path(directory)
    if not directory.is_dir():
        raise FacegenError(f"{directory}: no such directory (expected a folder written by `facegen render`)")
    manifest = read_manifest(directory)
    if manifest is None:
        raise FacegenError(f"{directory}: no {MANIFEST}, so nothing records the shards' checksums; re-run the "
                           "render command that made it (it rebuilds the manifest from the shards) and verify again")
    results = [(e, verify_shard(directory / e["file"], e)) for e in manifest["shards"]]
    listed = {e["file"] for e in manifest["shards"]}
    notes = [f"{p.name}: not in {MANIFEST} (left by a job that was stopped before recording it; the next render "
             "run renders it again)" for p in sorted(directory.glob("shard-*.h5")) if p.name not in listed]
    notes += [f"{p.name}: a shard being written, or left by a killed job (the next render run deletes it)"
              for p in sorted(directory.glob(f"shard-*.h5{PARTIAL_SUFFIX}"))]
    return manifest, results, notes


# -- reading ---------------------------------------------------------------------------------------

@dataclass
class ShardSet:
    """Random access over the samples of one or more shard directories.

    h5py handles open lazily and per process (safe with DataLoader workers that fork)."""

    files: list[Path]
    counts: list[int]
    attrs: dict[str, Any]
    _offsets: np.ndarray = field(init=False, repr=False)
    _handles: dict = field(default_factory=dict, init=False, repr=False)
    _pid: int = field(default=-1, init=False, repr=False)

    def __post_init__(self) -> None:
        self._offsets = np.concatenate([[0], np.cumsum(self.counts)]).astype(np.int64)

    def __len__(self) -> int:
        return int(self._offsets[-1])

    @property
    def landmark_names(self) -> list[str]:
        return json.loads(self.attrs["landmark_names"])

    @property
    def flip_map(self) -> np.ndarray:
        return np.asarray(self.attrs["flip_map"], np.int64)

    @property
    def spec_yaml(self) -> str:
        return str(self.attrs["spec_yaml"])

    @property
    def num_landmarks(self) -> int:
        return len(self.landmark_names)

    def _file(self, k: int) -> h5py.File:
        if self._pid != os.getpid():  # forked into a new worker: never share HDF5 handles
            self._handles = {}
            self._pid = os.getpid()
        if k not in self._handles:
            self._handles[k] = h5py.File(self.files[k], "r")
        return self._handles[k]

    def locate(self, index: int) -> tuple[int, int]:
        if not -len(self) <= index < len(self):
            raise IndexError(f"sample {index} out of range ({len(self)} samples)")
        index %= len(self)
        k = int(np.searchsorted(self._offsets, index, side="right") - 1)
        return k, index - int(self._offsets[k])

    def read(self, index: int, keys: tuple[str, ...] | None = None) -> dict[str, Any]:
        """One sample as a dict of arrays (`params` parsed from JSON). keys: a subset to read."""
        k, j = self.locate(index)
        f = self._file(k)
        names = keys or tuple(f.keys())
        out: dict[str, Any] = {}
        for name in names:
            value = f[name][j]
            out[name] = json.loads(value) if name == "params" else value
        return out

    __getitem__ = read

    def has(self, name: str) -> bool:
        """Whether every shard holds the per-sample array `name` (optional outputs; `occluded_by`
        is absent from shards made before facegen labelled occluders)."""
        return all(name in self._file(k) for k in range(len(self.files)))

    def read_all(self, name: str) -> np.ndarray:
        """One small per-sample array (labels, pose) for every sample, concatenated."""
        return np.concatenate([self._file(k)[name][:] for k in range(len(self.files))])

    def __iter__(self) -> Iterator[dict[str, Any]]:
        for i in range(len(self)):
            yield self.read(i)

    def close(self) -> None:
        for h in self._handles.values():
            h.close()
        self._handles = {}

    def __getstate__(self) -> dict:  # pickled into DataLoader workers without open handles
        state = dict(self.__dict__)
        state["_handles"] = {}
        state["_pid"] = -1
        return state


def find_shards(directory: Path) -> list[Path]:
    """Finished shards of a directory: those listed in the manifest, else every shard-*.h5."""
    directory = Path(directory)
    if not directory.is_dir():
        raise FacegenError(f"{directory}: no such directory (expected a folder written by `facegen render`)")
    manifest = read_manifest(directory)
    if manifest is not None:
        files = [directory / s["file"] for s in manifest.get("shards", [])]
        missing = [f for f in files if not f.exists()]
        if missing:
            raise FacegenError(f"{directory}: manifest lists {missing[0].name} but it is missing; re-run the "
                               "render command to re-create it.")
        for entry, f in zip(manifest["shards"], files):
            size = f.stat().st_size
            if entry.get("size") is not None and size != int(entry["size"]):
                raise FacegenError(
                    f"{f}: {size} bytes, but {directory / MANIFEST} records {int(entry['size'])}: the shard is "
                    f"truncated or damaged. Re-run the render command that made {directory} (it renders damaged "
                    f"shards again); `facegen verify {directory}` checks every shard.")
    else:
        files = sorted(directory.glob("shard-*.h5"))
    if not files:
        raise FacegenError(f"{directory}: no finished shards (shard-*.h5) found")
    return files


def open_shards(*directories: Path | str) -> ShardSet:
    """Open the shards of one or more directories for random access. All must share one spec."""
    files: list[Path] = []
    for d in directories:
        files += find_shards(Path(d))
    counts, attrs = [], None
    for f in files:
        try:
            with h5py.File(f, "r") as h:
                if h.attrs.get("format") != FORMAT:
                    raise FacegenError(f"{f}: not a facegen shard")
                if int(h.attrs["format_version"]) > FORMAT_VERSION:
                    raise FacegenError(f"{f}: shard format {h.attrs['format_version']} is newer than this "
                                       f"facegen reads ({FORMAT_VERSION}); upgrade facegen")
                counts.append(int(h.attrs["num_samples"]))
                a = {k: _decode(v) for k, v in h.attrs.items()}
        except OSError as e:
            raise FacegenError(f"{f}: cannot open as HDF5 ({e}); delete it and re-run the render command") from None
        if attrs is None:
            attrs = a
        elif a.get("spec_hash") != attrs.get("spec_hash"):
            raise FacegenError(f"{f}: spec {a.get('spec_name')} differs from {attrs.get('spec_name')} of "
                               f"{files[0]}; train on one spec at a time")
    return ShardSet(files=files, counts=counts, attrs=attrs or {})



def _decode(value: Any) -> Any:
    if isinstance(value, bytes):
        return value.decode()
    if isinstance(value, np.ndarray):
        return value.tolist() if value.dtype.kind in "iuf" else value
    if isinstance(value, np.generic):
        return value.item()
    return value
