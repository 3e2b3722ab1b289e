# Copyright: atp.deploy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The deploy lock: one JSON file ``<app_root>/.deploy.lock`` (stdlib only, runs on the instance).

Taken by release_state (O_CREAT|O_EXCL, so exactly one run wins), released by deploy_record.
The record is ``{token, holder, release, started}``; the token is a random string per run, so a
run can recognise its own lock (re-entrant) and never releases someone else's.
"""

from __future__ import annotations

import json
import os
from datetime import datetime, timezone

LOCK_NAME = ".deploy.lock"
LOCK_MODE = 0o640
UNKNOWN = "unknown"
# timezone.utc rather than datetime.UTC: this file also runs on instance Pythons < 3.11.
_UTC = timezone.utc  # noqa: UP017
_ACQUIRE_ATTEMPTS = 5


def utc_iso(when: datetime | None = None) -> str:
    when = when or datetime.now(_UTC)
    if when.tzinfo is None:
        when = when.replace(tzinfo=_UTC)
    return when.astimezone(_UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def new_record(token: str, holder: str, release: str, when: datetime | None = None) -> dict:
    """The lock record this run writes (no pid: the holder is a controller, not a process)."""
    return {
        "token": token,
        "holder": holder or UNKNOWN,
        "release": release or UNKNOWN,
        "started": utc_iso(when),
    }


def _mtime_iso(path: str) -> str:
    try:
        return utc_iso(datetime.fromtimestamp(os.stat(path).st_mtime, _UTC))
    except OSError:
        return UNKNOWN


def read_lock(path: str) -> dict | None:
    """The lock record at path, None when there is no lock.

    An unreadable or corrupt lock file still counts as held (by ``unknown``, since its mtime):
    only break_lock removes it.
    """
    try:
        with open(path, encoding="utf-8", errors="replace") as handle:
            text = handle.read()
    except FileNotFoundError:
        return None
    except OSError as exc:
        return {"token": None, "holder": f"{UNKNOWN} (unreadable lock file: {exc.strerror})",
                "release": UNKNOWN, "started": _mtime_iso(path)}
    try:
        value = json.loads(text)
    except ValueError:
        value = None
    if not isinstance(value, dict):
        return {"token": None, "holder": f"{UNKNOWN} (corrupt lock file)", "release": UNKNOWN,
                "started": _mtime_iso(path)}
    return {
        "token": value.get("token") if isinstance(value.get("token"), str) else None,
        "holder": str(value.get("holder") or UNKNOWN),
        "release": str(value.get("release") or UNKNOWN),
        "started": str(value.get("started") or _mtime_iso(path)),
    }


def public_view(record: dict | None) -> dict | None:
    """What may be shown of a lock that is not ours: everything but the token."""
    if record is None:
        return None
    return {k: record.get(k) for k in ("holder", "started", "release")}


def try_acquire(path: str, record: dict) -> tuple[bool, dict | None]:
    """Take the lock atomically. Returns (acquired, lock record now in place).

    Our own token already in place counts as acquired (re-entrant); the record returned is then
    the one on disk (its original start time). Raises OSError when the file cannot be created.
    """
    existing = None
    for _attempt in range(_ACQUIRE_ATTEMPTS):
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, LOCK_MODE)
        except FileExistsError:
            existing = read_lock(path)
            if existing is None:  # released between open and read: try again
                continue
            if record.get("token") and existing.get("token") == record["token"]:
                return True, existing
            return False, existing
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                handle.write(json.dumps(record, sort_keys=True) + "\n")
                handle.flush()
                os.fsync(handle.fileno())
        except BaseException:
            os.unlink(path)
            raise
        return True, dict(record)
    return False, existing or read_lock(path)


def same_lock(a: dict | None, b: dict | None) -> bool:
    if a is None or b is None:
        return False
    return all(a.get(k) == b.get(k) for k in ("token", "holder", "release", "started"))


def break_lock(path: str, seen: dict) -> bool:
    """Remove the lock only if it is still the one seen (not a newer holder's). True if removed."""
    current = read_lock(path)
    if not same_lock(current, seen):
        return False
    try:
        os.unlink(path)
    except FileNotFoundError:
        return False
    return True


def release_lock(path: str, token: str | None) -> bool:
    """Remove the lock if it holds token (never someone else's). True if removed."""
    if not token:
        return False
    current = read_lock(path)
    if current is None or current.get("token") != token:
        return False
    try:
        os.unlink(path)
    except FileNotFoundError:
        return False
    return True


def held_message(record: dict, waited: int = 0) -> str:
    """The one-line failure for a lock held by another run."""
    after = f" (still held after waiting {waited} s)" if waited > 0 else ""
    return (f"deploy lock held by {record.get('holder') or UNKNOWN} since "
            f"{record.get('started') or UNKNOWN} for release {record.get('release') or UNKNOWN}"
            f"{after}: wait for it to finish (or -e deploy_lock_wait=SECONDS); if its holder "
            "died, break it with -e deploy_break_lock=true")
