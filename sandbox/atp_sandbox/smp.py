"""`session-manager-plugin` stand-in (TEST INFRASTRUCTURE).

Invoked exactly like the real plugin:
  session-manager-plugin <StartSession response json> <region> StartSession <profile>
                         <request parameters json> <ssm endpoint url>
Shell sessions: a PTY-backed bash in the instance as ssm-user.
Port-forwarding sessions (AWS-StartPortForwardingSession[ToRemoteHost]): listens on the local
port and forwards into the instance's network namespace. When the local port is taken it behaves
like the real plugin (aws/session-manager-plugin#141): it reports the port opened, then never
accepts a connection, so tools must detect a busy port themselves.
"""

from __future__ import annotations

import contextlib
import errno
import functools
import json
import os
import pty
import select
import signal
import socket
import subprocess
import sys
import threading
import time

from . import netns
from .config import Paths, load_state
from .events import log_event

PATHS = Paths()
SHELL_DOCS = (None, "", "SSM-SessionManagerRunShell")
FORWARD_DOCS = ("AWS-StartPortForwardingSession", "AWS-StartPortForwardingSessionToRemoteHost")


def _fail(message: str) -> int:
    sys.stderr.write(message + "\n")
    sys.stderr.flush()
    return 1


def _descendants(root: int) -> list[int]:
    parents: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat", encoding="ascii", errors="replace") as handle:
                    fields = handle.read().rsplit(")", 1)[1].split()
                parents[int(entry)] = int(fields[1])
            except (OSError, IndexError, ValueError):
                continue
    found, frontier = [], [root]
    while frontier:
        current = frontier.pop()
        children = [pid for pid, ppid in parents.items() if ppid == current]
        found.extend(children)
        frontier.extend(children)
    return found


def _shell_pid(marker: str) -> int | None:
    """The instance-side shell of this session (found by its environment marker)."""
    needle = f"ATP_SANDBOX_SESSION={marker}".encode()
    pids = sorted(int(entry) for entry in os.listdir("/proc") if entry.isdigit())
    for pid in pids:
        try:
            with open(f"/proc/{pid}/environ", "rb") as handle:
                if needle in handle.read().split(b"\0"):
                    return pid
        except OSError:
            continue
    return None


def _kill_tree(pid: int | None) -> None:
    """Terminating a session ends everything it started on the instance, as the agent does."""
    if not pid:
        return
    for victim in [pid, *_descendants(pid)]:
        with contextlib.suppress(ProcessLookupError):
            os.kill(victim, signal.SIGKILL)


def run_shell(session_id: str, container: str) -> int:
    master, slave = pty.openpty()
    proc = subprocess.Popen(
        ["docker", "exec", "-it", "-u", "ssm-user", "-w", "/home/ssm-user",
         "-e", f"ATP_SANDBOX_SESSION={session_id}", container, "bash"],
        stdin=slave, stdout=slave, stderr=slave, close_fds=True, start_new_session=True)
    os.close(slave)
    shell = {"pid": None, "finishing": False}

    def finish(*_args) -> None:
        # Popen.terminate() by the aws_ssm plugin and TerminateSession each send SIGTERM, ms
        # apart: a nested call must not re-enter (it could fail half-way, e.g. in a lazy import,
        # and leave the session's processes running on the instance)
        if shell["finishing"]:
            return
        shell["finishing"] = True
        shell["pid"] = shell["pid"] or _shell_pid(session_id)
        _kill_tree(shell["pid"])
        proc.kill()
        log_event("session_end", PATHS, session=session_id, reason="terminated")
        os._exit(0)

    signal.signal(signal.SIGTERM, finish)
    signal.signal(signal.SIGHUP, finish)
    sys.stdout.write(f"\nStarting session with SessionId: {session_id}\n")
    sys.stdout.flush()
    pending = b""
    stdin_open = True
    while proc.poll() is None:
        fds = [master] + ([0] if stdin_open else [])
        ready, _, _ = select.select(fds, [], [], 0.5)
        if 0 in ready:
            data = os.read(0, 65536)
            if not data:
                stdin_open = False
                continue
            os.write(master, data)
            pending += data
            while b"\n" in pending:
                line, pending = pending.split(b"\n", 1)
                if line.strip():
                    log_event("command", PATHS, session=session_id, bytes=len(line),
                              head=line[:80].decode(errors="replace"))
        if master in ready:
            try:
                data = os.read(master, 65536)
            except OSError as exc:
                if exc.errno == errno.EIO:
                    break
                raise
            if data:
                os.write(1, data)
    proc.wait()
    log_event("session_end", PATHS, session=session_id, reason="exit")
    return 0


def run_forward(session_id: str, record: dict, container_pid: int) -> int:
    params = record.get("Parameters") or {}
    remote_host = (params.get("host") or ["127.0.0.1"])[0]
    if record.get("DocumentName") == "AWS-StartPortForwardingSession":
        remote_host = "127.0.0.1"
    remote_port = int((params.get("portNumber") or ["80"])[0])
    local_port = int((params.get("localPortNumber") or ["0"])[0])
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    # Go's net.Listen (the real plugin) sets SO_REUSEADDR: TIME_WAIT leftovers do not block it;
    # a live listener on the port still does.
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        listener.bind(("127.0.0.1", local_port))
        listener.listen(16)
        local_port = listener.getsockname()[1]
        busy = False
    except OSError:
        busy = True
    # Relays still open, or closed but not yet logged: TerminateSession (SIGTERM) can land
    # between a client's close and its relay's end; their bytes are logged before the exit.
    open_relays: dict[int, list] = {}
    relays_lock = threading.RLock()  # the SIGTERM handler may run while main holds it

    def log_relay(key: int, up: int, down: int) -> None:
        with relays_lock:  # held while writing: the exit waits for a relay's line
            if open_relays.pop(key, None) is not None:
                log_event("forward_bytes", PATHS, session=session_id, up=up, down=down)

    def on_terminate(*_: object) -> None:
        for key, counts in list(open_relays.items()):
            log_relay(key, counts[0], counts[1])
        os._exit(0)

    signal.signal(signal.SIGTERM, on_terminate)
    print(f"\nStarting session with SessionId: {session_id}")
    print(f"Port {local_port} opened for sessionId {session_id}.")
    print("Waiting for connections...\n", flush=True)
    log_event("port_forward", PATHS, session=session_id, local_port=local_port,
              remote=f"{remote_host}:{remote_port}", local_port_busy=busy)
    if busy:
        while True:  # like the real plugin: never accepts, until TerminateSession
            time.sleep(3600)
    while True:
        conn, _ = listener.accept()
        print(f"\nConnection accepted for session [{session_id}]", flush=True)
        try:
            upstream = netns.connect_in(container_pid, remote_host, remote_port)
        except OSError as exc:
            print(f"Connection to destination port failed, check SSM Agent logs: {exc}",
                  flush=True)
            conn.close()
            continue

        counts = [0, 0]
        key = id(counts)
        with relays_lock:
            open_relays[key] = counts
        threading.Thread(target=netns.pump, daemon=True,
                         args=(conn, upstream, functools.partial(log_relay, key), counts)).start()


def main(argv: list[str]) -> int:
    if not argv:
        print("\nThe Session Manager plugin was installed successfully. "
              "Use the AWS CLI to start a session.\n")
        return 0
    if len(argv) < 3 or argv[2] != "StartSession":
        return _fail(f"session-manager-plugin stand-in: unsupported call {argv[2:3]}")
    response = json.loads(argv[0])
    session_id = response.get("SessionId", "")
    try:
        record = json.loads((PATHS.sessions / f"{session_id}.json").read_text())
    except FileNotFoundError:
        return _fail(f"Cannot perform start session: session {session_id} does not exist")
    if record.get("TokenValue") != response.get("TokenValue") or record["status"] != "Connected":
        return _fail(f"Cannot perform start session: session {session_id} is not valid")
    request = json.loads(argv[4]) if len(argv) > 4 and argv[4] else {}
    if request.get("DocumentName"):
        record.setdefault("DocumentName", request["DocumentName"])
        record["Parameters"] = record.get("Parameters") or request.get("Parameters")
    info = load_state(PATHS)["instances"].get(record["Target"])
    if not info:
        return _fail(f"Cannot perform start session: {record['Target']} is not connected")
    record["plugin_pid"] = os.getpid()
    # a non-root controller user (tests/integration/test_nonroot_controller.py) cannot write
    # the stand-in's (root's) session file: TerminateSession then cannot signal this process,
    # the aws_ssm plugin still ends it itself
    with contextlib.suppress(PermissionError):
        (PATHS.sessions / f"{session_id}.json").write_text(json.dumps(record))
    log_event("plugin_start", PATHS, session=session_id, target=record["Target"],
              document=record.get("DocumentName"))
    if record.get("DocumentName") in SHELL_DOCS:
        return run_shell(session_id, info["container"])
    if record.get("DocumentName") in FORWARD_DOCS:
        return run_forward(session_id, record, info["pid"])
    return _fail(f"session-manager-plugin stand-in: document {record.get('DocumentName')} "
                 "is not supported")
