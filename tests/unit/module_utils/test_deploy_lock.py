"""Tests of module_utils/deploy_lock.py, on a real lock file in tmp_path."""

from __future__ import annotations

import json
import os
from datetime import datetime

from ansible_collections.atp.deploy.plugins.module_utils import deploy_lock as dl

WHEN = datetime(2026, 11, 24, 10, 15, 0)


def rec(token: str = "tok-a", holder: str = "alice@laptop", release: str = "0123456789ab"):
    return dl.new_record(token, holder, release, WHEN)


def test_new_record_has_no_pid_and_utc_start():
    assert rec() == {"token": "tok-a", "holder": "alice@laptop", "release": "0123456789ab",
                     "started": "2026-11-24T10:15:00Z"}
    assert dl.new_record("t", "", "", WHEN)["holder"] == "unknown"


def test_acquire_creates_the_file_once(tmp_path):
    path = str(tmp_path / dl.LOCK_NAME)
    acquired, lock = dl.try_acquire(path, rec())
    assert acquired is True and lock == rec()
    assert json.loads((tmp_path / dl.LOCK_NAME).read_text()) == rec()
    assert os.stat(path).st_mode & 0o777 == dl.LOCK_MODE


def test_second_holder_is_refused_and_sees_the_first(tmp_path):
    path = str(tmp_path / dl.LOCK_NAME)
    dl.try_acquire(path, rec())
    acquired, lock = dl.try_acquire(path, rec("tok-b", "bob@ci"))
    assert acquired is False and lock == rec()
    assert json.loads((tmp_path / dl.LOCK_NAME).read_text())["token"] == "tok-a"


def test_own_token_is_reentrant_and_keeps_the_first_start(tmp_path):
    path = str(tmp_path / dl.LOCK_NAME)
    dl.try_acquire(path, rec())
    later = dl.new_record("tok-a", "alice@laptop", "x", datetime(2026, 11, 24, 11, 0, 0))
    acquired, lock = dl.try_acquire(path, later)
    assert acquired is True and lock["started"] == "2026-11-24T10:15:00Z"


def test_corrupt_or_empty_lock_counts_as_held(tmp_path):
    path = tmp_path / dl.LOCK_NAME
    path.write_text("")
    seen = dl.read_lock(str(path))
    assert seen["token"] is None and seen["holder"].startswith("unknown (corrupt")
    assert seen["started"].endswith("Z")
    acquired, _ = dl.try_acquire(str(path), rec())
    assert acquired is False
    assert dl.release_lock(str(path), "tok-a") is False and path.exists()
    assert dl.break_lock(str(path), seen) is True and not path.exists()


def test_release_only_our_token(tmp_path):
    path = str(tmp_path / dl.LOCK_NAME)
    dl.try_acquire(path, rec())
    assert dl.release_lock(path, "tok-b") is False and os.path.exists(path)
    assert dl.release_lock(path, "") is False and dl.release_lock(path, None) is False
    assert dl.release_lock(path, "tok-a") is True and not os.path.exists(path)
    assert dl.release_lock(path, "tok-a") is False


def test_break_only_the_lock_seen(tmp_path):
    path = str(tmp_path / dl.LOCK_NAME)
    dl.try_acquire(path, rec())
    seen = dl.read_lock(path)
    os.unlink(path)
    dl.try_acquire(path, rec("tok-c", "carol@ci"))
    assert dl.break_lock(path, seen) is False
    assert dl.read_lock(path)["token"] == "tok-c"
    assert dl.break_lock(str(tmp_path / "none"), seen) is False


def test_read_lock_missing_and_public_view(tmp_path):
    assert dl.read_lock(str(tmp_path / "none")) is None
    assert dl.public_view(None) is None
    assert dl.public_view(rec()) == {"holder": "alice@laptop", "started": "2026-11-24T10:15:00Z",
                                     "release": "0123456789ab"}


def test_held_message_is_one_line_with_what_to_do():
    msg = dl.held_message(rec())
    assert msg == ("deploy lock held by alice@laptop since 2026-11-24T10:15:00Z for release "
                   "0123456789ab: wait for it to finish (or -e deploy_lock_wait=SECONDS); if its "
                   "holder died, break it with -e deploy_break_lock=true")
    assert "(still held after waiting 30 s)" in dl.held_message(rec(), 30)
