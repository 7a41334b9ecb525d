"""Where the real reference data lives: `../shared/data` beside the project, or $REXBERT_SHARED_DATA."""

from __future__ import annotations

import os
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[2]


def shared_data_dir() -> Path:
    """The shared data folder (it may not exist on a user's own clone; callers check)."""
    env = os.environ.get("REXBERT_SHARED_DATA")
    return Path(env) if env else PROJECT_ROOT.parent / "shared" / "data"
