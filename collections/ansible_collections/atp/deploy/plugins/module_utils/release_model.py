# Copyright: atp.deploy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The release model: the one place that knows what a release is (stdlib only).

A release is code + env. On the instance (``<app_root>``)::

    releases/<id>/               the code (unpacked archive + manifest), never changed after
    releases/<id>/.env        -> ../../shared/env/<set>/.env   its env set (one link per env file)
    releases/<id>/secrets     -> ../../shared/secrets           operator secrets (not versioned)
    shared/env/<set>/            an env set: the env files of one or more releases, named by
                                 the hash of their content, 0700 dir / 0600 files, never changed
    current                   -> releases/<id>                 the active release
    deploy.log                   one JSON line per deploy / rollback, in the order they ran

Release id: ``<UTC build time %Y%m%dT%H%M%SZ>-<hash part>``; the hash part (12 hex) covers the
code and the env: ``release_hash(code hash, env)``. Releases made before env sets link
``shared/<file>`` directly (``LEGACY_ENV``) and their hash part is the code hash alone.

"The release live before the current one" comes from deploy.log's ORDER (the releases that
became live, one after the other), never from the ids: an id's time is when it was built, not
when it was last activated (redeploying older content re-activates an older id).

Runs on the instance (modules) and on the controller (filters); Python >= 3.8 on the instance.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
from datetime import datetime, timezone

from ansible_collections.atp.deploy.plugins.module_utils.release_manifest import (
    MANIFEST_NAME,
    content_hash,
)

# timezone.utc rather than datetime.UTC: this file also runs on instance Pythons < 3.11.
_UTC = timezone.utc  # noqa: UP017
STAMP_FORMAT = "%Y%m%dT%H%M%SZ"
HASH_LEN = 12
ID_EXAMPLE = "20261124T101500Z-0123456789ab"
_ID_RE = re.compile(rf"^(\d{{8}}T\d{{6}}Z)-([0-9a-f]{{{HASH_LEN}}})$")
_HEX_RE = re.compile(rf"^[0-9a-f]{{{HASH_LEN},}}$")
PARTIAL_SUFFIX = ".partial"

RELEASES_DIR = "releases"
CURRENT_LINK = "current"
DEPLOY_LOG = "deploy.log"
SHARED_DIR = "shared"
ENV_SETS_DIR = "env"  # shared/env/<set>
SECRETS_NAME = "secrets"
# The env of a release that links shared/<file> directly (the layout before env sets, and
# release zero of an adopted checkout).
LEGACY_ENV = "shared"
# An env set's name: the 12 hex of its content hash, "-N" when that name held other content.
_ENV_SET_RE = re.compile(rf"^([0-9a-f]{{{HASH_LEN}}})(?:-(\d+))?$")

# deploy.log results that left the recorded release live. "rolled_back" does too, when it was
# a rollback TO that release (rollback.yml, no error); a deploy rolled back AWAY from its
# release records "failed".
GOOD_RESULTS = frozenset({"ok", "success", "succeeded", "deployed"})
ROLLED_BACK = "rolled_back"


# --------------------------------------------------------------------------- ids


def _utc(when: datetime | None) -> datetime:
    when = when or datetime.now(_UTC)
    if when.tzinfo is None:
        when = when.replace(tzinfo=_UTC)
    return when.astimezone(_UTC)


def stamp(when: datetime | None = None) -> str:
    """UTC ``%Y%m%dT%H%M%SZ`` of when (naive = UTC; None = now)."""
    return _utc(when).strftime(STAMP_FORMAT)


def _check_code_hash(code_hash: str) -> str:
    text = str(code_hash or "").strip().lower()
    if not _HEX_RE.match(text):
        raise ValueError(f"a code hash must be at least {HASH_LEN} lowercase hex characters")
    return text


def release_hash(code_hash: str, env: str | None = None) -> str:
    """The hash part of a release id: 12 hex covering the code and the env.

    env: the env's identity -- an env set's content hash, or any other text naming the env
    (a pending change). None or LEGACY_ENV: a release of the layout before env sets, whose hash
    part is the code hash alone.
    """
    code = _check_code_hash(code_hash)
    if env is None or env == LEGACY_ENV:
        return code[:HASH_LEN]
    text = f"atp-release\0{code}\0{env}".encode()
    return hashlib.sha256(text).hexdigest()[:HASH_LEN]


def make_id(code_hash: str, env: str | None = None, when: datetime | None = None) -> str:
    """``<UTC time of when>-<release_hash(code_hash, env)>`` (when: naive = UTC, None = now)."""
    return f"{stamp(when)}-{release_hash(code_hash, env)}"


def parse_id(rid: str) -> tuple[str, str] | None:
    """(time stamp, hash part) of a release id, or None when it is not one."""
    match = _ID_RE.match(rid if isinstance(rid, str) else "")
    if not match:
        return None
    try:
        datetime.strptime(match.group(1), STAMP_FORMAT)
    except ValueError:
        return None
    return match.group(1), match.group(2)


def is_release_id(name: str) -> bool:
    return parse_id(name) is not None


def id_problem(rid: str) -> str | None:
    """None for a release id, else the one-line reason (never mentions a value but the id)."""
    if is_release_id(rid):
        return None
    return (f"release_id must look like {ID_EXAMPLE} (UTC time, '-', 12 hex), got {rid!r}; "
            "pass plan.release_id from release_state")


def hash_part(rid: str) -> str:
    """The 12-hex hash part of a release id; ValueError when rid is not one."""
    parsed = parse_id(rid)
    if parsed is None:
        raise ValueError(f"not a release id: {rid!r}")
    return parsed[1]


def build_time(rid: str) -> str:
    """The time part of a release id (UTC, ``%Y%m%dT%H%M%SZ``): when it was made."""
    parsed = parse_id(rid)
    if parsed is None:
        raise ValueError(f"not a release id: {rid!r}")
    return parsed[0]


def built_at(rid: str) -> datetime:
    """build_time as an aware UTC datetime."""
    return datetime.strptime(build_time(rid), STAMP_FORMAT).replace(tzinfo=_UTC)


def image_ref(image_repo: str, rid: str) -> str:
    """The image of a release: ``<image_repo>:<release id>``."""
    return f"{image_repo}:{rid}"


# --------------------------------------------------------------------------- env sets


def is_env_set(name: str) -> bool:
    return bool(_ENV_SET_RE.match(name if isinstance(name, str) else ""))


def env_set_hash(files: dict) -> str:
    """Content hash (12 hex) of an env set: {relpath: bytes} -> sha256 over sorted paths+data."""
    digest = hashlib.sha256(b"atp-env-set\0")
    for rel in sorted(files):
        data = files[rel]
        if isinstance(data, str):
            data = data.encode("utf-8", "surrogateescape")
        digest.update(rel.encode("utf-8", "surrogateescape") + b"\0")
        digest.update(hashlib.sha256(data).hexdigest().encode() + b"\0")
    return digest.hexdigest()[:HASH_LEN]


def env_set_content_hash(name: str) -> str | None:
    """The content hash an env set's name carries (without a -N suffix); None if not a set."""
    match = _ENV_SET_RE.match(name if isinstance(name, str) else "")
    return match.group(1) if match else None


def env_link_target(rel: str, env: str) -> str:
    """Target of the link releases/<id>/<rel> into the release's env (a set or LEGACY_ENV)."""
    up = "../" * (2 + rel.count("/"))
    if env == LEGACY_ENV:
        return f"{up}{SHARED_DIR}/{rel}"
    return f"{up}{SHARED_DIR}/{ENV_SETS_DIR}/{env}/{rel}"


def env_of_link(rel: str, target: str | None) -> str | None:
    """The env (set name or LEGACY_ENV) a release's link at rel points into, None otherwise."""
    if not target:
        return None
    up = "../" * (2 + rel.count("/"))
    if not target.startswith(up + SHARED_DIR + "/"):
        return None
    rest = target[len(up) + len(SHARED_DIR) + 1:]
    if rest == rel:
        return LEGACY_ENV
    prefix = ENV_SETS_DIR + "/"
    if rest.startswith(prefix):
        name, _sep, tail = rest[len(prefix):].partition("/")
        if tail == rel and is_env_set(name):
            return name
    return None


# --------------------------------------------------------------------------- paths


def releases_path(app_root: str) -> str:
    return os.path.join(app_root, RELEASES_DIR)


def release_path(app_root: str, rid: str) -> str:
    return os.path.join(app_root, RELEASES_DIR, rid)


def shared_path(app_root: str) -> str:
    return os.path.join(app_root, SHARED_DIR)


def env_sets_path(app_root: str) -> str:
    return os.path.join(app_root, SHARED_DIR, ENV_SETS_DIR)


def env_dir(app_root: str, env: str) -> str:
    """Directory holding the env files of env (a set name, or LEGACY_ENV for shared/)."""
    if env == LEGACY_ENV:
        return shared_path(app_root)
    return os.path.join(env_sets_path(app_root), env)


def current_link_path(app_root: str) -> str:
    return os.path.join(app_root, CURRENT_LINK)


def current_link_target(rid: str) -> str:
    """What ``current`` holds for release rid (relative, so app_root may move)."""
    return f"{RELEASES_DIR}/{rid}"


def deploy_log_path(app_root: str) -> str:
    return os.path.join(app_root, DEPLOY_LOG)


# --------------------------------------------------------------------------- releases on disk


def release_from_link(target: str | None) -> str | None:
    """A ``current`` symlink target (relative or absolute) -> release id, or None."""
    if not target:
        return None
    norm = os.path.normpath(target)
    name = os.path.basename(norm)
    if os.path.basename(os.path.dirname(norm)) != RELEASES_DIR or not is_release_id(name):
        return None
    return name


def _link(path: str) -> str | None:
    return os.readlink(path) if os.path.islink(path) else None


def current(app_root: str) -> str | None:
    """The release ``current`` points at, or None (no link, or not a release)."""
    return release_from_link(_link(current_link_path(app_root)))


def current_problem(app_root: str) -> str | None:
    """None when ``current`` is absent or points at a release, else what is wrong with it."""
    path = current_link_path(app_root)
    if not os.path.lexists(path) or current(app_root):
        return None
    if not os.path.islink(path):
        return f"{path} is a real file or directory, not a symlink to releases/<release id>"
    return f"{path} does not point at releases/<release id>"


def describe_release_dir(name: str, has_manifest: bool) -> dict | None:
    """One entry of releases/ -> {id, hash, complete, partial}; None if not a release."""
    partial = name.endswith(PARTIAL_SUFFIX)
    rid = name[: -len(PARTIAL_SUFFIX)] if partial else name
    parsed = parse_id(rid)
    if parsed is None:
        return None
    return {"id": rid, "hash": parsed[1], "complete": bool(has_manifest and not partial),
            "partial": partial}


def release_entries(releases_dir: str) -> list:
    """(os.DirEntry, describe_release_dir dict) of each release directory under releases_dir.

    Entries that are not directories or not named like a release are skipped; a missing
    releases_dir has none.
    """
    try:
        entries = list(os.scandir(releases_dir))
    except (FileNotFoundError, NotADirectoryError):
        return []
    found = []
    for entry in entries:
        if not entry.is_dir(follow_symlinks=False):
            continue
        has_manifest = os.path.isfile(os.path.join(entry.path, MANIFEST_NAME))
        described = describe_release_dir(entry.name, has_manifest)
        if described:
            found.append((entry, described))
    return found


def code_hash(release_dir: str) -> str | None:
    """The code hash of a release (the content hash of its manifest), None when unreadable."""
    try:
        with open(os.path.join(release_dir, MANIFEST_NAME), encoding="utf-8") as handle:
            manifest = json.load(handle)
        return content_hash(manifest)
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None


def env_links(release_dir: str) -> dict:
    """relpath -> env (set name or LEGACY_ENV) of every env link of a release (not secrets)."""
    found = {}
    for dirpath, dirnames, filenames in os.walk(release_dir, followlinks=False):
        for name in dirnames + filenames:
            path = os.path.join(dirpath, name)
            target = _link(path)
            if target is None:
                continue
            rel = os.path.relpath(path, release_dir).replace(os.sep, "/")
            if rel == SECRETS_NAME or rel.startswith(SECRETS_NAME + "/"):
                continue  # operator secrets: shared/secrets, not part of any env
            env = env_of_link(rel, target)
            if env is not None:
                found[rel] = env
    return found


def release_env(release_dir: str) -> str | None:
    """The env a release runs with: its env set, LEGACY_ENV, or None (no env link, or links
    into more than one env: the release must be relinked)."""
    envs = set(env_links(release_dir).values())
    return envs.pop() if len(envs) == 1 else None


def read_releases(app_root: str, details: bool = False) -> list[dict]:
    """The releases under app_root/releases, sorted by id (a .partial one after its complete).

    Each {id, hash, complete, partial}; with details, complete ones also carry code_hash (from
    the manifest) and env (release_env), others None.
    """
    found = []
    for entry, described in release_entries(releases_path(app_root)):
        if details:
            complete = described["complete"]
            described["code_hash"] = code_hash(entry.path) if complete else None
            described["env"] = release_env(entry.path) if complete else None
        found.append(described)
    return sorted(found, key=lambda r: (r["id"], r["partial"]))


def complete_ids(releases: list[dict]) -> set:
    return {r["id"] for r in releases if r.get("complete") and not r.get("partial")}


def find_release(releases: list[dict], code: str, env: str | None,
                 current_id: str | None = None) -> str | None:
    """The complete release holding code (full code hash) with env; current first, else the
    newest. Needs read_releases(details=True) entries."""
    code = str(code or "").lower()
    matches = sorted(r["id"] for r in releases
                     if r.get("complete") and not r.get("partial") and code
                     and r.get("code_hash") == code and r.get("env") == env)
    if not matches:
        return None
    return current_id if current_id in matches else matches[-1]


def same_code(releases: list[dict], code: str, current_id: str | None = None) -> list[str]:
    """Complete releases holding code (any env): current first, then newest first."""
    code = str(code or "").lower()
    ids = sorted((r["id"] for r in releases if r.get("complete") and not r.get("partial")
                  and code and r.get("code_hash") == code), reverse=True)
    if current_id in ids:
        ids.remove(current_id)
        ids.insert(0, current_id)
    return ids


# --------------------------------------------------------------------------- deploy.log


def parse_deploy_log(text: str) -> list[dict]:
    """deploy.log (JSON lines) -> records in file order; unreadable lines are skipped."""
    records = []
    for line in (text or "").splitlines():
        line = line.strip()
        if not line:
            continue
        try:
            value = json.loads(line)
        except ValueError:
            continue
        if isinstance(value, dict):
            records.append(value)
    return records


def read_deploy_log(app_root: str) -> list[dict]:
    """The records of app_root/deploy.log; none when it cannot be read."""
    try:
        with open(deploy_log_path(app_root), encoding="utf-8", errors="replace") as handle:
            return parse_deploy_log(handle.read())
    except OSError:
        return []


def _release_of(record: dict) -> str | None:
    release = record.get("release") if isinstance(record, dict) else None
    return release if isinstance(release, str) and is_release_id(release) else None


def is_good(record: dict | None) -> bool:
    """Did the deploy recorded here leave its release serving?

    ``ok`` did. ``rolled_back`` did when it was a rollback TO the release (rollback.yml, no
    error); a deploy that failed and was rolled back AWAY from its release did not.
    """
    if not isinstance(record, dict):
        return False
    result = str(record.get("result") or "").strip().lower()
    if result in GOOD_RESULTS:
        return True
    return result == ROLLED_BACK and not str(record.get("error") or "").strip()


def last_records(records: list[dict]) -> dict:
    """release id -> its last deploy.log record (later lines win)."""
    last = {}
    for record in records:
        release = _release_of(record)
        if release:
            last[release] = record
    return last


def is_good_release(rid: str, records: list[dict]) -> bool:
    """A good release: the last deploy.log record of it left it serving (is_good)."""
    return is_good(last_records(records).get(rid))


def timeline(records: list[dict]) -> list[str]:
    """The releases in the order they became live (one entry per good record, repeats of the
    same release in a row folded)."""
    live = []
    for record in records:
        release = _release_of(record)
        if release and is_good(record) and (not live or live[-1] != release):
            live.append(release)
    return live


def previous(records: list[dict], current_id: str | None, usable=None) -> str | None:
    """The release that was live before current_id, from deploy.log's order.

    Walks back from current's last activation (from the end when current never became live
    with a good record) and returns the first release that is not current, whose last record
    is good and for which usable(id) holds (e.g. complete on disk, image present). None when
    there is none. Never compares ids.
    """
    live = timeline(records)
    last = last_records(records)
    end = len(live)
    if current_id in live:
        end = len(live) - 1 - live[::-1].index(current_id)
    for rid in reversed(live[:end]):
        if rid == current_id or not is_good(last.get(rid)):
            continue
        if usable is None or usable(rid):
            return rid
    return None


# --------------------------------------------------------------------------- making a release


def clone_code(app_root: str, source: str, rid: str, uid: int | None = None,
               gid: int | None = None) -> str:
    """Make releases/<rid> hold the code of releases/<source> (an env-only change: same code,
    its own env). Every file of the source's manifest (and the manifest) is hard-linked (copied
    where a link is refused), directories keep their modes; env links, the secrets link and
    compose_release's override are not carried (the new release gets its own). Built under
    ``<rid>.partial`` and renamed into place. Returns the new release dir.
    """
    src = release_path(app_root, source)
    try:
        with open(os.path.join(src, MANIFEST_NAME), encoding="utf-8") as handle:
            manifest = json.load(handle)
        files = sorted((manifest.get("files") or {}).keys())
    except (OSError, ValueError, AttributeError) as exc:
        raise OSError(f"release {source} has no readable manifest ({exc})") from exc
    final = release_path(app_root, rid)
    partial = final + PARTIAL_SUFFIX
    if os.path.lexists(partial):
        _remove(partial)
    st = os.stat(src)
    os.mkdir(partial, 0o755)
    try:
        os.chmod(partial, st.st_mode & 0o7777)
        if uid is not None and gid is not None:
            os.chown(partial, uid, gid)
        for rel in [MANIFEST_NAME, *files]:
            parts = rel.split("/")
            _clone_parents(src, partial, parts[:-1], uid, gid)
            source_file = os.path.join(src, *parts)
            if os.path.islink(source_file) or not os.path.isfile(source_file):
                raise OSError(f"release {source}: {rel} is not a regular file")
            dest = os.path.join(partial, *parts)
            try:
                os.link(source_file, dest)
            except OSError:
                shutil.copy2(source_file, dest)
                if uid is not None and gid is not None:
                    os.chown(dest, uid, gid)
        os.rename(partial, final)
    except BaseException:
        _remove(partial)
        raise
    return final


def _clone_parents(src: str, dest: str, parts: list[str], uid: int | None,
                   gid: int | None) -> None:
    for depth in range(1, len(parts) + 1):
        target = os.path.join(dest, *parts[:depth])
        if os.path.isdir(target):
            continue
        mode = os.stat(os.path.join(src, *parts[:depth])).st_mode & 0o7777
        os.mkdir(target, 0o700)
        os.chmod(target, mode)
        if uid is not None and gid is not None:
            os.chown(target, uid, gid)


def _remove(path: str) -> None:
    if os.path.islink(path) or os.path.isfile(path):
        os.unlink(path)
    elif os.path.isdir(path):
        shutil.rmtree(path)
