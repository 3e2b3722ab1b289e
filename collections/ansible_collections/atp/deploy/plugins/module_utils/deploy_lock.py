# Copyright: atp.deploy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The deploy lock: one JSON file ``<app_root>/.deploy.lock`` (stdlib only, runs on the instance).

Record (one JSON object, sorted keys, mode 0640)::

    {"version": 2, "token": "<random per run>", "holder": "alice@laptop",
     "release": "<release id or hash prefix>", "started": "2026-11-24T10:15:00Z",
     "renewed": "2026-11-24T10:17:42Z", "step": "compose_release",
     "ttl": 1800, "expires": "2026-11-24T10:47:42Z"}

- Taken by release_state (the plan call). A lock with our token is ours (re-entrant); a lock
  of another run is refused while it lives, and TAKEN OVER once expired (the taker is told whose
  it was, since when and at which step it was last renewed).
- Every later remote step of the run (release_unpack, env_files, compose_release, smoke_check,
  deploy_record) first RENEWS it (``renewed``/``step``/``expires`` rewritten, ``ttl`` kept): a
  lock whose token is no longer ours means the run lost it (expired and taken over, broken with
  deploy_break_lock, released by hand) and that step stops before changing anything.
- Released by deploy_record (only our token), by hand with playbooks/lock.yml, or broken by
  release_state with break_lock (only the exact lock seen).
- A lock file of an older version (no ``expires``) or a corrupt/unreadable one expires ``ttl``
  after its last write (mtime), so no lock outlives its holder forever.

Every read-modify-write runs under ``flock`` on the lock file's directory, so a renewal and a
takeover can never both win; a new lock is created with ``link()`` (fails when one exists).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
from datetime import datetime, timedelta, timezone

LOCK_NAME = ".deploy.lock"
LOCK_MODE = 0o640
VERSION = 2
UNKNOWN = "unknown"
DEFAULT_TTL = 1800
MIN_TTL = 60
# timezone.utc rather than datetime.UTC: this file also runs on instance Pythons < 3.11.
_UTC = timezone.utc  # noqa: UP017
_ACQUIRE_ATTEMPTS = 5
_PUBLIC = ("holder", "started", "release", "renewed", "step", "expires")

# Options every remote step of a deploy takes (module ARGUMENT_SPEC entries); their
# documentation is the doc fragment atp.deploy.deploy_lock.
MODULE_ARGS = {
    "lock_token": {"type": "str", "default": "", "no_log": False},
    "lock_file": {"type": "path"},
}


def now_utc() -> datetime:
    return datetime.now(_UTC)


def utc_iso(when: datetime | None = None) -> str:
    when = when or now_utc()
    if when.tzinfo is None:
        when = when.replace(tzinfo=_UTC)
    return when.astimezone(_UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_iso(text: object) -> datetime | None:
    """``2026-11-24T10:15:00Z`` (or with an offset) -> aware datetime; None when unreadable."""
    if not isinstance(text, str) or not text.strip():
        return None
    value = text.strip()
    if value.endswith("Z"):
        value = value[:-1] + "+00:00"
    try:
        when = datetime.fromisoformat(value)
    except ValueError:
        return None
    return when if when.tzinfo else when.replace(tzinfo=_UTC)


def ttl_problem(ttl: object) -> str | None:
    """Why ttl (seconds) cannot be a lock lifetime, None when it can."""
    if isinstance(ttl, bool) or not isinstance(ttl, int) or ttl < MIN_TTL:
        return (f"deploy_lock_ttl must be a whole number of seconds >= {MIN_TTL}, got {ttl!r}; "
                f"pass e.g. -e deploy_lock_ttl={DEFAULT_TTL} (longer than the slowest single step)")
    return None


def new_record(token: str, holder: str, release: str, when: datetime | None = None,
               ttl: int = DEFAULT_TTL, step: str = "release_state") -> dict:
    """The lock record this run writes (no pid: the holder is a controller, not a process)."""
    when = when or now_utc()
    return {
        "version": VERSION,
        "token": token,
        "holder": holder or UNKNOWN,
        "release": release or UNKNOWN,
        "started": utc_iso(when),
        "renewed": utc_iso(when),
        "step": step or UNKNOWN,
        "ttl": int(ttl),
        "expires": utc_iso(when + timedelta(seconds=int(ttl))),
    }


def _mtime(path: str) -> datetime | None:
    try:
        return datetime.fromtimestamp(os.stat(path).st_mtime, _UTC)
    except OSError:
        return None


def _positive_int(value: object) -> int | None:
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        return None
    return value


def read_lock(path: str, default_ttl: int = DEFAULT_TTL) -> dict | None:
    """The lock record at path (normalised, every key present), None when there is no lock.

    An unreadable or corrupt lock file still counts as held (by ``unknown``); it expires
    default_ttl after its last write, like a lock of an older version without ``expires``.
    """
    try:
        with open(path, encoding="utf-8", errors="replace") as handle:
            text = handle.read()
    except FileNotFoundError:
        return None
    except OSError as exc:
        value, problem = None, f"{UNKNOWN} (unreadable lock file: {exc.strerror})"
    else:
        try:
            value = json.loads(text)
        except ValueError:
            value = None
        problem = None if isinstance(value, dict) else f"{UNKNOWN} (corrupt lock file)"
    mtime = _mtime(path)
    written = utc_iso(mtime) if mtime else UNKNOWN
    if problem:
        value = {"holder": problem}
    ttl = _positive_int(value.get("ttl")) or default_ttl
    started = str(value.get("started") or written)
    # An older lock (no renewed) was last written at its mtime.
    renewed = str(value.get("renewed") or (written if mtime else started))
    expires = value.get("expires") if parse_iso(value.get("expires")) else None
    if expires is None:
        base = parse_iso(renewed) or mtime or now_utc()
        expires = utc_iso(base + timedelta(seconds=ttl))
    return {
        "version": value.get("version") if isinstance(value.get("version"), int) else 1,
        "token": value.get("token") if isinstance(value.get("token"), str) else None,
        "holder": str(value.get("holder") or UNKNOWN),
        "release": str(value.get("release") or UNKNOWN),
        "started": started,
        "renewed": renewed,
        "step": str(value.get("step") or UNKNOWN),
        "ttl": ttl,
        "expires": str(expires),
    }


def is_expired(record: dict | None, now: datetime | None = None) -> bool:
    if record is None:
        return False
    expires = parse_iso(record.get("expires"))
    return expires is not None and (now or now_utc()) >= expires


def public_view(record: dict | None, now: datetime | None = None) -> dict | None:
    """What may be shown of a lock: everything but the token, plus whether it expired."""
    if record is None:
        return None
    view = {k: record.get(k) for k in _PUBLIC}
    expires = parse_iso(record.get("expires"))
    now = now or now_utc()
    view["expired"] = expires is not None and now >= expires
    view["expires_in"] = int((expires - now).total_seconds()) if expires else None
    return view


@contextlib.contextmanager
def _guard(path: str):
    """flock on the lock file's directory: one read-modify-write of the lock at a time."""
    fd = os.open(os.path.dirname(os.path.abspath(path)) or ".", os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing drops the flock


def _write_new(path: str, record: dict) -> bool:
    """Create path holding record, atomically and only if absent. False when it exists."""
    tmp = f"{path}.{os.getpid()}.{os.urandom(4).hex()}.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, LOCK_MODE)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(json.dumps(record, sort_keys=True) + "\n")
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, LOCK_MODE)
        try:
            os.link(tmp, path)
        except FileExistsError:
            return False
        return True
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)


def _replace(path: str, record: dict) -> None:
    """Replace the lock file with record atomically (rename over it)."""
    tmp = f"{path}.{os.getpid()}.{os.urandom(4).hex()}.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, LOCK_MODE)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(json.dumps(record, sort_keys=True) + "\n")
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, LOCK_MODE)
        os.rename(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def try_acquire(path: str, record: dict,
                now: datetime | None = None) -> tuple[bool, dict | None, dict | None]:
    """Take the lock. Returns (acquired, lock record now in place, lock taken over or None).

    Our own token already in place counts as acquired (re-entrant: its start is kept, its
    expiry renewed). Another run's EXPIRED lock is taken over (third item: what it was).
    Raises OSError when the file cannot be written.
    """
    existing = None
    for _attempt in range(_ACQUIRE_ATTEMPTS):
        with _guard(path):
            existing = read_lock(path, record.get("ttl") or DEFAULT_TTL)
            if existing is None:
                if _write_new(path, record):
                    return True, dict(record), None
                continue  # created between our read and link (a run without flock): re-read
            if record.get("token") and existing.get("token") == record["token"]:
                renewed = _renewed(existing, now, record.get("step") or existing["step"])
                _replace(path, renewed)
                return True, renewed, None
            if is_expired(existing, now):
                _replace(path, record)
                return True, dict(record), existing
            return False, existing, None
    return False, existing or read_lock(path), None


def _renewed(record: dict, now: datetime | None, step: str) -> dict:
    when = now or now_utc()
    out = {k: record[k] for k in ("token", "holder", "release", "started", "ttl")}
    out.update(version=VERSION, renewed=utc_iso(when), step=step or UNKNOWN,
               expires=utc_iso(when + timedelta(seconds=int(record["ttl"]))))
    return out


def renew(path: str, token: str, step: str,
          now: datetime | None = None) -> tuple[bool, dict | None]:
    """Renew our lock (new expiry, this step). (True, renewed record) when we still hold it,
    else (False, the lock in place or None): the run lost it. Never takes a lock."""
    with _guard(path):
        current = read_lock(path)
        if current is None or not token or current.get("token") != token:
            return False, current
        renewed = _renewed(current, now, step)
        _replace(path, renewed)
        return True, renewed


def same_lock(a: dict | None, b: dict | None) -> bool:
    if a is None or b is None:
        return False
    return all(a.get(k) == b.get(k) for k in ("token", "holder", "release", "started"))


def break_lock(path: str, seen: dict) -> bool:
    """Remove the lock only if it is still the one seen (not a newer holder's). True if removed."""
    with _guard(path):
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
    with _guard(path):
        current = read_lock(path)
        if current is None or current.get("token") != token:
            return False
        try:
            os.unlink(path)
        except FileNotFoundError:
            return False
        return True


def release_any(path: str) -> dict | None:
    """Remove whatever lock is in place (the operator's `lock.yml -e lock_action=release`).
    Returns the lock removed, None when there was none."""
    with _guard(path):
        current = read_lock(path)
        if current is None:
            return None
        try:
            os.unlink(path)
        except FileNotFoundError:
            return None
        return current


def describe(record: dict | None, now: datetime | None = None) -> str:
    """One line about a lock (never the token)."""
    if record is None:
        return "not held"
    view = public_view(record, now)
    when = (f"expired at {view['expires']}" if view["expired"]
            else f"expires {view['expires']} (in {view['expires_in']} s)")
    return (f"held by {view['holder']} since {view['started']} for release {view['release']}, "
            f"last renewed {view['renewed']} at step {view['step']}, {when}")


def held_message(record: dict, waited: int = 0, now: datetime | None = None) -> str:
    """The one-line failure for a live lock held by another run."""
    view = public_view(record, now)
    after = f" (still held after waiting {waited} s)" if waited > 0 else ""
    return (f"deploy lock held by {view['holder']} since {view['started']} for release "
            f"{view['release']} (last renewed {view['renewed']} at step {view['step']}, "
            f"expires {view['expires']}){after}: wait for it to finish (or -e "
            "deploy_lock_wait=SECONDS; an expired lock is taken over); if its holder died, "
            "release it with ansible-playbook playbooks/lock.yml -e lock_action=release "
            "(or -e deploy_break_lock=true)")


def takeover_message(previous: dict) -> str:
    """The warning when an expired lock was taken over."""
    return (f"took over the expired deploy lock of {previous.get('holder') or UNKNOWN} "
            f"(held since {previous.get('started') or UNKNOWN} for release "
            f"{previous.get('release') or UNKNOWN}, last renewed {previous.get('renewed')} at "
            f"step {previous.get('step')}, expired at {previous.get('expires')}); that run is "
            "gone or stuck: its next step stops when it finds the lock is no longer its own")


def lost_message(current: dict | None) -> str:
    """The one-line failure of a step whose run no longer holds the lock."""
    if current is None:
        who = "now held by nobody (released by hand or broken)"
    else:
        who = (f"now held by {current.get('holder') or UNKNOWN} since "
               f"{current.get('started') or UNKNOWN}")
    return f"deploy lock lost: {who}; this run stops without changing anything else"


def hold(module, lock_file: str | None, token: str | None, step: str,
         extra: dict | None = None) -> None:
    """At the start of a remote step: renew this run's lock, or fail (lock_lost=true).

    module: an AnsibleModule; no token (or check mode) skips the check.
    """
    if not token or module.check_mode:
        return
    if not lock_file:
        module.fail_json(msg="lock_token given without lock_file or app_root; expected the "
                         "deploy lock file to check, pass lock_file", **(extra or {}))
    try:
        ok, current = renew(lock_file, token, step)
    except OSError as exc:
        module.fail_json(msg=f"cannot renew the deploy lock {lock_file}: {exc.strerror or exc}; "
                         "expected to rewrite it (become root), check permissions and disk",
                         lock_lost=False, **(extra or {}))
    if not ok:
        module.fail_json(msg=lost_message(current), lock_lost=True,
                         lock_holder=public_view(current), **(extra or {}))


def module_lock_file(params: dict, app_root: str | None) -> str | None:
    """lock_file param, else <app_root>/.deploy.lock (None without either)."""
    if params.get("lock_file"):
        return params["lock_file"]
    return os.path.join(app_root, LOCK_NAME) if app_root else None
