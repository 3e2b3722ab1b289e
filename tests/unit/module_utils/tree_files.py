"""Helpers shared by the module_utils tests."""

from __future__ import annotations

from pathlib import Path


def write_file(root: Path, rel: str, data: bytes = b"x", mode: int = 0o644) -> Path:
    """Write root/rel (parents made) with data and mode; return its path."""
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    path.chmod(mode)
    return path
