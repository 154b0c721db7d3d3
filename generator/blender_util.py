"""Small bpy helpers for the Cycles backend: coordinate conversion, camera, devices, readback.

Coordinates: the face model's world is centimetres with +y up and +z out of the face. Blender's is
z-up (the equirectangular HDRI lookup assumes it), so every position handed to bpy goes through
`to_blender`: (x, y, z)_model -> (x, -z, y) metres. Camera z-depth comes back in metres (x 100 -> cm).
"""

from __future__ import annotations

import logging
import math

import numpy as np

import bpy
from mathutils import Matrix

from facegen.camera import Camera
from facegen.errors import FacegenError

log = logging.getLogger("facegen.cycles")

# Model axes -> Blender axes (a proper rotation: det = +1), and centimetres -> metres.
MODEL_TO_BLENDER = np.array([[1.0, 0.0, 0.0], [0.0, 0.0, -1.0], [0.0, 1.0, 0.0]])
CM = 0.01
# OpenCV camera axes (x right, y down, z forward) -> Blender camera axes (x right, y up, z backward).
CV_TO_BLENDER_CAM = np.diag([1.0, -1.0, -1.0])


def to_blender(points: np.ndarray) -> np.ndarray:
    """Model-space points (N, 3) cm -> Blender world (N, 3) metres."""
    return (np.asarray(points, np.float64) @ MODEL_TO_BLENDER.T) * CM


def camera_pose(camera: Camera) -> np.ndarray:
    """4x4 Blender `matrix_world` of a `facegen.camera.Camera` (OpenCV R, t)."""
    rot = MODEL_TO_BLENDER @ camera.R.T @ CV_TO_BLENDER_CAM
    m = np.eye(4)
    m[:3, :3] = rot
    m[:3, 3] = to_blender(camera.centre[None])[0]
    return m


def set_camera(cam_obj: "bpy.types.Object", scene: "bpy.types.Scene", camera: Camera) -> None:
    """Make the Blender camera draw exactly what `camera.project` predicts.

    Horizontal sensor fit on a 36 mm sensor: lens = fx * 36 / W. Blender's optical axis passes through
    the frame centre, which in OpenCV pixels (centres at integers) is ((W-1)/2, (H-1)/2); any other
    principal point becomes a lens shift, measured in units of the frame width (the fit axis).
    Non-square pixels (fx != fy) are expressed with the pixel aspect ratio."""
    K = camera.K
    w, h = camera.width, camera.height
    fx, fy = float(K[0, 0]), float(K[1, 1])
    cd = cam_obj.data
    cd.type = "PERSP"
    cd.sensor_fit = "HORIZONTAL"
    cd.sensor_width = 36.0
    cd.lens = fx * 36.0 / w
    cd.shift_x = ((w - 1) / 2.0 - float(K[0, 2])) / w
    # Blender's +y is up in the image, OpenCV's v grows downwards.
    cd.shift_y = (float(K[1, 2]) - (h - 1) / 2.0) / w * (fy / fx)
    cd.clip_start = 0.01
    cd.clip_end = 100.0
    r = scene.render
    r.resolution_x, r.resolution_y, r.resolution_percentage = w, h, 100
    r.pixel_aspect_x, r.pixel_aspect_y = (1.0, fx / fy) if fx >= fy else (fy / fx, 1.0)
    cam_obj.matrix_world = Matrix(camera_pose(camera).tolist())


def setup_device(scene: "bpy.types.Scene", device: str = "auto") -> str:
    """Pick the Cycles device: "auto" tries OptiX, CUDA, HIP, oneAPI, Metal, then falls back to CPU;
    "GPU" tries the same but has no fallback: it, or a named backend ("CUDA", ...) that finds no
    device, is an error (a benchmark of the GPU must not time the CPU).

    Returns the device type used ("CPU", "OPTIX", ...)."""
    want = device.upper()
    if want == "CPU":
        scene.cycles.device = "CPU"
        return "CPU"
    prefs = bpy.context.preferences.addons["cycles"].preferences
    kinds = ["OPTIX", "CUDA", "HIP", "ONEAPI", "METAL"] if want in ("AUTO", "GPU") else [want]
    for kind in kinds:
        try:
            prefs.compute_device_type = kind
        except TypeError:  # this build does not know the backend
            continue
        prefs.refresh_devices()
        gpus = [d for d in prefs.devices if d.type == kind]
        if gpus:
            for d in prefs.devices:
                d.use = d.type == kind
            scene.cycles.device = "GPU"
            log.info("cycles: rendering on %s (%s)", kind, ", ".join(d.name for d in gpus))
            return kind
    prefs.compute_device_type = "NONE"
    if want != "AUTO":
        raise FacegenError(f"Cycles device {device}: this machine's Blender finds no {' / '.join(kinds)} device "
                           "(no GPU, or no driver for it: for NVIDIA, `nvidia-smi` must list the GPU); use "
                           "device auto to fall back to the CPU")
    scene.cycles.device = "CPU"
    log.info("cycles: no GPU found (%s), rendering on the CPU", device)
    return "CPU"


def image_pixels(img: "bpy.types.Image", channels: int = 4) -> np.ndarray:
    """An image's float pixels as (H, W, C), top row first (Blender stores bottom row first)."""
    w, h = img.size
    buf = np.empty(w * h * channels, np.float32)
    img.pixels.foreach_get(buf)
    return buf.reshape(h, w, channels)[::-1]


def direction(azimuth: float, elevation: float) -> np.ndarray:
    """Unit vector (model space) towards a light at azimuth/elevation degrees (0 = camera side, +z)."""
    a, e = math.radians(azimuth), math.radians(elevation)
    return np.array([math.sin(a) * math.cos(e), math.sin(e), math.cos(a) * math.cos(e)])


def look_rotation(forward_blender: np.ndarray) -> np.ndarray:
    """3x3 rotation whose -z axis (where lights and cameras point) is `forward_blender`."""
    f = forward_blender / np.linalg.norm(forward_blender)
    up = np.array([0.0, 0.0, 1.0]) if abs(f[2]) < 0.99 else np.array([0.0, 1.0, 0.0])
    x = np.cross(f, up)
    x /= np.linalg.norm(x)
    y = np.cross(-f, x)
    return np.stack([x, y, -f], axis=1)
