# Copyright: atp.deploy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Run one argv list (no shell) with an optional timeout; the only place modules spawn processes."""

from __future__ import annotations

import os
import subprocess

TIMEOUT_RC = 124


def run(argv: list[str], cwd: str | None = None, env_update: dict | None = None,
        timeout: float | None = None, merge_stderr: bool = False) -> tuple[int, str, str]:
    """Return (rc, stdout, stderr). A missing binary gives rc 127, a timeout rc 124.

    merge_stderr: send stderr into stdout (build logs interleave both; the tail must keep order).
    """
    env = dict(os.environ)
    if env_update:
        env.update({k: str(v) for k, v in env_update.items()})
    try:
        proc = subprocess.run(
            argv,
            cwd=cwd,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT if merge_stderr else subprocess.PIPE,
            timeout=timeout,
            check=False,
        )
    except FileNotFoundError as exc:
        return 127, "", f"{argv[0]}: not found ({exc})"
    except subprocess.TimeoutExpired as exc:
        out = exc.stdout.decode("utf-8", "replace") if isinstance(exc.stdout, bytes) else ""
        return TIMEOUT_RC, out, f"timed out after {timeout}s: {' '.join(argv)}"
    out = proc.stdout.decode("utf-8", "replace") if proc.stdout else ""
    err = proc.stderr.decode("utf-8", "replace") if proc.stderr else ""
    return proc.returncode, out, err
