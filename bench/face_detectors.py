"""Face detectors on real faces: detection rate, box agreement with the GT landmark box, seconds per image.

    .venv/bin/python bench/face_detectors.py [--root ../shared/data/real300w-mini] [--fit]

Per detector (haar, dlib-hog, dlib-cnn; those installed): detected = a mapped box overlapping the GT iBUG-68
landmark box with IoU >= 0.5; over the detected faces, the mean IoU of the mapped box with the GT landmark
box and the mean centre offset / the GT box's longer side; seconds per image (detection only, first call
excluded). --fit prints the medians that trainer/predict.py's BOX_MAPPING records (each detector's raw box
matched to the GT box it overlaps most).
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from facegen.trainer.datasets import PtsFolder
from facegen.trainer.predict import DETECTORS, iou, make_detector
from facegen.trainer.transforms import landmark_box


def fit(det, images, gts) -> None:
    rows = []
    for image, gt in zip(images, gts):
        raws = det.raw(image)
        if not raws:
            continue
        b = max(raws, key=lambda r: iou(r, gt))
        if iou(b, gt) < 0.1:
            continue
        w, h = b[2] - b[0], b[3] - b[1]
        rows.append(((gt[0] + gt[2] - b[0] - b[2]) / 2 / w, (gt[1] + gt[3] - b[1] - b[3]) / 2 / h,
                     max(gt[2] - gt[0], gt[3] - gt[1]) / max(w, h)))
    if not rows:
        print(f"{det.name}: nothing found")
        return
    r = np.array(rows)
    med = np.median(r, 0)
    print(f"{det.name}: {len(r)} faces, dx {med[0]:.3f} ({r[:, 0].min():.2f}..{r[:, 0].max():.2f}), "
          f"dy {med[1]:.3f} ({r[:, 1].min():.2f}..{r[:, 1].max():.2f}), "
          f"scale {med[2]:.3f} ({r[:, 2].min():.2f}..{r[:, 2].max():.2f})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", default="../shared/data/real300w-mini")
    parser.add_argument("--fit", action="store_true")
    args = parser.parse_args()
    ds = PtsFolder(args.root)
    raws = [ds.raw(i) for i in range(len(ds))]
    images = [np.ascontiguousarray(r["image"]) for r in raws]
    gts = [landmark_box(r["landmarks"]) for r in raws]
    print(f"{args.root}: {len(images)} images")
    print("| detector | detected (IoU >= 0.5) | mean IoU | centre offset / size | s / image |")
    print("|---|---|---|---|---|")
    for name in DETECTORS[1:]:
        try:
            det = make_detector(name)
        except Exception as e:  # noqa: BLE001 - a missing optional detector is reported, not fatal
            print(f"| {name} | not available: {e} | | | |")
            continue
        if args.fit:
            fit(det, images, gts)
            continue
        det(images[0])  # warm-up
        ious, offsets, t = [], [], 0.0
        for image, gt in zip(images, gts):
            t0 = time.perf_counter()
            boxes = det(image)
            t += time.perf_counter() - t0
            if not boxes:
                continue
            b = max(boxes, key=lambda x: iou(x, gt))
            if iou(b, gt) < 0.5:
                continue
            ious.append(iou(b, gt))
            offsets.append(np.hypot((b[0] + b[2] - gt[0] - gt[2]) / 2, (b[1] + b[3] - gt[1] - gt[3]) / 2)
                           / max(gt[2] - gt[0], gt[3] - gt[1]))
        n = len(ious)
        print(f"| {name} | {n}/{len(images)} | {np.mean(ious) if n else float('nan'):.3f} | "
              f"{np.mean(offsets) if n else float('nan'):.3f} | {t / len(images):.3f} |")


if __name__ == "__main__":
    main()
