"""The deploy runs as a NON-ROOT controller user: nothing on the controller escalates.

A system user (no sudo on this machine at all, no password, stdin closed) with its own HOME and
its own copy of the repo runs `ansible-playbook deploy.yml` against the sandbox. Any controller
task that inherited the play's `become: true` would try sudo locally and fail the run.
Test-infrastructure grants only: the docker group (the session-manager-plugin stand-in reaches
the instance containers with `docker exec`; the real plugin talks to AWS) and read access to the
sandbox's state (ATP_SANDBOX_DIR).
"""

from __future__ import annotations

import grp
import os
import pwd
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import pytest
from atp_sandbox.config import FIRST_INSTANCE_ID, container_name

from .conftest import APP, REPO, SANDBOX, active_release, instance_read

USER = "atp-operator"
SITE_PACKAGES = REPO / ".venv/lib/python3.11/site-packages"
SYSTEM_PYTHON = "/usr/bin/python3"
CONTAINER = container_name(FIRST_INSTANCE_ID)
COPY_IGNORE = shutil.ignore_patterns(".venv", ".sandbox", ".git", ".artifacts", "reports",
                                     "__pycache__", ".pytest_cache", ".ruff_cache", ".cache",
                                     "*.retry")


def ensure_user() -> pwd.struct_passwd:
    try:
        return pwd.getpwnam(USER)
    except KeyError:
        groups = ["-G", "docker"] if _group_exists("docker") else []
        subprocess.run(["useradd", "--system", "--no-create-home", "--home-dir", "/nonexistent",
                        "--shell", "/usr/sbin/nologin", *groups, USER], check=True)
        return pwd.getpwnam(USER)


def _group_exists(name: str) -> bool:
    try:
        grp.getgrnam(name)
        return True
    except KeyError:
        return False


@pytest.fixture
def operator_workspace():
    if os.geteuid() != 0:
        pytest.fail("this test creates a user: run the integration tests as root (CI does)")
    user = ensure_user()
    version = subprocess.run([SYSTEM_PYTHON, "-c", "import sys; print(sys.version_info[:2])"],
                             capture_output=True, text=True, check=False).stdout.strip()
    if version != "(3, 11)":
        pytest.fail(f"expected {SYSTEM_PYTHON} 3.11 (the venv's packages are built for it), "
                    f"saw {version or 'none'}: install python3.11")
    base = Path(tempfile.mkdtemp(prefix="atp-nonroot-"))
    os.chmod(base, 0o755)
    home, repo = base / "home", base / "repo"
    home.mkdir()
    # a real operator has a home of their own: ansible expands ~ (its local temp dir) from it
    subprocess.run(["usermod", "--home", str(home), USER], check=True, timeout=60)
    shutil.copytree(REPO, repo, ignore=COPY_IGNORE, symlinks=True)
    for path in (base, home, *home.rglob("*"), repo, *repo.rglob("*")):
        os.lchown(path, user.pw_uid, user.pw_gid)
    yield user, home, repo
    shutil.rmtree(base, ignore_errors=True)


def test_deploy_as_a_non_root_operator_never_escalates_locally(operator_workspace):
    user, home, repo = operator_workspace
    with open(repo / "files/sample-backend/backend/app/__init__.py", "a", encoding="utf-8") as fh:
        # a new release: recorded with its operator
        fh.write(f"# deployed by {USER} {time.time()}\n")
    # The repo venv's interpreter lives under /root (0700) on these machines: the user runs the
    # venv's packages with the system Python of the same version (an operator has their own
    # venv). Nothing else of root's is on its PATH.
    env = {"PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": str(home),
           "PYTHONPATH": str(SITE_PACKAGES),
           "USER": USER, "LOGNAME": USER, "LANG": "C.UTF-8",
           "ANSIBLE_CONFIG": str(repo / "ansible.cfg"), "ANSIBLE_NOCOLOR": "1",
           # the sandbox's state (instances, sessions), read where the stand-ins keep it
           "ATP_SANDBOX_DIR": str(SANDBOX)}
    started = time.monotonic()
    runuser = shutil.which("runuser") or "/usr/sbin/runuser"
    # --preserve-environment: this env, its HOME included (runuser would reset HOME)
    proc = subprocess.run([runuser, "--preserve-environment", "-u", USER, "--", SYSTEM_PYTHON,
                           str(REPO / ".venv/bin/ansible-playbook"), "deploy.yml"], cwd=repo,
                          env=env, stdin=subprocess.DEVNULL, capture_output=True, text=True,
                          timeout=900, check=False)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-4000:]
    print(f"non-root deploy: {time.monotonic() - started:.1f}s")
    assert "sudo" not in out.lower() and "password" not in out.lower()
    # the controller-side work happened as that user, in its HOME: the release archive
    archives = [p for p in (home / ".cache/atp-deploy").rglob("*") if p.is_file()]
    assert archives and all(p.stat().st_uid == user.pw_uid for p in archives)
    release = active_release(CONTAINER)
    assert proc.stdout.rstrip().splitlines()[-1] == f"{FIRST_INSTANCE_ID}: new release {release}"
    last = instance_read(CONTAINER, "tail", "-1", f"{APP}/deploy.log")
    assert release in last and USER in last
