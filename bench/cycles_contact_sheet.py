"""Render N random samples with Cycles and write a contact sheet (plus segmentation) to bench/out/.

    .venv/bin/python bench/cycles_contact_sheet.py [--n 16] [--size 256] [--preset default]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from cycles_common import random_params  # noqa: E402

from facegen.face_model import load_face_model  # noqa: E402
from facegen.generator.cycles import CyclesRenderer  # noqa: E402
from facegen.generator.scene import pose_scene  # noqa: E402
from facegen.generator.segmentation import colorize  # noqa: E402

if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=16)
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--preset", default="default")
    ap.add_argument("--out", default=str(Path(__file__).parent / "out"))
    ap.add_argument("--config", default=None, help="sampling config, as facegen render --config")
    a = ap.parse_args()
    model = load_face_model()
    r = CyclesRenderer(model, outputs=("rgb", "depth", "segmentation"), preset=a.preset)
    tiles, segs = [], []
    for i in range(a.n):
        p = random_params(model, i, (a.size, a.size), seed=1, config=a.config)
        res = r.render(p, pose_scene(p, model))
        tiles.append(res.image)
        segs.append(colorize(res.segmentation))
        print(f"{i + 1}/{a.n}", flush=True)
    cols = 4
    def sheet(ims):
        rows = [np.concatenate(ims[k:k + cols], 1) for k in range(0, len(ims), cols)]
        return np.concatenate(rows, 0)
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(out / "cycles_contact_sheet.png"), sheet(tiles)[..., ::-1])
    cv2.imwrite(str(out / "cycles_contact_sheet_seg.png"), sheet(segs)[..., ::-1])
    print("wrote", out / "cycles_contact_sheet.png", out / "cycles_contact_sheet_seg.png")
    r.close()
