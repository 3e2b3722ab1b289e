"""Helpers for the atp.deploy module tests: run a module's main(), install the fake docker."""

from __future__ import annotations

import contextlib
import io
import json
import os
import sys
from pathlib import Path

import pytest
from ansible.module_utils.testing import patch_module_args

FAKE_DOCKER = Path(__file__).with_name("fake_docker.py")


def run_module(module, args: dict, check_mode: bool = False) -> dict:
    """Run module.main() with args; return the JSON it printed (exit_json or fail_json)."""
    if check_mode:
        args = {**args, "_ansible_check_mode": True}
    buf = io.StringIO()
    with patch_module_args(args), contextlib.redirect_stdout(buf), \
            pytest.raises(SystemExit):
        module.main()
    return json.loads(buf.getvalue())


def default_state() -> dict:
    return {
        "info": {"rc": 0, "version": "26.1.5"},
        "compose": {"rc": 0, "version": "2.26.1"},
        "images": {},
        "containers": [],
        "build": {"rc": 0, "output": "#1 building\n#2 done"},
        "up": {"rc": 0, "output": "Container started"},
    }


class FakeDocker:
    """A fake docker CLI first on PATH; .state is read/written as JSON, .calls are the argvs."""

    def __init__(self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
        bindir = tmp_path / "fakebin"
        bindir.mkdir()
        script = bindir / "docker"
        script.write_text(f"#!{sys.executable}\n" + FAKE_DOCKER.read_text())
        script.chmod(0o755)
        self.state_file = tmp_path / "docker-state.json"
        self.log_file = tmp_path / "docker-calls.jsonl"
        self.log_file.write_text("")
        self.state = default_state()
        monkeypatch.setenv("PATH", f"{bindir}{os.pathsep}{os.environ.get('PATH', '')}")
        monkeypatch.setenv("FAKE_DOCKER_STATE", str(self.state_file))
        monkeypatch.setenv("FAKE_DOCKER_LOG", str(self.log_file))
        self.save()

    def save(self) -> None:
        self.state_file.write_text(json.dumps(self.state))

    def load(self) -> dict:
        self.state = json.loads(self.state_file.read_text())
        return self.state

    @property
    def calls(self) -> list[dict]:
        lines = self.log_file.read_text().splitlines()
        return [json.loads(line) for line in lines if line.strip()]

    @property
    def argvs(self) -> list[list[str]]:
        return [c["argv"] for c in self.calls]

    def add_container(self, **kwargs) -> dict:
        container = {
            "id": kwargs.get("id", "c0ffee"),
            "name": kwargs.get("name", "automated-trading-platform-backend-aws-1"),
            "image": kwargs.get("image", ""),
            "image_id": kwargs.get("image_id", "sha256:old"),
            "running": kwargs.get("running", True),
            "project": kwargs.get("project", "automated-trading-platform"),
            "service": kwargs.get("service", "backend-aws"),
            "ports": kwargs.get("ports", [8002]),
        }
        self.state["containers"].append(container)
        self.save()
        return container


@contextlib.contextmanager
def chdir(path: Path):
    old = os.getcwd()
    os.chdir(path)
    try:
        yield
    finally:
        os.chdir(old)
