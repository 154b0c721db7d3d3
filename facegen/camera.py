"""Pinhole camera in the OpenCV convention, the one place that defines where a 3D point lands.

Camera space: x right, y down, z forward (into the scene). Pixel coordinates: (u, v) = (column, row),
the centre of the top-left pixel is (0, 0), so a W x H image spans u in [-0.5, W - 0.5].
OpenGL and Blender put pixel centres at +0.5; renderers convert with `gl_pixel_offset`.
300-W `.pts` files are 1-based (Matlab): convert at the loader, nowhere else.

World (model) space is the face model's: +y up, +z out of the face, centimetres.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

# Add to an OpenCV pixel coordinate to get the OpenGL/Blender window coordinate of the same point.
gl_pixel_offset = 0.5


@dataclass(frozen=True, eq=False)
class Camera:
    K: np.ndarray  # (3, 3) intrinsics
    R: np.ndarray  # (3, 3) world -> camera rotation
    t: np.ndarray  # (3,) world -> camera translation: X_cam = R @ X_world + t
    width: int
    height: int

    @property
    def centre(self) -> np.ndarray:
        """Camera centre in world coordinates."""
        return -self.R.T @ self.t

    def to_camera(self, points: np.ndarray) -> np.ndarray:
        return np.asarray(points, np.float64) @ self.R.T + self.t

    def project_camera(self, points_cam: np.ndarray) -> np.ndarray:
        """Pixel coordinates (N, 2) of camera-space points (N, 3)."""
        p = np.asarray(points_cam, np.float64) @ self.K.T
        return p[:, :2] / p[:, 2:3]

    def project(self, points: np.ndarray) -> np.ndarray:
        """Pixel coordinates (N, 2) of world-space points (N, 3)."""
        return self.project_camera(self.to_camera(points))

    def unproject(self, uv: np.ndarray, depth: np.ndarray) -> np.ndarray:
        """Camera-space points from pixel coordinates (N, 2) and z-depths (N,)."""
        uv = np.asarray(uv, np.float64)
        z = np.asarray(depth, np.float64)
        x = (uv[:, 0] - self.K[0, 2]) / self.K[0, 0] * z
        y = (uv[:, 1] - self.K[1, 2]) / self.K[1, 1] * z
        return np.stack([x, y, z], axis=1)


def intrinsics(focal_px: float, width: int, height: int) -> np.ndarray:
    """K with square pixels and the principal point at the image centre ((W-1)/2, (H-1)/2)."""
    return np.array(
        [[focal_px, 0.0, (width - 1) / 2.0], [0.0, focal_px, (height - 1) / 2.0], [0.0, 0.0, 1.0]]
    )


def look_at(eye: np.ndarray, target: np.ndarray, up=(0.0, 1.0, 0.0)) -> tuple[np.ndarray, np.ndarray]:
    """(R, t) of an OpenCV camera at `eye` looking at `target`, with world `up` pointing up in the image."""
    eye = np.asarray(eye, np.float64)
    z = np.asarray(target, np.float64) - eye
    z /= np.linalg.norm(z)
    x = np.cross(z, np.asarray(up, np.float64))  # x = y_cam x z_cam with y_cam = -up
    x /= np.linalg.norm(x)
    y = np.cross(z, x)
    R = np.stack([x, y, z])
    return R, -R @ eye


def euler_to_matrix(yaw: float, pitch: float, roll: float) -> np.ndarray:
    """Head rotation from yaw (about +y), pitch (about +x), roll (about +z), degrees; R = Rz @ Rx @ Ry.

    With the camera on +z looking at the face: positive yaw turns the nose towards +x (the subject's
    left, the image's right); positive pitch tips the nose down; positive roll lifts the subject's
    left side (+x) up."""
    y, p, r = np.radians([yaw, pitch, roll])
    Ry = np.array([[np.cos(y), 0, np.sin(y)], [0, 1, 0], [-np.sin(y), 0, np.cos(y)]])
    Rx = np.array([[1, 0, 0], [0, np.cos(p), -np.sin(p)], [0, np.sin(p), np.cos(p)]])
    Rz = np.array([[np.cos(r), -np.sin(r), 0], [np.sin(r), np.cos(r), 0], [0, 0, 1]])
    return Rz @ Rx @ Ry
