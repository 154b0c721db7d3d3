"""Shared fixtures. The face model is imported once into <repo>/.cache/facegen-test if not cached."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="session")
def face_model():
    from facegen.face_model import default_model_path, load_face_model

    if not default_model_path().exists():
        os.environ["FACEGEN_HOME"] = str(REPO / ".cache" / "facegen-test")
        if not default_model_path().exists():
            from facegen.ict import import_ict

            src = REPO.parent / "shared" / "assets" / "ict-facekit" / "ICT-FaceKit-master.zip"
            if not src.exists():
                pytest.skip(f"no cached face model and no {src} to import it from")
            import_ict(src).save(default_model_path())
    return load_face_model()
