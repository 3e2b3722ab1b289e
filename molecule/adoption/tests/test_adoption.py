"""After adopting a hand-managed checkout: it is release zero, nothing of the operator's is lost
(files, env keys, the db's env file, data), one backend serves."""

import base64
import json
import os

import pytest
import testinfra.utils.ansible_runner

testinfra_hosts = testinfra.utils.ansible_runner.AnsibleRunner(
    os.environ["MOLECULE_INVENTORY_FILE"]).get_hosts("backend")

APP = "/home/ubuntu/automated-trading-platform"
REPO = "automated-trading-platform-backend-aws"

SCRIPT = f"""
import glob, json, os, subprocess
def sh(*a):
    return subprocess.run(a, capture_output=True, text=True).stdout.strip()
def read(p):
    try:
        return open(p).read()
    except OSError:
        return None
def mode(p):
    try:
        return oct(os.stat(p).st_mode & 0o777)
    except OSError:
        return None
def link(p):
    return os.readlink(p) if os.path.islink(p) else None
aside = sorted(glob.glob({APP!r} + ".pre-ansible-*"))
kept = {{}}
if aside:
    for name in (".env", ".env.aws", ".env.db", "secrets/exchange.pem", "docker-compose.yml"):
        kept[name] = os.path.exists(os.path.join(aside[-1], name))
log = [json.loads(l) for l in (read({APP!r} + "/deploy.log") or "").splitlines() if l.strip()]
zero = log[0]["release"] if log else ""
rz = {APP!r} + "/releases/" + zero
print(json.dumps({{
  "aside": aside, "kept": kept, "log": log,
  "current": link({APP!r} + "/current"),
  "releases": sorted(os.listdir({APP!r} + "/releases")),
  "zero_files": {{n: os.path.lexists(os.path.join(rz, n)) for n in
                 ("docker-compose.yml", ".release-manifest.json", ".git", "backend")}},
  "zero_links": {{n: link(os.path.join(rz, n)) for n in (".env", ".env.aws", ".env.db",
                                                         "secrets")}},
  "zero_image": sh("docker", "image", "inspect", "--format", "{{{{.Id}}}}",
                   {REPO!r} + ":" + zero) if zero else "",
  "hand_image": read("/var/tmp/atp-hand-backend-image"),
  "env": read({APP!r} + "/current/.env"),
  "env_aws": read({APP!r} + "/current/.env.aws"),
  "env_db": read({APP!r} + "/current/.env.db"),
  "modes": {{n: mode({APP!r} + "/current/" + n) for n in (".env", ".env.aws", ".env.db")}},
  "current_links": {{n: link({APP!r} + "/current/" + n) for n in (".env", ".env.aws")}},
  "zero_env_aws": read({APP!r} + "/shared/.env.aws"),
  "shared_secrets": os.path.exists({APP!r} + "/shared/secrets/exchange.pem"),
  "current_secrets": os.path.exists({APP!r} + "/current/secrets/exchange.pem"),
  "current_env": read({APP!r} + "/current/.env"),
  "on_8002": sh("docker", "ps", "--filter", "publish=8002", "--format", "{{{{.Names}}}}").split(),
  "backends": sh("docker", "ps", "-a", "--filter", "label=com.docker.compose.service=backend-aws",
                 "--format", "{{{{.Names}}}}").split(),
  "sentinel": sh("docker", "exec", "automated-trading-platform-db-1", "cat",
                 "/var/lib/atp-db/sentinel"),
  "health": sh("curl", "-s", "http://127.0.0.1:8002/api/health"),
}}))
"""


@pytest.fixture(scope="module")
def facts(host):
    encoded = base64.b64encode(SCRIPT.encode()).decode()
    with host.sudo():
        out = host.check_output(
            f"python3 -c \"import base64; exec(base64.b64decode('{encoded}'))\"")
    return json.loads(out)


def env_lines(text):
    return [line for line in (text or "").splitlines() if line and not line.startswith("#")]


def test_old_checkout_kept_aside_whole(facts):
    assert len(facts["aside"]) == 1
    assert facts["kept"] == {".env": True, ".env.aws": True, ".env.db": True,
                             "secrets/exchange.pem": True, "docker-compose.yml": True}


def test_the_hand_managed_checkout_is_release_zero(facts):
    zero = facts["log"][0]
    assert zero["event"] == "adopted" and zero["result"] == "ok"
    assert zero["adopted_from"] == facts["aside"][0]
    assert zero["release"] in facts["releases"]
    assert facts["zero_files"] == {"docker-compose.yml": True, ".release-manifest.json": True,
                                   ".git": False, "backend": True}
    assert facts["zero_links"] == {".env": "../../shared/.env", ".env.aws": "../../shared/.env.aws",
                                   ".env.db": "../../shared/.env.db",
                                   "secrets": "../../shared/secrets"}


def test_current_pointed_at_release_zero_before_the_first_release(facts):
    zero, first = facts["log"][0]["release"], facts["log"][1]["release"]
    assert zero < first, "release zero sorts before the first managed release"
    assert facts["log"][1]["result"] == "ok"
    assert facts["current"] == f"releases/{first}"
    # release zero can be activated again without a build: it has the hand-run backend's image
    assert facts["zero_image"] == facts["hand_image"].strip()


def test_the_first_release_runs_with_its_own_env_set(facts):
    # the deploy moved the env into an env set; release zero keeps the hand-managed files, so
    # a rollback to it gets the operator's env back as it was
    for name, target in facts["current_links"].items():
        assert target.startswith("../../shared/env/") and target.endswith("/" + name)
    assert env_lines(facts["zero_env_aws"]) == ["CRYPTOCOM_API_KEY=hand-key",
                                               "CRYPTOCOM_API_SECRET=hand-secret",
                                               "HAND_AWS_ONLY=1"]


def test_the_operators_env_keys_are_kept(facts):
    env = env_lines(facts["env"])
    assert "HAND_MANAGED=1" in env and 'export POSTGRES_PASSWORD="hand-db-pw"' in env
    assert "ENVIRONMENT=aws" in env  # the deploy passes the same value: the line is untouched
    aws = env_lines(facts["env_aws"])
    assert "HAND_AWS_ONLY=1" in aws
    assert "EXCHANGE_CUSTOM_API_KEY='sandbox-fake-key-3f9a'" in aws
    # the deploy passes the credential under its canonical name: the old aliases are dropped
    assert not [line for line in aws if line.startswith("CRYPTOCOM_")]
    assert facts["current_env"] == facts["env"]


def test_the_dbs_env_file_is_carried_over(facts):
    assert facts["env_db"] == "POSTGRES_INITDB_ARGS=--auth=scram-sha-256\n"


def test_env_files_are_0600(facts):
    assert facts["modes"] == {".env": "0o600", ".env.aws": "0o600", ".env.db": "0o600"}


def test_secrets_carried_into_the_managed_layout(facts):
    assert facts["shared_secrets"] and facts["current_secrets"]


def test_exactly_one_backend_container_serves_8002(facts):
    # The hand-managed backend published 8002 itself; the first deploy converted it to the
    # zero-downtime proxy (one gap) and stopped the old container.
    assert facts["on_8002"] == ["automated-trading-platform-backend-aws-proxy-1"]
    assert len(facts["backends"]) == 1, facts["backends"]
    assert facts["backends"] != ["automated-trading-platform-backend-aws-1"]
    assert facts["health"].startswith('{"status":"ok"')


def test_data_volume_kept(facts):
    assert facts["sentinel"] == "hand-data"
