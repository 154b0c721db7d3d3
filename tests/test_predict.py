from __future__ import annotations

import json

import cv2
import numpy as np
import pytest

from facegen.errors import FacegenError
from facegen.trainer.annotations import read_pts
from facegen.trainer.datasets import read_image
from facegen.trainer.predict import FaceDetector, run_predict
from facegen.trainer.predictor import load_predictor
from facegen.trainer.train import TrainConfig, train
from facegen.trainer.transforms import landmark_box
from tests.toy_shards import REAL_MINI

needs_real = pytest.mark.skipif(not REAL_MINI.is_dir(), reason=f"{REAL_MINI} absent")


@pytest.fixture(scope="module")
def checkpoint(toy_shards, tmp_path_factory):
    out = tmp_path_factory.mktemp("ckpt")
    train(TrainConfig(data=[str(toy_shards)], model="resnet18", model_kwargs={"width": 8}, out=str(out),
                      input_size=32, steps=1, batch_size=8, workers=0), progress=False)
    return out / "last.pt"


@needs_real
def test_haar_detector_finds_the_annotated_face():
    img = read_image(REAL_MINI / "lfpw" / "trainset" / "image_0001.png")
    gt = landmark_box(read_pts(REAL_MINI / "lfpw" / "trainset" / "image_0001.pts"))
    boxes = FaceDetector()(img)
    assert boxes, "no face found"
    b = boxes[0]
    centre_gt = (gt[:2] + gt[2:]) / 2
    assert np.linalg.norm((b[:2] + b[2:]) / 2 - centre_gt) < 0.25 * (gt[2] - gt[0])


@needs_real
def test_predict_video_writes_mp4_and_json(checkpoint, tmp_path):
    frame = cv2.imread(str(REAL_MINI / "lfpw" / "trainset" / "image_0001.png"))
    h, w = frame.shape[:2]
    video = tmp_path / "clip.mp4"
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"mp4v"), 5, (w, h))
    for _ in range(3):
        writer.write(frame)
    writer.release()
    summary = run_predict(load_predictor(checkpoint, "cpu"), video, tmp_path / "out", detector="haar")
    assert summary["detector"] == "haar" and summary["smoothed"]
    assert summary["faces"] >= 3
    data = json.loads((tmp_path / "out" / "predictions.json").read_text())
    frames = data["results"]["clip.mp4"]
    assert len(frames) == 3 and len(frames[0][0]["landmarks"]) == 68
    cap = cv2.VideoCapture(str(tmp_path / "out" / "clip_landmarks.mp4"))
    assert int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) == 3


def test_predict_missing_source_is_named(checkpoint, tmp_path):
    with pytest.raises(FacegenError, match="nothing-here"):
        run_predict(load_predictor(checkpoint, "cpu"), tmp_path / "nothing-here", tmp_path / "out")


@needs_real
def test_eval_box_detector_names_the_detector(checkpoint):
    from facegen.api import evaluate

    report = evaluate(checkpoint, REAL_MINI, dataset="folder", box="detector", detector="haar", device="cpu")
    assert report["detector"] == "haar" and report["metrics"]["box"]["all"]["count"] == 12
    assert "detector" not in evaluate(checkpoint, REAL_MINI, dataset="folder", device="cpu")
