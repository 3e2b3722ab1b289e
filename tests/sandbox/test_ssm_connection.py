"""The real amazon.aws.aws_ssm connection plugin against the sandbox stand-ins."""

from __future__ import annotations

import hashlib
import os
import re
import time
from urllib.parse import unquote

import pytest
from ssm_sandbox import (
    BUCKET,
    CONTAINER,
    INSTANCE_ID,
    REPO,
    docker_exec,
    for_sessions,
    of_kind,
    wait_until,
)

MIB = 1024 * 1024
BIG_SIZE = 50 * MIB


def test_ping_opens_and_terminates_exactly_one_session(ansible, events):
    offset = events.offset()
    run = ansible(INSTANCE_ID, "-m", "ansible.builtin.ping", verbose=True)

    assert run.rc == 0, run.describe()
    assert run.result().get("ping") == "pong", run.describe()
    # every StartSession the plugin makes is printed at -vvvv: this run made exactly one
    assert len(run.session_ids) == 1, run.describe()
    session = run.session_ids[0]

    new = events.wait_for(offset, lambda e: e.get("kind") == "session_end"
                          and e.get("session") == session, timeout=5)
    mine = for_sessions(new, session)
    started = of_kind(new, "start_session", session=session)
    terminated = of_kind(new, "terminate_session", session=session)
    assert len(started) == 1, mine
    assert started[0]["target"] == INSTANCE_ID
    assert len(terminated) == 1, mine
    assert terminated[0]["ts"] >= started[0]["ts"]
    assert len(of_kind(new, "plugin_start", session=session)) == 1, mine
    assert len(of_kind(new, "session_end", session=session)) == 1, mine


@pytest.mark.parametrize(("become", "expected"), [(False, "ssm-user"), (True, "root")])
def test_become(ansible, become, expected):
    args = ["-m", "ansible.builtin.command", "-a", "whoami"] + (["-b"] if become else [])
    run = ansible(INSTANCE_ID, *args)

    assert run.rc == 0, run.describe()
    assert run.result()["stdout"] == expected, run.describe()


@pytest.mark.parametrize("module", ["ansible.builtin.raw", "ansible.builtin.shell"])
def test_unicode_round_trips(ansible, module):
    # out: bytes built on the instance (octal escapes work in bash and dash);
    # in: UTF-8 literals sent from the controller as part of the command
    command = r"printf 'h\303\251llo \342\230\203\n'; echo 'ünï ☃ 日本'"
    run = ansible(INSTANCE_ID, "-m", module, "-a", command)

    assert run.rc == 0, run.describe()
    # raw output comes straight off the session's terminal: lines end in \r\r\n, as on AWS
    lines = re.split(r"\r*\n", run.result()["stdout"].rstrip("\r\n"))
    assert lines == ["héllo ☃", "ünï ☃ 日本"], run.describe()


def test_copy_then_fetch_round_trip(ansible, remote_dir, tmp_path):
    payload = ("héllo ☃ from the controller\n".encode() + bytes(range(256)) * 64
               + os.urandom(4096))
    src = tmp_path / "small.bin"
    src.write_bytes(payload)
    remote = f"{remote_dir}/small.bin"

    run = ansible(INSTANCE_ID, "-m", "ansible.builtin.copy", "-a", f"src={src} dest={remote}")
    assert run.rc == 0, run.describe()
    assert run.result()["changed"] is True
    assert run.result()["checksum"] == hashlib.sha1(payload).hexdigest(), run.describe()

    fetched = tmp_path / "fetched.bin"
    run = ansible(INSTANCE_ID, "-m", "ansible.builtin.fetch",
                  "-a", f"src={remote} dest={fetched} flat=yes")
    assert run.rc == 0, run.describe()
    assert fetched.read_bytes() == payload


def test_copy_50mb_file_through_s3(ansible, events, remote_dir, tmp_path, boto_session):
    src = tmp_path / "big.bin"
    digest = hashlib.sha256()
    with open(src, "wb") as handle:
        for _ in range(BIG_SIZE // MIB):
            chunk = os.urandom(MIB)
            digest.update(chunk)
            handle.write(chunk)
    remote = f"{remote_dir}/big.bin"

    offset = events.offset()
    run = ansible(INSTANCE_ID, "-m", "ansible.builtin.copy",
                  "-a", f"src={src} dest={remote}", timeout=180)
    assert run.rc == 0, run.describe()
    assert run.result()["changed"] is True, run.describe()

    check = ansible(INSTANCE_ID, "-m", "ansible.builtin.command", "-a", f"sha256sum {remote}")
    assert check.rc == 0, check.describe()
    assert check.result()["stdout"].split()[0] == digest.hexdigest()

    # the transfer went through S3: PUT by the controller (boto3 upload_fileobj: multipart
    # above 8 MiB, so several PUT part uploads to one key), GET by the instance, then DELETE
    s3 = of_kind(events.since(offset), "s3")
    by_key: dict[str, list[dict]] = {}
    for event in s3:
        by_key.setdefault(event["key"], []).append(event)
    put_bytes = {key: sum(e["bytes_in"] for e in evs if e["method"] == "PUT" and
                          e["status"] == 200) for key, evs in by_key.items()}
    big_keys = [key for key, total in put_bytes.items() if total >= BIG_SIZE]
    assert len(big_keys) == 1, f"expected one ~50 MB upload, got {put_bytes}"
    key = big_keys[0]
    assert key.startswith(f"/{BUCKET}/{INSTANCE_ID}/"), key
    assert BIG_SIZE <= put_bytes[key] <= BIG_SIZE * 1.01, put_bytes[key]
    gets = [e for e in by_key[key] if e["method"] == "GET" and e["status"] == 200]
    assert sum(e["bytes_out"] for e in gets) == BIG_SIZE, by_key[key]
    assert any(e["method"] == "DELETE" for e in by_key[key]), by_key[key]
    # ...and the object it went through is gone
    object_key = unquote(key.split("/", 2)[2])
    listed = boto_session["s3"].list_objects_v2(Bucket=BUCKET, Prefix=object_key)
    assert listed["KeyCount"] == 0, listed.get("Contents")


def test_bucket_empty_after_transfers(boto_session):
    """Runs after the transfer tests above: the plugin removed every object it staged."""
    s3 = boto_session["s3"]
    seen: list = []

    def empty() -> bool:
        listed = s3.list_objects_v2(Bucket=BUCKET)
        seen[:] = [obj["Key"] for obj in listed.get("Contents", [])]
        return listed["KeyCount"] == 0

    # a bounded grace period only for transfers other users of the sandbox have in flight;
    # an object left behind by a finished transfer stays and fails this
    assert wait_until(empty, timeout=5, interval=0.5), f"bucket not empty: {seen}"


def test_command_outliving_ssm_timeout_fails_and_leaves_nothing(ansible, events):
    # positive control: the check at the end does see a `sleep 30` running in the instance
    started = docker_exec("sleep", "30", options=("-d",))
    assert started.returncode == 0, started.stderr
    found: list[str] = []

    def sleep_seen() -> bool:
        found[:] = docker_exec("pgrep", "-f", "sleep 30").stdout.split()
        return bool(found)

    assert wait_until(sleep_seen, 5), "pgrep control did not find `sleep 30`"
    assert docker_exec("kill", *found).returncode == 0
    assert wait_until(lambda: docker_exec("pgrep", "-f", "sleep 30").returncode == 1, 5)

    timeout = 5
    offset = events.offset()
    run = ansible(INSTANCE_ID, "-m", "ansible.builtin.shell", "-a", "sleep 30",
                  "-e", f"ansible_aws_ssm_timeout={timeout}", timeout=90, verbose=True)

    assert run.rc != 0, run.describe()
    result = run.result()
    assert result.get("unreachable") or result.get("failed"), run.describe()
    assert "timeout" in result["msg"].lower(), run.describe()
    assert INSTANCE_ID in result["msg"], run.describe()

    sessions = run.session_ids
    assert sessions, run.describe()
    last = sessions[-1]
    new = events.wait_for(offset, lambda e: e.get("kind") == "session_end"
                          and e.get("session") == last, timeout=10)
    mine = for_sessions(new, sessions)
    # amazon.aws 10.1.2 retries a timed-out command: reconnection_retries defaults to 3 and
    # ansible_aws_ssm_retries cannot lower it (read in __init__, before host vars are set), so
    # the module runs up to 4 times, each attempt cut at the timeout, then a back-off pause of
    # 2**attempt - 1 s before the session is terminated and the next attempt starts
    attempts = []
    for session in sessions:
        ran = [e for e in of_kind(new, "command", session=session)
               if e.get("head", "").startswith("echo | /usr/bin/python3 ")]
        ended = of_kind(new, "terminate_session", session=session)
        if ran:
            assert ended, f"session {session} ran the module but was never terminated: {mine}"
            attempts.append(ended[0]["ts"] - ran[0]["ts"])
    assert 1 <= len(attempts) <= 4, (attempts, mine)
    for number, duration in enumerate(attempts):
        pause = 0 if number == len(attempts) - 1 else 2**number - 1
        # each attempt is cut at the plugin's timeout (1 s polling, whole-second rounding):
        # well under the 30 s the command wanted
        assert duration - pause < timeout + 3, attempts
    assert run.elapsed < len(attempts) * (timeout + 3) + 4 + 20, (run.elapsed, attempts)

    # the session's processes died with it (the stand-in kills them on terminate)
    leftover = docker_exec("pgrep", "-af", "sleep 30")
    assert leftover.returncode == 1, f"`sleep 30` still running in {CONTAINER}: {leftover.stdout}"


def test_unknown_instance_is_target_not_connected(ansible, events, tmp_path):
    unknown = "i-0123456789abcdef0"
    inventory = tmp_path / "inventory"
    inventory.mkdir()
    (inventory / "hosts.yml").write_text(f"backend:\n  hosts:\n    {unknown}:\n")
    (inventory / "group_vars").symlink_to(REPO / "inventory" / "sandbox" / "group_vars")

    offset = events.offset()
    started = time.monotonic()
    run = ansible("all", "-i", str(inventory), "-m", "ansible.builtin.ping", verbose=True)

    assert run.rc != 0, run.describe()
    msg = run.result(unknown)["msg"]
    assert "TargetNotConnected" in msg, run.describe()
    assert unknown in msg, run.describe()
    assert run.session_ids == [], "a session was opened for an unknown target"
    assert time.monotonic() - started < 60

    new = events.since(offset)
    assert of_kind(new, "start_session_refused", target=unknown), [
        e for e in new if e.get("target") == unknown]
    touched = [e for e in new if e.get("kind") in ("start_session", "plugin_start")
               and e.get("target") == unknown]
    assert touched == [], touched
