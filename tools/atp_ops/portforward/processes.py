"""Processes on this host: alive or not, argv, parent chain.

psutil answers on Linux and macOS; without psutil (an interpreter lacking the repo's
requirements) Linux /proc is read directly (procfs.py).
"""

from __future__ import annotations

from . import procfs

try:
    import psutil
except ImportError:  # pragma: no cover - exercised by monkeypatching psutil to None
    psutil = None


def read_cmdline(pid: int) -> list[str] | None:
    """argv of ``pid``; [] while it exits (a zombie) or for a kernel thread; None when it is
    gone or this user may not read it."""
    if psutil is None:
        return procfs.read_cmdline(pid)
    try:
        return [arg for arg in psutil.Process(pid).cmdline() if arg]
    except psutil.ZombieProcess:
        return []
    except (psutil.Error, OSError):  # NoSuchProcess, AccessDenied
        return None


def process_state(pid: int) -> tuple[bool, int] | None:
    """(running, parent pid) of ``pid``; None when there is no such process. A zombie waiting
    for its reaper is not running; a process this user may not inspect is (parent pid 0)."""
    if psutil is None:
        stat = procfs.read_stat(pid)
        return None if stat is None else (stat[0] not in ("Z", "X"), stat[1])
    try:
        proc = psutil.Process(pid)
        with proc.oneshot():
            return (proc.status() not in (psutil.STATUS_ZOMBIE, psutil.STATUS_DEAD),
                    proc.ppid())
    except psutil.ZombieProcess:
        return False, 0
    except psutil.AccessDenied:
        return True, 0
    except (psutil.Error, OSError):  # NoSuchProcess
        return None


def pid_alive(pid: int | None) -> bool:
    """Running (a zombie waiting for its reaper counts as gone)."""
    if not pid:
        return False
    state = process_state(pid)
    return state is not None and state[0]


def ancestry(pid: int, limit: int = 64) -> list[int]:
    """``pid``, its parent, grandparent, ... up to (not including) init."""
    chain = [pid]
    for _ in range(limit):
        state = process_state(chain[-1])
        if not state or state[1] <= 1:
            break
        chain.append(state[1])
    return chain
