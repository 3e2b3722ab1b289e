"""Helpers for playbook runs against the sandbox (the real aws_ssm plugin, local stand-ins)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SANDBOX = REPO / ".sandbox"
SAMPLE = REPO / "files" / "sample-backend"
APP = "/home/ubuntu/automated-trading-platform"


def sandbox_env() -> dict:
    env = dict(os.environ)
    env_file = SANDBOX / "env"
    if not env_file.exists():
        pytest.fail("sandbox not up: run make sandbox-up")
    for line in env_file.read_text().splitlines():
        key, _, value = line.removeprefix("export ").partition("=")
        env[key] = value.replace("$PATH", env.get("PATH", ""))
    env["PATH"] = f"{REPO / '.venv' / 'bin'}:{env['PATH']}"
    env["ANSIBLE_CONFIG"] = str(REPO / "ansible.cfg")
    env["ANSIBLE_NOCOLOR"] = "1"
    env["ANSIBLE_FORCE_COLOR"] = "0"
    return env


class Events:
    """The sandbox's JSON-lines log, read from a mark."""

    def __init__(self) -> None:
        self.path = SANDBOX / "events.jsonl"
        self.offset = self.path.stat().st_size if self.path.exists() else 0

    def since(self) -> list[dict]:
        if not self.path.exists():
            return []
        with open(self.path, encoding="utf-8") as handle:
            handle.seek(self.offset)
            return [json.loads(line) for line in handle if line.strip()]

    def sessions(self) -> int:
        return sum(1 for e in self.since() if e["kind"] == "start_session")


def playbook(*args: str, timeout: int = 900) -> subprocess.CompletedProcess:
    return subprocess.run([str(REPO / ".venv" / "bin" / "ansible-playbook"), *args],
                          cwd=REPO, env=sandbox_env(), capture_output=True, text=True,
                          timeout=timeout)


def instance_read(container: str, *cmd: str) -> str:
    """Read-only look at an instance for assertions (docker exec, not SSM)."""
    proc = subprocess.run(["docker", "exec", container, *cmd], capture_output=True, text=True,
                          timeout=60, check=False)
    return proc.stdout.strip()


def active_release(container: str) -> str:
    """The release `current` points at on that instance."""
    return instance_read(container, "readlink", f"{APP}/current").removeprefix("releases/")


def ssm_shell(command: str, inventory: Path | None = None,
              check: bool = True) -> subprocess.CompletedProcess:
    """Change an instance the operator's way: an ad-hoc shell command over SSM."""
    target = ["-i", str(inventory)] if inventory else []
    proc = subprocess.run([str(REPO / ".venv/bin/ansible"), *target, "backend", "-b", "-m",
                           "ansible.builtin.shell", "-a", command], cwd=REPO, env=sandbox_env(),
                          capture_output=True, text=True, timeout=300, check=False)
    if check:
        assert proc.returncode == 0, proc.stdout[-1500:] + proc.stderr[-1500:]
    return proc


@pytest.fixture
def events() -> Events:
    return Events()


@pytest.fixture
def sample_copy(tmp_path: Path) -> Path:
    """A scratch copy of the sample backend (not a git checkout) to break on purpose."""
    dest = tmp_path / "backend-src"
    shutil.copytree(SAMPLE, dest)
    return dest
