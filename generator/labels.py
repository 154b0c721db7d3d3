"""Labels of one rendered sample: every spec point's pixel, camera-space position, visibility and
in-frame flag, plus head pose and intrinsics (conventions: docs/rendering.md).

Visibility is a depth test against the renderer's depth buffer: a point is visible when it is in
frame and not behind a drawn surface by more than `VISIBILITY_TOLERANCE_CM`, comparing with the
farthest of the 4x4 pixel centres around the point (its 2x2 cell and one pixel around it), so a point
on a steep surface, whose neighbouring pixels straddle its depth, or within a pixel of an outline is
not declared hidden by its own surface; a point whose neighbourhood touches the background sits on
the outline and is visible.

What hides a hidden point (`occluded_by`, generator/segmentation.py OCCLUDERS) is the segmentation
class of the surface drawn at its pixel: every pixel around a hidden point is in front of it, so the
nearest one shows what covers it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from facegen.face_model import FaceModel
from facegen.generator.scene import PosedScene, SceneParams
from facegen.generator.segmentation import OCCLUDER_ID, OCCLUDER_OF_CLASS
from facegen.specs import view_direction

# A point counts as occluded when a drawn surface lies more than this in front of it (cm). Large
# enough for the depth buffer's precision and a mesh that curves within a pixel (0.25 cm is ~1-2
# pixels of surface at typical framings), small enough that an eyelid over the eyeball (>= 0.3 cm)
# or the nose over the far cheek hides what it covers.
VISIBILITY_TOLERANCE_CM = 0.25


@dataclass
class Labels:
    points_2d: np.ndarray  # (L, 2) float32 pixels, OpenCV convention
    points_3d: np.ndarray  # (L, 3) float32 camera space, cm
    visibility: np.ndarray  # (L,) uint8: in frame and not occluded
    in_frame: np.ndarray  # (L,) uint8
    occluded_by: np.ndarray  # (L,) uint8 OCCLUDERS code: 0 where visible, else what hides the point
    head_pose: np.ndarray  # (6,) float32: yaw, pitch, roll (deg), head pivot in camera space (cm)
    K: np.ndarray  # (3, 3) float32
    camera_R: np.ndarray  # (3, 3) float32
    camera_t: np.ndarray  # (3,) float32


class Labeller:
    """Projects a compiled spec onto posed meshes. Built once per process (precomputes the normals
    of the contour candidates only, the part of the mesh that `CompiledSpec.locate` looks at)."""

    def __init__(self, spec, model: FaceModel):
        self.spec = spec
        self.num_vertices = model.num_vertices
        self.contours = ContourMarcher(spec)
        candidates = np.unique(np.concatenate(list(spec.contours.values()))) if spec.contours else np.zeros(0, int)
        self._candidates = candidates
        tri_mask = np.isin(model.triangles, candidates).any(axis=1)
        self._tris = model.triangles[tri_mask]
        self._corner_index = [np.ascontiguousarray(self._tris[:, k], np.intp) for k in range(3)]
        f = len(self._tris)
        self._incidence = sp.csr_matrix(
            (np.ones(3 * f, np.float64), (self._tris.ravel(), np.repeat(np.arange(f), 3))),
            shape=(model.num_vertices, f))[candidates]
        # Where each contour candidate's normal sits in candidate_normals() (padding: any row).
        rows = np.searchsorted(candidates, self.contours.candidates)
        self._candidate_rows = rows.clip(0, max(len(candidates) - 1, 0))

    def candidate_normals(self, vertices: np.ndarray) -> np.ndarray:
        """(C, 3) unit normals (exact, area weighted, float64) of the contour candidates, in the
        order of their vertex ids."""
        # float64 corners of the triangles around the candidates only (not the whole mesh);
        # mode="wrap": valid indices by construction, and numpy skips its bounds check
        a, b, c = (vertices.take(i, axis=0, mode="wrap").astype(np.float64) for i in self._corner_index)
        b -= a
        c -= a
        cross = np.empty_like(a)  # written out: np.cross is several times slower
        np.multiply(b[:, 1], c[:, 2], out=cross[:, 0])
        cross[:, 0] -= b[:, 2] * c[:, 1]
        np.multiply(b[:, 2], c[:, 0], out=cross[:, 1])
        cross[:, 1] -= b[:, 0] * c[:, 2]
        np.multiply(b[:, 0], c[:, 1], out=cross[:, 2])
        cross[:, 2] -= b[:, 1] * c[:, 0]
        n = self._incidence @ cross
        return n / np.maximum(np.linalg.norm(n, axis=1, keepdims=True), 1e-12)

    def contour_normals(self, vertices: np.ndarray) -> np.ndarray:
        """(V, 3) normals, exact (area weighted) on contour candidates, zero elsewhere."""
        normals = np.zeros((self.num_vertices, 3), np.float64)
        if len(self._candidates):
            normals[self._candidates] = self.candidate_normals(vertices)
        return normals

    def locate(self, vertices: np.ndarray, camera_centre: np.ndarray) -> np.ndarray:
        """World positions (L, 3) of the spec's points for this pose: `CompiledSpec.locate`, with the
        contour rule evaluated for all contour points at once (tests check it chooses the same)."""
        corners = vertices.take(self.spec.tri_vertices, axis=0, mode="wrap").astype(np.float64)
        points = np.einsum("lk,lkc->lc", self.spec.weights, corners)
        if self.contours.points.size:
            chosen = self.contours.choose(vertices, camera_centre, self.candidate_normals(vertices),
                                          normal_rows=self._candidate_rows)
            points[self.contours.points] = vertices.take(chosen, axis=0)
        return points

    def __call__(self, params: SceneParams, scene: PosedScene, depth: np.ndarray | None,
                 segmentation: np.ndarray | None = None) -> Labels:
        """Labels of one render. Without a depth map every point in frame counts as visible; without
        a segmentation map a hidden point's occluder is "self"."""
        cam = scene.camera
        world = self.locate(scene.vertices, cam.centre)
        points_cam = cam.to_camera(world)
        uv = cam.project_camera(points_cam)
        in_frame = in_frame_mask(uv, points_cam[:, 2], cam.width, cam.height)
        visible = in_frame if depth is None else in_frame & depth_test(uv, points_cam[:, 2], depth)
        pivot_cam = cam.R @ scene.head_t + cam.t
        return Labels(
            points_2d=uv.astype(np.float32), points_3d=points_cam.astype(np.float32),
            visibility=visible.astype(np.uint8), in_frame=in_frame.astype(np.uint8),
            occluded_by=occluders(uv, visible, in_frame, segmentation),
            head_pose=np.array([*params.head_rotation, *pivot_cam], np.float32),
            K=cam.K.astype(np.float32), camera_R=cam.R.astype(np.float32), camera_t=cam.t.astype(np.float32))


class ContourMarcher:
    """`CompiledSpec.locate_indices`'s marching rule, vectorised over all contour points (the loop
    over points and candidates costs several ms per sample for dense specs). Same inputs, same choice."""

    def __init__(self, spec):
        items = sorted(spec.contours.items())
        self.points = np.array([i for i, _ in items], np.intp)
        width = max((len(c) for _, c in items), default=0)
        self.candidates = np.zeros((len(items), width), np.intp)
        self.valid = np.zeros((len(items), width), bool)
        for row, (_, cand) in enumerate(items):
            self.candidates[row, :len(cand)] = cand
            self.valid[row, :len(cand)] = True
        self.lengths = self.valid.sum(axis=1)
        self.facing = np.array([spec.contour_facing[i] for i, _ in items], np.float64)
        self.frontal = np.array([spec.contour_frontal[i] for i, _ in items], np.intp)

    def choose(self, vertices: np.ndarray, camera_centre: np.ndarray, normals: np.ndarray,
               normal_rows: np.ndarray | None = None) -> np.ndarray:
        """Chosen vertex per contour point: march from the frontal candidate in the direction where
        the facing f = -n.h - f* keeps its sign, stop at the last candidate of that sign, then take
        the next one if it is closer to f* (see CompiledSpec.locate_indices). `normals` are per
        vertex (V, 3), or any rows with `normal_rows` (P, K) saying where each candidate's is."""
        h = view_direction(vertices, camera_centre)
        index = self.candidates if normal_rows is None else normal_rows
        f = -(normals.take(index, axis=0) @ h) - self.facing[:, None]  # (P, K)
        rows = np.arange(len(self.points))
        k0 = self.frontal
        f0 = f[rows, k0]
        step = np.where(f0 > 0, 1, -1)
        offset = (np.arange(f.shape[1])[None, :] - k0[:, None]) * step[:, None]  # steps ahead of k0
        stops = self.valid & (offset > 0) & (np.sign(f) != np.sign(f0)[:, None])
        first_stop = np.where(stops, offset, np.iinfo(np.intp).max).min(axis=1)  # steps to the first sign change
        has_stop = first_stop < np.iinfo(np.intp).max
        last_in_range = np.where(step > 0, self.lengths - 1 - k0, k0)  # steps to the end of the list
        k = k0 + step * np.where(has_stop, first_stop - 1, last_in_range)
        nxt = np.clip(k + step, 0, self.candidates.shape[1] - 1)
        closer = has_stop & (np.abs(f[rows, nxt]) < np.abs(f[rows, k]))
        k = np.where(f0 == 0, k0, np.where(closer, nxt, k))
        return self.candidates[rows, k]


def occluders(uv: np.ndarray, visible: np.ndarray, in_frame: np.ndarray,
              segmentation: np.ndarray | None) -> np.ndarray:
    """(L,) uint8 OCCLUDERS codes: none where visible, out_of_frame outside the image, otherwise the
    occluder of the class drawn at the point's nearest pixel centre ("self" without a class map)."""
    out = np.where(in_frame, OCCLUDER_ID["self"], OCCLUDER_ID["out_of_frame"]).astype(np.uint8)
    hidden = in_frame & ~visible
    if segmentation is not None and hidden.any():
        h, w = segmentation.shape
        u = np.clip(np.floor(uv[hidden, 0] + 0.5).astype(np.int64), 0, w - 1)
        v = np.clip(np.floor(uv[hidden, 1] + 0.5).astype(np.int64), 0, h - 1)
        out[hidden] = OCCLUDER_OF_CLASS[segmentation[v, u]]
    out[visible.astype(bool)] = OCCLUDER_ID["none"]
    return out


def in_frame_mask(uv: np.ndarray, z: np.ndarray, width: int, height: int) -> np.ndarray:
    """Inside the image area [-0.5, W - 0.5] x [-0.5, H - 0.5] and in front of the camera."""
    return ((uv[:, 0] >= -0.5) & (uv[:, 0] <= width - 0.5) & (uv[:, 1] >= -0.5) & (uv[:, 1] <= height - 0.5)
            & (z > 0))


def neighbour_depths(uv: np.ndarray, depth: np.ndarray, ring: int = 0) -> np.ndarray:
    """Depths (N, (2 + 2 ring)^2) of the 2x2 pixel centres around each point, widened by `ring`
    pixels on every side (0 = nothing drawn there)."""
    h, w = depth.shape
    u0 = np.floor(uv[:, 0]).astype(np.int64)
    v0 = np.floor(uv[:, 1]).astype(np.int64)
    offsets = np.arange(-ring, 2 + ring)
    cols = np.clip(u0[:, None] + offsets[None, :], 0, w - 1)  # (N, k)
    rows = np.clip(v0[:, None] + offsets[None, :], 0, h - 1)
    flat = (rows * w)[:, :, None] + cols[:, None, :]  # (N, k, k) indices into the raveled map
    return np.ascontiguousarray(depth).ravel().take(flat.ravel(), mode="wrap").reshape(len(uv), -1)


def depth_test(uv: np.ndarray, z: np.ndarray, depth: np.ndarray,
               tolerance: float = VISIBILITY_TOLERANCE_CM) -> np.ndarray:
    """True where no drawn surface is more than `tolerance` in front of the point (see module doc).

    The depths looked at are the 4x4 pixel centres around the point (its 2x2 cell and one pixel
    around). A point whose neighbourhood touches the background is on an outline; a point whose
    farthest neighbour is not in front of it is on the drawn surface or beside an edge of it. Both
    count as visible: on a surface seen edge-on the depth jumps by centimetres per pixel, and contour
    points sit exactly there."""
    return visible_from_depths(z, neighbour_depths(uv, depth, ring=1), tolerance)


def visible_from_depths(z: np.ndarray, d: np.ndarray, tolerance: float = VISIBILITY_TOLERANCE_CM) -> np.ndarray:
    """The visibility rule on the depths `d` (N, k) seen at the pixel centres around each point
    (0 = nothing drawn), whichever renderer measured them (depth buffer or ray casting)."""
    on_outline = (d == 0).any(axis=1)
    return on_outline | (z <= d.max(axis=1) + tolerance)
