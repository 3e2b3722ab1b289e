"""Fixtures for the inventory tests: a moto EC2 on a free loopback port (no AWS, no sandbox)."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[3]
if str(REPO / "sandbox") not in sys.path:
    sys.path.insert(0, str(REPO / "sandbox"))

from atp_sandbox import config, ec2  # noqa: E402


@pytest.fixture(scope="module")
def moto_port() -> Iterator[int]:
    """moto in this process (like the stand-ins run it), with the sandbox's instance-id hook."""
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    port = server.get_host_and_port()[1]
    ec2.install_id_hook()
    _reset(port)
    yield port
    _reset(port)
    server.stop()


def _reset(port: int) -> None:
    request = urllib.request.Request(f"http://127.0.0.1:{port}/moto-api/reset", method="POST")
    with urllib.request.urlopen(request, timeout=10):
        pass


@pytest.fixture
def sandbox_moto(moto_port, monkeypatch) -> int:
    """atp_sandbox's endpoints() pointed at this moto (as MOTO_PORT would be)."""
    monkeypatch.setattr(config, "MOTO_PORT", moto_port)
    _reset(moto_port)
    return moto_port


def clean_env(home: Path) -> dict[str, str]:
    """A new shell: no AWS_* and no ANSIBLE_* from the caller, the repo's venv first on PATH."""
    home.mkdir(parents=True, exist_ok=True)
    return {"PATH": f"{REPO / '.venv' / 'bin'}:/usr/local/bin:/usr/bin:/bin",
            "HOME": str(home), "LANG": "C.UTF-8", "ANSIBLE_NOCOLOR": "1"}


def ansible_inventory(*args: str, env: dict[str, str],
                      timeout: int = 120) -> subprocess.CompletedProcess:
    return subprocess.run([str(REPO / ".venv" / "bin" / "ansible-inventory"), *args],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=timeout,
                          check=False)


def _plain(obj: dict):
    """ansible-inventory marks values from EC2 as unsafe ({"__ansible_unsafe": value})."""
    return obj["__ansible_unsafe"] if set(obj) == {"__ansible_unsafe"} else obj


def host_vars(inventory: Path, host: str, env: dict[str, str], *extra: str) -> dict:
    proc = ansible_inventory("-i", str(inventory), "--host", host, *extra, env=env)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    return json.loads(proc.stdout, object_hook=_plain)


def listed(inventory: Path, env: dict[str, str], *extra: str) -> dict:
    proc = ansible_inventory("-i", str(inventory), "--list", *extra, env=env)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    return json.loads(proc.stdout, object_hook=_plain)


def copy_inventory(name: str, dest: Path, moto_port: int) -> Path:
    """inventory/<name> copied to ``dest`` with its aws_ec2 source (and the sandbox's endpoint
    file) aimed at the test's moto: only endpoint and key lines change."""
    shutil.copytree(REPO / "inventory" / name, dest, symlinks=False)
    source = dest / "aws_ec2.yml"
    lines = [line for line in source.read_text().splitlines()
             if not line.startswith(("endpoint_url:", "access_key:", "secret_key:"))]
    lines += [f"endpoint_url: http://127.0.0.1:{moto_port}", "access_key: AKIAUNITTEST0000000",
              "secret_key: unit-test-not-a-secret"]
    source.write_text("\n".join(lines) + "\n")
    for endpoints_file in dest.glob("*.atp_sandbox_aws.yml"):
        endpoints_file.write_text(re.sub(r"http://127\.0\.0\.1:\d+",
                                         f"http://127.0.0.1:{moto_port}",
                                         endpoints_file.read_text()))
    return dest


def encrypt(path: Path, text: str, password_file: Path, env: dict[str, str]) -> None:
    path.write_text(text)
    proc = subprocess.run([str(REPO / ".venv" / "bin" / "ansible-vault"), "encrypt",
                           "--vault-password-file", str(password_file), str(path)],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=60,
                          check=False)
    assert proc.returncode == 0, proc.stderr
    assert path.read_text().startswith("$ANSIBLE_VAULT;"), path.read_text()[:40]


def alive_pid() -> int:
    return os.getpid()


def dead_pid() -> int:
    proc = subprocess.Popen(["true"])
    proc.wait()
    return proc.pid
