"""Tests of module_utils/zero_downtime.py (the proxy topology's pure helpers)."""

from __future__ import annotations

import json

import pytest
from ansible_collections.atp.deploy.plugins.module_utils import zero_downtime as zd

CONFIG = {"services": {"backend-aws": {
    "ports": [{"mode": "ingress", "target": 8002, "published": "8002", "protocol": "tcp"}],
    "networks": {"default": None, "backend": None}}}}


def app(name, running=True, image="sha256:new", ports=(), cid=None):
    return {"id": cid or name, "name": name, "running": running, "image_id": image,
            "host_ports": list(ports)}


def test_ports_networks_and_target_come_from_the_compose_model():
    ports = zd.service_ports(CONFIG, "backend-aws")
    assert ports[0]["published"] == "8002"
    assert zd.service_networks(CONFIG, "backend-aws") == ["backend", "default"]
    assert zd.service_networks({"services": {"x": {}}}, "x") == ["default"]
    assert zd.target_port(ports, "backend-aws", 8002) == 8002
    # 127.0.0.1:8002:8000 keeps its host address and its container port.
    local = [{"host_ip": "127.0.0.1", "target": 8000, "published": "8002"}]
    assert zd.target_port(local, "backend-aws", 8002) == 8000


@pytest.mark.parametrize("ports", [[], [{"target": 8002, "published": "9000"}]])
def test_a_service_that_does_not_publish_the_port_is_refused_in_one_line(ports):
    with pytest.raises(ValueError) as exc:
        zd.target_port(ports, "backend-aws", 8002)
    message = str(exc.value)
    assert "\n" not in message and "8002" in message and "deploy_zero_downtime=false" in message


def test_the_proxy_takes_the_service_ports_and_runs_unprivileged():
    ports = zd.service_ports(CONFIG, "backend-aws")
    proxy = zd.proxy_service("backend-aws", "repo:proxy", ports, ["default"], "/srv/atp",
                             "aws", 8002)
    svc = proxy["service"]
    assert proxy["name"] == "backend-aws-proxy"
    assert svc["ports"] == ports and svc["ports"] is not ports
    assert svc["user"] == "65534:65534" and svc["profiles"] == ["aws"]
    assert svc["volumes"][0]["source"] == "/srv/atp/shared/proxy"
    assert "--listen" in svc["command"] and "0.0.0.0:8002" in svc["command"]
    assert "env_file" not in svc and "environment" not in svc   # no secrets in the proxy
    json.dumps(svc)   # goes into the JSON override as is


def test_upstream_and_status_files(tmp_path):
    path = tmp_path / "upstream"
    assert zd.read_upstream(str(path)) is None
    path.write_text("# forwarded to\n" + zd.upstream_text("atp-backend-aws-2", 8002))
    assert zd.read_upstream(str(path)) == "atp-backend-aws-2:8002"
    status = tmp_path / "status.json"
    assert zd.read_status(str(status)) == {}
    status.write_text("not json")
    assert zd.read_status(str(status)) == {}
    status.write_text(json.dumps({"active": {"a:8002": 2}}))
    doc = zd.read_status(str(status))
    assert zd.active_on(doc, "a:8002") == 2 and zd.active_on(doc, "b:8002") == 0


def test_container_url_prefers_the_service_network():
    c = {"ips": {"atp_backend": "172.19.0.3", "atp_default": "172.18.0.4"}}
    assert zd.container_url(c, 8002, ["default"]) == "http://172.18.0.4:8002"
    assert zd.container_url(c, 8002, ["other"]) == "http://172.19.0.3:8002"
    assert zd.container_url({"ips": {}}, 8002) is None


def test_topology_and_settled():
    old = app("b-1", image="sha256:old", ports=[8002])
    proxy = [app("b-proxy-1")]
    assert zd.topology([old], [], 8002) == zd.TOPOLOGY_DIRECT
    assert zd.topology([app("b-1")], [], 8002) == zd.TOPOLOGY_NONE
    assert zd.topology([app("b-1")], proxy, 8002) == zd.TOPOLOGY_PROXY
    new = app("b-2")
    assert zd.settled([new], proxy, "b-2:8002", "sha256:new", 8002)
    # Any of: another image, the proxy pointing elsewhere, no proxy, a second container.
    assert not zd.settled([new], proxy, "b-1:8002", "sha256:new", 8002)
    assert not zd.settled([new], proxy, "b-2:8002", "sha256:other", 8002)
    assert not zd.settled([new], [], "b-2:8002", "sha256:new", 8002)
    assert not zd.settled([new, app("b-3")], proxy, "b-2:8002", "sha256:new", 8002)
    assert zd.new_containers([old], [old, new]) == [new]
