"""tools/atp_ops/portforward/session.py: StartSession/TerminateSession and the plugin process."""

from __future__ import annotations

import json
import subprocess
import sys
import time

import pytest
from atp_ops.portforward import session
from atp_ops.portforward.common import PortForwardError
from botocore.exceptions import ClientError

INSTANCE = "i-08726dc37133b2454"


def test_build_start_request():
    assert session.build_start_request(INSTANCE, "127.0.0.1", 8002, 18002) == {
        "Target": INSTANCE,
        "DocumentName": "AWS-StartPortForwardingSessionToRemoteHost",
        "Parameters": {"host": ["127.0.0.1"], "portNumber": ["8002"],
                       "localPortNumber": ["18002"]},
    }


def test_build_plugin_argv_is_the_aws_cli_one():
    response = {"SessionId": "s-1", "TokenValue": "t", "StreamUrl": "wss://x",
                "ResponseMetadata": {"HTTPStatusCode": 200}}
    request = session.build_start_request(INSTANCE, "127.0.0.1", 8002, 8002)
    argv = session.build_plugin_argv("/usr/bin/session-manager-plugin", response,
                                     "ap-southeast-1", "prod", request,
                                     "https://ssm.ap-southeast-1.amazonaws.com")
    assert argv[0] == "/usr/bin/session-manager-plugin"
    assert json.loads(argv[1]) == response
    assert argv[2:5] == ["ap-southeast-1", "StartSession", "prod"]
    assert json.loads(argv[5]) == request
    assert argv[6] == "https://ssm.ap-southeast-1.amazonaws.com"
    assert len(argv) == 7
    no_profile = session.build_plugin_argv("p", response, "r", None, request, "e")
    assert no_profile[4] == ""


def test_plugin_profile_falls_back_to_environment(monkeypatch):
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    monkeypatch.delenv("AWS_DEFAULT_PROFILE", raising=False)
    assert session.plugin_profile(None) == ""
    monkeypatch.setenv("AWS_PROFILE", "envprof")
    assert session.plugin_profile(None) == "envprof"
    assert session.plugin_profile("explicit") == "explicit"


@pytest.mark.parametrize("good", [INSTANCE, "i-0123abcd", "mi-0123456789abcdef0"])
def test_validate_instance_id_accepts(good):
    session.validate_instance_id(good)


@pytest.mark.parametrize("bad", ["", "i-XYZ", "08726dc37133b2454", "i-08726dc37133b2454;rm"])
def test_validate_instance_id_rejects(bad):
    with pytest.raises(PortForwardError, match="expected an instance id"):
        session.validate_instance_id(bad)


def _client_error(code="AccessDeniedException", message="not allowed") -> ClientError:
    return ClientError({"Error": {"Code": code, "Message": message}}, "StartSession")


def test_aws_error_is_one_short_line():
    assert session.aws_error(_client_error()) == "AccessDeniedException: not allowed"
    assert session.aws_error(RuntimeError("a\nb")) == "RuntimeError: a b"


def test_start_and_terminate_session_with_a_fake_client():
    calls = []

    class Client:
        def start_session(self, **request):
            calls.append(("start", request))
            return {"SessionId": "s-1"}

        def terminate_session(self, SessionId):
            calls.append(("terminate", SessionId))

    request = session.build_start_request(INSTANCE, "127.0.0.1", 8002, 18002)
    assert session.start_session(Client(), request, INSTANCE, "r") == {"SessionId": "s-1"}
    assert session.terminate_session({"session_id": "s-1"}, Client()) is None
    assert calls == [("start", request), ("terminate", "s-1")]


def test_aws_failures_become_one_line_errors():
    class Client:
        def start_session(self, **_request):
            raise _client_error("TargetNotConnected", "i-1 is not connected")

        def terminate_session(self, SessionId):
            raise _client_error()

    with pytest.raises(PortForwardError, match=r"^expected ssm:StartSession to i-1 in r to "
                       "succeed, saw TargetNotConnected: i-1 is not connected: check"):
        session.start_session(Client(), {}, "i-1", "r")
    assert session.terminate_session({"session_id": "s-1"}, Client()) == (
        "AccessDeniedException: not allowed")


def _fake_processes(monkeypatch, alive: dict[int, list[str] | None]):
    monkeypatch.setattr(session, "pid_alive", lambda pid: pid in alive)
    monkeypatch.setattr(session, "read_cmdline", lambda pid: alive.get(pid))


def test_plugin_identity(monkeypatch):
    _fake_processes(monkeypatch, {10: ["session-manager-plugin", '{"SessionId": "s-1"}'],
                                  11: [], 12: None, 13: ["python3", "-m", "http.server"]})
    assert session.plugin_identity(10, "s-1") == "ours"
    assert session.is_our_plugin(10, "s-1")
    assert session.plugin_identity(11, "s-1") == "gone"  # exiting
    assert session.plugin_identity(12, "s-1") == "ours"  # alive, argv not readable
    assert session.plugin_identity(13, "s-1") == "other"  # recycled pid
    assert session.plugin_identity(14, "s-1") == "gone"
    assert session.plugin_identity(None, "s-1") == "gone"


def test_end_process_skips_a_recycled_or_gone_pid(monkeypatch):
    _fake_processes(monkeypatch, {13: ["python3"]})
    assert session.end_process(13, "s-1") == "pid 13 is now another process (not killed)"
    assert session.end_process(14, "s-1") == "plugin pid 14 was not running"


def test_end_process_ends_a_real_plugin_stand_in():
    """A child in its own process group whose argv names the session, as the plugin's does."""
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)",
                             '{"SessionId": "s-real-1"}'], start_new_session=True)
    try:
        deadline = time.monotonic() + 10
        while not session.is_our_plugin(proc.pid, "s-real-1") and time.monotonic() < deadline:
            time.sleep(0.05)
        assert session.plugin_identity(proc.pid, "s-real-1") == "ours"
        assert session.plugin_identity(proc.pid, "s-other") == "other"
        assert session.end_process(proc.pid, "s-real-1", proc, grace=5) == (
            f"plugin pid {proc.pid} ended")
        assert proc.poll() is not None
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_stop_recorded_reports_a_plugin_ended_by_terminate_session(monkeypatch):
    running = {"yes": True}
    monkeypatch.setattr(session, "is_our_plugin", lambda pid, sid: running["yes"])

    def terminate(state, ssm=None):
        running["yes"] = False
        return None

    monkeypatch.setattr(session, "terminate_session", terminate)
    monkeypatch.setattr(session, "end_process", lambda pid, sid, proc, settle: (
        f"plugin pid {pid} was not running"))
    assert session.stop_recorded({"session_id": "s-1", "pid": 7}) == (None, "plugin pid 7 ended")


def test_spawn_plugin_failure_is_one_line(tmp_path):
    with pytest.raises(PortForwardError, match=r"expected to run /nonexistent/plugin, saw "):
        session.spawn_plugin("/nonexistent/plugin", ["/nonexistent/plugin"], tmp_path / "log")


def test_ssm_client_for_an_unknown_profile_is_one_line(monkeypatch, tmp_path):
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "credentials"))
    with pytest.raises(PortForwardError, match="expected an SSM client for region r "
                                               r"\(profile nosuch\), saw ProfileNotFound"):
        session.ssm_client("r", "nosuch")
