"""A release is code + env, over SSM on one sandbox instance (the real aws_ssm plugin).

Uses ONLY sandbox instance instance_ids(3)[1] through a temporary inventory (hosts.yml + the
sandbox's group_vars); its app dir is cleaned once at the start. Changes go through the
playbooks; `docker exec` into the instance is used only for read-only assertions.

- a deploy changing code AND env that fails its smoke checks is rolled back, env included: the
  env files `current` reaches are byte for byte the old ones (sha256);
- a deploy changing ONLY the env is a new release (same code, the built image reused, no build)
  that is smoke-checked and, failing, rolled back, env included;
- rollback.yml after redeploying older content picks the release that was live before the
  current one (deploy.log order), not the newest id.
"""

from __future__ import annotations

import json
import re
import shutil
import time
from functools import partial
from pathlib import Path

import pytest
from atp_sandbox.config import container_name, instance_ids

from .conftest import APP, SAMPLE, Events, active_release, instance_read, playbook
from .conftest import ssm_shell as ssm_shell_on

INSTANCE = instance_ids(3)[1]
CONTAINER = container_name(INSTANCE)
REPO = "automated-trading-platform-backend-aws"
ENV_FILES = (".env", ".env.aws")
# An env without exchange credentials: the snapshot check fails "Missing API credentials".
NO_CREDENTIALS = ["-e", "deploy_env_replace=true", "-e", "deploy_allow_missing_credentials=true",
                  "-e", json.dumps({"deploy_env_aws": {"ENVIRONMENT": "aws",
                                                       "PORTFOLIO_DEBUG": "1"}}),
                  "-e", "smoke_timeout=30"]

on_instance = partial(instance_read, CONTAINER)
current = partial(active_release, CONTAINER)


def deploy(inventory: Path, *extra: str):
    return playbook("-i", str(inventory), "deploy.yml", *extra)


def ok(proc) -> None:
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-1500:]


def words(proc) -> str:
    """stdout with the YAML callback's line wrapping undone."""
    return " ".join(proc.stdout.split())


def env_hashes() -> dict[str, str]:
    """sha256 of each env file the active release reaches (through its links)."""
    out = on_instance("sh", "-c", f"cd {APP}/current && sha256sum {' '.join(ENV_FILES)}")
    hashes = {}
    for line in out.splitlines():
        digest, name = line.split()
        hashes[name] = digest
    assert sorted(hashes) == sorted(ENV_FILES), out
    return hashes


def env_set_of(release: str) -> str:
    """The env set a release links (from its .env link)."""
    target = on_instance("readlink", f"{APP}/releases/{release}/.env")
    match = re.fullmatch(r"\.\./\.\./shared/env/([0-9a-f]{12}(?:-\d+)?)/\.env", target)
    assert match, f"{release}/.env -> {target!r} is not a link into an env set"
    return match.group(1)


def image_id(release: str) -> str:
    return on_instance("docker", "image", "inspect", "-f", "{{.Id}}", f"{REPO}:{release}")


def code_hash(release: str) -> str:
    return on_instance("sha256sum", f"{APP}/releases/{release}/.release-manifest.json").split()[0]


def backend() -> str:
    names = on_instance("docker", "ps", "--format", "{{.Names}}", "--filter",
                        "label=com.docker.compose.service=backend-aws").split()
    assert len(names) == 1, names
    return names[0]


def container_has(name: str) -> bool:
    """The running backend has a non-empty variable (its value never leaves the instance)."""
    return on_instance("docker", "exec", backend(), "sh", "-c",
                       f'test -n "${name}" && echo yes') == "yes"


def last_log() -> dict:
    return json.loads(on_instance("tail", "-n1", f"{APP}/deploy.log"))


def variant(tmp: Path, name: str) -> Path:
    dest = tmp / name
    shutil.copytree(SAMPLE, dest)
    with open(dest / "backend/app/__init__.py", "a", encoding="utf-8") as handle:
        handle.write(f"# {name} {time.time()}\n")
    return dest


@pytest.fixture(scope="module")
def inventory(tmp_path_factory) -> Path:
    """ONE instance; its app dir cleaned (the operator's way, over SSM), then a healthy deploy
    of the sample."""
    inv = tmp_path_factory.mktemp("release-env-inventory")
    # Recreate mode: these tests are about the automatic rollback, code AND env (with
    # zero-downtime, the default, a failing release is discarded before it gets traffic:
    # tests/integration/test_zero_downtime.py).
    (inv / "hosts.yml").write_text(f"backend:\n  hosts:\n    {INSTANCE}:\n"
                                   "      deploy_zero_downtime: false\n")
    (inv / "group_vars").symlink_to(Path(__file__).resolve().parents[2]
                                    / "inventory/sandbox/group_vars")
    ssm_shell_on(f"rm -rf {APP} {APP}.pre-ansible-* {APP}.adopting-*", inv)
    ok(deploy(inv))
    return inv


@pytest.fixture
def healthy(inventory: Path) -> str:
    """The sample with its full env is active (redeployed when an earlier test left another)."""
    ok(deploy(inventory))
    assert container_has("EXCHANGE_CUSTOM_API_KEY")
    return current()


def test_code_and_env_change_failing_smoke_is_rolled_back_env_included(inventory, healthy,
                                                                      tmp_path):
    before = env_hashes()
    before_set = env_set_of(healthy)
    proc = deploy(inventory, "-e", f"backend_src_dir={variant(tmp_path, 'code-and-env')}",
                  *NO_CREDENTIALS)
    text = words(proc)
    assert proc.returncode != 0, text[-3000:]
    assert "Missing API credentials" in text, text[-3000:]
    assert f"rolled back to {healthy}" in text and "health after rollback: ok" in text
    # code AND env back: the env files current reaches are byte for byte the old ones
    assert current() == healthy
    assert env_hashes() == before and env_set_of(healthy) == before_set
    assert container_has("EXCHANGE_CUSTOM_API_KEY")
    assert container_has("EXCHANGE_CUSTOM_API_SECRET")
    record = last_log()
    assert record["result"] == "failed" and f"rolled back to {healthy}" in record["error"]
    # the failed release had its own code and its own env set (without the credentials)
    failed = record["release"]
    assert failed != healthy and code_hash(failed) != code_hash(healthy)
    assert env_set_of(failed) != before_set
    assert "EXCHANGE_CUSTOM_API_KEY" not in on_instance("cat", f"{APP}/releases/{failed}/.env.aws")


def test_env_only_change_is_a_new_release_rolled_back_env_included(inventory, healthy):
    before = env_hashes()
    events = Events()
    proc = deploy(inventory, *NO_CREDENTIALS)
    text = words(proc)
    assert proc.returncode != 0, text[-3000:]
    assert "Missing API credentials" in text, text[-3000:]
    assert f"rolled back to {healthy}" in text and "health after rollback: ok" in text
    assert "not touched" not in text  # an env-only change is activated, checked, undone
    assert current() == healthy and env_hashes() == before
    assert container_has("EXCHANGE_CUSTOM_API_KEY")
    failed = last_log()["release"]
    assert last_log()["result"] == "failed" and failed != healthy
    # same code, its own env set, the image built for that code reused (tagged, no build)
    assert code_hash(failed) == code_hash(healthy)
    assert env_set_of(failed) != env_set_of(healthy)
    assert image_id(failed) == image_id(healthy)
    assert "docker build" not in text
    # no upload (release_unpack never ran): the code was on the instance already; env_files
    # made the release dir from it and wrote the new env set
    modules = {m for e in events.since() if e.get("kind") == "s3" and INSTANCE in e.get("key", "")
               for m in re.findall(r"AnsiballZ_(\w+)\.py", e.get("key", ""))}
    assert "release_unpack" not in modules and "env_files" in modules, modules


def test_rollback_after_redeploying_older_content_picks_the_release_live_before(inventory,
                                                                              healthy,
                                                                              tmp_path):
    ids = {}
    for name in ("a", "b", "c"):
        ok(deploy(inventory, "-e", f"backend_src_dir={variant(tmp_path, name)}"))
        ids[name] = current()
    assert ids["a"] < ids["b"] < ids["c"]
    # older content again: B's release re-activated, then A's (their older ids)
    for name in ("b", "a"):
        ok(deploy(inventory, "-e", f"backend_src_dir={tmp_path / name}"))
        assert current() == ids[name]
    listing = playbook("-i", str(inventory), "playbooks/rollback.yml", "-e", "rollback_list=true")
    ok(listing)
    assert current() == ids["a"]
    proc = playbook("-i", str(inventory), "playbooks/rollback.yml")
    ok(proc)
    # live before A was B (deploy.log order); the newest id, C, would be wrong
    assert current() == ids["b"] != ids["c"]
    assert on_instance("docker", "inspect", "-f", "{{.Config.Image}}",
                       backend()).endswith(":" + ids["b"])
    record = last_log()
    assert (record["result"], record["release"]) == ("rolled_back", ids["b"])
    assert on_instance("curl", "-s", "http://127.0.0.1:8002/api/health").startswith(
        '{"status":"ok"')
