"""Realism check: a 68-point detector trained on real photos (dlib's ERT shape predictor + HOG face
detector) on our renders: share of faces detected and NME (inter-ocular, outer eye corners) against
our iBUG-68 labels, per renderer. A benchmark, not a project dependency:

    pip install dlib-bin face-recognition-models     # prebuilt wheel + the 68-point weights, no compile

    .venv/bin/python bench/realism.py --renderers cycles,raster --n 300 [--size 256] [--preset fast]
    .venv/bin/python bench/realism.py --config bench/configs/bare.yaml ...   # without hair and clothing

Scenes come from the project's sampler (assets/sampling.yaml), labels from the ibug68 spec located
on the posed mesh (the contour jaw follows the silhouette), as in a shard.
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
    """The ibug68 labels a shard would store for this sample (contour jaw on the silhouette)."""
    from facegen.specs import compile_spec, load_spec

    spec = compile_spec(load_spec("ibug68"), model)
    return lambda posed: posed.camera.project(spec.locate(posed.vertices, posed.camera.centre))


def main():
    import dlib
    import face_recognition_models

    ap = argparse.ArgumentParser()
    ap.add_argument("--renderers", default="cycles,raster")
    ap.add_argument("--n", type=int, default=300)
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--preset", default="default")
    ap.add_argument("--config", default=None, help="sampling config overrides, as facegen render --config")
    a = ap.parse_args()
    detector = dlib.get_frontal_face_detector()
    predictor = dlib.shape_predictor(face_recognition_models.pose_predictor_model_location())
    model = load_face_model()
    label = labeller(model)
    for name in a.renderers.split(","):
        opts = {"preset": a.preset} if name == "cycles" else {}
        r = create_renderer(name, model, outputs=("rgb",), **opts)
        found, nmes = 0, []
        for i in range(a.n):
            p = random_params(model, i, (a.size, a.size), seed=3, config=a.config)
            posed = pose_scene(p, model)
            img = np.ascontiguousarray(r.render(p, posed).image)
            gt = label(posed)
            dets = detector(img, 1)
            if not len(dets):
                continue
            # The detection whose box centre is nearest the labelled face.
            c = gt.mean(0)
            det = min(dets, key=lambda d: np.hypot((d.left() + d.right()) / 2 - c[0], (d.top() + d.bottom()) / 2 - c[1]))
            shape = predictor(img, det)
            pred = np.array([[shape.part(k).x, shape.part(k).y] for k in range(68)], np.float64)
            found += 1
            nmes.append(np.linalg.norm(pred - gt, axis=1).mean() / np.linalg.norm(gt[36] - gt[45]))
        r.close()
        nmes = np.array(nmes)
        print(f"{name}: detected {found}/{a.n} = {found / a.n:.1%}; NME (inter-ocular) mean "
              f"{nmes.mean() if len(nmes) else float('nan'):.4f}, median {np.median(nmes) if len(nmes) else float('nan'):.4f}",
              flush=True)


if __name__ == "__main__":
    main()
