"""A checkpoint alone can predict: `load_predictor(path) -> Predictor`.

Checkpoints embed the training config, the model's construction arguments and the landmark spec (YAML,
names, flip map, iBUG-68 correspondence), so nothing else is needed at prediction time. A checkpoint may
also hold a label adapter (`adapter`, trainer/adapters.py): the Predictor then predicts iBUG-68 through
it on request (`predict(..., adapter=True)`, `predict_modes`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from facegen.errors import FacegenError
from facegen.specs import IBUG68_FLIP
from facegen.trainer.models import create_model
from facegen.trainer.transforms import apply_matrix, build_transforms, invert


def pick_device(device: str = "auto") -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise FacegenError(f"--device {device}: CUDA is not available on this machine; use --device cpu")
    try:
        dev = torch.device(device)
    except RuntimeError:
        raise FacegenError(f"--device {device}: not a device; use auto, cpu, cuda or cuda:N") from None
    if dev.type == "cuda" and dev.index is not None and dev.index >= torch.cuda.device_count():
        raise FacegenError(f"--device {device}: this machine has {torch.cuda.device_count()} CUDA device(s), "
                           f"cuda:0 to cuda:{torch.cuda.device_count() - 1}")
    return dev


@dataclass
class SpecInfo:
    """What a checkpoint remembers of its landmark spec."""
    name: str
    yaml: str
    names: list[str]
    flip_map: np.ndarray
    ibug68: np.ndarray | None  # (68,) spec point for each iBUG-68 point, or None

    def as_dict(self) -> dict:
        return {"name": self.name, "yaml": self.yaml, "names": list(self.names), "flip_map": self.flip_map.tolist(),
                "ibug68": None if self.ibug68 is None else self.ibug68.tolist()}

    @classmethod
    def from_dict(cls, d: dict) -> "SpecInfo":
        return cls(d.get("name", ""), d.get("yaml", ""), list(d.get("names", [])), np.asarray(d["flip_map"], np.int64),
                   None if d.get("ibug68") is None else np.asarray(d["ibug68"], np.int64))

    def _doc(self) -> dict:
        import yaml

        try:
            doc = yaml.safe_load(self.yaml) if self.yaml else None
        except yaml.YAMLError:
            doc = None
        return doc if isinstance(doc, dict) else {}

    def correspondence(self, convention: str = "2d") -> np.ndarray | None:
        """(68,) spec point for each iBUG-68 point in the dataset's jaw convention: "2d" (the visible
        outline, 300-W) or "3d" (fixed surface points, AFLW2000-3D). None when the spec gives none."""
        if convention == "3d" and self._doc().get("ibug68_3d") is not None:
            return np.asarray(self._doc()["ibug68_3d"], np.int64)
        if self.ibug68 is not None:
            return self.ibug68
        return np.arange(68) if len(self.flip_map) == 68 else None

    def jaw_convention(self) -> str | None:
        """"2d" when the spec's jaw points follow the outline (contours), "3d" when they are fixed surface
        points, None when unknown (no YAML)."""
        points = self._doc().get("points")
        index = self.correspondence("3d")
        if not isinstance(points, list) or index is None or len(points) != len(self.flip_map):
            return None
        return "2d" if any(isinstance(points[i], dict) and "contour" in points[i] for i in index[:17]) else "3d"


class Predictor:
    """Crop a face from a box, run the model, map landmarks back to the image."""

    def __init__(self, model: torch.nn.Module, spec: SpecInfo, input_size: int, crop_scale: float,
                 gray: bool, device: torch.device, config: dict | None = None,
                 adapter: torch.nn.Module | None = None, adapter_info: dict | None = None, flip: bool = False):
        self.model = model.to(device).eval()
        # test-time flip: also run the mirrored crop and average the two, each point with its mirrored partner
        self.flip = flip
        self.spec, self.input_size, self.crop_scale, self.gray = spec, input_size, crop_scale, gray
        self.device = device
        self.config = config or {}
        self.transform = build_transforms(input_size, crop_scale, train=False, gray=gray)
        # a label adapter (trainer/adapters.py): the model's output -> iBUG-68 as annotators place them;
        # adapter_info: its name, the jaw convention it was fitted in and where (no weights)
        self.adapter = adapter.to(device).eval() if adapter is not None else None
        self.adapter_info = adapter_info or {}

    @property
    def num_landmarks(self) -> int:
        return len(self.spec.flip_map)

    @torch.no_grad()
    def predict_modes(self, images: Sequence[np.ndarray], boxes: Sequence[Sequence[float]], batch_size: int = 16,
                      adapter: bool = True) -> dict[str, np.ndarray]:
        """One forward pass, image pixels: `points` (N, L, 2), the model's own landmarks, and `adapter`
        (N, 68, 2), iBUG-68 through the checkpoint's adapter (when it has one and `adapter` is true).

        The box plays the role of the landmark box in training (the crop is scale x its longer side)."""
        use_adapter = adapter and self.adapter is not None
        out: dict[str, list] = {"points": [], **({"adapter": []} if use_adapter else {})}
        for start in range(0, len(images), batch_size):
            crops, mats = [], []
            for img, box in zip(images[start:start + batch_size], boxes[start:start + batch_size]):
                s = self.transform({"image": img, "landmarks": np.zeros((1, 2), np.float32), "box": box})
                crops.append(torch.from_numpy(np.ascontiguousarray(s["image"].transpose(2, 0, 1))))
                mats.append(s["matrix"])
            x = torch.stack(crops).to(self.device).float() / 255.0
            output = self.model(x)
            crop_pts = {"points": output["landmarks"]}
            if use_adapter:  # the adapter works in crop pixels, like the model; both map back the same way
                crop_pts["adapter"] = self.adapter(output)["landmarks"]
            if self.flip:
                side = self.input_size
                mirrored = self.model(x.flip(-1))
                crop_pts["points"] = 0.5 * (crop_pts["points"] + unflip(mirrored["landmarks"], self.spec.flip_map, side))
                if use_adapter:
                    crop_pts["adapter"] = 0.5 * (crop_pts["adapter"]
                                                 + unflip(self.adapter(mirrored)["landmarks"], IBUG68_FLIP, side))
            for k, v in crop_pts.items():
                out[k] += [apply_matrix(p, invert(m)) for p, m in zip(v.float().cpu().numpy(), mats)]
        empty = {"points": self.num_landmarks, "adapter": 68}
        return {k: np.stack(v) if v else np.zeros((0, empty[k], 2), np.float32) for k, v in out.items()}

    def predict(self, images: Sequence[np.ndarray], boxes: Sequence[Sequence[float]], batch_size: int = 16,
                adapter: bool = False) -> np.ndarray:
        """RGB uint8 images and face boxes (x0, y0, x1, y1) -> (N, L, 2) landmarks in image pixels, or with
        `adapter` (N, 68, 2) iBUG-68 points through the checkpoint's adapter."""
        if adapter and self.adapter is None:
            raise FacegenError("this checkpoint has no label adapter; fit one with `facegen adapt`")
        return self.predict_modes(images, boxes, batch_size, adapter)["adapter" if adapter else "points"]

    def predict_one(self, image: np.ndarray, box: Sequence[float]) -> np.ndarray:
        return self.predict([image], [box])[0]


def unflip(points: torch.Tensor, flip_map: np.ndarray, size: int) -> torch.Tensor:
    """Landmarks (B, L, 2) predicted on horizontally mirrored `size` x `size` crops, in the unmirrored crop:
    x -> size - 1 - x (pixel centres at integers), and each point takes its mirror partner's place."""
    out = points[:, torch.as_tensor(np.asarray(flip_map), device=points.device)].clone()
    out[..., 0] = (size - 1) - out[..., 0]
    return out


CHECKPOINT_KEYS = ("model_state", "arch", "spec")
RESUME_KEYS = CHECKPOINT_KEYS + ("optimizer", "scheduler", "scaler", "step", "best")


def read_checkpoint(path: Path | str, keys: Sequence[str] = CHECKPOINT_KEYS) -> dict:
    """A checkpoint written by `facegen train`, holding at least `keys`; a FacegenError naming the file if not."""
    path = Path(path)
    if not path.exists():
        raise FacegenError(f"{path}: no such checkpoint (train writes last.pt and best.pt in its --out folder)")
    if path.is_dir():
        raise FacegenError(f"{path}: is a folder; give the last.pt or best.pt file inside it")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as e:  # torch raises many types for a bad file
        raise FacegenError(f"{path}: not a readable checkpoint ({type(e).__name__}: {e})") from None
    missing = [k for k in keys if not isinstance(ckpt, dict) or k not in ckpt]
    if missing:
        raise FacegenError(f"{path}: not a facegen training checkpoint (no {', '.join(missing)})")
    return ckpt


def load_predictor(path: Path | str, device: str = "auto", flip: bool | None = None) -> Predictor:
    """Build a Predictor from a checkpoint written by `facegen train` (or `facegen adapt`: with its adapter);
    test-time `flip` as trained (`test_flip` in its config) unless given."""
    predictor = predictor_from(read_checkpoint(path), device, str(path))
    if flip is not None:
        predictor.flip = flip
    return predictor


def predictor_from(ckpt: dict, device: str = "auto", source: str = "checkpoint") -> Predictor:
    """A Predictor from a checkpoint's contents (`read_checkpoint`), its label adapter included."""
    arch = ckpt["arch"]
    model = create_model(arch["name"], arch["num_landmarks"], **arch["kwargs"])
    model.load_state_dict(ckpt["model_state"])
    cfg = ckpt.get("config", {})
    adapter, info = None, None
    if ckpt.get("adapter"):
        from facegen.trainer.adapters import adapter_from_record, adapter_info

        adapter, info = adapter_from_record(ckpt["adapter"], source), adapter_info(ckpt["adapter"])
    return Predictor(model, SpecInfo.from_dict(ckpt["spec"]), int(cfg.get("input_size", 256)),
                     float(cfg.get("crop_scale", 1.25)), bool(cfg.get("gray", False)), pick_device(device), cfg,
                     adapter, info, flip=bool(cfg.get("test_flip", False)))
