"""Trainer test helpers: tiny generated shards (no renderer needed) and paths to ../shared data."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np

from facegen.generator.segmentation import OCCLUDER_ID
from facegen.shards import ShardWriter, shard_name

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
REAL_MINI = SHARED / "data" / "real300w-mini"


def toy_face(rng: np.random.Generator, size: int, num_landmarks: int = 68) -> tuple[np.ndarray, np.ndarray]:
    """A drawable stand-in for a face: landmarks on a jittered template, each drawn as a coloured dot."""
    t = np.linspace(0, 2 * np.pi, num_landmarks, endpoint=False)
    template = np.stack([np.cos(t) * (0.5 + 0.2 * np.sin(3 * t)), np.sin(t) * 0.6], 1)
    scale = size * rng.uniform(0.25, 0.35)
    angle = rng.uniform(-0.3, 0.3)
    rot = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    pts = template @ rot.T * scale + size / 2 + rng.uniform(-0.08, 0.08, 2) * size
    pts = pts + rng.normal(0, 0.01 * size, pts.shape)
    img = np.full((size, size, 3), 40, np.uint8)
    img[:] = rng.integers(20, 80, 3, dtype=np.uint8)
    for k, (x, y) in enumerate(pts):
        colour = tuple(int(c) for c in (255 * (k / num_landmarks), 200, 255 - 255 * (k / num_landmarks)))
        cv2.circle(img, (int(round(x)), int(round(y))), max(1, size // 64), colour, -1)
    return img, pts.astype(np.float32)


def write_toy_shards(out: Path, n: int, size: int = 64, num_landmarks: int = 68, shard_size: int = 16,
                     seed: int = 0, occluded_by: np.ndarray | None = None) -> Path:
    """A folder of valid facegen shards holding toy faces (format only; no face model involved).
    `occluded_by`: (L,) OCCLUDERS codes every sample gets (visibility 1 where 0); default all seen."""
    out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    names = [f"p{i}" for i in range(num_landmarks)]
    flip = list(range(num_landmarks))
    attrs = {"spec_name": f"toy{num_landmarks}", "spec_yaml": f"name: toy{num_landmarks}\n", "spec_hash": "toy",
             "landmark_names": json.dumps(names), "flip_map": flip,
             "ibug68": list(np.linspace(0, num_landmarks - 1, 68).round().astype(int)),
             "image_size": [size, size], "renderer": "toy", "seed": seed}
    codes = np.zeros(num_landmarks, np.uint8) if occluded_by is None else np.asarray(occluded_by, np.uint8)
    shards = []
    for k, start in enumerate(range(0, n, shard_size)):
        m = min(shard_size, n - start)
        with ShardWriter(out / shard_name(k), m, (size, size), num_landmarks, 2, 2, attrs) as w:
            for i in range(m):
                img, pts = toy_face(rng, size, num_landmarks)
                w.add({"image": img, "landmarks_2d": pts, "landmarks_3d": np.zeros((num_landmarks, 3)),
                       "visibility": (codes == OCCLUDER_ID["none"]).astype(np.uint8),
                       "in_frame": (codes != OCCLUDER_ID["out_of_frame"]).astype(np.uint8),
                       "occluded_by": codes,
                       "head_pose": np.zeros(6), "K": np.eye(3), "camera_R": np.eye(3), "camera_t": np.zeros(3),
                       "identity": np.zeros(2), "expression": np.zeros(2), "sample_index": start + i,
                       "params": {"i": start + i}})
        shards.append(shard_name(k))
    return out
