# Copyright: (c) 2025, ATP deploy
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Release manifest: per-file sha256/mode/size of a release tree.

Shared by the controller (archive builder) and the instance (unpack/verify).
Standard library only: this file runs inside Ansible modules on the instance.
"""

from __future__ import annotations

import hashlib
import json
import os
import stat

MANIFEST_NAME = ".release-manifest.json"
MANIFEST_FORMAT = 1
DEFAULT_VERIFY_IGNORE = (MANIFEST_NAME, ".env", ".env.aws")

_CHUNK_SIZE = 1024 * 1024


def normalize_mode(st_mode: int) -> int:
    """Collapse a file mode to 0o755 (any exec bit set) or 0o644."""
    return 0o755 if st_mode & 0o111 else 0o644


def file_entry(path: str) -> dict:
    """Return ``{"sha256", "mode", "size"}`` for one file (follows symlinks)."""
    digest = hashlib.sha256()
    size = 0
    with open(path, "rb") as handle:
        mode = normalize_mode(os.fstat(handle.fileno()).st_mode)
        for chunk in iter(lambda: handle.read(_CHUNK_SIZE), b""):
            digest.update(chunk)
            size += len(chunk)
    return {"sha256": digest.hexdigest(), "mode": mode, "size": size}


def to_posix(relpath: str) -> str:
    """Return ``relpath`` with ``/`` separators."""
    return relpath.replace(os.sep, "/")


def build_manifest(root: str, relpaths: list[str]) -> dict:
    """Build ``{"format": 1, "files": {relpath: file_entry}}`` with sorted posix relpaths."""
    files = {}
    for rel in sorted({to_posix(p) for p in relpaths}):
        files[rel] = file_entry(os.path.join(root, *rel.split("/")))
    return {"format": MANIFEST_FORMAT, "files": files}


def content_hash(manifest: dict) -> str:
    """Return the sha256 hex of the canonical JSON of ``manifest["files"]``."""
    canonical = json.dumps(manifest["files"], sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def _is_ignored(relpath: str, ignore: tuple[str, ...]) -> bool:
    """True if the relpath or its basename is listed in ``ignore``."""
    return relpath in ignore or relpath.rsplit("/", 1)[-1] in ignore


def _tree_entries(root: str) -> dict[str, bool]:
    """Map every non-directory entry under ``root`` to True if it is a symlink."""
    entries: dict[str, bool] = {}
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        rel_dir = os.path.relpath(dirpath, root)
        for name in filenames + [d for d in dirnames if os.path.islink(os.path.join(dirpath, d))]:
            rel = name if rel_dir == "." else to_posix(os.path.join(rel_dir, name))
            entries[rel] = os.path.islink(os.path.join(dirpath, name))
    return entries


def _compare_file(root: str, rel: str, expected: dict) -> list[str]:
    """Compare one on-disk regular file against its manifest entry."""
    path = os.path.join(root, *rel.split("/"))
    if not stat.S_ISREG(os.lstat(path).st_mode):
        return [f"not a regular file: {rel}"]
    actual = file_entry(path)
    problems = []
    if actual["sha256"] != expected.get("sha256"):
        want = str(expected.get("sha256"))[:12]
        problems.append(f"sha256 mismatch: {rel} (expected {want}, found {actual['sha256'][:12]})")
    if actual["mode"] != expected.get("mode"):
        want = _fmt_mode(expected.get("mode"))
        found = _fmt_mode(actual["mode"])
        problems.append(f"mode mismatch: {rel} (expected {want}, found {found})")
    return problems


def _fmt_mode(mode: object) -> str:
    """Format a mode as 4-digit octal when it is an int."""
    return f"{mode:04o}" if isinstance(mode, int) else repr(mode)


def verify_tree(
    root: str, manifest: dict, ignore: tuple[str, ...] = DEFAULT_VERIFY_IGNORE
) -> list[str]:
    """Compare the tree at ``root`` with ``manifest``; return problems (empty = ok).

    ``ignore`` names (relpath or basename) are only ignored as extra files on disk;
    every file listed in the manifest is always checked.
    """
    if manifest.get("format") != MANIFEST_FORMAT:
        found = manifest.get("format")
        return [f"unsupported manifest format: {found!r} (expected {MANIFEST_FORMAT})"]
    if not os.path.isdir(root):
        return [f"release directory does not exist: {root}"]
    expected = manifest.get("files") or {}
    on_disk = _tree_entries(root)
    problems = []
    for rel in sorted(expected):
        if rel not in on_disk:
            problems.append(f"missing file: {rel}")
        elif on_disk[rel]:
            problems.append(f"unexpected symlink (expected a regular file): {rel}")
        else:
            problems.extend(_compare_file(root, rel, expected[rel]))
    for rel in sorted(set(on_disk) - set(expected)):
        if not _is_ignored(rel, ignore):
            problems.append(f"extra file: {rel}")
    return problems
