"""The local port: which sockets are on it, who holds it, can it be bound, and the one-line
refusal that names the holder.

Sockets come from psutil (Linux and macOS). Where psutil may not list them (macOS without
root: psutil.AccessDenied) the listeners come from `lsof -nP -iTCP:<port> -sTCP:LISTEN`; where
psutil is not importable, from Linux /proc (procfs.py). A listener whose owner is not visible
(another user's process) is named by `ss -ltnpH` where ss exists.
"""

from __future__ import annotations

import re
import shutil
import socket
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from . import procfs
from .common import LOOPBACK, blocks_bind, redact, run
from .docker import Container, docker_containers, docker_proxy_target
from .processes import read_cmdline

try:
    import psutil
except ImportError:  # pragma: no cover - exercised by monkeypatching psutil to None
    psutil = None

LISTEN = "LISTEN"

_SS_USER = re.compile(r'\("((?:[^"\\]|\\.)*)",pid=(\d+),fd=(\d+)\)')


# =========================================================================== pure: sockets


@dataclass(frozen=True)
class Socket:
    """A TCP socket on this host: local address, state by name (LISTEN, TIME_WAIT, ... as
    psutil names them), owning pid (None: not visible to this user) and, when lsof reported it,
    the owner's command name."""

    ip: str
    port: int
    status: str
    pid: int | None = None
    command: str = ""


def listeners_on(sockets: Iterable, port: int) -> list:
    """Listening sockets that hold 127.0.0.1:``port`` (on it, on 0.0.0.0 or on ::). Rows are
    Socket or procfs.ProcSocket (anything with ip, port and status)."""
    return [s for s in sockets if s.status == LISTEN and s.port == port and blocks_bind(s.ip)]


def lingering_on(sockets: Iterable, port: int) -> list[str]:
    """States of non-listening sockets still bound to 127.0.0.1:``port`` (e.g. TIME_WAIT left
    by an earlier listener, which keeps a new bind failing until the kernel drops them)."""
    return sorted(s.status for s in sockets
                  if s.status != LISTEN and s.port == port and blocks_bind(s.ip))


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


def parse_lsof_listeners(text: str, port: int) -> list[Socket]:
    """Listening sockets of `lsof -nP -iTCP:<port> -sTCP:LISTEN` rows that hold
    127.0.0.1:``port`` (COMMAND PID USER FD TYPE DEVICE SIZE/OFF NODE NAME (STATE))."""
    found: list[Socket] = []
    for line in text.splitlines():
        fields = line.split()
        if len(fields) < 9 or not fields[1].isdigit() or "TCP" not in fields[2:]:
            continue
        at = fields.index("TCP", 2)
        if at + 1 >= len(fields):
            continue
        name, state = fields[at + 1], fields[at + 2] if at + 2 < len(fields) else "(LISTEN)"
        if "->" in name or state != "(LISTEN)":
            continue
        host, _, port_text = name.rpartition(":")
        if not port_text.isdigit() or int(port_text) != port or not blocks_bind(host.strip("[]")):
            continue
        row = Socket(host.strip("[]"), port, LISTEN, int(fields[1]),
                     fields[0].replace("\\x20", " "))
        if row not in found:
            found.append(row)
    return found


def command_line(argv: list[str], limit: int = 80) -> str:
    """argv as one short, safe line."""
    text = redact(" ".join(argv)) or "?"
    return text if len(text) <= limit else text[:limit - 3] + "..."


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


# =========================================================================== I/O


def lsof_listeners(port: int) -> list[Socket]:
    """Listeners on ``port`` as lsof sees them ([] without lsof; lsof exits 1 on none)."""
    if not shutil.which("lsof"):
        return []
    done = run(["lsof", "-nP", f"-iTCP:{port}", "-sTCP:LISTEN"], timeout=10)
    return parse_lsof_listeners(done.stdout, port) if done is not None else []


def _procfs_sockets(port: int) -> list[Socket]:
    """Without psutil: /proc/net/tcp{,6}, listeners' owners by their fds' socket inodes."""
    rows = [r for r in procfs.read_proc_sockets() if r.port == port]
    links = procfs.fd_links() if any(r.status == LISTEN for r in rows) else {}
    found: list[Socket] = []
    for row in rows:
        pids = procfs.pids_holding(links, [row.inode]) if row.status == LISTEN else []
        found += [Socket(row.ip, row.port, row.status, pid) for pid in pids or [None]]
    return found


def tcp_sockets(port: int) -> list[Socket]:
    """TCP sockets bound to ``port`` on this host, one row per owning process (see the module
    docstring for where they come from; lsof lists listeners only)."""
    if psutil is None:
        return _procfs_sockets(port)
    try:
        conns = psutil.net_connections(kind="tcp")
    except psutil.AccessDenied:
        return lsof_listeners(port)
    return [Socket(c.laddr.ip, c.laddr.port, c.status, c.pid) for c in conns
            if c.laddr and c.laddr.port == port]


def listener_pids(port: int) -> tuple[bool, list[int]]:
    """(a listener holds 127.0.0.1:port, pids owning it as far as this user can see)."""
    sockets = listeners_on(tcp_sockets(port), port)
    return bool(sockets), sorted({s.pid for s in sockets if s.pid})


def holder(pid: int, fallback: str = "?") -> Holder:
    argv = read_cmdline(pid)
    if not argv:
        return Holder(pid, fallback)
    return Holder(pid, command_line(argv), docker_proxy_target(argv))


def find_holders(port: int) -> tuple[bool, list[Holder]]:
    sockets = listeners_on(tcp_sockets(port), port)
    names: dict[int, str] = {}
    for sock in sockets:
        if sock.pid:
            names.setdefault(sock.pid, sock.command or "?")
    holders = [holder(pid, names[pid]) for pid in sorted(names)]
    if sockets and not holders and shutil.which("ss"):
        done = run(["ss", "-ltnpH", f"sport = :{port}"], timeout=5)
        if done and done.returncode == 0:
            holders = [holder(pid, name) for pid, name in parse_ss_listeners(done.stdout, port)]
    return bool(sockets), holders


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


def port_listened(port: int) -> bool:
    """Something listens on 127.0.0.1:``port`` (as far as this user can see)."""
    return bool(listeners_on(tcp_sockets(port), port))


def port_lingering(port: int) -> list[str]:
    return lingering_on(tcp_sockets(port), port)


def check_port(port: int) -> PortCheck:
    listening, holders = find_holders(port)
    containers = docker_containers(port)
    free = bind_free(port)
    lingering = [] if free else port_lingering(port)
    return PortCheck(listening or bool(containers) or not free, holders, containers, lingering)
