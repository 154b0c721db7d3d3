"""`facegen predict`: detect faces (OpenCV's bundled Haar cascade), predict landmarks, draw and save.

The path a webcam or video user takes: images, a folder of images, or a video file in; overlays (images or
an mp4) and JSON out. The detector ships inside opencv-python; nothing is downloaded at run time.
A checkpoint with a label adapter (trainer/adapters.py) predicts iBUG-68 through it unless told not to.
"""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np

from facegen.errors import FacegenError
from facegen.trainer.annotations import IMAGE_EXTS
from facegen.trainer.predictor import Predictor

VIDEO_EXTS = (".mp4", ".avi", ".mov", ".mkv", ".webm")

# A Haar frontal-face box sits higher and is larger than the iBUG-68 landmark box the models were cropped
# with in training; map it onto that box (centre down by dy x height, side x scale). Medians over the 10 faces
# it finds in ../shared/data/real300w-mini (dy 0.10-0.19, scale 0.74-0.93).
HAAR_TO_LANDMARK_BOX = {"dy": 0.15, "scale": 0.88}


class FaceDetector:
    """OpenCV's bundled Haar cascade; returns boxes (x0, y0, x1, y1) mapped to landmark-box geometry."""

    def __init__(self, min_size: int = 40):
        path = Path(cv2.data.haarcascades) / "haarcascade_frontalface_default.xml"
        self.cascade = cv2.CascadeClassifier(str(path))
        if self.cascade.empty():
            raise FacegenError(f"{path}: cannot load OpenCV's Haar cascade (is opencv-python installed whole?)")
        self.min_size = min_size

    def __call__(self, image: np.ndarray) -> list[np.ndarray]:
        gray = cv2.equalizeHist(cv2.cvtColor(image, cv2.COLOR_RGB2GRAY))
        found = self.cascade.detectMultiScale(gray, scaleFactor=1.1, minNeighbors=5,
                                              minSize=(self.min_size, self.min_size))
        boxes = []
        for x, y, w, h in (found if len(found) else []):
            cx, cy = x + w / 2, y + h / 2 + HAAR_TO_LANDMARK_BOX["dy"] * h
            half = max(w, h) * HAAR_TO_LANDMARK_BOX["scale"] / 2
            boxes.append(np.array([cx - half, cy - half, cx + half, cy + half]))
        return sorted(boxes, key=lambda b: -(b[2] - b[0]))


def best_face_for(image: np.ndarray, reference_box: np.ndarray, detector: FaceDetector | None = None) -> np.ndarray:
    """The detected face overlapping `reference_box` most (else the reference box itself)."""
    boxes = (detector or FaceDetector())(image)

    def iou(a, b):
        w = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
        h = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
        inter = w * h
        return inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter + 1e-9)

    if not boxes:
        return np.asarray(reference_box, np.float64)
    best = max(boxes, key=lambda b: iou(b, reference_box))
    return best if iou(best, reference_box) > 0.1 else np.asarray(reference_box, np.float64)


def draw(image: np.ndarray, faces: list[dict]) -> np.ndarray:
    """RGB overlay: box and landmarks (sub-pixel via cv2's shift)."""
    out = image.copy()
    for f in faces:
        x0, y0, x1, y1 = (int(round(v)) for v in f["box"])
        cv2.rectangle(out, (x0, y0), (x1, y1), (0, 255, 0), 1)
        r = max(1, (x1 - x0) // 100)
        for x, y in f["landmarks"]:
            cv2.circle(out, (int(round(x * 16)), int(round(y * 16))), r * 16, (255, 40, 40), -1, cv2.LINE_AA, 4)
    return out


def predict_image(predictor: Predictor, image: np.ndarray, detector: FaceDetector, adapter: bool = False) -> list[dict]:
    boxes = detector(image)
    if not boxes:
        return []
    pts = predictor.predict([image] * len(boxes), boxes, adapter=adapter)
    return [{"box": [float(v) for v in b], "landmarks": p.tolist()} for b, p in zip(boxes, pts)]


def _points(predictor: Predictor, adapter: bool) -> tuple[str, list[str], str]:
    """(spec name, landmark names, a line saying which points) of what run_predict writes."""
    if not adapter:
        extra = "; the checkpoint's adapter was not used (--no-adapter)" if predictor.adapter is not None else ""
        return predictor.spec.name, list(predictor.spec.names), \
            f"landmarks: the model's own {predictor.num_landmarks} points ({predictor.spec.name}){extra}"
    from facegen.specs import read_spec

    info = predictor.adapter_info
    spec = read_spec("ibug68_3d" if info.get("convention") == "3d" else "ibug68")
    return spec.name, [q.name for q in spec.points], \
        (f"landmarks: iBUG-68 ({spec.name}) through the checkpoint's {info.get('name')} label adapter, "
         f"fitted by {(info.get('fitted_on') or {}).get('by', '?')} on {(info.get('fitted_on') or {}).get('real', '?')}"
         "; --no-adapter for the model's own points")


def run_predict(predictor: Predictor, source: Path | str, out: Path | str, adapter: bool = True) -> dict:
    """Images / a folder / a video -> overlays + predictions.json in `out`. Returns a short summary; its
    `points` says which points were written: through the checkpoint's label adapter when it has one and
    `adapter` is true, else the model's own."""
    adapter = adapter and predictor.adapter is not None
    spec_name, names, points = _points(predictor, adapter)
    source, out = Path(source), Path(out)
    if not source.exists():
        raise FacegenError(f"{source}: no such image, folder or video")
    out.mkdir(parents=True, exist_ok=True)
    detector = FaceDetector()
    results: dict = {}
    if source.is_file() and source.suffix.lower() in VIDEO_EXTS:
        cap = cv2.VideoCapture(str(source))
        if not cap.isOpened():
            raise FacegenError(f"{source}: OpenCV cannot open this video")
        fps = cap.get(cv2.CAP_PROP_FPS) or 25.0
        writer, frames = None, []
        while True:
            ok, bgr = cap.read()
            if not ok:
                break
            rgb = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
            faces = predict_image(predictor, rgb, detector, adapter)
            frames.append(faces)
            if writer is None:
                h, w = rgb.shape[:2]
                writer = cv2.VideoWriter(str(out / f"{source.stem}_landmarks.mp4"), cv2.VideoWriter_fourcc(*"mp4v"),
                                         fps, (w, h))
            writer.write(cv2.cvtColor(draw(rgb, faces), cv2.COLOR_RGB2BGR))
        cap.release()
        if writer is not None:
            writer.release()
        results[source.name] = frames
    else:
        files = [source] if source.is_file() else sorted(p for p in source.rglob("*") if p.suffix.lower() in IMAGE_EXTS)
        if not files:
            raise FacegenError(f"{source}: no images ({', '.join(IMAGE_EXTS)}) found")
        for f in files:
            from facegen.trainer.datasets import read_image
            rgb = read_image(f)
            faces = predict_image(predictor, rgb, detector, adapter)
            rel = f.name if source.is_file() else f.relative_to(source).as_posix()
            results[rel] = faces
            dst = out / (Path(rel).with_suffix("").as_posix().replace("/", "__") + "_landmarks.png")
            cv2.imwrite(str(dst), cv2.cvtColor(draw(rgb, faces), cv2.COLOR_RGB2BGR))
    (out / "predictions.json").write_text(json.dumps({"spec": spec_name, "landmark_names": names, "points": points,
                                                      "adapter": predictor.adapter_info if adapter else None,
                                                      "results": results}))
    n_faces = sum(len(v) if source.suffix.lower() not in VIDEO_EXTS else sum(len(fr) for fr in v)
                  for v in results.values())
    return {"inputs": len(results), "faces": n_faces, "out": str(out), "points": points}
