"""Stand-ins for the AWS endpoints the aws_ssm connection plugin talks to (TEST INFRASTRUCTURE).

One process serves:
- an SSM endpoint: StartSession / TerminateSession / ResumeSession are answered here (moto does
  not implement them); every other SSM action (Parameter Store...) is relayed to moto;
- S3 for the plugin's file transfers: a logging reverse proxy in front of moto;
- a relay per sandbox instance that makes that same S3 URL (127.0.0.1:S3_PORT) reachable from
  inside the instance, as a presigned URL must be reachable from both sides;
- moto itself (EC2, Parameter Store, KMS...), where every sandbox instance is registered as an
  EC2 instance with the production inventory's tags (ec2.py).
"""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import secrets
import signal
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

from . import ec2, netns, transfer_kms
from .config import BUCKET, MOTO_PORT, REGION, S3_PORT, SSM_PORT, Paths, load_state
from .events import log_event, modeled_latency

PATHS = Paths()


def _read_body(handler: BaseHTTPRequestHandler) -> bytes:
    if handler.headers.get("Transfer-Encoding", "").lower() == "chunked":
        chunks = []
        while True:
            size = int(handler.rfile.readline().strip().split(b";")[0], 16)
            if size == 0:
                handler.rfile.readline()
                break
            chunks.append(handler.rfile.read(size))
            handler.rfile.readline()
        return b"".join(chunks)
    length = int(handler.headers.get("Content-Length") or 0)
    return handler.rfile.read(length) if length else b""


def _relay_to_moto(handler: BaseHTTPRequestHandler, body: bytes) -> tuple[int, bytes]:
    headers = {k: v for k, v in handler.headers.items()
               if k.lower() not in ("transfer-encoding", "connection", "content-length")}
    conn = http.client.HTTPConnection("127.0.0.1", MOTO_PORT, timeout=300)
    try:
        conn.request(handler.command, handler.path, body=body, headers=headers)
        resp = conn.getresponse()
        data = resp.read()
        handler.send_response(resp.status, resp.reason)
        for key, value in resp.getheaders():
            if key.lower() not in ("transfer-encoding", "connection", "content-length", "server",
                                   "date"):
                handler.send_header(key, value)
        handler.send_header("Content-Length", str(len(data)))
        handler.end_headers()
        if handler.command != "HEAD":
            handler.wfile.write(data)
        return resp.status, data
    finally:
        conn.close()


class _Quiet(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args) -> None:  # keep the daemon log for real problems
        pass


class S3Proxy(_Quiet):
    """S3 as the instance and the controller see it: moto, with every transfer logged."""

    def _any(self) -> None:
        body = _read_body(self)
        path = urlsplit(self.path).path
        if path.count("/") >= 2:
            log_event("s3_start", PATHS, method=self.command, key=path, bytes_in=len(body))
        modeled_latency("s3")
        modeled_latency(f"s3_{self.command}")
        status, data = _relay_to_moto(self, body)
        if path.count("/") >= 2:  # object operations only, not bucket housekeeping
            log_event("s3", PATHS, method=self.command, key=path, status=status,
                      bytes_in=len(body), bytes_out=len(data) if self.command == "GET" else 0)

    do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = _any


def _access_key(handler: BaseHTTPRequestHandler) -> str:
    """The access key id a request was signed with (not a secret; shows which identity)."""
    auth = handler.headers.get("Authorization", "")
    return auth.partition("Credential=")[2].partition("/")[0]


def _session_file(session_id: str):
    return PATHS.sessions / f"{session_id}.json"


def _target_running(target: str) -> bool:
    info = load_state(PATHS)["instances"].get(target)
    if not info:
        return False
    try:
        with open(f"/proc/{info['pid']}/stat", encoding="ascii"):
            return True
    except (OSError, KeyError):
        return False


class SSMEndpoint(_Quiet):
    """The ssm API: session actions answered here, everything else relayed to moto."""

    def _json(self, status: int, payload: dict) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/x-amz-json-1.1")
        self.send_header("x-amzn-RequestId", secrets.token_hex(16))
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _error(self, code: str, message: str) -> None:
        self._json(400, {"__type": code, "message": message})

    def do_POST(self) -> None:
        body = _read_body(self)
        action = self.headers.get("X-Amz-Target", "").rpartition(".")[2]
        handler = getattr(self, f"_action_{action}", None)
        if handler is None:
            _relay_to_moto(self, body)
            return
        modeled_latency(action)
        handler(json.loads(body or b"{}"))

    def _action_StartSession(self, req: dict) -> None:
        target = req.get("Target", "")
        if not _target_running(target):
            log_event("start_session_refused", PATHS, target=target,
                      access_key=_access_key(self))
            self._error("TargetNotConnected", f"{target} is not connected.")
            return
        session_id = f"sandbox-operator-{secrets.token_hex(9)}"
        token = secrets.token_urlsafe(32)
        record = {"SessionId": session_id, "Target": target, "TokenValue": token,
                  "DocumentName": req.get("DocumentName"), "Parameters": req.get("Parameters"),
                  "started": time.time(), "status": "Connected"}
        PATHS.sessions.mkdir(parents=True, exist_ok=True)
        _session_file(session_id).write_text(json.dumps(record))
        log_event("start_session", PATHS, session=session_id, target=target,
                  document=req.get("DocumentName"), access_key=_access_key(self))
        self._json(200, {
            "SessionId": session_id, "TokenValue": token,
            "StreamUrl": f"wss://ssmmessages.{REGION}.amazonaws.com/v1/data-channel/"
                         f"{session_id}?role=publish_subscribe&cell-number=sandbox"})

    def _action_ResumeSession(self, req: dict) -> None:
        session_id = req.get("SessionId", "")
        try:
            record = json.loads(_session_file(session_id).read_text())
        except FileNotFoundError:
            self._error("DoesNotExistException", f"Session {session_id} does not exist.")
            return
        self._json(200, {"SessionId": session_id, "TokenValue": record["TokenValue"],
                         "StreamUrl": f"wss://ssmmessages.{REGION}.amazonaws.com/v1/"
                                      f"data-channel/{session_id}"})

    def _action_TerminateSession(self, req: dict) -> None:
        session_id = req.get("SessionId", "")
        path = _session_file(session_id)
        try:
            record = json.loads(path.read_text())
        except FileNotFoundError:
            record = None
        if record and record.get("status") != "Terminated":
            pid = record.get("plugin_pid")
            if pid:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGTERM)
            record["status"] = "Terminated"
            path.write_text(json.dumps(record))
        log_event("terminate_session", PATHS, session=session_id)
        self._json(200, {"SessionId": session_id})


class InstanceRelays(threading.Thread):
    """Keeps 127.0.0.1:S3_PORT inside every running instance relayed to the S3 stand-in."""

    def __init__(self) -> None:
        super().__init__(daemon=True)
        self.listeners: dict[str, tuple[int, object]] = {}

    def run(self) -> None:
        while True:
            try:
                self.sync()
            except Exception as exc:
                print(f"relay sync: {exc}", flush=True)
            time.sleep(0.5)

    def sync(self) -> None:
        for instance_id, info in load_state(PATHS)["instances"].items():
            pid = info.get("pid")
            known = self.listeners.get(instance_id)
            if not pid or (known and known[0] == pid) or not os.path.exists(f"/proc/{pid}"):
                continue
            sock = netns.listen_in(pid, "127.0.0.1", S3_PORT)
            self.listeners[instance_id] = (pid, sock)
            threading.Thread(target=self._accept, args=(sock,), daemon=True).start()
            print(f"relay ready in {instance_id} (pid {pid})", flush=True)

    @staticmethod
    def _accept(sock) -> None:
        import socket

        while True:
            try:
                conn, _ = sock.accept()
            except OSError:
                return
            upstream = socket.create_connection(("127.0.0.1", S3_PORT))
            threading.Thread(target=netns.pump, args=(conn, upstream), daemon=True).start()


def _ensure_bucket() -> None:
    conn = http.client.HTTPConnection("127.0.0.1", MOTO_PORT, timeout=30)
    body = (f'<CreateBucketConfiguration><LocationConstraint>{REGION}</LocationConstraint>'
            f'</CreateBucketConfiguration>').encode()
    conn.request("PUT", f"/{BUCKET}", body=body,
                 headers={"Host": f"127.0.0.1:{MOTO_PORT}",
                          "Authorization": "AWS4-HMAC-SHA256 Credential=sandbox/20260101/"
                                           f"{REGION}/s3/aws4_request, SignedHeaders=host, "
                                           "Signature=0"})
    conn.getresponse().read()
    conn.close()


def serve() -> None:
    from moto.server import ThreadedMotoServer

    ec2.install_id_hook()
    moto = ThreadedMotoServer(ip_address="127.0.0.1", port=MOTO_PORT, verbose=False)
    moto.start()
    _ensure_bucket()
    transfer_kms.ensure_transfer_encryption()  # default SSE-KMS, as in production
    ec2.Registry(PATHS).start()
    servers = [ThreadingHTTPServer(("127.0.0.1", S3_PORT), S3Proxy),
               ThreadingHTTPServer(("127.0.0.1", SSM_PORT), SSMEndpoint)]
    for server in servers:
        server.daemon_threads = True
        threading.Thread(target=server.serve_forever, daemon=True).start()
    InstanceRelays().start()
    print(f"stand-ins ready: ssm 127.0.0.1:{SSM_PORT} s3 127.0.0.1:{S3_PORT}", flush=True)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    stop.wait()
    for server in servers:
        server.shutdown()
    moto.stop()
