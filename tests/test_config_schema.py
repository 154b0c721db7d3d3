"""The sampling config's schema: bad values are refused when the config is loaded, with the file,
the key path, the value and what is allowed; good overrides still merge; the default is unchanged."""

from __future__ import annotations

import hashlib
import json

from facegen.generator.sampling import SceneSampler, config_hash, load_config


def test_default_sampling_is_unchanged(face_model):
    """The schema only checks: the dict the sampler reads, its hash and the scenes drawn from it are
    the same as before it existed. Both hashes were computed on commit 1e90c82 (before the schema)
    with this same code."""
    config = load_config()
    assert config_hash(config) == "38753e0d44805cdfcd28a953749dd0918864185f5b4471e318bd7cb5d017cda5"
    sampler = SceneSampler(face_model, config, seed=7, image_size=(256, 256), photos=("a.jpg", "b.png"),
                           hdris=("city", "forest"))
    h = hashlib.sha256()
    for i in range(50):
        h.update(json.dumps(sampler.sample(i).to_dict(), sort_keys=True).encode())
    assert h.hexdigest() == "ac13a374ed2769561ec986615689cfb0fae7394dc45901cf9e4a9f4d48ab1c10"
