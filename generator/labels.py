"""Labels of one rendered sample: every spec point's pixel, camera-space position, visibility and
in-frame flag, plus head pose and intrinsics (conventions: docs/rendering.md).

Visibility is a depth test against the renderer's depth buffer: a point is visible when it is in
frame and not behind a drawn surface by more than `VISIBILITY_TOLERANCE_CM`, comparing with the
farthest of the 2x2 pixel centres around the point (so a point on a steep surface, whose neighbouring
pixels straddle its depth, is not declared hidden by its own surface); a point whose neighbourhood
touches the background sits on the outline and is visible.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from facegen.face_model import FaceModel
from facegen.generator.scene import PosedScene, SceneParams

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
        candidates = np.unique(np.concatenate(list(spec.contours.values()))) if spec.contours else np.zeros(0, int)
        self._candidates = candidates
        tri_mask = np.isin(model.triangles, candidates).any(axis=1)
        self._tris = model.triangles[tri_mask]
        f = len(self._tris)
        self._incidence = sp.csr_matrix(
            (np.ones(3 * f, np.float64), (self._tris.ravel(), np.repeat(np.arange(f), 3))),
            shape=(model.num_vertices, f))[candidates]

    def contour_normals(self, vertices: np.ndarray) -> np.ndarray:
        """(V, 3) normals, exact (area weighted) on contour candidates, zero elsewhere."""
        normals = np.zeros((self.num_vertices, 3), np.float64)
        if len(self._candidates):
            v = vertices.astype(np.float64, copy=False)
            a, b, c = v[self._tris[:, 0]], v[self._tris[:, 1]], v[self._tris[:, 2]]
            n = self._incidence @ np.cross(b - a, c - a)
            normals[self._candidates] = n / np.maximum(np.linalg.norm(n, axis=1, keepdims=True), 1e-12)
        return normals

    def __call__(self, params: SceneParams, scene: PosedScene, depth: np.ndarray | None) -> Labels:
        cam = scene.camera
        world = self.spec.locate(scene.vertices, cam.centre, self.contour_normals(scene.vertices))
        points_cam = cam.to_camera(world)
        uv = cam.project_camera(points_cam)
        in_frame = in_frame_mask(uv, points_cam[:, 2], cam.width, cam.height)
        visible = in_frame if depth is None else in_frame & depth_test(uv, points_cam[:, 2], depth)
        pivot_cam = cam.R @ scene.head_t + cam.t
        return Labels(
            points_2d=uv.astype(np.float32), points_3d=points_cam.astype(np.float32),
            visibility=visible.astype(np.uint8), in_frame=in_frame.astype(np.uint8),
            head_pose=np.array([*params.head_rotation, *pivot_cam], np.float32),
            K=cam.K.astype(np.float32), camera_R=cam.R.astype(np.float32), camera_t=cam.t.astype(np.float32))


def in_frame_mask(uv: np.ndarray, z: np.ndarray, width: int, height: int) -> np.ndarray:
    """Inside the image area [-0.5, W - 0.5] x [-0.5, H - 0.5] and in front of the camera."""
    return ((uv[:, 0] >= -0.5) & (uv[:, 0] <= width - 0.5) & (uv[:, 1] >= -0.5) & (uv[:, 1] <= height - 0.5)
            & (z > 0))


def neighbour_depths(uv: np.ndarray, depth: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The 2x2 pixel centres around each point: depths (N, 4) (0 = nothing drawn) and the bilinear
    weights' offsets (fu, fv) of the point inside that cell."""
    h, w = depth.shape
    u0 = np.clip(np.floor(uv[:, 0]).astype(np.int64), 0, w - 2)
    v0 = np.clip(np.floor(uv[:, 1]).astype(np.int64), 0, h - 2)
    d = np.stack([depth[v0, u0], depth[v0, u0 + 1], depth[v0 + 1, u0], depth[v0 + 1, u0 + 1]], axis=1)
    return d, uv[:, 0] - u0, uv[:, 1] - v0


def depth_test(uv: np.ndarray, z: np.ndarray, depth: np.ndarray,
               tolerance: float = VISIBILITY_TOLERANCE_CM) -> np.ndarray:
    """True where no drawn surface is more than `tolerance` in front of the point (see module doc).
    A point whose 2x2 neighbourhood touches the background is on an outline (the surface there is
    seen edge-on and its depth jumps within a pixel): nothing covers it, so it is visible."""
    d, _, _ = neighbour_depths(uv, depth)
    on_outline = (d == 0).any(axis=1)
    return on_outline | (z <= d.max(axis=1) + tolerance)
