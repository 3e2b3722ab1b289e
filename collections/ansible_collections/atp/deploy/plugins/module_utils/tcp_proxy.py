# Copyright: atp.deploy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""A small asyncio TCP proxy for zero-downtime deploys (stdlib only, Python 3.8+).

It listens on one port and forwards every new connection to the ``host:port`` named in an
upstream file. A deploy moves traffic by rewriting that file: new connections go to the new
upstream, connections already open stay on the one they started on, so the old container can
drain. The proxy reports what it does in a JSON status file::

    {"pid": 7, "upstream": "app-2:8002", "upstream_since": 1700000000.0,
     "active": {"app-1:8002": 3, "app-2:8002": 1}, "connections_total": 42,
     "updated": 1700000001.5, "listen": "0.0.0.0:8002"}

Run as a script inside the proxy container::

    python3 tcp_proxy.py --listen 0.0.0.0:8002 --upstream-file /etc/atp-proxy/upstream \\
        --status-file /etc/atp-proxy/status.json

SIGTERM/SIGINT stop accepting, wait up to --drain-timeout for open connections, write the
status and exit 0. The deploy modules use read_status() / active_on() to read the status.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ipaddress
import json
import os
import re
import signal
import sys
import tempfile
import time

CHUNK = 64 * 1024
STATUS_INTERVAL = 0.1  # seconds between two status writes, at most
FILE_POLL = 1.0  # seconds between upstream file checks when no connection arrives
RECENT_NS = 2_000_000_000  # re-read a file changed this recently even if stat looks the same

# Docker container / service names and DNS names: letters, digits, '.', '_', '-'.
NAME_RE = re.compile(r"^[A-Za-z0-9_](?:[A-Za-z0-9_.-]*[A-Za-z0-9_])?$")
PORT_RE = re.compile(r"^[0-9]{1,5}$")
# asyncio.TimeoutError is not the builtin TimeoutError before Python 3.11.
TIMEOUT_ERRORS = (asyncio.TimeoutError, TimeoutError)


def log(msg: str) -> None:
    """One line on stderr (the container's log)."""
    try:
        sys.stderr.write(f"tcp_proxy: {msg}\n")
        sys.stderr.flush()
    except (OSError, ValueError):
        pass


def describe(exc: BaseException) -> str:
    """A short one-line description of an exception."""
    if isinstance(exc, TIMEOUT_ERRORS):
        return "timed out"
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0]}" if text else type(exc).__name__


def parse_hostport(text: str, allow_port_zero: bool = False) -> tuple[str, int]:
    """(host, port) from ``host:port`` text: a DNS name, IPv4 or ``[v6]``; whitespace and
    ``#`` comment lines ignored. ValueError with a one-line message on anything else."""
    if not isinstance(text, str):
        raise ValueError(f"expected host:port text, got {type(text).__name__}")
    lines = [ln.strip() for ln in text.splitlines()]
    lines = [ln for ln in lines if ln and not ln.startswith("#")]
    if not lines:
        raise ValueError("no host:port line (empty or only comments)")
    if len(lines) > 1:
        raise ValueError(f"expected one host:port line, found {len(lines)}")
    line = lines[0]
    host, sep, port_text = line.rpartition(":")
    if not sep or not host:
        raise ValueError(f"{line!r} is not host:port")
    if not PORT_RE.match(port_text):
        raise ValueError(f"{line!r}: port {port_text!r} is not a number")
    port = int(port_text)
    low = 0 if allow_port_zero else 1
    if not low <= port <= 65535:
        raise ValueError(f"{line!r}: port {port} is out of range {low}-65535")
    if host.startswith("[") and host.endswith("]"):
        inner = host[1:-1]
        try:
            ipaddress.IPv6Address(inner)
        except ValueError:
            raise ValueError(f"{line!r}: {inner!r} is not an IPv6 address") from None
        return inner, port
    if ":" in host:
        raise ValueError(f"{line!r}: an IPv6 address needs brackets, like [::1]:8002")
    if not NAME_RE.match(host) or ".." in host or len(host) > 253:
        raise ValueError(f"{line!r}: {host!r} is not a host name or IPv4 address")
    return host, port


def format_hostport(host: str, port: int) -> str:
    """``host:port``, with brackets around an IPv6 address (the inverse of parse_hostport)."""
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def read_status(path: str) -> dict:
    """The proxy's status document, or {} when missing or unreadable."""
    try:
        with open(path, encoding="utf-8") as handle:
            doc = json.load(handle)
    except (OSError, ValueError):
        return {}
    return doc if isinstance(doc, dict) else {}


def active_on(status: dict, upstream: str) -> int:
    """Open connections the status reports on ``upstream`` (``host:port``); 0 if none."""
    try:
        return int(((status or {}).get("active") or {}).get(upstream) or 0)
    except (TypeError, ValueError, AttributeError):
        return 0


def write_json_atomic(path: str, doc: dict, mode: int = 0o644) -> None:
    """Write ``doc`` as JSON to ``path`` via a temporary file in the same directory."""
    directory = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=".status.", suffix=".tmp", dir=directory)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            os.fchmod(handle.fileno(), mode)
            json.dump(doc, handle, sort_keys=True)
            handle.write("\n")
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


class Proxy:
    """Forward each new connection on (listen_host, listen_port) to the upstream file's
    ``host:port``. Use ``await start()`` (returns the bound port) and ``await stop()``."""

    def __init__(
        self,
        listen_host: str,
        listen_port: int,
        upstream_file: str,
        status_file: str | None = None,
        connect_timeout: float = 5.0,
        status_interval: float = STATUS_INTERVAL,
    ) -> None:
        self.listen_host = listen_host
        self.listen_port = int(listen_port)
        self.upstream_file = upstream_file
        self.status_file = status_file
        self.connect_timeout = float(connect_timeout)
        self.status_interval = float(status_interval)
        self.upstream: str | None = None  # "host:port" of the last good upstream
        self.upstream_since = time.time()
        self.connections_total = 0
        self._target: tuple[str, int] | None = None
        self._active: dict[str, int] = {}
        self._stat_key: tuple[int, int, int] | None = None
        self._problem: str | None = None  # the last upstream file problem logged
        self._status_problem: str | None = None
        self._server: asyncio.AbstractServer | None = None
        self._tasks: set[asyncio.Task] = set()
        self._flusher: asyncio.Task | None = None
        self._wake: asyncio.Event | None = None
        self._dirty = False

    # -- state -------------------------------------------------------------------------

    @property
    def active(self) -> dict[str, int]:
        """{upstream: open connections} for upstreams with at least one."""
        return {name: n for name, n in self._active.items() if n > 0}

    def status(self) -> dict:
        return {
            "pid": os.getpid(),
            "upstream": self.upstream,
            "upstream_since": self.upstream_since,
            "active": self.active,
            "connections_total": self.connections_total,
            "updated": time.time(),
            "listen": format_hostport(self.listen_host, self.listen_port),
        }

    def _mark_dirty(self) -> None:
        self._dirty = True
        if self._wake is not None:
            self._wake.set()

    def _count(self, upstream: str, delta: int) -> None:
        n = self._active.get(upstream, 0) + delta
        if n > 0:
            self._active[upstream] = n
        else:
            self._active.pop(upstream, None)
        self._mark_dirty()

    def _report_problem(self, problem: str | None) -> None:
        if problem is not None and problem != self._problem:
            log(problem)
        self._problem = problem

    def check_upstream(self) -> str | None:
        """Re-read the upstream file if it changed (stat: mtime, size, inode); return the
        current upstream ``host:port`` (the last good one), or None if there never was one."""
        path = self.upstream_file
        try:
            st = os.stat(path)
        except FileNotFoundError:
            self._stat_key = None
            self._report_problem(f"upstream file {path} is missing; {self._keeping()}")
            return self.upstream
        except OSError as exc:
            self._stat_key = None
            self._report_problem(f"upstream file {path}: {describe(exc)}; {self._keeping()}")
            return self.upstream
        key = (st.st_mtime_ns, st.st_size, st.st_ino)
        recent = time.time_ns() - st.st_mtime_ns < RECENT_NS  # coarse mtime: look again
        if key == self._stat_key and not recent:
            return self.upstream
        try:
            with open(path, encoding="utf-8") as handle:
                text = handle.read(4096)
            host, port = parse_hostport(text)
        except (OSError, ValueError) as exc:
            # An unreadable file may be mid-write: read it again next time.
            self._stat_key = None
            what = describe(exc) if isinstance(exc, OSError) else str(exc)
            self._report_problem(f"upstream file {path}: {what}; {self._keeping()}")
            return self.upstream
        self._stat_key = key
        self._report_problem(None)
        name = format_hostport(host, port)
        if name != self.upstream:
            log(f"upstream {self.upstream or '(none)'} -> {name}")
            self.upstream, self._target = name, (host, port)
            self.upstream_since = time.time()
            self._mark_dirty()
        return self.upstream

    def _keeping(self) -> str:
        if self.upstream:
            return f"keeping {self.upstream}"
        return "no upstream yet, closing connections"

    def write_status(self) -> None:
        """Write the status file now (if there is one); a failure is logged once."""
        self._dirty = False
        if not self.status_file:
            return
        try:
            write_json_atomic(self.status_file, self.status())
        except (OSError, ValueError) as exc:
            problem = f"writing {self.status_file} failed: {describe(exc)}"
            if problem != self._status_problem:
                log(problem)
            self._status_problem = problem
            return
        self._status_problem = None

    # -- lifecycle ---------------------------------------------------------------------

    async def start(self) -> int:
        """Bind, write the first status and start serving; return the bound port."""
        self._wake = asyncio.Event()
        self.check_upstream()
        self._server = await asyncio.start_server(
            self._handle, self.listen_host, self.listen_port, backlog=512
        )
        sockets = self._server.sockets or []
        if sockets:
            self.listen_port = sockets[0].getsockname()[1]
        self.write_status()
        self._flusher = asyncio.get_running_loop().create_task(self._flush_loop())
        log(
            f"listening on {format_hostport(self.listen_host, self.listen_port)}, "
            f"upstream {self.upstream or '(none)'}"
        )
        return self.listen_port

    async def stop(self, drain_timeout: float = 10.0) -> None:
        """Stop accepting, wait up to drain_timeout for open connections (then cut them),
        write the final status."""
        if self._server is not None:
            self._server.close()
        tasks = set(self._tasks)
        if tasks:
            log(f"draining {len(tasks)} open connection(s), up to {drain_timeout:g}s")
            if drain_timeout > 0:
                await asyncio.wait(tasks, timeout=drain_timeout)
            pending = {task for task in tasks if not task.done()}
            if pending:
                log(f"closing {len(pending)} connection(s) still open after the drain timeout")
                for task in pending:
                    task.cancel()
                await asyncio.wait(pending, timeout=2.0)
        if self._server is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), 2.0)
            self._server = None
        if self._flusher is not None:
            self._flusher.cancel()
            await asyncio.wait({self._flusher}, timeout=2.0)
            self._flusher = None
        self.write_status()

    async def _flush_loop(self) -> None:
        """Write the status when dirty, at most every status_interval; look at the upstream
        file now and then when no connection arrives."""
        wake = self._wake
        if wake is None:  # start() makes it before the loop is created
            raise RuntimeError("the status flusher runs only after start()")
        while True:
            try:
                await asyncio.wait_for(wake.wait(), FILE_POLL)
            except TIMEOUT_ERRORS:
                self.check_upstream()
            wake.clear()
            if self._dirty:
                self.write_status()
                await asyncio.sleep(self.status_interval)

    # -- connections -------------------------------------------------------------------

    async def _handle(self, client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter):
        # The work runs in a task of our own that stop() may cancel: asyncio (3.11) logs an
        # error when the task it made for this callback ends cancelled.
        task = asyncio.get_running_loop().create_task(self._serve(client_r, client_w))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        await asyncio.wait({task})
        if not task.cancelled():
            task.exception()  # retrieved (_serve logs its own errors)

    async def _serve(self, client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter):
        self.connections_total += 1
        counted: str | None = None
        up_w: asyncio.StreamWriter | None = None
        peer = _peer(client_w)
        try:
            upstream = self.check_upstream()
            target = self._target
            if upstream is None or target is None:
                return
            counted = upstream
            self._count(upstream, +1)
            try:
                up_r, up_w = await asyncio.wait_for(
                    asyncio.open_connection(target[0], target[1]), self.connect_timeout
                )
            except Exception as exc:
                log(f"connect to {upstream} for {peer} failed: {describe(exc)}")
                return
            await _relay(client_r, client_w, up_r, up_w)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log(f"connection {peer} -> {counted or '(none)'}: {describe(exc)}")
        finally:
            if counted is not None:
                self._count(counted, -1)
            for writer in (up_w, client_w):
                if writer is not None:
                    with contextlib.suppress(Exception):
                        writer.close()


def _peer(writer: asyncio.StreamWriter) -> str:
    try:
        addr = writer.get_extra_info("peername")
        return format_hostport(str(addr[0]), int(addr[1]))
    except Exception:
        return "?"


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Copy reader to writer until EOF, then half-close the writer."""
    while True:
        data = await reader.read(CHUNK)
        if not data:
            break
        writer.write(data)
        await writer.drain()
    if not writer.is_closing() and writer.can_write_eof():
        writer.write_eof()


async def _relay(
    client_r: asyncio.StreamReader,
    client_w: asyncio.StreamWriter,
    up_r: asyncio.StreamReader,
    up_w: asyncio.StreamWriter,
) -> None:
    """Copy both ways until both directions are done (or one fails); never leaves tasks."""
    loop = asyncio.get_running_loop()
    tasks = [loop.create_task(_pipe(client_r, up_w)), loop.create_task(_pipe(up_r, client_w))]
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_EXCEPTION)
        for task in tasks:
            if task.done() and not task.cancelled() and task.exception() is not None:
                raise task.exception()  # type: ignore[misc]
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


# -- script ------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description="Forward TCP connections to the host:port named in an upstream file."
    )
    parser.add_argument("--listen", default="0.0.0.0:8002", help="host:port to listen on")
    parser.add_argument("--upstream-file", required=True, help="file holding host:port")
    parser.add_argument("--status-file", default=None, help="JSON status file to write")
    parser.add_argument("--connect-timeout", type=float, default=5.0)
    parser.add_argument("--drain-timeout", type=float, default=10.0)
    return parser


async def _serve(args: argparse.Namespace, host: str, port: int) -> int:
    proxy = Proxy(host, port, args.upstream_file, args.status_file, args.connect_timeout)
    try:
        await proxy.start()
    except OSError as exc:
        log(f"cannot listen on {args.listen}: {describe(exc)}")
        return 1
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stopping.set)
    await stopping.wait()
    log("stopping")
    await proxy.stop(args.drain_timeout)
    log("stopped")
    return 0


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        host, port = parse_hostport(args.listen, allow_port_zero=True)
    except ValueError as exc:
        log(f"--listen: {exc}")
        return 2
    return asyncio.run(_serve(args, host, port))


if __name__ == "__main__":
    raise SystemExit(main())
