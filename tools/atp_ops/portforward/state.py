"""The per-port state directory: state.json (the session, the plugin pid) and plugin.log."""

from __future__ import annotations

import contextlib
import json
import os
from pathlib import Path

from .common import PROG, PortForwardError, short

STATE_FILE = "state.json"
LOG_FILE = "plugin.log"
STATE_ENV = "ATP_PORTFORWARD_STATE_DIR"


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
