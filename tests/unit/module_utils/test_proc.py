"""Tests of module_utils/proc.py (running one argv with a timeout)."""

from __future__ import annotations

import sys

from ansible_collections.atp.deploy.plugins.module_utils import proc


def test_run_captures_output_and_rc(tmp_path):
    code = "import os,sys; print(os.getcwd()); print(os.environ['X_TEST']); " \
           "print('err', file=sys.stderr); sys.exit(3)"
    rc, out, err = proc.run([sys.executable, "-c", code], cwd=str(tmp_path),
                            env_update={"X_TEST": 7})
    assert rc == 3
    assert out.splitlines() == [str(tmp_path), "7"]
    assert err.strip() == "err"


def test_run_merge_stderr_keeps_order():
    code = "import sys; print('a', flush=True); print('b', file=sys.stderr, flush=True); print('c')"
    rc, out, err = proc.run([sys.executable, "-c", code], merge_stderr=True)
    assert rc == 0 and out.splitlines() == ["a", "b", "c"] and err == ""


def test_run_missing_binary_and_timeout():
    rc, _out, err = proc.run(["/nonexistent/docker", "info"])
    assert rc == 127 and "not found" in err
    rc, _out, err = proc.run([sys.executable, "-c", "import time; time.sleep(5)"], timeout=0.3)
    assert rc == proc.TIMEOUT_RC and "timed out after 0.3s" in err
