"""Write docs/exit-codes.md from the error-code registry (src/styx/codes.py)."""

from __future__ import annotations

import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

from styx.codes import markdown  # noqa: E402

(REPO / "docs" / "exit-codes.md").write_text(markdown())
print("wrote docs/exit-codes.md")
