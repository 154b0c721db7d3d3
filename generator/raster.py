"""The fast rasteriser: pyrender (OpenGL) offscreen, headless through EGL.

The pyrender scene is built once per process; per sample only the vertex buffers (positions,
normals, colours) are rewritten with glBufferSubData, and the camera, lights and materials updated.
The eye-blend, eye-occlusion and eyelash strips are not drawn: they are alpha-blended cards in
ICT-FaceKit, not surfaces, and drawn opaque they would hide the eyes.

Pixel convention: pyrender's IntrinsicsCamera puts a pixel's centre at +0.5 (OpenGL), so the
principal point is shifted by `gl_pixel_offset` and pixel centres follow OpenCV (docs/rendering.md).
"""

from __future__ import annotations

import ctypes
import math
import os

os.environ.setdefault("PYOPENGL_PLATFORM", "egl")  # headless; must precede any OpenGL import

from pathlib import Path  # noqa: E402

import cv2  # noqa: E402
import numpy as np  # noqa: E402
import scipy.sparse as sp  # noqa: E402
from matplotlib.path import Path as Polygon  # noqa: E402

from facegen.camera import Camera, gl_pixel_offset  # noqa: E402
from facegen.errors import FacegenError  # noqa: E402
from facegen.face_model import FaceModel  # noqa: E402
from facegen.generator.backgrounds import backplate, preload_hdris  # noqa: E402
from facegen.generator.eyewear import OPAQUE, front_surface  # noqa: E402
from facegen.generator.parts import Dressing, Part, StrandGeometry, dressing, head_parts  # noqa: E402
from facegen.generator.scene import MAX_LIGHTS, RENDERERS, PosedScene, RenderResult, SceneParams  # noqa: E402
from facegen.generator.segmentation import CLASS_ID, PAINTED_THRESHOLD, face_mask  # noqa: E402

# What is drawn comes from generator/parts.py (every part that is not see-through: tear film, eye
# blend, eye-occlusion shadow and lashes are alpha-blended cards in ICT-FaceKit, not surfaces; drawn
# opaque they would hide the eyes, and they must not occlude labels). Here only how each part's
# material is coloured: a colour rule of mesh.vert and a fixed linear RGB colour (for the rules that
# use one). The segmentation class is the part's (classes.vert), brows and lips painted on the face.
RULE_SKIN, RULE_EYE_SOCKET, RULE_EYEBALL, RULE_FIXED = 0.0, 1.0, 2.0, 3.0
SCLERA = (0.80, 0.76, 0.72)
MOUTH_INTERIOR = (0.09, 0.025, 0.025)  # dark: the mouth socket swallows light
LOOKS = {
    "face": (RULE_SKIN, (1.0, 1.0, 1.0)),
    "head_neck": (RULE_SKIN, (1.0, 1.0, 1.0)),
    "eye_socket": (RULE_EYE_SOCKET, (1.0, 1.0, 1.0)),
    "sclera": (RULE_EYEBALL, SCLERA),  # the iris and pupil are painted on its front cap (skin_maps)
    "iris": (RULE_EYEBALL, SCLERA),  # ICT's iris mesh sits inside the eyeball, hidden by it
    "mouth": (RULE_FIXED, MOUTH_INTERIOR),
    "gums_tongue": (RULE_FIXED, MOUTH_INTERIOR),
    "teeth": (RULE_FIXED, (0.78, 0.74, 0.64)),
}

# Back faces are culled (materials are single sided): ICT's surfaces are consistently wound, culling
# changes a handful of silhouette pixels per image and saves about a third of the draw on llvmpipe.
DRAW_FLAGS = 0  # pyrender.RenderFlags.NONE

# Per-vertex static attributes (see static_attributes), read by the shaders at pyrender's locations:
#   tangent    (loc 2): cheeks, lips, brows, brow_core skin maps
#   texcoord_0 (loc 3): freckles, iris
#   texcoord_1 (loc 4): iris_shade, colour rule (RULE_*)
#   color_0    (loc 5): fixed colour rgb, segmentation class / 255
STATIC_FLOATS = 12


class RasterRenderer:
    """pyrender/EGL renderer implementing the `Renderer` protocol, with its batch and async ways
    (`BatchRenderer`, `AsyncRenderer`: see generator/scene.py)."""

    name = "raster"
    version = RENDERERS["raster"].version  # bumped there when output pixels or labels change
    # render_batch (each stage over the batch) and submit/collect (llvmpipe draws on its own threads
    # while the caller prepares the next sample): see generator/worker.py for when each is used.
    supports_batch = True
    supports_async = True

    def __init__(self, model: FaceModel, outputs=("rgb", "depth", "segmentation"), backgrounds: Path | None = None,
                 hdris: Path | None = None, device: str = "auto", antialias: bool = False, threads: int = 0,
                 **_ignored):
        if threads:
            # llvmpipe starts one raster thread per CPU in every process; with several render workers
            # that oversubscribes the CPUs, so each gets its share (read when the GL context is made).
            os.environ.setdefault("LP_NUM_THREADS", str(int(threads)))
        # pyrender imports pyglet for its viewer, which we never open; headless, pyglet does not load X11
        # libraries (libXrender...) that a GPU node without a desktop lacks.
        os.environ.setdefault("PYGLET_HEADLESS", "true")
        try:
            import pyrender
        except Exception as e:  # noqa: BLE001 - OpenGL platform problems surface here
            raise FacegenError(f"cannot load pyrender/OpenGL ({e}); headless rendering needs EGL "
                               "(libEGL, Mesa) or set PYOPENGL_PLATFORM=osmesa") from None
        self._pr = pyrender
        self.model = model
        self.outputs = tuple(outputs)
        self.backgrounds = Path(backgrounds) if backgrounds else None
        self.hdris = Path(hdris) if hdris else None
        self.antialias = antialias
        self._size: tuple[int, int] | None = None
        self._offscreen = None
        self._pending = None
        self._build_geometry(model)
        self._build_scene()
        preload_hdris(self.hdris)  # backplates of kind hdri

    # -- one-off set-up ------------------------------------------------------------------------

    def _build_geometry(self, model: FaceModel) -> None:
        """Index arrays: the parts drawn (generator/parts.py), each its own block of vertices in one
        concatenated vertex order, the skin parts first (they form the first pyrender mesh)."""
        drawn_parts = [p for p in head_parts(model) if not p.see_through]
        self.parts = sorted(drawn_parts, key=lambda p: LOOKS[p.material][0] != RULE_SKIN)  # stable
        self._slices, drawn_tris, offset = [], [], 0
        for part in self.parts:
            self._slices.append(slice(offset, offset + len(part.vertex_ids)))
            drawn_tris.append(part.triangles + offset)
            offset += len(part.vertex_ids)
        self.drawn = np.concatenate([p.vertex_ids for p in self.parts]).astype(np.intp)  # global id per drawn vertex
        tris = np.concatenate(drawn_tris)
        self._tris = tris
        self._corner_index = [np.ascontiguousarray(tris[:, k], np.intp) for k in range(3)]
        n, f = len(self.drawn), len(tris)
        # Vertex normal = sum of the adjacent triangles' area-weighted normals: one sparse product.
        rows = tris.ravel()
        cols = np.repeat(np.arange(f), 3)
        self._incidence = sp.csr_matrix((np.ones(3 * f, np.float32), (rows, cols)), shape=(n, f))
        self._static = static_attributes(model, self.drawn, list(zip(self.parts, self._slices)))
        self._dynamic = np.zeros((n, 6), np.float32)  # position, normal: first contents, rewritten per sample
        self._normal_buffers = (np.empty((3, n), np.float32), np.empty((3, 3, f), np.float32),
                                np.empty((3, f), np.float32), np.empty(f, np.float32))

    def _build_scene(self) -> None:
        """Two pyrender meshes (skin with the sampled roughness, everything else): pyrender's
        per-primitive Python overhead (uniforms, lights) is a sizeable part of a frame on llvmpipe.
        The segmentation pass tells classes apart by a per-vertex class id, not by node."""
        pr = self._pr
        self.scene = pr.Scene(bg_color=(0.0, 0.0, 0.0, 0.0), ambient_light=(0.3, 0.3, 0.3))
        n_skin = sum(LOOKS[p.material][0] == RULE_SKIN for p in self.parts)  # first in self.parts
        groups = [range(0, n_skin), range(n_skin, len(self.parts))]
        self.primitives, self._group_slices, self._skin_materials, self._other_materials = [], [], [], []
        for group, is_skin in zip(groups, (True, False)):
            start, stop = self._slices[group[0]].start, self._slices[group[-1]].stop
            tris = np.concatenate([self.parts[k].triangles + (self._slices[k].start - start)
                                   for k in group]).astype(np.uint32)
            material = pr.MetallicRoughnessMaterial(baseColorFactor=(1.0, 1.0, 1.0, 1.0), metallicFactor=0.0,
                                                    roughnessFactor=0.5, doubleSided=False)
            n = stop - start
            # The attributes given here only fix pyrender's shader defines (*_LOC); the buffer
            # contents and layout are set by _split_vertex_buffers. color_0's alpha must be 1 here or
            # pyrender would draw the mesh as transparent.
            prim = pr.Primitive(positions=self.model.neutral[self.drawn[start:stop]],
                                normals=np.zeros((n, 3), np.float32), tangents=np.zeros((n, 4), np.float32),
                                texcoord_0=np.zeros((n, 2), np.float32), texcoord_1=np.zeros((n, 2), np.float32),
                                color_0=np.ones((n, 4), np.float32), indices=tris, material=material)
            self.scene.add(pr.Mesh([prim]))
            (self._skin_materials if is_skin else self._other_materials).append(material)
            self.primitives.append(prim)
            self._group_slices.append(slice(start, stop))
        # What the sample wears (hair strands as ribbons, garments): new geometry every sample, in
        # pyrender's own interleaved layout (DRESSING_FLOATS per vertex), rewritten whole by
        # _upload_dressing. Made here with one placeholder triangle so it gets the same program.
        # The lenses of glasses are a primitive of their own, drawn last and blended (draw()).
        n = 3
        self.dressing_primitive, self.lens_primitive = (pr.Primitive(
            positions=np.zeros((n, 3), np.float32), normals=np.zeros((n, 3), np.float32),
            tangents=np.zeros((n, 4), np.float32), texcoord_0=np.zeros((n, 2), np.float32),
            texcoord_1=np.zeros((n, 2), np.float32), color_0=np.ones((n, 4), np.float32),
            indices=np.arange(3, dtype=np.uint32)[None],
            material=pr.MetallicRoughnessMaterial(baseColorFactor=(1.0, 1.0, 1.0, 1.0), metallicFactor=0.0,
                                                  roughnessFactor=roughness, doubleSided=False))
            for roughness in (0.6, 0.05))
        self.lens_opacity = 1.0
        self._dressing_mesh = pr.Mesh([self.dressing_primitive])
        self.scene.add(self._dressing_mesh)
        self._lens_mesh = pr.Mesh([self.lens_primitive])
        self.scene.add(self._lens_mesh)
        self.camera = pr.IntrinsicsCamera(fx=500.0, fy=500.0, cx=128.0, cy=128.0, znear=10.0, zfar=200.0)
        self.camera_node = self.scene.add(self.camera, pose=np.eye(4))
        self.light_nodes = [self.scene.add(pr.DirectionalLight(color=np.ones(3), intensity=0.0), pose=np.eye(4))
                            for _ in range(MAX_LIGHTS)]

    def _ensure_context(self, width: int, height: int) -> None:
        if self._offscreen is not None and self._size == (width, height):
            return
        if self._offscreen is not None:
            self._offscreen.delete()
        pr = self._pr
        if not self.antialias:
            _single_sample_framebuffers()
        try:
            self._offscreen = pr.OffscreenRenderer(width, height)
        except Exception as e:  # noqa: BLE001
            raise FacegenError(f"cannot create an offscreen OpenGL context ({e}); check EGL/Mesa "
                               f"(PYOPENGL_PLATFORM={os.environ.get('PYOPENGL_PLATFORM')})") from None
        self._size = (width, height)
        self._offscreen._renderer._program_cache = self._programs = _lean_shader_cache()
        # The first renders bind every primitive to the context (create its vertex buffer) and compile
        # the shader programs, whose appearance uniforms upload() then sets.
        self._offscreen.render(self.scene, flags=DRAW_FLAGS)
        if self.antialias:  # its class pass (read)
            self._offscreen.render(self.scene, flags=self._pr.RenderFlags.FLAT)
        self._split_vertex_buffers()
        # What draw() issues, in a fixed order (pyrender's own order follows a set of nodes): each
        # primitive with the program pyrender compiled for it and its material.
        from pyrender.constants import ProgramFlags, RenderFlags

        gl = self._offscreen._renderer
        self._draw_list = [(prim, gl._get_primitive_program(prim, DRAW_FLAGS | RenderFlags.OFFSCREEN,
                                                            ProgramFlags.USE_MATERIAL)._program_id, prim.material)
                           for prim in (*self.primitives, self.dressing_primitive, self.lens_primitive)]

    def _split_vertex_buffers(self) -> None:
        """Lay each primitive's vertex buffer out as [position, normal per vertex | static attributes
        per vertex] instead of pyrender's fully interleaved rows, so a sample rewrites only the first,
        contiguous block. The static block holds the skin maps, colour rule, fixed colour and class
        that mesh.vert and classes.vert turn into colours with the sample's appearance uniforms."""
        from OpenGL import GL

        self._offscreen._platform.make_current()
        f32 = 4
        for prim, sl in zip(self.primitives, self._group_slices):
            n = sl.stop - sl.start
            data = np.concatenate([self._dynamic[sl].ravel(), self._static[sl].ravel()])
            GL.glBindVertexArray(prim._vaid)
            GL.glBindBuffer(GL.GL_ARRAY_BUFFER, prim._buffers[0])
            GL.glBufferData(GL.GL_ARRAY_BUFFER, data.nbytes, data, GL.GL_DYNAMIC_DRAW)
            dynamic = [(0, 3, 0), (1, 3, 3)]  # (location, size, offset in floats) in rows of 6
            static = [(2, 4, 0), (3, 2, 4), (4, 2, 6), (5, 4, 8)]  # in rows of STATIC_FLOATS, after them
            for loc, size, offset in dynamic:
                GL.glVertexAttribPointer(loc, size, GL.GL_FLOAT, GL.GL_FALSE, 6 * f32, ctypes.c_void_p(offset * f32))
            for loc, size, offset in static:
                GL.glVertexAttribPointer(loc, size, GL.GL_FLOAT, GL.GL_FALSE, STATIC_FLOATS * f32,
                                         ctypes.c_void_p((6 * n + offset) * f32))
        GL.glBindVertexArray(0)
        GL.glBindBuffer(GL.GL_ARRAY_BUFFER, 0)

    # -- per sample ----------------------------------------------------------------------------

    def render(self, params: SceneParams, scene: PosedScene) -> RenderResult:
        self.submit(params, scene)
        return self.collect()

    def render_batch(self, items: list[tuple[SceneParams, PosedScene]]) -> list[RenderResult]:
        """render() of several samples, stage by stage over the batch: the vertex data of all, then
        the draws, then the compositing. Each stage's code and data then stay in the CPU caches,
        which llvmpipe's draws flush (the normals take ~1.3 ms in a row, ~2 ms between draws)."""
        vertex_data = [self.vertex_data(scene) for _, scene in items]
        dressings = [self.dressing_data(params, scene) for params, scene in items]
        drawn = []
        for (params, scene), data, worn in zip(items, vertex_data, dressings):
            self.upload(params, scene, data, worn)
            self.draw()
            drawn.append((*self.read(), self.read_amodal()))
        return [self._result(params, scene.camera, *passes) for (params, scene), passes in zip(items, drawn)]

    def submit(self, params: SceneParams, scene: PosedScene) -> None:
        """Upload the sample and issue its draw without waiting for it: llvmpipe rasterises on its own
        threads, so the caller can prepare the next sample or write the last one meanwhile."""
        self.upload(params, scene)
        self.draw()
        self._pending = params, scene.camera

    def collect(self) -> RenderResult:
        """Wait for the submitted draw and read it back."""
        (params, camera), self._pending = self._pending, None
        return self._result(params, camera, *self.read(), self.read_amodal())

    def _result(self, params: SceneParams, camera: Camera, colour: np.ndarray, depth: np.ndarray,
                segmentation: np.ndarray, amodal: np.ndarray | None = None) -> RenderResult:
        image = self.compose(params, camera, colour, depth)
        return RenderResult(image=image, depth=depth, mask=face_mask(segmentation), segmentation=segmentation,
                            amodal=amodal)

    # The stages of submit() and collect(), separately callable for bench/render_throughput.py.

    def upload(self, params: SceneParams, scene: PosedScene, vertex_data: np.ndarray | None = None,
               dressing: tuple[np.ndarray, np.ndarray] | None = None) -> None:
        """The sample's vertex buffers (`vertex_data(scene)` and `dressing_data(params, scene)` unless
        given), camera, lights and appearance to the GPU."""
        cam = scene.camera
        self._ensure_context(cam.width, cam.height)
        self._offscreen._platform.make_current()  # draw() and read() run in it too
        self._upload_vertices(self.vertex_data(scene) if vertex_data is None else vertex_data)
        worn, lenses, self.lens_opacity = self.dressing_data(params, scene) if dressing is None else dressing
        self._upload_dressing(self.dressing_primitive, *worn)
        self._upload_dressing(self.lens_primitive, *lenses)
        for material in self._skin_materials:
            material.roughnessFactor = params.appearance.skin_roughness
        for material in self._other_materials:
            material.roughnessFactor = 0.3
        self._update_appearance(params)
        self._update_camera(scene)
        self._update_lights(params)

    def vertex_data(self, scene: PosedScene) -> np.ndarray:
        """(n, 6) float32 per drawn vertex: position and (unnormalised) normal, as the first block of
        the vertex buffers holds them."""
        data = np.empty((len(self.drawn), 6), np.float32)
        v = scene.vertices.take(self.drawn, axis=0, mode="wrap")  # valid indices: no bounds check
        data[:, 0:3] = v
        self._normals(v, data[:, 3:6])
        return data

    def dressing_data(self, params: SceneParams, scene: PosedScene):
        """What the sample wears (generator/parts.py `dressing`) as ((rows, triangles) of everything
        but the lenses, (rows, triangles) of the lenses, the lenses' opacity): vertex rows
        (n, DRESSING_FLOATS), triangles (F, 3) uint32; strands as ribbons facing the camera,
        surfaces as they are."""
        worn = dressing(params, scene, self.model)
        opacity = next((s.opacity for s in worn.surfaces if s.material == "lens"), 1.0)
        lens_rows, lens_tris = dressing_vertices(worn, scene.camera.centre, scene.head_t, lenses=True)
        # The blend mixes the lens's own colour in by its opacity (draw()): that colour is what the
        # lens reflects and absorbs, its dark tinted coat (as Cycles' lens material), not the tint
        # it lets through.
        lens_rows[:, 14:17] *= LENS_COAT
        return (dressing_vertices(worn, scene.camera.centre, scene.head_t, lenses=False),
                (lens_rows, lens_tris), opacity)

    def _upload_dressing(self, prim, rows: np.ndarray, triangles: np.ndarray) -> None:
        """Replace the dressing primitive's buffers (pyrender's interleaved layout, so its vertex
        attribute pointers stay valid) and its index count, which draw() and pyrender's class pass read."""
        from OpenGL import GL
        from OpenGL.raw.GL.VERSION.GL_1_5 import glBindBuffer, glBufferData
        from OpenGL.raw.GL.VERSION.GL_3_0 import glBindVertexArray

        rows = np.ascontiguousarray(rows, np.float32)
        triangles = np.ascontiguousarray(triangles, np.uint32)
        glBindVertexArray(prim._vaid)
        glBindBuffer(GL.GL_ARRAY_BUFFER, prim._buffers[0])
        glBufferData(GL.GL_ARRAY_BUFFER, max(rows.nbytes, 4), rows.ctypes.data_as(ctypes.c_void_p),
                     GL.GL_DYNAMIC_DRAW)
        glBindBuffer(GL.GL_ELEMENT_ARRAY_BUFFER, prim._buffers[2])  # [vertices, instance poses, elements]
        glBufferData(GL.GL_ELEMENT_ARRAY_BUFFER, max(triangles.nbytes, 4),
                     triangles.ctypes.data_as(ctypes.c_void_p), GL.GL_DYNAMIC_DRAW)
        glBindVertexArray(0)
        glBindBuffer(GL.GL_ARRAY_BUFFER, 0)
        prim._indices = triangles  # its .size is the draw's index count (no re-upload: set directly)

    def draw(self, head_only: bool = False) -> None:
        """Issue the draw of the sample without waiting for it (llvmpipe rasterises on its own threads);
        head_only: the head's own parts alone, nothing the sample wears (the amodal pass).

        The same GL state, uniforms and draw calls as pyrender's forward pass of this scene
        (test_raster checks the pixels agree), without its per-frame Python bookkeeping: uniform
        lookups by name, light and node sorting, texture and material checks, ~2 ms a frame. GL
        calls go straight to the driver (PyOpenGL's raw bindings: no per-call argument conversion and
        glGetError round trip); the context is the one upload() made current."""
        from OpenGL import GL
        from OpenGL.raw.GL.VERSION import GL_1_0 as gl10
        from OpenGL.raw.GL.VERSION import GL_1_4 as gl14
        from OpenGL.raw.GL.VERSION import GL_2_0 as gl20
        from OpenGL.raw.GL.VERSION import GL_3_0 as gl30
        from OpenGL.raw.GL.VERSION import GL_3_1 as gl31

        gl = self._offscreen._renderer
        width, height = self._size
        gl30.glBindFramebuffer(GL.GL_DRAW_FRAMEBUFFER, gl._main_fb_ms)
        gl10.glViewport(0, 0, width, height)
        for cap in (GL.GL_DEPTH_TEST, GL.GL_MULTISAMPLE, GL.GL_BLEND, GL.GL_CULL_FACE):
            gl10.glEnable(cap)
        gl10.glDisable(GL.GL_PROGRAM_POINT_SIZE)
        gl10.glDepthMask(GL.GL_TRUE)
        gl10.glDepthFunc(GL.GL_LESS)
        gl10.glDepthRange(0.0, 1.0)
        gl10.glBlendFunc(GL.GL_ONE, GL.GL_ZERO)
        gl10.glPolygonMode(GL.GL_FRONT_AND_BACK, GL.GL_FILL)
        gl10.glCullFace(GL.GL_BACK)
        gl10.glClearColor(*(float(c) for c in self.scene.bg_color))
        gl10.glClear(GL.GL_COLOR_BUFFER_BIT | GL.GL_DEPTH_BUFFER_BIT)
        frame, program_in_use = self._frame_uniforms(), None
        for prim, program_id, material in self._draw_list[:len(self.primitives)] if head_only else self._draw_list:
            if prim is self.lens_primitive:
                if not prim.indices.size:
                    continue
                # Lenses over what is drawn: colour mixed by the lens's opacity (a constant blend
                # factor), the class in alpha and the depth written only for a lens that hides what is
                # behind it (sunglasses), as Cycles' data passes skip a surface that is mostly see-through.
                hides = self.lens_opacity >= OPAQUE
                gl10.glDepthMask(GL.GL_TRUE if hides else GL.GL_FALSE)
                gl14.glBlendColor(0.0, 0.0, 0.0, float(self.lens_opacity))
                gl14.glBlendFuncSeparate(GL.GL_CONSTANT_ALPHA, GL.GL_ONE_MINUS_CONSTANT_ALPHA,
                                         GL.GL_ONE if hides else GL.GL_ZERO, GL.GL_ZERO if hides else GL.GL_ONE)
            uniforms = self._programs.uniform_setter(program_id)
            if program_id != program_in_use:  # uniforms stay with their program
                gl20.glUseProgram(program_id)
                for name, value in frame:
                    uniforms(name, value)
                uniforms("M", _IDENTITY4)  # the meshes' nodes sit at the origin
                program_in_use = program_id
            uniforms("material.base_color_factor", material.baseColorFactor)
            uniforms("material.roughness_factor", float(material.roughnessFactor))
            gl30.glBindVertexArray(prim._vaid)
            gl31.glDrawElementsInstanced(GL.GL_TRIANGLES, prim.indices.size, GL.GL_UNSIGNED_INT, None, 1)
        gl10.glDepthMask(GL.GL_TRUE)
        gl10.glBlendFunc(GL.GL_ONE, GL.GL_ZERO)
        gl30.glBindVertexArray(0)
        gl20.glUseProgram(0)
        gl10.glFlush()
        gl._latest_znear, gl._latest_zfar = self.camera.znear, self.camera.zfar  # pyrender's readback uses them

    def _frame_uniforms(self) -> list[tuple[str, object]]:
        """Camera and light uniforms as pyrender's forward pass computes them (same float64 maths,
        converted to float32 by the upload), lights in a fixed order."""
        pose = self.scene.get_pose(self.camera_node)
        out = [("V", np.linalg.inv(pose)), ("P", self.camera.get_projection_matrix(*self._size)),
               ("cam_pos", pose[:3, 3]), ("ambient_light", self.scene.ambient_light),
               ("n_directional_lights", len(self.light_nodes))]
        for i, node in enumerate(self.light_nodes):
            light_pose = self.scene.get_pose(node)
            out += [(f"directional_lights[{i}].direction", -light_pose[:3, 2]),
                    (f"directional_lights[{i}].color", node.light.color),
                    (f"directional_lights[{i}].intensity", float(node.light.intensity))]
        return out

    def read(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Wait for the draw; colour (H, W, 3) uint8, camera z (H, W) float32 (0 = nothing drawn) and
        segmentation classes (H, W) uint8."""
        if self.antialias:  # multisampled: only pyrender's blit-then-read path can read it, and the
            # resolved alpha would average the class ids of an edge: a separate unlit class pass
            colour, depth = self._offscreen._renderer._read_main_framebuffer(self.scene, DRAW_FLAGS)
            self._lens_mesh.is_visible = self.lens_opacity >= OPAQUE  # a see-through lens has no class
            classes, _ = self._offscreen.render(self.scene, flags=self._pr.RenderFlags.FLAT)
            self._lens_mesh.is_visible = True
            return colour, depth, np.ascontiguousarray(classes[..., 0])
        return self._read_back(*self._size)

    def read_amodal(self) -> np.ndarray | None:
        """The amodal face mask (`RenderResult.amodal`) when the renderer's outputs ask for it, else
        None: after read(), the head's own parts are drawn again without what the sample wears (the
        same program and state as draw(), which sets all of its state again for the next sample) and
        the face proper of their classes is taken (segmentation.face_mask)."""
        if "amodal" not in self.outputs:
            return None
        if self.antialias:  # pyrender's unlit class pass, as read() does, of the head alone
            self._dressing_mesh.is_visible = self._lens_mesh.is_visible = False
            classes, _ = self._offscreen.render(self.scene, flags=self._pr.RenderFlags.FLAT)
            self._dressing_mesh.is_visible = self._lens_mesh.is_visible = True
            return face_mask(classes[..., 0])
        self.draw(head_only=True)
        return face_mask(self._read_classes(*self._size))

    def compose(self, params: SceneParams, camera: Camera, colour: np.ndarray, depth: np.ndarray) -> np.ndarray:
        """The drawn head over the sample's backplate (generator/backgrounds.py, as Cycles uses it)."""
        return cv2.copyTo(colour, (depth > 0).view(np.uint8), backplate(params, camera, self.backgrounds, self.hdris))

    def _read_back(self, width: int, height: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Colour (H, W, 3) uint8, camera z (H, W) float32 (0 = nothing drawn) and classes (H, W) uint8
        (mesh.frag writes the class into alpha), read straight from the single-sampled framebuffer,
        skipping pyrender's two blits and its boolean-mask depth conversion (the same values;
        bench/render_throughput.py compares the two draws)."""
        from OpenGL import GL
        from OpenGL.raw.GL.VERSION.GL_1_0 import glPixelStorei, glReadPixels
        from OpenGL.raw.GL.VERSION.GL_3_0 import glBindFramebuffer

        gl_renderer = self._offscreen._renderer
        rgba = np.empty((height, width, 4), np.uint8)  # RGBA: llvmpipe's own layout, 6x faster to read than RGB
        depth = np.empty((height, width), np.float32)
        glBindFramebuffer(GL.GL_READ_FRAMEBUFFER, gl_renderer._main_fb_ms)
        glPixelStorei(GL.GL_PACK_ALIGNMENT, 1)
        glReadPixels(0, 0, width, height, GL.GL_RGBA, GL.GL_UNSIGNED_BYTE, rgba.ctypes.data_as(ctypes.c_void_p))
        glReadPixels(0, 0, width, height, GL.GL_DEPTH_COMPONENT, GL.GL_FLOAT, depth.ctypes.data_as(ctypes.c_void_p))
        glBindFramebuffer(GL.GL_READ_FRAMEBUFFER, 0)
        # Window depth d in [0, 1] to camera z (pyrender's formula and operation order, so the same
        # float32 values); d == 1 is the cleared background.
        near, far = self.camera.znear, self.camera.zfar
        background = depth == 1.0
        z = np.multiply(depth, 2.0, out=depth)  # in place, each step as pyrender rounds it
        z -= 1.0
        z *= far - near
        np.subtract(far + near, z, out=z)
        np.divide(2.0 * near * far, z, out=z)
        z[background] = 0.0
        rgba = cv2.flip(rgba, 0)  # OpenGL rows run bottom-up
        classes = np.ascontiguousarray(rgba[..., 3])
        classes[background[::-1]] = CLASS_ID["background"]  # the clear colour's alpha is not a class
        return cv2.cvtColor(rgba, cv2.COLOR_RGBA2RGB), cv2.flip(z, 0), classes

    def _read_classes(self, width: int, height: int) -> np.ndarray:
        """(H, W) uint8 classes from the alpha of the single-sampled framebuffer (cleared to 0, the
        background class, where nothing was drawn); the colour and depth are not read."""
        from OpenGL import GL
        from OpenGL.raw.GL.VERSION.GL_1_0 import glPixelStorei, glReadPixels
        from OpenGL.raw.GL.VERSION.GL_3_0 import glBindFramebuffer

        rgba = np.empty((height, width, 4), np.uint8)  # RGBA: llvmpipe's own layout, the fastest read
        glBindFramebuffer(GL.GL_READ_FRAMEBUFFER, self._offscreen._renderer._main_fb_ms)
        glPixelStorei(GL.GL_PACK_ALIGNMENT, 1)
        glReadPixels(0, 0, width, height, GL.GL_RGBA, GL.GL_UNSIGNED_BYTE, rgba.ctypes.data_as(ctypes.c_void_p))
        glBindFramebuffer(GL.GL_READ_FRAMEBUFFER, 0)
        return np.ascontiguousarray(rgba[::-1, :, 3])  # OpenGL rows run bottom-up

    def _upload_vertices(self, data: np.ndarray) -> None:
        from OpenGL import GL
        from OpenGL.raw.GL.VERSION.GL_1_5 import glBindBuffer, glBufferSubData

        data = np.ascontiguousarray(data, np.float32)
        base = data.ctypes.data
        for prim, sl in zip(self.primitives, self._group_slices):
            glBindBuffer(GL.GL_ARRAY_BUFFER, prim._buffers[0])
            glBufferSubData(GL.GL_ARRAY_BUFFER, 0, (sl.stop - sl.start) * data.strides[0],
                            ctypes.c_void_p(base + sl.start * data.strides[0]))
        glBindBuffer(GL.GL_ARRAY_BUFFER, 0)

    def _normals(self, v: np.ndarray, out: np.ndarray) -> None:
        """Area-weighted vertex normals of `v` into `out` (n, 3) float32, not normalised (mesh.vert
        does that): triangle cross products component by component, summed per vertex by three
        sparse matrix-vector products. Works in buffers kept from sample to sample, one contiguous
        row per coordinate: ~2x faster than fresh (n, 3) temporaries and np.cross."""
        xyz, corners, cross, scratch = self._normal_buffers
        np.copyto(xyz, v.T)
        for k, index in enumerate(self._corner_index):
            for c in range(3):  # mode="wrap": the indices are valid by construction, and numpy skips
                xyz[c].take(index, out=corners[k, c], mode="wrap")  # its bounds check (2x faster)
        a, e1, e2 = corners  # triangle corners a, b, c -> edges b - a, c - a
        np.subtract(e1, a, out=e1)
        np.subtract(e2, a, out=e2)
        for c, (p, q) in enumerate(((1, 2), (2, 0), (0, 1))):
            np.multiply(e1[p], e2[q], out=cross[c])
            np.multiply(e1[q], e2[p], out=scratch)
            cross[c] -= scratch
        for c in range(3):
            out[:, c] = self._incidence @ cross[c]

    def _update_appearance(self, params: SceneParams) -> None:
        """The sample's appearance as one vec4[6] uniform of every facegen program (mesh.vert computes
        the vertex colours from it and the static skin maps; classes.vert the brow class)."""
        from OpenGL.raw.GL.VERSION.GL_2_0 import glUniform4fv, glUseProgram

        values = appearance_uniform(params.appearance)
        pointer = values.ctypes.data_as(ctypes.POINTER(ctypes.c_float))
        for program_id, location in self._programs.appearance_locations():
            glUseProgram(program_id)
            glUniform4fv(location, len(values), pointer)
        glUseProgram(0)

    def _update_camera(self, scene: PosedScene) -> None:
        cam = scene.camera
        K = cam.K
        self.camera.fx, self.camera.fy = float(K[0, 0]), float(K[1, 1])
        # OpenGL pixel centres sit at +0.5: shift the principal point so OpenCV centres line up.
        self.camera.cx, self.camera.cy = float(K[0, 2] + gl_pixel_offset), float(K[1, 2] + gl_pixel_offset)
        # Near/far around the head keep the 24-bit depth precise (~1e-4 cm at 50 cm even with the
        # near plane at 1 cm); +-60 cm of its centre holds the garment's chest and hem at any pitch.
        z = float((cam.R @ scene.head_t + cam.t)[2])
        self.camera.znear, self.camera.zfar = max(z - 60.0, 1.0), z + 60.0
        pose = np.eye(4)
        pose[:3, :3] = cam.R.T @ np.diag([1.0, -1.0, -1.0])  # OpenCV camera axes -> OpenGL's (y up, -z forward)
        pose[:3, 3] = cam.centre
        self.scene.set_pose(self.camera_node, pose)

    def _update_lights(self, params: SceneParams) -> None:
        lighting = params.lighting
        self.scene.ambient_light = np.full(3, lighting.ambient)
        for i, node in enumerate(self.light_nodes):
            if i >= len(lighting.lights):
                node.light.intensity = 0.0
                continue
            light = lighting.lights[i]
            # Light.intensity 1.0 = a normal key light: irradiance pi makes a white Lambert surface
            # facing it come out at its albedo (the shader divides diffuse by pi).
            node.light.intensity = float(np.pi * light.intensity)
            node.light.color = np.asarray(light.color, np.float64)
            self.scene.set_pose(node, light_pose(light.azimuth, light.elevation))

    def close(self) -> None:
        if self._offscreen is not None:
            self._offscreen.delete()
            self._offscreen = None


# -- what the sample wears, as triangles -----------------------------------------------------------

# pyrender's interleaved vertex row (position, normal, tangent, texcoord_0, texcoord_1, color_0),
# read by mesh.vert / classes.vert as for the head: rule RULE_FIXED, the colour and class in color_0.
DRESSING_FLOATS = 18
LENS_COAT = 0.08  # a lens's own colour: its tint times this (generator/materials.py lens_material)


def dressing_vertices(worn: Dressing, camera_centre: np.ndarray, head_centre: np.ndarray,
                      lenses: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Vertex rows (n, DRESSING_FLOATS) float32 and triangles (F, 3) uint32 of a sample's dressing:
    everything but the glasses' lenses, or (lenses=True) the lenses alone. Each part writes its rows
    straight into the one buffer (a head of hair is ~150k ribbon vertices: copies cost more than the
    maths)."""
    strands = [] if lenses else [(s.geometry, s.segment_id) for s in worn.strands]
    # A lens is a closed thin solid (generator/eyewear.py); its front surface alone is drawn, so the
    # blend happens once per pixel (back faces are culled, and the edge band, under a pixel wide and
    # mostly inside the rim, could overlap the front where an outline is concave).
    surfaces = [(front_surface(s.geometry) if lenses else s.geometry, s.segment_id)
                for s in worn.surfaces if (s.material == "lens") == lenses]
    sizes = [2 * g.points.shape[0] * g.points.shape[1] for g, _ in strands] + [len(g.vertices) for g, _ in surfaces]
    rows = np.zeros((sum(sizes), DRESSING_FLOATS), np.float32)
    rows[:, 12:14] = (1.0, RULE_FIXED)  # texcoord_1: iris shade (unused), colour rule
    triangles, start = [], 0
    for (g, segment_id), size in zip(strands + surfaces, sizes):
        block = rows[start:start + size]
        if isinstance(g, StrandGeometry):
            tris = ribbons(g, camera_centre, head_centre, block)
        else:
            block[:, 0:3], block[:, 14:17] = g.vertices, g.colours
            block[:, 3:6] = _area_normals(g.vertices, g.triangles)
            tris = np.asarray(g.triangles, np.uint32)
        block[:, 17] = segment_id / 255.0
        triangles.append(tris + np.uint32(start))
        start += size
    tris = np.concatenate(triangles) if triangles else np.zeros((0, 3), np.uint32)
    return rows, tris


def _area_normals(vertices: np.ndarray, triangles: np.ndarray) -> np.ndarray:
    """Area-weighted vertex normals, not normalised (mesh.vert does that): per-vertex sums by
    np.bincount, several times faster than face_model.vertex_normals' np.add.at on a 30k garment."""
    v = np.asarray(vertices, np.float32)
    a, b, c = (v[triangles[:, k]] for k in range(3))
    face = np.cross(b - a, c - a)
    corners = np.asarray(triangles).ravel()
    return np.stack([np.bincount(corners, np.repeat(face[:, k], 3), minlength=len(v)) for k in range(3)],
                    axis=1).astype(np.float32)


def _unit(v: np.ndarray) -> np.ndarray:
    """v / |v| along the last axis (einsum: faster than np.linalg.norm on (..., 3) arrays)."""
    return v / np.maximum(np.sqrt(np.einsum("...i,...i->...", v, v)), 1e-9)[..., None]


def ribbons(strands, camera_centre: np.ndarray, head_centre: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """Strands (StrandGeometry) as flat ribbons turned to the camera, as wide as Cycles draws them:
    two vertices per strand point at +-radius across the strand, two triangles per segment, wound
    to face the camera (back faces are culled). Normals blend the ribbon's facing with the direction
    away from the head centre, so a head of hair is shaded as a volume, not as flat cards.
    Writes the 2 S K vertices' position, normal and colour into `rows` (2 S K, DRESSING_FLOATS) and
    returns the triangles (uint32, indexing `rows`)."""
    p = np.asarray(strands.points, np.float32)
    s, k = p.shape[:2]
    tangent = np.empty_like(p)
    tangent[:, 1:-1] = p[:, 2:] - p[:, :-2]
    tangent[:, 0], tangent[:, -1] = p[:, 1] - p[:, 0], p[:, -1] - p[:, -2]
    tangent = _unit(tangent)
    view = _unit(np.asarray(camera_centre, np.float32) - p)
    side = _unit(np.cross(tangent, view)) * np.asarray(strands.radius, np.float32)[..., None]
    out = rows.reshape(s, k, 2, DRESSING_FLOATS)  # strand, point, left/right
    assert np.shares_memory(out, rows), "rows must be whole contiguous rows: written through this view"
    np.subtract(p, side, out=out[:, :, 0, 0:3])
    np.add(p, side, out=out[:, :, 1, 0:3])
    facing = view - tangent * np.einsum("...i,...i->...", view, tangent)[..., None]
    normal = _unit(facing) + _unit(p - np.asarray(head_centre, np.float32))
    out[:, :, :, 3:6] = normal[:, :, None]
    out[:, :, :, 14:17] = np.asarray(strands.colours, np.float32)[:, None, None]
    # Per segment j of strand i: left/right at j and j + 1 -> (L_j, R_j, R_j+1), (L_j, R_j+1, L_j+1).
    base = (np.arange(s, dtype=np.uint32)[:, None] * np.uint32(2 * k)
            + np.arange(0, 2 * (k - 1), 2, dtype=np.uint32)[None]).reshape(-1, 1, 1)
    return (base + np.array([[0, 1, 3], [0, 3, 2]], np.uint32)).reshape(-1, 3)


def light_pose(azimuth: float, elevation: float) -> np.ndarray:
    """Pose of a directional light shining from (azimuth, elevation) towards the face (world space:
    azimuth 0 = from the camera on +z, +90 = from +x). pyrender lights shine along their -z axis."""
    az, el = math.radians(azimuth), math.radians(elevation)
    z = (math.sin(az) * math.cos(el), math.sin(el), math.cos(az) * math.cos(el))
    # x = up x z, normalised (scalar maths: three lights per sample, where np.cross costs more)
    x = (z[2], 0.0, -z[0])
    norm = math.hypot(x[0], x[2])
    x = (x[0] / norm, 0.0, x[2] / norm) if norm > 1e-6 else (1.0, 0.0, 0.0)
    y = (z[1] * x[2] - z[2] * x[1], z[2] * x[0] - z[0] * x[2], z[0] * x[1] - z[1] * x[0])  # z x x
    return np.array([[x[0], y[0], z[0], 0.0], [x[1], y[1], z[1], 0.0], [x[2], y[2], z[2], 0.0], [0.0, 0.0, 0.0, 1.0]])


SHADER_DIR = Path(__file__).resolve().parent / "shaders"
_IDENTITY4 = np.eye(4, dtype=np.float32)


def _lean_shader_cache():
    """pyrender's shader cache, with facegen's lean mesh shaders in place of its PBR ones and the
    class-id shaders in place of its flat ones (the segmentation pass). It remembers facegen's
    programs so the renderer can set their `appearance` uniform."""
    from OpenGL.GL import glGetUniformLocation
    from pyrender.shader_program import ShaderProgramCache

    class LeanShaders(ShaderProgramCache):
        def __init__(self):
            super().__init__()
            self.facegen_programs = []
            self._locations = {}  # (program id, uniform name) -> location

        def get_program(self, vertex_shader, fragment_shader, geometry_shader=None, defines=None):
            # os.path.join(shader_dir, absolute) is the absolute path: only these are replaced.
            ours = True
            if vertex_shader == "mesh.vert" and fragment_shader == "mesh.frag":
                vertex_shader, fragment_shader = str(SHADER_DIR / "mesh.vert"), str(SHADER_DIR / "mesh.frag")
            elif vertex_shader == "flat.vert" and fragment_shader == "flat.frag":
                vertex_shader, fragment_shader = str(SHADER_DIR / "classes.vert"), str(SHADER_DIR / "classes.frag")
            else:
                ours = False
            program = super().get_program(vertex_shader, fragment_shader, geometry_shader, defines)
            if ours and all(p is not program for p in self.facegen_programs):
                self.facegen_programs.append(program)
            return program

        def uniform_setter(self, program_id: int):
            """set(name, value) for the program in use: glUniform* by the value's type, as pyrender's
            ShaderProgram.set_uniform does (float64 data is sent as float32), with cached locations.
            Names the program does not use are skipped, as pyrender skips them."""
            from OpenGL.raw.GL.VERSION import GL_2_0 as gl20

            def set_uniform(name: str, value) -> None:
                key = (program_id, name)
                location = self._locations.get(key)
                if location is None:
                    location = self._locations[key] = gl20.glGetUniformLocation(program_id, name.encode())
                if location == -1:
                    return
                if isinstance(value, float):
                    gl20.glUniform1f(location, value)
                elif isinstance(value, int):
                    gl20.glUniform1i(location, value)
                elif len(value) == 3:  # vectors as scalars: ctypes rounds them to float32 as astype does
                    gl20.glUniform3f(location, *(float(x) for x in value))
                elif len(value) == 4 and np.ndim(value) == 1:
                    gl20.glUniform4f(location, *(float(x) for x in value))
                else:  # 4x4, row major
                    data = np.ascontiguousarray(value, np.float32)
                    gl20.glUniformMatrix4fv(location, 1, True, data.ctypes.data_as(ctypes.POINTER(ctypes.c_float)))

            return set_uniform

        def appearance_locations(self) -> list[tuple[int, int]]:
            """(program id, location of `appearance`) of every compiled facegen program."""
            out = []
            for program in self.facegen_programs:
                pid = program._program_id
                if pid is None:
                    continue
                key = (pid, "appearance")
                if key not in self._locations:
                    self._locations[key] = glGetUniformLocation(pid, "appearance")
                out.append((pid, self._locations[key]))
            return out

    return LeanShaders()


_PATCHED = False


def _single_sample_framebuffers() -> None:
    """pyrender draws into a 4x multisampled framebuffer and blits depth with GL_NEAREST, which gives
    the depth of one sub-sample, not of the pixel centre (a ~0.4 px shift). Render single-sampled so
    colour and depth are sampled exactly at pixel centres (and llvmpipe does a quarter of the work)."""
    global _PATCHED
    if _PATCHED:
        return
    import pyrender.renderer as prr
    from OpenGL import GL

    def storage(target, samples, fmt, width, height):  # samples = 0: an ordinary renderbuffer
        return GL.glRenderbufferStorageMultisample(target, 0, fmt, width, height)

    prr.glRenderbufferStorageMultisample = storage
    _PATCHED = True


# -- skin detail maps and appearance (per model, computed once; per sample a few uniforms) ------------

def static_attributes(model: FaceModel, drawn: np.ndarray, part_slices: list[tuple[Part, slice]]) -> np.ndarray:
    """(n, STATIC_FLOATS) float32 per drawn vertex: skin maps, colour rule, fixed colour and class
    (layout at STATIC_FLOATS). The shaders combine them with `appearance_uniform`."""
    m = skin_maps(model, drawn)
    out = np.zeros((len(drawn), STATIC_FLOATS), np.float32)
    out[:, 0:4] = np.stack([m["cheeks"], m["lips"], m["brows"], m["brow_core"]], axis=1)
    out[:, 4:6] = np.stack([m["freckles"], m["iris"]], axis=1)
    out[:, 6] = m["iris_shade"]
    for part, sl in part_slices:
        rule, colour = LOOKS[part.material]
        out[sl, 7] = rule
        out[sl, 8:11] = colour
        out[sl, 11] = part.segment_id / 255.0
        if part.material == "face":  # lips painted where their shape covers more than half (as in Cycles)
            lips = m["lips"][sl] > PAINTED_THRESHOLD
            out[sl, 11][lips] = CLASS_ID["lips"] / 255.0
    return out


def appearance_uniform(app) -> np.ndarray:
    """The `appearance` uniform (vec4[6]) of mesh.vert and classes.vert for an `Appearance`."""
    skin = np.asarray(app.skin_albedo, np.float32)
    return np.array([
        [*skin, app.freckles],
        [*(app.redness * np.array([0.25, -0.12, -0.12])), 0.4 + 0.6 * app.lip_tint],  # cheek tint - 1, lip strength
        [*(skin * np.array([1.05, 0.55, 0.58])), app.brow_density],  # lip colour
        [*app.brow_color, app.brow_thickness],
        [*app.iris_color, CLASS_ID["brows"] / 255.0],
        [*SCLERA, 0.0],
    ], np.float32)



def skin_maps(model: FaceModel, drawn: np.ndarray) -> dict[str, np.ndarray]:
    """Soft per-vertex weights in [0, 1] for lips, brows, cheeks, freckles and iris shading.

    Derived from the model's iBUG-68 markup in the frontal (x, y) projection of the neutral mesh."""
    v = model.neutral[drawn].astype(np.float64)
    n = len(drawn)
    lm = model.neutral[model.landmarks68].astype(np.float64)
    face_id = model.region_names.index("face")
    on_face = model.vertex_region[drawn] == face_id
    front = on_face & (v[:, 2] > lm[:, 2].min() - 2.0)
    xy = v[:, :2]

    def inside(points: np.ndarray, grow: float = 0.0) -> np.ndarray:
        points = points[:, :2]
        centre = points.mean(0)
        poly = Polygon(centre + (points - centre) * (1 + grow))
        return poly.contains_points(xy) & front

    lips = inside(lm[48:60], 0.05) & ~inside(lm[60:68], -0.05)
    lips = lips.astype(np.float32)
    # Brows: within a band around the brow polyline, fading at the ends.
    brows = np.zeros(n, np.float32)
    brow_core = np.full(n, 9.0, np.float32)
    for side in (lm[17:22], lm[22:27]):
        d = _distance_to_polyline(xy, side[:, :2] + np.array([0.0, 0.15]))
        band = np.clip(1.0 - (d - 0.25) / 0.25, 0, 1) * front
        brows = np.maximum(brows, band.astype(np.float32))
        brow_core = np.minimum(brow_core, (d / 0.35).astype(np.float32))
    cheeks = np.zeros(n, np.float32)
    for centre in ((lm[2] + lm[31]) / 2, (lm[14] + lm[35]) / 2):
        cheeks = np.maximum(cheeks, np.exp(-np.sum((xy - centre[:2]) ** 2, 1) / (2 * 1.8 ** 2)) * front)
    noise = np.random.default_rng(7).random(n).astype(np.float32)
    centre = lm[30, :2]
    freckles = (noise > 0.85) * np.exp(-np.sum((xy - centre) ** 2, 1) / (2 * 3.0 ** 2)) * front
    # Iris and pupil painted on the sclera's front cap (ICT's iris mesh sits inside the eyeball and is
    # hidden by it): radius in cm around the eyeball's front pole, looking straight ahead.
    iris = np.zeros(n, np.float32)
    iris_shade = np.ones(n, np.float32)
    for region in ("sclera_left", "sclera_right"):
        sel = model.vertex_region[drawn] == model.region_names.index(region)
        if sel.any():
            pts = v[sel]
            pole = pts[np.argmax(pts[:, 2])]
            r = np.linalg.norm(pts[:, :2] - pole[:2], axis=1)
            iris[sel] = np.clip((0.6 - r) / 0.05, 0, 1)
            iris_shade[sel] = np.where(r < 0.25, 0.04, 1.0 - 0.5 * np.clip((r - 0.45) / 0.15, 0, 1))
    return {"lips": lips, "brows": brows, "brow_core": brow_core, "cheeks": cheeks.astype(np.float32),
            "freckles": freckles.astype(np.float32), "iris": iris, "iris_shade": iris_shade}


def _distance_to_polyline(points: np.ndarray, line: np.ndarray) -> np.ndarray:
    best = np.full(len(points), np.inf)
    for a, b in zip(line[:-1], line[1:]):
        ab = b - a
        t = np.clip(((points - a) @ ab) / max(ab @ ab, 1e-12), 0, 1)
        best = np.minimum(best, np.linalg.norm(points - (a + t[:, None] * ab), axis=1))
    return best
