# Copyright: atp.deploy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Small filesystem helpers shared by the atp.deploy modules (stdlib only).

These run on the instance. They do one filesystem thing each and raise OSError / ValueError /
KeyError with a message; the modules turn those into one-line failures.
"""

from __future__ import annotations

import grp
import hashlib
import json
import os
import pwd
import re
import stat
import tempfile

CHUNK = 1024 * 1024

# A plain file name: no directory part, not "." or "..". Used for shared/ env files.
PLAIN_NAME_RE = re.compile(r"^[A-Za-z0-9._-]+$")


def is_plain_name(name: str) -> bool:
    """True for names like ``.env``, ``.env.aws``, ``app.env``; False for paths, ``.`` or ``..``."""
    return bool(isinstance(name, str) and PLAIN_NAME_RE.match(name)) and name not in (".", "..")


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def sha256_file(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


def nearest_existing_dir(path: str) -> str:
    """Return path itself if it is a directory, else its nearest existing ancestor directory."""
    current = os.path.abspath(path)
    while not os.path.isdir(current):
        parent = os.path.dirname(current)
        if parent == current:
            break
        current = parent
    return current


def free_mb(path: str) -> int:
    """Free space (MiB, usable by non-root) of the filesystem holding path or its nearest parent."""
    st = os.statvfs(nearest_existing_dir(path))
    return int(st.f_bavail * st.f_frsize // (1024 * 1024))


def resolve_owner(owner: str, group: str) -> tuple[int, int]:
    """Map user and group names (or numeric strings) to ids; KeyError with a clear message."""
    try:
        uid = int(owner) if str(owner).isdigit() else pwd.getpwnam(owner).pw_uid
    except KeyError:
        raise KeyError(f"user {owner!r} does not exist on the instance") from None
    try:
        gid = int(group) if str(group).isdigit() else grp.getgrnam(group).gr_gid
    except KeyError:
        raise KeyError(f"group {group!r} does not exist on the instance") from None
    return uid, gid


def makedirs_owned(path: str, mode: int, uid: int, gid: int,
                   parent_mode: int = 0o755) -> list[str]:
    """mkdir -p where every directory created gets uid:gid; path gets mode, parents parent_mode.

    Returns the directories created (outermost first); existing ones are left as they are.
    """
    missing = []
    current = os.path.abspath(path)
    while not os.path.isdir(current):
        missing.append(current)
        parent = os.path.dirname(current)
        if parent == current:
            break
        current = parent
    created = []
    for directory in reversed(missing):
        want = mode if directory == os.path.abspath(path) else parent_mode
        os.mkdir(directory, want)
        os.chmod(directory, want)
        os.chown(directory, uid, gid)
        created.append(directory)
    return created


def fsync_dir(path: str) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def atomic_write(path: str, data: bytes, mode: int, uid: int | None = None,
                 gid: int | None = None) -> None:
    """Write data to path atomically: temp file in the same dir, fsync, chmod/chown, rename."""
    directory = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=f".{os.path.basename(path)}.tmp-", dir=directory)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fchmod(handle.fileno(), mode)
            if uid is not None or gid is not None:
                os.fchown(handle.fileno(), -1 if uid is None else uid, -1 if gid is None else gid)
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.lexists(tmp):
            os.unlink(tmp)
        raise
    fsync_dir(directory)


def file_differs(path: str, data: bytes, mode: int, uid: int | None, gid: int | None) -> bool:
    """True when path is missing, not a regular file, or differs in content, mode or owner."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return True
    if not stat.S_ISREG(st.st_mode):
        return True
    if stat.S_IMODE(st.st_mode) != mode:
        return True
    if uid is not None and st.st_uid != uid:
        return True
    if gid is not None and st.st_gid != gid:
        return True
    if st.st_size != len(data):
        return True
    return sha256_file(path) != sha256_bytes(data)


def read_link_target(path: str) -> str | None:
    """The raw target of a symlink, or None when path is not a symlink."""
    if not os.path.islink(path):
        return None
    return os.readlink(path)


def atomic_symlink(target: str, link_path: str, uid: int | None = None,
                   gid: int | None = None) -> None:
    """Point link_path at target atomically (symlink under a temp name, then os.replace)."""
    if os.path.lexists(link_path) and not os.path.islink(link_path):
        raise ValueError(f"{link_path} exists and is not a symlink")
    directory = os.path.dirname(os.path.abspath(link_path))
    tmp = os.path.join(directory, f".{os.path.basename(link_path)}.tmp-{os.getpid()}")
    if os.path.lexists(tmp):
        os.unlink(tmp)
    os.symlink(target, tmp)
    try:
        if uid is not None or gid is not None:
            os.lchown(tmp, -1 if uid is None else uid, -1 if gid is None else gid)
        os.replace(tmp, link_path)
    except BaseException:
        if os.path.lexists(tmp):
            os.unlink(tmp)
        raise
    fsync_dir(directory)


def chown_tree(root: str, uid: int, gid: int) -> None:
    """chown -R without following symlinks (links themselves are lchown'ed)."""
    os.lchown(root, uid, gid)
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        for name in dirnames + filenames:
            os.lchown(os.path.join(dirpath, name), uid, gid)


def json_line(record: dict) -> str:
    """One JSON line, sorted keys, non-JSON values as str."""
    return json.dumps(record, sort_keys=True, default=str, separators=(", ", ": "))


def append_json_line(path: str, record: dict, mode: int = 0o640) -> tuple[str, bool]:
    """Append one JSON line (sorted keys) with a single write; create the file with mode.

    Returns (line, created).
    """
    line = json_line(record)
    created = not os.path.exists(path)
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, mode)
    try:
        if created:
            os.fchmod(fd, mode)
        os.write(fd, (line + "\n").encode("utf-8"))
        os.fsync(fd)
    finally:
        os.close(fd)
    return line, created
