"""What both backends draw, part by part: one place that turns a posed sample into scene geometry.

A `Part` is plain data: its triangles (indices into the posed mesh), the material both backends look
up by name, its segmentation class (generator/segmentation.py) and whether it is see-through: the
face model's regions (`HEAD_PARTS`), built once per backend. What a sample wears (scalp hair,
beards, strand brows, a garment) is new geometry every sample: `dressing` grows it (generator/hair.py,
generator/clothing.py) and both backends draw that same geometry (`DRESSING_MATERIALS`).

- The raster backend draws every part that is not see-through, one vertex block per part, and gives
  each material a colour rule (generator/raster.py, `LOOKS`).
- The Cycles backend draws every part: the opaque ones in one object, the see-through ones in another
  (they must not count in ray-cast visibility), with one Blender material per `Part.material`
  (generator/cycles.py, `_build_materials`); material-index pass values follow the order here.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from functools import lru_cache
from typing import TYPE_CHECKING

import numpy as np

from facegen.errors import FacegenError
from facegen.generator.segmentation import CLASS_ID

from facegen.generator.scene import HEAD_PIVOT

if TYPE_CHECKING:
    from facegen.face_model import FaceModel
    from facegen.generator.scene import PosedScene, SceneParams


@dataclass(frozen=True)
class PartSpec:
    name: str
    regions: tuple[str, ...]  # face-model regions (FaceModel.region_names) it is made of
    material: str  # the material both backends look up by name
    segment: str  # segmentation class name (segmentation.CLASSES)
    # A film or strands (tear film, eye blend, the eye-occlusion shadow, eyelashes): Cycles blends it
    # over what is behind; the raster backend does not draw it. Either way it is not in the depth map,
    # so it never hides a label, and it shows in the segmentation only where Cycles finds it opaque.
    see_through: bool = False


HEAD_PARTS = (
    PartSpec("face", ("face",), "face", "skin"),  # brows and lips are painted on it (segmentation.py)
    PartSpec("head_neck", ("head_neck",), "head_neck", "head_neck"),  # ears, scalp, back of the head, neck
    PartSpec("mouth", ("mouth_socket",), "mouth", "teeth_mouth"),
    PartSpec("eye_socket", ("eye_socket_left", "eye_socket_right"), "eye_socket", "skin"),
    PartSpec("gums_tongue", ("gums_tongue",), "gums_tongue", "teeth_mouth"),
    PartSpec("teeth", ("teeth",), "teeth", "teeth_mouth"),
    PartSpec("sclera", ("sclera_left", "sclera_right"), "sclera", "eyes"),
    PartSpec("iris", ("iris_left", "iris_right"), "iris", "eyes"),  # inside the eyeball: see raster's LOOKS
    PartSpec("lacrimal", ("lacrimal_left", "lacrimal_right"), "lacrimal", "eyes", see_through=True),
    PartSpec("eye_blend", ("eye_blend_left", "eye_blend_right"), "eye_blend", "eyes", see_through=True),
    PartSpec("eye_occlusion", ("eye_occlusion_left", "eye_occlusion_right"), "eye_occlusion", "skin",
             see_through=True),
    PartSpec("eyelashes", ("eyelashes_left", "eyelashes_right"), "eyelashes", "eyelashes", see_through=True),
)


@dataclass(frozen=True, eq=False)
class Part:
    """One part of a scene: triangles of the posed mesh with one material and one class."""

    name: str
    material: str
    segment: str  # segmentation class name
    see_through: bool
    triangle_ids: np.ndarray  # (F,) rows of FaceModel.triangles, in the model's order (UVs: triangle_uvs)
    vertex_ids: np.ndarray  # (n,) the part's vertices, ascending: rows of the posed mesh
    triangles: np.ndarray  # (F, 3) int64 the triangles, as indices into vertex_ids
    vertices: np.ndarray | None = None  # (n, 3) float32 world cm of one sample (scene_parts); None in head_parts

    @property
    def segment_id(self) -> int:
        return CLASS_ID[self.segment]


@lru_cache(maxsize=4)
def head_parts(model: FaceModel) -> tuple[Part, ...]:
    """The parts of `HEAD_PARTS` for this model, without vertex positions (what backends build once).
    Every region of the model is in exactly one part: a region left out would silently not be drawn."""
    listed = [r for spec in HEAD_PARTS for r in spec.regions]
    unlisted = sorted(set(model.region_names) - set(listed))
    twice = sorted({r for r in listed if listed.count(r) > 1})
    if unlisted or twice or not set(listed) <= set(model.region_names):
        raise FacegenError(f"face model regions {list(model.region_names)} do not match the parts in "
                           f"generator/parts.py (unlisted: {unlisted}, listed twice: {twice}, unknown: "
                           f"{sorted(set(listed) - set(model.region_names))})")
    return tuple(_part(spec, model) for spec in HEAD_PARTS)


def _part(spec: PartSpec, model: FaceModel) -> Part:
    region_ids = [model.region_names.index(r) for r in spec.regions]
    triangle_ids = np.flatnonzero(np.isin(model.triangle_region, region_ids))
    tris = model.triangles[triangle_ids]
    vertex_ids = np.unique(tris)
    local = np.searchsorted(vertex_ids, tris)
    return Part(spec.name, spec.material, spec.segment, spec.see_through, triangle_ids, vertex_ids, local)


def scene_parts(params: SceneParams, posed: PosedScene, model: FaceModel) -> list[Part]:
    """The parts of one sample with their world positions: what both backends draw for it.

    The head's parts depend on the pose only (what the sample wears: `dressing`); `params` keeps the
    signature of a function of the whole sample."""
    return [replace(part, vertices=posed.vertices[part.vertex_ids]) for part in head_parts(model)]


# -- what a sample wears: hair strands and garments, grown per sample --------------------------------


# What a sample wears, by material name: its segmentation class. Both backends know these materials
# (Cycles gives them pass indices after the head's: generator/cycles.py material_passes).
DRESSING_MATERIALS = {"scalp_hair": "scalp_hair", "facial_hair": "facial_hair", "brows": "brows",
                      "clothing": "clothing", "eyewear_frame": "eyewear_frame", "lens": "lens",
                      "facewear": "facewear", "headwear": "headwear", "hand": "hand", "object": "object"}
STRAND_SETS = ("scalp_hair", "facial_hair", "brows")  # the strand materials, in drawing order
# The surface materials, in drawing order.
SURFACE_SETS = ("clothing", "eyewear_frame", "lens", "facewear", "headwear", "hand", "object")


@dataclass(frozen=True, eq=False)
class StrandGeometry:
    """Hair strands in one space (model space from generator/hair.py, world space in `Dressing`)."""

    points: np.ndarray  # (S, K, 3) float32 cm, K points per strand from root to tip
    radius: np.ndarray  # (S, K) float32 cm: half the strand's width at each point
    colours: np.ndarray  # (S, 3) float32 linear RGB, one per strand (hair.strand_colours)


@dataclass(frozen=True, eq=False)
class SurfaceGeometry:
    """A triangle mesh with a colour per vertex (a garment from generator/clothing.py)."""

    vertices: np.ndarray  # (n, 3) float32 cm
    triangles: np.ndarray  # (F, 3) int32, counter-clockwise seen from outside
    colours: np.ndarray  # (n, 3) float32 linear RGB (the fabric's pattern, baked per vertex)


@dataclass(frozen=True, eq=False)
class Worn:
    """One thing a sample wears, in world space, named by its material (`DRESSING_MATERIALS`).
    Strands: Cycles draws them as hair curves (Principled Hair BSDF, colour from `colours`), the
    raster backend as ribbons of the same width facing the camera. A surface (the garment) both
    draw as a mesh. Both are opaque and in the depth map, so they hide the labels behind them."""

    material: str
    geometry: StrandGeometry | SurfaceGeometry
    # The share of light it stops, below 1 for lenses: under eyewear.OPAQUE it is see-through (in
    # neither backend's depth map, so it hides no label, and the class map shows what is behind it).
    opacity: float = 1.0

    @property
    def segment(self) -> str:
        return DRESSING_MATERIALS[self.material]

    @property
    def segment_id(self) -> int:
        return CLASS_ID[self.segment]


@dataclass(frozen=True, eq=False)
class Dressing:
    """What one sample wears, in world space: grown from its SceneParams, different every sample."""

    strands: tuple[Worn, ...] = ()  # StrandGeometry, in STRAND_SETS order
    surfaces: tuple[Worn, ...] = ()  # SurfaceGeometry


def dressing(params: SceneParams, posed: PosedScene, model: FaceModel) -> Dressing:
    """Scalp hair, facial hair, strand brows, the garment, glasses, a face mask, headwear and a hand
    (maybe holding something) of one sample, in world space.

    Grown in model space on the sample's shaped mesh (the posed mesh with the head pose undone),
    under gravity as the posed head feels it, then posed like the head, so both backends draw the
    same geometry and a record re-renders it bit for bit."""
    from facegen.generator import clothing, eyewear, facewear, hair, hands, headwear

    R, t = np.asarray(posed.head_R, np.float64), np.asarray(posed.head_t, np.float64)
    pivot = HEAD_PIVOT
    shaped = ((posed.vertices - t) @ R + pivot).astype(np.float32)  # R orthonormal: R^-1 = R^T
    gravity = R.T @ np.array([0.0, -1.0, 0.0])

    def to_world(v: np.ndarray) -> np.ndarray:
        return ((v - pivot) @ R.T + t).astype(np.float32)

    mask = facewear.mask(params.facewear, shaped, model)
    hat = headwear.hat(params.headwear, shaped, model)
    strands = []
    for name, grown in (("scalp_hair", hair.scalp_strands(params.hair, shaped, model, gravity)),
                        ("facial_hair", hair.facial_strands(params.facial_hair, params.hair, shaped, model, gravity)),
                        ("brows", hair.brow_strands(params.appearance, params.facial_hair, shaped, model))):
        if grown is not None and mask is not None and name == "facial_hair":
            grown = facewear.tuck(grown, mask)  # a beard stays under the mask
        if grown is not None and hat is not None and name == "scalp_hair":
            grown = headwear.tuck(grown, hat)  # hair stays under the hat, what hangs below it shows
        if grown is not None and len(grown.points):
            world = replace(grown, points=to_world(grown.points.reshape(-1, 3)).reshape(grown.points.shape))
            strands.append(Worn(name, world))
    glasses = eyewear.glasses(params.eyewear, shaped, model)
    held = hands.hand(params.hand, shaped, model)
    # (material, model-space surface, opacity) in SURFACE_SETS order; None where the sample has none.
    worn = [("clothing", clothing.garment(params.clothing, shaped, model), 1.0),
            ("eyewear_frame", glasses.frame if glasses else None, 1.0),
            ("lens", glasses.lenses if glasses else None, glasses.opacity if glasses else 1.0),
            ("facewear", mask.surface if mask else None, 1.0),
            ("headwear", hat.surface if hat else None, 1.0),
            ("hand", held.hand if held else None, 1.0),
            ("object", held.object if held else None, 1.0)]
    surfaces = [Worn(material, replace(g, vertices=to_world(g.vertices)), opacity)
                for material, g, opacity in worn if g is not None]
    return Dressing(tuple(strands), tuple(surfaces))


def drawn_triangles(parts, see_through: bool | None = None) -> np.ndarray:
    """Sorted rows of FaceModel.triangles of the given parts (only those with this see_through flag
    unless None): what one backend object or pass draws, in the model's triangle order."""
    ids = [p.triangle_ids for p in parts if see_through is None or p.see_through == see_through]
    return np.sort(np.concatenate(ids)) if ids else np.zeros(0, np.int64)
