"""After adopting a hand-managed checkout: nothing of the operator's is lost, one backend."""

import base64
import json
import os

import pytest
import testinfra.utils.ansible_runner

testinfra_hosts = testinfra.utils.ansible_runner.AnsibleRunner(
    os.environ["MOLECULE_INVENTORY_FILE"]).get_hosts("backend")

APP = "/home/ubuntu/automated-trading-platform"

SCRIPT = f"""
import glob, json, os, subprocess
def sh(*a):
    return subprocess.run(a, capture_output=True, text=True).stdout.strip()
aside = sorted(glob.glob({APP!r} + ".pre-ansible-*"))
kept = {{}}
if aside:
    for name in (".env", ".env.aws", "secrets/exchange.pem", "docker-compose.yml"):
        kept[name] = os.path.exists(os.path.join(aside[-1], name))
print(json.dumps({{
  "aside": aside, "kept": kept,
  "shared_secrets": os.path.exists({APP!r} + "/shared/secrets/exchange.pem"),
  "current_secrets": os.path.exists({APP!r} + "/current/secrets/exchange.pem"),
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


def test_old_checkout_kept_aside_with_every_operator_file(facts):
    assert len(facts["aside"]) == 1
    assert facts["kept"] == {".env": True, ".env.aws": True, "secrets/exchange.pem": True,
                             "docker-compose.yml": True}


def test_secrets_carried_into_the_managed_layout(facts):
    assert facts["shared_secrets"] and facts["current_secrets"]


def test_exactly_one_backend_container_serves_8002(facts):
    assert facts["on_8002"] == ["automated-trading-platform-backend-aws-1"]
    assert facts["backends"] == ["automated-trading-platform-backend-aws-1"]
    assert facts["health"].startswith('{"status":"ok"')


def test_data_volume_kept(facts):
    assert facts["sentinel"] == "hand-data"
