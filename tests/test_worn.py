"""Face masks, headwear and hands (generator/facewear.py, headwear.py, hands.py): fitted to each face
without cutting into it, following the jaw, drawn by both backends from the same geometry, and
labelled: what they cover is hidden by them, and only that."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from facegen.generator import facewear, hands, headwear
from facegen.generator.hair import skin_proxy
from facegen.generator.parts import dressing
from facegen.generator.scene import HEAD_PIVOT, Facewear, Hair, Hand, Headwear, pose_scene
from facegen.generator.segmentation import CLASS_ID, OCCLUDER_ID
from tests.test_dressing import BEARD, FRINGE, dressed
from tests.test_eyewear import cycles, ibug68, raster  # noqa: F401 - the same module-scoped fixtures

MOUTH = np.arange(48, 68)  # iBUG-68 points
NOSE = np.arange(27, 36)
EYES_BROWS = np.arange(17, 48)
SURGICAL = Facewear(kind="surgical", fit=0.3, top=0.5)
CAP = Headwear(kind="cap", color=(0.1, 0.2, 0.5))


def test_kind_names_match_the_sampling_config():
    from facegen.generator.config_schema import FacewearKinds, HeadwearKinds, Objects, Poses

    assert set(FacewearKinds.model_fields) == set(facewear.KINDS)
    assert set(HeadwearKinds.model_fields) == set(headwear.KINDS)
    assert set(Poses.model_fields) | {"hold"} == set(hands.POSES)
    assert set(Objects.model_fields) == set(hands.OBJECTS)


def _random_shapes(model, n=6):
    rng = np.random.default_rng(3)
    for _ in range(n):
        expr = np.zeros(model.num_expressions, np.float32)
        expr[rng.choice(model.num_expressions, 4, replace=False)] = rng.uniform(0, 0.8, 4)
        yield model.meshes(rng.normal(size=(1, model.num_identity)).astype(np.float32) * 1.2, expr[None])[0]


WORN = [("facewear", kind) for kind in facewear.KINDS] + [("headwear", kind) for kind in headwear.KINDS] + \
    [("hand", pose) for pose in ("chin", "mouth", "cheek")] + [("hold", obj) for obj in hands.OBJECTS]


def _surfaces(what, kind, shaped, model):
    if what == "facewear":  # the straps (the sheet: test_a_mask_stands_off_the_face)
        surface = facewear.mask(Facewear(kind=kind), shaped, model).surface
        return [dataclasses.replace(surface, vertices=surface.vertices[2 * facewear.ROWS * facewear.COLUMNS:])]
    if what == "headwear":
        return [headwear.hat(Headwear(kind=kind), shaped, model).surface]
    held = hands.hand(Hand(pose="hold", object=kind) if what == "hold" else Hand(pose=kind), shaped, model)
    return [held.hand] + ([held.object] if held.object is not None else [])


@pytest.mark.parametrize("what,kind", WORN)
def test_worn_things_never_cut_into_the_face(face_model, what, kind):
    """Over random identities and expressions nothing of a mask, a hat, a hand or what it holds is
    inside the head (the hair module's skin proxy: signed distance along the nearest skin normal)."""
    for shaped in _random_shapes(face_model):
        skin = skin_proxy(shaped.astype(np.float32), face_model)
        for surface in _surfaces(what, kind, shaped, face_model):
            d, n = skin.distance(surface.vertices)
            near = np.linalg.norm(n, axis=1) > 0  # within the proxy's grid
            assert not near.any() or d[near].min() > -0.1, (what, kind, d[near].min())
            assert np.isfinite(surface.vertices).all() and len(surface.triangles)


@pytest.mark.parametrize("kind", facewear.KINDS)
def test_a_mask_stands_off_the_face(face_model, kind):
    """Every skin vertex under a mask's footprint is inside its back face (radius from the head's
    vertical axis at the vertex's azimuth and height, read off the sheet), over random faces: the
    hair module's skin proxy cannot judge the lips of an open mouth, this can."""
    from scipy.interpolate import RegularGridInterpolator

    from facegen.generator.meshes import skin_vertices

    for shaped in _random_shapes(face_model):
        worn = facewear.mask(Facewear(kind=kind, fit=0.15), shaped, face_model)
        p = shaped[skin_vertices(face_model)].astype(np.float64)
        az, r = np.degrees(np.arctan2(p[:, 0], p[:, 2])), np.hypot(p[:, 0], p[:, 2])
        col = (az - worn.azimuths[0]) / (worn.azimuths[1] - worn.azimuths[0])
        inside = (col >= 0) & (col <= len(worn.azimuths) - 1)
        c = np.clip(col, 0, len(worn.azimuths) - 1)
        top = np.interp(c, np.arange(len(worn.azimuths)), worn.heights[0])
        bottom = np.interp(c, np.arange(len(worn.azimuths)), worn.heights[-1])
        under = inside & (p[:, 1] < top) & (p[:, 1] > bottom) & (r > 4.0)  # not the far side of the axis
        row = (top - p[:, 1]) / (top - bottom) * (facewear.ROWS - 1)
        sheet = RegularGridInterpolator((np.arange(facewear.ROWS), np.arange(len(worn.azimuths))),
                                        worn.radius - facewear.THICKNESS)
        gap = sheet(np.stack([row[under], c[under]], 1)) - r[under]
        assert under.sum() > 500 and gap.min() > -0.05, (kind, under.sum(), gap.min())


def test_a_mask_follows_the_jaw(face_model):
    """Opening the mouth lowers the chin and the mask's lower edge with it."""
    names = list(face_model.expression_names)
    closed = face_model.meshes(np.zeros((1, face_model.num_identity), np.float32),
                               np.zeros((1, face_model.num_expressions), np.float32))[0]
    expr = np.zeros(face_model.num_expressions, np.float32)
    expr[names.index("jawOpen")] = 1.0
    opened = face_model.meshes(np.zeros((1, face_model.num_identity), np.float32), expr[None])[0]
    chin_drop = closed[face_model.landmarks68[8], 1] - opened[face_model.landmarks68[8], 1]
    a, b = facewear.mask(SURGICAL, closed, face_model), facewear.mask(SURGICAL, opened, face_model)
    edge_drop = a.heights[-1, len(a.azimuths) // 2] - b.heights[-1, len(b.azimuths) // 2]
    assert chin_drop > 1.0 and abs(edge_drop - chin_drop) < 0.05 * chin_drop, (chin_drop, edge_drop)


def test_hair_is_tucked_under_a_hat_and_a_beard_under_a_mask(face_model):
    """No strand point is in the crown's footprint outside its inner face; what hangs below shows."""
    p = dataclasses.replace(dressed(face_model, hair=FRINGE), headwear=Headwear(kind="beanie"))
    posed = pose_scene(p, face_model)
    worn = dressing(p, posed, face_model)
    hair = next(s for s in worn.strands if s.material == "scalp_hair").geometry
    bare = next(s for s in dressing(dataclasses.replace(p, headwear=Headwear()), posed, face_model).strands
                if s.material == "scalp_hair").geometry
    moved = np.linalg.norm(hair.points - bare.points, axis=-1) > 1e-4
    assert 0.05 < moved.any(1).mean() < 1.0, moved.any(1).mean()  # strands standing out are pulled in
    assert (~moved).sum() > 0.5 * moved.size  # the rest, and what hangs below the rim, stay
    hat = headwear.hat(p.headwear, face_model.meshes(p.identity[None], p.expression[None])[0], face_model)
    R, t = posed.head_R, posed.head_t
    model_space = dataclasses.replace(hair, points=((hair.points - t) @ R + HEAD_PIVOT).astype(np.float32))
    again = headwear.tuck(model_space, hat).points  # nothing left to pull in
    assert np.abs(again - model_space.points).max() < 1e-3
    p = dataclasses.replace(dressed(face_model, facial=BEARD), facewear=SURGICAL)
    posed = pose_scene(p, face_model)
    beard = next(s for s in dressing(p, posed, face_model).strands if s.material == "facial_hair").geometry
    bare = next(s for s in dressing(dataclasses.replace(p, facewear=Facewear()), posed, face_model).strands
                if s.material == "facial_hair").geometry
    assert (np.linalg.norm(beard.points - bare.points, axis=-1) > 1e-4).any()
    mask = facewear.mask(p.facewear, face_model.meshes(p.identity[None], p.expression[None])[0], face_model)
    model_space = dataclasses.replace(beard, points=((beard.points - posed.head_t) @ posed.head_R
                                                     + HEAD_PIVOT).astype(np.float32))
    assert np.abs(facewear.tuck(model_space, mask).points - model_space.points).max() < 1e-3


def rendered(face_model, ibug68, renderer, yaw=0.0, **worn):
    p = dataclasses.replace(dressed(face_model, size=(192, 192), yaw=yaw), **worn)
    p.head_rotation = (yaw, 0.0, 0.0)
    posed = pose_scene(p, face_model)
    result = renderer.render(p, posed)
    return result, ibug68(p, posed, result.depth, result.segmentation)


@pytest.mark.parametrize("backend", ["raster", pytest.param("cycles", marks=pytest.mark.blender)])
def test_a_hand_over_the_mouth_hides_the_mouth_points_and_only_them(face_model, ibug68, backend, request):
    """Of the face's inner points (brows, eyes, nose, mouth) the hand hides the mouth's and no
    other; the outline points it hides (the palm beside the mouth covers some of the jaw line) are
    exactly those it is drawn over."""
    renderer = request.getfixturevalue(backend)
    _, bare = rendered(face_model, ibug68, renderer)
    assert (bare.occluded_by == OCCLUDER_ID["none"]).all(), bare.occluded_by
    result, worn = rendered(face_model, ibug68, renderer, hand=Hand(pose="mouth", side=1, curl=0.1))
    by_hand = worn.occluded_by == OCCLUDER_ID["hand"]
    assert set(np.flatnonzero(by_hand[17:]) + 17) == set(MOUTH), np.flatnonzero(by_hand)
    assert (worn.visibility[MOUTH] == 0).all()
    # Points under the hand's pixels (all 3 x 3 around them) are hidden by it, points clear of it
    # (none of the 3 x 3) are not; at its very edge either can be right.
    u, v = np.floor(worn.points_2d + 0.5).astype(int).T
    around = np.stack([result.segmentation[v + dv, u + du] == CLASS_ID["hand"]
                       for dv in (-1, 0, 1) for du in (-1, 0, 1)])
    assert by_hand[around.all(0)].all() and not by_hand[~around.any(0)].any(), \
        (np.flatnonzero(around.all(0)), np.flatnonzero(by_hand))
    assert around.all(0).sum() >= 20


@pytest.mark.parametrize("backend", ["raster", pytest.param("cycles", marks=pytest.mark.blender)])
def test_a_mask_hides_the_mouth_and_a_cap_leaves_the_eyes(face_model, ibug68, backend, request):
    renderer = request.getfixturevalue(backend)
    result, worn = rendered(face_model, ibug68, renderer, facewear=SURGICAL, headwear=CAP, hair=Hair())
    assert (worn.occluded_by[MOUTH] == OCCLUDER_ID["facewear"]).all(), worn.occluded_by[MOUTH]
    assert (worn.occluded_by[33:36] == OCCLUDER_ID["facewear"]).all()  # the nose's lower points
    assert (worn.occluded_by[36:48] == OCCLUDER_ID["none"]).all()  # eyes seen under the peak
    assert (result.segmentation == CLASS_ID["headwear"]).sum() > 1500
    # pulled down low, the cap hides the brows
    result, low = rendered(face_model, ibug68, renderer, headwear=dataclasses.replace(CAP, depth=3.2), hair=Hair())
    assert (low.occluded_by[17:27] == OCCLUDER_ID["headwear"]).sum() >= 6, low.occluded_by[17:27]
    assert (low.occluded_by[36:48] == OCCLUDER_ID["none"]).all()


@pytest.mark.blender
@pytest.mark.parametrize("worn", [dict(facewear=dataclasses.replace(SURGICAL, kind="respirator")),
                                  dict(headwear=Headwear(kind="brimmed_hat")),
                                  dict(hand=Hand(pose="hold", object="cup", side=-1))])
def test_backends_agree_on_where_worn_things_are(face_model, raster, cycles, worn):
    p = dataclasses.replace(dressed(face_model, size=(160, 160), yaw=20.0), **worn)
    posed = pose_scene(p, face_model)
    a, b = raster.render(p, posed).segmentation, cycles.render(p, posed).segmentation
    for c in ("facewear", "headwear", "hand", "object"):
        x, y = a == CLASS_ID[c], b == CLASS_ID[c]
        if x.sum() + y.sum() == 0:
            continue
        iou = (x & y).sum() / max((x | y).sum(), 1)
        assert iou > 0.85, (c, iou)
