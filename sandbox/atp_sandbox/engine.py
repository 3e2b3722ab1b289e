"""Find a reachable Docker engine; as root on Debian, install and start one when absent."""

from __future__ import annotations

import os
import shutil
import subprocess
import time

from .config import Paths


class SandboxError(RuntimeError):
    """A one-line, actionable sandbox failure."""


def docker(*args: str, check: bool = True, input: bytes | None = None, timeout: int = 600,
           capture: bool = True) -> subprocess.CompletedProcess:
    proc = subprocess.run(["docker", *args], input=input, timeout=timeout,
                          capture_output=capture)
    if check and proc.returncode != 0:
        err = (proc.stderr or b"").decode(errors="replace").strip().splitlines()
        detail = err[-1] if err else proc.returncode
        raise SandboxError(f"docker {' '.join(args[:3])} failed: {detail}")
    return proc


def engine_reachable() -> bool:
    if not shutil.which("docker"):
        return False
    try:
        return subprocess.run(["docker", "info"], capture_output=True, timeout=20).returncode == 0
    except subprocess.TimeoutExpired:
        return False


def ensure_engine(paths: Paths | None = None, wait_s: int = 90) -> str:
    """Return how the engine was found: 'running' or 'started'."""
    paths = paths or Paths()
    if engine_reachable():
        return "running"
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        raise SandboxError(
            "no Docker engine reachable (`docker info` failed) and not root on Debian: "
            "start Docker yourself (or run as root so the sandbox can install docker.io)")
    if not shutil.which("dockerd"):
        env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
        subprocess.run(["apt-get", "update", "-qq"], check=True, env=env)
        subprocess.run(["apt-get", "install", "-y", "-qq", "docker.io"], check=True, env=env,
                       stdout=subprocess.DEVNULL)
    paths.root.mkdir(parents=True, exist_ok=True)
    log = open(paths.root / "dockerd.log", "ab")  # noqa: SIM115 - handed to the daemon
    subprocess.Popen(["dockerd", "--log-level=warn"], stdout=log, stderr=log,
                     start_new_session=True)
    deadline = time.monotonic() + wait_s
    while time.monotonic() < deadline:
        if engine_reachable():
            return "started"
        time.sleep(1)
    raise SandboxError(f"dockerd did not answer within {wait_s}s: see {paths.root}/dockerd.log")


def privileged_works(image: str) -> bool:
    """`--privileged` fails on some hosts (no CAP_SYS_RESOURCE): detect, don't assume."""
    proc = subprocess.run(["docker", "run", "--rm", "--privileged", "--entrypoint", "true", image],
                          capture_output=True, timeout=120)
    return proc.returncode == 0


CAPSET_FLAGS = [
    "--cap-add=ALL", "--cap-drop=SYS_RESOURCE",
    "--security-opt", "seccomp=unconfined", "--security-opt", "apparmor=unconfined",
    "--security-opt", "systempaths=unconfined",
]
