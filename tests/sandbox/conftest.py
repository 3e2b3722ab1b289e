"""Fixtures for driving the REAL amazon.aws.aws_ssm plugin through the local SSM sandbox.

Everything runs as subprocesses from the repo root. The default inventory (inventory/sandbox)
names the sandbox's endpoints itself; the environment built here (atp_sandbox.config.aws_env:
the sandbox's endpoints and fake keys, the session-manager-plugin stand-in first on PATH) is
for the inventories tests write and for direct plugin runs. Every subprocess has a timeout and
every wait is bounded. Helpers live in ssm_sandbox.py next to this file.
"""

from __future__ import annotations

import os
import shutil
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "sandbox"))

from atp_sandbox.config import (
    ACCESS_KEY_ID,
    PLUGIN_STANDIN,
    SECRET_ACCESS_KEY,
    apply_env,
    aws_env,
    endpoints,
)
from ssm_sandbox import (
    EVENTS_FILE,
    INSTANCE_ID,
    NOT_UP,
    REGION,
    REPO,
    SSM_ENDPOINT,
    STATE_FILE,
    AnsibleRun,
    EventLog,
    docker_exec,
    port_open,
    run_ansible,
    running_instances,
)


@pytest.fixture(scope="session")
def sandbox_env() -> dict[str, str]:
    """Environment for ansible/plugin subprocesses: os.environ + the sandbox's AWS + test knobs."""
    running = running_instances()
    if not running:
        pytest.fail(f"{NOT_UP} ({STATE_FILE} lists no running instance)", pytrace=False)
    if INSTANCE_ID not in running:
        pytest.fail(f"{NOT_UP} ({INSTANCE_ID} is not running; running: {running})",
                    pytrace=False)
    if not port_open(SSM_ENDPOINT):
        pytest.fail(f"{NOT_UP} (SSM stand-in not answering on {SSM_ENDPOINT[0]}:"
                    f"{SSM_ENDPOINT[1]})", pytrace=False)
    # nothing from the caller's shell may redirect the sandbox (aws_env drops AWS_PROFILE...)
    env = apply_env(dict(os.environ), aws_env())
    env.pop("ANSIBLE_INVENTORY", None)
    env["PATH"] = f"{PLUGIN_STANDIN.parent}:{env.get('PATH', '')}"
    plugin = shutil.which("session-manager-plugin", path=env["PATH"])
    if not plugin or not Path(plugin).resolve().is_relative_to(REPO / "sandbox"):
        pytest.fail(f"{NOT_UP} (the sandbox session-manager-plugin is not first on PATH; "
                    f"found {plugin!r})", pytrace=False)
    env.update({
        "ANSIBLE_CONFIG": str(REPO / "ansible.cfg"),
        "ANSIBLE_LOAD_CALLBACK_PLUGINS": "1",
        "ANSIBLE_STDOUT_CALLBACK": "ansible.posix.json",
        "ANSIBLE_VERBOSE_TO_STDERR": "1",
        "ANSIBLE_NOCOLOR": "1",
        "ANSIBLE_FORCE_COLOR": "0",
        "PYTHONUNBUFFERED": "1",
    })
    return env


@pytest.fixture(scope="session")
def boto_session(sandbox_env: dict[str, str]) -> dict:
    """boto3 clients on the sandbox's endpoints with its fake keys (explicit, no profile)."""
    import boto3

    urls = endpoints()
    session = boto3.Session(aws_access_key_id=ACCESS_KEY_ID,
                            aws_secret_access_key=SECRET_ACCESS_KEY, region_name=REGION)
    return {"ssm": session.client("ssm", endpoint_url=urls["ssm"]),
            "s3": session.client("s3", endpoint_url=urls["s3"]),
            "ec2": session.client("ec2", endpoint_url=urls["default"])}


@pytest.fixture(scope="session")
def events(sandbox_env: dict[str, str]) -> EventLog:
    return EventLog(EVENTS_FILE)


@pytest.fixture(scope="session")
def ansible(sandbox_env: dict[str, str]) -> Callable[..., AnsibleRun]:
    """ansible(*args, timeout=120, verbose=False) -> AnsibleRun (ad-hoc, json callback)."""

    def run(*args: str, timeout: float = 120, verbose: bool = False) -> AnsibleRun:
        return run_ansible("ansible", sandbox_env, list(args), timeout, verbose)

    return run


@pytest.fixture(scope="session")
def ansible_playbook(sandbox_env: dict[str, str]) -> Callable[..., AnsibleRun]:
    def run(*args: str, timeout: float = 180, verbose: bool = False) -> AnsibleRun:
        return run_ansible("ansible-playbook", sandbox_env, list(args), timeout, verbose)

    return run


@pytest.fixture(scope="module")
def remote_dir(ansible) -> Iterator[str]:
    """A fresh directory on the instance (owned by ssm-user), removed afterwards via ansible."""
    path = f"/tmp/atp-pytest-{os.getpid()}-{time.monotonic_ns()}"
    run = ansible(INSTANCE_ID, "-m", "ansible.builtin.file",
                  "-a", f"path={path} state=directory mode=0755")
    assert run.rc == 0, run.describe()
    yield path
    run = ansible(INSTANCE_ID, "-m", "ansible.builtin.file", "-a", f"path={path} state=absent")
    assert run.rc == 0, run.describe()
    left = docker_exec("test", "-e", path)
    assert left.returncode == 1, f"{path} still exists on {INSTANCE_ID} after cleanup"
