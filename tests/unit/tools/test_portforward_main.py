"""tools/atp_ops/portforward/__main__.py: `python -m atp_ops.portforward` is the same CLI."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

TOOLS = Path(__file__).resolve().parents[3] / "tools"


def test_python_dash_m_runs_the_cli(tmp_path):
    env = dict(os.environ, ATP_PORTFORWARD_STATE_DIR=str(tmp_path), PYTHONPATH=str(TOOLS))
    done = subprocess.run([sys.executable, "-m", "atp_ops.portforward", "status",
                           "--local-port", "18002"], capture_output=True, text=True, timeout=60,
                          env=env, cwd=tmp_path)
    assert done.returncode == 3, done.stderr
    assert done.stdout.startswith("no atp-portforward session recorded for local port 18002")
    helped = subprocess.run([sys.executable, "-m", "atp_ops.portforward", "--help"],
                            capture_output=True, text=True, timeout=60, env=env, cwd=tmp_path)
    assert helped.returncode == 0 and helped.stdout.startswith("usage: atp-portforward ")
