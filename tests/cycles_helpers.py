"""Test-only uses of a CyclesRenderer: the meshes Blender holds, ray-cast visibility, marker renders."""

from __future__ import annotations

import numpy as np

import bpy
from mathutils import Vector
from mathutils.bvhtree import BVHTree

from facegen.generator import blender_util as bu
from facegen.generator import materials as mt
from facegen.generator.backgrounds import srgb_encode
from facegen.generator.labels import VISIBILITY_TOLERANCE_CM, in_frame_mask, visible_from_depths


def drawn_geometry(renderer) -> dict[str, dict[str, np.ndarray]]:
    """Per Blender object (`facegen_head`, `facegen_overlay`), what its mesh holds now (call after
    render): `triangles` (F, 3) model vertex ids, `positions` (F, 3, 3) its corners' positions back in
    model world cm, `material` (F,) each triangle's material name."""
    names = list(renderer.materials)  # material slot order
    out = {}
    for obj in (renderer.head, renderer.overlay):
        mesh = obj.data
        co = np.empty(len(mesh.vertices) * 3, np.float32)
        mesh.vertices.foreach_get("co", co)
        world = (co.reshape(-1, 3).astype(np.float64) / bu.CM) @ bu.MODEL_TO_BLENDER  # inverse of to_blender
        local = np.empty(len(mesh.polygons) * 3, np.int32)
        mesh.polygons.foreach_get("vertices", local)
        local = local.reshape(-1, 3)
        slots = np.empty(len(mesh.polygons), np.int32)
        mesh.polygons.foreach_get("material_index", slots)
        out[obj.name] = {"triangles": renderer._vertex_ids[obj.name][local], "positions": world[local],
                         "material": np.array(names)[slots]}
    return out


def visibility(renderer, points_world: np.ndarray, scene,
               tolerance_cm: float = VISIBILITY_TOLERANCE_CM) -> np.ndarray:
    """Visibility of points (world cm) from Blender's own ray casting against the renderer's opaque
    head object (the see-through overlays, eyelashes included, do not occlude): rays through the 4x4
    pixel centres around each point measure the depth there, and the one visibility rule of
    `labels.visible_from_depths` decides, exactly as the raster backend does with its depth buffer.
    An independent check of the labels' depth-buffer visibility."""
    cam = scene.camera
    pc = cam.to_camera(points_world)
    uv = cam.project_camera(pc)
    offsets = np.arange(-1, 3)
    cols = np.clip(np.floor(uv[:, 0]).astype(np.int64)[:, None] + offsets, 0, cam.width - 1)
    rows = np.clip(np.floor(uv[:, 1]).astype(np.int64)[:, None] + offsets, 0, cam.height - 1)
    pix = np.stack(np.broadcast_arrays(cols[:, None, :], rows[:, :, None]), -1).reshape(-1, 2)
    rays_cam = np.linalg.solve(cam.K, np.c_[pix, np.ones(len(pix))].T).T  # z = 1 per ray
    dirs = bu.to_blender(rays_cam @ cam.R) / bu.CM  # camera -> world directions, Blender axes
    # Blender's BVH over the opaque head at these vertex positions, built from the arrays directly:
    # the object's own ray_cast can answer from a stale cache after its vertices move.
    head = renderer.head.data
    polys = np.empty(len(head.polygons) * 3, np.int32)
    head.polygons.foreach_get("vertices", polys)
    ids = renderer._vertex_ids[renderer.head.name]
    bvh = BVHTree.FromPolygons(bu.to_blender(scene.vertices[ids]).tolist(), polys.reshape(-1, 3).tolist())
    origin = Vector(bu.to_blender(cam.centre[None])[0])
    depth = np.zeros(len(pix))
    for k, d in enumerate(dirs):
        length = float(np.linalg.norm(d))
        hit, *_ = bvh.ray_cast(origin, Vector(d / length))
        if hit is not None:  # camera z of the hit: distance along the ray / length of a z=1 ray
            depth[k] = (hit - origin).length / bu.CM / length
    vis = visible_from_depths(pc[:, 2], depth.reshape(len(pc), -1), tolerance_cm)
    return vis & in_frame_mask(uv, pc[:, 2], cam.width, cam.height)


def render_markers(renderer, params, scene, points_world: np.ndarray, radius_px: float = 1.5,
                   samples: int = 64) -> np.ndarray:
    """Render only small emissive discs (parallel to the image plane) centred on `points_world`,
    through the renderer's own camera path; returns the (H, W) linear intensity."""
    renderer.update(params, scene)
    cam = scene.camera
    pc = cam.to_camera(points_world)
    ring = np.linspace(0, 2 * np.pi, 33)[:-1]
    verts, faces = [], []
    for k, p in enumerate(pc):
        r = radius_px * p[2] / cam.K[0, 0]
        circle = np.stack([p[0] + r * np.cos(ring), p[1] + r * np.sin(ring), np.full_like(ring, p[2])], 1)
        world = (circle - cam.t) @ cam.R  # camera -> world
        verts.extend(bu.to_blender(world).tolist())
        faces.append(list(range(k * 32, k * 32 + 32)))
    mesh = bpy.data.meshes.new("facegen_markers")
    mesh.from_pydata(verts, [], faces)
    mat = bpy.data.materials.new("facegen_marker")
    mat.use_nodes = True
    g = mt.Graph(mat.node_tree)
    g.output(g.node("ShaderNodeEmission", {"Strength": 1.0, "Color": (1.0, 1.0, 1.0, 1.0)}))
    mesh.materials.append(mat)
    obj = bpy.data.objects.new("facegen_markers", mesh)
    renderer.scene.collection.objects.link(obj)
    hidden = [renderer.head, renderer.overlay] + renderer._lights
    saved = [o.hide_render for o in hidden]
    strength = renderer.scene.world.node_tree.nodes["p_world_strength"].outputs[0]
    world_saved = strength.default_value
    c = renderer.scene.cycles
    cs = (c.samples, c.use_denoising, c.use_adaptive_sampling)
    try:
        for o in hidden:
            o.hide_render = True
        strength.default_value = 0.0  # black world; the backplate is not composited here
        c.samples, c.use_denoising, c.use_adaptive_sampling = samples, False, False
        renderer._render()
        w, h = params.image_size
        out = renderer._read("rgb", h, w)[..., :3].mean(-1)
    finally:
        for o, s in zip(hidden, saved):
            o.hide_render = s
        strength.default_value = world_saved
        c.samples, c.use_denoising, c.use_adaptive_sampling = cs
        bpy.data.objects.remove(obj)
        bpy.data.meshes.remove(mesh)
        bpy.data.materials.remove(mat)
    return out


def render_world(renderer, params, scene, samples: int = 16) -> np.ndarray:
    """(H, W, 3) uint8 sRGB: Cycles' render of the sample's world alone (head and lights hidden,
    film opaque, no denoising), as Cycles itself shows it."""
    renderer.update(params, scene)
    hidden = [renderer.head, renderer.overlay] + renderer._lights
    saved = [o.hide_render for o in hidden]
    c = renderer.scene.cycles
    cs = (c.samples, c.use_denoising, c.use_adaptive_sampling)
    try:
        for o in hidden:
            o.hide_render = True
        renderer.scene.render.film_transparent = False
        c.samples, c.use_denoising, c.use_adaptive_sampling = samples, False, False
        renderer._render()
        w, h = params.image_size
        return srgb_encode(renderer._read("rgb", h, w)[..., :3])
    finally:
        for o, s in zip(hidden, saved):
            o.hide_render = s
        renderer.scene.render.film_transparent = True
        c.samples, c.use_denoising, c.use_adaptive_sampling = cs
