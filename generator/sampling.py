"""Scene sampling: every random choice of one sample, drawn into a `SceneParams` record.

The distributions live in YAML (`assets/sampling.yaml`; `--config FILE` overrides a subset). Each
sample's RNG is `np.random.default_rng([seed, index])`, so sample i is the same whatever the worker
count or order, and any sample can be drawn again from (seed, index) alone.
"""

from __future__ import annotations

import copy
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import yaml

from facegen.errors import FacegenError
from facegen.face_model import FaceModel
from facegen.generator.backgrounds import HDRI_SUFFIXES
from facegen.generator.config_schema import validate_config
from facegen.generator.scene import (Appearance, Background, Clothing, Eyewear, FacialHair, Facewear, Hair, Hand,
                                     Headwear, Light, Lighting, SceneParams)

DEFAULT_CONFIG = Path(__file__).resolve().parent.parent / "assets" / "sampling.yaml"
PHOTO_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp")

IRIS_COLOURS = {  # linear RGB
    "brown": (0.16, 0.07, 0.025),
    "hazel": (0.30, 0.20, 0.07),
    "green": (0.16, 0.25, 0.10),
    "blue": (0.18, 0.30, 0.50),
    "grey": (0.30, 0.32, 0.34),
}


# -- configuration ---------------------------------------------------------------------------------

def load_config(path: Path | str | None = None) -> dict:
    """The default sampling config, deep-merged with the overrides in `path`, checked against the
    schema (generator/config_schema.py). The plain dict is returned, as the YAML gives it."""
    config = yaml.safe_load(DEFAULT_CONFIG.read_text())
    if path is None:
        validate_config(config, where=str(DEFAULT_CONFIG))
        return config
    path = Path(path)
    try:
        override = yaml.safe_load(path.read_text()) or {}
    except FileNotFoundError:
        raise FacegenError(f"--config {path}: no such file") from None
    except (OSError, UnicodeDecodeError) as e:  # a folder, unreadable, or not text
        raise FacegenError(f"--config {path}: cannot read it as a YAML file "
                           f"({getattr(e, 'strerror', None) or e}); give a .yaml file") from None
    except yaml.YAMLError as e:
        raise FacegenError(f"--config {path}: not valid YAML ({e})") from None
    if not isinstance(override, dict):
        raise FacegenError(f"--config {path}: expected a mapping of sections, got {type(override).__name__}")
    config = _merge(config, override)
    validate_config(config, where=str(path))
    return config


def _merge(base: dict, override: dict, path: tuple[str, ...] = ()) -> dict:
    """Deep merge. A group under expression.groups is replaced whole (users may add or replace
    groups; `groups: null` drops them all). Unknown keys are kept: the schema refuses them, together
    with every other problem."""
    out = copy.deepcopy(base)
    for key, value in override.items():
        if isinstance(base.get(key), dict) and isinstance(value, dict) and path != ("expression", "groups"):
            out[key] = _merge(base[key], value, (*path, key))
        else:
            out[key] = value
    return out


def check_config_against_model(config: dict, model: FaceModel, where: str) -> None:
    """What the schema cannot know: expression names in the groups exist in `model`,
    identity.num_modes is at most the model's identity mode count, and the hair and facial-hair
    styles are ones generator/hair.py grows. Cheap (names only); raises
    FacegenError listing every problem, `where` naming the config file."""
    problems = []
    num_modes = config["identity"]["num_modes"]
    if num_modes > model.num_identity:
        problems.append(f"{where}: identity.num_modes = {num_modes!r}: must be at most {model.num_identity} "
                        "(the face model's number of identity modes)")
    names = model.expression_names
    for gname, group in (config["expression"].get("groups") or {}).items():
        unknown = [s for s in group["shapes"] if _shape_indices(s, names) is None]
        if unknown:
            problems.append(
                f"{where}: expression.groups.{gname}.shapes = {group['shapes']!r}: unknown expression "
                f"{', '.join(map(repr, unknown))}; known: {', '.join(names)} (a name without _L/_R means both sides)")
    from facegen.generator import hair  # the style recipes: names only

    for section, known in (("hair", hair.STYLES), ("facial_hair", hair.FACIAL_STYLES)):
        unknown = sorted(set(config[section]["styles"]) - set(known))
        if unknown:
            problems.append(f"{where}: {section}.styles: unknown style {', '.join(map(repr, unknown))}; "
                            f"known: {', '.join(known)} (generator/hair.py says how each grows)")
    if problems:
        raise FacegenError("\n".join(problems))


def check_backgrounds(config: dict, have_photos: bool, have_hdris: bool, where: str) -> None:
    """The sampler drops `photo` without --backgrounds and `hdri` without HDRIs: some kind that it
    keeps must have a weight > 0."""
    kinds = config["background"]["kinds"]
    needs = {"photo": "--backgrounds DIR", "hdri": "--hdris DIR"}
    dropped = [k for k, have in (("photo", have_photos), ("hdri", have_hdris)) if not have]
    drawable = [k for k in kinds if k not in dropped]
    if any(kinds[k] > 0 for k in drawable):
        return
    why = "".join(f"; {k} is drawn only with {needs[k]}" for k in dropped)
    todo = f"give {' or '.join(drawable)} a weight > 0" + "".join(
        f", or pass {needs[k]}" for k in dropped if kinds[k] > 0)
    raise FacegenError(f"{where}: background.kinds = {kinds!r}: no background kind can be drawn{why}; {todo}")


def _shape_indices(shape: str, names: tuple[str, ...] | list[str]) -> list[int] | None:
    """Expression indices of a group's shape name: [i], [L, R] for a name without _L/_R, or None."""
    if shape in names:
        return [names.index(shape)]
    if f"{shape}_L" in names and f"{shape}_R" in names:
        return [names.index(f"{shape}_L"), names.index(f"{shape}_R")]
    return None


def config_yaml(config: dict) -> str:
    """Canonical YAML text of a config (what shards store and hash)."""
    return yaml.safe_dump(config, sort_keys=True)


def config_hash(config: dict) -> str:
    return hashlib.sha256(json.dumps(config, sort_keys=True).encode()).hexdigest()


# -- asset lists (names only; generator/backgrounds.py finds and opens the files) ----------------------

def list_hdris(directory: Path | None) -> list[str]:
    """HDRI names: file stems (`city` for city.exr), as `Lighting.hdri` stores them for every backend."""
    return sorted({Path(n).stem for n in list_files(directory, HDRI_SUFFIXES, "--hdris")})


def list_files(directory: Path | None, suffixes: tuple[str, ...], what: str) -> list[str]:
    if directory is None:
        return []
    directory = Path(directory)
    if not directory.is_dir():
        raise FacegenError(f"{what} {directory}: no such directory")
    names = sorted(p.name for p in directory.iterdir() if p.suffix.lower() in suffixes)
    if not names:
        raise FacegenError(f"{what} {directory}: no {'/'.join(suffixes)} files found")
    return names


# -- the sampler ------------------------------------------------------------------------------------

@dataclass
class SceneSampler:
    """Draws `SceneParams` for sample `index` of a job with global `seed`."""

    model: FaceModel
    config: dict
    seed: int
    image_size: tuple[int, int] = (256, 256)
    photos: tuple[str, ...] = ()  # background photo names (from --backgrounds DIR)
    hdris: tuple[str, ...] = ()  # HDRI names (bundled or from --hdris DIR)

    def __post_init__(self) -> None:
        # Direct users get the same checks as `facegen render` (which runs them before it touches
        # the output folder, with the config's file name).
        validate_config(self.config, where="sampling config")
        check_config_against_model(self.config, self.model, where="sampling config")
        check_backgrounds(self.config, bool(self.photos), bool(self.hdris), where="sampling config")
        self._groups = self._compile_groups()
        names = self.model.expression_names
        self._eye = {k: names.index(k) for k in names if k.startswith("eyeLook")}
        self._pupils = [names.index(k) for k in ("PupilDilate_L", "PupilDilate_R") if k in names]

    def _compile_groups(self) -> list[tuple[str, dict, list[list[int]]]]:
        """Each group's shapes as lists of expression indices ([L, R] for a pair, [i] otherwise)."""
        names = self.model.expression_names
        return [(gname, g, [_shape_indices(s, names) for s in g["shapes"]])
                for gname, g in (self.config["expression"].get("groups") or {}).items()]

    def sample(self, index: int) -> SceneParams:
        # Fixed draw order: each part uses its own child generator, so adding a field to one part
        # never shifts the random numbers of another. The children are those of
        # np.random.default_rng([seed, index]).spawn(8), made without the parent generator.
        # Children 8-10 (hair, facial hair, clothing), 11 (eyewear) and 12-14 (facewear, headwear,
        # hand) came later: spawn(n)'s first children are the same for any n, so the earlier parts
        # of every sample did not change.
        children = np.random.SeedSequence([self.seed, index]).spawn(15)
        (r_id, r_ex, r_gaze, r_pose, r_cam, r_light, r_bg, r_app, r_hair, r_facial, r_cloth, r_eyewear,
         r_facewear, r_headwear, r_hand) = (np.random.Generator(np.random.PCG64(s)) for s in children)
        identity = self._identity(r_id)
        expression = self._expression(r_ex)
        gaze = self._gaze(r_gaze, expression)
        rotation = self._head_rotation(r_pose)
        focal_mm, distance, translation = self._camera(r_cam)
        appearance = self._appearance(r_app)
        return SceneParams(
            index=int(index), seed=int(self.seed), identity=identity, expression=expression, gaze=gaze,
            head_rotation=rotation, head_translation=translation, focal_mm=focal_mm,
            camera_distance=distance, image_size=tuple(self.image_size),
            lighting=self._lighting(r_light), background=self._background(r_bg),
            appearance=appearance, hair=self._hair(r_hair),
            facial_hair=self._facial_hair(r_facial), clothing=self._clothing(r_cloth),
            eyewear=self._eyewear(r_eyewear), facewear=self._facewear(r_facewear),
            headwear=self._headwear(r_headwear), hand=self._hand(r_hand, appearance))

    # Each helper reads one config section.

    def _identity(self, rng) -> np.ndarray:
        c = self.config["identity"]
        k = int(c["num_modes"])  # <= num_identity: check_config_against_model
        w = np.zeros(self.model.num_identity, np.float32)
        w[:k] = rng.standard_normal(k) * float(c["scale"])
        return w

    def _expression(self, rng) -> np.ndarray:
        c = self.config["expression"]
        w = np.zeros(self.model.num_expressions, np.float64)
        neutral = rng.random() < c["neutral_prob"]
        for _, g, shapes in self._groups:
            fires = rng.random() < g["prob"]
            strength = rng.uniform(*g["weight"])
            chosen = [shapes[rng.integers(len(shapes))]] if g.get("one_of") else shapes
            if not fires or neutral:
                continue
            for idx in chosen:
                s = strength * rng.uniform(*c["shape_jitter"])
                if len(idx) == 2 and rng.random() >= c["symmetric_prob"]:
                    w[idx[0]] = max(w[idx[0]], s)
                    w[idx[1]] = max(w[idx[1]], s + rng.normal(0, c["asymmetry_std"]))
                else:
                    for i in idx:
                        w[i] = max(w[i], s)
        if self._pupils:
            w[self._pupils] = rng.uniform(*c["pupil_dilate"])
        return np.clip(w, 0.0, 1.0).astype(np.float32)

    def _gaze(self, rng, expression: np.ndarray) -> tuple[float, float]:
        """Draw eye yaw/pitch and fold them into the eyeLook* weights of `expression` (in place)."""
        c = self.config["gaze"]
        yaw = _clip(rng.normal(0, c["yaw_std"]), -c["clip"], c["clip"])
        pitch = _clip(rng.normal(0, c["pitch_std"]), -c["clip"], c["clip"])
        h, v = min(abs(yaw) / c["full_yaw"], 1.0), min(abs(pitch) / c["full_pitch"], 1.0)
        e = self._eye
        if yaw > 0:  # towards +x: the left eye looks out, the right eye looks in
            expression[e["eyeLookOut_L"]], expression[e["eyeLookIn_R"]] = h, h
        else:
            expression[e["eyeLookIn_L"]], expression[e["eyeLookOut_R"]] = h, h
        key = "eyeLookDown" if pitch > 0 else "eyeLookUp"
        expression[e[f"{key}_L"]], expression[e[f"{key}_R"]] = v, v
        return (yaw, pitch)

    def _head_rotation(self, rng) -> tuple[float, float, float]:
        c = self.config["head_pose"]
        wide = rng.random() < c["yaw_wide_prob"]
        yaw = rng.uniform(-c["yaw_max"], c["yaw_max"]) if wide else rng.normal(0, c["yaw_std"])
        yaw = _clip(yaw, -c["yaw_max"], c["yaw_max"])
        pitch = _clip(rng.normal(0, c["pitch_std"]), -c["pitch_max"], c["pitch_max"])
        roll = _clip(rng.normal(0, c["roll_std"]), -c["roll_max"], c["roll_max"])
        return (yaw, pitch, roll)

    def _camera(self, rng) -> tuple[float, float, tuple[float, float, float]]:
        """Focal length, then the distance at which the face fills `face_fraction` of the frame."""
        c = self.config["camera"]
        focal_mm = float(rng.uniform(*c["focal_mm"]))
        fraction = float(rng.uniform(*c["face_fraction"]))
        distance = focal_mm / 36.0 * c["face_size"] / fraction  # focal_px / W * size / share
        shift = rng.uniform(-c["shift"], c["shift"], size=2)
        cm_per_frame = distance * 36.0 / focal_mm  # frame width at the head, in cm
        tx, ty = shift * cm_per_frame
        ox, oy, oz = c["centre_offset"]
        return focal_mm, float(distance), (float(tx + ox), float(ty + oy), float(oz))

    def _lighting(self, rng) -> Lighting:
        c = self.config["lighting"]
        n = int(rng.integers(c["num_lights"][0], c["num_lights"][1] + 1))
        lights = []
        for i in range(n):
            key = i == 0
            intensity = rng.uniform(*(c["key_intensity"] if key else c["fill_intensity"]))
            lights.append(Light(
                kind="directional",
                azimuth=float(rng.uniform(-c["azimuth_max"], c["azimuth_max"])),
                elevation=float(rng.uniform(*c["elevation"])),
                intensity=float(intensity),
                color=kelvin_to_rgb(rng.uniform(*c["color_temperature"])),
                size=float(rng.uniform(0.0, 30.0)),
            ))
        hdri = self.hdris[rng.integers(len(self.hdris))] if self.hdris else ""
        return Lighting(ambient=float(rng.uniform(*c["ambient"])), lights=lights, hdri=str(hdri),
                        hdri_rotation=float(rng.uniform(*c["hdri_rotation"])),
                        hdri_strength=float(rng.uniform(*c["hdri_strength"])))

    def _background(self, rng) -> Background:
        weights = dict(self.config["background"]["kinds"])
        if not self.photos:
            weights.pop("photo", None)
        if not self.hdris:
            weights.pop("hdri", None)
        kinds = sorted(weights)
        p = np.array([weights[k] for k in kinds], np.float64)
        kind = kinds[rng.choice(len(kinds), p=p / p.sum())]
        colour = tuple(float(x) for x in rng.uniform(0.05, 0.95, 3))
        colour2 = tuple(float(x) for x in rng.uniform(0.05, 0.95, 3))
        photo = self.photos[rng.integers(len(self.photos))] if self.photos else ""
        return Background(kind=kind, color=colour, color2=colour2, angle=float(rng.uniform(0, 360)),
                          photo=str(photo) if kind == "photo" else "", seed=int(rng.integers(2**31)))

    def _appearance(self, rng) -> Appearance:
        c = self.config["appearance"]
        tone = rng.random()
        dark, light = np.array(c["skin_dark"]), np.array(c["skin_light"])
        albedo = dark + (light - dark) * tone  # linear interpolation between measured extremes
        albedo = albedo * (1.0 + rng.normal(0, c["skin_hue_jitter"], 3))
        iris_names = sorted(c["iris"])
        p = np.array([c["iris"][k] for k in iris_names], np.float64)
        iris_name = iris_names[rng.choice(len(iris_names), p=p / p.sum())]
        iris = np.array(IRIS_COLOURS[iris_name]) * rng.uniform(0.8, 1.2, 3)
        # Brows: darker than the skin; lighter brows are more likely on lighter skin.
        brow_level = rng.uniform(0.03, 0.15 + 0.35 * tone * rng.random())
        brow = np.array([1.0, 0.8, 0.6]) * brow_level
        freckles = float(rng.uniform(0.2, 1.0)) if rng.random() < c["freckles_prob"] else 0.0
        return Appearance(
            skin_albedo=tuple(float(x) for x in np.clip(albedo, 0.01, 0.95)),
            skin_roughness=float(rng.uniform(*c["skin_roughness"])),
            iris_color=tuple(float(x) for x in np.clip(iris, 0, 1)),
            brow_color=tuple(float(x) for x in brow),
            brow_density=float(rng.uniform(*c["brow_density"])),
            brow_thickness=float(rng.uniform(*c["brow_thickness"])),
            lip_tint=float(rng.uniform(*c["lip_tint"])),
            redness=float(rng.uniform(*c["redness"])),
            freckles=freckles,
            extra={"iris": iris_name, "skin_tone": float(tone)},
        )


    def _hair(self, rng) -> Hair:
        c = self.config["hair"]
        style, s = _pick_style(rng, c["styles"])
        grey = float(rng.uniform(*c["grey"])) if rng.random() < c["grey_prob"] else 0.0
        return Hair(style=style, strands=int(rng.integers(s["strands"][0], s["strands"][1] + 1)),
                    length=float(rng.uniform(*s["length"])), clumping=float(rng.uniform(*c["clumping"])),
                    curl=float(rng.uniform(*s["curl"])), frizz=float(rng.uniform(*c["frizz"])),
                    parting=float(rng.uniform(*c["parting"])), melanin=float(rng.uniform(*c["melanin"])),
                    melanin_redness=float(rng.uniform(*c["melanin_redness"])), grey=grey,
                    seed=int(rng.integers(2**31)))

    def _facial_hair(self, rng) -> FacialHair:
        c = self.config["facial_hair"]
        style, s = _pick_style(rng, c["styles"])
        return FacialHair(style=style, strands=int(rng.integers(s["strands"][0], s["strands"][1] + 1)),
                          length=float(rng.uniform(*s["length"])),
                          brow_strands=int(rng.integers(c["brow_strands"][0], c["brow_strands"][1] + 1)),
                          brow_length=float(rng.uniform(*c["brow_length"])), seed=int(rng.integers(2**31)))

    def _clothing(self, rng) -> Clothing:
        c = self.config["clothing"]
        cut = _pick(rng, c["cuts"])
        pattern = _pick(rng, c["patterns"])
        return Clothing(cut=cut, color=_fabric_colour(rng), color2=_fabric_colour(rng), pattern=pattern,
                        pattern_scale=float(rng.uniform(*c["pattern_scale"])), seed=int(rng.integers(2**31)))


    def _eyewear(self, rng) -> Eyewear:
        c = self.config["eyewear"]
        if rng.random() >= c["prob"]:
            return Eyewear()
        frame, lens = _pick(rng, c["frames"]), _pick(rng, c["lenses"])
        metal = bool(rng.random() < c["metal_prob"])
        if metal:  # steel grey to gold
            frame_color = tuple(float(x) for x in np.array([0.55, 0.5, 0.4]) * rng.uniform(0.4, 1.1)
                                + np.array([0.1, 0.05, -0.1]) * rng.uniform(0, 1))
        else:
            frame_color = _fabric_colour(rng)
        tint = np.array([0.45, 0.42, 0.38]) if lens == "sun" else np.ones(3)
        tint = np.clip(tint + rng.uniform(-0.12, 0.12, 3) * (lens != "clear"), 0.05, 1.0)
        return Eyewear(frame=frame, lens=lens, lens_color=tuple(float(x) for x in tint),
                       lens_opacity=float(rng.uniform(*c["opacity"][lens])), frame_color=frame_color,
                       metal=metal, thickness=float(rng.uniform(*c["thickness"]) * (0.5 if metal else 1.0)),
                       size=float(rng.uniform(*c["size"])))


    def _facewear(self, rng) -> Facewear:
        c = self.config["facewear"]
        if rng.random() >= c["prob"]:
            return Facewear()
        kind = _pick(rng, c["kinds"])
        if kind == "surgical":  # pale blue, green, white or black, plain
            color = [(0.45, 0.62, 0.78), (0.5, 0.72, 0.62), (0.85, 0.86, 0.86), (0.03, 0.03, 0.035)][rng.integers(4)]
            color, pattern = tuple(float(x) for x in np.clip(np.array(color) * rng.uniform(0.9, 1.05), 0, 1)), "plain"
        elif kind == "respirator":  # white to light grey moulded fibre
            color, pattern = tuple(float(x) for x in np.full(3, rng.uniform(0.6, 0.88))), "plain"
        else:
            color, pattern = _fabric_colour(rng), _pick(rng, c["patterns"])
        return Facewear(kind=kind, color=color, color2=_fabric_colour(rng), pattern=pattern,
                        pattern_scale=float(rng.uniform(*c["pattern_scale"])), fit=float(rng.uniform(*c["fit"])),
                        top=float(rng.uniform(*c["top"])), seed=int(rng.integers(2**31)))

    def _headwear(self, rng) -> Headwear:
        c = self.config["headwear"]
        if rng.random() >= c["prob"]:
            return Headwear()
        return Headwear(kind=_pick(rng, c["kinds"]), color=_fabric_colour(rng), color2=_fabric_colour(rng),
                        pattern=_pick(rng, c["patterns"]), pattern_scale=float(rng.uniform(*c["pattern_scale"])),
                        depth=float(rng.uniform(*c["depth"])), tilt=float(rng.uniform(*c["tilt"])),
                        brim=float(rng.uniform(*c["brim"])), seed=int(rng.integers(2**31)))

    def _hand(self, rng, appearance: Appearance) -> Hand:
        c = self.config["hands"]
        if rng.random() >= c["prob"]:
            return Hand()
        held = rng.random() < c["object_prob"]
        pose, obj = ("hold", _pick(rng, c["objects"])) if held else (_pick(rng, c["poses"]), "none")
        # The face's skin, a little paler or redder (the backs of hands are less even than a face).
        skin = np.asarray(appearance.skin_albedo) * rng.uniform(0.9, 1.08) * (1 + rng.normal(0, 0.03, 3))
        radius, angle = c["shift"] * np.sqrt(rng.random()), rng.uniform(0, 2 * np.pi)
        return Hand(pose=pose, side=int(rng.choice([-1, 1])), skin_color=tuple(float(x) for x in np.clip(skin, 0.01, 0.95)),
                    size=float(rng.uniform(*c["size"])), curl=float(rng.uniform(*c["curl"])),
                    spread=float(rng.uniform(*c["spread"])),
                    shift=(float(radius * np.cos(angle)), float(radius * np.sin(angle))), object=obj,
                    object_color=_fabric_colour(rng))


def _pick(rng, weights: dict) -> str:
    """A name drawn by relative weight (in sorted-name order, so YAML key order does not matter)."""
    names = sorted(weights)
    w = np.array([weights[k] for k in names], np.float64)
    return names[rng.choice(len(names), p=w / w.sum())]


_NO_STYLE = {"strands": (0, 0), "length": (0.0, 0.0), "curl": (0.0, 0.0)}


def _pick_style(rng, styles: dict) -> tuple[str, dict]:
    """A style by weight and its ranges (keys a style leaves out are 0, as the schema's defaults)."""
    name = _pick(rng, {k: v["weight"] for k, v in styles.items()})
    return name, {**_NO_STYLE, **styles[name]}


def _fabric_colour(rng) -> tuple[float, float, float]:
    """Linear RGB of a dyed fabric: any hue, mostly muted, from near black to near white."""
    hsv = np.array([[[rng.uniform(0, 180), rng.uniform(0, 200), rng.uniform(15, 235)]]], np.float32)
    srgb = cv2.cvtColor(hsv.astype(np.uint8), cv2.COLOR_HSV2RGB)[0, 0] / 255.0
    linear = np.where(srgb <= 0.04045, srgb / 12.92, ((srgb + 0.055) / 1.055) ** 2.4)
    return tuple(float(x) for x in linear)


def _clip(x: float, lo: float, hi: float) -> float:
    """float(np.clip(x, lo, hi)) for one number, without numpy's per-call overhead."""
    return float(min(max(x, lo), hi))


def kelvin_to_rgb(kelvin: float) -> tuple[float, float, float]:
    """Approximate linear RGB of a black body at `kelvin`, normalised to max 1 (Tanner Helland's fit)."""
    t = kelvin / 100.0
    r = 255.0 if t <= 66 else 329.698727446 * (t - 60) ** -0.1332047592
    g = 99.4708025861 * np.log(t) - 161.1195681661 if t <= 66 else 288.1221695283 * (t - 60) ** -0.0755148492
    b = 255.0 if t >= 66 else (0.0 if t <= 19 else 138.5177312231 * np.log(t - 10) - 305.0447927307)
    rgb = np.clip([r, g, b], 0, 255) / 255.0
    return tuple(float(x) for x in rgb / rgb.max())
