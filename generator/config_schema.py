"""Schema of the scene-sampling config (assets/sampling.yaml), checked when the config is loaded.

The pydantic models below mirror the YAML sections. They only validate: `load_config` still returns
the plain merged dict, so what the sampler reads (and `config_hash`) is exactly the YAML's content.
Each problem is reported as `<file>: <dotted.key> = <value>: must be <what is allowed>`, all of
them at once, in a `FacegenError` (pydantic's own wording and URLs are not shown).

Checks that need the face model or the job's asset folders are in generator/sampling.py
(`check_config_against_model`, `check_backgrounds`).
"""

from typing import Annotated, Any, get_args, get_origin

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError, model_validator

from facegen.errors import FacegenError
from facegen.generator.scene import MAX_LIGHTS

# -- value types: each carries the text that tells the user what is allowed -----------------------


def _bounds_text(ge=None, gt=None, le=None) -> str:
    """' >= 0', ' > 0', ' in [0, 1]', ' in (0, 1]', ' <= 1' or ''."""
    lo = ge if ge is not None else gt
    if lo is not None and le is not None:
        return f" in {'[' if ge is not None else '('}{lo}, {le}]"
    if lo is not None:
        return f" {'>=' if ge is not None else '>'} {lo}"
    return f" <= {le}" if le is not None else ""


def _scalar(integer: bool, ge=None, gt=None, le=None) -> Any:
    # Strict: no "25" -> 25.0 or true -> 1 coercion, since the sampler reads the YAML value as it is.
    # An int is still accepted where a float is expected.
    if integer:
        return Annotated[int, Field(strict=True, ge=ge, gt=gt, le=le)]
    return Annotated[float, Field(strict=True, ge=ge, gt=gt, le=le, allow_inf_nan=False)]


def Number(*, ge=None, gt=None, le=None, integer: bool = False) -> Any:
    """One number within the bounds."""
    text = ("an integer" if integer else "a number") + _bounds_text(ge, gt, le)
    return Annotated[_scalar(integer, ge, gt, le), Field(description=text)]


def _ordered(pair: tuple) -> tuple:
    if pair[0] > pair[1]:
        raise ValueError("lo > hi")  # reported with the field's description, not this text
    return pair


def Range(*, ge=None, gt=None, le=None, integer: bool = False) -> Any:
    """[lo, hi] with lo <= hi, both within the bounds (the sampler draws uniformly between them)."""
    text = f"[lo, hi], two {'integers' if integer else 'numbers'}{_bounds_text(ge, gt, le)} with lo <= hi"
    item = _scalar(integer, ge, gt, le)
    return Annotated[tuple[item, item], AfterValidator(_ordered), Field(description=text)]


Prob = Number(ge=0, le=1)
Colour = Annotated[tuple[(_scalar(False, ge=0, le=1),) * 3], Field(description="three numbers in [0, 1] (linear RGB)")]
Vector3 = Annotated[tuple[(_scalar(False),) * 3], Field(description="three numbers [x, y, z]")]
ShapeNames = Annotated[list[Annotated[str, Field(strict=True)]],
                       Field(min_length=1, description="a non-empty list of expression names")]


# -- sections ---------------------------------------------------------------------------------------

class Section(BaseModel):
    model_config = ConfigDict(extra="forbid")  # a misspelt key must not be silently ignored


class Weights(Section):
    """Relative weights of named choices: the sampler normalises them, so at least one must be > 0."""

    @model_validator(mode="after")
    def _some_positive(self):
        if not any(getattr(self, name) > 0 for name in type(self).model_fields):
            raise ValueError("all weights are 0")
        return self


def _weights_text(names: str) -> str:
    return f"a mapping of {names} to weights >= 0, at least one > 0"


class Identity(Section):
    scale: Number(ge=0)
    num_modes: Number(ge=0, integer=True)  # <= the model's count: check_config_against_model


class ExpressionGroup(Section):
    prob: Prob
    weight: Range(ge=0, le=1)  # the sampler clips expression weights to [0, 1]
    shapes: ShapeNames  # names are checked against the face model: check_config_against_model
    one_of: Annotated[bool, Field(strict=True, description="true or false")] = False


class Expression(Section):
    neutral_prob: Prob
    symmetric_prob: Prob
    asymmetry_std: Number(ge=0)
    shape_jitter: Range(ge=0)
    # A --config file may add groups or replace one whole; `groups: null` drops them all.
    groups: Annotated[dict[str, ExpressionGroup] | None,
                      Field(description="a mapping of group names to {prob, weight, shapes, one_of}, or null")]
    pupil_dilate: Range(ge=0, le=1)


class Gaze(Section):
    yaw_std: Number(ge=0)
    pitch_std: Number(ge=0)
    clip: Number(ge=0, le=90)
    full_yaw: Number(gt=0)  # divides the angle
    full_pitch: Number(gt=0)


class HeadPose(Section):
    yaw_std: Number(ge=0)
    yaw_wide_prob: Prob
    yaw_max: Number(ge=0, le=180)
    pitch_std: Number(ge=0)
    pitch_max: Number(ge=0, le=90)
    roll_std: Number(ge=0)
    roll_max: Number(ge=0, le=180)


class Camera(Section):
    focal_mm: Range(gt=0)
    face_fraction: Range(gt=0, le=1)  # 0 or less puts the camera at or behind the head
    face_size: Number(gt=0)
    shift: Number(ge=0, le=0.5)  # 0.5 already puts the face centre on the frame's edge
    centre_offset: Vector3


class Lighting(Section):
    num_lights: Range(ge=0, le=MAX_LIGHTS, integer=True)  # both backends build that many lights once
    ambient: Range(ge=0)
    key_intensity: Range(ge=0)
    fill_intensity: Range(ge=0)
    azimuth_max: Number(ge=0, le=180)
    elevation: Range(ge=-90, le=90)
    color_temperature: Range(ge=1000, le=40000)  # the range kelvin_to_rgb's fit covers
    hdri_rotation: Range()
    hdri_strength: Range(ge=0)


class BackgroundKinds(Weights):
    solid: Number(ge=0)
    gradient: Number(ge=0)
    noise: Number(ge=0)
    photo: Number(ge=0)  # drawn only with --backgrounds DIR: sampling.check_backgrounds
    hdri: Number(ge=0)  # drawn only when HDRIs exist


class Background(Section):
    kinds: Annotated[BackgroundKinds, Field(description=_weights_text("solid, gradient, noise, photo, hdri"))]


class Iris(Weights):  # the names of sampling.IRIS_COLOURS (a test keeps them equal)
    brown: Number(ge=0)
    hazel: Number(ge=0)
    green: Number(ge=0)
    blue: Number(ge=0)
    grey: Number(ge=0)


class Appearance(Section):
    skin_dark: Colour
    skin_light: Colour
    skin_hue_jitter: Number(ge=0)
    skin_roughness: Range(ge=0, le=1)
    iris: Annotated[Iris, Field(description=_weights_text("brown, hazel, green, blue, grey"))]
    brow_density: Range(ge=0, le=1)
    brow_thickness: Range(ge=0)
    lip_tint: Range(ge=0, le=1)
    redness: Range(ge=0, le=1)
    freckles_prob: Prob


StrandCount = Range(ge=0, integer=True)


class StrandStyle(Section):
    """One hair, beard or moustache style: the names are checked against generator/hair.py
    (sampling.check_styles)."""

    weight: Number(ge=0)
    strands: StrandCount = (0, 0)
    length: Range(ge=0) = (0.0, 0.0)
    curl: Range(ge=0, le=1) = (0.0, 0.0)


def _some_style(styles: dict) -> dict:
    if not any(style.weight > 0 for style in styles.values()):
        raise ValueError("all weights are 0")
    return styles


Styles = Annotated[dict[str, StrandStyle], AfterValidator(_some_style),
                   Field(min_length=1, description="a mapping of style names to {weight, strands, length, curl}, "
                                                   "at least one weight > 0")]


class Hair(Section):
    styles: Styles
    clumping: Range(ge=0, le=1)
    frizz: Range(ge=0, le=1)
    parting: Range(ge=-1, le=1)
    melanin: Range(ge=0, le=1)
    melanin_redness: Range(ge=0, le=1)
    grey_prob: Prob
    grey: Range(ge=0, le=1)


class FacialHair(Section):
    styles: Styles
    brow_strands: StrandCount
    brow_length: Range(ge=0)


class Cuts(Weights):  # "none" and the names of clothing.CUTS (a test keeps them equal)
    none: Number(ge=0)
    crew_neck: Number(ge=0)
    v_neck: Number(ge=0)
    collar_shirt: Number(ge=0)
    turtleneck: Number(ge=0)
    hoodie: Number(ge=0)


class Patterns(Weights):  # the names of clothing.PATTERNS
    plain: Number(ge=0)
    stripes: Number(ge=0)
    checks: Number(ge=0)
    melange: Number(ge=0)


class Clothing(Section):
    cuts: Annotated[Cuts, Field(description=_weights_text("none, crew_neck, v_neck, collar_shirt, turtleneck, hoodie"))]
    patterns: Annotated[Patterns, Field(description=_weights_text("plain, stripes, checks, melange"))]
    pattern_scale: Range(gt=0)


class Frames(Weights):  # the names of eyewear.FRAMES (a test keeps them equal)
    round: Number(ge=0)
    rectangular: Number(ge=0)
    cat_eye: Number(ge=0)
    browline: Number(ge=0)
    aviator: Number(ge=0)
    rimless: Number(ge=0)


class Lenses(Weights):  # eyewear.LENSES
    clear: Number(ge=0)
    tinted: Number(ge=0)
    sun: Number(ge=0)


class LensOpacity(Section):
    clear: Range(ge=0, le=1)
    tinted: Range(ge=0, le=1)
    sun: Range(ge=0, le=1)


class Eyewear(Section):
    prob: Prob
    frames: Annotated[Frames, Field(description=_weights_text("round, rectangular, cat_eye, browline, aviator, rimless"))]
    lenses: Annotated[Lenses, Field(description=_weights_text("clear, tinted, sun"))]
    opacity: LensOpacity
    thickness: Range(gt=0)
    size: Range(gt=0)
    metal_prob: Prob


class FacewearKinds(Weights):  # facewear.KINDS (a test keeps them equal)
    surgical: Number(ge=0)
    cloth: Number(ge=0)
    respirator: Number(ge=0)


class Facewear(Section):
    prob: Prob
    kinds: Annotated[FacewearKinds, Field(description=_weights_text("surgical, cloth, respirator"))]
    patterns: Annotated[Patterns, Field(description=_weights_text("plain, stripes, checks, melange"))]
    pattern_scale: Range(gt=0)
    fit: Range(ge=0)
    top: Range(ge=0, le=1)


class HeadwearKinds(Weights):  # headwear.KINDS (a test keeps them equal)
    cap: Number(ge=0)
    beanie: Number(ge=0)
    headband: Number(ge=0)
    brimmed_hat: Number(ge=0)


class Headwear(Section):
    prob: Prob
    kinds: Annotated[HeadwearKinds, Field(description=_weights_text("cap, beanie, headband, brimmed_hat"))]
    patterns: Annotated[Patterns, Field(description=_weights_text("plain, stripes, checks, melange"))]
    pattern_scale: Range(gt=0)
    depth: Range()
    tilt: Range(ge=-30, le=30)
    brim: Range(gt=0)


class Poses(Weights):  # hands.POSES but "hold"
    chin: Number(ge=0)
    mouth: Number(ge=0)
    cheek: Number(ge=0)


class Objects(Weights):  # hands.OBJECTS
    phone: Number(ge=0)
    cup: Number(ge=0)
    microphone: Number(ge=0)


class Hands(Section):
    prob: Prob
    poses: Annotated[Poses, Field(description=_weights_text("chin, mouth, cheek"))]
    object_prob: Prob
    objects: Annotated[Objects, Field(description=_weights_text("phone, cup, microphone"))]
    size: Range(gt=0)
    curl: Range(ge=0, le=1)
    spread: Range(ge=0, le=30)
    shift: Number(ge=0)


class SamplingConfig(Section):
    identity: Identity
    expression: Expression
    gaze: Gaze
    head_pose: HeadPose
    camera: Camera
    lighting: Lighting
    background: Background
    appearance: Appearance
    hair: Hair
    facial_hair: FacialHair
    clothing: Clothing
    eyewear: Eyewear
    facewear: Facewear
    headwear: Headwear
    hands: Hands


# -- validation and error messages ------------------------------------------------------------------

def validate_config(config: dict, where: str) -> None:
    """Check a whole (merged) sampling config; `where` names its file in the messages.

    Raises FacegenError listing every problem, one per line."""
    try:
        SamplingConfig.model_validate(config)
    except ValidationError as e:
        lines = []
        for error in e.errors():
            line = _describe(error, config, where)
            if line not in lines:  # e.g. both ends of one range: one line
                lines.append(line)
        raise FacegenError("\n".join(lines)) from None


def _describe(error: dict, config: dict, where: str) -> str:
    """`where: dotted.key = value: must be ...` for one pydantic error."""
    parent, model, mapping_of = None, SamplingConfig, None  # models at the path's last two steps
    path: list[str] = []
    allowed = ""
    for part in error["loc"]:
        if not isinstance(part, str) or part == "[key]":
            break  # an index into a list or range, or a bad mapping key: report the whole field
        path.append(part)
        parent = model
        if mapping_of is not None:  # `part` is a key of a `dict[str, Model]` field (a group name)
            model, mapping_of = mapping_of, None
            allowed = _mapping_text(model)
        elif model is not None and part in model.model_fields:
            field = model.model_fields[part]
            model, mapping_of = _inner_model(field.annotation)
            allowed = field.description or _mapping_text(model)
        else:
            known = ", ".join(sorted(model.model_fields)) if model else ""
            return f"{where}: {_key(path)} = {_value(config, path)}: unknown key; known keys here: {known}"
    if error["type"] == "missing" and len(path) == len(error["loc"]):
        return f"{where}: {_key(path)}: missing; {_key(path[:-1])} must be {_mapping_text(parent)}"
    return f"{where}: {_key(path)} = {_value(config, path)}: must be {allowed}"


def _inner_model(annotation) -> tuple[type[BaseModel] | None, type[BaseModel] | None]:
    """(the model a field is, or the model of a `dict[str, Model]` field's values)."""
    for t in (annotation, *get_args(annotation)):  # `X | None` -> X
        if isinstance(t, type) and issubclass(t, BaseModel):
            return t, None
        if get_origin(t) is dict:
            return None, get_args(t)[1]
    return None, None


def _mapping_text(model: type[BaseModel] | None) -> str:
    if model is None:
        return "a mapping"
    required = [n for n, f in model.model_fields.items() if f.is_required()]
    optional = [n for n, f in model.model_fields.items() if not f.is_required()]
    text = f"a mapping with {', '.join(required)}"
    return text + (f"; optional: {', '.join(optional)}" if optional else "")


def _key(path: list[str]) -> str:
    return ".".join(path) or "(top level)"


def _value(config: Any, path: list[str]) -> str:
    for part in path:
        config = config.get(part) if isinstance(config, dict) else None
    text = repr(config)
    return text if len(text) <= 120 else text[:117] + "..."
