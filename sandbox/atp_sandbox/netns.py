"""Open sockets inside an instance container's network namespace (root only).

A socket belongs to the namespace of the thread that created it, so a thread can
switch into the instance's namespace, create a socket there and switch back:
the socket keeps living in the instance while the process stays on the host.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import socket
import threading

_CLONE_NEWNET = 0x40000000
_libc = ctypes.CDLL(None, use_errno=True)
_lock = threading.Lock()


def _setns(fd: int) -> None:
    if _libc.setns(fd, _CLONE_NEWNET) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"setns failed: {os.strerror(err)}")


def socket_in(pid: int) -> socket.socket:
    """A new TCP socket created inside the network namespace of process ``pid``."""
    with _lock:
        own = os.open(f"/proc/{os.getpid()}/task/{threading.get_native_id()}/ns/net", os.O_RDONLY)
        target = os.open(f"/proc/{pid}/ns/net", os.O_RDONLY)
        try:
            _setns(target)
            try:
                return socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            finally:
                _setns(own)
        finally:
            os.close(own)
            os.close(target)


def connect_in(pid: int, host: str, port: int, timeout: float = 10.0) -> socket.socket:
    sock = socket_in(pid)
    sock.settimeout(timeout)
    sock.connect((host, port))
    sock.settimeout(None)
    return sock


def listen_in(pid: int, host: str, port: int) -> socket.socket:
    sock = socket_in(pid)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(64)
    return sock


def pump(a: socket.socket, b: socket.socket, on_bytes=None, counts: list | None = None) -> None:
    """Relay both directions until either side closes; calls on_bytes(up, down) at the end.
    counts, when given, is the caller's [up, down] list, kept current while bytes flow."""
    counts = counts if counts is not None else [0, 0]

    def one_way(src: socket.socket, dst: socket.socket, idx: int) -> None:
        try:
            while True:
                data = src.recv(65536)
                if not data:
                    break
                counts[idx] += len(data)  # counted first: a SIGTERM after the send sees it
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (dst,):
                with contextlib.suppress(OSError):
                    s.shutdown(socket.SHUT_WR)

    t = threading.Thread(target=one_way, args=(b, a, 1), daemon=True)
    t.start()
    one_way(a, b, 0)
    t.join(timeout=600)
    for s in (a, b):
        with contextlib.suppress(OSError):
            s.close()
    if on_bytes:
        on_bytes(counts[0], counts[1])
