"""atp.deploy.env_guard: env values are taken as written or refused, on the controller.

The pure rules (module_utils/env_guard.py), then a REAL ansible-playbook run on localhost
(connection local, nothing else touched): ansible-core 2.19's data tagging decides what would
be templated, so only a real run proves which values survive.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from ansible_collections.atp.deploy.plugins.module_utils import env_guard as eg

REPO = Path(__file__).resolve().parents[3]
SECRET = "s3cr3t-value-xyz"
VAULT_PASSWORD = "test-vault-password"


@pytest.mark.parametrize(("raw", "trusted", "refused"), [
    ("plain-value", True, False),
    (f"a{{#x#}}{SECRET}", True, True),
    (f"{{% raw %}}{SECRET}", True, True),
    ("{{ vault_secret }}", True, False),
    ("postgresql://app:{{ vault_db_pw | urlencode }}@db/app", True, False),
    ("{{ lookup('env', 'HOME') }}", True, True),
    (f"{SECRET}{{{{", True, True),
    (f"a{{#x#}}{SECRET}", False, False),
])
def test_raw_problem(raw, trusted, refused):
    problem = eg.raw_problem("deploy_env_aws", "API_SECRET", raw, trusted)
    assert (problem is not None) is refused
    if problem:
        assert problem.startswith("deploy_env_aws.API_SECRET: the value holds Jinja markers")
        assert "!unsafe" in problem and "!vault" in problem
        assert SECRET not in problem and "\n" not in problem


def test_reference_and_values():
    assert eg.reference("{{ vault_x }}") == "vault_x"
    assert eg.reference("{{ vault_x | lower }}") is None
    assert eg.value_problem("deploy_env", "A", "x\\").startswith(
        "deploy_env: the value of A ends with a backslash")
    assert eg.value_problem("deploy_env", "A", True) is None
    assert eg.text_of(None) == "" and eg.text_of(False) == "false" and eg.text_of(3) == "3"
    line = eg.template_failure("deploy_env", "K", RuntimeError(f"'{SECRET}' is undefined"))
    assert SECRET not in line and "RuntimeError" in line


# --------------------------------------------------------------------------- a real run

PLAY = """\
- name: Env guard
  hosts: all
  gather_facts: false
  tasks:
    - name: Check the env values
      atp.deploy.env_guard:
      become: false
    - name: Show what the app would get
      ansible.builtin.debug:
        msg: "{{ deploy_env_aws | atp.deploy.env_values }}"
"""


def _vault(text: str, workdir: Path, name: str | None = None) -> str:
    """ansible-vault encrypt_string (inline !vault) or encrypt (whole text) with our password."""
    tool = Path(sys.executable).with_name("ansible-vault")
    pwfile = workdir / "vault-pass"
    pwfile.write_text(VAULT_PASSWORD)
    argv = ([str(tool), "encrypt_string", "--vault-password-file", str(pwfile), text, "--name",
             name] if name else
            [str(tool), "encrypt", "--vault-password-file", str(pwfile), "--output", "-", "-"])
    proc = subprocess.run(argv, input=None if name else text, capture_output=True, text=True,
                          timeout=60, check=True)
    return proc.stdout


HOSTS = {
    # host: (host_vars text, refused?, what the app gets when accepted)
    "plain_comment": (f'deploy_env_aws:\n  API_SECRET: "ab{{#x#}}{SECRET}"\n', True, None),
    "unsafe": (f'deploy_env_aws:\n  API_SECRET: !unsafe "ab{{#x#}}{SECRET}"\n', False,
               f"ab{{#x#}}{SECRET}"),
    "reference": ('vault_secret: "plain-secret-1"\ndeploy_env_aws:\n'
                  '  API_SECRET: "{{ vault_secret }}"\n', False, "plain-secret-1"),
    "reference_to_comment": (f'vault_secret: "x{{#y#}}{SECRET}"\ndeploy_env_aws:\n'
                             '  API_SECRET: "{{ vault_secret }}"\n', True, None),
    "trailing_backslash": (f"deploy_env_aws:\n  API_SECRET: !unsafe '{SECRET}\\'\n", True, None),
    "quotes_and_dollar": (f"deploy_env_aws:\n  API_SECRET: !unsafe \"it's \\\"{SECRET}\\\" $HOME"
                          "\"\n", False, f"it's \"{SECRET}\" $HOME"),
}


@pytest.fixture(scope="module")
def guard_run(tmp_path_factory) -> dict:
    work = tmp_path_factory.mktemp("env-guard")
    (work / "host_vars").mkdir()
    inventory = {"all": {"hosts": {h: {"ansible_connection": "local",
                                       "ansible_python_interpreter": sys.executable}
                                   for h in [*HOSTS, "inline_vault", "vault_file"]}}}
    (work / "hosts.yml").write_text(json.dumps(inventory))
    for host, (text, _refused, _value) in HOSTS.items():
        (work / "host_vars" / f"{host}.yml").write_text(text)
    inline = _vault(f"ab{{#x#}}{SECRET}", work, "API_SECRET")
    (work / "host_vars" / "inline_vault.yml").write_text(
        "deploy_env_aws:\n" + "".join(f"  {line}\n" for line in inline.splitlines()))
    (work / "host_vars" / "vault_file.yml").write_text(
        _vault(f'deploy_env_aws:\n  API_SECRET: "ab{{#x#}}{SECRET}"\n', work))
    (work / "play.yml").write_text(PLAY)
    (work / "ansible.cfg").write_text(
        f"[defaults]\ncollections_path = {REPO / 'collections'}\nstdout_callback = "
        "ansible.builtin.json\ngathering = explicit\n")
    env = {**os.environ, "ANSIBLE_CONFIG": str(work / "ansible.cfg"),
           "ANSIBLE_LOCALHOST_WARNING": "0", "ANSIBLE_NOCOLOR": "1"}
    proc = subprocess.run(
        [str(Path(sys.executable).with_name("ansible-playbook")), "-i", "hosts.yml", "play.yml",
         "--vault-password-file", str(work / "vault-pass")],
        cwd=work, env=env, capture_output=True, text=True, timeout=300, check=False)
    return {"proc": proc, "out": json.loads(proc.stdout)}


def _host_results(run: dict, host: str) -> list[dict]:
    return [task["hosts"][host] for play in run["out"]["plays"] for task in play["tasks"]
            if host in task["hosts"]]


@pytest.mark.parametrize("host", [*HOSTS, "inline_vault", "vault_file"])
def test_a_real_run_takes_values_as_written_or_refuses_them(guard_run, host):
    refused = {**{h: v[1] for h, v in HOSTS.items()}, "inline_vault": False, "vault_file": True}
    expected = {**{h: v[2] for h, v in HOSTS.items()}, "inline_vault": f"ab{{#x#}}{SECRET}"}
    guard, *rest = _host_results(guard_run, host)
    if refused[host]:
        assert guard.get("failed") is True, guard
        assert guard["msg"].startswith("deploy_env_aws")
        if host == "reference_to_comment":
            assert "(through vault_secret)" in guard["msg"]
            assert "vault_secret: !unsafe" in guard["msg"]
        assert "API_SECRET" in guard["msg"] and SECRET not in guard["msg"]
        assert rest == [], "the play stops at the guard"
    else:
        assert not guard.get("failed"), guard
        assert rest[0]["msg"]["API_SECRET"] == expected[host]


def test_no_secret_in_the_whole_output(guard_run):
    text = guard_run["proc"].stdout + guard_run["proc"].stderr
    failed = [h for h in HOSTS if HOSTS[h][1]] + ["vault_file"]
    for host in failed:
        for result in _host_results(guard_run, host):
            assert SECRET not in json.dumps(result)
    assert "Traceback" not in text


# --------------------------------------------------------------------------- compose environment

FIXTURE = REPO / "tests" / "fixtures" / "atp_app"
SOURCES = {".env": "deploy_env", ".env.aws": "deploy_env_aws"}


def test_values_the_compose_environment_keeps_from_the_container_are_named():
    env = {"ENVIRONMENT": "aws", "PORTFOLIO_DEBUG": "${PORTFOLIO_DEBUG:-0}",
           "DATABASE_URL": "postgresql://app:${POSTGRES_PASSWORD}@db/atp", "LOG_LEVEL": "$${x}",
           "PASSTHROUGH": None}
    files = {".env": {"ENVIRONMENT": "aws"},
             ".env.aws": {"ENVIRONMENT": "aws", "PORTFOLIO_DEBUG": "1",
                          "DATABASE_URL": SECRET, "PASSTHROUGH": "x", "OTHER": "y"}}
    found = eg.shadowed(files, env, "backend-aws", SOURCES)
    assert found == [
        "DATABASE_URL set in deploy_env_aws (.env.aws) does not reach backend-aws: its compose "
        "environment: sets DATABASE_URL itself, which wins over env_file; drop it from "
        "deploy_env_aws (.env.aws), or write DATABASE_URL: ${DATABASE_URL} in the compose file "
        "and set it in deploy_env",
        "PORTFOLIO_DEBUG set in deploy_env_aws (.env.aws) does not reach backend-aws: its "
        "compose environment: takes PORTFOLIO_DEBUG from ${PORTFOLIO_DEBUG}, which compose "
        "fills from .env (deploy_env) when it reads the file; set PORTFOLIO_DEBUG in deploy_env "
        "instead"]
    assert SECRET not in " ".join(found)
    # in .env: compose fills the reference with it; the same literal value: nothing to say
    files[".env"]["PORTFOLIO_DEBUG"] = "1"
    del files[".env.aws"]["DATABASE_URL"]
    assert eg.shadowed(files, env, "backend-aws", SOURCES) == []
    # a value read later (Parameter Store, None here) for a literal entry: said
    assert eg.shadowed({".env.aws": {"ENVIRONMENT": None}}, env, "backend-aws", SOURCES)[0] \
        .startswith("ENVIRONMENT set in deploy_env_aws (.env.aws) does not reach backend-aws")
    # $$ is compose's escaped dollar, not a reference; $NAME without braces is one
    assert not eg._refers_to("$${LOG_LEVEL}", "LOG_LEVEL")
    assert eg._refers_to("$LOG_LEVEL", "LOG_LEVEL") and not eg._refers_to("$LOG_LEVELS",
                                                                           "LOG_LEVEL")


def test_the_sandbox_env_reaches_the_real_apps_container():
    """The realistic fixture's compose file (the real app's environment: block) and the
    sandbox's own group_vars: nothing the deploy sets is kept from backend-aws."""
    import yaml
    from ansible_collections.atp.deploy.plugins.module_utils import compose_file

    summary = compose_file.compose_summary(str(FIXTURE), "docker-compose.yml", "backend-aws",
                                           "aws")
    env = summary["environment"]
    assert env["PORTFOLIO_DEBUG"] == "${PORTFOLIO_DEBUG:-0}" and env["ENVIRONMENT"] == "aws"
    sandbox = yaml.safe_load((REPO / "inventory/sandbox/group_vars/backend/env.yml").read_text())
    files = {".env": {k: str(v) for k, v in sandbox["deploy_env"].items()},
             ".env.aws": {k: str(v) for k, v in sandbox["deploy_env_aws"].items()}}
    assert eg.shadowed(files, env, "backend-aws", SOURCES) == []
    files[".env.aws"]["PORTFOLIO_DEBUG"] = files[".env"].pop("PORTFOLIO_DEBUG")
    assert [w.split(" ")[0] for w in eg.shadowed(files, env, "backend-aws", SOURCES)] == [
        "PORTFOLIO_DEBUG"]


def test_compose_environment_in_list_form():
    from ansible_collections.atp.deploy.plugins.module_utils import compose_file

    doc = {"services": {"backend-aws": {"environment": ["A=1", "B", "C=x=y"]},
                        "other": {"environment": {"D": True, "E": 3, "F": None}}}}
    assert compose_file.service_environment(doc, "backend-aws") == {"A": "1", "B": None,
                                                                    "C": "x=y"}
    assert compose_file.service_environment(doc, "other") == {"D": "true", "E": "3", "F": None}


SHADOW_PLAY = """\
- name: Env guard with the service's compose environment
  hosts: all
  gather_facts: false
  tasks:
    - name: Check the env values
      atp.deploy.env_guard:
        compose_environment:
          PORTFOLIO_DEBUG: "${PORTFOLIO_DEBUG:-0}"
          API_SECRET: fixed-in-compose
          WARM_PORTFOLIO_CACHE: "true"
          EMPTY: ""
      become: false
"""


def test_a_real_run_warns_by_name_and_goes_on(tmp_path):
    (tmp_path / "hosts.yml").write_text(json.dumps({"all": {"hosts": {"h": {
        "ansible_connection": "local", "ansible_python_interpreter": sys.executable,
        "deploy_env": {"ENVIRONMENT": "aws"},
        "deploy_env_aws": {"PORTFOLIO_DEBUG": "1", "API_SECRET": SECRET,
                           # the env file holds true and an empty value: the same as compose's
                           "WARM_PORTFOLIO_CACHE": True, "EMPTY": None}}}}}))
    (tmp_path / "play.yml").write_text(SHADOW_PLAY)
    (tmp_path / "ansible.cfg").write_text(
        f"[defaults]\ncollections_path = {REPO / 'collections'}\ngathering = explicit\n")
    env = {**os.environ, "ANSIBLE_CONFIG": str(tmp_path / "ansible.cfg"),
           "ANSIBLE_LOCALHOST_WARNING": "0", "ANSIBLE_NOCOLOR": "1"}
    proc = subprocess.run(
        [str(Path(sys.executable).with_name("ansible-playbook")), "-i", "hosts.yml", "play.yml"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300, check=False)
    text = proc.stdout + proc.stderr
    assert proc.returncode == 0, text
    flat = " ".join(text.split())
    assert "[WARNING]: API_SECRET set in deploy_env_aws (.env.aws) does not reach backend-aws" \
        in flat
    assert "[WARNING]: PORTFOLIO_DEBUG set in deploy_env_aws (.env.aws) does not reach" in flat
    assert "WARM_PORTFOLIO_CACHE" not in text and "EMPTY" not in text
    assert SECRET not in text
