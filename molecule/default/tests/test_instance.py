"""The instance after a first deploy, an unchanged redeploy and a one-file change (over SSM)."""

import base64
import json
import os

import pytest
import testinfra.utils.ansible_runner

testinfra_hosts = testinfra.utils.ansible_runner.AnsibleRunner(
    os.environ["MOLECULE_INVENTORY_FILE"]).get_hosts("backend")

APP = "/home/ubuntu/automated-trading-platform"
PROJECT = "automated-trading-platform"


@pytest.fixture(scope="module")
def facts(host):
    """Everything the checks need, read in ONE remote call (each call is an SSM session)."""
    script = f"""
import json, os, subprocess
def sh(*a):
    return subprocess.run(a, capture_output=True, text=True).stdout.strip()
app = {APP!r}
rel = sorted(os.listdir(app + "/releases"))
env = app + "/current/.env.aws"  # the active release's env set (through its link)
st = os.stat(env)
names = [l.split("=", 1)[0] for l in open(env) if "=" in l and not l.startswith("#")]
ids = sh("docker", "ps", "-q", "--filter", "label=com.docker.compose.project={PROJECT}",
         "--filter", "label=com.docker.compose.service=backend-aws").split()
c = json.loads(sh("docker", "inspect", *ids)) if ids else []
on_port = sh("docker", "ps", "--filter", "publish=8002", "--format", "{{{{.Names}}}}").split()
def read(path):
    try:
        return open(path).read().strip()
    except OSError:
        return ""
cur = os.readlink(app + "/current")
tag = "{PROJECT}-backend-aws:" + os.path.basename(cur)
print(json.dumps({{
  "releases": rel, "current": cur,
  "env_mode": oct(st.st_mode & 0o777), "env_uid": st.st_uid, "env_names": names,
  "containers": [{{"name": x["Name"], "image": x["Image"], "running": x["State"]["Running"],
                   "started": x["State"]["StartedAt"]}} for x in c],
  "on_port": on_port,
  "upstream": read(app + "/shared/proxy/upstream"),
  "tag_image": sh("docker", "image", "inspect", "-f", "{{{{.Id}}}}", tag),
  "log": [json.loads(l) for l in open(app + "/deploy.log")],
  "sentinel": sh("docker", "exec", "{PROJECT}-db-1", "cat", "/var/lib/atp-db/sentinel"),
  "ubuntu_uid": int(sh("id", "-u", "ubuntu")),
}}))
"""
    encoded = base64.b64encode(script.encode()).decode()
    with host.sudo():
        out = host.check_output(
            f"python3 -c \"import base64; exec(base64.b64decode('{encoded}'))\"")
    return json.loads(out)


def test_two_releases_and_current_is_the_newest(facts):
    assert len(facts["releases"]) == 2, facts["releases"]
    assert facts["current"] == "releases/" + facts["releases"][-1]


def test_env_file_is_private_to_ubuntu_with_canonical_credentials(facts):
    assert facts["env_mode"] == "0o600"
    assert facts["env_uid"] == facts["ubuntu_uid"]
    assert "EXCHANGE_CUSTOM_API_KEY" in facts["env_names"]
    assert "EXCHANGE_CUSTOM_API_SECRET" in facts["env_names"]
    assert not [n for n in facts["env_names"] if n.startswith(("CRYPTO_COM_", "CRYPTOCOM_"))]


def test_one_backend_container_running_the_recorded_image(facts):
    assert len(facts["containers"]) == 1
    container = facts["containers"][0]
    assert container["running"]
    assert container["image"] == facts["tag_image"]
    assert facts["log"][-1]["image_id"] == container["image"]
    assert facts["log"][-1]["release"] == facts["current"].split("/")[-1]


def test_only_the_proxy_publishes_8002_and_it_forwards_to_the_backend(facts):
    # Zero-downtime: the proxy holds 8002; the backend publishes nothing and is named in
    # shared/proxy/upstream (each release's container is a new one beside the old).
    assert facts["on_port"] == [f"{PROJECT}-backend-aws-proxy-1"]
    backend = facts["containers"][0]["name"].lstrip("/")
    assert facts["upstream"] == f"{backend}:8002"


def test_deploy_log_has_one_line_per_changing_deploy(facts):
    assert [r["result"] for r in facts["log"]] == ["ok", "ok"]
    assert facts["log"][0]["release"] != facts["log"][1]["release"]


def test_data_volume_survived_the_redeploy(facts):
    assert facts["sentinel"] == "keep-me"


def test_backend_listens_on_8002(host):
    assert host.socket("tcp://0.0.0.0:8002").is_listening
