"""What every part of atp-portforward shares: names, exit codes, the operator-facing error,
redaction, and the bounded subprocess helper."""

from __future__ import annotations

import ipaddress
import re
import subprocess

PROG = "atp-portforward"
LOOPBACK = "127.0.0.1"
EXIT_FAIL = 1
EXIT_NOT_RUNNING = 3

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


def redact(text: str) -> str:
    """Hide session tokens and key-looking strings."""
    for pattern, replacement in _SECRETS:
        text = pattern.sub(replacement, text)
    return text


def short(text: str, limit: int = 160) -> str:
    """One line, redacted, at most ``limit`` characters."""
    line = " ".join(redact(str(text)).split())
    return line if len(line) <= limit else line[:limit - 3] + "..."


def validate_port(name: str, port: int) -> None:
    if not 1 <= port <= 65535:
        raise PortForwardError(f"expected {name} between 1 and 65535, got {port}: fix {name}")


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


def run(cmd: list[str], timeout: float) -> subprocess.CompletedProcess | None:
    """``cmd`` with its output captured; None if it could not run or did not end in time."""
    try:
        return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout,
                              stdin=subprocess.DEVNULL)
    except (OSError, subprocess.TimeoutExpired):
        return None
