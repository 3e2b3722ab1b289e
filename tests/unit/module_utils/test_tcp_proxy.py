"""Tests of module_utils/tcp_proxy.py (the zero-downtime TCP proxy), in-process and as a script.

Only 127.0.0.1 and ephemeral ports; every wait is bounded.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import socketserver
import subprocess
import sys
import threading
import time

import pytest
from ansible_collections.atp.deploy.plugins.module_utils import tcp_proxy

WAIT = 3.0  # seconds, for any single wait


def run(coro, timeout: float = 8.0):
    """Run a test coroutine with a hard bound."""
    return asyncio.run(asyncio.wait_for(coro, timeout))


def write_upstream(path, text: str) -> None:
    """Replace the upstream file atomically (new inode), like the deploy does."""
    tmp = f"{path}.tmp"
    with open(tmp, "w", encoding="utf-8") as handle:
        handle.write(text)
    os.replace(tmp, path)


async def start_upstream(tag: str):
    """A line server: answers each line with `<tag>:<line>`; at EOF `<tag>:eof`, then closes.
    Returns (server, port)."""

    async def handle(reader, writer):
        try:
            while True:
                line = await reader.readline()
                if not line:
                    break
                writer.write(f"{tag}:".encode() + line)
                await writer.drain()
            writer.write(f"{tag}:eof\n".encode())
            await writer.drain()
        except OSError:
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    return server, server.sockets[0].getsockname()[1]


async def stop_server(server) -> None:
    server.close()
    await asyncio.wait({asyncio.ensure_future(server.wait_closed())}, timeout=1.0)


async def start_proxy(tmp_path, upstream_text: str | None = None, **kwargs):
    up_file = tmp_path / "upstream"
    status_file = tmp_path / "status.json"
    if upstream_text is not None:
        write_upstream(up_file, upstream_text)
    proxy = tcp_proxy.Proxy("127.0.0.1", 0, str(up_file), str(status_file), **kwargs)
    port = await proxy.start()
    return proxy, port, up_file, str(status_file)


async def connect(port: int):
    return await asyncio.wait_for(asyncio.open_connection("127.0.0.1", port), WAIT)


async def ask(reader, writer, line: str) -> str:
    writer.write(line.encode() + b"\n")
    await writer.drain()
    return (await asyncio.wait_for(reader.readline(), WAIT)).decode().rstrip("\n")


async def read_all(reader) -> bytes:
    return await asyncio.wait_for(reader.read(), WAIT)


async def wait_status(path: str, predicate, timeout: float = WAIT) -> dict:
    """Poll the status file until predicate(status) holds; fail with the last one seen."""
    deadline = time.monotonic() + timeout
    status = {}
    while time.monotonic() < deadline:
        status = tcp_proxy.read_status(path)
        if status and predicate(status):
            return status
        await asyncio.sleep(0.02)
    raise AssertionError(f"status never matched, last: {status!r}")


async def closed_by_proxy(port: int) -> bool:
    """True if the proxy closes a fresh connection without sending anything."""
    reader, writer = await connect(port)
    try:
        return await read_all(reader) == b""
    except ConnectionResetError:
        return True
    finally:
        writer.close()


# -- parse_hostport ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "want"),
    [
        ("app-1:8002", ("app-1", 8002)),
        ("  myproj_backend_1:80 \n", ("myproj_backend_1", 80)),
        ("# written by traffic_switch\n\n10.0.0.7:65535\n", ("10.0.0.7", 65535)),
        ("[::1]:8002", ("::1", 8002)),
        ("[fd00::a:1]:1", ("fd00::a:1", 1)),
        ("backend.internal.example.com:443", ("backend.internal.example.com", 443)),
    ],
)
def test_parse_hostport_good(text, want):
    assert tcp_proxy.parse_hostport(text) == want


@pytest.mark.parametrize(
    "text",
    [
        "",
        "   \n# only a comment\n",
        "app-1",
        "app-1:",
        ":8002",
        "app-1:0",
        "app-1:65536",
        "app-1:80a",
        "app-1:-1",
        "app 1:80",
        "::1:8002",
        "[nope]:80",
        "app-1:80\napp-2:80",
        "-app:80",
        "a..b:80",
    ],
)
def test_parse_hostport_bad(text):
    with pytest.raises(ValueError) as err:
        tcp_proxy.parse_hostport(text)
    assert str(err.value) and "\n" not in str(err.value)


def test_parse_hostport_port_zero_only_when_allowed():
    assert tcp_proxy.parse_hostport("127.0.0.1:0", allow_port_zero=True) == ("127.0.0.1", 0)
    with pytest.raises(ValueError):
        tcp_proxy.parse_hostport("127.0.0.1:0")


def test_format_hostport_round_trips():
    for text in ("app-1:8002", "[::1]:80", "10.1.2.3:9"):
        assert tcp_proxy.format_hostport(*tcp_proxy.parse_hostport(text)) == text


def test_read_status_and_active_on(tmp_path):
    path = tmp_path / "status.json"
    assert tcp_proxy.read_status(str(path)) == {}
    path.write_text("{not json")
    assert tcp_proxy.read_status(str(path)) == {}
    path.write_text("[1]")
    assert tcp_proxy.read_status(str(path)) == {}
    path.write_text('{"active": {"a:1": 2, "b:1": "x"}}')
    status = tcp_proxy.read_status(str(path))
    assert tcp_proxy.active_on(status, "a:1") == 2
    assert tcp_proxy.active_on(status, "b:1") == 0
    assert tcp_proxy.active_on(status, "c:1") == 0
    assert tcp_proxy.active_on({}, "a:1") == 0
    assert tcp_proxy.active_on({"active": None}, "a:1") == 0


# -- in-process proxy ----------------------------------------------------------------------


def test_forwards_both_ways_and_writes_status(tmp_path):
    async def scenario():
        server, up_port = await start_upstream("A")
        proxy, port, _f, status_path = await start_proxy(tmp_path, f"127.0.0.1:{up_port}\n")
        name = f"127.0.0.1:{up_port}"
        try:
            status = tcp_proxy.read_status(status_path)  # written by start()
            assert status["pid"] == os.getpid()
            assert status["upstream"] == name
            assert status["active"] == {}
            assert status["listen"] == f"127.0.0.1:{port}"
            reader, writer = await connect(port)
            assert await ask(reader, writer, "GET / HTTP/1.0") == "A:GET / HTTP/1.0"
            assert await ask(reader, writer, "x" * 60_000) == "A:" + "x" * 60_000
            status = await wait_status(status_path, lambda s: s["active"] == {name: 1})
            assert status["connections_total"] == 1
            assert status["updated"] >= status["upstream_since"]
            writer.close()
            await wait_status(status_path, lambda s: s["active"] == {})
            assert proxy.active == {}
        finally:
            await proxy.stop(1.0)
            await stop_server(server)
        assert oct(os.stat(status_path).st_mode & 0o777) == oct(0o644)
        assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")] == []

    run(scenario())


def test_switch_moves_new_connections_and_keeps_open_ones(tmp_path):
    async def scenario():
        server_a, port_a = await start_upstream("A")
        server_b, port_b = await start_upstream("B")
        name_a, name_b = f"127.0.0.1:{port_a}", f"127.0.0.1:{port_b}"
        proxy, port, up_file, status_path = await start_proxy(tmp_path, name_a + "\n")
        try:
            r1, w1 = await connect(port)
            assert await ask(r1, w1, "one") == "A:one"
            write_upstream(up_file, "# switched\n" + name_b + "\n")
            r2, w2 = await connect(port)
            assert await ask(r2, w2, "two") == "B:two"
            # the connection opened before the switch stays on A
            assert await ask(r1, w1, "still") == "A:still"
            status = await wait_status(status_path, lambda s: s["active"] == {name_a: 1, name_b: 1})
            assert status["upstream"] == name_b
            assert tcp_proxy.active_on(status, name_a) == 1
            w1.write_eof()
            assert await read_all(r1) == b"A:eof\n"
            w1.close()
            status = await wait_status(status_path, lambda s: s["active"] == {name_b: 1})
            assert tcp_proxy.active_on(status, name_a) == 0
            assert status["upstream"] == name_b
            w2.close()
            await wait_status(status_path, lambda s: s["active"] == {})
        finally:
            await proxy.stop(1.0)
            await stop_server(server_a)
            await stop_server(server_b)

    run(scenario())


def test_missing_file_closes_clients_until_it_appears(tmp_path, capsys):
    async def scenario():
        server, up_port = await start_upstream("A")
        proxy, port, up_file, status_path = await start_proxy(tmp_path, None)
        try:
            assert tcp_proxy.read_status(status_path)["upstream"] is None
            assert await closed_by_proxy(port)
            assert await closed_by_proxy(port)
            assert proxy.connections_total == 2
            write_upstream(up_file, f"127.0.0.1:{up_port}\n")
            reader, writer = await connect(port)
            assert await ask(reader, writer, "hi") == "A:hi"
            writer.close()
        finally:
            await proxy.stop(1.0)
            await stop_server(server)

    run(scenario())
    err = capsys.readouterr().err
    assert err.count("is missing") == 1  # logged once per distinct problem


def test_invalid_or_removed_file_keeps_last_good_upstream(tmp_path, capsys):
    async def scenario():
        server, up_port = await start_upstream("A")
        name = f"127.0.0.1:{up_port}"
        proxy, port, up_file, status_path = await start_proxy(tmp_path, name + "\n")
        try:
            write_upstream(up_file, "this is not an upstream\n")
            for word in ("x", "y"):
                reader, writer = await connect(port)
                assert await ask(reader, writer, word) == f"A:{word}"
                writer.close()
            os.unlink(up_file)
            reader, writer = await connect(port)
            assert await ask(reader, writer, "z") == "A:z"
            writer.close()
            assert tcp_proxy.read_status(status_path)["upstream"] == name
            assert proxy.upstream == name
        finally:
            await proxy.stop(1.0)
            await stop_server(server)

    run(scenario())
    err = capsys.readouterr().err
    assert err.count("not host:port") == 1
    assert err.count("is missing") == 1
    assert "keeping 127.0.0.1:" in err


def test_refusing_upstream_closes_client_and_proxy_keeps_serving(tmp_path, capsys):
    async def scenario():
        with socket.socket() as sock:  # a port nothing listens on
            sock.bind(("127.0.0.1", 0))
            dead = sock.getsockname()[1]
        server, up_port = await start_upstream("A")
        proxy, port, up_file, status_path = await start_proxy(tmp_path, f"127.0.0.1:{dead}")
        try:
            assert await closed_by_proxy(port)
            assert proxy.active == {}
            write_upstream(up_file, f"127.0.0.1:{up_port}\n")
            reader, writer = await connect(port)
            assert await ask(reader, writer, "next") == "A:next"
            writer.close()
            status = await wait_status(status_path, lambda s: s["active"] == {})
            assert status["connections_total"] == 2
        finally:
            await proxy.stop(1.0)
            await stop_server(server)
        return dead

    dead = run(scenario())
    assert f"connect to 127.0.0.1:{dead} for 127.0.0.1:" in capsys.readouterr().err


def test_half_close_reaches_upstream_and_answer_comes_back(tmp_path):
    async def scenario():
        async def collect(reader, writer):  # answers only after the client's EOF
            data = await reader.read()
            writer.write(b"got " + str(len(data)).encode() + b": " + data[:5])
            await writer.drain()
            writer.close()

        server = await asyncio.start_server(collect, "127.0.0.1", 0)
        up_port = server.sockets[0].getsockname()[1]
        proxy, port, _f, status_path = await start_proxy(tmp_path, f"127.0.0.1:{up_port}")
        try:
            reader, writer = await connect(port)
            writer.write(b"hello" * 1000)
            await writer.drain()
            writer.write_eof()
            assert await read_all(reader) == b"got 5000: hello"
            writer.close()
            await wait_status(status_path, lambda s: s["active"] == {})
        finally:
            await proxy.stop(1.0)
            await stop_server(server)

    run(scenario())


def test_stop_waits_for_open_connection_to_finish(tmp_path):
    async def scenario():
        server, up_port = await start_upstream("A")
        proxy, port, _f, status_path = await start_proxy(tmp_path, f"127.0.0.1:{up_port}")
        try:
            reader, writer = await connect(port)
            assert await ask(reader, writer, "before") == "A:before"
            stopping = asyncio.ensure_future(proxy.stop(5.0))
            await asyncio.sleep(0.3)
            assert not stopping.done()  # draining
            with pytest.raises(OSError):  # no longer accepting
                await connect(port)
            assert await ask(reader, writer, "during") == "A:during"  # still served
            writer.write_eof()
            assert await read_all(reader) == b"A:eof\n"
            writer.close()
            start = time.monotonic()
            await asyncio.wait_for(stopping, WAIT)
            assert time.monotonic() - start < 2.0
            status = tcp_proxy.read_status(status_path)
            assert status["active"] == {}
            assert status["connections_total"] == 1
        finally:
            await stop_server(server)

    run(scenario())


def test_stop_cuts_connections_after_drain_timeout(tmp_path):
    async def scenario():
        server, up_port = await start_upstream("A")
        proxy, port, _f, status_path = await start_proxy(tmp_path, f"127.0.0.1:{up_port}")
        try:
            reader, writer = await connect(port)
            assert await ask(reader, writer, "x") == "A:x"
            start = time.monotonic()
            await asyncio.wait_for(proxy.stop(0.3), WAIT)
            assert 0.25 <= time.monotonic() - start < 2.0
            data = b""
            with contextlib.suppress(ConnectionResetError):
                data = await read_all(reader)
            assert data == b""  # cut by the proxy
            writer.close()
            assert proxy.active == {}
            assert tcp_proxy.read_status(status_path)["active"] == {}
            assert not proxy._tasks
        finally:
            await stop_server(server)

    run(scenario())


# -- as a script ---------------------------------------------------------------------------


class _Echo(socketserver.BaseRequestHandler):
    def handle(self):
        while True:
            data = self.request.recv(65536)
            if not data:
                return
            self.request.sendall(b"echo:" + data)


def test_script_forwards_and_exits_0_on_sigterm(tmp_path):
    echo = socketserver.ThreadingTCPServer(("127.0.0.1", 0), _Echo)
    echo.daemon_threads = True
    thread = threading.Thread(target=echo.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    up_file, status_file = tmp_path / "upstream", tmp_path / "status.json"
    name = f"127.0.0.1:{echo.server_address[1]}"
    write_upstream(up_file, name + "\n")
    argv = [
        sys.executable,
        tcp_proxy.__file__,
        "--listen",
        "127.0.0.1:0",
        "--upstream-file",
        str(up_file),
        "--status-file",
        str(status_file),
    ]
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 5.0
        status = {}
        while time.monotonic() < deadline and not status:
            status = tcp_proxy.read_status(str(status_file))
            time.sleep(0.02)
        assert status["pid"] == proc.pid
        assert status["upstream"] == name
        port = tcp_proxy.parse_hostport(status["listen"])[1]
        with socket.create_connection(("127.0.0.1", port), timeout=WAIT) as conn:
            conn.settimeout(WAIT)
            conn.sendall(b"ping")
            assert conn.recv(100) == b"echo:ping"
        proc.send_signal(signal.SIGTERM)
        _out, err = proc.communicate(timeout=5.0)
        assert proc.returncode == 0, err
        status = tcp_proxy.read_status(str(status_file))
        assert status["pid"] == proc.pid
        assert status["connections_total"] == 1
        assert status["active"] == {}
        assert b"listening on 127.0.0.1:" in err
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=5.0)
        echo.shutdown()
        echo.server_close()
        thread.join(timeout=5.0)


def test_script_rejects_bad_listen():
    proc = subprocess.run(
        [sys.executable, tcp_proxy.__file__, "--listen", "nope", "--upstream-file", "/x"],
        capture_output=True,
        timeout=10,
        check=False,
    )
    assert proc.returncode == 2
    assert b"--listen" in proc.stderr
