"""Every remote step after the plan call holds the deploy lock (lock_token): it renews the lock
at its start, and stops with lock_lost=true, changing nothing, when the run lost it. The steps
that return command output mask the env values of the instance in it."""

from __future__ import annotations

import http.server
import json
import socket
import threading
from datetime import datetime, timezone

import pytest
from ansible_collections.atp.deploy.plugins.module_utils import deploy_lock
from ansible_collections.atp.deploy.plugins.modules import (
    compose_release,
    env_files,
    release_unpack,
    smoke_check,
)

from .module_runner import install_release, run_module

MINE, THEIRS = "tok-mine", "tok-theirs"
SECRET = "sk-live-5e6f7a8b9c"


def take(app_root, token: str, holder: str) -> dict:
    record = deploy_lock.new_record(token, holder, "r", datetime.now(timezone.utc))  # noqa: UP017
    (app_root / deploy_lock.LOCK_NAME).write_text(json.dumps(record))
    return record


def assert_lost(result: dict, theirs: dict) -> None:
    assert result["failed"] is True and result["lock_lost"] is True, result.get("msg")
    assert result["msg"] == (f"deploy lock lost: now held by bob@ci since {theirs['started']}; "
                             "this run stops without changing anything else")
    assert result["lock_holder"]["holder"] == "bob@ci"


@pytest.fixture
def releases(app_root):
    old = install_release(app_root, {"docker-compose.yml": "old\n"}, "2026-11-01T00:00:00",
                          current=True)
    return old, install_release(app_root)


def test_compose_release_stops_before_anything_when_the_lock_is_lost(app_root, releases,
                                                                     docker):
    old, new = releases
    theirs = take(app_root, THEIRS, "bob@ci")
    result = run_module(compose_release, {"app_root": str(app_root), "release_id": new,
                                          "lock_token": MINE})
    assert_lost(result, theirs)
    assert result["switched"] is False and result["built"] is False
    assert docker.argvs == [] and (app_root / "current").readlink().name == old
    assert json.loads((app_root / deploy_lock.LOCK_NAME).read_text()) == theirs


def test_compose_release_checks_again_after_the_build(app_root, releases, docker,
                                                      monkeypatch):
    old, new = releases
    take(app_root, MINE, "alice@laptop")
    real_renew = deploy_lock.renew
    calls = []

    def renew(path, token, step, now=None):
        calls.append(step)
        if len(calls) == 2:  # the lock was broken while the image built
            take(app_root, THEIRS, "bob@ci")
        return real_renew(path, token, step, now)

    monkeypatch.setattr(deploy_lock, "renew", renew)
    result = run_module(compose_release, {"app_root": str(app_root), "release_id": new,
                                          "lock_token": MINE})
    assert result["lock_lost"] is True and result["built"] is True
    assert result["switched"] is False and (app_root / "current").readlink().name == old
    assert not any("up" in argv for argv in docker.argvs if argv[:1] == ["compose"])


def test_compose_release_renews_our_lock_and_masks_build_output(app_root, releases, docker):
    _old, new = releases
    take(app_root, MINE, "alice@laptop")
    (app_root / "shared" / ".env.aws").write_text(f"EXCHANGE_CUSTOM_API_SECRET='{SECRET}'\n")
    docker.state["build"] = {"rc": 1, "output": f"ERROR: step printed {SECRET}\n"}
    docker.save()
    result = run_module(compose_release, {"app_root": str(app_root), "release_id": new,
                                          "lock_token": MINE})
    assert result["failed"] is True and "lock_lost" not in result
    assert SECRET not in json.dumps(result) and "step printed ********" in result["msg"]
    lock = json.loads((app_root / deploy_lock.LOCK_NAME).read_text())
    assert lock["token"] == MINE and lock["step"] == "compose_release"


def test_release_unpack_stops_when_the_lock_is_lost(app_root, tmp_path):
    theirs = take(app_root, THEIRS, "bob@ci")
    before = sorted(p.name for p in app_root.rglob("*"))
    result = run_module(release_unpack, {
        "app_root": str(app_root), "archive": str(tmp_path / "missing.tar.gz"),
        "archive_sha256": "0" * 64, "release_id": "20261124T101500Z-0123456789ab",
        "lock_token": MINE})
    assert_lost(result, theirs)
    assert sorted(p.name for p in app_root.rglob("*")) == before


def test_env_files_stops_when_the_lock_is_lost(app_root):
    theirs = take(app_root, THEIRS, "bob@ci")
    before = sorted(p.name for p in app_root.rglob("*"))
    result = run_module(env_files, {
        "app_root": str(app_root), "release_id": "20261124T101500Z-0123456789ab",
        "files": {".env": json.dumps({"A": "1"})}, "lock_token": MINE})
    assert_lost(result, theirs)
    assert sorted(p.name for p in app_root.rglob("*")) == before


def test_no_token_or_check_mode_skip_the_check(app_root):
    take(app_root, THEIRS, "bob@ci")
    result = run_module(smoke_check, {"base_url": "http://127.0.0.1:9", "timeout": 0,
                                      "checks": [{"path": "/x"}], "app_root": str(app_root)})
    assert "lock_lost" not in result
    result = run_module(smoke_check, {"base_url": "http://127.0.0.1:9", "timeout": 0,
                                      "checks": [{"path": "/x"}], "app_root": str(app_root),
                                      "lock_token": MINE}, check_mode=True)
    assert "lock_lost" not in result


class SecretHandler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = json.dumps({"status": "broken", "echo": f"key={SECRET}"}).encode()
        self.send_response(500)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *_args):
        pass


@pytest.fixture
def echo_server():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = http.server.ThreadingHTTPServer(("127.0.0.1", port), SecretHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{port}"
    server.shutdown()
    server.server_close()


def test_smoke_check_stops_when_the_lock_is_lost(app_root, echo_server):
    theirs = take(app_root, THEIRS, "bob@ci")
    result = run_module(smoke_check, {"base_url": echo_server, "checks": [{"path": "/x"}],
                                      "app_root": str(app_root), "lock_token": MINE})
    assert_lost(result, theirs)
    assert result["results"] == [] and result["attempts"] == 0


def test_smoke_check_masks_env_values_in_bodies(app_root, echo_server):
    take(app_root, MINE, "alice@laptop")
    (app_root / "shared" / ".env.aws").write_text(f"EXCHANGE_CUSTOM_API_KEY={SECRET}\n")
    result = run_module(smoke_check, {"base_url": echo_server, "timeout": 0,
                                      "checks": [{"path": "/x", "expect_status": 200}],
                                      "app_root": str(app_root), "lock_token": MINE})
    assert result["failed"] is True and result["attempts"] >= 1
    assert SECRET not in json.dumps(result)
    assert "key=********" in json.dumps(result)
    assert json.loads((app_root / deploy_lock.LOCK_NAME).read_text())["step"] == "smoke_check"
