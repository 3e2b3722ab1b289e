"""tools/atp_ops/portforward/procfs.py: Linux /proc parsing (the fallback without psutil)."""

from __future__ import annotations

import os
import sys

import pytest
from atp_ops.portforward import ports, procfs

# Real rows (this machine): 127.0.0.1:4581 and 127.0.0.1:4580 listening.
PROC_TCP = """\
  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 0100007F:11E5 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 95641 1 00000000bcbc5dc6 100 0 0 10 0
   1: 0100007F:1F42 00000000:0000 0A 00000000:00000000 00:00000000 00000000  1000        0 4242 1 0000000000000000 100 0 0 10 0
   2: 00000000:4652 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 5151 1 0000000000000000 100 0 0 10 0
   3: 0100007F:1F43 0100007F:8BE2 06 00000000:00000000 03:00001770 00000000     0        0 0 3 0000000000000000
   4: 0200007F:1F44 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 777 1 0000000000000000 100 0 0 10 0
   garbage line
"""  # noqa: E501
PROC_TCP6 = """\
  sl  local_address                         remote_address                        st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 00000000000000000000000000000000:1F45 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 6161 1 0000000000000000 100 0 0 10 0
   1: 00000000000000000000000001000000:1F46 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 6262 1 0000000000000000 100 0 0 10 0
   2: 0000000000000000FFFF00000100007F:1F47 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 6363 1 0000000000000000 100 0 0 10 0
"""  # noqa: E501


def test_decode_proc_addr_v4_and_v6():
    assert procfs.decode_proc_addr("0100007F") == "127.0.0.1"
    assert procfs.decode_proc_addr("00000000") == "0.0.0.0"
    assert procfs.decode_proc_addr("7F000001", byteorder="big") == "127.0.0.1"
    assert procfs.decode_proc_addr("0" * 32) == "::"
    assert procfs.decode_proc_addr("00000000000000000000000001000000") == "::1"
    assert procfs.decode_proc_addr("0000000000000000FFFF00000100007F") == "::ffff:127.0.0.1"


def test_parse_proc_net_tcp_rows():
    rows = procfs.parse_proc_net_tcp(PROC_TCP)
    assert [(r.ip, r.port, r.state, r.inode) for r in rows] == [
        ("127.0.0.1", 4581, "0A", 95641),
        ("127.0.0.1", 8002, "0A", 4242),
        ("0.0.0.0", 18002, "0A", 5151),
        ("127.0.0.1", 8003, "06", 0),
        ("127.0.0.2", 8004, "0A", 777),
    ]
    assert rows[1].uid == 1000
    assert [r.status for r in rows] == ["LISTEN", "LISTEN", "LISTEN", "TIME_WAIT", "LISTEN"]


def test_parse_proc_net_tcp6_rows():
    rows = procfs.parse_proc_net_tcp(PROC_TCP6)
    assert [(r.ip, r.port, r.inode) for r in rows] == [
        ("::", 8005, 6161), ("::1", 8006, 6262), ("::ffff:127.0.0.1", 8007, 6363)]


def test_listeners_on_picks_listeners_that_block_loopback():
    rows = procfs.parse_proc_net_tcp(PROC_TCP) + procfs.parse_proc_net_tcp(PROC_TCP6)
    assert [r.inode for r in ports.listeners_on(rows, 8002)] == [4242]
    assert [r.inode for r in ports.listeners_on(rows, 18002)] == [5151]  # 0.0.0.0 counts
    assert [r.inode for r in ports.listeners_on(rows, 8005)] == [6161]  # :: counts
    assert ports.listeners_on(rows, 8003) == []  # TIME_WAIT is not a listener
    assert ports.listeners_on(rows, 8004) == []  # 127.0.0.2 does not block 127.0.0.1
    assert ports.listeners_on(rows, 8006) == []  # ::1 does not block 127.0.0.1
    assert ports.listeners_on(rows, 9999) == []


def test_lingering_on_reports_non_listening_states():
    rows = procfs.parse_proc_net_tcp(PROC_TCP)
    assert ports.lingering_on(rows, 8003) == ["TIME_WAIT"]
    assert ports.lingering_on(rows, 8002) == []


def test_socket_inode_and_pids_holding():
    assert procfs.socket_inode("socket:[4242]") == 4242
    assert procfs.socket_inode("pipe:[4242]") is None
    assert procfs.socket_inode("/dev/null") is None
    links = {10: ["/dev/null", "socket:[1]"], 20: ["socket:[4242]", "pipe:[3]"],
             30: ["anon_inode:[eventpoll]"], 40: ["socket:[5151]"]}
    assert procfs.pids_holding(links, [4242]) == [20]
    assert procfs.pids_holding(links, iter([5151, 4242])) == [20, 40]
    assert procfs.pids_holding(links, [9]) == []


def test_parse_cmdline_and_stat():
    assert procfs.parse_cmdline(b"python3\x00-m\x00http.server\x008002\x00") == [
        "python3", "-m", "http.server", "8002"]
    assert procfs.parse_cmdline(b"") == []
    stat = "123 (my (odd) cmd) S 1 123 123 0 -1 4194560 0 0"
    assert procfs.parse_stat(stat) == ("S", 1)
    assert procfs.parse_stat("7614 (python3) Z 1 7614 7614 0 -1") == ("Z", 1)


@pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="no procfs (macOS)")
def test_readers_on_this_host():
    assert procfs.read_cmdline(os.getpid())[0].endswith(os.path.basename(sys.executable)[:6])
    assert procfs.read_stat(os.getpid()) == ("R", os.getppid())
    assert procfs.read_cmdline(2 ** 22 + 7) is None and procfs.read_stat(2 ** 22 + 7) is None
    assert os.getpid() in procfs.fd_links()
    assert all(isinstance(r, procfs.ProcSocket) for r in procfs.read_proc_sockets())


def test_readers_without_procfs(monkeypatch):
    """macOS: no /proc; the readers answer "nothing" rather than fail."""
    real = procfs.Path
    monkeypatch.setattr(procfs, "Path", lambda name: real("/nonexistent" + name))
    monkeypatch.setattr(procfs.os, "listdir", _no_dir)
    assert procfs.read_proc_sockets() == []
    assert procfs.fd_links() == {}
    assert procfs.read_cmdline(1) is None and procfs.read_stat(1) is None


def _no_dir(path):
    raise FileNotFoundError(path)
