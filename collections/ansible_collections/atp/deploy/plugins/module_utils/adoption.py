# Copyright: atp.deploy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Adopt a hand-managed checkout as "release zero", atomically (stdlib only, runs on the instance).

The checkout at app_root (a git clone run by hand with ``docker compose up``) becomes a release
like any other, so the first managed deploy can roll back to it through the normal path:

1. beside app_root, ``<app_root>.adopting-<stamp>/`` is built: ``releases/<zero id>/`` (a copy
   of the checkout's files without .git, env files, secrets/ and caches, plus a manifest),
   ``shared/`` (the checkout's env files, 0600, and secrets/; missing env files created empty),
   the env links of release zero, ``current -> releases/<zero id>``, a deploy.log line and the
   deploy lock;
2. the running backend's image is tagged ``<image_repo>:<zero id>`` (no build to re-activate it);
3. the new layout and the checkout swap places in one ``renameat2(RENAME_EXCHANGE)`` (or two
   renames, undone on failure) and the checkout is kept whole at ``<app_root>.pre-ansible-<stamp>``.

A failure before the swap removes the staging dir and leaves app_root exactly as it was.
"""

from __future__ import annotations

import ctypes
import errno
import fnmatch
import json
import os
import shutil
import stat
from datetime import datetime, timezone

from ansible_collections.atp.deploy.plugins.module_utils import (
    deploy_lock,
    env_layout,
    fsutil,
    release_model,
    release_plan,
)
from ansible_collections.atp.deploy.plugins.module_utils.release_manifest import (
    MANIFEST_NAME,
    build_manifest,
    content_hash,
)

# Not release content (as source_preflight's default excludes), matched against every path
# component; names ending in .example are never excluded by a wildcard.
EXCLUDES = (".git", "__pycache__", "*.pyc", "*.pyo", ".pytest_cache", ".mypy_cache",
            ".ruff_cache", ".venv", "venv", "node_modules", ".DS_Store", ".env", ".env.*",
            "secrets", "*.swp", deploy_lock.LOCK_NAME)
COMPOSE_FILE = "docker-compose.yml"
FREE_MARGIN_MB = 64
ZERO_OPERATOR = "hand-managed"
AT_FDCWD = -100
RENAME_EXCHANGE = 2
# errno values meaning "this kernel/filesystem cannot exchange": fall back to two renames.
NO_EXCHANGE = frozenset({errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP, errno.EPERM})


class AdoptionError(Exception):
    """Adoption failed; app_root is as it was (before the swap) -- str() is the one-line reason."""


def _excluded(name: str) -> bool:
    for pattern in EXCLUDES:
        if name == pattern:
            return True
        if any(c in pattern for c in "*?[") and not name.endswith(".example") and \
                fnmatch.fnmatchcase(name, pattern):
            return True
    return False


def select_files(root: str, skip: set[str] | frozenset[str] = frozenset()
                 ) -> tuple[list[str], list[str], list[str]]:
    """(files, symlinks, dirs) of the checkout that release zero holds, as sorted relpaths.

    Excluded names (EXCLUDES) and the relpaths in skip (the env files that go to shared/) are
    left out; sockets, fifos and devices are ignored.
    """
    files, links, dirs = [], [], []
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        rel_dir = os.path.relpath(dirpath, root)
        prefix = "" if rel_dir == "." else rel_dir.replace(os.sep, "/") + "/"
        keep_dirs = []
        for name in sorted(dirnames):
            rel = prefix + name
            if _excluded(name) or rel in skip:
                continue
            if os.path.islink(os.path.join(dirpath, name)):
                links.append(rel)
                continue
            keep_dirs.append(name)
            dirs.append(rel)
        dirnames[:] = keep_dirs
        for name in sorted(filenames):
            rel = prefix + name
            if _excluded(name) or rel in skip:
                continue
            mode = os.lstat(os.path.join(dirpath, name)).st_mode
            if stat.S_ISLNK(mode):
                links.append(rel)
            elif stat.S_ISREG(mode):
                files.append(rel)
    return sorted(files), sorted(links), dirs


def carried_env_files(root: str, env_files: list[str]) -> list[str]:
    """The env files of the checkout that move into shared/: .env, .env.aws, the given ones and
    every env_file of the checkout's own compose file, where they exist as files (not secrets/,
    which moves whole)."""
    candidates = list(env_layout.DEFAULT_ENV_FILES) + list(env_files)
    try:
        with open(os.path.join(root, COMPOSE_FILE), encoding="utf-8", errors="replace") as fh:
            candidates += env_layout.scan_compose_env_files(fh.read())
    except OSError:
        pass
    rels, _problems = env_layout.split_env_paths(candidates)
    return [rel for rel in rels if not env_layout.under_secrets(rel)
            and os.path.isfile(os.path.join(root, *rel.split("/")))]


def read_git_sha(root: str) -> str | None:
    """The commit the checkout's .git HEAD names (loose or packed ref), or None."""
    git = os.path.join(root, ".git")
    try:
        with open(os.path.join(git, "HEAD"), encoding="utf-8") as fh:
            head = fh.read().strip()
    except OSError:
        return None
    if not head.startswith("ref:"):
        return head if _is_sha(head) else None
    ref = head[4:].strip()
    try:
        with open(os.path.join(git, *ref.split("/")), encoding="utf-8") as fh:
            sha = fh.read().strip()
        return sha if _is_sha(sha) else None
    except OSError:
        pass
    try:
        with open(os.path.join(git, "packed-refs"), encoding="utf-8") as fh:
            for line in fh:
                parts = line.split()
                if len(parts) == 2 and parts[1] == ref and _is_sha(parts[0]):
                    return parts[0]
    except OSError:
        pass
    return None


def _is_sha(text: str) -> bool:
    return len(text) == 40 and all(c in "0123456789abcdef" for c in text)


def zero_record(zero_id: str, chash: str, git_sha: str | None, image_id: str | None,
                aside: str, when: str) -> dict:
    """The deploy.log line of release zero: a good release, so rollback can pick it."""
    return {"release": zero_id, "result": "ok", "event": "adopted", "adopted_from": aside,
            "git_sha": git_sha or "unknown", "content_hash": chash,
            "image_id": image_id or "unknown", "operator": ZERO_OPERATOR,
            "started": when, "finished": when, "error": ""}


def renameat2_exchange(src: str, dst: str) -> None:
    """Swap two paths atomically (Linux renameat2 RENAME_EXCHANGE); OSError when unsupported."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        func = libc.renameat2
    except (OSError, AttributeError) as exc:
        raise OSError(errno.ENOSYS, "renameat2 is not available") from exc
    func.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p,
                     ctypes.c_uint]
    func.restype = ctypes.c_int
    if func(AT_FDCWD, os.fsencode(src), AT_FDCWD, os.fsencode(dst), RENAME_EXCHANGE) != 0:
        code = ctypes.get_errno()
        raise OSError(code, os.strerror(code), src)


def swap_in(staging: str, app_root: str, aside: str, exchange=renameat2_exchange) -> str:
    """Put staging at app_root and the old app_root at aside; returns where the old one is.

    With an atomic exchange app_root is never missing. Without one (EINVAL, ENOSYS...): rename
    app_root to aside, staging to app_root, and rename aside back if the second rename fails.
    """
    if exchange is not None:
        try:
            exchange(staging, app_root)
        except OSError as exc:
            if exc.errno not in NO_EXCHANGE:
                raise
        else:
            try:
                os.rename(staging, aside)
            except OSError:
                return staging  # the checkout stays whole under the staging name
            return aside
    os.rename(app_root, aside)
    try:
        os.rename(staging, app_root)
    except BaseException:
        os.rename(aside, app_root)
        raise
    return aside


def _copy_owned(src: str, dest: str) -> None:
    st = os.lstat(src)
    shutil.copy2(src, dest, follow_symlinks=False)
    os.lchown(dest, st.st_uid, st.st_gid)


def _copy_tree_owned(src: str, dest: str) -> None:
    """copytree keeping modes and owners; symlinks stay symlinks."""
    shutil.copytree(src, dest, symlinks=True)
    for dirpath, dirnames, filenames in os.walk(src, followlinks=False):
        rel = os.path.relpath(dirpath, src)
        target_dir = dest if rel == "." else os.path.join(dest, rel)
        st = os.lstat(dirpath)
        os.lchown(target_dir, st.st_uid, st.st_gid)
        for name in dirnames + filenames:
            st = os.lstat(os.path.join(dirpath, name))
            os.lchown(os.path.join(target_dir, name), st.st_uid, st.st_gid)


def _sizes_mb(root: str, rels: list[str]) -> int:
    total = sum(os.lstat(os.path.join(root, *r.split("/"))).st_size for r in rels)
    return total // (1024 * 1024) + 1


class Adopter:
    """One adoption. ``tagger(ref) -> image id or None`` tags the running backend's image
    (raises RuntimeError when docker fails). ``hook(step)`` runs before each step (tests inject
    failures there); ``exchange`` is the atomic swap (None forces the two-rename fallback)."""

    STEPS = ("staging", "release", "shared", "links", "image", "swap")

    def __init__(self, app_root: str, uid: int, gid: int, env_files: list[str],
                 image_repo: str, tagger, next_release_id: str | None = None,
                 now: datetime | None = None, hook=None, exchange=renameat2_exchange):
        self.app_root = os.path.abspath(app_root)
        self.uid, self.gid = uid, gid
        self.env_files = list(env_files)
        self.image_repo = image_repo
        self.tagger = tagger
        self.now = now or datetime.now(timezone.utc)  # noqa: UP017
        self.next_release_id = next_release_id
        self.hook = hook or (lambda _step: None)
        self.exchange = exchange
        self.result: dict = {}

    # ------------------------------------------------------------------ planning (read only)

    def plan(self) -> dict:
        """What adoption would do (check mode shows it): carried env files, files, free space."""
        carried = carried_env_files(self.app_root, self.env_files)
        files, links, dirs = select_files(self.app_root, set(carried))
        secrets = os.path.join(self.app_root, env_layout.SECRETS_NAME)
        return {"carried": carried, "files": files, "links": links, "dirs": dirs,
                "secrets": os.path.isdir(secrets) and not os.path.islink(secrets)}

    # ------------------------------------------------------------------ doing

    def run(self) -> dict:
        plan = self.plan()
        parent = os.path.dirname(self.app_root)
        need = _sizes_mb(self.app_root, plan["files"]) + FREE_MARGIN_MB
        free = fsutil.free_mb(parent)
        if free < need:
            raise AdoptionError(f"release zero needs about {need} MiB at {parent}, {free} MiB "
                                "free; free disk space and re-run")
        stamp = release_model.stamp(self.now)
        taken = {os.path.join(parent, n) for n in os.listdir(parent)}
        aside = release_plan.aside_path(self.app_root, stamp, taken)
        staging = release_plan.staging_path(self.app_root, stamp)
        if os.path.lexists(staging):
            shutil.rmtree(staging)  # debris of an earlier adoption that died before its swap
        try:
            zero_id = self._build(staging, plan, aside)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
        try:
            self.hook("swap")
            where = swap_in(staging, self.app_root, aside, self.exchange)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
        lock = os.path.join(where, deploy_lock.LOCK_NAME)
        if os.path.isfile(lock) and not os.path.islink(lock):
            os.unlink(lock)  # the copy in app_root is the live one
        self.result.update(adopted_from=where, release_id=zero_id)
        return self.result

    def _build(self, staging: str, plan: dict, aside: str) -> str:
        st = os.stat(self.app_root)
        self.hook("staging")
        os.mkdir(staging, 0o700)
        os.chmod(staging, stat.S_IMODE(st.st_mode))
        os.chown(staging, st.st_uid, st.st_gid)
        releases = os.path.join(staging, "releases")
        fsutil.makedirs_owned(releases, 0o755, self.uid, self.gid)
        work = os.path.join(releases, ".zero" + release_model.PARTIAL_SUFFIX)

        self.hook("release")
        os.mkdir(work, 0o755)
        os.chown(work, self.uid, self.gid)
        for rel in plan["dirs"]:
            src = os.path.join(self.app_root, *rel.split("/"))
            dst = os.path.join(work, *rel.split("/"))
            dst_st = os.lstat(src)
            os.mkdir(dst, 0o700)
            os.chmod(dst, stat.S_IMODE(dst_st.st_mode) | 0o700)
            os.chown(dst, dst_st.st_uid, dst_st.st_gid)
        for rel in plan["files"] + plan["links"]:
            _copy_owned(os.path.join(self.app_root, *rel.split("/")),
                        os.path.join(work, *rel.split("/")))
        manifest = build_manifest(work, plan["files"])
        chash = content_hash(manifest)
        with open(os.path.join(work, MANIFEST_NAME), "w", encoding="utf-8") as fh:
            json.dump(manifest, fh, sort_keys=True)
        os.chown(os.path.join(work, MANIFEST_NAME), self.uid, self.gid)
        zero_stamp = release_plan.release_zero_stamp(self.now, self.next_release_id)
        # Release zero links shared/ directly (the layout before env sets): its hash part is
        # the code hash; the first deploy moves its env into an env set.
        zero_id = release_model.make_id(
            chash, release_model.LEGACY_ENV,
            datetime.strptime(zero_stamp, release_model.STAMP_FORMAT))
        zero = os.path.join(releases, zero_id)
        os.rename(work, zero)

        self.hook("shared")
        shared = os.path.join(staging, "shared")
        fsutil.makedirs_owned(shared, env_layout.SHARED_DIR_MODE, self.uid, self.gid)
        for rel in plan["carried"]:
            src = os.path.join(self.app_root, *rel.split("/"))
            with open(src, "rb") as fh:
                data = fh.read()
            dest = os.path.join(shared, *rel.split("/"))
            parent = os.path.dirname(dest)
            if not os.path.isdir(parent):
                fsutil.makedirs_owned(parent, env_layout.SHARED_DIR_MODE, self.uid, self.gid,
                                      parent_mode=env_layout.SHARED_DIR_MODE)
            fsutil.atomic_write(dest, data, env_layout.ENV_MODE, self.uid, self.gid)
        if plan["secrets"]:
            _copy_tree_owned(os.path.join(self.app_root, env_layout.SECRETS_NAME),
                             os.path.join(shared, env_layout.SECRETS_NAME))
        wanted, _problems = env_layout.split_env_paths(
            list(plan["carried"]) + list(env_layout.DEFAULT_ENV_FILES) + self.env_files)
        created = env_layout.create_missing(shared, wanted, self.uid, self.gid)

        self.hook("links")
        links = list(wanted)
        if plan["secrets"] or any(env_layout.under_secrets(r) for r in wanted):
            links.append(env_layout.SECRETS_NAME)
        env_layout.make_links(zero, links, self.uid, self.gid)
        fsutil.atomic_symlink(release_model.current_link_target(zero_id),
                              os.path.join(staging, release_model.CURRENT_LINK),
                              self.uid, self.gid)
        lock = os.path.join(self.app_root, deploy_lock.LOCK_NAME)
        if os.path.isfile(lock) and not os.path.islink(lock):
            _copy_owned(lock, os.path.join(staging, deploy_lock.LOCK_NAME))

        self.hook("image")
        ref = release_model.image_ref(self.image_repo, zero_id)
        image_id = self.tagger(ref)
        when = self.now.astimezone(timezone.utc).isoformat()  # noqa: UP017
        git_sha = read_git_sha(self.app_root)
        fsutil.append_json_line(release_model.deploy_log_path(staging),
                                zero_record(zero_id, chash, git_sha, image_id, aside, when))
        fsutil.fsync_dir(staging)
        self.result = {"release_id": zero_id, "content_hash": chash, "git_sha": git_sha,
                       "image": ref if image_id else None, "image_id": image_id,
                       "files": len(plan["files"]), "env_files": plan["carried"],
                       "env_created": created, "secrets": plan["secrets"]}
        return zero_id
