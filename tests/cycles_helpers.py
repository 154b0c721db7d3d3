"""Looks inside a CyclesRenderer for tests: the meshes Blender holds."""

from __future__ import annotations

import numpy as np

from facegen.generator import blender_util as bu


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
