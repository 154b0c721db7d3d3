"""Small mesh builders the things a sample wears share (generator/clothing.py, eyewear.py,
facewear.py, headwear.py, hands.py): tubes, vertex grids, joining pieces, fabric patterns. Model
space, cm; triangles counter-clockwise seen from outside."""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from facegen.generator.parts import SurfaceGeometry

F = np.float32


def tube(path: np.ndarray, radius, closed: bool, ring: int = 8) -> tuple[np.ndarray, np.ndarray]:
    """A tube of `ring` sides along `path` (P, 3), `radius` per point (P,); closed paths join end to
    start, open ones are capped. (vertices, triangles), outward winding."""
    p = np.asarray(path, np.float64)
    r = np.broadcast_to(np.asarray(radius, np.float64), len(p))
    tangent = (np.roll(p, -1, 0) - np.roll(p, 1, 0)) if closed else np.gradient(p, axis=0)
    tangent /= np.maximum(np.linalg.norm(tangent, axis=1, keepdims=True), 1e-9)
    ref = np.where(np.abs(tangent[:, 2:3]) < 0.9, [[0.0, 0.0, 1.0]], [[0.0, 1.0, 0.0]])
    normal = np.cross(tangent, ref)
    normal /= np.linalg.norm(normal, axis=1, keepdims=True)
    binormal = np.cross(tangent, normal)
    phi = np.linspace(0, 2 * np.pi, ring, endpoint=False)
    around = np.cos(phi)[None, :, None] * normal[:, None] + np.sin(phi)[None, :, None] * binormal[:, None]
    vertices = (p[:, None] + r[:, None, None] * around).reshape(-1, 3)
    n, rows = len(p), len(p) if closed else len(p) - 1
    i, j = np.meshgrid(np.arange(rows), np.arange(ring), indexing="ij")
    a, b = i * ring + j, i * ring + (j + 1) % ring
    c, d = ((i + 1) % n) * ring + j, ((i + 1) % n) * ring + (j + 1) % ring
    triangles = np.concatenate([np.stack([a, c, b], -1).reshape(-1, 3), np.stack([b, c, d], -1).reshape(-1, 3)])
    if not closed:
        ends = np.array([len(vertices), len(vertices) + 1])
        vertices = np.vstack([vertices, p[[0, -1]]])
        j = np.arange(ring)
        last = (n - 1) * ring
        caps = [np.stack([np.full(ring, ends[0]), (j + 1) % ring, j], 1),
                np.stack([np.full(ring, ends[1]), last + j, last + (j + 1) % ring], 1)]
        triangles = np.concatenate([triangles, *caps])
    return vertices, triangles


def join(pieces: list[tuple], colour=None) -> SurfaceGeometry:
    """One mesh of pieces (vertices, triangles) or (vertices, triangles, colours): colours (3,) for
    the whole piece or (n, 3) per vertex, linear RGB; `colour` for pieces that bring none."""
    vertices, triangles, colours, base = [], [], [], 0
    for piece in pieces:
        v, t = piece[:2]
        c = piece[2] if len(piece) > 2 else colour
        vertices.append(v)
        triangles.append(np.asarray(t) + base)
        colours.append(np.broadcast_to(np.asarray(c, F), (len(v), 3)))
        base += len(v)
    return SurfaceGeometry(np.vstack(vertices).astype(F), np.vstack(triangles).astype(np.int32),
                           np.vstack(colours).astype(F))


def grid_triangles(rows: int, cols: int, closed: bool) -> np.ndarray:
    """Two triangles per quad of a (rows, cols) vertex grid, counter-clockwise seen from the side
    that d(row) x d(col) points to (outward when rows run down and columns turn towards +x at the
    front); `closed` joins the last column to the first."""
    r, c = np.meshgrid(np.arange(rows - 1), np.arange(cols if closed else cols - 1), indexing="ij")
    a, b = r * cols + c, r * cols + (c + 1) % cols
    lower_a, lower_b = a + cols, b + cols
    return np.concatenate([np.stack([a, lower_a, b], -1).reshape(-1, 3),
                           np.stack([b, lower_a, lower_b], -1).reshape(-1, 3)]).astype(np.int32)


def soft_square(x: np.ndarray) -> np.ndarray:
    """0/1 square wave of period 2 with soft edges (vertices sample a stripe only a few times)."""
    return np.clip(np.float32(0.5) + np.float32(1.5) * np.sin(np.float32(np.pi) * x), 0.0, 1.0)


def pattern_mix(pattern: str, u: np.ndarray, v: np.ndarray, scale: float, rng: np.random.Generator) -> np.ndarray:
    """(n,) float32 in [0, 1]: how much of a fabric's second colour each vertex takes, for fabric
    coordinates u (across) and v (along), in cm; `scale` is a stripe's or check's width."""
    scale = np.float32(max(float(scale), 1e-3))
    if pattern == "stripes":
        return soft_square(v / scale)
    if pattern == "checks":
        a, b = soft_square(u / scale), soft_square(v / scale)
        return a * (1 - b) + (1 - a) * b
    if pattern == "melange":
        return rng.beta(1.2, 3.0, len(u)).astype(np.float32)
    return np.zeros(len(u), np.float32)


def outer_radius(u: np.ndarray, w: np.ndarray, radius: np.ndarray, u_query: np.ndarray, w_query: np.ndarray,
                 u_step: float, w_step: float, u_period: float = 0.0) -> np.ndarray:
    """A surface's outermost radius near query nodes: points given by two coordinates (u, w) and their
    radius are binned (bins u_step x w_step), each bin keeps the largest radius, gaps between points
    are closed by a 3x3 maximum, bins still empty take their neighbours' value; each query node
    (u_query, w_query, broadcast together) reads its bin. `u_period` > 0: u wraps around (azimuth)."""
    from scipy.ndimage import maximum_filter

    u_lo, w_lo = float(np.min(u_query)) - 2 * u_step, float(np.min(w_query)) - 2 * w_step
    nu = int(np.ceil((float(np.max(u_query)) + 2 * u_step - u_lo) / u_step)) + 1
    nw = int(np.ceil((float(np.max(w_query)) + 2 * w_step - w_lo) / w_step)) + 1
    if u_period:
        u_lo, nu = 0.0, int(round(u_period / u_step))
        u, u_query = np.mod(u, u_period), np.mod(u_query, u_period)
    iu, iw = np.floor((u - u_lo) / u_step).astype(np.intp), np.floor((w - w_lo) / w_step).astype(np.intp)
    keep = (iu >= 0) & (iu < nu) & (iw >= 0) & (iw < nw)
    grid = np.zeros((nu, nw))
    np.maximum.at(grid, (iu[keep], iw[keep]), radius[keep])
    mode = "wrap" if u_period else "nearest"
    grid = maximum_filter(grid, size=3, mode=mode)
    for _ in range(6):  # bins still empty (an open mouth, the gap where the ear meets the head)
        empty = grid == 0
        if not empty.any():
            break
        grid[empty] = maximum_filter(grid, size=3, mode=mode)[empty]
    qu, qw = np.broadcast_arrays(u_query, w_query)
    cu = np.clip(np.floor((qu - u_lo) / u_step).astype(np.intp), 0, nu - 1)
    cw = np.clip(np.floor((qw - w_lo) / w_step).astype(np.intp), 0, nw - 1)
    return grid[cu, cw]


@lru_cache(maxsize=4)
def skin_vertices(model) -> np.ndarray:
    """Ids of the face model's skin vertices (its face and head_neck regions), read-only: once per
    model (a few ms each; masks and headwear ask several times per sample)."""
    regions = [model.region_names.index(r) for r in ("face", "head_neck")]
    ids = np.unique(model.triangles[np.isin(model.triangle_region, regions)])
    ids.flags.writeable = False
    return ids
