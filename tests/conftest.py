"""Shared fixtures. Tests generate what they need or read ../shared by path; nothing large is committed."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
# Tests keep their own face-model cache inside the checkout (gitignored), never the user's.
os.environ.setdefault("FACEGEN_HOME", str(REPO / ".cache" / "facegen-test"))
os.environ.setdefault("PYOPENGL_PLATFORM", "egl")

from facegen.paths import shared_dir  # noqa: E402

SHARED = shared_dir()
ICT_ZIP = SHARED / "assets" / "ict-facekit" / "ICT-FaceKit-master.zip" if SHARED else None


def require_shared(*parts: str) -> Path:
    """A path inside ../shared, or skip the test saying what is missing."""
    if SHARED is None:
        pytest.skip("../shared is not beside this checkout (set FACEGEN_SHARED to its path)")
    path = SHARED.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"{path} is missing")
    return path


@pytest.fixture(scope="session")
def face_model():
    """The imported ICT-FaceKit model: loaded from the test cache, imported from ../shared once."""
    from facegen.face_model import default_model_path, load_face_model
    from facegen.ict import import_ict

    path = default_model_path()
    if not path.exists():
        import_ict(require_shared("assets", "ict-facekit", "ICT-FaceKit-master.zip")).save(path)
    return load_face_model(path)


@pytest.fixture(scope="session")
def toy_shards(tmp_path_factory) -> Path:
    """48 toy faces (64 px, 68 points) as valid facegen shards, for trainer tests."""
    from tests.toy_shards import write_toy_shards

    return write_toy_shards(tmp_path_factory.mktemp("toy") / "shards", 48, size=64)


@pytest.fixture(scope="session")
def background_photos(tmp_path_factory) -> Path:
    """A --backgrounds folder with one 300x200 photo, `coords.png`, whose red channel is the column
    and green the row (scaled to 0..255) and blue a texture: a window of it tells where it came from."""
    import cv2
    import numpy as np

    folder = tmp_path_factory.mktemp("backgrounds")
    h, w = 200, 300
    rows, cols = np.mgrid[0:h, 0:w]
    texture = (np.random.default_rng(0).random((h // 10, w // 10)) * 255).astype(np.uint8)
    rgb = np.stack([cols * 255 // (w - 1), rows * 255 // (h - 1), cv2.resize(texture, (w, h))], -1).astype(np.uint8)
    cv2.imwrite(str(folder / "coords.png"), rgb[..., ::-1])
    return folder
