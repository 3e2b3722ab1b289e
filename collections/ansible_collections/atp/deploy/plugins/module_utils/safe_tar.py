# Copyright: atp.deploy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Safe extraction of a release archive (stdlib only).

The archive is a tar.gz whose first member is the JSON manifest, then the files. Only regular
files and directories with relative, non-escaping names are accepted; links, devices, fifos,
absolute names and ``..`` are rejected before anything is written. Files are written by this
code (never tarfile.extract), so tar metadata (owners, links, times) cannot leak in.
"""

from __future__ import annotations

import json
import os
import posixpath
import shutil
import tarfile

from ansible_collections.atp.deploy.plugins.module_utils.release_manifest import (
    MANIFEST_NAME,
)

CHUNK = 1024 * 1024


class UnsafeArchive(Exception):
    """The archive is unsafe or malformed; str() is a one-line reason."""


def normalize_name(name: str) -> str:
    """Strip leading './' segments and trailing '/' of a tar member name."""
    while name.startswith("./"):
        name = name[2:]
    return name.rstrip("/")


def member_problem(member: tarfile.TarInfo) -> str | None:
    """Why this member must not be extracted, or None when it is a safe file/dir."""
    raw = member.name
    name = normalize_name(raw)
    if member.issym() or member.islnk():
        return f"link member {raw!r} -> {member.linkname!r} (links are not allowed)"
    if member.ischr() or member.isblk():
        return f"device member {raw!r} (devices are not allowed)"
    if member.isfifo():
        return f"fifo member {raw!r} (fifos are not allowed)"
    if not (member.isfile() or member.isdir()):
        return f"member {raw!r} of unsupported type {member.type!r}"
    if raw.startswith(("/", "\\")) or (len(raw) > 1 and raw[1] == ":"):
        return f"absolute path {raw!r}"
    if "\\" in raw or "\x00" in raw:
        return f"unsafe characters in {raw!r}"
    if not name or name == ".":
        return None if member.isdir() else f"empty name {raw!r}"
    parts = name.split("/")
    if any(part == ".." for part in parts):
        return f"path escapes the release directory {raw!r}"
    if any(part in ("", ".") for part in parts):
        return f"non-canonical path {raw!r}"
    return None


def _within(root: str, path: str) -> bool:
    root = os.path.realpath(root)
    return os.path.commonpath([root, os.path.realpath(path)]) == root


def _target(dest: str, name: str) -> str:
    path = os.path.join(dest, *name.split("/"))
    if not _within(dest, os.path.dirname(path)):
        raise UnsafeArchive(f"member {name!r} resolves outside {dest}")
    return path


def _write_file(tar: tarfile.TarFile, member: tarfile.TarInfo, path: str, mode: int) -> None:
    source = tar.extractfile(member)
    if source is None:
        raise UnsafeArchive(f"member {member.name!r} has no data")
    if os.path.lexists(path):
        raise UnsafeArchive(f"duplicate member {member.name!r}")
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    with os.fdopen(fd, "wb") as handle:
        shutil.copyfileobj(source, handle, CHUNK)
        os.fchmod(handle.fileno(), mode)


def _file_mode(manifest: dict, name: str, member: tarfile.TarInfo) -> int:
    entry = (manifest.get("files") or {}).get(name) or {}
    mode = entry.get("mode")
    if isinstance(mode, int) and 0 <= mode <= 0o777:
        return mode
    return 0o755 if member.mode & 0o111 else 0o644


def extract_release(archive: str, dest: str, forbidden: tuple[str, ...] = ()) -> dict:
    """Extract archive into the (new, empty) directory dest; return the manifest dict.

    forbidden: top-level names that must not be in the archive (e.g. ``.env``).
    Raises UnsafeArchive (one-line reason) or OSError / tarfile.TarError.
    """
    manifest = None
    try:
        with tarfile.open(archive, "r:gz") as tar:
            for index, member in enumerate(tar):
                problem = member_problem(member)
                if problem:
                    raise UnsafeArchive(problem)
                name = normalize_name(member.name)
                if index == 0:
                    if name != MANIFEST_NAME or not member.isfile():
                        raise UnsafeArchive(
                            f"first member is {member.name!r}, expected {MANIFEST_NAME!r}"
                        )
                    manifest = _read_manifest(tar, member)
                elif name == MANIFEST_NAME:
                    raise UnsafeArchive(f"second {MANIFEST_NAME} member")
                if not name or name == ".":
                    continue
                if name.split("/")[0] in forbidden:
                    raise UnsafeArchive(f"archive contains {name!r}, which must not be shipped")
                path = _target(dest, name)
                if member.isdir():
                    os.makedirs(path, mode=0o755, exist_ok=True)
                    continue
                os.makedirs(os.path.dirname(path), mode=0o755, exist_ok=True)
                _write_file(tar, member, path, _file_mode(manifest, name, member))
    except (tarfile.TarError, EOFError) as exc:
        raise UnsafeArchive(f"not a readable tar.gz: {exc}") from exc
    if manifest is None:
        raise UnsafeArchive(f"archive is empty, expected {MANIFEST_NAME!r} first")
    return manifest


def _read_manifest(tar: tarfile.TarFile, member: tarfile.TarInfo) -> dict:
    source = tar.extractfile(member)
    raw = source.read() if source is not None else b""
    try:
        manifest = json.loads(raw.decode("utf-8"))
    except ValueError as exc:
        raise UnsafeArchive(f"{MANIFEST_NAME} is not valid JSON: {exc}") from exc
    if not isinstance(manifest, dict) or not isinstance(manifest.get("files"), dict):
        raise UnsafeArchive(f"{MANIFEST_NAME} has no 'files' mapping")
    for name in manifest["files"]:
        if posixpath.isabs(name) or ".." in name.split("/"):
            raise UnsafeArchive(f"{MANIFEST_NAME} lists unsafe path {name!r}")
    return manifest
