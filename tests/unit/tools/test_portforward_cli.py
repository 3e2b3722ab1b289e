"""tools/atp_ops/portforward/cli.py: the command line, and status/stop decisions that are the
same on Linux (psutil sees every socket) and on macOS (no /proc; psutil.net_connections is
AccessDenied, lsof names the listeners)."""

from __future__ import annotations

import json
import types

import pytest
from atp_ops.portforward import cli, session, state

INSTANCE = "i-08726dc37133b2454"
PORT = 18002
PLUGIN_ARGV = ["/usr/local/bin/session-manager-plugin",
               json.dumps({"SessionId": "s-1", "TokenValue": "SECRET"}), "ap-southeast-1",
               "StartSession", "", json.dumps({"Target": INSTANCE}),
               "https://ssm.ap-southeast-1.amazonaws.com"]
SERVER_ARGV = ["python3", "-m", "http.server", str(PORT)]


# --------------------------------------------------------------------------- CLI surface


def test_parser_defaults():
    args = cli.build_parser().parse_args(["start"])
    assert (args.instance_id, args.region, args.profile) == (INSTANCE, "ap-southeast-1", None)
    assert (args.local_port, args.remote_port, args.remote_host) == (8002, 8002, "127.0.0.1")
    assert (args.expect_environment, args.stop_container, args.timeout) == (None, False, 30.0)
    assert cli.build_parser().parse_args(["stop"]).local_port == 8002
    assert cli.build_parser().parse_args(["status", "--local-port", "18002"]).local_port == 18002


def test_bad_arguments_fail_in_one_line(capsys):
    assert cli.main(["start", "--instance-id", "web-1"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("atp-portforward: expected an instance id")
    assert cli.main(["start", "--local-port", "0"]) == 1
    assert "--local-port between 1 and 65535" in capsys.readouterr().err
    assert cli.main(["start", "--timeout", "0"]) == 1
    assert "expected --timeout > 0" in capsys.readouterr().err


def test_unexpected_errors_are_one_line_too(monkeypatch, capsys):
    def boom(_args):
        raise RuntimeError("something\nbroke")

    monkeypatch.setattr(cli, "cmd_status", boom)
    monkeypatch.delenv("ATP_PORTFORWARD_DEBUG", raising=False)
    assert cli.main(["status"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "RuntimeError: something broke" in err
    monkeypatch.setenv("ATP_PORTFORWARD_DEBUG", "1")
    with pytest.raises(RuntimeError):
        cli.main(["status"])


def test_interrupt_is_exit_130(monkeypatch, capsys):
    def interrupted(_args):
        raise KeyboardInterrupt

    monkeypatch.setattr(cli, "cmd_stop", interrupted)
    assert cli.main(["stop"]) == 130
    assert capsys.readouterr().err == "atp-portforward: interrupted\n"


# --------------------------------------------------------------------------- Linux == macOS


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def monotonic(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds

    def time(self) -> float:
        return 1.7e9 + self.now


@pytest.fixture
def world(fake_host, monkeypatch, tmp_path):
    """fake_host wired into the commands too: the port answers HTTP while something listens,
    TerminateSession makes the plugin exit (as the real one does), signals reach fake_host."""
    host = fake_host

    def listening(port: int) -> bool:
        return any(s[1] == port and s[2] == "LISTEN" for s in host.sockets)

    def http_get(port, path, timeout):
        if not listening(port):
            raise ConnectionRefusedError(111, "Connection refused")
        return 200, '{"status":"ok"}'

    def terminate(record, ssm=None):
        host.kill(int(record.get("pid") or 0))
        return None

    def signal(pid, _sig):
        if pid not in host.procs:
            raise ProcessLookupError(pid)
        host.kill(pid)

    monkeypatch.setenv(state.STATE_ENV, str(tmp_path / "state"))
    monkeypatch.setattr(cli, "bind_free", host.bind_free)
    monkeypatch.setattr(cli, "tcp_connects", lambda port, timeout=1.0: listening(port))
    monkeypatch.setattr(cli, "http_get", http_get)
    monkeypatch.setattr(cli, "docker_containers", lambda port: None)
    monkeypatch.setattr(cli, "time", FakeClock())
    monkeypatch.setattr(session, "time", FakeClock())
    monkeypatch.setattr(session, "terminate_session", terminate)
    monkeypatch.setattr(session, "os", types.SimpleNamespace(
        getpgid=lambda pid: pid, killpg=signal, kill=signal, environ={}))
    return host


SCENARIOS = {
    "plugin-serves": dict(procs={4242: PLUGIN_ARGV}, listeners=[("127.0.0.1", 4242)],
                          state=True),
    "plugin-child-serves": dict(procs={4242: PLUGIN_ARGV, 4243: PLUGIN_ARGV[:1]},
                                listeners=[("::", 4243)], state=True),
    "plugin-gone-port-taken": dict(procs={99: SERVER_ARGV}, listeners=[("0.0.0.0", 99)],
                                   state=True),
    "plugin-alive-port-taken": dict(procs={4242: PLUGIN_ARGV, 99: SERVER_ARGV},
                                    listeners=[("127.0.0.1", 99)], state=True),
    "plugin-gone-port-closed": dict(procs={}, listeners=[], state=True),
    "no-state-port-taken": dict(procs={99: SERVER_ARGV}, listeners=[("127.0.0.1", 99)],
                                state=False),
    "no-state-port-free": dict(procs={}, listeners=[], state=False),
}


def _transcript(world, capsys, scenario: dict, macos: bool) -> list[tuple[int, str, str]]:
    world.procs.clear()
    world.sockets.clear()
    world.lsof_calls.clear()
    world.macos = macos
    for pid, argv in scenario["procs"].items():
        world.procs[pid] = world.Proc(list(argv), ppid=4242 if pid == 4243 else 1)
    world.sockets += [(ip, PORT, "LISTEN", pid) for ip, pid in scenario["listeners"]]
    state.clear_state(PORT)
    if scenario["state"]:
        state.save_state(PORT, {"session_id": "s-1", "pid": 4242, "instance_id": INSTANCE,
                                "region": "ap-southeast-1", "profile": "",
                                "remote_host": "127.0.0.1", "remote_port": 8002,
                                "identity": "match"})
    found = []
    for command in ("status", "stop", "status"):
        code = cli.main([command, "--local-port", str(PORT)])
        out, err = capsys.readouterr()
        found.append((code, out, err))
    assert bool(world.lsof_calls) is macos  # macOS: lsof named the listeners
    return found


@pytest.mark.parametrize("name", SCENARIOS)
def test_status_and_stop_decide_the_same_on_linux_and_macos(world, capsys, name):
    linux = _transcript(world, capsys, SCENARIOS[name], macos=False)
    macos = _transcript(world, capsys, SCENARIOS[name], macos=True)
    assert macos == linux
    (status_code, status_out, status_err), (stop_code, stop_out, stop_err), after = linux
    assert after[0] == 3  # no session recorded any more
    if name in ("plugin-serves", "plugin-child-serves"):
        assert status_code == 0 and not status_err
        assert status_out == (
            f"session s-1: 127.0.0.1:{PORT} -> {INSTANCE}:8002 (region ap-southeast-1, profile "
            "(default), identity match)\nplugin pid 4242: alive\n"
            f"127.0.0.1:{PORT}: open (listener: the plugin)\n"
            'GET /api/health: 200 {"status":"ok"}\n')
        assert stop_code == 0 and stop_out == (
            f"port-forward stopped: session s-1 to {INSTANCE} terminated, plugin pid 4242 ended;"
            f" 127.0.0.1:{PORT} closed\n")
        assert after[1] == f"no atp-portforward session recorded for local port {PORT}\n"
    elif name.endswith("port-taken") and name.startswith("plugin"):
        holder = f"pid 99 ({' '.join(SERVER_ARGV)})"
        alive = "alive" if "alive" in name else "NOT running"
        assert status_code == 1 and f"plugin pid 4242: {alive}\n" in status_out
        assert f"127.0.0.1:{PORT}: open (listener: {holder}, NOT the plugin)\n" in status_out
        assert status_err.startswith("atp-portforward: expected a live plugin owning an open")
        assert stop_code == 1 and stop_out.endswith(f"127.0.0.1:{PORT} STILL OPEN\n")
        assert stop_err == (f"atp-portforward: expected 127.0.0.1:{PORT} to close with the "
                            f"session, it is still held by {holder}: stop that before using "
                            "the port\n")
        assert after[1] == (f"no atp-portforward session recorded for local port {PORT}; the "
                            f"port is held by {holder}\n")
    elif name == "plugin-gone-port-closed":
        assert status_code == 1 and "plugin pid 4242: NOT running\n" in status_out
        assert f"127.0.0.1:{PORT}: closed\n" in status_out
        assert stop_code == 0 and "plugin pid 4242 was not running; 127.0.0.1:18002 closed" in (
            stop_out)
    elif name == "no-state-port-taken":
        holder = f"pid 99 ({' '.join(SERVER_ARGV)})"
        assert status_code == 3 and status_out.endswith(f"held by {holder}\n")
        assert (stop_code, stop_out) == (0, f"no atp-portforward session recorded for local "
                                            f"port {PORT}: nothing to stop\n")
    else:
        assert (status_code, status_out) == (
            3, f"no atp-portforward session recorded for local port {PORT}\n")


def test_the_plugin_binding_nothing_is_caught_alike(world, tmp_path):
    """_wait_ready: "Waiting for connections" but no listener after the grace time."""
    log = tmp_path / "plugin.log"
    log.write_text("Starting session with SessionId: s-1\nWaiting for connections...\n")
    proc = types.SimpleNamespace(poll=lambda: None)
    messages = []
    for macos in (False, True):
        world.macos = macos
        with pytest.raises(cli.PortForwardError) as caught:
            cli._wait_ready(proc, log, PORT, cli.time.monotonic() + 30, 30)
        messages.append(str(caught.value))
    assert messages[0] == messages[1]
    assert messages[0] == (
        "expected session-manager-plugin to listen on 127.0.0.1:18002 after it reported "
        "'Waiting for connections', nothing listens: it could not bind the port (held by "
        "something not visible here); the port-forward was stopped: wait a minute or re-run "
        "with --local-port 28002")
