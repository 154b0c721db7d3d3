"""Where facegen keeps and finds files."""

from __future__ import annotations

import os
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent


def facegen_home() -> Path:
    """The cache root: $FACEGEN_HOME, default ~/.cache/facegen."""
    return Path(os.environ.get("FACEGEN_HOME", Path.home() / ".cache" / "facegen")).expanduser()


def shared_dir() -> Path | None:
    """The project's `../shared` folder (beside a checkout), if present; $FACEGEN_SHARED overrides."""
    env = os.environ.get("FACEGEN_SHARED")
    candidates = [Path(env)] if env else []
    candidates += [REPO_ROOT.parent / "shared", Path.cwd().parent / "shared", Path.cwd() / "shared"]
    for c in candidates:
        if (c / "README.md").exists() or (c / "assets").is_dir():
            return c.resolve()
    return None
