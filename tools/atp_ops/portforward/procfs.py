"""Linux /proc, read directly: the fallback when psutil is not importable (an interpreter
without the repo's requirements), and read_proc_sockets() for tests that want the raw table.

With psutil present (requirements.txt), ports.py and processes.py ask psutil instead, which
also answers on macOS.
"""

from __future__ import annotations

import contextlib
import ipaddress
import os
import re
import sys
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

TCP_LISTEN = "0A"
TCP_STATES = {"01": "ESTABLISHED", "02": "SYN_SENT", "03": "SYN_RECV", "04": "FIN_WAIT1",
              "05": "FIN_WAIT2", "06": "TIME_WAIT", "07": "CLOSE", "08": "CLOSE_WAIT",
              "09": "LAST_ACK", "0A": "LISTEN", "0B": "CLOSING"}

_SOCKET_LINK = re.compile(r"^socket:\[(\d+)\]$")


# =========================================================================== pure


@dataclass(frozen=True)
class ProcSocket:
    """One row of /proc/net/tcp or /proc/net/tcp6."""

    ip: str
    port: int
    state: str
    inode: int
    uid: int

    @property
    def status(self) -> str:
        """The state by name (LISTEN, TIME_WAIT, ...), as psutil names it."""
        return TCP_STATES.get(self.state, self.state)


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


def socket_inode(link: str) -> int | None:
    """The inode of a /proc/<pid>/fd/<n> link target like ``socket:[12345]``."""
    match = _SOCKET_LINK.match(link)
    return int(match.group(1)) if match else None


def pids_holding(fd_links: Mapping[int, Iterable[str]], inodes: Iterable[int]) -> list[int]:
    """Pids whose open fds (link targets) include one of the socket ``inodes``."""
    wanted = set(inodes)
    return sorted(pid for pid, links in fd_links.items()
                  if any(socket_inode(link) in wanted for link in links))


def parse_cmdline(raw: bytes) -> list[str]:
    """/proc/<pid>/cmdline -> argv."""
    return [part.decode(errors="replace") for part in raw.split(b"\0") if part]


def parse_stat(text: str) -> tuple[str, int]:
    """/proc/<pid>/stat -> (state letter, ppid); the command may contain spaces and ')'."""
    fields = text.rsplit(")", 1)[1].split()
    return fields[0], int(fields[1])


# =========================================================================== I/O


def read_proc_sockets() -> list[ProcSocket]:
    """Every TCP socket of /proc/net/tcp{,6}; [] where there is no procfs (macOS)."""
    rows: list[ProcSocket] = []
    for name in ("/proc/net/tcp", "/proc/net/tcp6"):
        with contextlib.suppress(OSError):
            rows += parse_proc_net_tcp(Path(name).read_text(), sys.byteorder)
    return rows


def fd_links() -> dict[int, list[str]]:
    """pid -> link targets of its open fds (processes we may not inspect are skipped)."""
    found: dict[int, list[str]] = {}
    try:
        entries = os.listdir("/proc")
    except OSError:
        return found
    for entry in entries:
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


def read_cmdline(pid: int) -> list[str] | None:
    try:
        return parse_cmdline(Path(f"/proc/{pid}/cmdline").read_bytes())
    except OSError:
        return None


def read_stat(pid: int) -> tuple[str, int] | None:
    try:
        return parse_stat(Path(f"/proc/{pid}/stat").read_text(errors="replace"))
    except (OSError, IndexError, ValueError):
        return None
