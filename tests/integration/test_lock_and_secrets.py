"""The deploy lock cannot leak or be stolen silently; env values cannot break parsing or leak.

Uses ONE sandbox instance (atp_sandbox.config.instance_ids(3)[0]) through a temporary inventory
(hosts.yml + the sandbox's group_vars). Changes to the instance go through the real aws_ssm
plugin (deploys, playbooks/lock.yml, ad-hoc shell over SSM); `docker exec` is used for
read-only assertions and for the real-compose parse check (a scratch dir under /tmp).
Run under `flock /tmp/atp-sandbox.lock` (one shared sandbox).
"""

from __future__ import annotations

import base64
import importlib.util
import json
import re
import secrets
import shutil
import subprocess
import sys
import time
from datetime import datetime, timedelta, timezone
from functools import partial
from pathlib import Path

import pytest
import yaml

from .conftest import (
    APP,
    REPO,
    SAMPLE,
    Events,
    active_release,
    instance_read,
    playbook,
    sandbox_env,
)
from .conftest import ssm_shell as ssm_shell_on

sys.path.insert(0, str(REPO / "sandbox"))
sys.path.insert(0, str(REPO / "collections"))
from ansible_collections.atp.deploy.plugins.module_utils import dotenv, masking
from atp_sandbox.config import container_name, instance_ids

INSTANCE = instance_ids(3)[0]
CONTAINER = container_name(INSTANCE)
LOCK = f"{APP}/.deploy.lock"
IMAGE_REPO = "automated-trading-platform-backend-aws"
UTC = timezone.utc  # noqa: UP017

on_instance = partial(instance_read, CONTAINER)
current_release = partial(active_release, CONTAINER)


def _unit_table(name: str):
    """The nasty-values table of tests/unit/module_utils/test_dotenv_values.py (one source)."""
    path = REPO / "tests/unit/module_utils/test_dotenv_values.py"
    spec = importlib.util.spec_from_file_location("dotenv_values_table", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return getattr(module, name)


NASTY_VALUES = _unit_table("NASTY_VALUES")
SANDBOX_ENV = yaml.safe_load((REPO / "inventory/sandbox/group_vars/backend/env.yml").read_text())
FAKE_SECRETS = [str(v) for k, v in SANDBOX_ENV["deploy_env_aws"].items()
                if re.search(r"KEY|SECRET", k)]


def words(text: str) -> str:
    """Output with the YAML callback's line wrapping undone."""
    return " ".join(text.replace("''", "'").split())


def sessions(events: Events) -> int:
    return sum(1 for e in events.since()
               if e.get("kind") == "start_session" and e.get("target") == INSTANCE)


def lock_on_instance() -> dict | None:
    text = on_instance("cat", LOCK)
    return json.loads(text) if text.startswith("{") else None


def deploy_log() -> list[dict]:
    text = on_instance("cat", f"{APP}/deploy.log")
    return [json.loads(line) for line in text.splitlines() if line.strip().startswith("{")]


def env_extra(**values: str) -> str:
    """-e JSON for deploy_env_aws: the sandbox's values plus these."""
    return json.dumps({"deploy_env_aws": {**SANDBOX_ENV["deploy_env_aws"], **values}})


# --------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def inventory(tmp_path_factory) -> Path:
    inv = tmp_path_factory.mktemp("lock-inventory")
    (inv / "hosts.yml").write_text(f"backend:\n  hosts:\n    {INSTANCE}:\n")
    (inv / "group_vars").symlink_to(REPO / "inventory/sandbox/group_vars")
    return inv


def deploy(inventory: Path, *extra: str, timeout: int = 900) -> subprocess.CompletedProcess:
    return playbook("-i", str(inventory), "deploy.yml", *extra, timeout=timeout)


def ssm_shell(inventory: Path, command: str) -> subprocess.CompletedProcess:
    return ssm_shell_on(command, inventory)


def write_lock(inventory: Path, record: dict) -> None:
    """Put a lock file on the instance the operator's way (a shell command over SSM)."""
    blob = base64.b64encode(json.dumps(record).encode()).decode()
    ssm_shell(inventory, f"echo {blob} | base64 -d > {LOCK} && chmod 0640 {LOCK}")


def release_lock_by_hand(inventory: Path) -> subprocess.CompletedProcess:
    return playbook("-i", str(inventory), "playbooks/lock.yml", "-e", "lock_action=release",
                    timeout=300)


@pytest.fixture(scope="module")
def baseline(inventory: Path) -> str:
    """The sample deployed and healthy on the instance, no lock left; its release id."""
    if lock_on_instance() is not None:
        release_lock_by_hand(inventory)
    proc = deploy(inventory)
    assert proc.returncode == 0, proc.stdout[-3000:]
    assert lock_on_instance() is None
    return current_release()


@pytest.fixture
def restore(inventory: Path, baseline: str):
    """After the test: no lock, and the sample deployed and healthy again."""
    yield
    if lock_on_instance() is not None:
        release_lock_by_hand(inventory)
    proc = deploy(inventory)
    assert proc.returncode == 0, proc.stdout[-3000:]
    assert lock_on_instance() is None


# --------------------------------------------------------------------------- item 1: values


def compose_config(files: dict[str, str]) -> subprocess.CompletedProcess:
    """`docker compose config --format json` of files in a scratch dir on the instance (the
    instance image's real compose), read-only for the deploy's state."""
    scratch = f"/tmp/atp-dotenv-{secrets.token_hex(4)}"
    try:
        for name, text in files.items():
            subprocess.run(["docker", "exec", "-i", CONTAINER, "sh", "-c",
                            f"mkdir -p {scratch} && cat > {scratch}/{name}"],
                           input=text.encode("utf-8"), check=True, timeout=60)
        return subprocess.run(["docker", "exec", "-w", scratch, CONTAINER, "docker", "compose",
                               "config", "--format", "json"], capture_output=True, text=True,
                              timeout=120, check=False)
    finally:
        subprocess.run(["docker", "exec", CONTAINER, "rm", "-rf", scratch], timeout=60,
                       check=False)


COMPOSE = ("services:\n  app:\n    image: atp-backend-base:bookworm\n"
           "    env_file: [.env.aws]\n")


def test_real_compose_reads_every_encoded_value():
    after = "after-secret-" + secrets.token_hex(4)
    text = "".join(dotenv.render_line(k, v) + dotenv.render_line(f"{k}_NEXT", after)
                   for k, v in NASTY_VALUES.items())
    proc = compose_config({"docker-compose.yml": COMPOSE, ".env.aws": text})
    assert proc.returncode == 0, masking.Masker([after]).text(proc.stderr)
    environment = json.loads(proc.stdout)["services"]["app"]["environment"]
    # compose config writes a literal $ as $$ (its output is a compose file again)
    seen = {k: (v or "").replace("$$", "$") for k, v in environment.items()}
    for key, value in NASTY_VALUES.items():
        assert seen[key] == value, key
        assert seen[f"{key}_NEXT"] == after, key
    assert len(seen) == 2 * len(NASTY_VALUES)


def test_real_compose_parse_error_of_the_old_encoding_is_masked():
    """What printed a secret: KEY='v\\' (the old writer) makes compose quote the NEXT value."""
    secret = "next-secret-" + secrets.token_hex(4)
    broken = "TRAILING='abc\\'\nEXCHANGE_CUSTOM_API_SECRET='" + secret + "'\n"
    proc = compose_config({"docker-compose.yml": COMPOSE, ".env.aws": broken})
    error = proc.stdout + proc.stderr
    assert proc.returncode != 0 and secret in error, "compose no longer quotes the next value"
    masked = masking.Masker().add_pairs(masking.file_pairs(broken)).text(error)
    assert secret not in masked and "line 2: unexpected character" in masked
    assert secret not in masking.Masker().text(error), "the error text is cut even unknown"
    with pytest.raises(dotenv.DotenvError):
        dotenv.render_line("TRAILING", "abc\\")


def test_trailing_backslash_is_refused_before_any_session(inventory, events):
    secret = "sk-live-" + secrets.token_hex(6) + "\\"
    before = on_instance("cat", f"{APP}/deploy.log")
    proc = deploy(inventory, "-e", env_extra(EXCHANGE_CUSTOM_API_SECRET=secret,
                                             CRYPTO_COM_API_SECRET=secret))
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0
    assert ("deploy_env_aws: the value of CRYPTO_COM_API_SECRET ends with a backslash"
            in words(proc.stdout)), proc.stdout[-3000:]
    assert sessions(events) == 0
    assert secret.rstrip("\\") not in out
    assert not any(s in out for s in FAKE_SECRETS)
    assert on_instance("cat", f"{APP}/deploy.log") == before


def test_jinja_in_a_plain_value_is_refused_before_any_session(inventory, events):
    secret = "ab{#x#}" + secrets.token_hex(6)
    proc = deploy(inventory, "-e", env_extra(EXCHANGE_CUSTOM_API_SECRET=secret))
    assert proc.returncode != 0
    out = words(proc.stdout)
    assert "deploy_env_aws.EXCHANGE_CUSTOM_API_SECRET: the value holds Jinja markers" in out
    assert "!unsafe" in out and sessions(events) == 0
    assert secret[7:] not in proc.stdout + proc.stderr


# --------------------------------------------------------------------------- item 2: the lock


def test_lock_status_and_release_by_hand_one_session_each(inventory, baseline, events):
    proc = playbook("-i", str(inventory), "playbooks/lock.yml", timeout=300)
    assert proc.returncode == 0 and f"deploy lock on {APP}: not held" in words(proc.stdout)
    assert sessions(events) == 1
    now = datetime.now(UTC)
    record = {"version": 2, "token": "tok-by-hand-test", "holder": "carol@laptop",
              "release": "0123456789ab", "started": now.strftime("%Y-%m-%dT%H:%M:%SZ"),
              "renewed": now.strftime("%Y-%m-%dT%H:%M:%SZ"), "step": "compose_release",
              "ttl": 1800, "expires": (now + timedelta(seconds=1800)).strftime(
                  "%Y-%m-%dT%H:%M:%SZ")}
    write_lock(inventory, record)
    marks = Events()
    proc = playbook("-i", str(inventory), "playbooks/lock.yml", "-e", "lock_action=status",
                    timeout=300)
    out = words(proc.stdout)
    assert proc.returncode == 0 and "held by carol@laptop since" in out
    assert "at step compose_release" in out and "tok-by-hand-test" not in proc.stdout
    assert sessions(marks) == 1 and lock_on_instance() is not None
    marks = Events()
    proc = release_lock_by_hand(inventory)
    assert proc.returncode == 0 and "released the lock of carol@laptop" in words(proc.stdout)
    assert sessions(marks) == 1 and lock_on_instance() is None
    last = deploy_log()[-1]
    assert last["event"] == "lock_released" and last["lock"]["holder"] == "carol@laptop"


def test_a_killed_deploys_lock_expires_and_the_next_deploy_takes_over(inventory, baseline,
                                                                       restore):
    started = datetime.now(UTC) - timedelta(hours=2)
    stamp = partial(datetime.strftime, format="%Y-%m-%dT%H:%M:%SZ")
    write_lock(inventory, {"version": 2, "token": "tok-killed-run", "holder": "killed@ci",
                           "release": "0123456789ab", "started": stamp(started),
                           "renewed": stamp(started + timedelta(minutes=1)),
                           "step": "compose_release", "ttl": 600,
                           "expires": stamp(started + timedelta(minutes=11))})
    proc = deploy(inventory, "-e", env_extra(LOCK_TEST_NONCE=secrets.token_hex(4)))
    out = words(proc.stdout)
    assert proc.returncode == 0, proc.stdout[-3000:]
    assert f"took over the expired deploy lock of killed@ci (since {stamp(started)}" in out
    assert "tok-killed-run" not in proc.stdout
    assert lock_on_instance() is None
    assert deploy_log()[-1]["result"] == "ok"


def test_a_broken_lock_makes_the_old_holders_next_step_stop(inventory, baseline, restore):
    events = Events()
    holder = subprocess.Popen(
        [str(REPO / ".venv/bin/ansible-playbook"), "-i", str(inventory), "deploy.yml", "-e",
         env_extra(LOCK_TEST_NONCE=secrets.token_hex(4))],
        cwd=REPO, env=sandbox_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        text=True)
    broken = None
    try:
        deadline = time.monotonic() + 180
        while holder.poll() is None and time.monotonic() < deadline:
            lock = lock_on_instance()
            if lock and lock.get("token") != "tok-breaker":
                now = datetime.now(UTC)
                broken = {"version": 2, "token": "tok-breaker", "holder": "bob@other",
                          "release": "fedcba987654",
                          "started": now.strftime("%Y-%m-%dT%H:%M:%SZ"),
                          "renewed": now.strftime("%Y-%m-%dT%H:%M:%SZ"), "step": "release_state",
                          "ttl": 1800, "expires": (now + timedelta(seconds=1800)).strftime(
                              "%Y-%m-%dT%H:%M:%SZ")}
                write_lock(inventory, broken)  # what deploy_break_lock of another run does
                break
            time.sleep(0.2)
        out = holder.communicate(timeout=600)[0]
    finally:
        if holder.poll() is None:
            holder.kill()
    assert broken is not None, "the deploy never took the lock"
    text = words(out)
    assert holder.returncode != 0, out[-3000:]
    assert f"deploy lock lost: now held by bob@other since {broken['started']}" in text
    assert "this run stops without changing anything else" in text
    assert "no automatic rollback: this run lost the deploy lock" in text
    assert "rolled back to" not in text and "health after rollback" not in text
    assert lock_on_instance()["token"] == "tok-breaker", "the old holder left the lock alone"
    last = deploy_log()[-1]
    assert last["result"] == "failed" and last["lock"].startswith("deploy lock lost")
    print(f"broken lock noticed after {sessions(events)} sessions: "
          f"{text[text.rfind('deploy of '):][:500]}")


def test_a_failed_automatic_rollback_still_releases_the_lock_and_logs(inventory, baseline,
                                                                       restore, tmp_path):
    previous = current_release()
    # The previous release's image disappears and cannot be rebuilt: the rollback must fail.
    ssm_shell(inventory, f"docker rmi -f {IMAGE_REPO}:{previous} && "
                         f"echo 'RUN exit 3' >> {APP}/releases/{previous}/backend/Dockerfile")
    src = tmp_path / "smoke-fails"
    shutil.copytree(SAMPLE, src)
    with open(src / "backend/app/__init__.py", "a", encoding="utf-8") as handle:
        handle.write(f"# failed rollback {time.time()}\n")
    failing = json.dumps({"smoke_check_checks": [
        {"name": "health", "path": "/api/health", "expect_status": 418}]})
    try:
        # Recreate mode: the failing release gets the port, so the deploy rolls back by
        # itself (zero-downtime would discard it before any traffic: nothing to roll back).
        proc = deploy(inventory, "-e", f"backend_src_dir={src}", "-e", failing,
                      "-e", "smoke_timeout=20", "-e", "deploy_zero_downtime=false")
    finally:
        ssm_shell(inventory, f"sed -i '$ d' {APP}/releases/{previous}/backend/Dockerfile")
    text = words(proc.stdout)
    assert proc.returncode != 0
    assert f"the automatic rollback to {previous} FAILED" in text, proc.stdout[-4000:]
    assert lock_on_instance() is None, "the lock was released"
    last = deploy_log()[-1]
    assert last["result"] == "failed" and f"rollback to {previous} FAILED" in last["error"]
    assert f"rollback to {previous} FAILED" in proc.stdout.split("PLAY RECAP")[-1]
    print(text[text.rfind("deploy of "):][:700])


# --------------------------------------------------------------------------- item 3: instance


def test_a_changed_project_name_is_refused_before_the_lock(inventory, baseline, events):
    before = on_instance("cat", f"{APP}/deploy.log")
    active = current_release()
    proc = deploy(inventory, "-e", "deploy_compose_project=atp-renamed")
    text = words(proc.stdout)
    assert proc.returncode != 0
    assert ("compose project mismatch: deploy_compose_project is 'atp-renamed' but the backend "
            "and its database on the instance belong to project 'automated-trading-platform'"
            in text), proc.stdout[-3000:]
    assert "-e deploy_rename_project=true" in text
    assert sessions(events) == 1, "refused in the plan call"
    assert lock_on_instance() is None and current_release() == active
    assert on_instance("cat", f"{APP}/deploy.log") == before


def test_an_unknown_owner_is_refused_before_the_lock(inventory, baseline, events):
    proc = deploy(inventory, "-e", "deploy_app_owner=nosuchowner")
    assert proc.returncode != 0
    assert ("deploy_app_owner 'nosuchowner' does not exist on the instance"
            in words(proc.stdout)), proc.stdout[-3000:]
    assert sessions(events) == 1 and lock_on_instance() is None
