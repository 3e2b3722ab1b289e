"""Pure logic of bin/atp-portforward (tools/atp_ops/portforward.py): no AWS, no docker."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[3] / "tools"))

from atp_ops import portforward as pf

INSTANCE = "i-08726dc37133b2454"
CONTAINER = "automated-trading-platform-backend-1"

# Real rows (this machine): 127.0.0.1:4581 and 127.0.0.1:4580 listening.
PROC_TCP = """\
  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 0100007F:11E5 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 95641 1 00000000bcbc5dc6 100 0 0 10 0
   1: 0100007F:1F42 00000000:0000 0A 00000000:00000000 00:00000000 00000000  1000        0 4242 1 0000000000000000 100 0 0 10 0
   2: 00000000:4652 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 5151 1 0000000000000000 100 0 0 10 0
   3: 0100007F:1F43 0100007F:8BE2 06 00000000:00000000 03:00001770 00000000     0        0 0 3 0000000000000000
   4: 0200007F:1F44 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 777 1 0000000000000000 100 0 0 10 0
   garbage line
"""  # noqa: E501
PROC_TCP6 = """\
  sl  local_address                         remote_address                        st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 00000000000000000000000000000000:1F45 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 6161 1 0000000000000000 100 0 0 10 0
   1: 00000000000000000000000001000000:1F46 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 6262 1 0000000000000000 100 0 0 10 0
   2: 0000000000000000FFFF00000100007F:1F47 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 6363 1 0000000000000000 100 0 0 10 0
"""  # noqa: E501


# --------------------------------------------------------------------------- /proc/net/tcp


def test_decode_proc_addr_v4_and_v6():
    assert pf.decode_proc_addr("0100007F") == "127.0.0.1"
    assert pf.decode_proc_addr("00000000") == "0.0.0.0"
    assert pf.decode_proc_addr("7F000001", byteorder="big") == "127.0.0.1"
    assert pf.decode_proc_addr("0" * 32) == "::"
    assert pf.decode_proc_addr("00000000000000000000000001000000") == "::1"
    assert pf.decode_proc_addr("0000000000000000FFFF00000100007F") == "::ffff:127.0.0.1"


def test_parse_proc_net_tcp_rows():
    rows = pf.parse_proc_net_tcp(PROC_TCP)
    assert [(r.ip, r.port, r.state, r.inode) for r in rows] == [
        ("127.0.0.1", 4581, "0A", 95641),
        ("127.0.0.1", 8002, "0A", 4242),
        ("0.0.0.0", 18002, "0A", 5151),
        ("127.0.0.1", 8003, "06", 0),
        ("127.0.0.2", 8004, "0A", 777),
    ]
    assert rows[1].uid == 1000


def test_parse_proc_net_tcp6_rows():
    rows = pf.parse_proc_net_tcp(PROC_TCP6)
    assert [(r.ip, r.port, r.inode) for r in rows] == [
        ("::", 8005, 6161), ("::1", 8006, 6262), ("::ffff:127.0.0.1", 8007, 6363)]


@pytest.mark.parametrize(("ip", "blocks"), [
    ("127.0.0.1", True), ("0.0.0.0", True), ("::", True), ("::ffff:127.0.0.1", True),
    ("::ffff:0.0.0.0", True), ("*", True), ("127.0.0.2", False), ("::1", False),
    ("10.0.0.5", False), ("127.0.0.1%lo", True), ("not-an-ip", False),
])
def test_blocks_bind(ip, blocks):
    assert pf.blocks_bind(ip) is blocks


def test_listeners_on_picks_listeners_that_block_loopback():
    rows = pf.parse_proc_net_tcp(PROC_TCP) + pf.parse_proc_net_tcp(PROC_TCP6)
    assert [r.inode for r in pf.listeners_on(rows, 8002)] == [4242]
    assert [r.inode for r in pf.listeners_on(rows, 18002)] == [5151]  # 0.0.0.0 counts
    assert [r.inode for r in pf.listeners_on(rows, 8005)] == [6161]  # :: counts
    assert pf.listeners_on(rows, 8003) == []  # TIME_WAIT is not a listener
    assert pf.listeners_on(rows, 8004) == []  # 127.0.0.2 does not block 127.0.0.1
    assert pf.listeners_on(rows, 8006) == []  # ::1 does not block 127.0.0.1
    assert pf.listeners_on(rows, 9999) == []


def test_lingering_on_reports_non_listening_states():
    rows = pf.parse_proc_net_tcp(PROC_TCP)
    assert pf.lingering_on(rows, 8003) == ["TIME_WAIT"]
    assert pf.lingering_on(rows, 8002) == []


def test_socket_inode_and_pids_holding():
    assert pf.socket_inode("socket:[4242]") == 4242
    assert pf.socket_inode("pipe:[4242]") is None
    assert pf.socket_inode("/dev/null") is None
    links = {10: ["/dev/null", "socket:[1]"], 20: ["socket:[4242]", "pipe:[3]"],
             30: ["anon_inode:[eventpoll]"], 40: ["socket:[5151]"]}
    assert pf.pids_holding(links, [4242]) == [20]
    assert pf.pids_holding(links, iter([5151, 4242])) == [20, 40]
    assert pf.pids_holding(links, [9]) == []


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
    assert pf.parse_ss_listeners(text, 18002) == [
        (24054, "docker-proxy"), (7, "nginx"), (8, "nginx"), (11, "star")]
    assert pf.parse_ss_listeners(text, 4580) == [(15226, "python")]
    assert pf.parse_ss_listeners("", 8002) == []


def test_parse_cmdline_and_stat():
    assert pf.parse_cmdline(b"python3\x00-m\x00http.server\x008002\x00") == [
        "python3", "-m", "http.server", "8002"]
    assert pf.parse_cmdline(b"") == []
    stat = "123 (my (odd) cmd) S 1 123 123 0 -1 4194560 0 0"
    assert pf.parse_stat(stat) == ("S", 1)
    assert pf.parse_stat("7614 (python3) Z 1 7614 7614 0 -1") == ("Z", 1)


def test_command_line_is_short_and_redacted():
    argv = ["session-manager-plugin", '{"SessionId": "s-1", "TokenValue": "SECRETTOKEN"}']
    text = pf.command_line(argv, limit=200)
    assert "SECRETTOKEN" not in text and "s-1" in text
    assert len(pf.command_line(["x" * 500])) == 80
    assert pf.command_line([]) == "?"


def test_docker_proxy_target():
    argv = ["/usr/bin/docker-proxy", "-proto", "tcp", "-host-ip", "127.0.0.1", "-host-port",
            "8002", "-container-ip", "172.17.0.2", "-container-port", "8002"]
    assert pf.docker_proxy_target(argv) == {
        "proto": "tcp", "host-ip": "127.0.0.1", "host-port": "8002",
        "container-ip": "172.17.0.2", "container-port": "8002"}
    assert pf.docker_proxy_target(["python3", "-m", "http.server"]) is None
    assert pf.docker_proxy_target([]) is None


# --------------------------------------------------------------------------- docker ps


def test_parse_docker_ports():
    ports = ("127.0.0.1:18002->8002/tcp, 0.0.0.0:8000-8001->9000-9001/tcp, "
             ":::8003->8003/tcp, [::]:8004->8004/udp, 5432/tcp")
    assert pf.parse_docker_ports(ports) == [
        pf.PortBinding("127.0.0.1", 18002, 8002, "tcp"),
        pf.PortBinding("0.0.0.0", 8000, 9000, "tcp"),
        pf.PortBinding("0.0.0.0", 8001, 9001, "tcp"),
        pf.PortBinding("::", 8003, 8003, "tcp"),
        pf.PortBinding("::", 8004, 8004, "udp"),
    ]
    assert pf.parse_docker_ports("") == []
    assert pf.parse_docker_ports("x:y->z/tcp") == []


def test_parse_docker_ps_matches_host_port_not_container_port():
    text = (f"abc123\t{CONTAINER}\t127.0.0.1:8002->8002/tcp\n"
            "def456\tother\t127.0.0.1:18002->8002/tcp\n"
            "0a0a0a\tudp-only\t0.0.0.0:8002->53/udp\n"
            "1b1b1b\telsewhere\t10.0.0.5:8002->8002/tcp\n"
            "2c2c2c\tall\t:::8002->80/tcp\n"
            "short line\n")
    found = pf.parse_docker_ps(text, 8002)
    assert [(c.id, c.name) for c in found] == [("abc123", CONTAINER), ("2c2c2c", "all")]
    assert [c.name for c in pf.parse_docker_ps(text, 18002)] == ["other"]
    assert pf.parse_docker_ps(text, 8003) == []


# --------------------------------------------------------------------------- argv and request


def test_build_start_request():
    assert pf.build_start_request(INSTANCE, "127.0.0.1", 8002, 18002) == {
        "Target": INSTANCE,
        "DocumentName": "AWS-StartPortForwardingSessionToRemoteHost",
        "Parameters": {"host": ["127.0.0.1"], "portNumber": ["8002"],
                       "localPortNumber": ["18002"]},
    }


def test_build_plugin_argv_is_the_aws_cli_one():
    response = {"SessionId": "s-1", "TokenValue": "t", "StreamUrl": "wss://x",
                "ResponseMetadata": {"HTTPStatusCode": 200}}
    request = pf.build_start_request(INSTANCE, "127.0.0.1", 8002, 8002)
    argv = pf.build_plugin_argv("/usr/bin/session-manager-plugin", response, "ap-southeast-1",
                                "prod", request, "https://ssm.ap-southeast-1.amazonaws.com")
    assert argv[0] == "/usr/bin/session-manager-plugin"
    assert json.loads(argv[1]) == response
    assert argv[2:5] == ["ap-southeast-1", "StartSession", "prod"]
    assert json.loads(argv[5]) == request
    assert argv[6] == "https://ssm.ap-southeast-1.amazonaws.com"
    assert len(argv) == 7
    no_profile = pf.build_plugin_argv("p", response, "r", None, request, "e")
    assert no_profile[4] == ""


def test_plugin_profile_falls_back_to_environment(monkeypatch):
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    monkeypatch.delenv("AWS_DEFAULT_PROFILE", raising=False)
    assert pf.plugin_profile(None) == ""
    monkeypatch.setenv("AWS_PROFILE", "envprof")
    assert pf.plugin_profile(None) == "envprof"
    assert pf.plugin_profile("explicit") == "explicit"


@pytest.mark.parametrize("good", [INSTANCE, "i-0123abcd", "mi-0123456789abcdef0"])
def test_validate_instance_id_accepts(good):
    pf.validate_instance_id(good)


@pytest.mark.parametrize("bad", ["", "i-XYZ", "08726dc37133b2454", "i-08726dc37133b2454;rm"])
def test_validate_instance_id_rejects(bad):
    with pytest.raises(pf.PortForwardError, match="expected an instance id"):
        pf.validate_instance_id(bad)


def test_validate_port():
    pf.validate_port("--local-port", 1)
    pf.validate_port("--local-port", 65535)
    for bad in (0, 65536, -1):
        with pytest.raises(pf.PortForwardError, match="--local-port between 1 and 65535"):
            pf.validate_port("--local-port", bad)


def test_candidate_and_suggested_ports():
    assert pf.candidate_ports(8002)[:2] == [18002, 18003]
    assert all(p <= 65535 for p in pf.candidate_ports(60000))
    assert 60000 not in pf.candidate_ports(60000)
    assert pf.suggest_port(8002, lambda p: True) == 18002
    assert pf.suggest_port(8002, lambda p: p == 18005) == 18005
    assert pf.suggest_port(8002, lambda p: False) is None


# --------------------------------------------------------------------------- messages


def _docker_check(pid: int | None = 4711) -> pf.PortCheck:
    proxy = pf.docker_proxy_target(["docker-proxy", "-host-ip", "127.0.0.1", "-host-port",
                                    "8002", "-container-ip", "172.17.0.2",
                                    "-container-port", "8002"])
    holders = [pf.Holder(pid, "docker-proxy -proto tcp", proxy)] if pid else []
    containers = [pf.Container("abc", CONTAINER,
                               (pf.PortBinding("127.0.0.1", 8002, 8002, "tcp"),))]
    return pf.PortCheck(True, holders, containers)


def test_port_held_by_docker_container_message():
    message = pf.format_port_held(8002, INSTANCE, _docker_check(), 18002)
    assert message == (
        f"local port 8002 is held by docker container {CONTAINER} (pid 4711 docker-proxy): "
        f"a port-forward would reach it, not {INSTANCE}; stop it (docker stop {CONTAINER}) or "
        "re-run with --stop-container or --local-port 18002")
    assert "\n" not in message


def test_port_held_by_docker_without_proxy_process():
    message = pf.format_port_held(8002, INSTANCE, _docker_check(pid=None), None)
    assert f"docker container {CONTAINER} (published by docker)" in message
    assert message.endswith("--stop-container or another --local-port")


def test_port_held_by_docker_proxy_when_docker_unreachable():
    check = _docker_check()
    check.containers = None
    message = pf.format_port_held(8002, INSTANCE, check, 18002)
    assert "a docker container at 172.17.0.2:8002 (pid 4711 docker-proxy" in message
    assert "docker ps --filter publish=8002" in message
    assert message.endswith("--local-port 18002")


def test_port_held_by_plain_process():
    check = pf.PortCheck(True, [pf.Holder(99, "python3 -m http.server 8002")], [])
    message = pf.format_port_held(8002, INSTANCE, check, 18002, stop_container=True)
    assert message == (
        "local port 8002 is held by pid 99 (python3 -m http.server 8002): a port-forward would"
        f" reach it, not {INSTANCE}; stop that process or re-run with --local-port 18002"
        " (--stop-container stops docker containers only)")


def test_port_held_by_unknown_and_by_lingering_connections():
    unknown = pf.format_port_held(8002, INSTANCE, pf.PortCheck(True), 18002)
    assert "cannot identify (see: sudo ss -ltnp 'sport = :8002')" in unknown
    lingering = pf.PortCheck(True, lingering=["TIME_WAIT", "TIME_WAIT", "CLOSE_WAIT"])
    message = pf.format_port_held(8002, INSTANCE, lingering, 18002)
    assert "(1 CLOSE_WAIT, 2 TIME_WAIT; no process listens" in message
    assert message.endswith("wait a minute or re-run with --local-port 18002")


def test_check_health():
    assert pf.check_health(200, '{"status":"ok","path":"/api/health"}') is None
    assert pf.check_health(200, '{"status":"degraded"}') == '200 {"status":"degraded"}'
    assert pf.check_health(404, '{"detail":"Not Found"}').startswith("404 ")
    assert pf.check_health(200, "<html>hi</html>") == "200 <html>hi</html>"
    assert pf.check_health(200, "[]") == "200 []"
    assert pf.check_health(502, "") == "502 (empty body)"


def _whoami(instance_id=INSTANCE, environment="aws") -> str:
    return json.dumps({"instance_id": instance_id, "environment": environment,
                       "service": "backend-aws"})


def test_identity_match():
    identity = pf.check_identity(200, _whoami(), INSTANCE, "aws", 8002)
    assert identity.verdict == "match"
    assert pf.check_identity(200, _whoami(), INSTANCE, None, 8002).verdict == "match"


def test_identity_mismatch_names_both():
    other = "i-08726dc37133b3565"
    identity = pf.check_identity(200, _whoami(other), INSTANCE, None, 8002)
    assert identity.verdict == "mismatch"
    assert f"expected instance_id={INSTANCE}" in identity.message
    assert f"whoami says instance_id={other}" in identity.message
    assert "\n" not in identity.message


def test_identity_environment_mismatch_and_missing_fields():
    env = pf.check_identity(200, _whoami(environment="local"), INSTANCE, "aws", 8002)
    assert env.verdict == "mismatch"
    assert "environment=aws" in env.message and "environment=local" in env.message
    local = pf.check_identity(200, '{"environment": "local"}', INSTANCE, None, 8002)
    assert local.verdict == "mismatch" and "instance_id=(none)" in local.message
    text = pf.check_identity(200, "hello", INSTANCE, None, 8002)
    assert text.verdict == "mismatch" and "something else serves this port" in text.message


def test_identity_unverified():
    disabled = pf.check_identity(404, '{"detail":"Not Found"}', INSTANCE, "aws", 8002)
    assert disabled.verdict == "unverified"
    assert "whoami disabled: set PORTFOLIO_DEBUG=1" in disabled.message
    broken = pf.check_identity(500, "oops", INSTANCE, None, 8002)
    assert broken.verdict == "unverified" and "answered 500 oops" in broken.message


def test_format_ready():
    assert pf.format_ready(8002, INSTANCE, "127.0.0.1", 8002, "s-1", 42) == (
        f"port-forward ready: 127.0.0.1:8002 -> {INSTANCE}:8002 (session s-1, pid 42)")
    assert "-> i-1 (10.0.0.5:5432)" in pf.format_ready(15432, "i-1", "10.0.0.5", 5432, "s", 1)


def test_redact_and_short():
    text = ('{"SessionId": "s", "TokenValue": "abc", "SecretAccessKey": "xyz", '
            '"key": "AKIAABCDEFGHIJKLMNOP"}')
    red = pf.redact(text)
    assert "abc" not in red and "xyz" not in red and "AKIAABCDEFGHIJKLMNOP" not in red
    assert '"SessionId": "s"' in red
    assert pf.short("a\n  b\tc") == "a b c"
    assert pf.short("x" * 300, 20) == "x" * 17 + "..."


# --------------------------------------------------------------------------- CLI surface


def test_parser_defaults():
    args = pf.build_parser().parse_args(["start"])
    assert (args.instance_id, args.region, args.profile) == (INSTANCE, "ap-southeast-1", None)
    assert (args.local_port, args.remote_port, args.remote_host) == (8002, 8002, "127.0.0.1")
    assert (args.expect_environment, args.stop_container, args.timeout) == (None, False, 30.0)
    assert pf.build_parser().parse_args(["stop"]).local_port == 8002
    assert pf.build_parser().parse_args(["status", "--local-port", "18002"]).local_port == 18002


def test_bad_arguments_fail_in_one_line(capsys):
    assert pf.main(["start", "--instance-id", "web-1"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("atp-portforward: expected an instance id")
    assert pf.main(["start", "--local-port", "0"]) == 1
    assert "--local-port between 1 and 65535" in capsys.readouterr().err
    assert pf.main(["start", "--timeout", "0"]) == 1
    assert "expected --timeout > 0" in capsys.readouterr().err


def test_state_round_trip_and_stop_without_state(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv(pf.STATE_ENV, str(tmp_path / "state"))
    assert pf.state_dir(18002) == tmp_path / "state" / "18002"
    assert pf.load_state(18002) is None
    pf.save_state(18002, {"session_id": "s-1", "pid": 1})
    assert pf.load_state(18002) == {"session_id": "s-1", "pid": 1}
    assert (pf.state_dir(18002) / pf.STATE_FILE).stat().st_mode & 0o777 == 0o600
    pf.clear_state(18002)
    assert not pf.state_dir(18002).exists()
    assert pf.main(["stop", "--local-port", "18002"]) == 0
    assert "nothing to stop" in capsys.readouterr().out


def test_corrupt_state_is_a_one_line_error(tmp_path, monkeypatch):
    monkeypatch.setenv(pf.STATE_ENV, str(tmp_path))
    (tmp_path / "18002").mkdir()
    (tmp_path / "18002" / pf.STATE_FILE).write_text("{not json")
    with pytest.raises(pf.PortForwardError, match="expected a readable state file"):
        pf.load_state(18002)


def test_state_root_defaults(monkeypatch, tmp_path):
    monkeypatch.delenv(pf.STATE_ENV, raising=False)
    monkeypatch.delenv("XDG_CACHE_HOME", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    assert pf.state_root() == tmp_path / ".cache" / "atp-portforward"
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert pf.state_root() == tmp_path / "xdg" / "atp-portforward"


def test_unexpected_errors_are_one_line_too(monkeypatch, capsys):
    def boom(_args):
        raise RuntimeError("something\nbroke")

    monkeypatch.setattr(pf, "cmd_status", boom)
    monkeypatch.delenv("ATP_PORTFORWARD_DEBUG", raising=False)
    assert pf.main(["status"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "RuntimeError: something broke" in err
    monkeypatch.setenv("ATP_PORTFORWARD_DEBUG", "1")
    with pytest.raises(RuntimeError):
        pf.main(["status"])
