"""Fixtures for driving the REAL amazon.aws.aws_ssm plugin through the local SSM sandbox.

Everything runs as subprocesses from the repo root with the environment `make sandbox-up`
writes to .sandbox/env (AWS profile `atp-sandbox` whose ssm/s3 endpoints are the stand-ins,
sandbox/bin first on PATH for the session-manager-plugin stand-in). Every subprocess has a
timeout and every wait is bounded. Helpers live in ssm_sandbox.py next to this file.
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

from ssm_sandbox import (
    ENV_FILE,
    EVENTS_FILE,
    INSTANCE_ID,
    NOT_UP,
    PROFILE,
    REPO,
    SSM_ENDPOINT,
    STATE_FILE,
    AnsibleRun,
    EventLog,
    docker_exec,
    parse_env_file,
    port_open,
    run_ansible,
    running_instances,
)


@pytest.fixture(scope="session")
def sandbox_env() -> dict[str, str]:
    """Environment for ansible/plugin subprocesses: os.environ + .sandbox/env + test knobs."""
    running = running_instances()
    if not running:
        pytest.fail(f"{NOT_UP} ({STATE_FILE} lists no running instance)", pytrace=False)
    if INSTANCE_ID not in running:
        pytest.fail(f"{NOT_UP} ({INSTANCE_ID} is not running; running: {running})",
                    pytrace=False)
    if not ENV_FILE.is_file():
        pytest.fail(f"{NOT_UP} ({ENV_FILE} missing)", pytrace=False)
    if not port_open(SSM_ENDPOINT):
        pytest.fail(f"{NOT_UP} (SSM stand-in not answering on {SSM_ENDPOINT[0]}:"
                    f"{SSM_ENDPOINT[1]})", pytrace=False)
    env = parse_env_file(ENV_FILE, dict(os.environ))
    plugin = shutil.which("session-manager-plugin", path=env.get("PATH", ""))
    if not plugin or not Path(plugin).resolve().is_relative_to(REPO / "sandbox"):
        pytest.fail(f"{NOT_UP} ({ENV_FILE} does not put the sandbox session-manager-plugin "
                    f"first on PATH; found {plugin!r})", pytrace=False)
    for name in ("AWS_CONFIG_FILE", "AWS_SHARED_CREDENTIALS_FILE"):
        if not Path(env.get(name, "")).is_file():
            pytest.fail(f"{NOT_UP} ({name}={env.get(name)!r} from {ENV_FILE} is not a file)",
                        pytrace=False)
    for name in ("AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_ENDPOINT_URL",
                 "AWS_ENDPOINT_URL_SSM", "AWS_ENDPOINT_URL_S3", "AWS_ACCESS_KEY_ID",
                 "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "ANSIBLE_INVENTORY"):
        env.pop(name, None)  # nothing from the caller's shell may redirect the sandbox
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
    """boto3 clients on profile atp-sandbox (endpoints: the stand-ins).

    The sandbox's AWS_* variables are set only while the clients are built (that is when
    botocore resolves profile, endpoints and credentials), so nothing else in this pytest
    process sees them.
    """
    import boto3

    with pytest.MonkeyPatch.context() as mp:
        for name in ("AWS_CONFIG_FILE", "AWS_SHARED_CREDENTIALS_FILE",
                     "AWS_EC2_METADATA_DISABLED"):
            if name in sandbox_env:
                mp.setenv(name, sandbox_env[name])
        for name in ("AWS_PROFILE", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_SSM",
                     "AWS_ENDPOINT_URL_S3", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY",
                     "AWS_SESSION_TOKEN"):
            mp.delenv(name, raising=False)
        session = boto3.Session(profile_name=PROFILE)
        return {"ssm": session.client("ssm"), "s3": session.client("s3")}


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
