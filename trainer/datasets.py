"""Datasets: facegen shards, 300-W (official layout) and any .pts folder, and Microsoft FaceSynthetics.

Each dataset yields dicts of tensors: `image` uint8 (C, S, S) (kept uint8 so workers ship 4x fewer bytes;
the model step converts to float), `landmarks` float32 (L, 2) in crop pixels, `visibility` float32 (L,),
`occluded_by` uint8 (L,) (what hides each point: UNKNOWN_OCCLUDER where the data does not say),
`matrix` float32 (3, 3) original image -> crop (to map predictions back), `index`.

Randomness: each process (main or DataLoader worker) owns one numpy Generator seeded from (seed, worker id)
(and, under torchrun, the rank: `stream`),
consumed in the order the sampler hands out indices, so a run is reproducible for a given --seed and
worker count, and augmentation differs between epochs even with persistent workers.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Callable, Sequence

import cv2
import numpy as np
import torch
from torch.utils.data import Dataset, get_worker_info

from facegen.errors import FacegenError
from facegen.shards import inflate_chunk, open_shards
from facegen.trainer.annotations import (IMAGE_EXTS, W300_FOLDERS, W300_SPLITS, YAW_BINS, find_image, read_ldmks,
                                        read_pts)

# A batch's `occluded_by` holds generator/segmentation.py's OCCLUDERS codes where the data has them
# (renders); a hidden point of data that does not say what hides it (real faces) gets this code.
UNKNOWN_OCCLUDER = 255

# iBUG-68 horizontal flip partner of each point (0-based)
IBUG68_FLIP = np.array([16, 15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0, 26, 25, 24, 23, 22, 21, 20, 19,
                        18, 17, 27, 28, 29, 30, 35, 34, 33, 32, 31, 45, 44, 43, 42, 47, 46, 39, 38, 37, 36, 41, 40,
                        54, 53, 52, 51, 50, 49, 48, 59, 58, 57, 56, 55, 64, 63, 62, 61, 60, 67, 66, 65])


def read_image(path: Path | str) -> np.ndarray:
    """RGB uint8 (H, W, 3); a clear error naming the file if it cannot be read."""
    img = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if img is None:
        raise FacegenError(f"{path}: cannot read image (missing or not an image file)")
    return cv2.cvtColor(img, cv2.COLOR_BGR2RGB)


def split_indices(n: int, val_fraction: float, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """A fixed random hold-out: (train, val) index arrays; at least one val sample when n > 1."""
    perm = np.random.default_rng([seed, 7919]).permutation(n)
    k = int(round(n * val_fraction)) if n > 1 else 0
    k = max(k, 1) if val_fraction > 0 and n > 1 else k
    return np.sort(perm[k:]), np.sort(perm[:k])


class LandmarkDataset(Dataset):
    """Base: subclasses give `__len__` and `raw(i) -> {'image', 'landmarks', ...}` in image pixels."""

    transform: Callable | None = None
    seed: int = 0
    stream: int = 0  # a process's own augmentation stream beside the seed (the rank under torchrun; 0: as alone)
    # How the labels place the jaw: "2d" the visible outline (300-W markup), "3d" fixed surface points
    # projected through (AFLW2000-3D, 300W-LP pts_3d); scoring picks the spec's matching correspondence.
    jaw_convention: str = "2d"

    def raw(self, i: int) -> dict:
        raise NotImplementedError

    def _rng(self) -> np.random.Generator:
        pid = os.getpid()
        if getattr(self, "_rng_pid", None) != pid:
            info = get_worker_info()
            key = [self.seed, (info.id + 1) if info else 0] + ([self.stream] if self.stream else [])
            self._rng_state = np.random.default_rng(key)
            self._rng_pid = pid
        return self._rng_state

    def __getitem__(self, i: int) -> dict:
        sample = self.raw(int(i))
        if self.transform is not None:
            sample = self.transform(sample, self._rng())
        img = np.ascontiguousarray(sample["image"])
        if img.ndim == 2:
            img = img[:, :, None]
        lm = np.asarray(sample["landmarks"], np.float32)
        visibility = np.asarray(sample["visibility"] if "visibility" in sample else np.ones(len(lm)), np.float32)
        # What hides each point (generator/segmentation.py OCCLUDERS) where the data says it (renders);
        # UNKNOWN_OCCLUDER for the hidden points of data that does not (real faces, older shards)
        occluded_by = sample.get("occluded_by")
        if occluded_by is None:
            occluded_by = np.where(visibility > 0, 0, UNKNOWN_OCCLUDER)
        # HWC -> CHW with cv2.split: ~0.06 ms against ~6-9 ms for torch's permute().contiguous() on uint8
        chw = np.stack(cv2.split(img)) if img.shape[2] > 1 else img.transpose(2, 0, 1).copy()
        out = {"image": torch.from_numpy(chw),
               "landmarks": torch.from_numpy(lm),
               "visibility": torch.from_numpy(visibility),
               "occluded_by": torch.from_numpy(np.asarray(occluded_by, np.uint8)),
               "matrix": torch.from_numpy(np.asarray(sample["matrix"] if "matrix" in sample else np.eye(3), np.float32)),
               "index": int(i)}
        return out

    def __getstate__(self) -> dict:
        state = dict(self.__dict__)
        state.pop("_rng_state", None)
        state.pop("_rng_pid", None)
        state.pop("_label_cache", None)
        state.pop("_image_cache", None)
        return state


class ShardDataset(LandmarkDataset):
    """Samples of one or more `facegen render` folders, read lazily (h5py opened per worker)."""

    def __init__(self, dirs: Sequence[Path | str], transform: Callable | None = None, seed: int = 0,
                 indices: Sequence[int] | None = None):
        self.shards = open_shards(*dirs)
        self.transform = transform
        self.seed = seed
        self.indices = np.arange(len(self.shards)) if indices is None else np.asarray(indices, np.int64)

    @property
    def num_landmarks(self) -> int:
        return self.shards.num_landmarks

    @property
    def flip_map(self) -> np.ndarray:
        return self.shards.flip_map

    @property
    def spec_yaml(self) -> str:
        return self.shards.spec_yaml

    @property
    def ibug68(self) -> np.ndarray | None:
        v = self.shards.attrs.get("ibug68")
        return None if v is None or len(v) != 68 else np.asarray(v, np.int64)

    def subset(self, indices: Sequence[int], transform: Callable | None = None) -> "ShardDataset":
        """The same shards restricted to `indices` (positions in this dataset), e.g. a validation split."""
        other = object.__new__(ShardDataset)
        other.shards, other.seed = self.shards, self.seed
        other.transform = transform if transform is not None else self.transform
        other.indices = self.indices[np.asarray(indices, np.int64)]
        return other

    def __len__(self) -> int:
        return len(self.indices)

    def _labels(self, k: int) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
        """All labels of shard k, read once per process (small next to the images): points,
        visibility and occluders (None in shards made before they were labelled)."""
        cache = self.__dict__.setdefault("_label_cache", {})
        if k not in cache:
            f = self.shards._file(k)
            cache[k] = (f["landmarks_2d"][:].astype(np.float32), f["visibility"][:].astype(np.float32),
                        f["occluded_by"][:] if "occluded_by" in f else None)
        return cache[k]

    def _image(self, k: int, j: int) -> np.ndarray:
        """One image. Shards store one gzip chunk per image: read the chunk's bytes and inflate them directly
        (ISA-L, facegen.shards.inflate_chunk), skipping h5py's per-read selection machinery and its zlib."""
        d, shape, direct = self._image_dataset(k)
        if direct:
            mask, raw = d.id.read_direct_chunk((j,) + (0,) * len(shape))
            if mask == 0:
                return np.frombuffer(inflate_chunk(raw, int(np.prod(shape))), np.uint8).reshape(shape)
        return d[j]

    def _image_dataset(self, k: int):
        """Shard k's image dataset and whether its chunks can be inflated directly, looked up once per
        process (each h5py property is a call into HDF5: together they cost as much as the read)."""
        pid, cache = self.__dict__.get("_image_cache", (None, None))
        if pid != os.getpid():  # a forked worker opens its own handles (ShardSet._file does the same)
            cache = {}
            self.__dict__["_image_cache"] = (os.getpid(), cache)
        if k not in cache:
            d = self.shards._file(k)["image"]
            direct = (d.chunks == (1, *d.shape[1:]) and d.compression == "gzip" and not d.shuffle
                      and not d.fletcher32 and d.scaleoffset is None)
            cache[k] = (d, d.shape[1:], direct)
        return cache[k]

    def raw(self, i: int) -> dict:
        k, j = self.shards.locate(int(self.indices[i]))
        lm, vis, occluded_by = self._labels(k)
        out = {"image": self._image(k, j), "landmarks": lm[j].copy(), "visibility": vis[j].copy()}
        if occluded_by is not None:
            out["occluded_by"] = occluded_by[j].copy()
        return out


class ShardTestSet(LandmarkDataset):
    """A folder of `facegen render` shards as a test set (`facegen eval --dataset shards`), any spec.

    `names` are the samples' job-wide indices (`000123`). The points compared are `points` (indices into
    the spec; all of them by default): `compared_with(spec)` picks them for a checkpoint: the spec's own
    points when the checkpoint has the same landmark names, else iBUG-68 through the shards' correspondence
    in their jaw convention (`jaw_convention`: "3d" for a spec whose jaw is on fixed surface points, as
    ibug68_3d, else "2d"). `raw(i)` gives the compared points, so the face crop comes from their box, as on
    real faces. Head pose gives the |yaw| subsets and the render's depth test the per-point visibility."""

    def __init__(self, root: Path | str, points: Sequence[int] | None = None, compared: str = "spec"):
        from facegen.trainer.predictor import SpecInfo

        self.root = Path(root)
        self.shards = open_shards(self.root)
        a = self.shards.attrs
        ibug = a.get("ibug68")
        self.spec = SpecInfo(str(a.get("spec_name", "")), str(a.get("spec_yaml", "")), self.shards.landmark_names,
                             self.shards.flip_map, None if ibug is None or len(ibug) != 68 else np.asarray(ibug, np.int64))
        self.jaw_convention = self.spec.jaw_convention() or "2d"
        num = self.shards.num_landmarks
        self.points = np.arange(num) if points is None else np.asarray(points, np.int64)
        self.compared = compared  # "spec" (the shards' own points) or "ibug68"
        self.names = [f"{int(i):06d}" for i in self.shards.read_all("sample_index")]
        self.transform, self.seed = None, 0
        self.flip_map = IBUG68_FLIP if compared == "ibug68" else self.shards.flip_map

    def in_ibug68(self) -> "ShardTestSet":
        """The same samples compared on iBUG-68: the shards' own correspondence in their jaw convention."""
        index = self.spec.correspondence(self.jaw_convention)
        if index is None:
            raise FacegenError(f"{self.root}: spec {self.spec.name!r} ({self.shards.num_landmarks} points) has no "
                               "iBUG-68 correspondence (no `ibug68` attribute); compare it with a checkpoint of "
                               "the same spec")
        return ShardTestSet(self.root, index, "ibug68")

    def compared_with(self, spec, compare: str = "auto") -> "ShardTestSet":
        """The points to compare with a checkpoint's `spec` (a SpecInfo): its own when the landmark names are
        the shards' (`compare='auto'` or 'spec'), else iBUG-68 on both sides (`auto` or 'ibug68')."""
        same = list(spec.names) == self.shards.landmark_names
        if compare == "spec" or (compare == "auto" and same):
            if not same:
                raise FacegenError(f"{self.root}: the shards' spec {self.spec.name!r} has other points than the "
                                   f"checkpoint's {spec.name!r}; compare them on iBUG-68 instead")
            return self
        if spec.correspondence(self.jaw_convention) is None:
            raise FacegenError(f"{self.root}: the checkpoint's spec {spec.name!r} ({len(spec.flip_map)} points) "
                               f"has other points than the shards' {self.spec.name!r} and no iBUG-68 "
                               "correspondence, so they cannot be compared; evaluate it on shards of its own spec")
        return self.in_ibug68()

    def __len__(self) -> int:
        return len(self.names)

    def _array(self, name: str) -> np.ndarray:
        cache = self.__dict__.setdefault("_label_cache", {})
        if name not in cache:
            cache[name] = self.shards.read_all(name)
        return cache[name]

    def raw(self, i: int) -> dict:
        return {"image": self.shards.read(int(i), keys=("image",))["image"],
                "landmarks": self._array("landmarks_2d")[i, self.points].astype(np.float32),
                "visibility": self._array("visibility")[i, self.points].astype(np.float32)}

    def ground_truth(self) -> np.ndarray:
        """(N, L, 2) the compared points in image pixels."""
        return self._array("landmarks_2d")[:, self.points].astype(np.float64)

    def visibility(self) -> np.ndarray:
        """(N, L) bool: the compared points visible in the image (not self-occluded and in frame)."""
        return self._array("visibility")[:, self.points].astype(bool)

    @property
    def yaw(self) -> np.ndarray:
        return self._array("head_pose")[:, 0].astype(np.float64)

    def subsets(self) -> dict[str, list[int]]:
        """Sample indices per |yaw| bin, as AFLW2000-3D's (60 and beyond join the last)."""
        return yaw_bins(self.yaw)

    def groups(self) -> dict[str, list[int]]:
        """Point indices per spec group of the compared points (iBUG-68's regions when compared on iBUG-68)."""
        from facegen.trainer.annotations import IBUG68_REGIONS, spec_groups

        if self.compared == "ibug68":
            return dict(IBUG68_REGIONS)
        a = self.shards.attrs
        if "landmark_groups" in a:
            import json

            groups = {str(g): list(v) for g, v in json.loads(a["landmark_groups"]).items()}
        else:
            groups = spec_groups(self.spec.yaml, self.shards.num_landmarks)
        where = {int(p): k for k, p in enumerate(self.points)}
        return {g: [where[i] for i in idx if i in where] for g, idx in groups.items()}

    def is_ibug68(self) -> bool:
        """Whether the compared points are iBUG-68 in its order (eye-based normalisations apply)."""
        if self.compared == "ibug68":
            return True
        index = self.spec.correspondence(self.jaw_convention)
        return len(self.points) == 68 and index is not None and np.array_equal(index, np.arange(68))


def yaw_bins(yaw: np.ndarray) -> dict[str, list[int]]:
    """Indices per |yaw| bin (YAW_BINS: [0, 30), [30, 60), [60, 90]; beyond 90 joins the last)."""
    a = np.abs(np.asarray(yaw, np.float64))
    bins = {name: np.flatnonzero((a >= lo) & (a < hi)) for name, (lo, hi) in YAW_BINS.items()}
    bins["yaw 60-90"] = np.flatnonzero(a >= 60.0)
    return {name: idx.tolist() for name, idx in bins.items()}


def export_pts(shards_root: Path | str, out: Path | str, points: str = "ibug68") -> Path:
    """Write a shard folder's samples as a `.pts` folder: `NNNNNN.png` + `NNNNNN.pts` (1-based, as 300-W),
    in iBUG-68 (`points='ibug68'`: the shards' correspondence in their jaw convention) or every spec point
    (`points='all'`). Any tool that reads 300-W-style folders then reads renders; `facegen eval --dataset
    folder` on it scores what `--dataset shards` scores."""
    from facegen.trainer.annotations import write_pts

    if points not in ("ibug68", "all"):
        raise FacegenError(f"points={points!r}: use 'ibug68' or 'all'")
    ds = ShardTestSet(shards_root)
    if points == "ibug68":
        ds = ds.in_ibug68()
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    gt = ds.ground_truth()
    for i, name in enumerate(ds.names):
        image = ds.shards.read(i, keys=("image",))["image"]
        if not cv2.imwrite(str(out / f"{name}.png"), cv2.cvtColor(image, cv2.COLOR_RGB2BGR)):
            raise FacegenError(f"{out / (name + '.png')}: cannot write the image (is the folder writable?)")
        write_pts(out / f"{name}.pts", gt[i])
    return out


class PtsFolder(LandmarkDataset):
    """Images with 300-W `.pts` beside them (or 300-VW `imgs/` + `annot/`), found recursively under `root`.

    `names` are paths relative to root without suffix (the scorer matches on them). The face crop uses the
    ground-truth landmark box (the 300-W protocol) unless the transform is told otherwise."""

    def __init__(self, root: Path | str, transform: Callable | None = None, folders: Sequence[str] | None = None,
                 seed: int = 0):
        self.root = Path(root)
        if not self.root.is_dir():
            raise FacegenError(f"{self.root}: no such folder (expected images with .pts annotations)")
        self.transform, self.seed = transform, seed
        bases = [self.root / f for f in folders] if folders else [self.root]
        files: list[Path] = []
        for b in bases:
            files += sorted(b.rglob("*.pts"))
        self.items: list[tuple[Path, Path]] = []
        for pts in files:
            img = find_image(pts)
            if img is None:
                raise FacegenError(f"{pts}: no image with the same name beside it or in ../imgs/ "
                                   f"(any format OpenCV reads: {', '.join(IMAGE_EXTS)})")
            self.items.append((img, pts))
        if not self.items:
            raise FacegenError(f"{self.root}: no .pts files found" + (f" in {', '.join(folders)}" if folders else ""))
        self.names = [p.relative_to(self.root).with_suffix("").as_posix() for _, p in self.items]
        self.flip_map = IBUG68_FLIP

    def __len__(self) -> int:
        return len(self.items)

    def _points(self, pts: Path) -> np.ndarray:
        return read_pts(pts, 68, "iBUG-68 has 68 (a .pts folder is read as iBUG-68 faces)")

    def raw(self, i: int) -> dict:
        img, pts = self.items[i]
        landmarks = self._points(pts)  # a bad file is named before its image is decoded
        return {"image": read_image(img), "landmarks": landmarks}

    def ground_truth(self) -> np.ndarray:
        """(N, 68, 2) labels in original image pixels (project convention)."""
        return np.stack([self._points(p) for _, p in self.items])


class _MatLandmarks(LandmarkDataset):
    """A dataset read from MATLAB files at start-up: `items` (image paths), `points` (N, 68, 2) 0-based
    pixels and `yaw` (N,) degrees, set by the subclass."""

    items: list[Path]
    points: np.ndarray
    yaw: np.ndarray

    def __len__(self) -> int:
        return len(self.items)

    def raw(self, i: int) -> dict:
        return {"image": read_image(self.items[i]), "landmarks": self.points[i].astype(np.float32)}

    def ground_truth(self) -> np.ndarray:
        return self.points.copy()


def _yaw_degrees(pose_para: np.ndarray) -> float:
    """Yaw of a 3DDFA `Pose_Para` (pitch, yaw, roll in radians, ...) in degrees, wrapped to +-180 (a few
    fits wrap past it)."""
    return float((np.degrees(np.ravel(pose_para)[1]) + 180.0) % 360.0 - 180.0)


class AFLW2000(_MatLandmarks):
    """AFLW2000-3D in its official layout: `imageNNNNN.jpg` + `imageNNNNN.mat` (`pt3d_68`, `Pose_Para`).

    `pt3d_68` rows are x, y, z; x and y are MATLAB pixel coordinates (1-based: the centre of the top-left
    pixel is (1, 1)), converted here to the project's 0-based convention, the same as `.pts` files.
    The 68 points follow the 3D-fit convention (the jaw is the projected 3D jaw line, not the visible
    outline). `Pose_Para` = pitch, yaw, roll (radians), tx, ty, tz, scale; `yaw` is read along, in degrees."""

    jaw_convention = "3d"

    def __init__(self, root: Path | str, transform: Callable | None = None, seed: int = 0):
        from scipy.io import loadmat

        self.root = Path(root)
        if not self.root.is_dir():
            raise FacegenError(f"{self.root}: no such folder (expected AFLW2000-3D's imageNNNNN.jpg + .mat files)")
        self.transform, self.seed = transform, seed
        mats = sorted(self.root.glob("image*.mat"))
        if not mats:
            raise FacegenError(f"{self.root}: no imageNNNNN.mat files (the official AFLW2000-3D layout)")
        self.items, points, yaws = [], [], []
        for mat in mats:
            img = mat.with_suffix(".jpg")
            if not img.exists():
                raise FacegenError(f"{mat}: no {img.name} beside it")
            try:
                m = loadmat(str(mat), variable_names=["pt3d_68", "Pose_Para"])
                pt3d, pose = np.asarray(m["pt3d_68"], np.float64), np.asarray(m["Pose_Para"], np.float64).ravel()
            except (KeyError, ValueError, OSError) as e:
                raise FacegenError(f"{mat}: not an AFLW2000-3D annotation with pt3d_68 and Pose_Para ({e})") from None
            if pt3d.shape != (3, 68) or len(pose) < 3 or not np.isfinite(pt3d).all():
                raise FacegenError(f"{mat}: pt3d_68 must be 3 x 68 finite numbers and Pose_Para hold pitch, yaw, roll")
            self.items.append(img)
            points.append(pt3d[:2].T - 1.0)
            yaws.append(_yaw_degrees(pose))
        self.points = np.stack(points)
        self.yaw = np.array(yaws)
        self.names = [p.stem for p in self.items]
        self.flip_map = IBUG68_FLIP

    def subsets(self) -> dict[str, list[int]]:
        """Image indices per |yaw| bin ([0, 30), [30, 60), [60, 90]; the few beyond 90 join the last)."""
        return yaw_bins(self.yaw)


class W300LP(_MatLandmarks):
    """300W-LP (Zhu et al. 2016), the large-pose training set: `GROUP/NAME.jpg` (+ `NAME.mat` with
    `Pose_Para`) and `landmarks/GROUP/NAME_pts.mat` with `pts_3d` (the 3D-fit convention, as AFLW2000-3D
    and `ibug68_3d`) and `pts_2d` (the visible outline, as 300-W and `ibug68`), each 68 x 2.

    `convention` picks which. Coordinates are taken as MATLAB's 1-based pixels, like AFLW2000-3D's (both
    come from the same 3DDFA fitting code), and converted to 0-based here. Only the groups that have a
    `landmarks/` folder are read (the `_Flip` copies have none; flip augmentation does that job)."""

    def __init__(self, root: Path | str, convention: str = "3d", transform: Callable | None = None, seed: int = 0):
        from scipy.io import loadmat

        if convention not in ("3d", "2d"):
            raise FacegenError(f"300W-LP convention {convention!r}: use 3d (pts_3d) or 2d (pts_2d)")
        self.root = Path(root)
        self.jaw_convention = convention
        marks = sorted((self.root / "landmarks").glob("*/*_pts.mat"))
        if not marks:
            raise FacegenError(f"{self.root}: no landmarks/GROUP/NAME_pts.mat files (the official 300W-LP layout)")
        self.transform, self.seed = transform, seed
        key = f"pts_{convention}"
        self.items, points, yaws = [], [], []
        for mark in marks:
            group, name = mark.parent.name, mark.name[: -len("_pts.mat")]
            img = self.root / group / f"{name}.jpg"
            if not img.exists():
                raise FacegenError(f"{mark}: no image {img}")
            try:
                pts = np.asarray(loadmat(str(mark), variable_names=[key])[key], np.float64)
            except (KeyError, ValueError, OSError) as e:
                raise FacegenError(f"{mark}: no {key} in it ({e})") from None
            if pts.shape == (2, 68):
                pts = pts.T
            if pts.shape != (68, 2) or not np.isfinite(pts).all():
                raise FacegenError(f"{mark}: {key} must be 68 x 2 finite numbers, not {pts.shape}")
            pose_file = img.with_suffix(".mat")
            yaw = _yaw_degrees(loadmat(str(pose_file), variable_names=["Pose_Para"])["Pose_Para"]) \
                if pose_file.exists() else np.nan
            self.items.append(img)
            points.append(pts - 1.0)
            yaws.append(yaw)
        self.points, self.yaw = np.stack(points), np.array(yaws)
        self.names = [f"{p.parent.name}/{p.stem}" for p in self.items]
        self.flip_map = IBUG68_FLIP



def Real300W(root: Path | str, split: str = "full", transform: Callable | None = None, seed: int = 0) -> PtsFolder:
    """300-W in its official layout. Splits: train (3148), common (554), challenging (135), full (689),
    private (600), or a single folder group (helen, lfpw, ibug, indoor, outdoor)."""
    root = Path(root)
    groups = W300_SPLITS.get(split, (split,))
    if any(g not in W300_FOLDERS for g in groups):
        raise FacegenError(f"--split {split}: unknown 300-W split; choose one of "
                           f"{', '.join(dict.fromkeys([*W300_SPLITS, *W300_FOLDERS]))}")
    folders = [f for g in groups for f in W300_FOLDERS[g]]
    missing = [f for f in folders if not (root / f).is_dir()]
    if missing:
        raise FacegenError(f"{root}: missing {', '.join(missing)} for the 300-W {split!r} split "
                           "(expected the official layout: afw/, helen/, lfpw/, ibug/, 300W/)")
    return PtsFolder(root, transform=transform, folders=folders, seed=seed)


class FaceSynthetics(LandmarkDataset):
    """Microsoft FaceSynthetics: `{id}.png`, `{id}_ldmks.txt` (70 rows 'x y': iBUG-68 + 2 pupils), `{id}_seg.png`.

    `points=68` drops the pupils. The files hold pixel positions; `pixel_offset` is added to convert if a
    copy uses a different pixel-centre convention (0 by default: centres at integers, as in this project)."""

    def __init__(self, root: Path | str, transform: Callable | None = None, points: int = 68,
                 pixel_offset: float = 0.0, seed: int = 0):
        self.root = Path(root)
        if not self.root.is_dir():
            raise FacegenError(f"{self.root}: no such folder (expected FaceSynthetics {{id}}.png + {{id}}_ldmks.txt)")
        if points not in (68, 70):
            raise ValueError("points must be 68 or 70")
        self.ids = sorted(p.name[: -len("_ldmks.txt")] for p in self.root.glob("*_ldmks.txt"))
        if not self.ids:
            raise FacegenError(f"{self.root}: no *_ldmks.txt files")
        self.names = list(self.ids)
        self.transform, self.points, self.offset, self.seed = transform, points, pixel_offset, seed
        self.flip_map = IBUG68_FLIP if points == 68 else np.concatenate([IBUG68_FLIP, [69, 68]])

    def __len__(self) -> int:
        return len(self.ids)

    def ground_truth(self) -> np.ndarray:
        """(N, 68 or 70, 2) labels in image pixels."""
        return np.stack([read_ldmks(self.root / f"{k}_ldmks.txt")[: self.points] + self.offset for k in self.ids])

    def raw(self, i: int) -> dict:
        k = self.ids[i]
        pts = read_ldmks(self.root / f"{k}_ldmks.txt")
        sample = {"image": read_image(self.root / f"{k}.png"), "landmarks": pts[: self.points] + self.offset}
        seg = self.root / f"{k}_seg.png"
        if seg.exists():
            sample["segmentation"] = cv2.imread(str(seg), cv2.IMREAD_UNCHANGED)
        return sample


# Face boxes found in unlabelled images, per process: (path, mtime, size, detector min size) -> box or None.
# The Haar cascade takes ~0.2 s on a large photo; a run or test that opens the same folder again skips it.
_FACE_BOXES: dict[tuple, np.ndarray | None] = {}


class UnlabelledFaces(LandmarkDataset):
    """Real face images without labels (the target of domain adaptation): every image under `root`,
    recursively (annotations beside them are ignored), cropped around the largest face OpenCV's Haar cascade
    finds (trainer/predict.py's `FaceDetector`, its box mapped to landmark-box geometry, as `facegen predict`
    crops). Faces are detected once, here; images without one are left out (listed in `skipped`).

    `raw(i)` gives the image, its `box` (the transforms crop from it) and `landmarks`: zeros (68, 2), carried
    through the transforms but read by no loss. `flip_map` is the identity (there are no labels to swap)."""

    def __init__(self, root: Path | str, transform: Callable | None = None, seed: int = 0, min_face: int = 40):
        from facegen.trainer.predict import FaceDetector

        self.root = Path(root)
        if not self.root.is_dir():
            raise FacegenError(f"{self.root}: no such folder (expected unlabelled face images)")
        self.transform, self.seed = transform, seed
        files = sorted(p for p in self.root.rglob("*") if p.suffix.lower() in IMAGE_EXTS and p.is_file())
        if not files:
            raise FacegenError(f"{self.root}: no images found (any format OpenCV reads: {', '.join(IMAGE_EXTS)})")
        detector = FaceDetector(min_face)
        self.items: list[Path] = []
        self.boxes: list[np.ndarray] = []
        self.skipped: list[Path] = []
        for path in files:
            st = path.stat()
            key = (str(path.resolve()), st.st_mtime_ns, st.st_size, min_face)
            if key not in _FACE_BOXES:
                faces = detector(read_image(path))  # largest first
                _FACE_BOXES[key] = faces[0] if faces else None
            box = _FACE_BOXES[key]
            if box is None:
                self.skipped.append(path)
            else:
                self.items.append(path)
                self.boxes.append(box)
        if not self.items:
            raise FacegenError(f"{self.root}: OpenCV's face detector found no face (of at least {min_face} px) in "
                               f"any of its {len(files)} images")
        self.names = [p.relative_to(self.root).with_suffix("").as_posix() for p in self.items]
        self.flip_map = np.arange(68)

    def __len__(self) -> int:
        return len(self.items)

    def raw(self, i: int) -> dict:
        return {"image": read_image(self.items[i]), "box": self.boxes[i].copy(),
                "landmarks": np.zeros((68, 2), np.float32)}
