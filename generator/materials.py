"""Cycles materials for the ICT-FaceKit regions, as plain node-tree builder functions.

Every per-sample choice is a named input node ("p_<name>", a Value or RGB node) so the renderer
updates numbers per sample instead of rebuilding materials (`set_param`). Painted features (brows,
lips, redness zones) come from a small UV-space feature map computed from the mesh itself: the
iBUG-68 landmark vertices mapped through the face UVs (`face_feature_map`), so no pixel positions are
hard-coded. Brow and lip coverage is also written to AOVs ("brow", "lip") for the segmentation.
"""

from __future__ import annotations

import cv2
import numpy as np

import bpy

from facegen.face_model import FaceModel

# -- the UV-space feature map -------------------------------------------------------------------


def landmark_uvs(model: FaceModel) -> np.ndarray:
    """(68, 2) UV coordinates of the iBUG-68 landmark vertices on the face region's UV chart."""
    faces = model.region_triangles("face")
    tri, tuv = model.triangles[faces].ravel(), model.triangle_uvs[faces].ravel()
    first = {}
    for v, t in zip(tri.tolist(), tuv.tolist()):
        first.setdefault(v, t)
    return np.array([model.uvs[first[int(v)]] for v in model.landmarks68], np.float64)


def _polyline_distance(p: np.ndarray, line: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Distance of points p (N, 2) to a polyline (M, 2) and the arc-length parameter t in [0, 1]."""
    seg = np.diff(line, axis=0)
    lens = np.linalg.norm(seg, axis=1)
    cum = np.concatenate([[0.0], np.cumsum(lens)])
    best = np.full(len(p), np.inf)
    t = np.zeros(len(p))
    for i, (a, d, L) in enumerate(zip(line[:-1], seg, lens)):
        s = np.clip(((p - a) @ d) / (L * L), 0.0, 1.0)
        dist = np.linalg.norm(p - (a + s[:, None] * d), axis=1)
        closer = dist < best
        best[closer] = dist[closer]
        t[closer] = (cum[i] + s[closer] * L) / cum[-1]
    return best, t


def face_feature_map(model: FaceModel, size: int = 1024) -> np.ndarray:
    """(size, size, 4) float32 in face-UV space, row 0 at v = 0 (Blender's pixel order).

    R: distance to the brow centre line divided by the brow half width (< 1 inside the brow),
    G: position along the brow (0 at the inner end, 1 at the tail), B: lip coverage (soft 0..1),
    A: redness weight (nose, cheeks, around the lips)."""
    L = landmark_uvs(model)
    u = (np.arange(size) + 0.5) / size
    uu, vv = np.meshgrid(u, u)  # rows: v, columns: u
    p = np.stack([uu.ravel(), vv.ravel()], axis=1)
    interocular = np.linalg.norm(L[45] - L[36])
    half_width = 0.07 * interocular  # about 5 mm at the brow head
    dist = np.full(len(p), np.inf)
    along = np.zeros(len(p))
    for idx in (range(21, 16, -1), range(22, 27)):  # inner end first
        line = L[list(idx)].copy()
        line[:, 1] -= 0.8 * half_width  # iBUG brow points trace the upper edge; the centre is lower
        d, t = _polyline_distance(p, line)
        closer = d < dist
        dist[closer], along[closer] = d[closer], t[closer]
    taper = 1.0 - 0.55 * along**1.5  # brows thin towards the tail
    R = (dist / (half_width * taper)).reshape(size, size)
    G = along.reshape(size, size)

    lips = np.zeros((size, size), np.uint8)
    cv2.fillPoly(lips, [np.round(L[48:60] * size * 16).astype(np.int32)], 255, lineType=cv2.LINE_AA, shift=4)
    B = cv2.GaussianBlur(lips.astype(np.float32) / 255.0, (0, 0), size * 0.002)

    def blob(c, sigma):
        return np.exp(-np.sum((p - c) ** 2, axis=1) / (2 * sigma**2)).reshape(size, size)

    A = (
        blob(L[30], 0.035)
        + 0.6 * blob(L[31], 0.02)
        + 0.6 * blob(L[35], 0.02)
        + 0.8 * blob((L[1] + L[31] + L[41]) / 3, 0.05)
        + 0.8 * blob((L[15] + L[35] + L[46]) / 3, 0.05)
        + 0.5 * cv2.GaussianBlur(B, (0, 0), size * 0.02) / max(B.max(), 1e-6)
    )
    A = np.clip(A, 0.0, 1.0)
    return np.stack([R, G, B, A], axis=-1).astype(np.float32)


def feature_image(model: FaceModel, size: int = 1024) -> "bpy.types.Image":
    """The feature map as a non-colour float bpy image (built once per process)."""
    fm = face_feature_map(model, size)
    img = bpy.data.images.new("facegen_features", size, size, alpha=True, float_buffer=True)
    img.colorspace_settings.name = "Non-Color"
    img.alpha_mode = "CHANNEL_PACKED"
    img.pixels.foreach_set(fm.ravel())
    img.pack()  # keep it in memory: no file behind it
    return img


# -- a tiny node-graph helper -------------------------------------------------------------------


class Graph:
    """Wraps a node tree: `g.node(type, inputs={...}, **props)` and links by socket or value."""

    def __init__(self, tree):
        self.tree = tree
        tree.nodes.clear()

    def node(self, kind: str, inputs: dict | None = None, name: str | None = None, **props):
        n = self.tree.nodes.new(kind)
        if name:
            n.name = n.label = name
        for k, v in props.items():
            setattr(n, k, v)
        for key, value in (inputs or {}).items():
            self.set(n.inputs[key], value)
        return n

    def set(self, socket, value):
        if isinstance(value, bpy.types.NodeSocket):
            self.tree.links.new(value, socket)
        elif isinstance(value, bpy.types.Node):
            self.tree.links.new(value.outputs[0], socket)
        else:
            socket.default_value = value

    def value(self, name: str, v: float):
        n = self.node("ShaderNodeValue", name="p_" + name)
        n.outputs[0].default_value = v
        return n.outputs[0]

    def rgb(self, name: str, c):
        n = self.node("ShaderNodeRGB", name="p_" + name)
        n.outputs[0].default_value = (*c[:3], 1.0)
        return n.outputs[0]

    def math(self, op: str, a, b=0.0, clamp=False):
        return self.node("ShaderNodeMath", {0: a, 1: b}, operation=op, use_clamp=clamp).outputs[0]

    def mix(self, a, b, fac):
        """Mix two colours (a at fac = 0, b at fac = 1)."""
        n = self.node("ShaderNodeMix", data_type="RGBA", blend_type="MIX")
        self.set(n.inputs["Factor"], fac)
        self.set(n.inputs[6], a)
        self.set(n.inputs[7], b)
        return n.outputs[2]

    def mul_rgb(self, a, b):
        n = self.node("ShaderNodeMix", data_type="RGBA", blend_type="MULTIPLY")
        n.inputs["Factor"].default_value = 1.0
        self.set(n.inputs[6], a)
        self.set(n.inputs[7], b)
        return n.outputs[2]

    def smooth(self, x, lo, hi, out_lo=0.0, out_hi=1.0):
        """Smoothstep of x from [lo, hi] to [out_lo, out_hi] (sockets or numbers)."""
        n = self.node("ShaderNodeMapRange", interpolation_type="SMOOTHSTEP", clamp=True)
        for i, v in enumerate((x, lo, hi, out_lo, out_hi)):
            self.set(n.inputs[i], v)
        return n.outputs[0]

    def noise(self, vector, scale, detail=2.0, roughness=0.5, w=None):
        """3D noise; `w` (a per-sample seed) shifts the lookup instead of a dearer 4D noise."""
        n = self.node("ShaderNodeTexNoise", {"Scale": scale, "Detail": detail, "Roughness": roughness})
        if w is not None:
            vector = self.offset(vector, w)
        if vector is not None:
            self.set(n.inputs["Vector"], vector)
        return n

    def offset(self, vector, w):
        shift = self.node("ShaderNodeCombineXYZ", {0: w, 1: self.math("MULTIPLY", w, 0.37), 2: self.math("MULTIPLY", w, 0.71)})
        if vector is None:
            vector = self.node("ShaderNodeTexCoord").outputs["Generated"]
        return self.node("ShaderNodeVectorMath", {0: vector, 1: shift}, operation="ADD").outputs[0]

    def output(self, shader):
        out = self.node("ShaderNodeOutputMaterial", target="CYCLES")
        self.set(out.inputs["Surface"], shader)
        return out

    def aov(self, name: str, value):
        self.node("ShaderNodeOutputAOV", {"Value": value}, aov_name=name)


def set_param(material: "bpy.types.Material", name: str, value) -> None:
    """Set a per-sample input ("p_<name>") of a material built here; silently absent names are a bug."""
    node = material.node_tree.nodes["p_" + name]
    if node.bl_idname == "ShaderNodeRGB":
        node.outputs[0].default_value = (*value[:3], 1.0)
    else:
        node.outputs[0].default_value = float(value)


def _new(name: str, pass_index: int):
    m = bpy.data.materials.new(name)
    m.use_nodes = True
    m.pass_index = pass_index
    return m, Graph(m.node_tree)


def _principled(g: Graph, base, roughness, **inputs):
    n = g.node("ShaderNodeBsdfPrincipled", {"Base Color": base, "Roughness": roughness, **inputs})
    return n


# -- skin -----------------------------------------------------------------------------------------


def skin_material(name: str, pass_index: int, features: "bpy.types.Image | None", sss_method: str):
    """Procedural skin: albedo with blotches, redness, freckles; painted brows and lips (face chart
    only, when `features` is given); roughness/specular variation; pore bump; subsurface scattering."""
    m, g = _new(name, pass_index)
    base = g.rgb("skin_albedo", (0.6, 0.45, 0.36))
    rough = g.value("roughness", 0.45)
    redness = g.value("redness", 0.3)
    freckles = g.value("freckles", 0.0)
    lip_tint = g.value("lip_tint", 0.5)
    brow_color = g.rgb("brow_color", (0.08, 0.06, 0.05))
    brow_density = g.value("brow_density", 0.8)
    brow_thickness = g.value("brow_thickness", 1.0)
    seed = g.value("seed", 0.0)

    uv = g.node("ShaderNodeUVMap").outputs["UV"]
    rest = g.node("ShaderNodeAttribute", attribute_name="rest", attribute_type="GEOMETRY").outputs["Vector"]

    # Large-scale blotchiness and hue variation, in rest-pose space so it is seamless across UV charts.
    blotch = g.noise(rest, 0.35, detail=3.0, w=seed).outputs["Fac"]
    hue = g.noise(rest, 0.12, detail=2.0, w=g.math("ADD", seed, 7.3)).outputs["Fac"]
    col = g.mix(base, g.mul_rgb(base, (1.12, 0.92, 0.86, 1.0)), g.math("MULTIPLY", hue, 0.5))
    col = g.mul_rgb(col, g.node("ShaderNodeCombineColor", {0: g.math("ADD", g.math("MULTIPLY", blotch, 0.25), 0.88),
                                                              1: g.math("ADD", g.math("MULTIPLY", blotch, 0.3), 0.85),
                                                              2: g.math("ADD", g.math("MULTIPLY", blotch, 0.3), 0.85)}))

    if features is not None:
        tex = g.node("ShaderNodeTexImage", {"Vector": uv}, image=features, interpolation="Linear", extension="EXTEND")
        sep = g.node("ShaderNodeSeparateColor", {"Color": tex.outputs["Color"]})
        brow_d, brow_t, lip = sep.outputs[0], sep.outputs[1], sep.outputs[2]
        red_w = tex.outputs["Alpha"]
    else:
        brow_d, brow_t, lip, red_w = 10.0, 0.0, 0.0, 0.15

    # Redness: nose, cheeks and around the lips, scaled by the sampled amount.
    red_amt = g.math("MULTIPLY", g.math("ADD", red_w, 0.1), redness, clamp=True)
    col = g.mix(col, g.mul_rgb(col, (1.3, 0.62, 0.6, 1.0)), g.math("MULTIPLY", red_amt, 0.8))

    # Freckles: small Voronoi spots, gated by a low-frequency mask and the sampled amount.
    vor = g.node("ShaderNodeTexVoronoi", {"Vector": g.offset(rest, seed), "Scale": 9.0})
    spot = g.smooth(vor.outputs["Distance"], 0.12, 0.28, 1.0, 0.0)
    gate = g.smooth(g.noise(rest, 0.8, w=g.math("ADD", seed, 3.1)).outputs["Fac"], 0.45, 0.6)
    fr = g.math("MULTIPLY", g.math("MULTIPLY", spot, gate), g.math("MULTIPLY", freckles, g.math("ADD", red_w, 0.4)), clamp=True)
    col = g.mix(col, g.mul_rgb(col, (0.62, 0.45, 0.34, 1.0)), fr)

    # Lips: redder and darker, glossier.
    lip_amt = g.math("MULTIPLY", lip, g.math("ADD", g.math("MULTIPLY", lip_tint, 0.6), 0.4))
    col = g.mix(col, g.mul_rgb(col, (0.85, 0.48, 0.5, 1.0)), lip_amt)

    # Brows: a shape mask (per-sample thickness) times elongated hair strands (per-sample density).
    width = g.math("MULTIPLY", brow_thickness, g.math("SUBTRACT", 1.0, g.math("MULTIPLY", brow_t, 0.3)))
    shape = g.smooth(brow_d, g.math("MULTIPLY", width, 0.55), width, 1.0, 0.0)
    # Hair strokes: noise stretched along the brow (u) and squeezed across it (v), slightly slanted
    # upwards, so the strokes run like brow hair; density thickens them, colour is the sampled brow's.
    strands_vec = g.node("ShaderNodeMapping", {"Vector": uv, "Scale": (60.0, 1400.0, 1.0), "Rotation": (0.0, 0.0, 0.25)}).outputs[0]
    strands = g.noise(strands_vec, 1.0, detail=2.0, w=seed).outputs["Fac"]
    hair = g.smooth(strands, g.math("SUBTRACT", 0.56, g.math("MULTIPLY", brow_density, 0.12)), 0.6)
    brow = g.math("MULTIPLY", shape, g.math("ADD", g.math("MULTIPLY", hair, 0.75), g.math("MULTIPLY", brow_density, 0.3)), clamp=True)
    col = g.mix(col, g.mul_rgb(brow_color, (0.8, 0.8, 0.8, 1.0)), brow)

    # Roughness / specular variation: T-zone shinier, lips glossier, brow hair matte.
    rvar = g.noise(rest, 0.5, w=g.math("ADD", seed, 11.0)).outputs["Fac"]
    r = g.math("ADD", rough, g.math("MULTIPLY", g.math("SUBTRACT", rvar, 0.5), 0.2))
    r = g.math("SUBTRACT", r, g.math("MULTIPLY", lip_amt, 0.2))
    r = g.math("ADD", g.math("MAXIMUM", r, 0.38), g.math("MULTIPLY", brow, 0.3), clamp=True)
    spec = g.math("MULTIPLY", g.math("ADD", 0.4, g.math("MULTIPLY", rvar, 0.2)), g.math("SUBTRACT", 1.0, g.math("MULTIPLY", brow, 0.7)))

    # Pores and fine wrinkles: Voronoi cells plus fine noise in UV space (tiny, cm-scale charts).
    pores = g.node("ShaderNodeTexVoronoi", {"Vector": uv, "Scale": 450.0}, feature="F1", voronoi_dimensions="2D").outputs["Distance"]
    fine = g.noise(uv, 1500.0, detail=1.0).outputs["Fac"]
    height = g.math("ADD", g.math("MULTIPLY", pores, 0.7), g.math("MULTIPLY", fine, 0.3))
    height = g.math("ADD", height, g.math("MULTIPLY", brow, strands))
    bump = g.node("ShaderNodeBump", {"Strength": 0.25, "Distance": 0.0002, "Height": height})

    bsdf = _principled(
        g, col, r,
        **{"Subsurface Weight": g.math("SUBTRACT", 1.0, g.math("MULTIPLY", brow, 0.95)),
           "Subsurface Radius": (1.0, 0.35, 0.2), "Subsurface Scale": 0.004,
           "Specular IOR Level": spec, "Normal": bump.outputs["Normal"], "IOR": 1.4},
    )
    bsdf.subsurface_method = sss_method
    g.output(bsdf)
    g.aov("brow", shape if features is not None else 0.0)
    g.aov("lip", lip if features is not None else 0.0)
    return m


# -- eyes -------------------------------------------------------------------------------------------


def _uv_radius(g: Graph):
    uv = g.node("ShaderNodeUVMap").outputs["UV"]
    centred = g.node("ShaderNodeVectorMath", {0: uv, 1: (0.5, 0.5, 0.0)}, operation="SUBTRACT").outputs[0]
    r = g.node("ShaderNodeVectorMath", {0: centred}, operation="LENGTH").outputs["Value"]
    return centred, r


def sclera_material(name: str, pass_index: int):
    """The eyeball's outer shell: white, slightly veined sclera; its front cap (UV radius < 0.1,
    about 30 degrees) is the clear glossy cornea over the iris mesh behind it."""
    m, g = _new(name, pass_index)
    redness = g.value("sclera_redness", 0.2)
    _, r = _uv_radius(g)
    veins = g.noise(None, 40.0, detail=6.0).outputs["Fac"]
    vein_amt = g.math("MULTIPLY", g.smooth(r, 0.15, 0.3), g.math("MULTIPLY", redness, g.smooth(veins, 0.5, 0.7)))
    col = g.mix((0.78, 0.72, 0.66, 1.0), (0.7, 0.25, 0.2, 1.0), vein_amt)
    sclera = _principled(g, col, 0.25, **{"Coat Weight": 1.0, "Coat Roughness": 0.03,
                                          "Subsurface Weight": 0.3, "Subsurface Radius": (1.0, 0.5, 0.4),
                                          "Subsurface Scale": 0.002})
    glossy = g.node("ShaderNodeBsdfGlossy", {"Roughness": 0.02})
    clear = g.node("ShaderNodeBsdfTransparent")
    fres = g.node("ShaderNodeFresnel", {"IOR": 1.376})
    cornea = g.node("ShaderNodeMixShader", {0: fres, 1: clear, 2: glossy})
    cap = g.smooth(r, 0.095, 0.105, 1.0, 0.0)
    g.output(g.node("ShaderNodeMixShader", {0: cap, 1: sclera, 2: cornea}))
    return m


def iris_material(name: str, pass_index: int):
    """Iris with radial fibres in the sampled colour, a dark limbal ring and a sampled pupil size."""
    m, g = _new(name, pass_index)
    color = g.rgb("iris_color", (0.25, 0.15, 0.08))
    pupil = g.value("pupil", 0.14)
    seed = g.value("seed", 0.0)
    centred, r = _uv_radius(g)
    sep = g.node("ShaderNodeSeparateXYZ", {0: centred})
    ang = g.math("ARCTAN2", sep.outputs[1], sep.outputs[0])
    fib_vec = g.node("ShaderNodeCombineXYZ", {0: g.math("MULTIPLY", ang, 6.0), 1: g.math("MULTIPLY", r, 8.0)})
    fibres = g.noise(fib_vec, 3.0, detail=4.0, w=seed).outputs["Fac"]
    col = g.mul_rgb(color, g.node("ShaderNodeCombineColor", {i: g.math("ADD", 0.35, g.math("MULTIPLY", fibres, 1.3)) for i in range(3)}))
    col = g.mix(col, g.mul_rgb(color, (0.25, 0.25, 0.25, 1.0)), g.smooth(r, 0.26, 0.32))  # limbal ring
    col = g.mix(col, (0.01, 0.01, 0.01, 1.0), g.smooth(r, g.math("ADD", pupil, 0.01), pupil))  # pupil
    col = g.mix(col, (0.03, 0.02, 0.02, 1.0), g.smooth(r, 0.32, 0.34))  # behind the iris
    g.output(_principled(g, col, 0.45))
    return m


def lacrimal_material(name: str, pass_index: int):
    """Tear film along the lid margin: wet, glossy and almost fully transparent."""
    m, g = _new(name, pass_index)
    glossy = g.node("ShaderNodeBsdfGlossy", {"Roughness": 0.03})
    clear = g.node("ShaderNodeBsdfTransparent")
    fres = g.node("ShaderNodeLayerWeight", {"Blend": 0.2})
    fac = g.math("ADD", 0.1, g.math("MULTIPLY", fres.outputs["Fresnel"], 0.3))
    g.output(g.node("ShaderNodeMixShader", {0: fac, 1: clear, 2: glossy}))
    return m


def eye_blend_material(name: str, pass_index: int):
    """Eye corners' blend meshes: a faint pink, mostly transparent veil between skin and eyeball."""
    m, g = _new(name, pass_index)
    pink = _principled(g, (0.55, 0.28, 0.25, 1.0), 0.3)
    clear = g.node("ShaderNodeBsdfTransparent")
    g.output(g.node("ShaderNodeMixShader", {0: 0.25, 1: clear, 2: pink}))
    return m


def eye_occlusion_material(name: str, pass_index: int):
    """A soft dark transparent shadow where the lids meet the eyeball (darker under the upper lid)."""
    m, g = _new(name, pass_index)
    strength = g.value("occlusion", 0.25)
    uv = g.node("ShaderNodeUVMap").outputs["UV"]
    sep = g.node("ShaderNodeSeparateXYZ", {0: uv})
    u_fade = g.math("SINE", g.math("MULTIPLY", sep.outputs[0], 3.14159))
    # Mostly transparent: a soft shadow hugging the lid line (high v), fading fast away from it.
    v_edge = g.math("POWER", sep.outputs[1], 4.0)
    fac = g.math("MULTIPLY", g.math("MULTIPLY", strength, 0.6),
                 g.math("MULTIPLY", g.math("ADD", 0.05, g.math("MULTIPLY", v_edge, 0.95)), g.math("POWER", u_fade, 0.7)), clamp=True)
    dark = g.node("ShaderNodeBsdfDiffuse", {"Color": (0.02, 0.008, 0.006, 1.0)})
    clear = g.node("ShaderNodeBsdfTransparent")
    g.output(g.node("ShaderNodeMixShader", {0: fac, 1: clear, 2: dark}))
    return m


def eyelash_material(name: str, pass_index: int):
    """Eyelash strips: thin dark strands, mostly transparent. Across the strip (u) a hash per strand
    slot picks which slots hold a hair and how thick it is; along the strip (v) the hair tapers."""
    m, g = _new(name, pass_index)
    color = g.rgb("lash_color", (0.02, 0.015, 0.012))
    uv = g.node("ShaderNodeUVMap").outputs["UV"]
    sep = g.node("ShaderNodeSeparateXYZ", {0: uv})
    slots = g.math("MULTIPLY", sep.outputs[0], 260.0)
    cell = g.math("FLOOR", slots)
    frac = g.math("FRACT", slots)
    rnd = g.node("ShaderNodeTexWhiteNoise", {"Vector": g.node("ShaderNodeCombineXYZ", {0: cell}).outputs[0]},
                 noise_dimensions="3D").outputs["Value"]
    centre = g.math("ABSOLUTE", g.math("SUBTRACT", frac, 0.5))
    thick = g.math("ADD", 0.08, g.math("MULTIPLY", rnd, 0.12))
    strand = g.smooth(centre, thick, g.math("MULTIPLY", thick, 0.4), 0.0, 1.0)
    present = g.smooth(rnd, 0.35, 0.4)  # about 60% of the slots hold a hair
    taper = g.math("POWER", g.math("SINE", g.math("MULTIPLY", sep.outputs[1], 3.14159)), 0.6)
    alpha = g.math("MULTIPLY", g.math("MULTIPLY", strand, present), g.math("MULTIPLY", taper, 0.85), clamp=True)
    hair = _principled(g, color, 0.45, **{"Coat Weight": 0.2})
    clear = g.node("ShaderNodeBsdfTransparent")
    g.output(g.node("ShaderNodeMixShader", {0: alpha, 1: clear, 2: hair}))
    return m


def simple_material(name: str, pass_index: int, color, roughness: float, sss: float = 0.0, coat: float = 0.0):
    """Teeth, gums/tongue, mouth and eye sockets: one Principled BSDF each."""
    m, g = _new(name, pass_index)
    g.output(_principled(g, (*color, 1.0), roughness, **{"Subsurface Weight": sss, "Subsurface Radius": (1.0, 0.3, 0.2),
                                                          "Subsurface Scale": 0.002, "Coat Weight": coat}))
    return m


# -- what a sample wears: colours come per strand / per vertex from the geometry ---------------------

# The attribute generator/cycles.py writes on hair curves (per curve) and garments (per vertex): the
# same linear RGB the raster backend draws (hair.strand_colours, clothing's baked pattern).
COLOUR_ATTRIBUTE = "colour"


def hair_material(name: str, pass_index: int):
    """Scalp hair, beards and brows: the Principled Hair BSDF (Chiang) in its direct-colouring mode,
    fed each strand's colour. That colour was made from melanin with the inverse of the mapping this
    mode applies (hair.strand_colours), so it renders as the melanin parametrisation would."""
    m, g = _new(name, pass_index)
    colour = g.node("ShaderNodeAttribute", attribute_type="GEOMETRY", attribute_name=COLOUR_ATTRIBUTE)
    bsdf = g.node("ShaderNodeBsdfHairPrincipled", {"Color": colour.outputs["Color"], "Roughness": 0.3,
                                                   "Radial Roughness": 0.3, "Coat": 0.0},
                  parametrization="COLOR")
    g.output(bsdf)
    return m


def fabric_material(name: str, pass_index: int):
    """Garments: a rough, slightly sheeny diffuse surface with the pattern baked per vertex."""
    m, g = _new(name, pass_index)
    colour = g.node("ShaderNodeAttribute", attribute_type="GEOMETRY", attribute_name=COLOUR_ATTRIBUTE)
    g.output(_principled(g, colour.outputs["Color"], 0.85, **{"Sheen Weight": 0.4, "Sheen Roughness": 0.4}))
    return m


def frame_material(name: str, pass_index: int):
    """Glasses frames: glossy plastic (a clear coat) or metal (p_metal = 1), coloured per vertex."""
    m, g = _new(name, pass_index)
    colour = g.node("ShaderNodeAttribute", attribute_type="GEOMETRY", attribute_name=COLOUR_ATTRIBUTE)
    metal = g.value("metal", 0.0)
    g.output(_principled(g, colour.outputs["Color"], g.math("SUBTRACT", 0.3, g.math("MULTIPLY", metal, 0.12)),
                         **{"Metallic": metal, "Coat Weight": g.math("SUBTRACT", 0.6, g.math("MULTIPLY", metal, 0.6))}))
    return m


LENS_IOR = 1.5  # crown glass and CR-39 plastic are both ~1.5


def lens_material(name: str, pass_index: int):
    """Glasses lenses, closed thin plano solids (generator/eyewear.py), that refract and reflect.

    A ray reaching a lens from outside (front or back surface) is reflected by Fresnel (IOR 1.5,
    a sharp Glossy BSDF); the rest is mixed by p_opacity (the share of light the lens stops) between
    a dark glossy coat and a Ray Portal BSDF tinted by the lens colour (per vertex) that carries the
    ray on from the hit point in the direction Snell's law gives (Vector Math Refract of the incoming
    ray about the shading normal, eta 1 / 1.5). Inside the lens the ray meets the other surface from
    behind (Backfacing) and leaves it through a plain Ray Portal with eta 1.5: out parallel to where
    it came in, shifted sideways by d sin(i) (1 - cos(i) / sqrt(n^2 - sin^2(i))), under 0.06 cm for
    the 0.2 cm lens at up to 40 degrees incidence (0.4-0.6 px at 256 px), so the eyes behind are
    drawn within a fraction of a pixel of their labels. Tint, coat and reflection act once per pass
    through the lens (the inside surface neither reflects nor absorbs).

    Why a Ray Portal and not a Refraction or Glass BSDF: Cycles writes the depth and material-index
    passes on the first sample's camera path, at every surface along it while that path has only
    gone straight on through transparent closures; a Transparent or a Ray Portal closure keeps it
    going (both count as transparency), any other closure the path picks ends it on the lens, which
    then labels the pixel. A Refraction BSDF picked at either surface does that, and blocks shadow
    rays (the eyes behind would be lit only through caustics): with 40% of the transmitted light
    through one, 65% of a clear lens's pixels were labelled lens (4% before). The portal refracts all
    of the transmitted light and leaves the labels as they were.

    The pass alpha Cycles compares with the view layer's pass_alpha_threshold (eyewear.OPAQUE =
    0.5) is 1 - transparency, the transparency here the portal's weight (1 - F) (1 - opacity) x
    mean(tint), F = 0.04 at normal incidence (0.05 at 45 degrees). A clear lens (opacity <= 0.04,
    tint ~1) is ~0.9 transparent, alpha ~0.1 < 0.5: the data passes skip it and see the eye behind.
    A tinted one (opacity 0.15-0.4, tint >= 0.88) is at least 0.96 x 0.6 x 0.88 = 0.51 transparent,
    alpha <= 0.49: skipped too (the darkest of them reach alpha 0.5 seen at more than ~45 degrees,
    where F > 0.053). Sunglasses (opacity >= 0.75, tint <= 0.54) are at most 0.96 x 0.25 x 0.54 =
    0.13 transparent, alpha >= 0.87: the lens is in the data passes and hides the eyes. The inside
    surface is a pure portal (alpha 0) and never stops the data passes. (Cycles' own cut, where
    (1 - F) (1 - opacity) x tint = 0.5, is at opacity 0.48 for an untinted lens at normal incidence,
    a little below OPAQUE; the sampler's opacities stay clear of it.) As with a single surface, the
    first sample's path leaves through the coat or the mirror now and then (~5% of a clear lens's
    pixels are labelled lens, ~15% of a 0.4 tinted one's; the labels' depth test looks at 16 pixels
    and is not swayed by them); Russian roulette would also end it on the inside surface (a further
    20% of a tinted lens's pixels), which generator/cycles.py prevents (MIN_TRANSPARENT_BOUNCES)."""
    m, g = _new(name, pass_index)
    colour = g.node("ShaderNodeAttribute", attribute_type="GEOMETRY", attribute_name=COLOUR_ATTRIBUTE)
    opacity = g.value("opacity", 0.02)
    geometry = g.node("ShaderNodeNewGeometry")
    inside = geometry.outputs["Backfacing"]  # the ray is in the lens (the solid is wound outwards)
    incident = g.node("ShaderNodeVectorMath", {0: geometry.outputs["Incoming"], "Scale": -1.0}, operation="SCALE")
    eta = g.node("ShaderNodeMath", {0: inside, 1: LENS_IOR - 1 / LENS_IOR, 2: 1 / LENS_IOR},
                 operation="MULTIPLY_ADD").outputs[0]  # 1 / 1.5 going in, 1.5 going out
    # Cycles turns the shading normal towards the ray on a back face; total internal reflection (only
    # possible at the edge band) gives a zero vector, which the portal reads as straight on.
    refracted = g.node("ShaderNodeVectorMath", {0: incident.outputs[0], 1: geometry.outputs["Normal"], "Scale": eta},
                       operation="REFRACT").outputs[0]
    through = g.node("ShaderNodeBsdfRayPortal", {"Color": colour.outputs["Color"], "Direction": refracted})
    coat = _principled(g, g.mul_rgb(colour.outputs["Color"], (0.08, 0.08, 0.08, 1.0)), 0.05)
    body = g.node("ShaderNodeMixShader", {0: opacity, 1: through, 2: coat})
    fresnel = g.node("ShaderNodeFresnel", {"IOR": LENS_IOR})
    mirror = g.node("ShaderNodeBsdfGlossy", {"Color": (1.0, 1.0, 1.0, 1.0), "Roughness": 0.02})
    entering = g.node("ShaderNodeMixShader", {0: fresnel.outputs[0], 1: body, 2: mirror})
    leaving = g.node("ShaderNodeBsdfRayPortal", {"Direction": refracted})
    g.output(g.node("ShaderNodeMixShader", {0: inside, 1: entering, 2: leaving}))
    return m


def hand_material(name: str, pass_index: int, sss_method: str):
    """Hands and forearms: skin of the colour baked per vertex (near the face's skin albedo, with
    the knuckles and nails drawn in), with the face skin's subsurface scattering."""
    m, g = _new(name, pass_index)
    colour = g.node("ShaderNodeAttribute", attribute_type="GEOMETRY", attribute_name=COLOUR_ATTRIBUTE)
    bsdf = _principled(g, colour.outputs["Color"], 0.5, **{"Subsurface Weight": 1.0,
                                                           "Subsurface Radius": (1.0, 0.35, 0.2),
                                                           "Subsurface Scale": 0.004})
    bsdf.subsurface_method = sss_method
    g.output(bsdf)
    return m


def object_material(name: str, pass_index: int):
    """What a hand holds (phone, cup, microphone): glossy plastic, glass or painted metal, the colour
    per vertex (a phone's screen is near black)."""
    m, g = _new(name, pass_index)
    colour = g.node("ShaderNodeAttribute", attribute_type="GEOMETRY", attribute_name=COLOUR_ATTRIBUTE)
    g.output(_principled(g, colour.outputs["Color"], 0.25, **{"Coat Weight": 0.4}))
    return m
