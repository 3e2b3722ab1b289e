"""bin/atp-portforward against the sandbox: real StartSession/TerminateSession (stand-in), the
session-manager-plugin stand-in, a fake backend inside i-08726dc37133b4676 (deployed with
ansible over SSM), and a real docker container on the host holding the local port.

Only i-08726dc37133b4676 is used here (other suites use the first instance); local ports are
picked free in 18000-18999. Every subprocess and wait is bounded; fixtures clean up.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import random
import re
import secrets
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from .conftest import REPO, sandbox_env

sys.path.insert(0, str(REPO / "tools"))
from atp_ops import portforward as pf

TOOL = REPO / "bin" / "atp-portforward"
INSTANCE = "i-08726dc37133b4676"
OTHER_INSTANCE = "i-08726dc37133b2454"
PROFILE = "atp-sandbox"
DOCUMENT = "AWS-StartPortForwardingSessionToRemoteHost"
REMOTE_DIR = "/tmp/atp-pf-pytest"
CONTAINER_NAME = "automated-trading-platform-backend-1"
IMAGE = "atp-backend-base:bookworm"

# The fake backend run inside the instance: /api/health and /api/diagnostics/whoami.
APP = '''\
import json
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

PORT, INSTANCE, ENVIRONMENT, PORT_FILE = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]


class Handler(BaseHTTPRequestHandler):
    def do_GET(self):
        if self.path == "/api/health":
            code, body = 200, {"status": "ok", "path": "/api/health"}
        elif self.path == "/api/diagnostics/whoami":
            code, body = 200, {"instance_id": INSTANCE, "environment": ENVIRONMENT,
                               "service": "backend-aws"}
        else:
            code, body = 404, {"detail": "Not Found"}
        data = json.dumps(body).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args):
        pass


server = ThreadingHTTPServer(("127.0.0.1", PORT), Handler)
with open(PORT_FILE + ".tmp", "w") as handle:
    handle.write(str(server.server_address[1]))
import os
os.replace(PORT_FILE + ".tmp", PORT_FILE)
server.serve_forever()
'''

# Two apps on free ports of the instance's loopback: the right one, and one whose whoami
# claims to be another instance. The pattern `atp-pf-pytest/[a]pp.py` matches the apps' command
# lines but not this script's own shell.
START_APPS = f"""
set -u
d={REMOTE_DIR}
[ -f $d/pids ] && kill $(cat $d/pids) 2>/dev/null
rm -f $d/*.port $d/pids
for spec in "right {INSTANCE} aws" "wrong {OTHER_INSTANCE} aws"; do
  set -- $spec
  setsid nohup python3 $d/app.py 0 "$2" "$3" "$d/$1.port" </dev/null >"$d/$1.log" 2>&1 &
  echo $! >> $d/pids
done
for _ in $(seq 1 100); do
  if [ -s $d/right.port ] && [ -s $d/wrong.port ] &&
     curl -fsS -o /dev/null "http://127.0.0.1:$(cat $d/right.port)/api/health" &&
     curl -fsS -o /dev/null "http://127.0.0.1:$(cat $d/wrong.port)/api/health"; then
    echo "ATP_PF_PORTS=$(cat $d/right.port),$(cat $d/wrong.port)"
    exit 0
  fi
  sleep 0.1
done
echo "fake backends did not answer within 10 s" >&2
cat $d/*.log >&2
exit 1
"""
STOP_APPS = (f"d={REMOTE_DIR}; [ -f $d/pids ] && kill $(cat $d/pids) 2>/dev/null; "
             f"sleep 0.3; pgrep -f 'atp-pf-pytest/[a]pp.py' && exit 1; rm -rf $d; exit 0")


# --------------------------------------------------------------------------- helpers


def bounded(cmd: list[str], timeout: float, **kwargs) -> subprocess.CompletedProcess:
    try:
        return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout,
                              stdin=subprocess.DEVNULL, **kwargs)
    except subprocess.TimeoutExpired as exc:
        pytest.fail(f"{' '.join(cmd)} did not finish within {timeout}s: {exc}")


def free_local_port() -> int:
    """A port in 18000-18999 that binds (without SO_REUSEADDR: no TIME_WAIT leftovers)."""
    candidates = list(range(18000, 19000))
    random.shuffle(candidates)
    for port in candidates:
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
        return port
    pytest.fail("no free local port in 18000-18999")


def wait_until(predicate: Callable[[], bool], timeout: float, interval: float = 0.1) -> bool:
    deadline = time.monotonic() + timeout
    while True:
        if predicate():
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(interval)


def port_accepts(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return True
    except OSError:
        return False


def listening(port: int) -> bool:
    return bool(pf.listeners_on(pf.read_proc_sockets(), port))


def get_json(port: int, path: str) -> tuple[int, dict]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request("GET", path)
        response = conn.getresponse()
        return response.status, json.loads(response.read() or b"null")
    finally:
        conn.close()


def live_processes_with(text: str) -> list[str]:
    """Non-zombie processes whose command line contains ``text``."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
            cmdline = Path(f"/proc/{entry}/cmdline").read_bytes().replace(b"\0", b" ")
        except OSError:
            continue
        if stat.rsplit(")", 1)[1].split()[0] in "ZX" or not cmdline:
            continue
        if text.encode() in cmdline:
            found.append(f"{entry}: {cmdline[:120].decode(errors='replace')}")
    return found


@contextlib.contextmanager
def local_listener(port: int) -> Iterator[subprocess.Popen]:
    proc = subprocess.Popen([sys.executable, "-m", "http.server", str(port), "--bind",
                             "127.0.0.1"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    try:
        assert wait_until(lambda: port_accepts(port), 10), "local http.server did not start"
        yield proc
    finally:
        proc.kill()
        proc.wait(timeout=10)


class Tool:
    """Runs bin/atp-portforward with the sandbox environment and a private state dir."""

    def __init__(self, env: dict[str, str]) -> None:
        self.env = env
        self.started: list[int] = []
        self.timings: list[float] = []

    def __call__(self, *args: str, timeout: float = 90) -> subprocess.CompletedProcess:
        if args and args[0] == "start":
            self.started.append(int(args[args.index("--local-port") + 1]))
        began = time.monotonic()
        done = bounded([str(TOOL), *args], timeout, env=self.env, cwd=REPO)
        done.elapsed = time.monotonic() - began
        return done

    def start(self, port: int, remote_port: int, *extra: str) -> subprocess.CompletedProcess:
        done = self("start", "--instance-id", INSTANCE, "--profile", PROFILE, "--region",
                    "ap-southeast-1", "--local-port", str(port), "--remote-port",
                    str(remote_port), "--timeout", "30", *extra)
        if done.returncode == 0:
            self.timings.append(done.elapsed)
        return done

    def state(self, port: int) -> dict | None:
        path = Path(self.env["ATP_PORTFORWARD_STATE_DIR"]) / str(port) / "state.json"
        return json.loads(path.read_text()) if path.exists() else None


def ready_line(done: subprocess.CompletedProcess, port: int, remote_port: int) -> tuple[str, int]:
    assert done.returncode == 0, f"rc={done.returncode}\n{done.stdout}\n{done.stderr}"
    match = re.fullmatch(
        rf"port-forward ready: 127\.0\.0\.1:{port} -> {INSTANCE}:{remote_port} "
        rf"\(session (\S+), pid (\d+)\)", done.stdout.strip())
    assert match, done.stdout
    return match.group(1), int(match.group(2))


def one_line_error(done: subprocess.CompletedProcess) -> str:
    assert done.returncode != 0, done.stdout
    lines = [line for line in done.stderr.splitlines() if "warning:" not in line]
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith("atp-portforward: "), done.stderr
    return lines[0]


def of_kind(events, kind: str, **fields) -> list[dict]:
    return [e for e in events.since() if e.get("kind") == kind
            and all(e.get(k) == v for k, v in fields.items())]


def assert_session_gone(events, tool: Tool, session_id: str, port: int) -> None:
    assert wait_until(lambda: not live_processes_with(session_id), 10), \
        live_processes_with(session_id)
    assert wait_until(lambda: not port_accepts(port), 10), f"127.0.0.1:{port} still accepts"
    assert tool.state(port) is None
    assert wait_until(lambda: of_kind(events, "terminate_session", session=session_id), 5), \
        f"no terminate_session for {session_id} in events.jsonl"


# --------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def env(tmp_path_factory) -> dict[str, str]:
    env = sandbox_env()
    for name in ("AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_ENDPOINT_URL",
                 "AWS_ENDPOINT_URL_SSM", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY",
                 "AWS_SESSION_TOKEN"):
        env.pop(name, None)
    env["ATP_PORTFORWARD_STATE_DIR"] = str(tmp_path_factory.mktemp("pf-state"))
    return env


@pytest.fixture(scope="module")
def inventory(tmp_path_factory) -> Path:
    inv = tmp_path_factory.mktemp("pf-inventory")
    (inv / "hosts.yml").write_text(f"backend:\n  hosts:\n    {INSTANCE}:\n")
    (inv / "group_vars").symlink_to(REPO / "inventory" / "sandbox" / "group_vars")
    return inv


@pytest.fixture(scope="module")
def fake_backends(inventory, tmp_path_factory) -> Iterator[tuple[int, int]]:
    """(remote port of the right app, remote port of the app claiming OTHER_INSTANCE)."""
    app = tmp_path_factory.mktemp("pf-app") / "app.py"
    app.write_text(APP)
    # ansible over the sandbox's SSM (its endpoints from the environment: this inventory has
    # only hosts and group_vars); the tool under test gets the stripped `env` fixture instead
    env = sandbox_env()

    def adhoc(module: str, args: str) -> subprocess.CompletedProcess:
        return bounded([str(REPO / ".venv" / "bin" / "ansible"), "-i", str(inventory),
                        "backend", "-b", "-m", module, "-a", args], 120, env=env, cwd=REPO)

    done = adhoc("ansible.builtin.file", f"path={REMOTE_DIR} state=directory mode=0755")
    assert done.returncode == 0, done.stdout + done.stderr
    try:
        done = adhoc("ansible.builtin.copy", f"src={app} dest={REMOTE_DIR}/app.py mode=0644")
        assert done.returncode == 0, done.stdout + done.stderr
        done = adhoc("ansible.builtin.shell", START_APPS)
        match = re.search(r"ATP_PF_PORTS=(\d+),(\d+)", done.stdout)
        assert done.returncode == 0 and match, done.stdout + done.stderr
        yield int(match.group(1)), int(match.group(2))
    finally:
        done = adhoc("ansible.builtin.shell", STOP_APPS)
        assert done.returncode == 0, f"fake backends not cleaned up: {done.stdout}{done.stderr}"


@pytest.fixture
def tool(env) -> Iterator[Tool]:
    tool = Tool(env)
    yield tool
    for port in tool.started:  # whatever a failed test left behind
        if tool.state(port) is not None:
            tool("stop", "--local-port", str(port), timeout=60)


@pytest.fixture
def container() -> Iterator[Callable[[int], tuple[str, str]]]:
    """container(port) -> (id, name): a real container on the host publishing 127.0.0.1:port."""
    if bounded(["docker", "info", "--format", "{{.ServerVersion}}"], 30).returncode != 0:
        pytest.fail("the host docker engine is not reachable (docker info failed)")
    made: list[str] = []

    def run(port: int) -> tuple[str, str]:
        # the incident's name; a unique one if another suite holds that name right now
        for name in (CONTAINER_NAME, f"{CONTAINER_NAME}-pftest-{secrets.token_hex(3)}"):
            # --init: http.server as PID 1 ignores SIGTERM, `docker stop` would wait 10 s
            done = bounded(["docker", "run", "-d", "--init", "--name", name, "-p",
                            f"127.0.0.1:{port}:8002", IMAGE, "python3", "-m", "http.server",
                            "8002"], 60)
            if done.returncode == 0:
                made.append(done.stdout.strip())
                # wait for docker-proxy's listener without connecting: a connection the proxy
                # closes first would leave TIME_WAIT on the port for 60 s
                assert wait_until(lambda: listening(port), 15), f"{name} not on {port}"
                return done.stdout.strip(), name
            assert "Conflict" in done.stderr, done.stderr
        pytest.fail("could not start a container")

    yield run
    for cid in made:
        bounded(["docker", "rm", "-f", cid], 60)


# --------------------------------------------------------------------------- tests


def test_start_status_stop(tool, fake_backends, events):
    right, _wrong = fake_backends
    port = free_local_port()
    started = tool.start(port, right, "--expect-environment", "aws")
    session_id, pid = ready_line(started, port, right)
    assert started.elapsed < 30
    assert "warning" not in started.stderr, started.stderr

    # through the tunnel: the instance's app, not anything local
    assert get_json(port, "/api/health") == (200, {"status": "ok", "path": "/api/health"})
    status, whoami = get_json(port, "/api/diagnostics/whoami")
    assert status == 200 and whoami["instance_id"] == INSTANCE

    state = tool.state(port)
    assert {k: state[k] for k in ("session_id", "pid", "instance_id", "region", "profile")} == {
        "session_id": session_id, "pid": pid, "instance_id": INSTANCE,
        "region": "ap-southeast-1", "profile": PROFILE}
    assert "TokenValue" not in json.dumps(state)
    [start_event] = of_kind(events, "start_session", session=session_id)
    assert start_event["target"] == INSTANCE and start_event["document"] == DOCUMENT

    shown = tool("status", "--local-port", str(port))
    assert shown.returncode == 0, shown.stdout + shown.stderr
    assert session_id in shown.stdout and INSTANCE in shown.stdout
    assert f"plugin pid {pid}: alive" in shown.stdout
    assert f"127.0.0.1:{port}: open (listener: the plugin)" in shown.stdout
    assert 'GET /api/health: 200 {"status": "ok"' in shown.stdout

    stopped = tool("stop", "--local-port", str(port))
    assert stopped.returncode == 0, stopped.stdout + stopped.stderr
    assert f"session {session_id} to {INSTANCE} terminated" in stopped.stdout
    assert_session_gone(events, tool, session_id, port)

    again = tool("stop", "--local-port", str(port))
    assert again.returncode == 0 and "nothing to stop" in again.stdout
    gone = tool("status", "--local-port", str(port))
    assert gone.returncode == 3 and "no atp-portforward session" in gone.stdout


@pytest.mark.parametrize("case", ["other-instance", "other-environment"])
def test_identity_mismatch_stops_the_session(case, tool, fake_backends, events):
    right, wrong = fake_backends
    port = free_local_port()
    if case == "other-instance":
        done = tool.start(port, wrong)
        expected, seen = f"instance_id={INSTANCE}", f"instance_id={OTHER_INSTANCE}"
    else:
        done = tool.start(port, right, "--expect-environment", "production")
        expected, seen = "environment=production", "environment=aws"
    line = one_line_error(done)
    before, _, after = line.partition("whoami says")
    assert expected in before and seen in after, line
    assert "the port-forward was stopped" in line
    [started] = of_kind(events, "start_session", target=INSTANCE, document=DOCUMENT)
    assert_session_gone(events, tool, started["session"], port)


def test_busy_port_names_the_container_and_stop_container_frees_it(
        tool, fake_backends, container, events):
    right, _wrong = fake_backends
    port = free_local_port()
    cid, name = container(port)

    refused = tool.start(port, right)
    line = one_line_error(refused)
    assert re.fullmatch(
        rf"atp-portforward: local port {port} is held by docker container {re.escape(name)} "
        rf"\((pid \d+ docker-proxy|published by docker)\): a port-forward would reach it, not "
        rf"{INSTANCE}; stop it \(docker stop {re.escape(name)}\) or re-run with "
        rf"--stop-container or --local-port \d+", line), line
    opened = of_kind(events, "start_session", target=INSTANCE, document=DOCUMENT)
    assert opened == [], "a session was opened"
    running = bounded(["docker", "inspect", "-f", "{{.State.Running}}", cid], 30)
    assert running.stdout.strip() == "true", "the container was stopped without --stop-container"

    started = tool.start(port, right, "--stop-container")
    session_id, _pid = ready_line(started, port, right)
    assert f"stopped docker container {name}" in started.stderr
    running = bounded(["docker", "inspect", "-f", "{{.State.Running}}", cid], 30)
    assert running.stdout.strip() == "false"
    status, whoami = get_json(port, "/api/diagnostics/whoami")
    assert status == 200 and whoami["instance_id"] == INSTANCE

    stopped = tool("stop", "--local-port", str(port))
    assert stopped.returncode == 0, stopped.stdout + stopped.stderr
    assert_session_gone(events, tool, session_id, port)


def test_busy_port_held_by_a_local_process(tool, fake_backends, events):
    right, _wrong = fake_backends
    port = free_local_port()
    with local_listener(port) as proc:
        done = tool.start(port, right, "--stop-container")
        line = one_line_error(done)
    assert f"local port {port} is held by pid {proc.pid} (" in line, line
    assert "http.server" in line and f"not {INSTANCE}" in line
    assert "--stop-container stops docker containers only" in line
    assert of_kind(events, "start_session", target=INSTANCE, document=DOCUMENT) == []
