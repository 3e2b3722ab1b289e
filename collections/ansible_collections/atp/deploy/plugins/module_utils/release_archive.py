# Copyright: (c) 2025, ATP deploy
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Controller side: select the release files and write a deterministic tar.gz.

What is shipped: in a git checkout the tracked files plus the untracked files git does not
ignore (gitignored files never are); outside git every file. From those, three kinds are left
out: noise (``excludes``: caches, virtualenvs, ``.git``...), and ALWAYS, whatever ``excludes``
says, secret files (``SECRET_EXCLUDES``: env files, private keys and their backup copies,
credential files, secret dirs; ``SECRET_PATH_EXCLUDES``: ``.docker/config.json``; named in one
warning by the caller, never read). Public keys (``*.pub``) and ``*.example`` templates are not
secrets and are shipped.

Symlinks: one that resolves to a regular file inside the checkout is shipped as a copy of
that file (the instance unpacks regular files only); one that points outside the checkout, to a
directory, to nothing or to an excluded file is refused, and so is any shipped path that runs
through a symlinked directory (a tracked ``lib/x.py`` whose ``lib`` became a link, gitignored
or not): nothing from outside the checkout ever enters the archive.

Size caps (:func:`select_release`): the files shipped may total at most ``max_total_bytes``
and none may exceed ``max_file_bytes``; the error names the largest files.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import stat
import tarfile
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from fnmatch import fnmatchcase

from ansible_collections.atp.deploy.plugins.module_utils.git_util import (
    git_output,
    is_work_tree,
    split_z,
)
from ansible_collections.atp.deploy.plugins.module_utils.release_manifest import (
    MANIFEST_NAME,
    build_manifest,
    content_hash,
    to_posix,
)

DEFAULT_EXCLUDES = (
    ".git",
    "__pycache__",
    "*.pyc",
    "*.pyo",
    ".pytest_cache",
    ".mypy_cache",
    ".ruff_cache",
    ".venv",
    "venv",
    "node_modules",
    ".DS_Store",
    ".env",
    ".env.*",
    "secrets",
    "*.swp",
)
# Never shipped, whatever the excludes (matched case-insensitively against every path
# component; ``*.example`` and ``*.pub`` names are spared by the wildcard patterns).
SECRET_EXCLUDES = (
    # env files (.env, .env.aws, .env.bak, .env.local.bak2...) and direnv
    ".env", ".env.*", ".envrc", ".envrc.*",
    # directories of secrets and credentials
    "secrets", ".secrets", ".aws", ".ssh", ".gnupg",
    # ssh private keys and their usual copies (id_rsa.bak, id_rsa~, id_ed25519_deploy); .pub is
    # public
    "id_rsa", "id_rsa[._~-]*", "id_dsa", "id_dsa[._~-]*", "id_ecdsa", "id_ecdsa[._~-]*",
    "id_ed25519", "id_ed25519[._~-]*",
    # keys, certificates with keys, key stores, password databases, and backup copies of
    # keys (server.pem.bak, tls.key.old, tls.key~); .pub is public
    "*.pem", "*.key", "*.p12", "*.pfx", "*.jks", "*.keystore", "*.ppk", "*.kdbx",
    # (backup suffixes only: a name like i18n.key.json is code, not a key)
    *(f"*.{ext}{suffix}" for ext in ("pem", "key")
      for suffix in ("~", ".bak*", ".old*", ".orig*", ".save*", ".backup*", ".prev*", ".[0-9]*")),
    # tool credentials
    ".netrc", "_netrc", ".git-credentials", ".npmrc", ".pypirc", ".pgpass", ".htpasswd",
    ".dockercfg", ".dockercfg.*",
    # cloud credential files and terraform state (holds secrets in clear)
    "credentials.json", "client_secret*.json", "*service-account*.json",
    "*service_account*.json", "*.tfstate", "*.tfstate.*",
)
# Secrets named by several components, matched against consecutive components anywhere in the
# path (same rules): a whole .docker/ directory can be build files, its config.json is the
# docker client's registry credentials.
SECRET_PATH_EXCLUDES = (
    ".docker/config.json", ".docker/config.json.*",
)
SPARED_SUFFIXES = (".example", ".pub")
MIB = 1024 * 1024
ARCHIVE_MTIME = 946684800  # 2000-01-01T00:00:00Z
EXAMPLE_SUFFIX = ".example"

_CHUNK_SIZE = 1024 * 1024
_WILDCARDS = ("*", "?", "[")


class ReleaseArchiveError(ValueError):
    """One-line, user-facing problem with the release source or archive."""


def _spared(name: str, pattern: str, suffixes: tuple[str, ...]) -> bool:
    """A wildcard pattern never takes ``*.example`` (templates) or ``*.pub`` names."""
    return (any(char in pattern for char in _WILDCARDS)
            and any(name.endswith(sfx) and not pattern.endswith(sfx) for sfx in suffixes))


def _component_excluded(name: str, excludes: tuple[str, ...] | list[str]) -> bool:
    """Match one path component; ``*.example`` names are spared by wildcard patterns."""
    return any(fnmatchcase(name, pattern) and not _spared(name, pattern, (EXAMPLE_SUFFIX,))
               for pattern in excludes)


def _component_secret(name: str) -> bool:
    """One path component names a secret (case-insensitive)."""
    lowered = name.lower()
    return any(fnmatchcase(lowered, pattern) and not _spared(lowered, pattern, SPARED_SUFFIXES)
               for pattern in SECRET_EXCLUDES)


def _path_secret(parts: list[str]) -> bool:
    """Consecutive components of ``parts`` match a ``SECRET_PATH_EXCLUDES`` entry."""
    for entry in SECRET_PATH_EXCLUDES:
        patterns = entry.split("/")
        for start in range(len(parts) - len(patterns) + 1):
            window = [part.lower() for part in parts[start:start + len(patterns)]]
            if all(fnmatchcase(name, pattern) and not _spared(name, pattern, SPARED_SUFFIXES)
                   for name, pattern in zip(window, patterns, strict=True)):
                return True
    return False


def is_secret(relpath: str) -> bool:
    """True if any component of the posix ``relpath`` matches ``SECRET_EXCLUDES``, or
    consecutive components match ``SECRET_PATH_EXCLUDES``."""
    parts = [part for part in relpath.split("/") if part]
    return any(_component_secret(part) for part in parts) or _path_secret(parts)


def is_noise(relpath: str, excludes: tuple[str, ...] | list[str] = DEFAULT_EXCLUDES) -> bool:
    """True if any component of the posix ``relpath`` matches an ``excludes`` pattern."""
    return any(_component_excluded(part, excludes) for part in relpath.split("/") if part)


def is_excluded(relpath: str, excludes: tuple[str, ...] | list[str] = DEFAULT_EXCLUDES) -> bool:
    """True if ``relpath`` is never shipped: a secret (always) or matched by ``excludes``."""
    return is_secret(relpath) or is_noise(relpath, excludes)


def _skipped(relpath: str, excludes: tuple[str, ...] | list[str]) -> bool:
    """Noise is skipped silently; secrets go on to be named (a secret dir is walked for that)."""
    return is_noise(relpath, excludes) and not is_secret(relpath)


def _join_rel(rel_dir: str, name: str) -> str:
    """Join a walk-relative directory and a name as a posix relpath."""
    return name if rel_dir in ("", ".") else f"{to_posix(rel_dir)}/{name}"


def _walk_candidates(root: str, excludes: tuple[str, ...] | list[str]) -> Iterator[str]:
    """Yield relpaths of files (and symlinked dirs) under ``root`` without following links."""
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        rel_dir = os.path.relpath(dirpath, root)
        keep = []
        for name in dirnames:
            rel = _join_rel(rel_dir, name)
            if _skipped(rel, excludes):
                continue
            if os.path.islink(os.path.join(dirpath, name)):
                yield rel
            else:
                keep.append(name)
        dirnames[:] = sorted(keep)
        for name in filenames:
            yield _join_rel(rel_dir, name)


def _git_candidates(
    root: str, prefix: str, excludes: tuple[str, ...] | list[str]
) -> Iterator[str]:
    """Yield tracked + untracked-not-ignored relpaths; descend into nested repos."""
    listing = git_output(root, "ls-files", "-z", "--cached", "--others", "--exclude-standard")
    for rel in split_z(listing):
        rel = rel.rstrip("/")
        full_rel = prefix + rel
        if _skipped(full_rel, excludes):
            continue
        path = os.path.join(root, rel)
        if os.path.isdir(path) and not os.path.islink(path):
            yield from _nested_candidates(path, full_rel + "/", excludes)
        else:
            yield full_rel


def _nested_candidates(
    path: str, prefix: str, excludes: tuple[str, ...] | list[str]
) -> Iterator[str]:
    """Files of a submodule or nested repository directory."""
    if os.path.lexists(os.path.join(path, ".git")):
        yield from _git_candidates(path, prefix, excludes)
        return
    for rel in _walk_candidates(path, excludes):
        yield prefix + rel


def _inside(root_real: str, path: str) -> bool:
    """True if the resolved ``path`` is ``root_real`` or below it."""
    return path == root_real or path.startswith(root_real.rstrip(os.sep) + os.sep)


def _check_symlink(
    root_real: str, rel: str, excludes: tuple[str, ...] | list[str]
) -> None:
    """Accept a symlink only if it resolves to a regular, non-excluded file inside root."""
    path = os.path.join(root_real, *rel.split("/"))
    target = os.path.realpath(path)
    hint = "replace it with a regular file or remove it (gitignore it when untracked)"
    if not _inside(root_real, target):
        raise ReleaseArchiveError(
            f"symlink {rel} points outside the source tree ({os.readlink(path)}, resolving to "
            f"{target}): nothing from outside the checkout is shipped; {hint}"
        )
    if not os.path.exists(target):
        raise ReleaseArchiveError(f"symlink {rel} is broken (its target does not exist): {hint}")
    if not os.path.isfile(target):
        raise ReleaseArchiveError(
            f"symlink {rel} points to a directory or special file, which cannot be archived: {hint}"
        )
    target_rel = to_posix(os.path.relpath(target, root_real))
    if target_rel == MANIFEST_NAME or is_excluded(target_rel, excludes):
        raise ReleaseArchiveError(f"symlink {rel} points to excluded file {target_rel}: {hint}")


def _linked_parent(root_real: str, rel: str) -> str | None:
    """The first parent directory of ``rel`` that is a symlink (posix relpath), else None."""
    parts = rel.split("/")[:-1]
    for depth in range(1, len(parts) + 1):
        if os.path.islink(os.path.join(root_real, *parts[:depth])):
            return "/".join(parts[:depth])
    return None


def _check_parents(root_real: str, rel: str) -> None:
    """Refuse a path that runs through a symlinked directory (e.g. a tracked lib/x.py whose
    lib/ was replaced by a link, gitignored or not): the archive never follows such a link."""
    link = _linked_parent(root_real, rel)
    if link is None:
        return
    path = os.path.join(root_real, *link.split("/"))
    target = os.path.realpath(path)
    where = "inside the checkout" if _inside(root_real, target) else "OUTSIDE the checkout"
    raise ReleaseArchiveError(
        f"{rel} is reached through the symlinked directory {link} ({os.readlink(path)}, "
        f"{where}): the archive never follows a directory link; put the real directory at "
        f"{link} or untrack what git still lists below it (git rm -r --cached {link})"
    )


def _accept(root_real: str, rel: str, excludes: tuple[str, ...] | list[str]) -> bool:
    """Decide whether ``rel`` is shipped; raise for entries that cannot be archived."""
    _check_parents(root_real, rel)
    try:
        mode = os.lstat(os.path.join(root_real, *rel.split("/"))).st_mode
    except FileNotFoundError:
        return False  # tracked in git but deleted in the work tree
    if stat.S_ISLNK(mode):
        _check_symlink(root_real, rel, excludes)
        return True
    if stat.S_ISREG(mode):
        return True
    if stat.S_ISDIR(mode):
        return False
    raise ReleaseArchiveError(
        f"{rel} is not a regular file (socket, fifo or device): remove it or add it to the excludes"
    )


@dataclass
class Selection:
    """The files to ship, the secret files left out (names only) and the input size."""

    files: list[str]
    secrets: list[str] = field(default_factory=list)
    sizes: dict[str, int] = field(default_factory=dict)

    @property
    def total_bytes(self) -> int:
        """Bytes of all shipped files (before compression)."""
        return sum(self.sizes.values())


def _mib(size: int) -> str:
    """``300.0 MiB``."""
    return f"{size / MIB:.1f} MiB"


def _largest(sizes: dict[str, int], count: int = 5) -> str:
    """``a (300.0 MiB), b (60.2 MiB)``: the biggest files first."""
    ranked = sorted(sizes.items(), key=lambda item: (-item[1], item[0]))[:count]
    return ", ".join(f"{rel} ({_mib(size)})" for rel, size in ranked)


_SIZE_FIX = ("remove them from the checkout (or from git: git rm --cached <file>, then add it "
             "to .gitignore)")


def size_problem(sizes: dict[str, int], max_total_bytes: int | None = None,
                 max_file_bytes: int | None = None) -> str | None:
    """One line when a file or the whole release is over its cap (None when within)."""
    if max_file_bytes is not None:
        big = {rel: size for rel, size in sizes.items() if size > max_file_bytes}
        if big:
            return (
                f"{len(big)} file(s) larger than deploy_archive_max_file_mb "
                f"({_mib(max_file_bytes)}): {_largest(big)}: a release holds the app, not its "
                f"data; {_SIZE_FIX}, or raise -e deploy_archive_max_file_mb=<MiB>"
            )
    total = sum(sizes.values())
    if max_total_bytes is not None and total > max_total_bytes:
        return (
            f"the release would ship {_mib(total)} in {len(sizes)} files, more than "
            f"deploy_archive_max_mb ({_mib(max_total_bytes)}); largest: {_largest(sizes)}: "
            f"{_SIZE_FIX}, or raise -e deploy_archive_max_mb=<MiB>"
        )
    return None


def secrets_warning(secrets: list[str], shown: int = 5) -> str | None:
    """One warning line naming the secret files left out (paths only), None when none."""
    if not secrets:
        return None
    names = ", ".join(secrets[:shown])
    more = f" and {len(secrets) - shown} more" if len(secrets) > shown else ""
    return (
        f"{len(secrets)} secret file(s) in the checkout left out of the release archive (never "
        f"shipped, never read): {names}{more}; the instance's env comes from deploy_env / "
        "deploy_env_aws: list them in .gitignore (git rm --cached those that are tracked)"
    )


def select_release(
    root: str,
    excludes: tuple[str, ...] | list[str] = DEFAULT_EXCLUDES,
    max_total_bytes: int | None = None,
    max_file_bytes: int | None = None,
) -> Selection:
    """The files to ship from ``root`` (git-aware), the secrets left out, sizes within caps.

    ReleaseArchiveError (one line) for a symlink that leaves the checkout, a path through a
    symlinked directory, a special file, or a file / release over its size cap.
    """
    root_real = os.path.realpath(root)
    if not os.path.isdir(root_real):
        raise ReleaseArchiveError(f"source directory {root} does not exist or is not a directory")
    excludes = tuple(excludes)
    if is_work_tree(root_real):
        candidates = _git_candidates(root_real, "", excludes)
    else:
        candidates = _walk_candidates(root_real, excludes)
    selected, secrets = set(), set()
    for rel in candidates:
        if rel == MANIFEST_NAME:
            continue
        if is_secret(rel):
            if os.path.lexists(os.path.join(root_real, *rel.split("/"))):
                secrets.add(rel)
            continue
        if is_noise(rel, excludes):
            continue
        if _accept(root_real, rel, excludes):
            selected.add(rel)
    files = sorted(selected)
    sizes = {rel: os.stat(os.path.join(root_real, *rel.split("/"))).st_size for rel in files}
    problem = size_problem(sizes, max_total_bytes, max_file_bytes)
    if problem:
        raise ReleaseArchiveError(problem)
    return Selection(files=files, secrets=sorted(secrets), sizes=sizes)


def select_files(root: str, excludes: tuple[str, ...] | list[str] = DEFAULT_EXCLUDES) -> list[str]:
    """Return the sorted posix relpaths to ship from ``root`` (git-aware, excludes applied)."""
    return select_release(root, excludes).files


def _validate_relpath(root_real: str, rel: str) -> None:
    """Reject unsafe relpaths and anything that is not a regular file inside root."""
    parts = rel.split("/")
    if rel.startswith("/") or any(part in ("", ".", "..") for part in parts):
        raise ReleaseArchiveError(f"unsafe path in release file list: {rel!r}")
    if rel == MANIFEST_NAME:
        raise ReleaseArchiveError(f"{MANIFEST_NAME} is reserved for the release manifest")
    if is_secret(rel):
        raise ReleaseArchiveError(f"{rel} is a secret file and is never archived")
    if not _accept(root_real, rel, ()):
        raise ReleaseArchiveError(f"{rel} does not exist or is not a regular file")


def _tarinfo(name: str, size: int, mode: int) -> tarfile.TarInfo:
    """A normalized regular-file TarInfo (fixed mtime/owner)."""
    info = tarfile.TarInfo(name)
    info.type = tarfile.REGTYPE
    info.size = size
    info.mode = mode
    info.mtime = ARCHIVE_MTIME
    info.uid = info.gid = 0
    info.uname = info.gname = "root"
    return info


class _HashingReader:
    """File wrapper that hashes everything read through it."""

    def __init__(self, handle: io.BufferedReader) -> None:
        self._handle = handle
        self.digest = hashlib.sha256()

    def read(self, size: int = -1) -> bytes:
        """Read and hash."""
        data = self._handle.read(size)
        self.digest.update(data)
        return data


def _add_file(tar: tarfile.TarFile, root_real: str, rel: str, entry: dict) -> None:
    """Append one file, failing if it changed since the manifest was built."""
    changed = ReleaseArchiveError(f"{rel} changed while the release archive was being built")
    with open(os.path.join(root_real, *rel.split("/")), "rb") as handle:
        if os.fstat(handle.fileno()).st_size != entry["size"]:
            raise changed
        reader = _HashingReader(handle)
        tar.addfile(_tarinfo(rel, entry["size"], entry["mode"]), reader)
        if handle.read(1) or reader.digest.hexdigest() != entry["sha256"]:
            raise changed


def manifest_bytes(manifest: dict) -> bytes:
    """Serialized manifest as stored in the archive."""
    return (json.dumps(manifest, sort_keys=True, indent=1) + "\n").encode("utf-8")


def _write_archive(raw: io.BufferedWriter, root_real: str, manifest: dict) -> None:
    """Write manifest + files as a deterministic gzip'd PAX tar into ``raw``."""
    with (
        gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0, compresslevel=9) as gz,
        tarfile.open(fileobj=gz, mode="w", format=tarfile.PAX_FORMAT) as tar,
    ):
        data = manifest_bytes(manifest)
        tar.addfile(_tarinfo(MANIFEST_NAME, len(data), 0o644), io.BytesIO(data))
        for rel in sorted(manifest["files"]):
            _add_file(tar, root_real, rel, manifest["files"][rel])


def _sha256_file(path: str) -> tuple[str, int]:
    """(sha256 hex, size) of a file."""
    digest = hashlib.sha256()
    size = 0
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(_CHUNK_SIZE), b""):
            digest.update(chunk)
            size += len(chunk)
    return digest.hexdigest(), size


def _same_file(path: str, sha256: str, size: int) -> bool:
    """True if ``path`` is a regular file with this size and sha256."""
    if not os.path.isfile(path) or os.path.getsize(path) != size:
        return False
    return _sha256_file(path)[0] == sha256


def _checked_manifest(root_real: str, rels: list[str], manifest: dict | None) -> dict:
    """Build the manifest, or check that a precomputed one lists exactly ``rels``."""
    for rel in rels:
        _validate_relpath(root_real, rel)
    if manifest is None:
        return build_manifest(root_real, rels)
    if sorted(manifest.get("files") or {}) != rels:
        raise ReleaseArchiveError("precomputed manifest does not match the release file list")
    return manifest


def _publish(tmp_path: str, dest_path: str) -> tuple[str, int, bool]:
    """Move the temp archive into place unless an identical one exists; (sha, size, reused)."""
    sha256, size = _sha256_file(tmp_path)
    if _same_file(dest_path, sha256, size):
        os.unlink(tmp_path)
        return sha256, size, True
    os.chmod(tmp_path, 0o644)
    os.replace(tmp_path, dest_path)
    return sha256, size, False


def build_archive(
    root: str, relpaths: list[str], dest_path: str, *, manifest: dict | None = None
) -> dict:
    """Write a deterministic tar.gz of ``relpaths`` (manifest first) to ``dest_path``.

    Returns ``{"path", "sha256", "size", "file_count", "content_hash", "reused"}``;
    ``reused`` is True when an identical archive already existed at ``dest_path``.
    """
    root_real = os.path.realpath(root)
    rels = sorted({to_posix(p) for p in relpaths})
    manifest = _checked_manifest(root_real, rels, manifest)
    dest_dir = os.path.dirname(os.path.abspath(dest_path))
    os.makedirs(dest_dir, exist_ok=True)
    fd, tmp_path = tempfile.mkstemp(dir=dest_dir, prefix=".tmp-", suffix=".tar.gz")
    try:
        with os.fdopen(fd, "wb") as raw:
            _write_archive(raw, root_real, manifest)
        sha256, size, reused = _publish(tmp_path, dest_path)
    except BaseException:
        if os.path.exists(tmp_path):
            os.unlink(tmp_path)
        raise
    return {
        "path": dest_path,
        "sha256": sha256,
        "size": size,
        "file_count": len(manifest["files"]),
        "content_hash": content_hash(manifest),
        "reused": reused,
    }
