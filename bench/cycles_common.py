"""Random SceneParams for the Cycles benchmarks (a stand-in until the YAML sampler is used here)."""

from __future__ import annotations

import numpy as np

from facegen.generator.cycles import bundled_hdris
from facegen.generator.scene import Appearance, Background, Light, Lighting, SceneParams

SKIN = np.array([[0.70, 0.53, 0.44], [0.62, 0.45, 0.36], [0.50, 0.34, 0.25], [0.36, 0.22, 0.15],
                 [0.22, 0.13, 0.08], [0.12, 0.07, 0.045]])  # linear albedo, light to dark
IRIS = np.array([[0.25, 0.14, 0.06], [0.10, 0.06, 0.03], [0.20, 0.30, 0.40], [0.22, 0.28, 0.16]])
BROW = np.array([[0.05, 0.04, 0.03], [0.15, 0.09, 0.05], [0.30, 0.20, 0.10], [0.02, 0.02, 0.02]])


def random_params(model, index: int, size=(256, 256), seed: int = 0) -> SceneParams:
    rng = np.random.default_rng([seed, index])
    expr = np.zeros(model.num_expressions, np.float32)
    expr[rng.choice(model.num_expressions, 4, replace=False)] = rng.uniform(0, 0.7, 4)
    lights = [Light(str(rng.choice(["area", "point", "directional"])), float(rng.uniform(-80, 80)),
                    float(rng.uniform(-10, 50)), float(rng.uniform(0.3, 1.2)),
                    tuple(rng.uniform(0.85, 1.0, 3)), float(rng.uniform(5, 60)))
              for _ in range(rng.integers(0, 3))]
    hdris = bundled_hdris()
    kind = str(rng.choice(["solid", "gradient", "noise", "hdri"]))
    skin = SKIN[rng.integers(len(SKIN))] * rng.uniform(0.9, 1.1, 3)
    return SceneParams(
        index=index, seed=seed, identity=(rng.normal(size=model.num_identity) * 0.8).astype(np.float32),
        expression=expr, head_rotation=tuple(float(x) for x in rng.normal(0, [20, 10, 6])),
        focal_mm=float(rng.uniform(50, 100)), camera_distance=float(rng.uniform(45, 70)), image_size=tuple(size),
        lighting=Lighting(ambient=float(rng.uniform(0.2, 0.4)), lights=lights, hdri=str(rng.choice(hdris)),
                          hdri_rotation=float(rng.uniform(0, 360)), hdri_strength=float(rng.uniform(0.6, 1.4))),
        background=Background(kind=kind, color=tuple(rng.uniform(0, 1, 3)), color2=tuple(rng.uniform(0, 1, 3)),
                              angle=float(rng.uniform(0, 360)), seed=int(rng.integers(1 << 16))),
        appearance=Appearance(
            skin_albedo=tuple(np.clip(skin, 0.02, 0.9)), skin_roughness=float(rng.uniform(0.35, 0.6)),
            iris_color=tuple(IRIS[rng.integers(len(IRIS))] * rng.uniform(0.7, 1.3)),
            brow_color=tuple(BROW[rng.integers(len(BROW))]), brow_density=float(rng.uniform(0.5, 1.0)),
            brow_thickness=float(rng.uniform(0.7, 1.3)), lip_tint=float(rng.uniform(0.2, 1.0)),
            redness=float(rng.uniform(0.1, 0.6)), freckles=float(rng.uniform(0, 1) ** 3),
            extra={"pupil": float(rng.uniform(0.12, 0.2)), "eye_occlusion": float(rng.uniform(0.15, 0.35))}),
    )
