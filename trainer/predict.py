"""`facegen predict`: detect faces, predict landmarks, draw and save.

The path a webcam or video user takes: images, a folder of images, or a video file in; overlays (images or
an mp4) and JSON out. Face detectors, picked by name (`DETECTORS`, `make_detector`):

- `haar`: OpenCV's bundled Haar cascade (ships inside opencv-python; always there, misses turned and dark faces);
- `dlib-hog`: dlib's HOG frontal detector (no weights; `pip install "facegen[detectors]"`);
- `dlib-cnn`: dlib's CNN (MMOD) detector with face_recognition_models' `mmod_human_face_detector.dat`;
- `auto`: the best installed (dlib-cnn, else dlib-hog, else haar).

Nothing is downloaded at run time. Each detector's box is mapped onto the iBUG-68 landmark-box geometry the
models were cropped with in training (`BOX_MAPPING`). Video predictions are smoothed over frames
(`Smoother`). A checkpoint with a label adapter (trainer/adapters.py) predicts iBUG-68 through it unless told
not to.
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import cv2
import numpy as np

from facegen.errors import FacegenError
from facegen.trainer.annotations import IMAGE_EXTS
from facegen.trainer.predictor import Predictor

VIDEO_EXTS = (".mp4", ".avi", ".mov", ".mkv", ".webm")

DETECTORS = ("auto", "haar", "dlib-hog", "dlib-cnn")
INSTALL_HINT = 'pip install "facegen[detectors]"'

# Each detector's box sits differently from the iBUG-68 landmark box the models were cropped with in
# training; map it onto that box: centre right by dx x width, down by dy x height, side = scale x the box's
# longer side (the GT box's longer side over the detector box's). Medians over the faces each detector finds
# in ../shared/data/real300w-mini (12 images, 300-W and 300-VW frames), `python bench/face_detectors.py --fit`:
# - haar: 10 faces, dy 0.155 (0.10-0.19), scale 0.883 (0.74-0.93);
# - dlib-hog: 10 faces, dy 0.087 (0.03-0.20), scale 0.937 (0.82-1.07);
# - dlib-cnn (on the image at most 640 px long): 12 faces, dy 0.174 (0.06-0.22), scale 0.935 (0.86-1.07).
# The fitted dx (medians 0.05-0.06, range -0.05..0.16 for all three) is left at 0: a sideways shift would not hold
# for the mirrored face, and 12 faces cannot tell a bias of the detectors from one of these images' poses.
BOX_MAPPING = {
    "haar": {"dx": 0.0, "dy": 0.15, "scale": 0.88},
    "dlib-hog": {"dx": 0.0, "dy": 0.09, "scale": 0.94},
    "dlib-cnn": {"dx": 0.0, "dy": 0.17, "scale": 0.94},
}
HAAR_TO_LANDMARK_BOX = BOX_MAPPING["haar"]


def map_box(raw: np.ndarray, mapping: dict) -> np.ndarray:
    """A detector's (x0, y0, x1, y1) -> a square box in landmark-box geometry."""
    x0, y0, x1, y1 = (float(v) for v in raw)
    w, h = x1 - x0, y1 - y0
    cx, cy = x0 + w / 2 + mapping["dx"] * w, y0 + h / 2 + mapping["dy"] * h
    half = max(w, h) * mapping["scale"] / 2
    return np.array([cx - half, cy - half, cx + half, cy + half])


def dlib_installed() -> bool:
    return importlib.util.find_spec("dlib") is not None


def cnn_weights() -> Path | None:
    """face_recognition_models' mmod_human_face_detector.dat, found without importing the package (it needs
    pkg_resources, which new setuptools no longer ships)."""
    spec = importlib.util.find_spec("face_recognition_models")
    if spec is None or not spec.submodule_search_locations:
        return None
    for folder in spec.submodule_search_locations:
        path = Path(folder) / "models" / "mmod_human_face_detector.dat"
        if path.is_file():
            return path
    return None


def resolve_detector(name: str = "auto") -> str:
    """The detector `name` stands for: auto -> dlib-cnn if dlib and its weights are installed, else dlib-hog
    if dlib is, else haar."""
    if name not in DETECTORS:
        raise FacegenError(f"detector {name!r}: choose one of {', '.join(DETECTORS)}")
    if name != "auto":
        return name
    if dlib_installed():
        return "dlib-cnn" if cnn_weights() is not None else "dlib-hog"
    return "haar"


def _import_dlib(name: str):
    if not dlib_installed():
        raise FacegenError(f"detector {name}: dlib is not installed; {INSTALL_HINT} (or --detector haar)")
    import dlib

    return dlib


class _Detector:
    name = "?"

    def raw(self, image: np.ndarray) -> list[np.ndarray]:
        raise NotImplementedError

    def __call__(self, image: np.ndarray) -> list[np.ndarray]:
        """Boxes (x0, y0, x1, y1) mapped to landmark-box geometry, largest first."""
        boxes = [map_box(b, BOX_MAPPING[self.name]) for b in self.raw(image)]
        return sorted(boxes, key=lambda b: -(b[2] - b[0]))


class FaceDetector(_Detector):
    """OpenCV's bundled Haar cascade; returns boxes (x0, y0, x1, y1) mapped to landmark-box geometry."""

    name = "haar"

    def __init__(self, min_size: int = 40):
        path = Path(cv2.data.haarcascades) / "haarcascade_frontalface_default.xml"
        self.cascade = cv2.CascadeClassifier(str(path))
        if self.cascade.empty():
            raise FacegenError(f"{path}: cannot load OpenCV's Haar cascade (is opencv-python installed whole?)")
        self.min_size = min_size

    def raw(self, image: np.ndarray) -> list[np.ndarray]:
        gray = cv2.equalizeHist(cv2.cvtColor(image, cv2.COLOR_RGB2GRAY))
        found = self.cascade.detectMultiScale(gray, scaleFactor=1.1, minNeighbors=5,
                                              minSize=(self.min_size, self.min_size))
        return [np.array([x, y, x + w, y + h], np.float64) for x, y, w, h in (found if len(found) else [])]


def _upsample(image: np.ndarray, min_size: int) -> int:
    """dlib's detectors find faces from ~80 px (HOG) / ~50 px (CNN); upsample small images once."""
    return 1 if max(image.shape[:2]) < 800 and min_size < 80 else 0


class DlibHogDetector(_Detector):
    """dlib's HOG + linear SVM frontal face detector (no weights)."""

    name = "dlib-hog"

    def __init__(self, min_size: int = 40):
        self.detector = _import_dlib(self.name).get_frontal_face_detector()
        self.min_size = min_size

    def raw(self, image: np.ndarray) -> list[np.ndarray]:
        rects = self.detector(np.ascontiguousarray(image), _upsample(image, self.min_size))
        return [np.array([r.left(), r.top(), r.right() + 1, r.bottom() + 1], np.float64) for r in rects
                if r.width() >= self.min_size]


class DlibCnnDetector(_Detector):
    """dlib's CNN (MMOD) face detector, face_recognition_models' weights; slower on CPU, finds turned faces."""

    name = "dlib-cnn"

    def __init__(self, min_size: int = 40, max_side: int = 640):
        dlib = _import_dlib(self.name)
        weights = cnn_weights()
        if weights is None:
            raise FacegenError(f"detector dlib-cnn: face_recognition_models (its weights) is not installed; "
                               f"{INSTALL_HINT} (or --detector dlib-hog)")
        self.detector = dlib.cnn_face_detection_model_v1(str(weights))
        self.min_size, self.max_side = min_size, max_side

    def raw(self, image: np.ndarray) -> list[np.ndarray]:
        # CPU time grows with the pixels (~5 s for 1280x720 on 2 cores): detect on a copy at most
        # `max_side` px long (faces down to ~50 px there), boxes scaled back.
        k = min(1.0, self.max_side / max(image.shape[:2]))
        small = image if k == 1.0 else cv2.resize(image, None, fx=k, fy=k, interpolation=cv2.INTER_AREA)
        found = self.detector(np.ascontiguousarray(small), 0)
        return [np.array([d.rect.left(), d.rect.top(), d.rect.right() + 1, d.rect.bottom() + 1], np.float64) / k
                for d in found if d.rect.width() / k >= self.min_size]


_CLASSES = {"haar": FaceDetector, "dlib-hog": DlibHogDetector, "dlib-cnn": DlibCnnDetector}


def make_detector(name: str = "auto", min_size: int = 40) -> _Detector:
    """The detector called `name` (one of DETECTORS; auto: the best installed). Its `.name` says which."""
    return _CLASSES[resolve_detector(name)](min_size)


def iou(a, b) -> float:
    w = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    h = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = w * h
    return inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter + 1e-9)


def best_face_for(image: np.ndarray, reference_box: np.ndarray, detector: _Detector | None = None) -> np.ndarray:
    """The detected face overlapping `reference_box` most (else the reference box itself)."""
    boxes = (detector or FaceDetector())(image)
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


class Smoother:
    """Steadies one face's box and landmarks over video frames (`facegen predict --smooth`).

    Box: an exponential moving average, b <- b + alpha_box (new - b), restarted at the new box when its IoU
    with the previous smoothed box drops below `reset_iou` (another face, or a cut). Landmarks: the same EMA
    with `alpha_points`, relative to the box (so a moving head is followed at the box's speed and only the
    jitter within the face is damped), restarted with the box. alpha 1 = no smoothing."""

    def __init__(self, alpha_box: float = 0.5, alpha_points: float = 0.6, reset_iou: float = 0.5):
        self.alpha_box, self.alpha_points, self.reset_iou = alpha_box, alpha_points, reset_iou
        self.box: np.ndarray | None = None
        self.rel: np.ndarray | None = None
        self.resets = 0

    def reset(self) -> None:
        self.box = self.rel = None

    def box_step(self, box: np.ndarray) -> np.ndarray:
        box = np.asarray(box, np.float64)
        if self.box is None or iou(self.box, box) < self.reset_iou:
            if self.box is not None:
                self.resets += 1
            self.box, self.rel = box.copy(), None
        else:
            self.box = self.box + self.alpha_box * (box - self.box)
        return self.box.copy()

    def points_step(self, points: np.ndarray, box: np.ndarray) -> np.ndarray:
        """`points` predicted in the crop of `box` (the smoothed box) -> smoothed points."""
        origin, side = box[:2], max(box[2] - box[0], 1e-6)
        rel = (np.asarray(points, np.float64) - origin) / side
        self.rel = rel if self.rel is None or self.rel.shape != rel.shape else \
            self.rel + self.alpha_points * (rel - self.rel)
        return self.rel * side + origin


def predict_image(predictor: Predictor, image: np.ndarray, detector: _Detector, adapter: bool = False,
                  smoother: Smoother | None = None) -> list[dict]:
    """Faces in one image (largest first). With a `smoother` (video), only the largest face is tracked and
    smoothed; the others are written as detected."""
    boxes = detector(image)
    if not boxes:
        if smoother is not None:
            smoother.reset()
        return []
    if smoother is not None:
        boxes[0] = smoother.box_step(boxes[0])
    pts = predictor.predict([image] * len(boxes), boxes, adapter=adapter)
    if smoother is not None:
        pts[0] = smoother.points_step(pts[0], boxes[0])
    return [{"box": [float(v) for v in b], "landmarks": np.asarray(p).tolist()} for b, p in zip(boxes, pts)]


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


def run_predict(predictor: Predictor, source: Path | str, out: Path | str, adapter: bool = True,
                detector: str = "auto", smooth: bool | None = None) -> dict:
    """Images / a folder / a video -> overlays + predictions.json in `out`. Returns a short summary; its
    `points` says which points were written: through the checkpoint's label adapter when it has one and
    `adapter` is true, else the model's own; its `detector` which face detector ran (`detector`: a name
    from DETECTORS, auto = the best installed); `smoothed` whether video frames were smoothed (`smooth`:
    None = on for a video, off for images; a folder smoothed is read as frames in sorted name order;
    see Smoother)."""
    det = make_detector(detector)
    adapter = adapter and predictor.adapter is not None
    spec_name, names, points = _points(predictor, adapter)
    source, out = Path(source), Path(out)
    if not source.exists():
        raise FacegenError(f"{source}: no such image, folder or video")
    out.mkdir(parents=True, exist_ok=True)
    results: dict = {}
    is_video = source.is_file() and source.suffix.lower() in VIDEO_EXTS
    smooth = is_video if smooth is None else smooth
    smoother = Smoother() if smooth else None
    if is_video:
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
            faces = predict_image(predictor, rgb, det, adapter, smoother)
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
            faces = predict_image(predictor, rgb, det, adapter, smoother)
            rel = f.name if source.is_file() else f.relative_to(source).as_posix()
            results[rel] = faces
            dst = out / (Path(rel).with_suffix("").as_posix().replace("/", "__") + "_landmarks.png")
            cv2.imwrite(str(dst), cv2.cvtColor(draw(rgb, faces), cv2.COLOR_RGB2BGR))
    (out / "predictions.json").write_text(json.dumps({"spec": spec_name, "landmark_names": names, "points": points,
                                                      "adapter": predictor.adapter_info if adapter else None,
                                                      "detector": det.name, "smoothed": bool(smooth),
                                                      "results": results}))
    n_faces = sum(len(v) if source.suffix.lower() not in VIDEO_EXTS else sum(len(fr) for fr in v)
                  for v in results.values())
    return {"inputs": len(results), "faces": n_faces, "out": str(out), "points": points, "detector": det.name,
            "smoothed": bool(smooth)}
