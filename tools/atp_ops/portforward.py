"""atp-portforward: an SSM port-forward to the backend that proves where it leads.

Why: an operator's `aws ssm start-session ... localPortNumber=8002` silently reached a LOCAL
docker container (automated-trading-platform-backend-1) that held 127.0.0.1:8002, because the
session-manager-plugin reports "Waiting for connections" even when it could not bind the port.
This tool refuses a held port (naming the process or container), starts the session exactly as
the AWS CLI does, waits until the tunnel answers, and checks /api/health and
/api/diagnostics/whoami through it before it says "ready".

The first half of this module is pure (parsing, argv building, decisions, messages) and unit
tested; the second half does the I/O (procfs, docker, boto3, the plugin process).
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import ipaddress
import itertools
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

PROG = "atp-portforward"
DEFAULT_INSTANCE = "i-08726dc37133b2454"
DEFAULT_REGION = "ap-southeast-1"
DEFAULT_PORT = 8002
DOCUMENT = "AWS-StartPortForwardingSessionToRemoteHost"
PLUGIN = "session-manager-plugin"
READY_TEXT = "Waiting for connections"
HEALTH_PATH = "/api/health"
WHOAMI_PATH = "/api/diagnostics/whoami"
LOOPBACK = "127.0.0.1"
TCP_LISTEN = "0A"
TCP_STATES = {"01": "ESTABLISHED", "02": "SYN_SENT", "03": "SYN_RECV", "04": "FIN_WAIT1",
              "05": "FIN_WAIT2", "06": "TIME_WAIT", "07": "CLOSE", "08": "CLOSE_WAIT",
              "09": "LAST_ACK", "0A": "LISTEN", "0B": "CLOSING"}
STATE_FILE = "state.json"
LOG_FILE = "plugin.log"
STATE_ENV = "ATP_PORTFORWARD_STATE_DIR"
TIME_WAIT_WAIT = 65.0  # Linux keeps TIME_WAIT for 60 s
NO_LISTENER_GRACE = 2.0  # after "Waiting for connections", the plugin must listen within this
DOCKER_PS_FORMAT = "{{.ID}}\t{{.Names}}\t{{.Ports}}"
EXIT_FAIL = 1
EXIT_NOT_RUNNING = 3

_INSTANCE_ID = re.compile(r"^(?:i|mi)-[0-9a-f]{8,17}$")
_SOCKET_LINK = re.compile(r"^socket:\[(\d+)\]$")
_SS_USER = re.compile(r'\("((?:[^"\\]|\\.)*)",pid=(\d+),fd=(\d+)\)')
_SECRETS = (
    (re.compile(r'("(?:TokenValue|SessionToken|SecretAccessKey|secret[^"]*)"\s*:\s*")[^"]*"',
                re.IGNORECASE), r'\1***"'),
    (re.compile(r"\b(?:AKIA|ASIA)[A-Z0-9]{16}\b"), "***"),
)


class PortForwardError(Exception):
    """A failure the operator can act on: one line (expected, seen, what to do)."""

    def __init__(self, message: str, code: int = EXIT_FAIL) -> None:
        super().__init__(message)
        self.code = code


# =========================================================================== pure: procfs


@dataclass(frozen=True)
class ProcSocket:
    """One row of /proc/net/tcp or /proc/net/tcp6."""

    ip: str
    port: int
    state: str
    inode: int
    uid: int


def decode_proc_addr(hex_addr: str, byteorder: str = "little") -> str:
    """An address as /proc/net/tcp{,6} prints it (32-bit words in host order) -> text."""
    raw = bytes.fromhex(hex_addr)
    if byteorder == "little":
        raw = b"".join(raw[i:i + 4][::-1] for i in range(0, len(raw), 4))
    addr = ipaddress.ip_address(raw)
    mapped = getattr(addr, "ipv4_mapped", None)
    return f"::ffff:{mapped}" if mapped else str(addr)


def parse_proc_net_tcp(text: str, byteorder: str = "little") -> list[ProcSocket]:
    """Rows of /proc/net/tcp or /proc/net/tcp6 (header and malformed lines skipped)."""
    rows = []
    for line in text.splitlines():
        fields = line.split()
        if len(fields) < 10 or fields[0] == "sl" or ":" not in fields[1]:
            continue
        addr, _, port = fields[1].partition(":")
        try:
            rows.append(ProcSocket(ip=decode_proc_addr(addr, byteorder), port=int(port, 16),
                                   state=fields[3].upper(), uid=int(fields[7]),
                                   inode=int(fields[9])))
        except ValueError:
            continue
    return rows


def blocks_bind(ip: str, target: str = LOOPBACK) -> bool:
    """True if a listener on ``ip`` keeps a plugin from binding ``target`` on the same port."""
    if ip in ("*", ""):
        return True
    try:
        addr = ipaddress.ip_address(ip.split("%", 1)[0])
    except ValueError:
        return False
    if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped:
        addr = addr.ipv4_mapped
    return addr.is_unspecified or addr == ipaddress.ip_address(target)


def listeners_on(sockets: Iterable[ProcSocket], port: int) -> list[ProcSocket]:
    """Listening sockets that hold 127.0.0.1:``port`` (on it, on 0.0.0.0 or on ::)."""
    return [s for s in sockets if s.state == TCP_LISTEN and s.port == port and blocks_bind(s.ip)]


def lingering_on(sockets: Iterable[ProcSocket], port: int) -> list[str]:
    """States of non-listening sockets still bound to 127.0.0.1:``port`` (e.g. TIME_WAIT left
    by an earlier listener, which keeps a new bind failing until the kernel drops them)."""
    return sorted(TCP_STATES.get(s.state, s.state) for s in sockets
                  if s.state != TCP_LISTEN and s.port == port and blocks_bind(s.ip))


def socket_inode(link: str) -> int | None:
    """The inode of a /proc/<pid>/fd/<n> link target like ``socket:[12345]``."""
    match = _SOCKET_LINK.match(link)
    return int(match.group(1)) if match else None


def pids_holding(fd_links: Mapping[int, Iterable[str]], inodes: Iterable[int]) -> list[int]:
    """Pids whose open fds (link targets) include one of the socket ``inodes``."""
    wanted = set(inodes)
    return sorted(pid for pid, links in fd_links.items()
                  if any(socket_inode(link) in wanted for link in links))


def parse_ss_listeners(text: str, port: int) -> list[tuple[int, str]]:
    """(pid, process name) of `ss -ltnpH` rows that hold 127.0.0.1:``port``."""
    found: list[tuple[int, str]] = []
    for line in text.splitlines():
        fields = line.split()
        if len(fields) < 5 or fields[0] != "LISTEN":
            continue
        host, _, port_text = fields[3].rpartition(":")
        if not port_text.isdigit() or int(port_text) != port:
            continue
        if not blocks_bind(host.strip("[]")):
            continue
        for name, pid, _fd in _SS_USER.findall(line):
            if (int(pid), name) not in found:
                found.append((int(pid), name))
    return found


def parse_cmdline(raw: bytes) -> list[str]:
    """/proc/<pid>/cmdline -> argv."""
    return [part.decode(errors="replace") for part in raw.split(b"\0") if part]


def parse_stat(text: str) -> tuple[str, int]:
    """/proc/<pid>/stat -> (state letter, ppid); the command may contain spaces and ')'."""
    fields = text.rsplit(")", 1)[1].split()
    return fields[0], int(fields[1])


def command_line(argv: list[str], limit: int = 80) -> str:
    """argv as one short, safe line."""
    text = redact(" ".join(argv)) or "?"
    return text if len(text) <= limit else text[:limit - 3] + "..."


def docker_proxy_target(argv: list[str]) -> dict[str, str] | None:
    """For a docker-proxy command line, its -host-ip/-host-port/-container-ip/-container-port."""
    if not argv or os.path.basename(argv[0]) != "docker-proxy":
        return None
    flags: dict[str, str] = {}
    for flag, value in itertools.pairwise(argv[1:]):
        if flag.startswith("-") and not value.startswith("-"):
            flags[flag.lstrip("-")] = value
    return {key: flags.get(key, "") for key in
            ("proto", "host-ip", "host-port", "container-ip", "container-port")}


# =========================================================================== pure: docker


@dataclass(frozen=True)
class PortBinding:
    host_ip: str
    host_port: int
    container_port: int
    proto: str


@dataclass(frozen=True)
class Container:
    id: str
    name: str
    bindings: tuple[PortBinding, ...] = ()


def _port_range(text: str) -> list[int]:
    low, _, high = text.partition("-")
    return list(range(int(low), int(high or low) + 1))


def parse_docker_ports(ports: str) -> list[PortBinding]:
    """`docker ps` Ports column -> published bindings (exposed-only ports are skipped)."""
    bindings = []
    for entry in (part.strip() for part in ports.split(",")):
        if "->" not in entry:
            continue
        left, _, right = entry.partition("->")
        host_ip, _, host_ports = left.rpartition(":")
        container_ports, _, proto = right.partition("/")
        try:
            hosts, conts = _port_range(host_ports), _port_range(container_ports)
        except ValueError:
            continue
        for index, host_port in enumerate(hosts):
            cport = conts[index] if index < len(conts) else conts[0] + index
            bindings.append(PortBinding(host_ip.strip("[]") or "0.0.0.0", host_port, cport,
                                        proto or "tcp"))
    return bindings


def parse_docker_ps(text: str, port: int) -> list[Container]:
    """Containers (from `docker ps --format DOCKER_PS_FORMAT`) publishing 127.0.0.1:``port``."""
    containers = []
    for line in text.splitlines():
        parts = line.split("\t")
        if len(parts) < 3:
            continue
        bindings = tuple(b for b in parse_docker_ports(parts[2])
                         if b.host_port == port and b.proto == "tcp" and blocks_bind(b.host_ip))
        if bindings:
            containers.append(Container(parts[0], parts[1], bindings))
    return containers


# =========================================================================== pure: decisions


@dataclass(frozen=True)
class Holder:
    """A process holding the local port (pid None: seen only as a listening socket)."""

    pid: int | None
    command: str
    proxy: dict[str, str] | None = None

    @property
    def is_docker_proxy(self) -> bool:
        return self.proxy is not None


@dataclass
class PortCheck:
    held: bool
    holders: list[Holder] = field(default_factory=list)
    containers: list[Container] | None = None  # None: docker not reachable
    lingering: list[str] = field(default_factory=list)  # states of non-listening sockets


def candidate_ports(port: int) -> list[int]:
    """Local ports to suggest instead of ``port``: port+10000 first (8002 -> 18002)."""
    first = [p for p in range(port + 10000, port + 10010) if p <= 65535]
    return first + [p for p in range(18000, 19000) if p not in first and p != port]


def suggest_port(port: int, is_free: Callable[[int], bool]) -> int | None:
    return next((p for p in candidate_ports(port) if is_free(p)), None)


def build_start_request(instance_id: str, remote_host: str, remote_port: int,
                        local_port: int) -> dict:
    """ssm.start_session(**request) for a port-forward to remote_host:remote_port."""
    return {"Target": instance_id, "DocumentName": DOCUMENT,
            "Parameters": {"host": [remote_host], "portNumber": [str(remote_port)],
                           "localPortNumber": [str(local_port)]}}


def build_plugin_argv(plugin: str, response: Mapping, region: str, profile: str | None,
                      request: Mapping, endpoint_url: str) -> list[str]:
    """The session-manager-plugin command line, exactly as `aws ssm start-session` builds it."""
    return [plugin, json.dumps(response), region, "StartSession", profile or "",
            json.dumps(request), endpoint_url]


def validate_instance_id(instance_id: str) -> None:
    if not _INSTANCE_ID.match(instance_id):
        raise PortForwardError(
            f"expected an instance id like i-08726dc37133b2454, got {instance_id!r}: "
            "pass --instance-id with the EC2 (or mi-) id")


def validate_port(name: str, port: int) -> None:
    if not 1 <= port <= 65535:
        raise PortForwardError(f"expected {name} between 1 and 65535, got {port}: fix {name}")


def short(text: str, limit: int = 160) -> str:
    """One line, redacted, at most ``limit`` characters."""
    line = " ".join(redact(str(text)).split())
    return line if len(line) <= limit else line[:limit - 3] + "..."


def redact(text: str) -> str:
    """Hide session tokens and key-looking strings."""
    for pattern, replacement in _SECRETS:
        text = pattern.sub(replacement, text)
    return text


def target_text(instance_id: str, remote_host: str, remote_port: int) -> str:
    if remote_host in (LOOPBACK, "localhost"):
        return f"{instance_id}:{remote_port}"
    return f"{instance_id} ({remote_host}:{remote_port})"


def describe_holders(port: int, check: PortCheck) -> str:
    """Who holds the port, as precisely as the check saw it."""
    proxy = next((h for h in check.holders if h.is_docker_proxy), None)
    if check.containers:
        names = [c.name for c in check.containers]
        noun = "docker container" if len(names) == 1 else "docker containers"
        how = f"pid {proxy.pid} docker-proxy" if proxy and proxy.pid else "published by docker"
        return f"{noun} {', '.join(names)} ({how})"
    if proxy:
        target = f"{proxy.proxy.get('container-ip')}:{proxy.proxy.get('container-port')}"
        return (f"a docker container at {target} (pid {proxy.pid} docker-proxy; docker is not"
                f" reachable here to name it)")
    known = [h for h in check.holders if h.pid]
    if known:
        return ", ".join(f"pid {h.pid} ({h.command})" for h in known)
    if check.lingering:
        counts = {state: check.lingering.count(state) for state in check.lingering}
        seen = ", ".join(f"{n} {state}" for state, n in sorted(counts.items()))
        return (f"connections left by an earlier listener ({seen}; no process listens; the "
                "kernel frees the port within about 60 s)")
    return f"a process this user cannot identify (see: sudo ss -ltnp 'sport = :{port}')"


def format_port_held(local_port: int, instance_id: str, check: PortCheck,
                     alternative: int | None, stop_container: bool = False) -> str:
    """The one-line refusal for a held local port, naming the holder."""
    other = f"--local-port {alternative}" if alternative else "another --local-port"
    if not check.holders and not check.containers and check.lingering:
        return (f"local port {local_port} is held by {describe_holders(local_port, check)}: "
                f"a port-forward could not bind it; wait a minute or re-run with {other}")
    head = (f"local port {local_port} is held by {describe_holders(local_port, check)}: "
            f"a port-forward would reach it, not {instance_id}")
    if check.containers:
        names = " ".join(c.name for c in check.containers)
        return f"{head}; stop it (docker stop {names}) or re-run with --stop-container or {other}"
    tail = " (--stop-container stops docker containers only)" if stop_container else ""
    if any(h.is_docker_proxy for h in check.holders):
        return (f"{head}; stop that container (docker ps --filter publish={local_port}) or "
                f"re-run with {other}{tail}")
    if any(h.pid for h in check.holders):
        return f"{head}; stop that process or re-run with {other}{tail}"
    return f"{head}; free the port or re-run with {other}{tail}"


def _json_object(body: str) -> dict | None:
    try:
        data = json.loads(body)
    except ValueError:
        return None
    return data if isinstance(data, dict) else None


def check_health(status: int, body: str) -> str | None:
    """None if GET /api/health answered 200 {"status": "ok"}, else what was seen."""
    data = _json_object(body)
    if status == 200 and data is not None and data.get("status") == "ok":
        return None
    return f"{status} {short(body, 100) or '(empty body)'}"


@dataclass(frozen=True)
class Identity:
    verdict: str  # "match" | "mismatch" | "unverified"
    message: str


def check_identity(status: int, body: str, instance_id: str, expect_environment: str | None,
                   local_port: int) -> Identity:
    """Decide from GET /api/diagnostics/whoami whether the tunnel reaches ``instance_id``."""
    where = f"127.0.0.1:{local_port}"
    if status == 404:
        return Identity("unverified", (
            f"identity not verified: GET {WHOAMI_PATH} on {where} answered 404 (whoami disabled:"
            f" set PORTFOLIO_DEBUG=1 on the backend to enable it); assuming {instance_id}"))
    if status != 200:
        return Identity("unverified", (
            f"identity not verified: GET {WHOAMI_PATH} on {where} answered {status} "
            f"{short(body, 80)}; assuming {instance_id}"))
    data = _json_object(body)
    if data is None:
        return Identity("mismatch", (
            f"expected GET {WHOAMI_PATH} on {where} to describe {instance_id}, it answered 200 "
            f"with {short(body, 80) or '(empty body)'}: something else serves this port"))
    seen_id, seen_env = data.get("instance_id"), data.get("environment")
    wrong = seen_id != instance_id or (expect_environment and seen_env != expect_environment)
    seen = (f"instance_id={seen_id or '(none)'} environment={seen_env or '(none)'} "
            f"service={data.get('service') or '(none)'}")
    if not wrong:
        return Identity("match", f"{where} reaches {instance_id} ({seen})")
    expected = f"instance_id={instance_id}" + (
        f" environment={expect_environment}" if expect_environment else "")
    return Identity("mismatch", (
        f"{where} does not reach the intended backend: expected {expected}, whoami says {seen};"
        " check --instance-id/--remote-port/--expect-environment and what serves that port"))


def format_ready(local_port: int, instance_id: str, remote_host: str, remote_port: int,
                 session_id: str, pid: int) -> str:
    return (f"port-forward ready: 127.0.0.1:{local_port} -> "
            f"{target_text(instance_id, remote_host, remote_port)} "
            f"(session {session_id}, pid {pid})")


# =========================================================================== I/O: processes


def read_cmdline(pid: int) -> list[str] | None:
    try:
        return parse_cmdline(Path(f"/proc/{pid}/cmdline").read_bytes())
    except OSError:
        return None


def _stat(pid: int) -> tuple[str, int] | None:
    try:
        return parse_stat(Path(f"/proc/{pid}/stat").read_text(errors="replace"))
    except (OSError, IndexError, ValueError):
        return None


def pid_alive(pid: int | None) -> bool:
    """Running (a zombie waiting for its reaper counts as gone)."""
    if not pid:
        return False
    stat = _stat(pid)
    return stat is not None and stat[0] not in ("Z", "X")


def plugin_identity(pid: int | None, session_id: str) -> str:
    """"ours" (runs, and is the plugin of ``session_id``), "gone", or "other" (recycled pid)."""
    if not pid_alive(pid):
        return "gone"
    argv = read_cmdline(pid)
    if argv == []:
        return "gone"  # exiting (its memory is released) or a kernel thread
    if argv is None or any(session_id in arg for arg in argv):
        return "ours"
    return "other"


def is_our_plugin(pid: int | None, session_id: str) -> bool:
    return plugin_identity(pid, session_id) == "ours"


def ancestry(pid: int, limit: int = 64) -> list[int]:
    chain = [pid]
    for _ in range(limit):
        stat = _stat(chain[-1])
        if not stat or stat[1] <= 1:
            break
        chain.append(stat[1])
    return chain


def wait_gone(pid: int, timeout: float, proc: subprocess.Popen | None = None) -> bool:
    """Bounded wait until ``pid`` has exited (reaped, zombie, or releasing its memory)."""
    deadline = time.monotonic() + timeout
    while True:
        if proc is not None and proc.poll() is not None:
            return True
        if not pid_alive(pid) or read_cmdline(pid) == []:
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.05)


def end_process(pid: int, session_id: str, proc: subprocess.Popen | None = None,
                grace: float = 5.0, settle: float = 0.0) -> str:
    """Give the plugin ``settle`` s to end by itself (it does after TerminateSession), then
    SIGTERM its process group, bounded wait, then SIGKILL. Returns what happened."""
    if pid and settle:
        wait_gone(pid, settle, proc)
    if proc is not None and proc.poll() is not None:
        return f"plugin pid {pid} ended"
    who = plugin_identity(pid, session_id)
    if who == "gone":
        return f"plugin pid {pid} was not running"
    if who == "other":
        return f"pid {pid} is now another process (not killed)"
    for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, 2.0)):
        try:
            if os.getpgid(pid) == pid:
                os.killpg(pid, sig)
            else:
                os.kill(pid, sig)
        except ProcessLookupError:
            return f"plugin pid {pid} ended"
        except PermissionError:
            return f"no permission to signal pid {pid}"
        if wait_gone(pid, wait, proc):
            if proc is not None:
                with contextlib.suppress(subprocess.TimeoutExpired):
                    proc.wait(timeout=1)
            return f"plugin pid {pid} " + ("ended" if sig == signal.SIGTERM else "killed")
    return f"pid {pid} survived SIGKILL"


# =========================================================================== I/O: the port


def read_proc_sockets() -> list[ProcSocket]:
    rows: list[ProcSocket] = []
    for name in ("/proc/net/tcp", "/proc/net/tcp6"):
        with contextlib.suppress(OSError):
            rows += parse_proc_net_tcp(Path(name).read_text(), sys.byteorder)
    return rows


def fd_links() -> dict[int, list[str]]:
    """pid -> link targets of its open fds (processes we may not inspect are skipped)."""
    found: dict[int, list[str]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            fds = os.listdir(f"/proc/{entry}/fd")
        except OSError:
            continue
        links = []
        for fd in fds:
            with contextlib.suppress(OSError):
                links.append(os.readlink(f"/proc/{entry}/fd/{fd}"))
        found[int(entry)] = links
    return found


def _run(cmd: list[str], timeout: float) -> subprocess.CompletedProcess | None:
    try:
        return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout,
                              stdin=subprocess.DEVNULL)
    except (OSError, subprocess.TimeoutExpired):
        return None


def _holder(pid: int, fallback: str = "?") -> Holder:
    argv = read_cmdline(pid)
    if not argv:
        return Holder(pid, fallback)
    return Holder(pid, command_line(argv), docker_proxy_target(argv))


def listener_pids(port: int) -> tuple[bool, list[int]]:
    """(a listener holds 127.0.0.1:port, pids owning it as far as procfs shows)."""
    sockets = listeners_on(read_proc_sockets(), port)
    if not sockets:
        return False, []
    return True, pids_holding(fd_links(), (s.inode for s in sockets))


def find_holders(port: int) -> tuple[bool, list[Holder]]:
    listening, pids = listener_pids(port)
    holders = [_holder(pid) for pid in pids]
    if listening and not holders and shutil.which("ss"):
        done = _run(["ss", "-ltnpH", f"sport = :{port}"], timeout=5)
        if done and done.returncode == 0:
            holders = [_holder(pid, name) for pid, name in parse_ss_listeners(done.stdout, port)]
    return listening, holders


def docker_containers(port: int) -> list[Container] | None:
    """Running containers publishing the port; None when docker is not reachable."""
    if not shutil.which("docker"):
        return None
    done = _run(["docker", "ps", "--filter", f"publish={port}", "--format", DOCKER_PS_FORMAT],
                timeout=15)
    if done is None or done.returncode != 0:
        return None
    return parse_docker_ps(done.stdout, port)


def bind_free(port: int, reuse: bool = True) -> bool:
    """True if 127.0.0.1:port can be bound now. ``reuse``: with SO_REUSEADDR, as Go's
    net.Listen (the real plugin) binds; without it, TIME_WAIT connections left on the port by
    an earlier listener also count (a plugin that binds without SO_REUSEADDR fails on them)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        if reuse:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((LOOPBACK, port))
        except OSError:
            return False
    return True


def check_port(port: int) -> PortCheck:
    listening, holders = find_holders(port)
    containers = docker_containers(port)
    free = bind_free(port)
    lingering = [] if free else lingering_on(read_proc_sockets(), port)
    return PortCheck(listening or bool(containers) or not free, holders, containers, lingering)


def tcp_connects(port: int, timeout: float = 1.0) -> bool:
    try:
        with socket.create_connection((LOOPBACK, port), timeout=timeout):
            return True
    except OSError:
        return False


def http_get(port: int, path: str, timeout: float) -> tuple[int, str]:
    conn = http.client.HTTPConnection(LOOPBACK, port, timeout=timeout)
    try:
        conn.request("GET", path, headers={"Accept": "application/json", "Connection": "close"})
        response = conn.getresponse()
        return response.status, response.read(65536).decode("utf-8", errors="replace")
    finally:
        conn.close()


def http_get_until(port: int, path: str, deadline: float) -> tuple[int, str]:
    """GET, retried on connection errors until ``deadline`` (at least one attempt)."""
    while True:
        remaining = deadline - time.monotonic()
        try:
            return http_get(port, path, timeout=min(10.0, max(2.0, remaining)))
        except (OSError, http.client.HTTPException) as exc:
            if time.monotonic() + 0.3 >= deadline:
                raise ConnectionError(short(f"{type(exc).__name__}: {exc}", 100)) from exc
            time.sleep(0.3)


# =========================================================================== I/O: state


def state_root() -> Path:
    if os.environ.get(STATE_ENV):
        return Path(os.environ[STATE_ENV])
    cache = os.environ.get("XDG_CACHE_HOME") or os.path.join(Path.home(), ".cache")
    return Path(cache) / PROG


def state_dir(port: int) -> Path:
    return state_root() / str(port)


def load_state(port: int) -> dict | None:
    try:
        data = json.loads((state_dir(port) / STATE_FILE).read_text())
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        raise PortForwardError(
            f"expected a readable state file {state_dir(port) / STATE_FILE}, saw {short(exc)}:"
            " remove it after checking no session-manager-plugin still runs") from exc
    return data if isinstance(data, dict) else None


def save_state(port: int, data: dict) -> None:
    directory = state_dir(port)
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    tmp = directory / f".{STATE_FILE}.tmp"
    tmp.write_text(json.dumps(data, indent=1, sort_keys=True) + "\n")
    tmp.chmod(0o600)
    os.replace(tmp, directory / STATE_FILE)


def clear_state(port: int, keep_log: bool = False) -> None:
    directory = state_dir(port)
    with contextlib.suppress(FileNotFoundError):
        (directory / STATE_FILE).unlink()
    if not keep_log:
        with contextlib.suppress(FileNotFoundError):
            (directory / LOG_FILE).unlink()
        with contextlib.suppress(OSError):
            directory.rmdir()


def last_log_line(path: Path) -> str:
    try:
        lines = [line for line in path.read_text(errors="replace").splitlines() if line.strip()]
    except OSError:
        return "(no output)"
    return short(lines[-1], 120) if lines else "(no output)"


# =========================================================================== I/O: AWS


def aws_error(exc: Exception) -> str:
    response = getattr(exc, "response", None)
    if isinstance(response, dict) and "Error" in response:
        err = response["Error"]
        return short(f"{err.get('Code', '?')}: {err.get('Message', '')}", 140)
    return short(f"{type(exc).__name__}: {exc}", 140)


def ssm_client(region: str, profile: str | None):
    import boto3
    from botocore.config import Config
    from botocore.exceptions import BotoCoreError

    config = Config(connect_timeout=10, read_timeout=30,
                    retries={"max_attempts": 3, "mode": "standard"})
    try:
        return boto3.Session(profile_name=profile or None, region_name=region).client(
            "ssm", config=config)
    except BotoCoreError as exc:
        raise PortForwardError(
            f"expected an SSM client for region {region} (profile {profile or '(default)'}), "
            f"saw {aws_error(exc)}: check --profile/--region and your AWS config") from exc


def plugin_profile(profile: str | None) -> str:
    return profile or os.environ.get("AWS_PROFILE") or os.environ.get("AWS_DEFAULT_PROFILE") or ""


def terminate_session(state: dict, ssm=None) -> str | None:
    """ssm:TerminateSession for the recorded session; None on success, else the error."""
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        client = ssm or ssm_client(state["region"], state.get("profile"))
        client.terminate_session(SessionId=state["session_id"])
    except (BotoCoreError, ClientError, PortForwardError) as exc:
        return aws_error(exc) if not isinstance(exc, PortForwardError) else str(exc)
    return None


def stop_recorded(state: dict, ssm=None, proc: subprocess.Popen | None = None) -> tuple[
        str | None, str]:
    """TerminateSession, then end the plugin. Returns (terminate error, process outcome)."""
    pid = int(state.get("pid") or 0)
    was_running = (proc is not None and proc.poll() is None) or is_our_plugin(
        pid, state["session_id"])
    error = terminate_session(state, ssm)
    outcome = end_process(pid, state["session_id"], proc, settle=2.0 if not error else 0.0)
    if was_running and outcome.endswith("was not running"):
        outcome = f"plugin pid {pid} ended"  # TerminateSession ended it
    return error, outcome


# =========================================================================== commands


def _say(message: str) -> None:
    print(message, flush=True)


def _warn(message: str) -> None:
    print(f"{PROG}: warning: {message}", file=sys.stderr, flush=True)


def _alternative(port: int) -> int | None:
    return suggest_port(port, lambda p: bind_free(p, reuse=False)
                        and not listeners_on(read_proc_sockets(), p))


def _wait_port_free(port: int, timeout: float, bindable: bool = True,
                    strict: bool = False) -> bool:
    """Bounded wait until nothing listens on the port (and, if ``bindable``, it can be bound;
    ``strict``: even without SO_REUSEADDR)."""
    deadline = time.monotonic() + timeout
    while True:
        if not listeners_on(read_proc_sockets(), port) and (
                not bindable or bind_free(port, reuse=not strict)):
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.2)


def _ensure_port_free(args: argparse.Namespace) -> None:
    port = args.local_port
    check = check_port(port)
    if not check.held:
        return
    if not (args.stop_container and check.containers):
        raise PortForwardError(format_port_held(port, args.instance_id, check,
                                                _alternative(port), args.stop_container))
    for container in check.containers:
        done = _run(["docker", "stop", container.name], timeout=60)
        if done is None or done.returncode != 0:
            seen = short(done.stderr or done.stdout, 100) if done else "no answer within 60 s"
            raise PortForwardError(
                f"expected `docker stop {container.name}` to free local port {port}, it failed "
                f"({seen}): stop it yourself or re-run with --local-port {_alternative(port)}")
        _warn(f"stopped docker container {container.name} (it held local port {port})")
    if not _wait_port_free(port, timeout=15):
        raise PortForwardError(format_port_held(port, args.instance_id, check_port(port),
                                                _alternative(port)))
    # Connections the container's docker-proxy closed first stay in TIME_WAIT on the port for
    # up to 60 s; a plugin binding without SO_REUSEADDR would fail on them (and then never
    # accept). Wait them out rather than start a session that cannot work.
    if not bind_free(port, reuse=False):
        lingering = lingering_on(read_proc_sockets(), port)
        _warn(f"waiting up to {TIME_WAIT_WAIT:g} s for the kernel to release 127.0.0.1:{port} "
              f"({len(lingering)} connection(s) of the stopped container in "
              f"{'/'.join(sorted(set(lingering))) or 'TIME_WAIT'})")
        if not _wait_port_free(port, timeout=TIME_WAIT_WAIT, strict=True):
            check = PortCheck(True, lingering=lingering_on(read_proc_sockets(), port))
            raise PortForwardError(format_port_held(port, args.instance_id, check,
                                                    _alternative(port)))


def _check_existing(args: argparse.Namespace) -> None:
    state = load_state(args.local_port)
    if not state:
        return
    if is_our_plugin(state.get("pid"), state.get("session_id", "")):
        raise PortForwardError(
            f"local port {args.local_port} already has an {PROG} session to "
            f"{state.get('instance_id')} (session {state.get('session_id')}, pid "
            f"{state.get('pid')}): run `{PROG} stop --local-port {args.local_port}` first or "
            f"re-run with --local-port {_alternative(args.local_port)}")
    error = terminate_session(state)
    clear_state(args.local_port)
    _warn(f"removed stale state of session {state.get('session_id')} (plugin pid "
          f"{state.get('pid')} was not running)" + (f"; TerminateSession: {error}" if error
                                                    else ""))


def _wait_ready(proc: subprocess.Popen, log: Path, port: int, deadline: float,
                timeout: float) -> None:
    announced = False
    announced_at = 0.0
    while time.monotonic() < deadline:
        code = proc.poll()
        if code is not None:
            raise PortForwardError(
                f"expected {PLUGIN} to keep running and forward 127.0.0.1:{port}, it exited "
                f"with {code} ({last_log_line(log)}): see {log}")
        if not announced:
            with contextlib.suppress(OSError):
                announced = READY_TEXT in log.read_text(errors="replace")
                announced_at = time.monotonic()
        if announced and tcp_connects(port, timeout=1.0):
            return
        sockets = read_proc_sockets() if announced else []
        if (announced and time.monotonic() - announced_at > NO_LISTENER_GRACE
                and not listeners_on(sockets, port)):
            # the plugin's busy-port behaviour: it says it waits, but could not bind the port
            check = PortCheck(True, lingering=lingering_on(sockets, port))
            why = (describe_holders(port, check) if check.lingering
                   else "something not visible here")
            raise PortForwardError(
                f"expected {PLUGIN} to listen on 127.0.0.1:{port} after it reported "
                f"'{READY_TEXT}', nothing listens: it could not bind the port (held by {why}); "
                f"the port-forward was stopped: wait a minute or re-run with --local-port "
                f"{_alternative(port)}")
        time.sleep(0.1)
    if not announced:
        raise PortForwardError(
            f"expected {PLUGIN} to print '{READY_TEXT}' within {timeout:g} s, it did not (last: "
            f"{last_log_line(log)}): raise --timeout or see {log}")
    raise PortForwardError(
        f"expected 127.0.0.1:{port} to accept within {timeout:g} s after {PLUGIN} reported "
        f"'{READY_TEXT}', it did not: the plugin could not bind the port (held by something "
        f"not visible here?); re-run with another --local-port")


def _check_listener_owner(port: int, plugin_pid: int) -> None:
    """The socket on 127.0.0.1:port must be the plugin's, or the tunnel is not in the path."""
    _listening, owners = listener_pids(port)
    if not owners or any(plugin_pid in ancestry(pid) for pid in owners):
        return
    check = PortCheck(True, [_holder(pid) for pid in owners], docker_containers(port))
    raise PortForwardError(
        f"expected {PLUGIN} (pid {plugin_pid}) to own 127.0.0.1:{port}, but "
        f"{describe_holders(port, check)} does, so the tunnel is not in the path; the "
        f"port-forward was stopped: free the port or re-run with --local-port "
        f"{_alternative(port)}")


def _verify_target(args: argparse.Namespace, deadline: float) -> Identity:
    port = args.local_port
    where = target_text(args.instance_id, args.remote_host, args.remote_port)
    try:
        status, body = http_get_until(port, HEALTH_PATH, deadline)
    except ConnectionError as exc:
        raise PortForwardError(
            f"expected GET {HEALTH_PATH} through 127.0.0.1:{port} to answer 200 "
            f'{{"status":"ok"}} from {where}, saw no HTTP answer ({exc}): is the backend '
            f"running on the instance at {args.remote_host}:{args.remote_port}?") from exc
    problem = check_health(status, body)
    if problem:
        raise PortForwardError(
            f"expected GET {HEALTH_PATH} through 127.0.0.1:{port} to answer 200 "
            f'{{"status":"ok"}} from {where}, saw {problem}: check the backend on the instance '
            f"or --remote-port")
    try:
        status, body = http_get_until(port, WHOAMI_PATH, max(deadline, time.monotonic() + 5))
    except ConnectionError as exc:
        return Identity("unverified", f"identity not verified: GET {WHOAMI_PATH} gave no HTTP "
                                      f"answer ({exc}); assuming {args.instance_id}")
    identity = check_identity(status, body, args.instance_id, args.expect_environment, port)
    if identity.verdict == "mismatch":
        raise PortForwardError(identity.message + "; the port-forward was stopped")
    return identity


def cmd_start(args: argparse.Namespace) -> int:
    validate_instance_id(args.instance_id)
    for name in ("local_port", "remote_port"):
        validate_port("--" + name.replace("_", "-"), getattr(args, name))
    if args.timeout <= 0:
        raise PortForwardError(f"expected --timeout > 0, got {args.timeout:g}: fix --timeout")
    _check_existing(args)
    _ensure_port_free(args)
    plugin = shutil.which(PLUGIN)
    if not plugin:
        raise PortForwardError(
            f"expected {PLUGIN} on PATH, found none: install the Session Manager plugin "
            "(https://docs.aws.amazon.com/systems-manager/latest/userguide/"
            "session-manager-working-with-install-plugin.html)")

    from botocore.exceptions import BotoCoreError, ClientError

    began = time.monotonic()  # --timeout bounds the session start up to "ready"
    ssm = ssm_client(args.region, args.profile)
    request = build_start_request(args.instance_id, args.remote_host, args.remote_port,
                                  args.local_port)
    try:
        response = ssm.start_session(**request)
    except (BotoCoreError, ClientError) as exc:
        raise PortForwardError(
            f"expected ssm:StartSession to {args.instance_id} in {args.region} to succeed, saw "
            f"{aws_error(exc)}: check the instance is Online in SSM, --region and "
            "--profile/credentials") from exc
    session_id = response["SessionId"]
    region = ssm.meta.region_name or args.region
    argv = build_plugin_argv(plugin, response, region, plugin_profile(args.profile), request,
                             ssm.meta.endpoint_url)
    directory = state_dir(args.local_port)
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    log = directory / LOG_FILE
    state = {"session_id": session_id, "instance_id": args.instance_id, "region": region,
             "profile": args.profile or "", "local_port": args.local_port,
             "remote_host": args.remote_host, "remote_port": args.remote_port,
             "endpoint_url": ssm.meta.endpoint_url, "log": str(log), "pid": None,
             "started_at": time.time()}
    proc = None
    try:
        with open(log, "wb") as out:
            try:
                proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out,
                                        stderr=subprocess.STDOUT, start_new_session=True,
                                        close_fds=True)
            except OSError as exc:
                raise PortForwardError(
                    f"expected to run {plugin}, saw {short(exc)}: check the plugin "
                    "installation") from exc
        state["pid"] = proc.pid
        save_state(args.local_port, state)
        deadline = began + args.timeout
        _wait_ready(proc, log, args.local_port, deadline, args.timeout)
        _check_listener_owner(args.local_port, proc.pid)
        identity = _verify_target(args, deadline)
    except BaseException as exc:  # whatever went wrong: no session or plugin left behind
        error, outcome = stop_recorded(state, ssm, proc)
        clear_state(args.local_port, keep_log=True)
        if error:
            _warn(f"TerminateSession {session_id} failed ({error}); {outcome}")
        if isinstance(exc, KeyboardInterrupt):
            raise PortForwardError(f"interrupted: session {session_id} stopped ({outcome})",
                                   130) from None
        if isinstance(exc, PortForwardError) and "was stopped" not in str(exc):
            raise PortForwardError(f"{exc}; session {session_id} was stopped",
                                   exc.code) from None
        raise
    if identity.verdict == "unverified":
        _warn(identity.message)
    state.update(identity=identity.verdict, ready_seconds=round(time.monotonic() - began, 2))
    save_state(args.local_port, state)
    _say(format_ready(args.local_port, args.instance_id, args.remote_host, args.remote_port,
                      session_id, proc.pid))
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    port = args.local_port
    state = load_state(port)
    if not state:
        check = check_port(port)
        held = f"; the port is held by {describe_holders(port, check)}" if check.held else ""
        _say(f"no {PROG} session recorded for local port {port}{held}")
        return EXIT_NOT_RUNNING
    pid, session_id = state.get("pid"), state.get("session_id", "")
    alive = is_our_plugin(pid, session_id)
    target = target_text(state.get("instance_id", "?"), state.get("remote_host", LOOPBACK),
                         state.get("remote_port", 0))
    _say(f"session {session_id}: 127.0.0.1:{port} -> {target} (region {state.get('region')}, "
         f"profile {state.get('profile') or '(default)'}, identity {state.get('identity', '?')})")
    _say(f"plugin pid {pid}: {'alive' if alive else 'NOT running'}")
    _listening, owners = listener_pids(port)
    open_ = tcp_connects(port)
    owner = ""
    if owners:
        ours = bool(pid) and any(pid in ancestry(o) for o in owners)
        if ours:
            owner = " (listener: the plugin)"
        else:
            others = describe_holders(port, PortCheck(True, [_holder(o) for o in owners]))
            owner = f" (listener: {others}, NOT the plugin)"
        alive = alive and ours
    _say(f"127.0.0.1:{port}: {'open' if open_ else 'closed'}{owner}")
    healthy = False
    if open_:
        try:
            status, body = http_get(port, HEALTH_PATH, timeout=5)
        except (OSError, http.client.HTTPException) as exc:
            _say(f"GET {HEALTH_PATH}: no answer ({short(exc, 80)})")
        else:
            problem = check_health(status, body)
            healthy = problem is None
            _say(f"GET {HEALTH_PATH}: {short(f'{status} {body}', 120) if healthy else problem}")
    if alive and open_ and healthy:
        return 0
    print(f"{PROG}: expected a live plugin owning an open port and a healthy backend on local "
          f"port {port}, see above: `{PROG} stop --local-port {port}`, then start again",
          file=sys.stderr)
    return EXIT_FAIL


def cmd_stop(args: argparse.Namespace) -> int:
    port = args.local_port
    state = load_state(port)
    if not state:
        _say(f"no {PROG} session recorded for local port {port}: nothing to stop")
        return 0
    error, outcome = stop_recorded(state)
    if error:
        raise PortForwardError(
            f"expected ssm:TerminateSession of {state['session_id']} to succeed, saw {error} "
            f"({outcome}): re-run `{PROG} stop --local-port {port}` once credentials work "
            "(AWS also ends the session after its idle timeout)")
    if "survived" in outcome or "permission" in outcome:
        raise PortForwardError(f"expected the plugin (pid {state.get('pid')}) to end, but "
                               f"{outcome}: kill it yourself, then re-run `{PROG} stop`")
    clear_state(port)
    closed = _wait_port_free(port, timeout=5, bindable=False)
    _say(f"port-forward stopped: session {state['session_id']} to {state.get('instance_id')} "
         f"terminated, {outcome}; 127.0.0.1:{port} {'closed' if closed else 'STILL OPEN'}")
    if not closed:
        raise PortForwardError(
            f"expected 127.0.0.1:{port} to close with the session, it is still held by "
            f"{describe_holders(port, check_port(port))}: stop that before using the port")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG, description="SSM port-forward to the backend, with the target proven.")
    sub = parser.add_subparsers(dest="command", required=True)
    start = sub.add_parser("start", help="start a port-forward and verify where it leads")
    start.add_argument("--instance-id", default=DEFAULT_INSTANCE)
    start.add_argument("--region", default=DEFAULT_REGION)
    start.add_argument("--profile", default=None)
    start.add_argument("--local-port", type=int, default=DEFAULT_PORT)
    start.add_argument("--remote-port", type=int, default=DEFAULT_PORT)
    start.add_argument("--remote-host", default=LOOPBACK)
    start.add_argument("--expect-environment", default=None,
                       help="also require whoami's environment (e.g. aws)")
    start.add_argument("--stop-container", action="store_true",
                       help="docker stop a container that publishes the local port")
    start.add_argument("--timeout", type=float, default=30.0,
                       help="seconds until the tunnel must answer (default 30)")
    for name, helptext in (("status", "show the recorded session"),
                           ("stop", "terminate the session and the plugin")):
        cmd = sub.add_parser(name, help=helptext)
        cmd.add_argument("--local-port", type=int, default=DEFAULT_PORT)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    handler = {"start": cmd_start, "status": cmd_status, "stop": cmd_stop}[args.command]
    try:
        return handler(args)
    except PortForwardError as exc:
        print(f"{PROG}: {exc}", file=sys.stderr, flush=True)
        return exc.code
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:
        if os.environ.get("ATP_PORTFORWARD_DEBUG") == "1":
            raise
        print(f"{PROG}: expected no internal error, saw {type(exc).__name__}: {short(exc)}: "
              "re-run with ATP_PORTFORWARD_DEBUG=1 for a traceback and report it",
              file=sys.stderr, flush=True)
        return EXIT_FAIL


if __name__ == "__main__":
    sys.exit(main())
