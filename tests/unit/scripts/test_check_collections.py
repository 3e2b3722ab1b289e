"""scripts/check_collections.py: installed collections against requirements.yml, no Galaxy."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[3]
SCRIPT = REPO / "scripts/check_collections.py"
spec = importlib.util.spec_from_file_location("check_collections", SCRIPT)
cc = importlib.util.module_from_spec(spec)
spec.loader.exec_module(cc)


@pytest.mark.parametrize(("version", "spec", "ok"), [
    ("10.1.2", ">=10.1.2,<11.0.0", True),
    ("10.1.1", ">=10.1.2,<11.0.0", False),
    ("11.0.0", ">=10.1.2,<11.0.0", False),
    ("4.8.0", "==4.8.0", True),
    ("4.8.1", "!=4.8.1", False),
    ("2.1.0", "2.1.0", True),
    ("2.10.0", ">2.9.0", True),   # numeric, not string, comparison
])
def test_satisfies(version, spec, ok):
    assert cc.satisfies(version, spec) is ok


def run(tmp_path: Path, requirements: str) -> subprocess.CompletedProcess:
    req = tmp_path / "requirements.yml"
    req.write_text(requirements)
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}",
           "ANSIBLE_CONFIG": str(REPO / "ansible.cfg")}
    return subprocess.run([sys.executable, str(SCRIPT), str(req)], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=120, check=False)


def test_the_repo_requirements_are_satisfied_by_the_venv(tmp_path):
    proc = run(tmp_path, (REPO / "requirements.yml").read_text())
    assert proc.returncode == 0, proc.stderr
    assert "ok: amazon.aws " in proc.stdout


def test_a_missing_or_wrong_collection_is_one_error_line_each(tmp_path):
    proc = run(tmp_path, "collections:\n"
                         "  - name: amazon.aws\n    version: '>=99.0.0'\n"
                         "  - name: nobody.nothing\n    version: '*'\n")
    assert proc.returncode == 1
    errors = [line for line in proc.stderr.splitlines() if line.startswith("ERROR: ")]
    assert len(errors) == 2, proc.stderr
    assert "amazon.aws is " in errors[0] and "wants >=99.0.0" in errors[0]
    assert "nobody.nothing (*) is not installed" in errors[1]
