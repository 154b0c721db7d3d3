"""Realism check: a 68-point detector trained on real photos (dlib's ERT shape predictor + HOG face
detector) on our renders: share of faces detected and NME (inter-ocular, outer eye corners) against
our iBUG-68 labels, per renderer, over all samples and split by whether something worn or held
(glasses, a mask, headwear, a hand, an object, hair or a beard) hides some of the points; and what
hides the points: per occluder, the share of points it hides and of samples where it hides any.
A benchmark, not a project dependency:

    pip install dlib-bin face-recognition-models     # prebuilt wheel + the 68-point weights, no compile

    .venv/bin/python bench/realism.py --renderers cycles,raster --n 300 [--size 256] [--preset fast]
    .venv/bin/python bench/realism.py --config bench/configs/bare.yaml ...   # without hair, clothing, accessories
    .venv/bin/python bench/realism.py --config bench/configs/no_accessories.yaml ...  # hair and clothing only

Scenes come from the project's sampler (assets/sampling.yaml), labels (points, visibility, what hides
each point) from the ibug68 spec as a shard stores them. Without dlib only the occlusion shares print.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from cycles_common import random_params  # noqa: E402

from facegen.face_model import load_face_model  # noqa: E402
from facegen.generator.scene import create_renderer, pose_scene  # noqa: E402


def labeller(model):
    """The ibug68 labels a shard would store for a render (contour jaw on the silhouette)."""
    from facegen.generator.labels import Labeller
    from facegen.specs import load_spec

    return Labeller(load_spec("ibug68", model), model)


def detector_or_none():
    try:
        import dlib
        import face_recognition_models
    except ImportError:
        print("dlib is not installed: occlusion shares only (pip install dlib-bin face-recognition-models)")
        return None
    return dlib.get_frontal_face_detector(), dlib.shape_predictor(face_recognition_models.pose_predictor_model_location())


def nme(detector, img: np.ndarray, gt: np.ndarray) -> float | None:
    """dlib's 68 points on the image against ours, over the outer-corner inter-ocular distance; None
    when no face is detected."""
    find, predictor = detector
    dets = find(img, 1)
    if not len(dets):
        return None
    c = gt.mean(0)  # the detection whose box centre is nearest the labelled face
    det = min(dets, key=lambda d: np.hypot((d.left() + d.right()) / 2 - c[0], (d.top() + d.bottom()) / 2 - c[1]))
    shape = predictor(img, det)
    pred = np.array([[shape.part(k).x, shape.part(k).y] for k in range(68)], np.float64)
    return float(np.linalg.norm(pred - gt, axis=1).mean() / np.linalg.norm(gt[36] - gt[45]))


def _stat(values: list) -> str:
    v = np.array(values, np.float64)
    return f"mean {v.mean():.4f}, median {np.median(v):.4f} (n={len(v)})" if len(v) else "n=0"


def main():
    from facegen.generator.segmentation import OCCLUDER_ID, OCCLUDERS

    ap = argparse.ArgumentParser()
    ap.add_argument("--renderers", default="cycles,raster")
    ap.add_argument("--n", type=int, default=300)
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--preset", default="default")
    ap.add_argument("--config", default=None, help="sampling config overrides, as facegen render --config")
    a = ap.parse_args()
    detector = detector_or_none()
    model = load_face_model()
    label = labeller(model)
    # Worn or held things (hair and beards too): "covered" samples have a point hidden by one.
    worn = [OCCLUDER_ID[k] for k in OCCLUDERS if k not in ("none", "self", "out_of_frame")]
    for name in a.renderers.split(","):
        opts = {"preset": a.preset} if name == "cycles" else {}
        r = create_renderer(name, model, outputs=("rgb", "depth", "segmentation"), **opts)
        hidden = np.zeros(len(OCCLUDERS))  # points hidden by each occluder
        samples_with = np.zeros(len(OCCLUDERS))  # samples where it hides any point
        found, covered, errors = 0, 0, {"all": [], "covered": [], "clear": []}
        for i in range(a.n):
            p = random_params(model, i, (a.size, a.size), seed=3, config=a.config)
            posed = pose_scene(p, model)
            result = r.render(p, posed)
            labels = label(p, posed, result.depth, result.segmentation)
            codes = labels.occluded_by
            hidden += np.bincount(codes, minlength=len(OCCLUDERS))
            samples_with += np.bincount(np.unique(codes), minlength=len(OCCLUDERS))
            is_covered = bool(np.isin(codes, worn).any())
            covered += is_covered
            if detector is None:
                continue
            err = nme(detector, np.ascontiguousarray(result.image), labels.points_2d.astype(np.float64))
            if err is None:
                continue
            found += 1
            errors["all"].append(err)
            errors["covered" if is_covered else "clear"].append(err)
        r.close()
        print(f"{name}: {a.n} samples, {a.size} px" + (f", preset {a.preset}" if name == "cycles" else ""))
        if detector is not None:
            print(f"  dlib detected {found}/{a.n} = {found / a.n:.1%}; NME (inter-ocular) all {_stat(errors['all'])}")
            print(f"  NME on samples with points covered by worn things {_stat(errors['covered'])}; "
                  f"without {_stat(errors['clear'])}")
        total = hidden.sum()
        print("  occluder          points hidden   samples with any")
        for code, occ in enumerate(OCCLUDERS):
            if code and hidden[code]:
                print(f"  {occ:<16} {hidden[code] / total:>13.1%}   {samples_with[code] / a.n:>16.1%}")
        print(f"  samples with some point covered by a worn or held thing: {covered / a.n:.1%}", flush=True)


if __name__ == "__main__":
    main()
