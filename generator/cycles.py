"""The photoreal backend: Blender Cycles in process (bpy), one scene per process, updated per sample.

`CyclesRenderer(model, outputs=("rgb", "depth", "segmentation"), preset="default", ...)` builds the
scene once: two mesh objects (opaque head; transparent overlays: tear film, eye blend, eye occlusion,
eyelashes), one material per material name of the parts, a light pool, a world that only lights (HDRI
or ambient), a compositor that feeds the readback; the backplate (generator/backgrounds.py, the raster
backend's too) is composited in numpy under a transparent film. `render(params, posed)` then only
writes vertex positions, material inputs, lights, world and camera, renders, and reads the pixels back
in memory (RGB through the compositor's Viewer node; depth / material index / brow and lip AOVs
through one float EXR in a RAM-backed temp dir, and only when depth or segmentation is asked for).
With "amodal" in the outputs a second view layer renders the head without what the sample wears
(`_build_amodal_layer`).

What is drawn, with which material and segmentation class, comes from generator/parts.py; the
classes are generator/segmentation.py's (docs/segmentation.md).
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import sys
import tempfile
from pathlib import Path

import numpy as np

import bpy
from mathutils import Matrix

from facegen.errors import FacegenError
from facegen.face_model import FaceModel
from facegen.generator import blender_util as bu
from facegen.generator import materials as mt
from facegen.generator.backgrounds import (
    backplate, find_hdri, hdri_exposure, load_hdri, preload_hdris, srgb_decode, srgb_encode,
)
from facegen.generator.eyewear import OPAQUE
from facegen.generator.parts import (
    DRESSING_MATERIALS, STRAND_SETS, SURFACE_SETS, Dressing, drawn_triangles, dressing, head_parts,
)
from facegen.generator.scene import MAX_LIGHTS, RENDERERS, PosedScene, RenderResult, SceneParams
from facegen.generator.segmentation import CLASS_ID, PAINTED_THRESHOLD, face_mask

log = logging.getLogger("facegen.cycles")


PRESETS = {
    # samples, adaptive threshold, (max, diffuse, glossy, transmission, transparent) bounces, SSS method,
    # OIDN quality, world importance-map resolution. Measured s/image: docs/rendering-cycles.md.
    # Path tracing is ~0.25 s per sample per 256^2 image on 2 cores, so the default buys its speed with
    # few samples + OIDN (albedo/normal guided) and short paths (one diffuse bounce is enough for skin).
    # Transparent bounces: the eyes' overlays (tear film, eye blend and occlusion, lashes, the cornea)
    # take most of them, and a ray through glasses crosses two lens surfaces more (generator/materials.py
    # lens_material): fast and default have two more than before the lenses refracted.
    "fast": dict(samples=2, threshold=0.1, bounces=(2, 1, 1, 2, 8), sss="BURLEY", oidn="FAST", world_map=64),
    "default": dict(samples=4, threshold=0.05, bounces=(3, 1, 1, 3, 10), sss="BURLEY", oidn="BALANCED", world_map=128),
    "high": dict(samples=64, threshold=0.01, bounces=(8, 4, 4, 8, 16), sss="RANDOM_WALK_SKIN", oidn="HIGH", world_map=512),
}

# No Russian roulette on a path's first transparent bounces: it would end the first sample's camera
# path on the inside of a clear lens (generator/materials.py lens_material), which the data passes
# would then label lens.
MIN_TRANSPARENT_BOUNCES = 2

KEY_IRRADIANCE = 1.0  # W/m^2 for a light of intensity 1.0 ("a normal key light")
LIGHT_DISTANCE = 1.5  # metres from the head


class CyclesRenderer:
    name = "cycles"
    version = RENDERERS["cycles"].version  # bumped there when output pixels change
    supports_batch = False  # one bpy scene, one render at a time; Cycles already uses every CPU
    supports_async = False

    def __init__(self, model: FaceModel, outputs=("rgb",), backgrounds: Path | None = None,
                 hdris: Path | None = None, device: str = "auto", preset: str = "default",
                 threads: int = 0, samples: int | None = None, denoise: bool = True, **_ignored):
        if preset not in PRESETS:
            raise FacegenError(f"unknown cycles preset {preset!r}; choose one of: {', '.join(PRESETS)}")
        self.model = model
        self.outputs = tuple(outputs)
        self.backgrounds = Path(backgrounds) if backgrounds else None
        self.hdris = Path(hdris) if hdris else None
        self.preset = dict(PRESETS[preset])
        if samples:
            self.preset["samples"] = int(samples)
        self._tmp = Path(tempfile.mkdtemp(prefix="facegen-cycles-", dir="/dev/shm" if os.path.isdir("/dev/shm") else None))
        self._images: dict[str, bpy.types.Image] = {}  # HDRIs for the world, kept few (see _hdri_image)
        self._lights: list[bpy.types.Object] = []
        self._current_vertices: np.ndarray | None = None
        self._vertex_ids: dict[str, np.ndarray] = {}  # per object: its vertices' rows of the posed mesh
        self.parts = head_parts(model)
        self.classes = material_classes(self.parts)
        self.pass_index = material_passes(self.classes)
        self._build(device, threads, denoise)
        preload_hdris(self.hdris)  # backplates of kind hdri and the world's exposure

    # -- scene construction (once) ---------------------------------------------------------------

    def _build(self, device: str, threads: int, denoise: bool) -> None:
        bpy.ops.wm.read_factory_settings(use_empty=True)
        scene = self.scene = bpy.context.scene
        scene.render.engine = "CYCLES"
        self.device = bu.setup_device(scene, device)
        c = scene.cycles
        p = self.preset
        c.samples = p["samples"]
        c.use_adaptive_sampling = True
        c.adaptive_threshold = p["threshold"]
        c.max_bounces, c.diffuse_bounces, c.glossy_bounces, c.transmission_bounces, c.transparent_max_bounces = p["bounces"]
        c.volume_bounces = 0
        c.min_transparent_bounces = MIN_TRANSPARENT_BOUNCES
        c.caustics_reflective = c.caustics_refractive = False
        c.use_denoising = denoise
        c.denoiser = "OPENIMAGEDENOISE"
        c.denoising_input_passes = "RGB_ALBEDO_NORMAL"
        c.denoising_prefilter = "FAST"
        c.denoising_quality = p["oidn"]
        c.use_auto_tile = False
        c.debug_use_spatial_splits = False
        # Keep Cycles' synced scene (meshes, BVH, shaders, images) between renders: each render then
        # only re-syncs what changed (vertex positions, a few node values) instead of everything.
        scene.render.use_persistent_data = True
        if threads:
            scene.render.threads_mode = "FIXED"
            scene.render.threads = int(threads)
        # The backplate is not part of the Cycles scene: the film is transparent and the background
        # is alpha-composited in numpy (generator/backgrounds.py, `backplate`). Background edits then
        # never touch the world (a world edit re-syncs the world and rebuilds its importance map) and
        # the world shader stays a plain environment lookup, cheap to evaluate for every escaped ray.
        scene.render.film_transparent = True
        scene.view_settings.view_transform = "Standard"
        scene.view_settings.look = "None"
        scene.render.image_settings.file_format = "PNG"

        self.materials = self._build_materials()
        # Opaque parts in one object, see-through ones (films, lashes) in another: ray-cast
        # visibility (tests) uses the opaque object only, as the depth pass ignores the others.
        self.head = self._build_object("facegen_head", drawn_triangles(self.parts, see_through=False))
        self.overlay = self._build_object("facegen_overlay", drawn_triangles(self.parts, see_through=True))
        self._build_dressing()

        cam_data = bpy.data.cameras.new("facegen_camera")
        self.camera = bpy.data.objects.new("facegen_camera", cam_data)
        scene.collection.objects.link(self.camera)
        scene.camera = self.camera

        self._build_lights()
        self._build_world()
        self._build_compositor()
        if "amodal" in self.outputs:
            self._build_amodal_layer()

    def _build_materials(self) -> dict[str, bpy.types.Material]:
        """One Blender material per material name of the parts, its pass index from material_passes."""
        sss = self.preset["sss"]
        feats = mt.feature_image(self.model)
        idx = self.pass_index
        materials = {
            "face": mt.skin_material("face", idx["face"], feats, sss),
            "head_neck": mt.skin_material("head_neck", idx["head_neck"], None, sss),
            "mouth": mt.simple_material("mouth", idx["mouth"], (0.06, 0.02, 0.02), 0.6),
            "eye_socket": mt.simple_material("eye_socket", idx["eye_socket"], (0.45, 0.16, 0.14), 0.3, sss=0.3),
            "gums_tongue": mt.simple_material("gums_tongue", idx["gums_tongue"], (0.5, 0.14, 0.14), 0.3, sss=0.5),
            "teeth": mt.simple_material("teeth", idx["teeth"], (0.8, 0.74, 0.6), 0.25, sss=0.2, coat=0.5),
            "sclera": mt.sclera_material("sclera", idx["sclera"]),
            "iris": mt.iris_material("iris", idx["iris"]),
            "lacrimal": mt.lacrimal_material("lacrimal", idx["lacrimal"]),
            "eye_blend": mt.eye_blend_material("eye_blend", idx["eye_blend"]),
            "eye_occlusion": mt.eye_occlusion_material("eye_occlusion", idx["eye_occlusion"]),
            "eyelashes": mt.eyelash_material("eyelashes", idx["eyelashes"]),
            **{name: mt.hair_material(name, idx[name]) for name in STRAND_SETS},
            "clothing": mt.fabric_material("clothing", idx["clothing"]),
            "eyewear_frame": mt.frame_material("eyewear_frame", idx["eyewear_frame"]),
            "lens": mt.lens_material("lens", idx["lens"]),
            "facewear": mt.fabric_material("facewear", idx["facewear"]),
            "headwear": mt.fabric_material("headwear", idx["headwear"]),
            "hand": mt.hand_material("hand", idx["hand"], sss),
            "object": mt.object_material("object", idx["object"]),
        }
        return {name: materials[name] for name in idx}  # material slots in pass-index order

    def _build_object(self, name: str, triangle_ids: np.ndarray) -> bpy.types.Object:
        """A mesh object of these rows of the model's triangles, each with its part's material."""
        m = self.model
        tris = m.triangles[triangle_ids]
        verts = np.unique(tris)
        remap = np.full(m.num_vertices, -1, np.int64)
        remap[verts] = np.arange(len(verts))
        mesh = bpy.data.meshes.new(name)
        mesh.from_pydata(bu.to_blender(m.neutral[verts]).tolist(), [], remap[tris].tolist())
        uv = mesh.uv_layers.new(name="UVMap")
        uv.data.foreach_set("uv", m.uvs[m.triangle_uvs[triangle_ids]].astype(np.float32).ravel())
        # Material slots in pass-index order; each triangle gets its part's slot.
        for material in self.materials.values():
            mesh.materials.append(material)
        slot = np.zeros(len(m.triangles), np.int32)
        for part in self.parts:
            slot[part.triangle_ids] = self.pass_index[part.material] - 1
        mesh.polygons.foreach_set("material_index", slot[triangle_ids])
        mesh.shade_smooth()
        # Rest-pose positions (cm) drive the procedural skin textures: seamless and pose independent.
        rest = mesh.attributes.new("rest", "FLOAT_VECTOR", "POINT")
        rest.data.foreach_set("vector", m.neutral[verts].astype(np.float32).ravel())
        obj = bpy.data.objects.new(name, mesh)
        self.scene.collection.objects.link(obj)
        self._vertex_ids[name] = verts
        return obj

    def _build_dressing(self) -> None:
        """What samples wear: one hair-curves object per strand set and one mesh for the garment,
        built once and given new geometry every sample (emptied when a sample has none: hiding an
        object would reorder Cycles' scene, see _build_lights). Curves are flat ribbons facing the
        camera, as the raster backend draws the same strands."""
        self.scene.cycles_curves.shape = "RIBBONS"
        def linked(name: str, data) -> bpy.types.Object:  # an object of its own material, in the scene
            data.materials.append(self.materials[name])
            obj = bpy.data.objects.new(f"facegen_{name}", data)
            self.scene.collection.objects.link(obj)
            return obj

        self.strand_objects = {name: linked(name, bpy.data.hair_curves.new(f"facegen_{name}")) for name in STRAND_SETS}
        self.surface_objects = {name: linked(name, bpy.data.meshes.new(f"facegen_{name}")) for name in SURFACE_SETS}
        # Data passes skip surfaces less opaque than this: see-through lenses hide no label.
        self.scene.view_layers[0].pass_alpha_threshold = OPAQUE

    def _set_dressing(self, params: SceneParams, worn: Dressing) -> None:
        strands = {s.material: s.geometry for s in worn.strands}
        for name, obj in self.strand_objects.items():
            set_curves(obj.data, strands.get(name))
        surfaces = {s.material: s for s in worn.surfaces}
        for name, obj in self.surface_objects.items():
            set_mesh(obj.data, surfaces[name].geometry if name in surfaces else None)
        mt.set_param(self.materials["lens"], "opacity", params.eyewear.lens_opacity)
        mt.set_param(self.materials["eyewear_frame"], "metal", float(params.eyewear.metal))

    def _build_lights(self) -> None:
        """The light pool, made now and never hidden (unused lights get no energy): a light added to or
        shown in the synced scene later goes to the end of Cycles' light list, which changes the noise
        of every image after it, so a sample's pixels would depend on what its process rendered before."""
        for i in range(MAX_LIGHTS):
            data = bpy.data.lights.new(f"facegen_light{i}", "SUN")
            data.energy = 0.0
            obj = bpy.data.objects.new(data.name, data)
            self.scene.collection.objects.link(obj)
            self._lights.append(obj)

    def _build_world(self) -> None:
        """The world only lights the scene: an HDRI (rotated about the vertical axis) or a uniform colour."""
        world = bpy.data.worlds.new("facegen_world")
        self.scene.world = world
        world.use_nodes = True
        # The importance map is rebuilt whenever the world changes (every sample here); at Blender's
        # default 1024 that costs ~1.3 s per image on 2 cores, at 64-512 it is a few ms to 0.1 s.
        world.cycles.sampling_method = "MANUAL"
        world.cycles.sample_map_resolution = self.preset["world_map"]
        g = mt.Graph(world.node_tree)
        self.world_graph = g
        coord = g.node("ShaderNodeTexCoord")
        mapping = g.node("ShaderNodeMapping", {"Vector": coord.outputs["Generated"]}, name="hdri_mapping")
        env = g.node("ShaderNodeTexEnvironment", {"Vector": mapping.outputs[0]}, name="hdri")
        use_hdri = g.value("use_hdri", 0.0)
        env_col = g.mix(g.rgb("ambient_color", (0.3, 0.3, 0.3)), env.outputs["Color"], use_hdri)
        env_bg = g.node("ShaderNodeBackground", {"Color": env_col, "Strength": g.value("world_strength", 1.0)})
        g.set(g.node("ShaderNodeOutputWorld").inputs["Surface"], env_bg)

    def _build_compositor(self) -> None:
        scene = self.scene
        vl = scene.view_layers[0]
        vl.use_pass_z = True
        vl.use_pass_material_index = True
        for name in ("brow", "lip"):
            aov = vl.aovs.add()
            aov.name, aov.type = name, "VALUE"
        scene.use_nodes = True
        tree = scene.node_tree
        tree.nodes.clear()
        rl = tree.nodes.new("CompositorNodeRLayers")
        comp = tree.nodes.new("CompositorNodeComposite")
        tree.links.new(rl.outputs["Image"], comp.inputs["Image"])
        # Data passes packed in one RGB float EXR: z-depth (m), material index, brow + 2 * lip
        # (brows and lips never overlap, so one channel carries both).
        pack = tree.nodes.new("CompositorNodeCombineColor")
        pack.mode = "RGB"
        tree.links.new(rl.outputs["Depth"], pack.inputs[0])
        tree.links.new(rl.outputs["IndexMA"], pack.inputs[1])
        lip2 = tree.nodes.new("CompositorNodeMath")
        lip2.operation = "MULTIPLY_ADD"
        tree.links.new(rl.outputs["lip"], lip2.inputs[0])
        lip2.inputs[1].default_value = 2.0
        tree.links.new(rl.outputs["brow"], lip2.inputs[2])
        tree.links.new(lip2.outputs[0], pack.inputs[2])
        fo = tree.nodes.new("CompositorNodeOutputFile")
        fo.base_path = str(self._tmp)
        fo.format.file_format = "OPEN_EXR"
        fo.format.color_depth = "32"
        fo.format.color_mode = "RGBA"  # alpha: coverage for compositing the backplate
        fo.format.exr_codec = "NONE"
        fo.file_slots[0].path = "rgb"
        fo.file_slots.new("data")
        tree.links.new(rl.outputs["Image"], fo.inputs[0])
        tree.links.new(pack.outputs[0], fo.inputs[1])
        self._readback: dict[str, bpy.types.Image] = {}

    def _build_amodal_layer(self) -> None:
        """A second view layer for `RenderResult.amodal`: the same scene with everything the samples
        wear excluded (every strand and surface object, moved into a collection of their own), one
        sample, no denoising; its material-index pass goes to the EXR's `amodal` slot. Cycles renders
        it after the main layer in the same render call, and the material-index pass takes the first
        camera sample of a pixel (as the z pass), the one the main layer's takes too. Without
        amodal in the outputs none of this is made (the objects and passes of the default path)."""
        scene = self.scene
        dressing_objects = [*self.strand_objects.values(), *self.surface_objects.values()]
        worn = bpy.data.collections.new("facegen_dressing")
        scene.collection.children.link(worn)
        for obj in dressing_objects:
            scene.collection.objects.unlink(obj)
            worn.objects.link(obj)
        main = scene.view_layers[0]
        layer = self.amodal_layer = scene.view_layers.new("facegen_amodal")
        layer.layer_collection.children[worn.name].exclude = True
        layer.samples = 1
        layer.cycles.use_denoising = False
        layer.use_pass_z = False
        layer.use_pass_material_index = True
        layer.pass_alpha_threshold = main.pass_alpha_threshold  # see-through films and lenses as in the main layer
        tree = scene.node_tree
        rl = tree.nodes.new("CompositorNodeRLayers")
        rl.layer = layer.name
        fo = next(n for n in tree.nodes if n.bl_idname == "CompositorNodeOutputFile")
        fo.file_slots.new("amodal")
        tree.links.new(rl.outputs["IndexMA"], fo.inputs["amodal"])

    # -- per-sample updates ------------------------------------------------------------------------

    def _set_vertices(self, vertices: np.ndarray) -> None:
        if self._current_vertices is not None and np.array_equal(self._current_vertices, vertices):
            return
        for obj in (self.head, self.overlay):
            ids = self._vertex_ids[obj.name]
            mesh = obj.data
            mesh.vertices.foreach_set("co", bu.to_blender(vertices[ids]).astype(np.float32).ravel())
            mesh.update()
        self._current_vertices = np.array(vertices, copy=True)
        bpy.context.view_layer.update()

    def _set_appearance(self, params: SceneParams) -> None:
        a = params.appearance
        x = a.extra or {}
        seed = float((params.seed * 7919 + params.index) % 1000)
        for key in ("face", "head_neck"):
            mat = self.materials[key]
            mt.set_param(mat, "skin_albedo", a.skin_albedo)
            mt.set_param(mat, "roughness", a.skin_roughness)
            mt.set_param(mat, "redness", a.redness)
            mt.set_param(mat, "freckles", a.freckles)
            mt.set_param(mat, "lip_tint", a.lip_tint)
            mt.set_param(mat, "brow_color", a.brow_color)
            mt.set_param(mat, "brow_density", a.brow_density)
            mt.set_param(mat, "brow_thickness", a.brow_thickness)
            mt.set_param(mat, "seed", seed)
        mt.set_param(self.materials["iris"], "iris_color", a.iris_color)
        mt.set_param(self.materials["iris"], "pupil", x.get("pupil", 0.14))
        mt.set_param(self.materials["iris"], "seed", seed)
        mt.set_param(self.materials["sclera"], "sclera_redness", x.get("sclera_redness", 0.2))
        mt.set_param(self.materials["eye_occlusion"], "occlusion", x.get("eye_occlusion", 0.25))
        lash = x.get("lash_color", tuple(0.4 * c for c in a.brow_color))
        mt.set_param(self.materials["eyelashes"], "lash_color", lash)

    def _hdri_image(self, name: str) -> bpy.types.Image:
        """HDRI `name` as a Blender image for the world (generator/backgrounds.py finds the file),
        keeping at most a few resident (memory stays flat over long runs)."""
        path = find_hdri(name, self.hdris)
        key = str(path)
        if key not in self._images:
            while len(self._images) >= 10:
                bpy.data.images.remove(self._images.pop(next(iter(self._images))))
            img = self._images[key] = bpy.data.images.load(key)
            img.colorspace_settings.name = "Linear Rec.709"
        return self._images[key]

    def _set_world(self, params: SceneParams) -> None:
        L = params.lighting
        nodes = self.scene.world.node_tree.nodes

        def val(name, v):
            # Touch only what changed: a world edit re-syncs the world and rebuilds its importance map.
            v = v if not isinstance(v, tuple) else (*v[:3], 1.0)
            sock = nodes["p_" + name].outputs[0]
            if not np.allclose(np.atleast_1d(sock.default_value), np.atleast_1d(v), rtol=0, atol=1e-7):
                sock.default_value = v

        if L.hdri:
            img = self._hdri_image(L.hdri)
            if nodes["hdri"].image != img:
                nodes["hdri"].image = img
            # Model +z (towards the camera) is Blender -y; rotate the panorama about Blender's z.
            rot = nodes["hdri_mapping"].inputs["Rotation"]
            if abs(rot.default_value[2] - np.radians(L.hdri_rotation)) > 1e-7:
                rot.default_value = (0.0, 0.0, np.radians(L.hdri_rotation))
            val("use_hdri", 1.0)
            # The exposure the backplate shows the same panorama at (backgrounds.hdri_exposure).
            val("world_strength", hdri_exposure(L, load_hdri(find_hdri(L.hdri, self.hdris)).mean))
        else:
            val("use_hdri", 0.0)
            val("world_strength", 1.0)
            val("ambient_color", (L.ambient,) * 3)

    def _set_lights(self, params: SceneParams, posed: PosedScene) -> None:
        lights = params.lighting.lights
        if len(lights) > MAX_LIGHTS:
            raise FacegenError(f"sample {params.index} has {len(lights)} lights; at most {MAX_LIGHTS} are supported")
        centre = np.asarray(posed.head_t, np.float64)
        for i, obj in enumerate(self._lights):
            if i >= len(lights):  # dark, not hidden: un-hiding a light reorders Cycles' light list (see _build_lights)
                obj.data.energy = 0.0
                continue
            li = lights[i]
            d = bu.direction(li.azimuth, li.elevation)
            kind = {"directional": "SUN", "point": "POINT", "area": "AREA"}.get(li.kind)
            if kind is None:
                raise FacegenError(f"unknown light kind {li.kind!r}; use directional, point or area")
            obj.data.type = kind
            data = obj.data  # the type change swaps the RNA subclass
            data.color = tuple(li.color[:3])
            size = max(li.size, 0.0) * bu.CM
            irr = KEY_IRRADIANCE * li.intensity
            d2 = LIGHT_DISTANCE**2
            if kind == "SUN":
                data.energy = irr
                data.angle = np.radians(max(li.size, 0.0) * 0.5)  # size read as the sun's apparent size, degrees
            elif kind == "POINT":
                data.energy = irr * 4 * np.pi**2 * d2  # Cycles: E = P / (4 pi^2 d^2)
                data.shadow_soft_size = size
            else:
                data.energy = irr * np.pi**2 * d2  # small area light facing the head: E ~ P / (pi^2 d^2)
                data.shape = "SQUARE"
                data.size = max(size, 0.05)
            pos = bu.to_blender((centre + d * LIGHT_DISTANCE / bu.CM)[None])[0]
            m = np.eye(4)
            m[:3, :3] = bu.look_rotation(bu.MODEL_TO_BLENDER @ -d)
            m[:3, 3] = pos
            obj.matrix_world = Matrix(m.tolist())

    def update(self, params: SceneParams, posed: PosedScene) -> None:
        """Bring the resident scene to one sample (geometry, materials, lights, world, camera)."""
        self._set_vertices(posed.vertices)
        self._set_dressing(params, dressing(params, posed, self.model))
        self._set_appearance(params)
        self._set_lights(params, posed)
        self._set_world(params)
        bu.set_camera(self.camera, self.scene, posed.camera)
        self.scene.cycles.seed = int((params.seed * 1000003 + params.index) % (2**31 - 1))

    # -- rendering and readback -------------------------------------------------------------------

    def _render(self) -> None:
        for f in self._tmp.glob("*.exr"):
            f.unlink()
        with _blender_stdout_silenced():
            bpy.ops.render.render(write_still=False)

    def _read(self, slot: str, h: int, w: int) -> np.ndarray:
        """(H, W, 4) float pixels of one compositor output written to the RAM temp dir this render.

        One bpy image per slot, reloaded in place, so no datablocks accumulate over a long run."""
        path = self._tmp / f"{slot}{self.scene.frame_current:04d}.exr"
        if not path.exists():
            raise FacegenError(f"cycles: the compositor did not write {path}")
        img = self._readback.get(slot)
        if img is None:
            img = self._readback[slot] = bpy.data.images.load(str(path))
            img.colorspace_settings.name = "Non-Color"  # raw floats: no colour transform on read
            img.alpha_mode = "CHANNEL_PACKED"
        else:
            img.reload()
        px = bu.image_pixels(img).copy()
        if px.shape[:2] != (h, w):
            raise FacegenError(f"cycles: {slot} pass is {px.shape[1]}x{px.shape[0]}, expected {w}x{h}")
        return px

    def render(self, params: SceneParams, scene: PosedScene) -> RenderResult:
        self.update(params, scene)
        self._render()
        w, h = params.image_size
        rgba = self._read("rgb", h, w)
        # Premultiplied film over the backplate (generator/backgrounds.py, as the raster backend uses
        # it), in linear light: where the film is empty the image is the backplate's bytes.
        plate = srgb_decode(backplate(params, scene.camera, self.backgrounds, self.hdris))
        image = srgb_encode(rgba[..., :3] + (1.0 - rgba[..., 3:4]) * plate)
        data = self._read("data", h, w)
        z = data[..., 0]
        hit = z < 1e3
        depth = np.where(hit, z / bu.CM, 0.0).astype(np.float32)
        mat_index = np.where(hit, np.rint(data[..., 1]), 0).astype(np.int64)
        seg = segmentation_from_passes(mat_index, data[..., 2], self.pass_index, self.classes)
        mask = face_mask(seg)  # the face proper (every class but background and head/neck)
        amodal = None
        if "amodal" in self.outputs:  # the head's own classes (no painted brows or lips: all face)
            head_index = np.rint(self._read("amodal", h, w)[..., 0]).astype(np.int64)
            amodal = face_mask(segmentation_from_passes(head_index, np.zeros((h, w), np.float32),
                                                        self.pass_index, self.classes))
        return RenderResult(image=image, depth=depth, mask=mask, segmentation=seg, amodal=amodal)

    def object_count(self) -> int:
        """Number of objects/meshes/materials/images in the Blender file (tests: the scene is built once)."""
        d = bpy.data
        return len(d.objects) + len(d.meshes) + len(d.materials) + len(d.images) + len(d.lights) + len(d.node_groups)

    def close(self) -> None:
        shutil.rmtree(self._tmp, ignore_errors=True)
        bpy.ops.wm.read_factory_settings(use_empty=True)


def material_classes(parts) -> dict[str, str]:
    """Material name -> segmentation class: the head parts' materials in their order, then what
    samples wear (parts.DRESSING_MATERIALS). The material-index pass gives the class, so parts that
    share a material must share their class."""
    classes = {}
    for material, segment in [*((p.material, p.segment) for p in parts), *DRESSING_MATERIALS.items()]:
        if classes.setdefault(material, segment) != segment:
            raise FacegenError(f"parts with material {material!r} have classes {classes[material]!r} and "
                               f"{segment!r}: the material-index pass can tell only one")
    return classes


def material_passes(classes: dict[str, str]) -> dict[str, int]:
    """Material name -> its material-index pass value (1, 2, ... in order; 0 = nothing hit)."""
    return {name: k + 1 for k, name in enumerate(classes)}


def set_curves(curves, strands) -> None:
    """Replace a hair-curves datablock's strands (StrandGeometry in world cm, or None for none):
    points, radii and one colour per curve (materials.COLOUR_ATTRIBUTE)."""
    curves.remove_curves()
    if strands is None or not len(strands.points):
        return
    s, k = strands.points.shape[:2]
    curves.add_curves([k] * s)
    curves.position_data.foreach_set("vector", bu.to_blender(strands.points.reshape(-1, 3)).astype(np.float32).ravel())
    radius = curves.attributes.get("radius") or curves.attributes.new("radius", "FLOAT", "POINT")
    radius.data.foreach_set("value", (strands.radius.astype(np.float64) * bu.CM).astype(np.float32).ravel())
    colour = curves.attributes.get(mt.COLOUR_ATTRIBUTE) or curves.attributes.new(mt.COLOUR_ATTRIBUTE, "FLOAT_COLOR", "CURVE")
    rgba = np.ones((s, 4), np.float32)
    rgba[:, :3] = strands.colours
    colour.data.foreach_set("color", rgba.ravel())


def set_mesh(mesh, surface) -> None:
    """Replace a mesh datablock's geometry with a SurfaceGeometry (world cm; None: empty), its
    colours as a per-vertex attribute (materials.COLOUR_ATTRIBUTE)."""
    mesh.clear_geometry()
    if surface is None or not len(surface.triangles):
        return
    n, f = len(surface.vertices), len(surface.triangles)
    mesh.vertices.add(n)
    mesh.loops.add(3 * f)
    mesh.polygons.add(f)
    mesh.vertices.foreach_set("co", bu.to_blender(surface.vertices).astype(np.float32).ravel())
    mesh.loops.foreach_set("vertex_index", surface.triangles.astype(np.int32).ravel())
    mesh.polygons.foreach_set("loop_start", np.arange(0, 3 * f, 3, dtype=np.int32))
    mesh.update(calc_edges=True)
    mesh.shade_smooth()
    colour = mesh.color_attributes.new(mt.COLOUR_ATTRIBUTE, "FLOAT_COLOR", "POINT")
    rgba = np.ones((n, 4), np.float32)
    rgba[:, :3] = surface.colours
    colour.data.foreach_set("color", rgba.ravel())


def segmentation_from_passes(mat_index: np.ndarray, brow_lip: np.ndarray, pass_index: dict[str, int],
                             classes: dict[str, str]) -> np.ndarray:
    """Classes from the material-index pass (each material's part class), with brows and lips painted
    on the face taken from the packed AOV channel (brow + 2 * lip; each averaged over the pixel, so
    PAINTED_THRESHOLD is the boundary; brows and lips never overlap)."""
    lut = np.zeros(max(pass_index.values()) + 1, np.uint8)
    for material, segment in classes.items():
        lut[pass_index[material]] = CLASS_ID[segment]
    seg = lut[np.clip(mat_index, 0, len(lut) - 1)]
    face = mat_index == pass_index["face"]
    lip = brow_lip > 2 * PAINTED_THRESHOLD
    seg[face & lip] = CLASS_ID["lips"]
    seg[face & (brow_lip > PAINTED_THRESHOLD) & ~lip] = CLASS_ID["brows"]
    return seg


@contextlib.contextmanager
def _blender_stdout_silenced():
    """Blender prints a status line per render phase from C straight to file descriptor 1; over
    thousands of images that buries the progress bar. Point fd 1 at /dev/null while it renders
    (FACEGEN_BLENDER_LOG=1 keeps the log)."""
    if os.environ.get("FACEGEN_BLENDER_LOG"):
        yield
        return
    sys.stdout.flush()
    saved = os.dup(1)
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 1)
        yield
    finally:
        os.dup2(saved, 1)
        os.close(saved)
        os.close(devnull)
