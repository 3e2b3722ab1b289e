"""tools/atp_ops/portforward/__init__.py: the package keeps the former module's names, and
bin/atp-portforward (`from atp_ops.portforward import main`) runs it."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import atp_ops.portforward as pf
from atp_ops.portforward import cli, ports, procfs, session

REPO = Path(__file__).resolve().parents[3]


def test_main_and_the_names_callers_use_are_re_exported():
    assert pf.main is cli.main
    # tests/integration/test_portforward.py
    assert pf.listeners_on is ports.listeners_on
    assert pf.read_proc_sockets is procfs.read_proc_sockets
    # tests/unit/iam/test_policies.py reads the document the port-forward session uses
    assert pf.DOCUMENT == session.DOCUMENT == "AWS-StartPortForwardingSessionToRemoteHost"
    assert sorted(pf.__all__) == sorted(set(pf.__all__))
    assert all(hasattr(pf, name) for name in pf.__all__)


def test_the_integration_helper_works_on_this_host():
    """listeners_on(read_proc_sockets(), port) as tests/integration uses it ([] on macOS)."""
    assert isinstance(pf.listeners_on(pf.read_proc_sockets(), 1), list)


def test_bin_wrapper_runs_the_package(tmp_path):
    env = dict(os.environ, ATP_PORTFORWARD_STATE_DIR=str(tmp_path))
    done = subprocess.run([str(REPO / "bin" / "atp-portforward"), "stop", "--local-port", "18002"],
                          capture_output=True, text=True, timeout=60, env=env)
    assert (done.returncode, done.stdout, done.stderr) == (
        0, "no atp-portforward session recorded for local port 18002: nothing to stop\n", "")
    bare = subprocess.run([str(REPO / "bin" / "atp-portforward")], capture_output=True,
                          text=True, timeout=60, env=env)
    assert bare.returncode == 2 and bare.stderr.endswith(
        "atp-portforward: error: the following arguments are required: command\n")
