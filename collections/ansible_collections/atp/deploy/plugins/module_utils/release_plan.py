# Copyright: atp.deploy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Deciding logic of a deploy (pure functions, stdlib only).

Given what release_state read on the instance, decide what the deploy has to do:
upload / write env / build / activate. No I/O here.
"""

from __future__ import annotations

import json
import os
import re
from datetime import datetime, timedelta, timezone

from ansible_collections.atp.deploy.plugins.module_utils.release_manifest import (
    release_content_hash_prefix,
)

PARTIAL_SUFFIX = ".partial"
# A directory holding one of these (and no releases/) is a hand-managed checkout to adopt.
ADOPTION_MARKERS = ("docker-compose.yml", ".git")
ASIDE_INFIX = ".pre-ansible-"
# The new layout is built beside app_root under this name, then swapped in.
STAGING_INFIX = ".adopting-"
STAMP_FORMAT = "%Y%m%dT%H%M%SZ"
RELEASE_ID_RE = re.compile(r"^\d{8}T\d{6}Z-[0-9a-f]{12}$")
HASH_PREFIX_LEN = 12
ENV_REASON = "the env files must change: write them"
SUCCESS_RESULTS = frozenset({"ok", "success", "succeeded", "deployed", "rolled_back"})


def is_release_id(name: str) -> bool:
    return bool(RELEASE_ID_RE.match(name or ""))


def hash_prefix(release_id: str) -> str | None:
    """The content-hash prefix of a release id (via release_manifest), None if not parseable."""
    try:
        return release_content_hash_prefix(release_id)
    except (ValueError, TypeError, IndexError):
        return None


def describe_release_dir(name: str, has_manifest: bool) -> dict | None:
    """One entry of releases/ -> {id, content_hash, complete, partial}; None if not a release."""
    partial = name.endswith(PARTIAL_SUFFIX)
    release_id = name[: -len(PARTIAL_SUFFIX)] if partial else name
    if not is_release_id(release_id):
        return None
    return {
        "id": release_id,
        "content_hash": hash_prefix(release_id),
        "complete": bool(has_manifest and not partial),
        "partial": partial,
    }


def release_from_link(target: str | None) -> str | None:
    """`current` symlink target (relative or absolute) -> release id, or None."""
    if not target:
        return None
    name = os.path.basename(os.path.normpath(target))
    parent = os.path.basename(os.path.dirname(os.path.normpath(target)))
    if parent != "releases" or not is_release_id(name):
        return None
    return name


def find_existing_release(releases: list[dict], content_hash: str,
                          current: str | None = None) -> str | None:
    """The complete release holding content_hash; prefer `current`, else the newest id."""
    prefix = (content_hash or "").lower()[:HASH_PREFIX_LEN]
    if len(prefix) < HASH_PREFIX_LEN:
        return None
    matches = sorted(
        r["id"] for r in releases if r.get("complete") and r.get("content_hash") == prefix
    )
    if not matches:
        return None
    if current in matches:
        return current
    return matches[-1]


def parse_deploy_log(text: str) -> list[dict]:
    """deploy.log (JSON lines) -> records; unreadable lines are skipped."""
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


def previous_release(log_records: list[dict], releases: list[dict],
                     current: str | None) -> str | None:
    """The release that was live before `current`.

    First per deploy.log: the newest successful record whose release is not current and still
    exists complete on disk. Else by name order: the newest complete release older than current
    (or, with no current, the newest complete release).
    """
    complete = sorted(r["id"] for r in releases if r.get("complete"))
    on_disk = set(complete)
    for record in reversed(log_records):
        release = record.get("release")
        if not isinstance(release, str) or release == current or release not in on_disk:
            continue
        result = str(record.get("result", "ok")).lower()
        if result in SUCCESS_RESULTS:
            return release
    older = [r for r in complete if current is None or r < current]
    return older[-1] if older else None


def compute_plan(existing_release: str | None, current_release: str | None,
                 release_image_id: str | None, backend: list[dict],
                 env_in_sync: bool) -> tuple[dict, list[str]]:
    """Decide the deploy steps. Returns (plan, reasons).

    backend: the containers of the project+service ({image_id, running, state, name}).
    """
    reasons = []
    upload = existing_release is None
    if upload:
        reasons.append("no release on the instance holds this content: upload it")
    build = release_image_id is None
    if build:
        reasons.append("the release image is missing: build it")
    env = not env_in_sync
    if env:
        reasons.append(ENV_REASON)

    activate = False
    if existing_release is None or current_release != existing_release:
        activate = True
        reasons.append(f"current is {current_release or 'unset'}, not the release")
    running = [c for c in backend if c.get("running")]
    if not running:
        activate = True
        reasons.append("no running backend container")
    elif release_image_id is None or any(c.get("image_id") != release_image_id for c in running):
        activate = True
        reasons.append("the running backend container does not run the release image")
    if env:
        activate = True
    plan = {
        "upload": upload,
        "release_id": existing_release,
        "env": env,
        "build": build,
        "activate": activate,
    }
    return plan, reasons


def needs_adoption(entries: list[str] | set[str] | None) -> bool:
    """app_root entries (None when app_root does not exist) -> is it a hand-managed checkout?

    It is when it has no ``releases/`` but has a compose file or a git checkout.
    """
    if entries is None:
        return False
    names = set(entries)
    return "releases" not in names and any(m in names for m in ADOPTION_MARKERS)


def aside_path(app_root: str, stamp: str, taken: set[str] | frozenset[str] = frozenset()) -> str:
    """``<app_root>.pre-ansible-<stamp>`` (stamp: UTC %Y%m%dT%H%M%SZ); -2, -3... when taken."""
    base = os.path.normpath(app_root) + ASIDE_INFIX + stamp
    candidate, n = base, 1
    while candidate in taken:
        n += 1
        candidate = f"{base}-{n}"
    return candidate


def release_zero_stamp(now: datetime, next_release_id: str | None = None) -> str:
    """UTC stamp of release zero (the adopted hand-managed checkout).

    The adoption time, but always before the release being deployed (its id was named a few
    seconds earlier on the controller), so release zero sorts as the older one.
    """
    if now.tzinfo is None:
        now = now.replace(tzinfo=timezone.utc)  # noqa: UP017
    now = now.astimezone(timezone.utc)  # noqa: UP017
    if next_release_id and is_release_id(next_release_id):
        nxt = datetime.strptime(next_release_id[:16], STAMP_FORMAT).replace(
            tzinfo=timezone.utc)  # noqa: UP017
        now = min(now, nxt - timedelta(seconds=1))
    return now.strftime(STAMP_FORMAT)


def staging_path(app_root: str, stamp: str) -> str:
    """``<app_root>.adopting-<stamp>``: where adoption builds the new layout."""
    return os.path.normpath(app_root) + STAGING_INFIX + stamp


NOT_TOUCHED = "-- the running backend was not touched"


def rescue_plan(compose_result: dict | None, release_id: str | None) -> dict:
    """What a failed deploy must undo, from compose_release's (possibly failed) result.

    Roll back only when compose_release switched ``current``: to the release ``current``
    pointed at when it switched (``previous_release``, also returned on failure; on the first
    deploy after adoption that is release zero). Returns {rollback_to, note}: rollback_to is ''
    when there is nothing to undo, note is the tail of the failure message.
    """
    result = compose_result if isinstance(compose_result, dict) else {}
    previous = result.get("previous_release") or ""
    release = release_id or "the release"
    if result.get("switched"):
        if previous and previous != release_id:
            return {"rollback_to": previous, "note": f"-- rolled back to {previous}"}
        return {"rollback_to": "",
                "note": f"-- no previous release to roll back to; left {release} for diagnosis "
                        "(ansible-playbook playbooks/diagnose.yml)"}
    touched = result.get("recreated") or (result.get("changed") and not result.get("built"))
    if release_id and previous == release_id and touched and not result.get("skipped"):
        return {"rollback_to": "",
                "note": f"-- current already pointed at {release} before this deploy and its "
                        "container was recreated, nothing to switch back; see "
                        "ansible-playbook playbooks/diagnose.yml or roll back with "
                        "playbooks/rollback.yml"}
    return {"rollback_to": "", "note": NOT_TOUCHED}
