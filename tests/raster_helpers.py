"""Test and benchmark uses of a RasterRenderer: what it uploaded to the GPU, and pyrender's own draw of
the same buffers (bench/render_throughput.py times it; test_raster checks the lean draw against it)."""

from __future__ import annotations

import numpy as np


def drawn_geometry(renderer) -> dict[str, np.ndarray]:
    """What the renderer's vertex buffers hold now, read back from OpenGL (call after render):
    `triangles` (F, 3) model vertex ids of every drawn triangle, `positions` (F, 3, 3) float32 their
    corners' positions as uploaded, `classes` (F, 3) the segmentation class of each corner, `part`
    (F,) the name of the part (`renderer.parts`) whose vertex block the triangle uses."""
    from OpenGL import GL

    renderer._offscreen._platform.make_current()
    triangles, positions, classes, part = [], [], [], []
    starts = np.array([sl.start for sl in renderer._slices])
    names = np.array([p.name for p in renderer.parts])
    for prim, sl in zip(renderer.primitives, renderer._group_slices):
        n = sl.stop - sl.start
        GL.glBindBuffer(GL.GL_ARRAY_BUFFER, prim._buffers[0])
        data = GL.glGetBufferSubData(GL.GL_ARRAY_BUFFER, 0, n * (6 + renderer._static.shape[1]) * 4)
        GL.glBindBuffer(GL.GL_ARRAY_BUFFER, 0)
        data = np.frombuffer(np.asarray(data).tobytes(), np.float32)
        dynamic, static = data[:6 * n].reshape(n, 6), data[6 * n:].reshape(n, -1)
        local = np.asarray(prim.indices, np.int64).reshape(-1, 3)
        triangles.append(renderer.drawn[sl][local])
        positions.append(dynamic[:, :3][local])
        classes.append(np.rint(static[:, 11] * 255).astype(np.int64)[local])
        part.append(names[np.searchsorted(starts, local[:, 0] + sl.start, side="right") - 1])
    return {"triangles": np.concatenate(triangles), "positions": np.concatenate(positions),
            "classes": np.concatenate(classes), "part": np.concatenate(part)}


def pyrender_draw(renderer) -> tuple[np.ndarray, np.ndarray]:
    """pyrender's OffscreenRenderer.render() of what `renderer.upload` put on the GPU (draw, wait,
    blit, read back colour and depth): the bare draw the pipeline's own draw and readback replace."""
    from facegen.generator.raster import DRAW_FLAGS

    return renderer._offscreen.render(renderer.scene, flags=DRAW_FLAGS)


def canonical(triangles: np.ndarray) -> np.ndarray:
    """Triangles (F, 3) as a sorted array of rows, each rotated to start at its smallest id (the
    winding, which decides the culled side, is kept): equal iff the same triangles are drawn."""
    t = np.asarray(triangles, np.int64)
    t = np.take_along_axis(t, (np.argmin(t, axis=1)[:, None] + np.arange(3)) % 3, axis=1)
    return t[np.lexsort(t.T[::-1])]
