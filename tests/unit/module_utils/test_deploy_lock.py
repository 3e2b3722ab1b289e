"""Tests of module_utils/deploy_lock.py, on a real lock file in tmp_path."""

from __future__ import annotations

import json
import os
import threading
from datetime import datetime, timedelta, timezone

import pytest
from ansible_collections.atp.deploy.plugins.module_utils import deploy_lock as dl

UTC = timezone.utc  # noqa: UP017
WHEN = datetime(2026, 11, 24, 10, 15, 0, tzinfo=UTC)
LATER = WHEN + timedelta(seconds=600)
EXPIRED = WHEN + timedelta(seconds=1801)


def rec(token: str = "tok-a", holder: str = "alice@laptop", release: str = "0123456789ab",
        when: datetime = WHEN, ttl: int = 1800):
    return dl.new_record(token, holder, release, when, ttl)


def test_new_record_carries_holder_start_and_expiry():
    assert rec() == {"version": 2, "token": "tok-a", "holder": "alice@laptop",
                     "release": "0123456789ab", "started": "2026-11-24T10:15:00Z",
                     "renewed": "2026-11-24T10:15:00Z", "step": "release_state", "ttl": 1800,
                     "expires": "2026-11-24T10:45:00Z"}
    assert dl.new_record("t", "", "", WHEN)["holder"] == "unknown"


def test_acquire_creates_the_file_once(tmp_path):
    path = str(tmp_path / dl.LOCK_NAME)
    acquired, lock, taken = dl.try_acquire(path, rec(), WHEN)
    assert acquired is True and lock == rec() and taken is None
    assert json.loads((tmp_path / dl.LOCK_NAME).read_text()) == rec()
    assert os.stat(path).st_mode & 0o777 == dl.LOCK_MODE
    assert not [n for n in os.listdir(tmp_path) if n.endswith(".tmp")], "no temp file left"


def test_second_holder_is_refused_while_the_lock_lives(tmp_path):
    path = str(tmp_path / dl.LOCK_NAME)
    dl.try_acquire(path, rec(), WHEN)
    acquired, lock, taken = dl.try_acquire(path, rec("tok-b", "bob@ci", when=LATER), LATER)
    assert acquired is False and lock == rec() and taken is None
    assert json.loads((tmp_path / dl.LOCK_NAME).read_text())["token"] == "tok-a"


def test_an_expired_lock_is_taken_over_and_says_whose_it_was(tmp_path):
    path = str(tmp_path / dl.LOCK_NAME)
    dl.try_acquire(path, rec(), WHEN)
    mine = rec("tok-b", "bob@ci", when=EXPIRED)
    acquired, lock, taken = dl.try_acquire(path, mine, EXPIRED)
    assert acquired is True and lock == mine
    assert taken["token"] == "tok-a" and taken["holder"] == "alice@laptop"
    message = dl.takeover_message(taken)
    assert "alice@laptop" in message and "2026-11-24T10:15:00Z" in message
    assert "tok-a" not in message and "\n" not in message
    assert dl.read_lock(path)["token"] == "tok-b"


def test_own_token_is_reentrant_keeps_the_start_and_renews(tmp_path):
    path = str(tmp_path / dl.LOCK_NAME)
    dl.try_acquire(path, rec(), WHEN)
    acquired, lock, taken = dl.try_acquire(path, rec(when=LATER), LATER)
    assert acquired is True and taken is None
    assert lock["started"] == "2026-11-24T10:15:00Z"
    assert lock["expires"] == dl.utc_iso(LATER + timedelta(seconds=1800))


def test_renew_moves_the_expiry_and_names_the_step(tmp_path):
    path = str(tmp_path / dl.LOCK_NAME)
    dl.try_acquire(path, rec(ttl=900), WHEN)
    ok, lock = dl.renew(path, "tok-a", "compose_release", LATER)
    assert ok is True and lock["step"] == "compose_release"
    assert lock["renewed"] == dl.utc_iso(LATER) and lock["ttl"] == 900
    assert lock["expires"] == dl.utc_iso(LATER + timedelta(seconds=900))
    assert dl.read_lock(path) == lock


def test_renew_of_a_lost_lock_changes_nothing_and_names_the_new_holder(tmp_path):
    path = str(tmp_path / dl.LOCK_NAME)
    dl.try_acquire(path, rec(), WHEN)
    dl.try_acquire(path, rec("tok-b", "bob@ci", when=EXPIRED), EXPIRED)
    before = (tmp_path / dl.LOCK_NAME).read_text()
    ok, current = dl.renew(path, "tok-a", "smoke_check", EXPIRED)
    assert ok is False and current["holder"] == "bob@ci"
    assert (tmp_path / dl.LOCK_NAME).read_text() == before
    assert dl.lost_message(current) == (
        f"deploy lock lost: now held by bob@ci since {dl.utc_iso(EXPIRED)}; this run stops "
        "without changing anything else")
    os.unlink(path)
    ok, current = dl.renew(path, "tok-a", "smoke_check")
    assert ok is False and current is None and not os.path.exists(path), "renew never takes"
    assert "held by nobody" in dl.lost_message(None)


def test_an_old_format_or_corrupt_lock_expires_after_its_last_write(tmp_path):
    path = tmp_path / dl.LOCK_NAME
    path.write_text(json.dumps({"token": "old", "holder": "carol", "release": "r",
                                "started": "2026-11-24T10:00:00Z"}))
    written = WHEN.timestamp()
    os.utime(path, (written, written))
    seen = dl.read_lock(str(path))
    assert seen["renewed"] == "2026-11-24T10:15:00Z"
    assert seen["expires"] == "2026-11-24T10:45:00Z" and seen["version"] == 1
    assert not dl.is_expired(seen, LATER) and dl.is_expired(seen, EXPIRED)
    path.write_text("")
    os.utime(path, (written, written))
    corrupt = dl.read_lock(str(path))
    assert corrupt["token"] is None and corrupt["holder"].startswith("unknown (corrupt")
    acquired, _lock, _taken = dl.try_acquire(str(path), rec(when=LATER), LATER)
    assert acquired is False
    acquired, _lock, taken = dl.try_acquire(str(path), rec(when=EXPIRED), EXPIRED)
    assert acquired is True and taken["holder"].startswith("unknown (corrupt")


def test_release_only_our_token(tmp_path):
    path = str(tmp_path / dl.LOCK_NAME)
    dl.try_acquire(path, rec(), WHEN)
    assert dl.release_lock(path, "tok-b") is False and os.path.exists(path)
    assert dl.release_lock(path, "") is False and dl.release_lock(path, None) is False
    assert dl.release_lock(path, "tok-a") is True and not os.path.exists(path)
    assert dl.release_lock(path, "tok-a") is False


def test_release_any_removes_whatever_is_there(tmp_path):
    path = str(tmp_path / dl.LOCK_NAME)
    assert dl.release_any(path) is None
    dl.try_acquire(path, rec(), WHEN)
    assert dl.release_any(path)["holder"] == "alice@laptop" and not os.path.exists(path)


def test_break_only_the_lock_seen(tmp_path):
    path = str(tmp_path / dl.LOCK_NAME)
    dl.try_acquire(path, rec(), WHEN)
    seen = dl.read_lock(path)
    os.unlink(path)
    dl.try_acquire(path, rec("tok-c", "carol@ci"), WHEN)
    assert dl.break_lock(path, seen) is False
    assert dl.read_lock(path)["token"] == "tok-c"
    assert dl.break_lock(str(tmp_path / "none"), seen) is False


def test_concurrent_takeovers_have_exactly_one_winner(tmp_path):
    path = str(tmp_path / dl.LOCK_NAME)
    dl.try_acquire(path, rec(), WHEN)
    wins = []

    def take(n: int) -> None:
        acquired, _lock, _taken = dl.try_acquire(path, rec(f"tok-{n}", f"h{n}", when=EXPIRED),
                                                 EXPIRED)
        if acquired:
            wins.append(n)

    threads = [threading.Thread(target=take, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    assert len(wins) == 1
    assert dl.read_lock(path)["token"] == f"tok-{wins[0]}"


def test_public_view_and_describe_never_show_the_token():
    assert dl.public_view(None) is None
    view = dl.public_view(rec(), LATER)
    assert "token" not in view and view["expired"] is False and view["expires_in"] == 1200
    assert dl.public_view(rec(), EXPIRED)["expired"] is True
    line = dl.describe(rec(), LATER)
    assert "tok-a" not in line and "alice@laptop" in line and "in 1200 s" in line
    assert dl.describe(None) == "not held"


def test_held_message_is_one_line_with_what_to_do():
    msg = dl.held_message(rec(), now=LATER)
    assert msg.startswith("deploy lock held by alice@laptop since 2026-11-24T10:15:00Z for "
                          "release 0123456789ab (last renewed 2026-11-24T10:15:00Z at step "
                          "release_state, expires 2026-11-24T10:45:00Z): wait")
    assert "lock_action=release" in msg and "deploy_break_lock=true" in msg
    assert "(still held after waiting 30 s)" in dl.held_message(rec(), 30)
    assert "\n" not in msg and "tok-a" not in msg


@pytest.mark.parametrize(("ttl", "ok"), [(1800, True), (60, True), (59, False), (0, False),
                                         (True, False), ("1800", False)])
def test_ttl_problem(ttl, ok):
    assert (dl.ttl_problem(ttl) is None) is ok


class FakeModule:
    def __init__(self, check_mode: bool = False):
        self.check_mode = check_mode
        self.failed = None

    def fail_json(self, **kw):
        self.failed = kw
        raise SystemExit(1)


def test_hold_renews_or_fails_with_lock_lost(tmp_path):
    path = str(tmp_path / dl.LOCK_NAME)
    dl.try_acquire(path, rec(), WHEN)
    module = FakeModule()
    dl.hold(module, path, "tok-a", "env_files")
    assert module.failed is None and dl.read_lock(path)["step"] == "env_files"
    dl.hold(module, path, "", "env_files")
    dl.hold(FakeModule(check_mode=True), path, "tok-x", "env_files")
    with pytest.raises(SystemExit):
        dl.hold(module, path, "tok-x", "env_files", {"changed": False})
    assert module.failed["lock_lost"] is True and module.failed["changed"] is False
    assert module.failed["msg"].startswith("deploy lock lost: now held by alice@laptop")
    assert module.failed["lock_holder"]["holder"] == "alice@laptop"


def test_module_lock_file():
    assert dl.module_lock_file({"lock_file": "/x/l"}, "/app") == "/x/l"
    assert dl.module_lock_file({}, "/app") == "/app/.deploy.lock"
    assert dl.module_lock_file({}, None) is None
