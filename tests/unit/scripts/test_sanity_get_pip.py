"""scripts/sanity_get_pip.py: the offline pip bootstrap make sanity gives ansible-test."""

from __future__ import annotations

import os
import subprocess
import sys
import venv
from pathlib import Path

REPO = Path(__file__).resolve().parents[3]
SCRIPT = REPO / "scripts/sanity_get_pip.py"


def install(home: Path) -> subprocess.CompletedProcess:
    env = dict(os.environ, HOME=str(home))
    return subprocess.run([sys.executable, str(SCRIPT), "--install-cache"], env=env,
                          capture_output=True, text=True, timeout=60, check=False)


def test_the_script_goes_where_ansible_test_looks_for_it(tmp_path):
    from ansible_test._internal.python_requirements import get_venv_packages

    python = type("P", (), {"version": f"{sys.version_info[0]}.{sys.version_info[1]}"})
    version = get_venv_packages(python)["pip"]
    run = install(tmp_path)
    assert run.returncode == 0, run.stderr
    cached = tmp_path / ".ansible/test/cache" / f"get_pip_{version.replace('.', '_')}.py"
    assert cached.read_text() == SCRIPT.read_text()
    assert "offline pip bootstrap" in run.stdout


def test_a_cached_script_is_kept(tmp_path):
    assert install(tmp_path).returncode == 0
    cached = next((tmp_path / ".ansible/test/cache").glob("get_pip_*.py"))
    cached.write_text("# the real get-pip.py\n")
    run = install(tmp_path)
    assert run.returncode == 0 and "cached, kept" in run.stdout
    assert cached.read_text() == "# the real get-pip.py\n"


def test_an_older_copy_of_the_stand_in_is_refreshed(tmp_path):
    assert install(tmp_path).returncode == 0
    cached = next((tmp_path / ".ansible/test/cache").glob("get_pip_*.py"))
    cached.write_text(SCRIPT.read_text().replace("ensurepip", "something-older"))
    run = install(tmp_path)
    assert run.returncode == 0 and "offline pip bootstrap" in run.stdout
    assert cached.read_text() == SCRIPT.read_text()


def test_a_python_without_ensurepip_gets_one_line_saying_what_to_install(tmp_path):
    fake = tmp_path / "python"
    fake.write_text("#!/bin/sh\nexit 1\n")  # `python -m ensurepip` fails, as on bare Debian
    fake.chmod(0o755)
    code = ("import runpy, sys; sys.executable = sys.argv.pop(1); "
            f"runpy.run_path({str(SCRIPT)!r}, run_name='__main__')")
    run = subprocess.run([sys.executable, "-c", code, str(fake), "pip==24.2"],
                         capture_output=True, text=True, timeout=60, check=False)
    assert run.returncode == 1
    assert run.stderr.strip() == (
        f"sanity_get_pip: expected {fake} to have ensurepip (the pip wheel bundled with "
        "Python), it has not: install python3-venv (Debian) or use a Python built with "
        "ensurepip")


def test_it_bootstraps_pip_into_a_venv_without_pip_offline(tmp_path):
    """As ansible-test runs it: the venv's python, get-pip arguments, no index needed for the
    pip that ensurepip bundles (the pin is that version)."""
    venv.create(tmp_path / "v", with_pip=False)
    python = tmp_path / "v/bin/python"
    bundled = subprocess.run([sys.executable, "-c", "import ensurepip; print(ensurepip.version())"],
                             capture_output=True, text=True, check=True).stdout.strip()
    run = subprocess.run([str(python), str(SCRIPT), "--disable-pip-version-check", "--no-index",
                          f"pip=={bundled}", "--no-setuptools", "--no-wheel"],
                         capture_output=True, text=True, timeout=180, check=False)
    assert run.returncode == 0, run.stderr
    listed = subprocess.run([str(python), "-m", "pip", "list", "--format=freeze"],
                            capture_output=True, text=True, timeout=60, check=True).stdout
    assert f"pip=={bundled}" in listed
    assert "setuptools==" not in listed  # --no-setuptools honoured
