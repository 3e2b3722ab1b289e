"""tools/atp_ops/portforward/identity.py: health and whoami through the tunnel, the verdict."""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from atp_ops.portforward import identity

INSTANCE = "i-08726dc37133b2454"


def test_check_health():
    assert identity.check_health(200, '{"status":"ok","path":"/api/health"}') is None
    assert identity.check_health(200, '{"status":"degraded"}') == '200 {"status":"degraded"}'
    assert identity.check_health(404, '{"detail":"Not Found"}').startswith("404 ")
    assert identity.check_health(200, "<html>hi</html>") == "200 <html>hi</html>"
    assert identity.check_health(200, "[]") == "200 []"
    assert identity.check_health(502, "") == "502 (empty body)"


def _whoami(instance_id=INSTANCE, environment="aws") -> str:
    return json.dumps({"instance_id": instance_id, "environment": environment,
                       "service": "backend-aws"})


def test_identity_match():
    found = identity.check_identity(200, _whoami(), INSTANCE, "aws", 8002)
    assert found.verdict == "match"
    assert identity.check_identity(200, _whoami(), INSTANCE, None, 8002).verdict == "match"


def test_identity_mismatch_names_both():
    other = "i-08726dc37133b3565"
    found = identity.check_identity(200, _whoami(other), INSTANCE, None, 8002)
    assert found.verdict == "mismatch"
    assert f"expected instance_id={INSTANCE}" in found.message
    assert f"whoami says instance_id={other}" in found.message
    assert "\n" not in found.message


def test_identity_environment_mismatch_and_missing_fields():
    env = identity.check_identity(200, _whoami(environment="local"), INSTANCE, "aws", 8002)
    assert env.verdict == "mismatch"
    assert "environment=aws" in env.message and "environment=local" in env.message
    local = identity.check_identity(200, '{"environment": "local"}', INSTANCE, None, 8002)
    assert local.verdict == "mismatch" and "instance_id=(none)" in local.message
    text = identity.check_identity(200, "hello", INSTANCE, None, 8002)
    assert text.verdict == "mismatch" and "something else serves this port" in text.message


def test_identity_unverified():
    disabled = identity.check_identity(404, '{"detail":"Not Found"}', INSTANCE, "aws", 8002)
    assert disabled.verdict == "unverified"
    assert "whoami disabled: set PORTFOLIO_DEBUG=1" in disabled.message
    broken = identity.check_identity(500, "oops", INSTANCE, None, 8002)
    assert broken.verdict == "unverified" and "answered 500 oops" in broken.message


def test_format_ready():
    assert identity.format_ready(8002, INSTANCE, "127.0.0.1", 8002, "s-1", 42) == (
        f"port-forward ready: 127.0.0.1:8002 -> {INSTANCE}:8002 (session s-1, pid 42)")
    assert "-> i-1 (10.0.0.5:5432)" in identity.format_ready(15432, "i-1", "10.0.0.5", 5432,
                                                             "s", 1)


def test_target_text():
    assert identity.target_text("i-1", "localhost", 80) == "i-1:80"
    assert identity.target_text("i-1", "10.0.0.5", 80) == "i-1 (10.0.0.5:80)"


@pytest.fixture
def backend():
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):
            body = json.dumps({"status": "ok", "path": self.path}).encode()
            self.send_response(200 if self.path == identity.HEALTH_PATH else 404)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *_args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.server_address[1]
    server.shutdown()
    server.server_close()


def test_http_through_a_local_port(backend):
    assert identity.tcp_connects(backend)
    status, body = identity.http_get(backend, identity.HEALTH_PATH, timeout=5)
    assert status == 200 and identity.check_health(status, body) is None
    assert identity.http_get_until(backend, identity.WHOAMI_PATH, time.monotonic() + 5)[0] == 404


def test_http_get_until_gives_up_at_the_deadline():
    port = _closed_port()
    assert not identity.tcp_connects(port)
    began = time.monotonic()
    with pytest.raises(ConnectionError, match="ConnectionRefusedError"):
        identity.http_get_until(port, identity.HEALTH_PATH, time.monotonic() + 0.5)
    assert time.monotonic() - began < 5


def _closed_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]
