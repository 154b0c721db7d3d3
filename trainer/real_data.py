"""Real iBUG-68 data as a training source: open a folder in any supported layout, and split it by seed.

`open_real(path)` reads 300-W (official layout: its train split), AFLW2000-3D (`.jpg` + `.mat`), 300W-LP
(`landmarks/GROUP/*_pts.mat`) or any folder of images with `.pts`. `real_split(n, n_real, seed)` holds out a
fixed test and validation part and picks the training faces from the rest, nested: the same seed gives the
same held-out faces whatever N, and a larger N contains every face of a smaller one (so an N_real sweep
only ever adds faces). `RealView` is a dataset restricted to some of those indices.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from facegen.errors import FacegenError
from facegen.trainer.annotations import W300_FOLDERS
from facegen.trainer.datasets import AFLW2000, LandmarkDataset, PtsFolder, Real300W, W300LP

REAL_FORMATS = ("auto", "300w", "aflw2000", "300w-lp", "folder")


def detect_format(root: Path) -> str:
    """The layout of a real-data folder, from what it holds."""
    if (root / "landmarks").is_dir() and any((root / "landmarks").glob("*/*_pts.mat")):
        return "300w-lp"
    if all((root / f).is_dir() for f in W300_FOLDERS["train"]):  # afw/, helen/trainset/, lfpw/trainset/
        return "300w"
    if any(root.glob("image*.mat")):
        return "aflw2000"
    return "folder"


def open_real(path: Path | str, fmt: str = "auto", transform: Callable | None = None, seed: int = 0,
              split: str = "train") -> LandmarkDataset:
    """A real landmark dataset; `split` picks the 300-W split when the folder is the official 300-W."""
    root = Path(path)
    if not root.is_dir():
        raise FacegenError(f"--real {root}: no such folder (a 300-W, AFLW2000-3D, 300W-LP or .pts folder)")
    if fmt not in REAL_FORMATS:
        raise FacegenError(f"--real-format {fmt!r}: use one of {', '.join(REAL_FORMATS)}")
    fmt = detect_format(root) if fmt == "auto" else fmt
    if fmt == "300w":
        return Real300W(root, split, transform=transform, seed=seed)
    if fmt == "aflw2000":
        return AFLW2000(root, transform=transform, seed=seed)
    if fmt == "300w-lp":
        return W300LP(root, transform=transform, seed=seed)
    return PtsFolder(root, transform=transform, seed=seed)


@dataclass(frozen=True)
class RealSplit:
    train: np.ndarray  # the N_real training faces (sorted)
    val: np.ndarray  # held out for choosing the best checkpoint
    test: np.ndarray  # held out for scoring; never trained or tuned on


def real_split(n: int, n_real: int | None = None, seed: int = 0, val_fraction: float = 0.1,
               test_fraction: float = 0.0) -> RealSplit:
    """Test and validation faces first (fixed by seed alone), then the first `n_real` of a seeded order of
    the rest (all of them when None): nested in N for one seed."""
    perm = np.random.default_rng([seed, 104729]).permutation(n)
    k_test = int(round(n * test_fraction))
    k_val = int(round(n * val_fraction))
    if val_fraction > 0 and n - k_test > 1:
        k_val = max(k_val, 1)
    test, val, pool = perm[:k_test], perm[k_test:k_test + k_val], perm[k_test + k_val:]
    if n_real is not None:
        if n_real < 0:
            raise FacegenError(f"--n-real {n_real}: must be >= 0")
        if n_real > len(pool):
            raise FacegenError(f"--n-real {n_real}: only {len(pool)} real faces are left for training after "
                               f"holding out {len(test)} for testing and {len(val)} for validation; use at most "
                               f"{len(pool)}")
        pool = pool[:n_real]
    return RealSplit(np.sort(pool), np.sort(val), np.sort(test))


class RealView(LandmarkDataset):
    """Some faces of a real dataset (names, labels, images), with its own transform."""

    def __init__(self, base: LandmarkDataset, indices: Sequence[int], transform: Callable | None = None,
                 seed: int = 0):
        self.base, self.indices = base, np.asarray(indices, np.int64)
        self.transform, self.seed = transform, seed
        self.root = getattr(base, "root", None)
        self.jaw_convention = base.jaw_convention
        self.names = [base.names[i] for i in self.indices]

    def __len__(self) -> int:
        return len(self.indices)

    def raw(self, i: int) -> dict:
        return self.base.raw(int(self.indices[i]))

    def ground_truth(self) -> np.ndarray:
        return self.base.ground_truth()[self.indices]

    def subsets(self) -> dict[str, list[int]]:
        """The base's own subsets (AFLW2000-3D yaw bins) restricted to these faces, re-indexed."""
        if not hasattr(self.base, "subsets"):
            return {}
        where = {int(j): k for k, j in enumerate(self.indices)}
        return {name: [where[j] for j in idx if j in where] for name, idx in self.base.subsets().items()}
