"""The inventories: what the production aws_ec2 source selects (against moto, no AWS), that the
sandbox source is the production one with only endpoint and keys changed, that a vault file
hides no variable, and that nothing of the sandbox leaks into a shell or the production path."""

from __future__ import annotations

import re
import shlex
import shutil
from pathlib import Path

import pytest
import yaml
from atp_sandbox import cli, config, ec2

from .conftest import (
    REPO,
    alive_pid,
    ansible_inventory,
    clean_env,
    copy_inventory,
    dead_pid,
    encrypt,
    host_vars,
    listed,
)

INVENTORY = REPO / "inventory"
SANDBOX_ONLY_KEYS = {"endpoint_url", "access_key", "secret_key"}
CONNECTION_VARS = {
    "ansible_connection": "amazon.aws.aws_ssm",
    "ansible_aws_ssm_region": "ap-southeast-1",
    "ansible_become_method": "ansible.builtin.sudo",
    "ansible_python_interpreter": "/usr/bin/python3",
}
VAULT_TEXT = ("vault_probe: from-the-vault\n"
              "deploy_env_aws: {ENVIRONMENT: aws, EXCHANGE_CUSTOM_API_KEY: vaulted-k,"
              " EXCHANGE_CUSTOM_API_SECRET: vaulted-s}\n")


def load(path: Path) -> dict:
    return yaml.safe_load(path.read_text())


@pytest.fixture
def registered(sandbox_moto, tmp_path) -> list[str]:
    """moto as a 3-instance sandbox with fleet 2: [backend running, backend STOPPED, spare]."""
    paths = config.Paths(root=tmp_path / "state")
    ids = config.instance_ids(3)
    config.save_state({"fleet": 2, "instances": {
        ids[0]: {"pid": alive_pid()}, ids[1]: {"pid": dead_pid()}, ids[2]: {"pid": alive_pid()}}},
        paths)
    ec2.Registry(paths).sync()
    return ids


# --------------------------------------------------------------------------- selection


@pytest.mark.parametrize("name", ["production", "sandbox"])
def test_source_lists_only_running_tagged_backends_by_instance_id(name, registered, sandbox_moto,
                                                                  tmp_path):
    inventory = copy_inventory(name, tmp_path / name, sandbox_moto)
    data = listed(inventory, clean_env(tmp_path / "home"))
    everything = ec2.describe()
    hosts = set(data["_meta"]["hostvars"])
    # moto holds 5 instances: a backend (running), a backend stopped, a spare, two decoys
    assert len(everything) == 5
    assert hosts == {registered[0]}
    assert data["backend"]["hosts"] == [registered[0]]
    host = data["_meta"]["hostvars"][registered[0]]
    assert host["ansible_aws_ssm_instance_id"] == registered[0]
    assert host["ansible_aws_ssm_region"] == "ap-southeast-1"  # composed from ec2_placement
    assert host["ec2_tags"]["Role"] == "backend"
    assert not [k for k in host if k in ("tags", "placement", "instance_id", "state")]


def test_sandbox_inventory_names_the_plugin_stand_in(registered, sandbox_moto, tmp_path):
    inventory = copy_inventory("sandbox", tmp_path / "sandbox", sandbox_moto)
    # a shell set up for production: without the endpoints file (parsed first) taking these
    # out, aws_ec2 would stop at "Passing both a profile and access tokens"
    env = {**clean_env(tmp_path / "home"), "AWS_PROFILE": "trading-ops-not-here",
           "AWS_ENDPOINT_URL": "http://127.0.0.1:9", "AWS_CONFIG_FILE": "/nonexistent"}
    found = host_vars(inventory, registered[0], env)
    assert found["ansible_aws_ssm_plugin"] == str(config.PLUGIN_STANDIN)
    assert found["ansible_aws_ssm_access_key_id"] == config.ACCESS_KEY_ID


def test_sandbox_inventory_fails_loudly_when_the_sandbox_is_down(tmp_path):
    inventory = tmp_path / "sandbox"
    shutil.copytree(INVENTORY / "sandbox", inventory)
    endpoints = inventory / "00-endpoints.atp_sandbox_aws.yml"
    endpoints.write_text(re.sub(r"127\.0\.0\.1:4580", "127.0.0.1:9", endpoints.read_text()))
    proc = ansible_inventory("-i", str(inventory), "--list", env=clean_env(tmp_path / "home"))
    assert proc.returncode != 0
    assert "expected the sandbox's SSM endpoint to answer at http://127.0.0.1:9" in proc.stderr
    assert "make sandbox-up" in proc.stderr


# --------------------------------------------------------------------------- vault


@pytest.mark.parametrize("name", ["production", "sandbox", "examples/production-static"])
def test_a_vault_file_hides_no_variable(name, sandbox_moto, registered, tmp_path):
    if name.startswith("examples"):
        inventory = tmp_path / "static"
        shutil.copytree(INVENTORY / name, inventory)  # the group_vars link becomes a copy
        host = "i-08726dc37133b2454"
    else:
        inventory = copy_inventory(name, tmp_path / "inv", sandbox_moto)
        host = registered[0]
    env = clean_env(tmp_path / "home")
    before = host_vars(inventory, host, env)
    for name_, value in CONNECTION_VARS.items():
        assert before.get(name_) == value, (name_, before)
    assert "ansible_aws_ssm_bucket_name" in before and "deploy_environment" in before

    password = tmp_path / "vault-pass"
    password.write_text("unit-test-vault-password\n")
    encrypt(inventory / "group_vars" / "backend" / "vault.yml", VAULT_TEXT, password, env)

    after = host_vars(inventory, host, env, "--vault-password-file", str(password))
    missing = {k: v for k, v in before.items() if k != "deploy_env_aws" and after.get(k) != v}
    assert missing == {}
    assert after["vault_probe"] == "from-the-vault"
    assert after["deploy_env_aws"]["EXCHANGE_CUSTOM_API_KEY"] == "vaulted-k"

    if name == "production":  # the file is really read: without the password, no inventory
        proc = ansible_inventory("-i", str(inventory), "--host", host, env=env)
        assert proc.returncode != 0 and "vault" in proc.stderr.lower(), proc.stderr[-500:]


def test_group_vars_are_one_folder_per_group():
    """A file group_vars/<group>.yml would be hidden by a vault file in group_vars/<group>/."""
    for group_vars in INVENTORY.glob("**/group_vars"):
        entries = list(group_vars.iterdir())
        assert entries, group_vars
        files = [e.name for e in entries if not e.is_dir()]
        assert files == [], f"{group_vars}: group variables belong in a folder per group"


# --------------------------------------------------------------------------- one source


def test_sandbox_source_is_the_production_source_with_only_endpoint_and_keys():
    production = load(INVENTORY / "production" / "aws_ec2.yml")
    sandbox = load(INVENTORY / "sandbox" / "aws_ec2.yml")
    assert not SANDBOX_ONLY_KEYS & set(production)
    assert {k: v for k, v in sandbox.items() if k not in SANDBOX_ONLY_KEYS} == production
    assert sandbox["endpoint_url"] == config.endpoints()["default"]
    assert (sandbox["access_key"], sandbox["secret_key"]) == (config.ACCESS_KEY_ID,
                                                              config.SECRET_ACCESS_KEY)
    # and the text itself: below the plugin line, production's lines then the sandbox's keys
    prod_body = (INVENTORY / "production" / "aws_ec2.yml").read_text().split(
        "plugin: amazon.aws.aws_ec2", 1)[1]
    sandbox_body = (INVENTORY / "sandbox" / "aws_ec2.yml").read_text().split(
        "plugin: amazon.aws.aws_ec2", 1)[1]
    assert sandbox_body.startswith(prod_body)


def test_production_selects_running_instances_by_tags_named_by_id():
    production = load(INVENTORY / "production" / "aws_ec2.yml")
    assert production["plugin"] == "amazon.aws.aws_ec2"
    assert production["regions"] == ["ap-southeast-1"]
    assert production["filters"]["instance-state-name"] == "running"
    assert production["hostnames"] == ["instance-id"]
    assert "backend" in production["groups"]


def test_sandbox_endpoints_file_matches_the_sandbox():
    data = load(INVENTORY / "sandbox" / "00-endpoints.atp_sandbox_aws.yml")
    urls = config.endpoints()
    assert (data["ssm_endpoint_url"], data["s3_endpoint_url"], data["endpoint_url"]) == (
        urls["ssm"], urls["s3"], urls["default"])
    assert (data["access_key_id"], data["secret_access_key"]) == (config.ACCESS_KEY_ID,
                                                                 config.SECRET_ACCESS_KEY)
    assert REPO / data["session_manager_plugin"] == config.PLUGIN_STANDIN
    # parsed before aws_ec2.yml (Ansible reads a directory's files in sorted order)
    assert sorted(p.name for p in (INVENTORY / "sandbox").glob("*.yml"))[0] == (
        "00-endpoints.atp_sandbox_aws.yml")
    transfer = load(INVENTORY / "sandbox" / "group_vars" / "backend" / "transfer.yml")
    assert transfer["ansible_aws_ssm_bucket_endpoint_url"] == urls["s3"]
    assert transfer["ansible_aws_ssm_bucket_name"] == config.BUCKET


def test_production_inventory_names_nothing_of_the_sandbox():
    values = []
    for path in sorted((INVENTORY / "production").rglob("*.yml")):
        values.append(yaml.safe_dump(load(path)))
    text = "\n".join(values)
    for needle in ("127.0.0.1", "atp_sandbox", "sandbox/bin", "AKIASANDBOX", "endpoint_url",
                   "ansible_aws_ssm_plugin", "ansible_aws_ssm_profile", "access_key"):
        assert needle not in text, needle


# --------------------------------------------------------------------------- no exports


def test_makefile_exports_nothing_of_the_sandbox():
    exported = [line for line in (REPO / "Makefile").read_text().splitlines()
                if line.startswith("export ")]
    assert exported, "expected the Makefile's exports to be found"
    for line in exported:
        for needle in ("AWS_", "sandbox", "PYTHONPATH"):
            assert needle not in line, line


def test_sandbox_up_writes_no_shell_exports(tmp_path):
    paths = config.Paths(root=tmp_path)
    paths.env_file.write_text("export AWS_CONFIG_FILE=stale\n")  # left by an older sandbox
    cli.write_aws_profile(paths)
    assert not paths.env_file.exists()
    assert "[profile atp-sandbox]" in paths.aws_config.read_text()


def test_run_env_points_one_process_at_the_sandbox(tmp_path):
    caller = {"PATH": "/usr/bin", "AWS_PROFILE": "trading-ops", "AWS_SESSION_TOKEN": "t",
              "AWS_ACCESS_KEY_ID": "AKIAREALKEY", "AWS_IGNORE_CONFIGURED_ENDPOINT_URLS": "true",
              "HOME": "/home/op"}
    env = cli.run_env(caller, config.Paths(root=tmp_path))
    assert env["PATH"].split(":")[0] == str(config.PLUGIN_STANDIN.parent)
    assert env["AWS_ACCESS_KEY_ID"] == config.ACCESS_KEY_ID
    assert env["AWS_ENDPOINT_URL_SSM"] == config.endpoints()["ssm"]
    for gone in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_IGNORE_CONFIGURED_ENDPOINT_URLS"):
        assert gone not in env
    assert caller["AWS_PROFILE"] == "trading-ops"  # the caller's mapping is left alone
    assert env["AWS_CONFIG_FILE"] == str(tmp_path / "aws" / "config")


# --------------------------------------------------------------------------- runbook


def runbook_production_commands() -> list[list[str]]:
    text = (REPO / "docs" / "runbook.md").read_text()
    commands = []
    for block in re.findall(r"```bash\n(.*?)```", text, flags=re.S):
        for line in block.splitlines():
            line = line.split(" #", 1)[0].strip()
            if line.startswith("ansible-playbook") and "inventory/production" in line:
                commands.append(shlex.split(line))
    return commands


def test_every_production_runbook_command_asks_for_the_vault_password():
    commands = runbook_production_commands()
    playbooks = {word for cmd in commands for word in cmd if word.endswith(".yml")}
    assert {"deploy.yml", "playbooks/diagnose.yml", "playbooks/rollback.yml"} <= playbooks
    assert any("--check" in cmd for cmd in commands)
    for cmd in commands:
        assert "--ask-vault-pass" in cmd, " ".join(cmd)
