"""SceneParams for the benchmarks: the project's own sampler (assets/sampling.yaml), so the benches
measure the scenes `facegen render` draws."""

from __future__ import annotations

from functools import lru_cache

from facegen.generator.backgrounds import bundled_hdri_dir
from facegen.generator.sampling import SceneSampler, list_hdris, load_config
from facegen.generator.scene import SceneParams


@lru_cache(maxsize=None)
def _sampler(model, size: tuple[int, int], seed: int, config: str | None) -> SceneSampler:
    return SceneSampler(model, load_config(config), seed, image_size=size,
                        hdris=tuple(list_hdris(bundled_hdri_dir())))


def random_params(model, index: int, size=(256, 256), seed: int = 0, config: str | None = None) -> SceneParams:
    """Sample `index` of a job with global `seed` (and --config file `config`), exactly as the
    render job samples it."""
    return _sampler(model, tuple(size), seed, config).sample(index)
