"""tools/atp_ops/portforward/ports.py: sockets on the local port (psutil, lsof, ss, /proc),
who holds it, and the one-line refusal naming the holder."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import types

import psutil
import pytest
from atp_ops.portforward import docker, ports, procfs

INSTANCE = "i-08726dc37133b2454"
CONTAINER = "automated-trading-platform-backend-1"

# `lsof -nP -iTCP:8002 -sTCP:LISTEN` on macOS (Docker Desktop, a dev server, an ssh -L on ::1,
# the plugin) and on Linux (this machine's format).
LSOF_MACOS = """\
COMMAND     PID  USER   FD   TYPE             DEVICE SIZE/OFF NODE NAME
com.docke  1234 alice  187u  IPv6 0x8e3f1ad6c0b0f5a1      0t0  TCP *:8002 (LISTEN)
Python    56789 alice    4u  IPv4 0x8e3f1ad6d2f3a0b9      0t0  TCP 127.0.0.1:8002 (LISTEN)
Python    56789 alice    5u  IPv4 0x8e3f1ad6d2f3a0b9      0t0  TCP 127.0.0.1:8002 (LISTEN)
ssh       23456 alice    7u  IPv6 0x8e3f1ad6c0b0f5a2      0t0  TCP [::1]:8002 (LISTEN)
node\\x20x  3456 alice   21u  IPv4 0x8e3f1ad6c0b0f5a4      0t0  TCP 127.0.0.2:8002 (LISTEN)
session-m 34567 alice   12u  IPv6 0x8e3f1ad6c0b0f5a3      0t0  TCP [::]:8002 (LISTEN)
curl      45678 alice    5u  IPv4 0x8e3f1ad6c0b0f5a5      0t0  TCP 127.0.0.1:51234->127.0.0.1:8002 (ESTABLISHED)
"""  # noqa: E501
LSOF_LINUX = """\
COMMAND  PID USER   FD   TYPE  DEVICE SIZE/OFF NODE NAME
python3 1875 root    3u  IPv4 4905712      0t0  TCP 127.0.0.1:18555 (LISTEN)
"""


# --------------------------------------------------------------------------- pure: sockets


def test_parse_ss_listeners():
    text = (
        'LISTEN 0      4096       127.0.0.1:18002      0.0.0.0:*    '
        'users:(("docker-proxy",pid=24054,fd=4))\n'
        'LISTEN 0      5          127.0.0.1:4580 0.0.0.0:* users:(("python",pid=15226,fd=6))\n'
        'LISTEN 0      128        [::]:18002 [::]:* users:(("nginx",pid=7,fd=6),'
        '("nginx",pid=8,fd=6))\n'
        'LISTEN 0      128        [::1]:18002 [::]:* users:(("other",pid=9,fd=6))\n'
        'LISTEN 0      128        *:18002 *:* users:(("star",pid=11,fd=3))\n'
        'ESTAB  0      0          127.0.0.1:18002 127.0.0.1:5555 users:(("x",pid=10,fd=3))\n'
    )
    assert ports.parse_ss_listeners(text, 18002) == [
        (24054, "docker-proxy"), (7, "nginx"), (8, "nginx"), (11, "star")]
    assert ports.parse_ss_listeners(text, 4580) == [(15226, "python")]
    assert ports.parse_ss_listeners("", 8002) == []


def test_parse_lsof_listeners_macos():
    found = ports.parse_lsof_listeners(LSOF_MACOS, 8002)
    assert [(s.ip, s.pid, s.command) for s in found] == [
        ("*", 1234, "com.docke"), ("127.0.0.1", 56789, "Python"), ("::", 34567, "session-m")]
    assert {s.status for s in found} == {"LISTEN"} and {s.port for s in found} == {8002}
    assert ports.parse_lsof_listeners(LSOF_MACOS, 8003) == []
    assert ports.parse_lsof_listeners("", 8002) == []


def test_parse_lsof_listeners_linux_and_odd_rows():
    assert ports.parse_lsof_listeners(LSOF_LINUX, 18555) == [
        ports.Socket("127.0.0.1", 18555, "LISTEN", 1875, "python3")]
    odd = ("lsof: WARNING: can't stat() fuse.portal file system /run/user/1000/doc\n"
           "x 1 u 3u IPv4 1 0t0 TCP\n"
           "x 2 u 3u IPv4 1 0t0 TCP 127.0.0.1:http (LISTEN)\n"
           "x\\x20y 3 u 3u IPv4 1 0t0 TCP 127.0.0.1:8002\n")
    assert ports.parse_lsof_listeners(odd, 8002) == [
        ports.Socket("127.0.0.1", 8002, "LISTEN", 3, "x y")]


def test_listeners_and_lingering_on_socket_rows():
    rows = [ports.Socket("127.0.0.1", 8002, "LISTEN", 10), ports.Socket("::", 8002, "LISTEN"),
            ports.Socket("::1", 8002, "LISTEN", 11),
            ports.Socket("127.0.0.1", 8002, "TIME_WAIT"),
            ports.Socket("::ffff:127.0.0.1", 8002, "CLOSE_WAIT"),
            ports.Socket("127.0.0.2", 8002, "TIME_WAIT"),
            ports.Socket("127.0.0.1", 8003, "LISTEN", 12)]
    assert [s.pid for s in ports.listeners_on(rows, 8002)] == [10, None]
    assert ports.lingering_on(rows, 8002) == ["CLOSE_WAIT", "TIME_WAIT"]
    assert ports.lingering_on(rows, 8003) == []


def test_command_line_is_short_and_redacted():
    argv = ["session-manager-plugin", '{"SessionId": "s-1", "TokenValue": "SECRETTOKEN"}']
    text = ports.command_line(argv, limit=200)
    assert "SECRETTOKEN" not in text and "s-1" in text
    assert len(ports.command_line(["x" * 500])) == 80
    assert ports.command_line([]) == "?"


def test_candidate_and_suggested_ports():
    assert ports.candidate_ports(8002)[:2] == [18002, 18003]
    assert all(p <= 65535 for p in ports.candidate_ports(60000))
    assert 60000 not in ports.candidate_ports(60000)
    assert ports.suggest_port(8002, lambda p: True) == 18002
    assert ports.suggest_port(8002, lambda p: p == 18005) == 18005
    assert ports.suggest_port(8002, lambda p: False) is None


# --------------------------------------------------------------------------- messages


def _docker_check(pid: int | None = 4711) -> ports.PortCheck:
    proxy = docker.docker_proxy_target(["docker-proxy", "-host-ip", "127.0.0.1", "-host-port",
                                        "8002", "-container-ip", "172.17.0.2",
                                        "-container-port", "8002"])
    holders = [ports.Holder(pid, "docker-proxy -proto tcp", proxy)] if pid else []
    containers = [docker.Container("abc", CONTAINER,
                                   (docker.PortBinding("127.0.0.1", 8002, 8002, "tcp"),))]
    return ports.PortCheck(True, holders, containers)


def test_port_held_by_docker_container_message():
    message = ports.format_port_held(8002, INSTANCE, _docker_check(), 18002)
    assert message == (
        f"local port 8002 is held by docker container {CONTAINER} (pid 4711 docker-proxy): "
        f"a port-forward would reach it, not {INSTANCE}; stop it (docker stop {CONTAINER}) or "
        "re-run with --stop-container or --local-port 18002")
    assert "\n" not in message


def test_port_held_by_docker_without_proxy_process():
    message = ports.format_port_held(8002, INSTANCE, _docker_check(pid=None), None)
    assert f"docker container {CONTAINER} (published by docker)" in message
    assert message.endswith("--stop-container or another --local-port")


def test_port_held_by_docker_proxy_when_docker_unreachable():
    check = _docker_check()
    check.containers = None
    message = ports.format_port_held(8002, INSTANCE, check, 18002)
    assert "a docker container at 172.17.0.2:8002 (pid 4711 docker-proxy" in message
    assert "docker ps --filter publish=8002" in message
    assert message.endswith("--local-port 18002")


def test_port_held_by_plain_process():
    check = ports.PortCheck(True, [ports.Holder(99, "python3 -m http.server 8002")], [])
    message = ports.format_port_held(8002, INSTANCE, check, 18002, stop_container=True)
    assert message == (
        "local port 8002 is held by pid 99 (python3 -m http.server 8002): a port-forward would"
        f" reach it, not {INSTANCE}; stop that process or re-run with --local-port 18002"
        " (--stop-container stops docker containers only)")


def test_port_held_by_unknown_and_by_lingering_connections():
    unknown = ports.format_port_held(8002, INSTANCE, ports.PortCheck(True), 18002)
    assert "cannot identify (see: sudo ss -ltnp 'sport = :8002')" in unknown
    lingering = ports.PortCheck(True, lingering=["TIME_WAIT", "TIME_WAIT", "CLOSE_WAIT"])
    message = ports.format_port_held(8002, INSTANCE, lingering, 18002)
    assert "(1 CLOSE_WAIT, 2 TIME_WAIT; no process listens" in message
    assert message.endswith("wait a minute or re-run with --local-port 18002")


def test_port_held_by_two_containers_and_by_an_unseen_listener():
    two = _docker_check(pid=None)
    two.containers = two.containers * 2
    assert f"docker containers {CONTAINER}, {CONTAINER} (published by docker)" in (
        ports.describe_holders(8002, two))
    unseen = ports.PortCheck(True, [ports.Holder(None, "?")], [])
    assert ports.format_port_held(8002, INSTANCE, unseen, 18002).endswith(
        "free the port or re-run with --local-port 18002")


# --------------------------------------------------------------------------- psutil / lsof


def _world(host):
    host.procs.update({
        99: host.Proc(["/usr/bin/python3", "-m", "http.server", "8002"]),
        100: host.Proc(["/usr/bin/docker-proxy", "-proto", "tcp", "-host-ip", "127.0.0.1",
                       "-host-port", "8002", "-container-ip", "172.17.0.2",
                       "-container-port", "8002"]),
    })
    host.sockets += [("127.0.0.1", 8002, "LISTEN", 99), ("::", 8002, "LISTEN", 100),
                     ("127.0.0.1", 8002, "TIME_WAIT", None),
                     ("127.0.0.1", 18002, "LISTEN", None)]


@pytest.mark.parametrize("macos", [False, True], ids=["psutil", "lsof"])
def test_holders_seen_by_psutil_and_by_lsof_alike(fake_host, macos):
    _world(fake_host)
    fake_host.macos = macos
    listening, holders = ports.find_holders(8002)
    assert listening and [h.pid for h in holders] == [99, 100]
    assert holders[0].command == "/usr/bin/python3 -m http.server 8002"
    assert holders[1].is_docker_proxy and holders[1].proxy["container-ip"] == "172.17.0.2"
    assert ports.listener_pids(8002) == (True, [99, 100])
    assert ports.port_listened(8002) and not ports.port_listened(8003)
    assert bool(fake_host.lsof_calls) is macos
    assert fake_host.lsof_calls[-1:] == ([["lsof", "-nP", "-iTCP:8003", "-sTCP:LISTEN"]]
                                         if macos else [])


def test_lsof_path_knows_listeners_only(fake_host):
    """lsof (-sTCP:LISTEN) does not list TIME_WAIT: lingering is psutil's (Linux's) only."""
    _world(fake_host)
    assert ports.port_lingering(8002) == ["TIME_WAIT"]
    fake_host.macos = True
    assert ports.port_lingering(8002) == []


def test_a_listener_of_another_user_is_named_by_ss(fake_host, monkeypatch):
    _world(fake_host)
    ss = ('LISTEN 0 4096 127.0.0.1:18002 0.0.0.0:* users:(("docker-proxy",pid=24054,fd=4))\n')
    monkeypatch.setattr(ports, "shutil", types.SimpleNamespace(which=lambda name: "/bin/ss"))
    monkeypatch.setattr(ports, "run", lambda cmd, timeout: subprocess.CompletedProcess(
        cmd, 0, ss, "") if cmd[0] == "ss" else pytest.fail(f"unexpected {cmd}"))
    fake_host.procs[24054] = fake_host.Proc(["docker-proxy"], readable=False)
    listening, holders = ports.find_holders(18002)
    assert listening and holders == [ports.Holder(24054, "docker-proxy")]


def test_lsof_command_name_when_argv_is_not_readable(fake_host):
    _world(fake_host)
    fake_host.macos = True
    fake_host.procs[99].readable = False
    assert ports.find_holders(8002)[1][0] == ports.Holder(99, "python3")


def test_without_lsof_the_macos_path_sees_no_listener(fake_host, monkeypatch):
    _world(fake_host)
    fake_host.macos = True
    monkeypatch.setattr(ports, "shutil", types.SimpleNamespace(which=lambda name: None))
    assert ports.tcp_sockets(8002) == []


def test_check_port(fake_host, monkeypatch):
    _world(fake_host)
    check = ports.check_port(8002)
    assert check.held and [h.pid for h in check.holders] == [99, 100]
    assert check.containers is None and check.lingering == ["TIME_WAIT"]
    assert not ports.check_port(8009).held


def test_without_psutil_procfs_answers(monkeypatch):
    rows = [procfs.ProcSocket("127.0.0.1", 8002, "0A", 4242, 0),
            procfs.ProcSocket("127.0.0.1", 8002, "06", 0, 0),
            procfs.ProcSocket("0.0.0.0", 8002, "0A", 5151, 0),
            procfs.ProcSocket("127.0.0.1", 8003, "0A", 6161, 0)]
    monkeypatch.setattr(ports, "psutil", None)
    monkeypatch.setattr(procfs, "read_proc_sockets", lambda: rows)
    monkeypatch.setattr(procfs, "fd_links", lambda: {20: ["socket:[4242]"], 21: ["socket:[4242]"],
                                                     30: ["socket:[6161]"]})
    assert ports.tcp_sockets(8002) == [
        ports.Socket("127.0.0.1", 8002, "LISTEN", 20),
        ports.Socket("127.0.0.1", 8002, "LISTEN", 21),
        ports.Socket("127.0.0.1", 8002, "TIME_WAIT"), ports.Socket("0.0.0.0", 8002, "LISTEN")]
    assert ports.listener_pids(8002) == (True, [20, 21])
    assert ports.port_lingering(8002) == ["TIME_WAIT"]


# --------------------------------------------------------------------------- this host


@pytest.fixture
def listener():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield sock.getsockname()[1]


def test_real_psutil_finds_this_process_listening(listener):
    assert ports.psutil is psutil
    listening, holders = ports.find_holders(listener)
    assert listening and [h.pid for h in holders] == [os.getpid()]
    assert os.path.basename(sys.executable)[:6] in holders[0].command
    assert not ports.bind_free(listener)
    assert ports.check_port(listener).held


@pytest.mark.skipif(not shutil.which("lsof"), reason="no lsof here")
def test_real_lsof_finds_this_process_listening(listener):
    assert [s.pid for s in ports.lsof_listeners(listener)] == [os.getpid()]


def test_bind_free_on_a_free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    assert ports.bind_free(port) and ports.bind_free(port, reuse=False)
