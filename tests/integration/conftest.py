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


@pytest.fixture
def events() -> Events:
    return Events()


@pytest.fixture
def sample_copy(tmp_path: Path) -> Path:
    """A scratch copy of the sample backend (not a git checkout) to break on purpose."""
    dest = tmp_path / "backend-src"
    shutil.copytree(SAMPLE, dest)
    return dest
