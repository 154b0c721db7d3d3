"""The sampling config's schema: bad values are refused when the config is loaded, with the file,
the key path, the value and what is allowed; good overrides still merge; the default is unchanged."""

from __future__ import annotations

import hashlib
import json

import pytest

from facegen.errors import FacegenError
from facegen.generator import config_schema
from facegen.generator.sampling import (IRIS_COLOURS, SceneSampler, check_backgrounds, check_config_against_model,
                                        config_hash, load_config)

# (YAML override, key path named in the message, part of what the message says is allowed)
BAD = [
    ("head_pose: {yaw_std: wide}", "head_pose.yaw_std = 'wide'", "must be a number >= 0"),
    ("head_pose: {yaw_std: -5}", "head_pose.yaw_std = -5", "must be a number >= 0"),
    ("head_pose: {yaw_max: 200}", "head_pose.yaw_max = 200", "in [0, 180]"),
    ("head_pose: {yaw_wide_prob: 1.5}", "head_pose.yaw_wide_prob = 1.5", "in [0, 1]"),
    ("camera: {focal_mm: 50}", "camera.focal_mm = 50", "[lo, hi], two numbers > 0"),
    ("camera: {focal_mm: [85, 35]}", "camera.focal_mm = [85, 35]", "lo <= hi"),
    ("camera: {face_fraction: [-1.0, 0.0]}", "camera.face_fraction = [-1.0, 0.0]", "in (0, 1]"),
    ("camera: {centre_offset: [0, 2.5]}", "camera.centre_offset = [0, 2.5]", "three numbers"),
    ("lighting: {num_lights: [3, 1]}", "lighting.num_lights = [3, 1]", "two integers in [0, 3] with lo <= hi"),
    ("lighting: {num_lights: [1.5, 2]}", "lighting.num_lights = [1.5, 2]", "integers"),
    ("lighting: {ambient: [0.1, '0.5']}", "lighting.ambient = [0.1, '0.5']", "two numbers >= 0"),  # wrong type in a list
    ("lighting: {elevation: [0, 1, 2]}", "lighting.elevation = [0, 1, 2]", "[lo, hi]"),
    ("background: {kinds: {solid: 0, gradient: 0, noise: 0, photo: 0, hdri: 0}}", "background.kinds = {",
     "at least one > 0"),
    ("background: {kinds: {solid: -1}}", "background.kinds.solid = -1", "a number >= 0"),
    ("background: {kinds: {video: 1}}", "background.kinds.video = 1", "unknown key; known keys here: gradient, hdri"),
    ("appearance: {iris: {violet: 0.1}}", "appearance.iris.violet = 0.1", "known keys here: blue, brown, green"),
    ("appearance: {iris: {brown: 0, hazel: 0, green: 0, blue: 0, grey: 0}}", "appearance.iris = {", "at least one > 0"),
    ("appearance: {skin_dark: [0.1, x, 0.2]}", "appearance.skin_dark = [0.1, 'x', 0.2]", "three numbers in [0, 1]"),
    ("appearance: {freckles_prob: true}", "appearance.freckles_prob = True", "a number in [0, 1]"),
    ("identity: {num_modes: 2.5}", "identity.num_modes = 2.5", "an integer >= 0"),
    ("gaze: {full_yaw: 0}", "gaze.full_yaw = 0", "a number > 0"),
    ("head_pose: {yaw_sdt: 1.0}", "head_pose.yaw_sdt = 1.0", "unknown key; known keys here: pitch_max"),
    ("lightning: {ambient: [0, 1]}", "lightning = {", "unknown key; known keys here: appearance, background"),
    ("camera: 5", "camera = 5", "a mapping with focal_mm, face_fraction"),
    ("expression: {groups: {wink: {prob: 0.1, shapes: [eyeBlink_L]}}}", "expression.groups.wink.weight: missing",
     "a mapping with prob, weight, shapes"),
    ("expression: {groups: {wink: {prob: 2, weight: [0, 1], shapes: eyeBlink_L}}}", "expression.groups.wink.prob = 2",
     "in [0, 1]"),
    ("expression: {groups: {wink: {prob: 0.1, weight: [0, 1], shapes: []}}}", "expression.groups.wink.shapes = []",
     "a non-empty list of expression names"),
    ("expression: {groups: {wink: {prob: 0.1, weight: [0, 1], shapes: [eyeBlink_L], one_of: yes_please}}}",
     "expression.groups.wink.one_of = 'yes_please'", "true or false"),
    ("expression: {groups: {blink: null}}", "expression.groups.blink = None", "a mapping with prob, weight, shapes"),
]


def write(tmp_path, text: str):
    path = tmp_path / "frontal.yaml"
    path.write_text(text + "\n")
    return path


@pytest.mark.parametrize("text, key, allowed", BAD, ids=[b[1].split(" ")[0] for b in BAD])
def test_bad_values_are_refused_when_loaded(tmp_path, text, key, allowed):
    path = write(tmp_path, text)
    with pytest.raises(FacegenError) as e:
        load_config(path)
    message = e.value.message
    assert f"{path}: {key}" in message  # the file, the dotted key path and the value given
    assert allowed in message
    assert "pydantic" not in message and "http" not in message and "Input should" not in message


def test_every_problem_is_reported(tmp_path):
    path = write(tmp_path, "head_pose: {yaw_std: wide, roll_max: -1}\ncamera: {focal_mm: 50}\nfoo: 1")
    with pytest.raises(FacegenError) as e:
        load_config(path)
    lines = e.value.message.splitlines()
    assert len(lines) == 4 and all(line.startswith(f"{path}: ") for line in lines)
    assert {line.split(" ")[1] for line in lines} == {"head_pose.yaw_std", "head_pose.roll_max", "camera.focal_mm", "foo"}


@pytest.mark.parametrize("text, key, allowed", [
    ("identity: {num_modes: 500}", "identity.num_modes = 500", "must be at most 100 (the face model's"),
    ("expression: {groups: {wink: {prob: 0.1, weight: [0, 1], shapes: [eyeWink, jawOpen]}}}",
     "expression.groups.wink.shapes = ['eyeWink', 'jawOpen']", "unknown expression 'eyeWink'; known: browDown_L"),
])
def test_model_checks_name_the_file_key_and_allowed(tmp_path, face_model, text, key, allowed):
    path = write(tmp_path, text)
    config = load_config(path)  # valid for the schema: only the model knows
    with pytest.raises(FacegenError) as e:
        check_config_against_model(config, face_model, where=str(path))
    assert f"{path}: {key}" in e.value.message and allowed in e.value.message
    with pytest.raises(FacegenError, match=key.split(" ")[0]):
        SceneSampler(face_model, config, seed=0)  # direct users too; num_modes is no longer cut to 100


def test_background_kinds_left_without_weight(tmp_path, face_model):
    path = write(tmp_path, "background: {kinds: {solid: 0, gradient: 0, noise: 0, photo: 1, hdri: 0}}")
    config = load_config(path)
    with pytest.raises(FacegenError) as e:
        check_backgrounds(config, have_photos=False, have_hdris=True, where=str(path))
    message = e.value.message
    assert message.startswith(f"{path}: background.kinds = ") and "pass --backgrounds DIR" in message
    assert "give solid or gradient or noise or hdri a weight > 0" in message
    check_backgrounds(config, have_photos=True, have_hdris=False, where=str(path))
    with pytest.raises(FacegenError, match="background.kinds"):
        SceneSampler(face_model, config, seed=0)
    SceneSampler(face_model, config, seed=0, photos=("a.jpg",))


def test_default_config_validates(face_model):
    config = load_config()
    config_schema.SamplingConfig.model_validate(config)
    check_config_against_model(config, face_model, "sampling.yaml")
    check_backgrounds(config, have_photos=False, have_hdris=False, where="sampling.yaml")
    assert set(config_schema.Iris.model_fields) == set(IRIS_COLOURS)


def test_good_overrides_still_merge(tmp_path, face_model):
    path = write(tmp_path, "\n".join([
        "head_pose: {yaw_std: 1}",  # an int where a float is expected
        "camera: {face_fraction: [1.0, 1.0]}",
        "lighting: {num_lights: [0, 0]}",
        "background: {kinds: {photo: 0, hdri: 0}}",
        "expression:",
        "  groups:",
        "    wink: {prob: 0.2, weight: [0.5, 1.0], shapes: [eyeBlink_L]}",  # a new group
        "    blink: {prob: 0.5, weight: [0.6, 1.0], shapes: [eyeBlink], one_of: true}",  # replaced whole
    ]))
    config = load_config(path)
    default = load_config()
    assert config["head_pose"] == {**default["head_pose"], "yaw_std": 1}
    assert config["background"]["kinds"] == {**default["background"]["kinds"], "photo": 0, "hdri": 0}
    groups = config["expression"]["groups"]
    assert set(groups) == set(default["expression"]["groups"]) | {"wink"}
    assert groups["blink"]["prob"] == 0.5 and groups["squint"] == default["expression"]["groups"]["squint"]
    params = SceneSampler(face_model, config, seed=0).sample(0)
    assert params.lighting.lights == [] and params.background.kind in ("solid", "gradient", "noise")
    path = write(tmp_path, "expression: {groups: null}")
    assert load_config(path)["expression"]["groups"] is None


def test_default_sampling_is_unchanged(face_model):
    """The schema only checks: the dict the sampler reads, its hash and the scenes drawn from it are
    the same as before it existed. Both hashes were computed on commit 1e90c82 (before the schema)
    with this same code. Hair, facial hair, clothing, eyewear, facewear, headwear and hands came
    later, each from its own random stream: without them, config and scenes are still those of
    1e90c82."""
    config = load_config()
    later = ("hair", "facial_hair", "clothing", "eyewear", "facewear", "headwear", "hands", "hand")
    before = {k: v for k, v in config.items() if k not in later}
    assert config_hash(before) == "38753e0d44805cdfcd28a953749dd0918864185f5b4471e318bd7cb5d017cda5"
    sampler = SceneSampler(face_model, config, seed=7, image_size=(256, 256), photos=("a.jpg", "b.png"),
                           hdris=("city", "forest"))
    h = hashlib.sha256()
    for i in range(50):
        record = {k: v for k, v in sampler.sample(i).to_dict().items() if k not in later}
        h.update(json.dumps(record, sort_keys=True).encode())
    assert h.hexdigest() == "ac13a374ed2769561ec986615689cfb0fae7394dc45901cf9e4a9f4d48ab1c10"


def test_unknown_hair_style_is_named(face_model, tmp_path):
    path = write(tmp_path, "hair: {styles: {mohawk: {weight: 1.0, strands: [10, 20], length: [1, 2]}}}")
    with pytest.raises(FacegenError) as e:
        SceneSampler(face_model, load_config(path), seed=0)
    assert "hair.styles: unknown style 'mohawk'" in str(e.value) and "fringe" in str(e.value)
