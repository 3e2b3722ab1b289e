"""Make the sandbox package (sandbox/atp_sandbox) importable for its unit tests."""

from __future__ import annotations

import sys
from pathlib import Path

SANDBOX_DIR = Path(__file__).resolve().parents[3] / "sandbox"

if str(SANDBOX_DIR) not in sys.path:
    sys.path.insert(0, str(SANDBOX_DIR))
