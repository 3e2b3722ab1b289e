"""Unit tests of sandbox pieces that need no Docker (sandbox/atp_sandbox)."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import threading
from pathlib import Path

import pytest
from atp_sandbox import config, events, images, netns
from atp_sandbox.engine import SandboxError

EC2_ID = re.compile(r"^i-[0-9a-f]{17}$")


# --------------------------------------------------------------------------- config


def test_first_instance_id_is_the_seed_instance():
    assert config.instance_ids(1) == ["i-08726dc37133b2454"]
    assert config.instance_ids(5)[0] == "i-08726dc37133b2454"


@pytest.mark.parametrize("count", [1, 2, 3, 16, 256])
def test_instance_ids_are_unique_and_ec2_shaped(count):
    ids = config.instance_ids(count)
    assert len(ids) == count
    assert len(set(ids)) == count
    assert all(EC2_ID.match(iid) for iid in ids), ids


def test_instance_ids_are_stable_prefixes():
    """Scaling from N to M instances keeps the first N ids (and their containers)."""
    assert config.instance_ids(8)[:3] == config.instance_ids(3)


def test_container_name():
    assert config.container_name("i-08726dc37133b2454") == "atp-sandbox-i-08726dc37133b2454"


def test_state_round_trip(tmp_path):
    paths = config.Paths(root=tmp_path / "state")
    assert config.load_state(paths) == {"instances": {}}
    state = {"instances": {"i-08726dc37133b2454": {"pid": 42}}, "isolation": "capset"}
    config.save_state(state, paths)
    assert config.load_state(paths) == state
    assert not paths.state.with_suffix(".tmp").exists()


# --------------------------------------------------------------------------- images


@pytest.fixture
def apt_root(tmp_path, monkeypatch):
    """debian_mirror() reading /etc/apt/... from a temp dir instead of the host's."""
    root = tmp_path / "root"
    (root / "etc" / "apt" / "sources.list.d").mkdir(parents=True)
    monkeypatch.setattr(images, "Path", lambda p: root / str(p).lstrip("/"))
    return root / "etc" / "apt"


def test_debian_mirror_from_deb822_sources(apt_root):
    (apt_root / "sources.list.d" / "debian.sources").write_text(
        "Types: deb\n"
        "URIs: http://deb.debian.org/debian\n"
        "Suites: bookworm bookworm-updates\n"
        "Components: main\n"
        "Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg\n"
        "\n"
        "Types: deb\n"
        "URIs: http://deb.debian.org/debian-security\n"
        "Suites: bookworm-security\n")
    assert images.debian_mirror() == "http://deb.debian.org/debian"


def test_debian_mirror_skips_security_and_comments_in_sources_list(apt_root):
    (apt_root / "sources.list").write_text(
        "# deb http://commented.example/debian bookworm main\n"
        "deb-src http://src.example/debian bookworm main\n"
        "deb http://security.debian.org/debian-security bookworm-security main\n"
        "deb [arch=amd64 signed-by=/etc/apt/keyrings/x.gpg] http://mirror.example/debian/ "
        "bookworm main\n")
    assert images.debian_mirror() == "http://mirror.example/debian/"


def test_debian_mirror_prefers_sources_list_then_sources_then_list(apt_root):
    (apt_root / "sources.list.d" / "a.list").write_text("deb http://list.example/debian x main\n")
    (apt_root / "sources.list.d" / "b.sources").write_text("URIs: http://deb822.example/debian\n")
    assert images.debian_mirror() == "http://deb822.example/debian"
    (apt_root / "sources.list").write_text("deb http://main.example/debian x main\n")
    assert images.debian_mirror() == "http://main.example/debian"


def test_debian_mirror_without_sources_is_an_actionable_error(apt_root):
    (apt_root / "sources.list.d" / "only-security.sources").write_text(
        "URIs: http://deb.debian.org/debian-security\n")
    with pytest.raises(SandboxError, match="no Debian mirror found"):
        images.debian_mirror()


def test_debian_mirror_on_this_host():
    if not any(Path("/etc/apt").glob("sources.list*")):
        pytest.skip("no apt configuration on this host")
    assert re.match(r"^(https?|file|mirror\+\w+)://", images.debian_mirror())


# --------------------------------------------------------------------------- events


def test_log_event_read_events_round_trip(tmp_path):
    paths = config.Paths(root=tmp_path / "state")
    assert events.read_events(paths) == []
    events.log_event("start_session", paths, session="s-1", target="i-08726dc37133b2454")
    events.log_event("command", paths, session="s-1", head="printf 'h\u00e9llo \u2603'")
    got = events.read_events(paths)
    assert [e["kind"] for e in got] == ["start_session", "command"]
    assert got[0]["session"] == "s-1" and got[0]["target"] == "i-08726dc37133b2454"
    assert got[1]["head"] == "printf 'h\u00e9llo \u2603'"
    assert all(isinstance(e["ts"], float) for e in got)
    # one JSON object per line: what the sandbox tests read after an offset
    lines = paths.events.read_text().splitlines()
    assert [json.loads(line)["kind"] for line in lines] == ["start_session", "command"]


def test_concurrent_log_event_lines_stay_whole(tmp_path):
    paths = config.Paths(root=tmp_path / "state")

    def writer(n: int) -> None:
        for i in range(50):
            events.log_event("s3", paths, writer=n, i=i, key="k" * 2000)

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    got = events.read_events(paths)
    assert len(got) == 400
    assert {(e["writer"], e["i"]) for e in got} == {(n, i) for n in range(8) for i in range(50)}


def test_modeled_latency(tmp_path, monkeypatch):
    paths = config.Paths(root=tmp_path / "state")
    paths.root.mkdir()
    monkeypatch.delenv("ATP_SANDBOX_LATENCY_S3_MS", raising=False)
    slept = []
    monkeypatch.setattr(events.time, "sleep", slept.append)
    events.modeled_latency("s3", paths)
    assert slept == []  # off by default
    monkeypatch.setenv("ATP_SANDBOX_LATENCY_S3_MS", "250")
    events.modeled_latency("s3", paths)
    assert slept == [0.25]
    (paths.root / "latency.json").write_text('{"S3": 40}')  # a run in flight can change it
    events.modeled_latency("s3", paths)
    assert slept == [0.25, 0.04]


# --------------------------------------------------------------------------- netns.pump


def _recv_exactly(sock: socket.socket, size: int) -> bytes:
    chunks, got = [], 0
    while got < size:
        data = sock.recv(min(65536, size - got))
        if not data:
            break
        chunks.append(data)
        got += len(data)
    return b"".join(chunks)


def test_pump_relays_both_ways_until_both_sides_close():
    client, a = socket.socketpair()
    b, server = socket.socketpair()
    for sock in (client, server):
        sock.settimeout(10)
    counts = []
    relay = threading.Thread(target=netns.pump, args=(a, b, lambda up, down:
                                                      counts.append((up, down))), daemon=True)
    relay.start()

    up = bytes(range(256)) * 1024  # 256 KiB, more than a socket buffer
    down = b"reply:" + bytes(reversed(range(256))) * 512
    received = {}
    reader = threading.Thread(target=lambda: received.update(up=_recv_exactly(server, len(up))),
                              daemon=True)
    reader.start()
    client.sendall(up)
    reader.join(timeout=10)
    assert received.get("up") == up

    server.sendall(down)
    assert _recv_exactly(client, len(down)) == down

    client.shutdown(socket.SHUT_WR)
    assert server.recv(1) == b""  # the half-close is relayed
    server.close()
    assert client.recv(1) == b""
    relay.join(timeout=10)
    assert not relay.is_alive()
    assert counts == [(len(up), len(down))]
    client.close()


def test_pump_ends_when_one_side_resets():
    client, a = socket.socketpair()
    b, server = socket.socketpair()
    client.settimeout(10)
    relay = threading.Thread(target=netns.pump, args=(a, b), daemon=True)
    relay.start()
    server.close()
    assert client.recv(1) == b""
    client.close()
    relay.join(timeout=10)
    assert not relay.is_alive()


# --------------------------------------------------------------------------- smp.run_shell


class _Exited(Exception):
    """Stands in for os._exit() so the test process survives finish()."""


def test_session_terminate_is_not_reentrant(monkeypatch):
    """aws_ssm's Popen.terminate() and TerminateSession send SIGTERM ms apart. A second
    SIGTERM arriving while the handler runs must not start a nested cleanup: a nested call that
    fails half-way (seen: LookupError from a half-done codec import) killed the stand-in before
    it killed the session's processes, leaving `sleep 30` running on the instance."""
    from atp_sandbox import smp

    calls: list = []
    depth = {"n": 0}
    fds: list[int] = []

    class FakeExec:  # the `docker exec -it ... bash` process
        def __init__(self, *args, **kwargs):
            self.polls = 0

        def poll(self):
            self.polls += 1
            if self.polls == 1:
                os.kill(os.getpid(), signal.SIGTERM)  # first SIGTERM: Popen.terminate()
            return None

        def kill(self):
            calls.append("kill docker exec")

        def wait(self):
            return 0

    def fake_shell_pid(marker):
        depth["n"] += 1
        if depth["n"] > 1:
            raise LookupError("unknown encoding: ascii")  # what a nested call hit for real
        os.kill(os.getpid(), signal.SIGTERM)  # second SIGTERM: TerminateSession
        for _ in range(10000):  # give the interpreter bytecode boundaries to run handlers
            pass
        return 4242

    def fake_exit(code):
        raise _Exited(code)

    def openpty():
        master, slave = os.openpty()
        fds.append(master)
        return master, slave

    monkeypatch.setattr(smp.subprocess, "Popen", FakeExec)
    monkeypatch.setattr(smp.pty, "openpty", openpty)
    monkeypatch.setattr(smp, "_shell_pid", fake_shell_pid)
    monkeypatch.setattr(smp, "_kill_tree", lambda pid: calls.append(f"kill tree {pid}"))
    monkeypatch.setattr(smp, "log_event", lambda kind, *a, **kw: calls.append(kind))
    monkeypatch.setattr(smp.os, "_exit", fake_exit)
    saved = {sig: signal.getsignal(sig) for sig in (signal.SIGTERM, signal.SIGHUP)}
    try:
        with pytest.raises(_Exited):
            smp.run_shell("sandbox-operator-test", "atp-sandbox-i-08726dc37133b2454")
    finally:
        for sig, handler in saved.items():
            signal.signal(sig, handler)
        for fd in fds:
            os.close(fd)
    assert calls == ["kill tree 4242", "kill docker exec", "session_end"]
