"""Port-forwarding sessions, started the way the AWS CLI starts them, through the stand-ins."""

from __future__ import annotations

import contextlib
import http.client
import json
import shutil
import socket
from collections.abc import Iterator

import pytest
from ssm_sandbox import (
    INSTANCE_ID,
    PROFILE,
    REGION,
    PluginProcess,
    docker_exec,
    for_sessions,
    free_port,
    of_kind,
    port_refuses,
)

REMOTE_PORT = 18080
WEB_ROOT = "/tmp/atp-pytest-www"
MARKER = "atp-pytest-served-from-the-instance.txt"
DOCUMENT = "AWS-StartPortForwardingSessionToRemoteHost"
# matches the server's command line, not the shell scripts below (which start and kill it:
# `pkill -f` run from a script whose text matched would kill that script's own shell)
SERVER_PATTERN = f"http[.]server {REMOTE_PORT} --bind 127[.]0[.]0[.]1"

START_SERVER = f"""
- name: An HTTP listener inside the instance, on its loopback only
  hosts: {INSTANCE_ID}
  gather_facts: false
  become: true
  tasks:
    - name: Start python3 -m http.server detached and wait until it answers
      ansible.builtin.shell: |
        pkill -f '{SERVER_PATTERN}' || true
        mkdir -p {WEB_ROOT} && echo instance > {WEB_ROOT}/{MARKER}
        cd {WEB_ROOT}
        port={REMOTE_PORT}
        setsid nohup python3 -m http.server "$port" --bind 127.0.0.1 \\
          </dev/null >/tmp/atp-pytest-http.log 2>&1 &
        for _ in $(seq 1 50); do
          curl -fsS -o /dev/null "http://127.0.0.1:$port/" && exit 0
          sleep 0.2
        done
        echo "http.server did not answer within 10 s" >&2
        cat /tmp/atp-pytest-http.log >&2
        exit 1
      changed_when: true
"""


@pytest.fixture(scope="module")
def instance_http_server(ansible, ansible_playbook, tmp_path_factory) -> Iterator[int]:
    playbook = tmp_path_factory.mktemp("playbook") / "http_server.yml"
    playbook.write_text(START_SERVER)
    run = ansible_playbook(str(playbook), timeout=120)
    assert run.rc == 0, run.describe()
    yield REMOTE_PORT
    run = ansible(INSTANCE_ID, "-b", "-m", "ansible.builtin.shell", "-a",
                  f"pkill -f '{SERVER_PATTERN}'; rm -rf {WEB_ROOT} /tmp/atp-pytest-http.log")
    assert run.rc == 0, run.describe()
    left = docker_exec("pgrep", "-af", SERVER_PATTERN)
    assert left.returncode == 1, f"http.server still running in the instance: {left.stdout}"


@contextlib.contextmanager
def forward_session(boto_session, sandbox_env, local_port: int) -> Iterator[tuple]:
    """StartSession + the plugin, run exactly as `aws ssm start-session` runs it."""
    ssm = boto_session["ssm"]
    request = {"Target": INSTANCE_ID, "DocumentName": DOCUMENT,
               "Parameters": {"host": ["127.0.0.1"], "portNumber": [str(REMOTE_PORT)],
                              "localPortNumber": [str(local_port)]}}
    response = ssm.start_session(**request)
    session_id = response["SessionId"]
    plugin = shutil.which("session-manager-plugin", path=sandbox_env["PATH"])
    cmd = [plugin, json.dumps(response), REGION, "StartSession", PROFILE,
           json.dumps(request), ssm.meta.endpoint_url]
    proc = PluginProcess(cmd, sandbox_env)
    terminated = False
    try:
        yield session_id, proc, lambda: ssm.terminate_session(SessionId=session_id)
        terminated = True
    finally:
        if not terminated:
            with contextlib.suppress(Exception):
                ssm.terminate_session(SessionId=session_id)
        proc.kill()


def test_forward_to_instance_loopback(instance_http_server, boto_session, sandbox_env, events):
    port = free_port()
    offset = events.offset()
    with forward_session(boto_session, sandbox_env, port) as (session_id, proc, terminate):
        out = proc.wait_for_output("Waiting for connections", timeout=20)
        assert f"Port {port} opened for sessionId {session_id}." in out

        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=15)
        try:
            conn.request("GET", "/")
            response = conn.getresponse()
            body = response.read().decode()
        finally:
            conn.close()
        assert response.status == 200, body
        assert "Directory listing for /" in body
        assert MARKER in body  # the listing of the instance's web root, not something local

        terminate()
        assert proc.wait_exit(timeout=10) is not None, "plugin still running after terminate"
    assert port_refuses(port), f"127.0.0.1:{port} still accepts after the session ended"

    new = events.wait_for(offset, lambda e: e.get("kind") == "forward_bytes"
                          and e.get("session") == session_id, timeout=5)
    mine = for_sessions(new, session_id)
    started = of_kind(new, "start_session", session=session_id)
    assert len(started) == 1 and started[0]["document"] == DOCUMENT, mine
    forwards = of_kind(new, "port_forward", session=session_id)
    assert len(forwards) == 1, mine
    assert forwards[0]["local_port"] == port
    assert forwards[0]["local_port_busy"] is False
    assert forwards[0]["remote"] == f"127.0.0.1:{REMOTE_PORT}"
    relayed = of_kind(new, "forward_bytes", session=session_id)
    assert relayed and relayed[0]["down"] >= len(MARKER), mine
    assert len(of_kind(new, "terminate_session", session=session_id)) == 1, mine


def test_bytes_of_a_relay_still_open_at_terminate_are_logged(instance_http_server, boto_session,
                                                             sandbox_env, events):
    """TerminateSession while a client still holds its connection: the relay has not ended,
    and its bytes are still in the event log (they were lost when SIGTERM won that race)."""
    port = free_port()
    offset = events.offset()
    with forward_session(boto_session, sandbox_env, port) as (session_id, proc, terminate):
        proc.wait_for_output("Waiting for connections", timeout=20)
        with socket.create_connection(("127.0.0.1", port), timeout=15) as client:
            client.sendall(f"GET /{MARKER} HTTP/1.0\r\n\r\n".encode())
            answer = b""
            while chunk := client.recv(65536):  # the server's close ends the answer
                answer += chunk
            assert b"instance" in answer, answer
            terminate()  # the client side is still open: the relay is still running
            assert proc.wait_exit(timeout=10) is not None, "plugin still running after terminate"
    new = events.wait_for(offset, lambda e: e.get("kind") == "forward_bytes"
                          and e.get("session") == session_id, timeout=5)
    relayed = of_kind(new, "forward_bytes", session=session_id)
    assert len(relayed) == 1, for_sessions(new, session_id)
    assert relayed[0]["up"] >= len(MARKER) and relayed[0]["down"] >= len(answer), relayed


def test_busy_local_port_is_silently_hijacked(instance_http_server, boto_session, sandbox_env,
                                              events):
    """The seed incident's hazard: the plugin reports the port opened although another
    listener owns it, so clients talk to that listener instead of the instance."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen(4)
        holder.settimeout(10)
        port = holder.getsockname()[1]
        offset = events.offset()
        with forward_session(boto_session, sandbox_env, port) as (session_id, proc, terminate):
            out = proc.wait_for_output("Waiting for connections", timeout=20)
            assert f"Port {port} opened for sessionId {session_id}." in out

            new = events.wait_for(offset, lambda e: e.get("kind") == "port_forward"
                                  and e.get("session") == session_id, timeout=5)
            forwards = of_kind(new, "port_forward", session=session_id)
            assert len(forwards) == 1, for_sessions(new, session_id)
            assert forwards[0]["local_port"] == port
            assert forwards[0]["local_port_busy"] is True

            with socket.create_connection(("127.0.0.1", port), timeout=10) as client:
                client.sendall(b"GET / HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")
                accepted, _ = holder.accept()  # OUR socket got the connection
                with accepted:
                    accepted.settimeout(10)
                    assert accepted.recv(1024).startswith(b"GET / HTTP/1.0")
                    accepted.sendall(b"HTTP/1.0 418 not the instance\r\n\r\n")
                client.settimeout(10)
                reply = client.recv(1024)
            assert reply.startswith(b"HTTP/1.0 418"), reply
            assert MARKER.encode() not in reply
            assert "Connection accepted" not in proc.output

            terminate()
            assert proc.wait_exit(timeout=10) is not None, "plugin still running after terminate"

        mine = for_sessions(events.since(offset), session_id)
        assert of_kind(mine, "forward_bytes") == [], mine
        assert len(of_kind(mine, "terminate_session")) == 1, mine
