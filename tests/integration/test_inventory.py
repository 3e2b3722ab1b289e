"""The sandbox through the production inventory path (amazon.aws.aws_ec2 on the stand-ins' moto).

- a BARE `ansible-playbook deploy.yml` in a new shell (no exports, nothing sourced) deploys;
- an operator shell holding production AWS settings does not redirect a sandbox run;
- the inventory lists the running instances tagged as backends, never the stopped or untagged
  decoys or the spares, and follows `atp_sandbox fleet N`;
- every production runbook command works with a vault file present (run against a copy of the
  sandbox inventory holding one), and fails without the password.

Uses the first instance (the default inventory's only backend); the fleet test lists, but does
not touch, the others.
"""

from __future__ import annotations

import json
import re
import shlex
import shutil
import subprocess
from pathlib import Path

import pytest
from atp_sandbox import ec2
from atp_sandbox.config import ACCESS_KEY_ID, FIRST_INSTANCE_ID, container_name

from .conftest import REPO, SAMPLE, Events, active_release, backend_fleet, sandbox_env

CONTAINER = container_name(FIRST_INSTANCE_ID)
VAULT_PASSWORD = "h7a-integration-vault-password"


def new_shell(home: Path, **extra: str) -> dict[str, str]:
    """What a new login shell has: system PATH plus the venv, a HOME, nothing of AWS/Ansible."""
    home.mkdir(parents=True, exist_ok=True)
    return {"PATH": f"{REPO / '.venv' / 'bin'}:/usr/local/bin:/usr/bin:/bin",
            "HOME": str(home), "LANG": "C.UTF-8", "ANSIBLE_NOCOLOR": "1", **extra}


def run(cmd: list[str], env: dict[str, str], stdin: str | None = None,
        timeout: int = 900) -> subprocess.CompletedProcess:
    binary = str(REPO / ".venv" / "bin" / cmd[0])
    return subprocess.run([binary, *cmd[1:]], cwd=REPO, env=env, input=stdin,
                          capture_output=True, text=True, timeout=timeout, check=False,
                          start_new_session=True)  # no terminal: a vault prompt reads stdin


def tail(proc: subprocess.CompletedProcess) -> str:
    return f"rc={proc.returncode}\n{proc.stdout[-3000:]}\n{proc.stderr[-2000:]}"


def inventory_hosts(env: dict[str, str], *extra: str) -> dict:
    proc = run(["ansible-inventory", "--list", *extra], env)
    assert proc.returncode == 0, tail(proc)
    # values from inventory plugins come marked unsafe: {"__ansible_unsafe": value}
    return json.loads(proc.stdout, object_hook=lambda obj: obj["__ansible_unsafe"]
                      if set(obj) == {"__ansible_unsafe"} else obj)


def moto_instances() -> dict[str, dict]:
    return ec2.describe(ec2.client())


@pytest.fixture(scope="module", autouse=True)
def sandbox_up():
    sandbox_env()  # fails with "sandbox not up" when it is not


# --------------------------------------------------------------------------- bare shell


def test_bare_new_shell_deploys_through_the_aws_ec2_inventory(tmp_path):
    events = Events()
    proc = run(["ansible-playbook", "deploy.yml"], new_shell(tmp_path / "home"))
    assert proc.returncode == 0, tail(proc)
    assert re.search(rf"^{FIRST_INSTANCE_ID}\s+: ok=\d+ .*failed=0", proc.stdout, re.M), tail(proc)
    started = [e for e in events.since() if e["kind"] == "start_session"]
    assert started, "the deploy opened no SSM session"
    assert {e["target"] for e in started} == {FIRST_INSTANCE_ID}
    assert {e.get("access_key") for e in started} == {ACCESS_KEY_ID}


def test_an_operator_shell_set_up_for_production_does_not_redirect_the_sandbox(tmp_path):
    home = tmp_path / "home"
    (home / ".aws").mkdir(parents=True)
    (home / ".aws" / "config").write_text(
        "[profile trading-ops]\nregion = us-east-1\nendpoint_url = http://127.0.0.1:9\n")
    (home / ".aws" / "credentials").write_text(
        "[trading-ops]\naws_access_key_id = AKIAOPERATORPROD0000\n"
        "aws_secret_access_key = operator-secret\n")
    env = new_shell(home, AWS_PROFILE="trading-ops", AWS_DEFAULT_REGION="us-east-1",
                    AWS_ENDPOINT_URL_SSM="http://127.0.0.1:9",
                    AWS_IGNORE_CONFIGURED_ENDPOINT_URLS="true",
                    AWS_SESSION_MANAGER_PLUGIN="/nonexistent/session-manager-plugin")
    events = Events()
    proc = run(["ansible", "backend", "-m", "ansible.builtin.ping"], env, timeout=300)
    assert proc.returncode == 0, tail(proc)
    started = [e for e in events.since() if e["kind"] == "start_session"]
    assert [e["target"] for e in started] == [FIRST_INSTANCE_ID]
    assert started[0].get("access_key") == ACCESS_KEY_ID  # never the operator's key


# --------------------------------------------------------------------------- selection


def test_inventory_lists_running_tagged_backends_never_decoys_or_spares(tmp_path):
    env = new_shell(tmp_path / "home")
    listed = inventory_hosts(env)
    hosts = set(listed["_meta"]["hostvars"])
    everything = moto_instances()
    selected = {i for i, info in everything.items() if info["state"] == "running"
                and info["tags"].get("Project") == "automated-trading-platform"
                and info["tags"].get("Role") == "backend"}
    assert hosts == selected == {FIRST_INSTANCE_ID}
    assert listed["backend"]["hosts"] == [FIRST_INSTANCE_ID]
    # what is left out is really there
    states = {(info["state"], info["tags"].get("Role")) for i, info in everything.items()
              if i not in hosts}
    assert ("stopped", "backend") in states  # the stopped decoy carries the backend tags
    assert ("running", None) in states  # the untagged decoy
    assert ("running", "sandbox-spare") in states
    host = listed["_meta"]["hostvars"][FIRST_INSTANCE_ID]
    assert host["ansible_connection"] == "amazon.aws.aws_ssm"
    assert str(host["ansible_aws_ssm_plugin"]).endswith("sandbox/bin/session-manager-plugin")


def test_fleet_tags_more_instances_as_backends(tmp_path):
    env = new_shell(tmp_path / "home")
    with backend_fleet(3) as ids:
        assert set(inventory_hosts(env)["_meta"]["hostvars"]) == set(ids)
    assert set(inventory_hosts(env)["_meta"]["hostvars"]) == {FIRST_INSTANCE_ID}


# --------------------------------------------------------------------------- vault


def runbook_production_commands() -> list[list[str]]:
    text = (REPO / "docs" / "runbook.md").read_text()
    commands: list[list[str]] = []
    for block in re.findall(r"```bash\n(.*?)```", text, flags=re.S):
        for line in block.splitlines():
            line = line.split(" #", 1)[0].strip()
            if line.startswith("ansible-playbook") and "inventory/production" in line:
                argv = shlex.split(line)
                if argv not in commands:
                    commands.append(argv)
    return commands


def for_sandbox_copy(argv: list[str], inventory: Path) -> list[str]:
    out = [str(inventory) if a == "inventory/production" else a for a in argv]
    out = [a.replace("/path/to/checkout", str(SAMPLE)) for a in out]
    return [*out, "-l", FIRST_INSTANCE_ID]


@pytest.fixture
def vaulted_inventory(tmp_path) -> Path:
    """A copy of inventory/sandbox with group_vars/backend/vault.yml (a harmless variable)."""
    inventory = tmp_path / "inventory"
    shutil.copytree(REPO / "inventory" / "sandbox", inventory)
    password = tmp_path / "vault-pass"
    password.write_text(VAULT_PASSWORD + "\n")
    vault = inventory / "group_vars" / "backend" / "vault.yml"
    vault.write_text("vault_probe: read-from-the-vault\n")
    proc = run(["ansible-vault", "encrypt", "--vault-password-file", str(password), str(vault)],
               new_shell(tmp_path / "home"), timeout=60)
    assert proc.returncode == 0, tail(proc)
    assert vault.read_text().startswith("$ANSIBLE_VAULT;")
    return inventory


def test_every_runbook_command_works_with_a_vault_file(vaulted_inventory, tmp_path):
    env = new_shell(tmp_path / "home")
    commands = runbook_production_commands()
    assert len(commands) >= 7, commands

    # without the password a playbook cannot even start: the vault file is read by every run
    diagnose = next(c for c in commands if "playbooks/diagnose.yml" in c)
    bare = [a for a in for_sandbox_copy(diagnose, vaulted_inventory) if a != "--ask-vault-pass"]
    proc = run(bare, env)
    assert proc.returncode != 0 and "vault" in (proc.stdout + proc.stderr).lower(), tail(proc)

    # a second release to roll back to: a changed copy of the sample first
    variant = tmp_path / "variant"
    shutil.copytree(SAMPLE, variant)
    (variant / "VAULT_TEST_VARIANT").write_text("a release to roll back to\n")
    first = [a.replace(str(SAMPLE), str(variant))
             for a in for_sandbox_copy(commands[0], vaulted_inventory)]
    assert f"backend_src_dir={variant}" in first, first
    # (a lock left by a killed run of another test must not fail this setup step)
    proc = run([*first, "-e", "deploy_break_lock=true"], env, stdin=VAULT_PASSWORD + "\n")
    assert proc.returncode == 0, tail(proc)

    for argv in commands:
        cmd = for_sandbox_copy(argv, vaulted_inventory)
        before = active_release(CONTAINER)
        proc = run(cmd, env, stdin=VAULT_PASSWORD + "\n")
        label = " ".join(argv)
        out = proc.stdout + proc.stderr
        assert "Vault password" in out, f"{label}: no vault prompt\n{tail(proc)}"
        assert not re.search(r"no vault secrets|Decryption failed", out), f"{label}\n{tail(proc)}"
        assert re.search(rf"^{FIRST_INSTANCE_ID}\s+: ok=", proc.stdout, re.M), (
            f"{label}: the play never reached the instance\n{tail(proc)}")
        named = next((a.split("=", 1)[1] for a in argv if a.startswith("rollback_to=")), None)
        if named:  # the runbook's example id does not exist here: an error that changes nothing
            assert proc.returncode != 0 and named in out, f"{label}\n{tail(proc)}"
            assert active_release(CONTAINER) == before, label
        else:
            assert proc.returncode == 0, f"{label}\n{tail(proc)}"
