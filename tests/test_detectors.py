"""Face detectors (trainer/predict.py): the registry, auto's choice, dlib's detectors on real faces, the
video smoother and the CLI flag. The dlib tests skip when `pip install "facegen[detectors]"` was not run."""

from __future__ import annotations

import numpy as np
import pytest
from click.testing import CliRunner

from facegen.errors import FacegenError
from facegen.trainer import predict
from facegen.trainer.annotations import read_pts
from facegen.trainer.datasets import read_image
from facegen.trainer.predict import DETECTORS, Smoother, iou, make_detector, resolve_detector
from facegen.trainer.transforms import landmark_box
from tests.toy_shards import REAL_MINI

needs_real = pytest.mark.skipif(not REAL_MINI.is_dir(), reason=f"{REAL_MINI} absent")
needs_dlib = pytest.mark.skipif(not predict.dlib_installed(),
                                reason='dlib not installed (pip install "facegen[detectors]")')
needs_cnn = pytest.mark.skipif(predict.cnn_weights() is None,
                               reason='face_recognition_models not installed (pip install "facegen[detectors]")')

# one 300-W photo, one 300-VW frame each (HOG misses the turned, dim faces of 300VW/401; the CNN finds them)
FACES = {"dlib-hog": ["lfpw/trainset/image_0002", "300VW/001/annot/000006"],
         "dlib-cnn": ["lfpw/trainset/image_0002", "300VW/401/annot/000731"]}


def _face(name):
    pts = REAL_MINI / f"{name}.pts"
    img = pts.parent.parent / "imgs" / f"{pts.stem}.jpg" if "300VW" in name else pts.with_suffix(".png")
    return read_image(img), landmark_box(read_pts(pts))


def test_registry_names():
    assert DETECTORS == ("auto", "haar", "dlib-hog", "dlib-cnn")
    assert make_detector("haar").name == "haar"
    with pytest.raises(FacegenError, match="choose one of auto, haar, dlib-hog, dlib-cnn"):
        resolve_detector("yolo")


def test_auto_picks_haar_without_dlib(monkeypatch):
    monkeypatch.setattr(predict, "dlib_installed", lambda: False)
    assert resolve_detector("auto") == "haar"
    assert make_detector().name == "haar"
    for name in ("dlib-hog", "dlib-cnn"):
        with pytest.raises(FacegenError, match=r'pip install "facegen\[detectors\]"'):
            make_detector(name)


def test_auto_picks_hog_without_the_cnn_weights(monkeypatch):
    monkeypatch.setattr(predict, "dlib_installed", lambda: True)
    monkeypatch.setattr(predict, "cnn_weights", lambda: None)
    assert resolve_detector("auto") == "dlib-hog"


@needs_real
@pytest.mark.parametrize("name", ["dlib-hog", pytest.param("dlib-cnn", marks=needs_cnn)])
@needs_dlib
def test_dlib_detectors_find_real_faces(name):
    det = make_detector(name)
    assert det.name == name
    for face in FACES[name]:
        image, gt = _face(face)
        boxes = det(image)
        assert boxes, f"{name} found no face in {face}"
        assert max(iou(b, gt) for b in boxes) >= 0.5, face


def test_smoother_steadies_a_jittered_track_and_resets_on_a_jump():
    rng = np.random.default_rng(0)
    box = np.array([100.0, 100.0, 200.0, 200.0])
    pts = rng.uniform(100, 200, (68, 2))
    sm = Smoother()
    raw_b, out_b, raw_p, out_p = [], [], [], []
    for _ in range(60):
        b = box + rng.normal(0, 3, 4)
        p = pts + rng.normal(0, 2, pts.shape)
        sb = sm.box_step(b)
        raw_b.append(b), out_b.append(sb), raw_p.append(p), out_p.append(sm.points_step(p, sb))
    err = lambda xs, ref: np.mean([np.abs(x - ref).mean() for x in xs[10:]])  # noqa: E731
    assert err(out_b, box) < 0.7 * err(raw_b, box)
    assert err(out_p, pts) < 0.8 * err(raw_p, pts)
    jumped = box + 300
    assert np.allclose(sm.box_step(jumped), jumped) and sm.resets == 1
    assert np.allclose(sm.points_step(pts + 300, jumped), pts + 300)


def test_cli_detector_flag_and_missing_dlib(monkeypatch, tmp_path):
    from facegen.trainer.cli import predict as predict_cmd

    runner = CliRunner()
    result = runner.invoke(predict_cmd, ["x.jpg", "--checkpoint", "c.pt", "--detector", "yolo"])
    assert result.exit_code == 2 and "dlib-cnn" in result.output
    help_text = runner.invoke(predict_cmd, ["--help"]).output
    assert "--detector" in help_text and "--no-smooth" in help_text
    monkeypatch.setattr(predict, "dlib_installed", lambda: False)
    monkeypatch.setattr("facegen.trainer.predictor.load_predictor", lambda *a, **k: object())
    (tmp_path / "x.jpg").write_bytes(b"")
    result = runner.invoke(predict_cmd, [str(tmp_path / "x.jpg"), "--checkpoint", "c.pt", "--detector", "dlib-cnn"])
    # the error reaches facegen's main, which prints it as a user error
    assert isinstance(result.exception, FacegenError) and 'pip install "facegen[detectors]"' in str(result.exception)
