"""Where the shared data lives (../shared/data beside the repository, or $HDRCNN_SHARED_DATA)."""

import os
from pathlib import Path

SHARED = Path(__file__).resolve().parents[1].parent / "shared"
SHARED_DATA = Path(os.environ.get("HDRCNN_SHARED_DATA", SHARED / "data"))
