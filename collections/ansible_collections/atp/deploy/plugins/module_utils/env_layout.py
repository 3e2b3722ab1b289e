# Copyright: atp.deploy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Where env files live on the instance: env sets under ``shared/env/<set>/``, linked into
each release (stdlib only, runs on the instance).

An env set holds every env file compose needs (``.env``, ``.env.aws``, ``.env.db``,
``config/db.env``...) for one or more releases; it is named by the hash of its content
(release_model.env_set_hash), written once (0700 dirs, 0600 files, owner of the app) and never
changed: a change of the env is a new set, and a release's links point at ITS set
(``releases/<id>/.env -> ../../shared/env/<set>/.env``), so activating a release activates its
env. Paths under ``secrets/`` are operator files, not versioned: reached through the
``secrets -> ../../shared/secrets`` link. Releases made before env sets (and release zero of an
adopted checkout) link ``shared/<path>`` directly (release_model.LEGACY_ENV); those files are
never written again and stay the merge base of the first deploy that moves to env sets.
"""

from __future__ import annotations

import json
import os
import posixpath
import re
import shutil
import time

from ansible_collections.atp.deploy.plugins.module_utils import dotenv, fsutil, release_model
from ansible_collections.atp.deploy.plugins.module_utils.release_manifest import MANIFEST_NAME

SECRETS_NAME = release_model.SECRETS_NAME
SECRETS_LINK = "../../shared/secrets"
PROXY_DIR = "proxy"  # shared/proxy: the zero-downtime proxy's files (zero_downtime.proxy_dir)
DEFAULT_ENV_FILES = (".env", ".env.aws")
LEGACY_ENV = release_model.LEGACY_ENV
ENV_MODE = 0o600
SHARED_DIR_MODE = 0o750
SET_DIR_MODE = 0o700
SET_PARTIAL_INFIX = ".partial-"
SET_PARTIAL_MAX_AGE = 3600  # seconds; writing a set never takes that long


class EnvPathError(ValueError):
    """An env file path that cannot live in shared/ (absolute, outside the app, ...)."""


def norm_env_path(path: str) -> str:
    """A compose env_file path (relative to the compose file's dir) -> normalised relpath.

    Raises EnvPathError for an absolute path, one leaving the app dir, or an empty one.
    """
    text = str(path or "").strip()
    if not text:
        raise EnvPathError("an env file path is empty")
    if text.startswith("/"):
        raise EnvPathError(f"env file {text} is an absolute path (compose reads it where it is)")
    norm = posixpath.normpath(text)
    if norm in (".", "") or norm == ".." or norm.startswith("../"):
        raise EnvPathError(f"env file {text} is outside the app dir")
    return norm


def split_env_paths(paths) -> tuple[list[str], list[str]]:
    """(normalised relpaths in order without duplicates, one-line problems of the others)."""
    seen, good, problems = set(), [], []
    for path in paths or ():
        try:
            norm = norm_env_path(path)
        except EnvPathError as exc:
            problems.append(str(exc))
            continue
        if norm not in seen:
            seen.add(norm)
            good.append(norm)
    return good, problems


def under_secrets(rel: str) -> bool:
    """The path is reached through the release's secrets -> ../../shared/secrets link."""
    return rel == SECRETS_NAME or rel.startswith(SECRETS_NAME + "/")


def link_target(rel: str, env: str = LEGACY_ENV) -> str:
    """Relative target of the link releases/<id>/<rel> into env (a set, or LEGACY_ENV)."""
    return release_model.env_link_target(rel, env)


def shipped_files(release_dir: str) -> set[str]:
    """Files the release's manifest lists (an env file among them stays release content)."""
    try:
        with open(os.path.join(release_dir, MANIFEST_NAME), encoding="utf-8") as handle:
            files = (json.load(handle) or {}).get("files") or {}
    except (OSError, ValueError, AttributeError):
        return set()
    return set(files) if isinstance(files, dict) else set()


def link_problem(release_dir: str, rel: str, shipped: frozenset | set = frozenset(),
                 env: str = LEGACY_ENV) -> str | None:
    """None when the release reaches env's <rel> at rel (or ships rel itself), else why not."""
    if rel in shipped:
        return None
    if under_secrets(rel):
        target = fsutil.read_link_target(os.path.join(release_dir, SECRETS_NAME))
        return None if target == SECRETS_LINK else f"{SECRETS_NAME} is not linked to shared/"
    target = fsutil.read_link_target(os.path.join(release_dir, rel))
    if target == link_target(rel, env):
        return None
    where = f"shared/{rel}" if env == LEGACY_ENV else f"env set {env}"
    return f"{rel} is not linked to {where}"


def missing_links(release_dir: str, rels: list[str], shipped: frozenset | set = frozenset(),
                  env: str = LEGACY_ENV) -> list[str]:
    """The relpaths (of rels) the release does not reach in env yet."""
    return [rel for rel in rels if link_problem(release_dir, rel, shipped, env)]


def _make_parents(root: str, rel: str, mode: int, uid: int | None, gid: int | None) -> None:
    parent = posixpath.dirname(rel)
    if not parent:
        return
    directory = os.path.join(root, *parent.split("/"))
    if uid is None or gid is None:
        os.makedirs(directory, mode, exist_ok=True)
    else:
        fsutil.makedirs_owned(directory, mode, uid, gid, parent_mode=mode)


def create_missing(shared: str, rels: list[str], uid: int | None, gid: int | None) -> list[str]:
    """Create every shared/<rel> that is missing as an empty file (0600, uid:gid).

    Returns the relpaths created. A directory in the way raises OSError. (The layout of release
    zero: adoption; deploys write env sets.)
    """
    created = []
    for rel in rels:
        path = os.path.join(shared, *rel.split("/"))
        if os.path.lexists(path):
            if os.path.isdir(path):
                raise IsADirectoryError(21, "expected an env file, found a directory", path)
            continue
        dir_mode = 0o700 if under_secrets(rel) else SHARED_DIR_MODE
        _make_parents(shared, rel, dir_mode, uid, gid)
        fsutil.atomic_write(path, b"", ENV_MODE, uid, gid)
        created.append(rel)
    return created


def make_links(release_dir: str, rels: list[str], uid: int | None, gid: int | None,
               shipped: frozenset | set = frozenset(), env: str = LEGACY_ENV) -> list[str]:
    """Link every rel (not shipped by the archive) from the release into env.

    Paths under secrets/ get the one ``secrets`` link. Returns the links created or fixed.
    A real file or directory in the way of a link raises OSError (never replaced).
    """
    made = []
    for rel in rels:
        if rel in shipped or not link_problem(release_dir, rel, shipped, env):
            continue
        name = SECRETS_NAME if under_secrets(rel) else rel
        target = SECRETS_LINK if under_secrets(rel) else link_target(rel, env)
        link = os.path.join(release_dir, *name.split("/"))
        if os.path.lexists(link) and not os.path.islink(link):
            raise FileExistsError(17, "the release holds a real file or directory where the "
                                  "env link goes", link)
        _make_parents(release_dir, name, 0o755, uid, gid)
        if os.path.islink(link):
            os.unlink(link)
        os.symlink(target, link)
        if uid is not None and gid is not None:
            os.lchown(link, uid, gid)
        made.append(name)
    return made


def shared_links(release_dir: str) -> list[str]:
    """Relpaths of the symlinks of a release into shared/: env links (to a set or to shared/
    directly) and the secrets link -- not release content."""
    found = set(release_model.env_links(release_dir))
    if fsutil.read_link_target(os.path.join(release_dir, SECRETS_NAME)) == SECRETS_LINK:
        found.add(SECRETS_NAME)
    return sorted(found)


def read_text(path: str) -> str | None:
    """The file's text (undecodable bytes kept as surrogates), None when it does not exist."""
    if not os.path.lexists(path):
        return None
    with open(path, "rb") as handle:
        return handle.read().decode("utf-8", "surrogateescape")


# --------------------------------------------------------------------------- env sets


def set_rels(rels) -> list[str]:
    """The env files an env set holds: every rel not under secrets/, sorted."""
    return sorted({rel for rel in rels if not under_secrets(rel)})


def kept_rels(base_dir: str, legacy: bool) -> list[str]:
    """The env files of the merge base that every new env set keeps, so nothing of the
    operator's env is dropped because a release's compose file no longer names it (the db's
    own env file of a hand-managed stack, say): every file of an env set; every file of
    shared/ (LEGACY_ENV) outside secrets/, the env sets and the zero-downtime proxy's own
    directory (its program, upstream and status: never env). ``*.example`` names are
    templates, not env."""
    found = []
    if not os.path.isdir(base_dir):
        return found
    for dirpath, dirnames, filenames in os.walk(base_dir):
        rel_dir = os.path.relpath(dirpath, base_dir).replace(os.sep, "/")
        if rel_dir == "." and legacy:
            dirnames[:] = [d for d in dirnames
                           if d not in (SECRETS_NAME, release_model.ENV_SETS_DIR, PROXY_DIR)]
        dirnames.sort()
        for name in sorted(filenames):
            rel = name if rel_dir == "." else f"{rel_dir}/{name}"
            path = os.path.join(dirpath, name)
            if (name.endswith(".example") or under_secrets(rel) or os.path.islink(path)
                    or not os.path.isfile(path)):
                continue
            found.append(rel)
    return found


def release_link_rels(app_root: str, rels, shipped: frozenset | set = frozenset()) -> list[str]:
    """What a release links: rels it does not ship, plus the secrets dir when shared/secrets
    exists or an env file lives under it."""
    wanted = [rel for rel in rels if rel not in shipped]
    secrets = os.path.isdir(os.path.join(release_model.shared_path(app_root), SECRETS_NAME))
    if (secrets or any(under_secrets(r) for r in wanted)) and SECRETS_NAME not in wanted:
        wanted.append(SECRETS_NAME)
    return wanted


def base_env(app_root: str) -> str:
    """The merge base of a new env set: the env of the active release (its set, or LEGACY_ENV
    when it links shared/ directly); LEGACY_ENV without an active release (shared/ files an
    operator put there are kept)."""
    rid = release_model.current(app_root)
    env = release_model.release_env(release_model.release_path(app_root, rid)) if rid else None
    return env or LEGACY_ENV


def read_files(directory: str, rels) -> dict:
    """rel -> bytes of directory/<rel>, None when missing. Raises IsADirectoryError."""
    found = {}
    for rel in rels:
        path = os.path.join(directory, *rel.split("/"))
        if os.path.isdir(path):
            raise IsADirectoryError(21, "expected an env file, found a directory", path)
        if not os.path.lexists(path):
            found[rel] = None
            continue
        with open(path, "rb") as handle:
            found[rel] = handle.read()
    return found


def read_set(set_dir: str) -> dict | None:
    """rel -> bytes of every file of an env set; None when it is not one (missing, a link or
    another kind of entry inside)."""
    if os.path.islink(set_dir) or not os.path.isdir(set_dir):
        return None
    files = {}
    for dirpath, dirnames, filenames in os.walk(set_dir, followlinks=False):
        for name in dirnames + filenames:
            path = os.path.join(dirpath, name)
            if os.path.islink(path):
                return None
            if name in filenames:
                if not os.path.isfile(path):
                    return None
                rel = os.path.relpath(path, set_dir).replace(os.sep, "/")
                with open(path, "rb") as handle:
                    files[rel] = handle.read()
    return files


def _candidates(app_root: str, files: dict):
    """(name, path) of the set names files would take, in order: <hash>, <hash>-2, ..."""
    sets = release_model.env_sets_path(app_root)
    digest = release_model.env_set_hash(files)
    n = 1
    while True:
        name = digest if n == 1 else f"{digest}-{n}"
        yield name, os.path.join(sets, name)
        n += 1


def find_set(app_root: str, files: dict) -> str | None:
    """The name of the env set holding exactly files, None when there is none yet."""
    for name, path in _candidates(app_root, files):
        if not os.path.lexists(path):
            return None
        if read_set(path) == files:
            return name


def set_modes_ok(set_dir: str, uid: int | None = None, gid: int | None = None) -> bool:
    """0700 directories and 0600 files (and the owner, when given) throughout the set."""
    for dirpath, _dirnames, filenames in os.walk(set_dir, followlinks=False):
        paths = [(dirpath, SET_DIR_MODE)] + [(os.path.join(dirpath, n), ENV_MODE)
                                             for n in filenames]
        for path, mode in paths:
            st = os.lstat(path)
            if st.st_mode & 0o7777 != mode:
                return False
            if uid is not None and (st.st_uid, st.st_gid) != (uid, gid):
                return False
    return True


def _fix_modes(set_dir: str, uid: int | None, gid: int | None) -> None:
    for dirpath, _dirnames, filenames in os.walk(set_dir, followlinks=False):
        for path, mode in [(dirpath, SET_DIR_MODE)] + [(os.path.join(dirpath, n), ENV_MODE)
                                                       for n in filenames]:
            os.chmod(path, mode)
            if uid is not None and gid is not None:
                os.lchown(path, uid, gid)


def _ensure_sets_dir(app_root: str, uid: int | None, gid: int | None) -> str:
    shared = release_model.shared_path(app_root)
    sets = release_model.env_sets_path(app_root)
    if not os.path.isdir(shared):
        if uid is None or gid is None:
            os.makedirs(shared, SHARED_DIR_MODE, exist_ok=True)
        else:
            fsutil.makedirs_owned(shared, SHARED_DIR_MODE, uid, gid)
    if not os.path.isdir(sets):
        os.mkdir(sets, SET_DIR_MODE)
        os.chmod(sets, SET_DIR_MODE)
        if uid is not None and gid is not None:
            os.chown(sets, uid, gid)
    return sets


def write_set(app_root: str, files: dict, uid: int | None, gid: int | None) -> tuple[str, bool]:
    """Store files ({rel: bytes}) as an env set -> (its name, whether it was written now).

    A set with the same content is reused (its modes and owner made right); a name already
    holding other content (edited by hand) is left alone and the next free name is taken. The
    set is built under a temporary name and renamed into place: never half written.
    """
    sets = _ensure_sets_dir(app_root, uid, gid)
    for name, path in _candidates(app_root, files):
        if os.path.lexists(path):
            if read_set(path) == files:
                if not set_modes_ok(path, uid, gid):
                    _fix_modes(path, uid, gid)
                return name, False
            continue
        tmp = os.path.join(sets, f".{name}{SET_PARTIAL_INFIX}{os.getpid()}")
        if os.path.lexists(tmp):
            shutil.rmtree(tmp)
        os.mkdir(tmp, SET_DIR_MODE)
        try:
            os.chmod(tmp, SET_DIR_MODE)
            if uid is not None and gid is not None:
                os.chown(tmp, uid, gid)
            for rel in sorted(files):
                _make_parents(tmp, rel, SET_DIR_MODE, uid, gid)
                fsutil.atomic_write(os.path.join(tmp, *rel.split("/")), files[rel], ENV_MODE,
                                    uid, gid)
            fsutil.fsync_dir(tmp)
            os.rename(tmp, path)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        fsutil.fsync_dir(sets)
        return name, True
    raise AssertionError("unreachable")  # pragma: no cover


def list_sets(app_root: str) -> list[tuple[str, float]]:
    """(name, mtime) of every entry of shared/env: sets and the temporary dirs of writes."""
    sets = release_model.env_sets_path(app_root)
    try:
        entries = list(os.scandir(sets))
    except (FileNotFoundError, NotADirectoryError):
        return []
    return sorted((e.name, e.stat(follow_symlinks=False).st_mtime) for e in entries
                  if e.is_dir(follow_symlinks=False))


def remove_set(app_root: str, name: str) -> None:
    """rm -r shared/env/<name> (a set or a temporary dir; never outside shared/env)."""
    if "/" in name or name in ("", ".", ".."):
        raise ValueError(f"not an env set name: {name!r}")
    path = os.path.join(release_model.env_sets_path(app_root), name)
    if os.path.islink(path):
        os.unlink(path)
    elif os.path.isdir(path):
        shutil.rmtree(path)


def stale_partial_sets(entries: list[tuple[str, float]], now: float | None = None,
                       max_age: float = SET_PARTIAL_MAX_AGE) -> list[str]:
    """Temporary set dirs (``.<name>.partial-<pid>``) older than max_age seconds."""
    now = time.time() if now is None else now
    return sorted(name for name, mtime in entries
                  if name.startswith(".") and SET_PARTIAL_INFIX in name and now - mtime > max_age)


# --------------------------------------------------------------------------- plan


def new_set_files(base: dict, merged: dict, rels) -> dict:
    """The files of a new env set: merged (rel -> text) for the files the deploy renders, the
    base's bytes for every other rel of the set, empty where the base has none."""
    files = {}
    for rel in set_rels(rels):
        if rel in merged:
            files[rel] = merged[rel].encode("utf-8", "surrogateescape")
        else:
            files[rel] = base.get(rel) or b""
    return files


def plan_env(base: str, files: dict, required: list[str], salt: str, replace: bool = False,
             supersedes: dict | None = None, kept: list[str] | tuple = ()) -> dict:
    """Compare the env the deploy wants with the base env (a set dir, shared/ of the layout
    before env sets, or a checkout about to be adopted).

    files: relpath -> {KEY: digest} (dotenv.key_digest under salt) of the files the deploy
    renders; required: every env file compose needs; kept: the base's env files every new set
    keeps (kept_rels). Returns {files: relpath ->
    dotenv.plan_file report plus loose_mode, missing: required files the base lacks (the new set
    has them empty), values_in_sync: the deploy changes no value, content: the files of the
    env set the release runs with when values_in_sync (computable without the values), else
    None}. Raises dotenv.DotenvError for a file compose could not read.
    """
    reports = {}
    for rel, want in sorted(files.items()):
        path = os.path.join(base, *rel.split("/"))
        text = read_text(path) if not os.path.isdir(path) else None
        report = dotenv.plan_file(text, want or {}, salt, replace, supersedes, where=path)
        report["loose_mode"] = text is not None and bool(os.stat(path).st_mode & 0o077)
        reports[rel] = report
    rels = set_rels([*required, *files, *kept])
    present = read_files(base, rels)
    missing = [rel for rel in rels if present[rel] is None and rel not in files]
    values_in_sync = all(r["exists"] and not r["set"] and not r["dropped"]
                         for r in reports.values())
    content = new_set_files(present, {}, rels) if values_in_sync else None
    return {"files": reports, "missing": missing, "values_in_sync": values_in_sync,
            "content": content}


def plan_lines(env: dict) -> list[str]:
    """One line per env file with something to say (names only, never values)."""
    lines = []
    for rel, report in sorted((env.get("files") or {}).items()):
        parts = []
        if not report.get("exists"):
            parts.append("created")
        if report.get("set"):
            parts.append("sets " + ", ".join(report["set"]))
        if report.get("kept"):
            parts.append("kept from the instance: " + ", ".join(report["kept"]))
        if report.get("dropped"):
            parts.append("dropped: " + ", ".join(report["dropped"]))
        if parts:
            lines.append(f"{rel}: " + "; ".join(parts))
    if env.get("missing"):
        lines.append("created empty (0600): " + ", ".join(env["missing"]))
    if env.get("links_missing"):
        lines.append("linked into the release: " + ", ".join(env["links_missing"]))
    if env.get("set_line"):
        lines.append(env["set_line"])
    return lines


# --------------------------------------------------------------------------- compose scan

_ENV_FILE_RE = re.compile(r"^(\s*)env_file\s*:\s*(.*)$")
_ITEM_RE = re.compile(r"^(\s*)-\s*(.*)$")
_PATH_RE = re.compile(r"^path\s*:\s*(.*)$")


def _scalar(text: str) -> str:
    text = text.strip()
    if text[:1] in ("'", '"'):
        end = text.find(text[0], 1)
        return text[1:end] if end > 0 else text[1:]
    cut = text.find(" #")
    return (text[:cut] if cut >= 0 else text).strip()


def scan_compose_env_files(text: str) -> list[str]:
    """env_file entries of every service of a compose file, without a YAML parser.

    Understands ``env_file: x``, ``env_file: [a, b]`` and block lists of paths or of
    ``{path: x, required: false}`` items: the forms compose files use. Used on the instance to
    find the env files of a hand-managed checkout (the controller parses its own compose file).
    """
    found = []
    lines = (text or "").splitlines()
    i = 0
    while i < len(lines):
        match = _ENV_FILE_RE.match(lines[i])
        i += 1
        if not match:
            continue
        indent, value = len(match.group(1)), match.group(2).strip()
        if value.startswith("["):
            inner = value[1:value.find("]")] if "]" in value else value[1:]
            found.extend(_scalar(part) for part in inner.split(",") if part.strip())
            continue
        if value and not value.startswith("#"):
            found.append(_scalar(value))
            continue
        while i < len(lines):
            line = lines[i]
            if not line.strip() or line.strip().startswith("#"):
                i += 1
                continue
            if len(line) - len(line.lstrip()) <= indent and not line.lstrip().startswith("-"):
                break
            item = _ITEM_RE.match(line)
            if item and len(item.group(1)) < indent:
                break
            if item:
                body = item.group(2).strip()
                path = _PATH_RE.match(body)
                if path:
                    found.append(_scalar(path.group(1)))
                elif body and not body.startswith("{"):
                    found.append(_scalar(body))
                elif body.startswith("{"):
                    inner = re.search(r"path\s*:\s*([^,}]+)", body)
                    if inner:
                        found.append(_scalar(inner.group(1)))
            i += 1
    return [f for f in found if f]
