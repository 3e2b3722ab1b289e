"""tools/atp_ops/portforward/docker.py: `docker ps` rows and docker-proxy command lines."""

from __future__ import annotations

import subprocess
import types

from atp_ops.portforward import docker

CONTAINER = "automated-trading-platform-backend-1"


def test_parse_docker_ports():
    ports = ("127.0.0.1:18002->8002/tcp, 0.0.0.0:8000-8001->9000-9001/tcp, "
             ":::8003->8003/tcp, [::]:8004->8004/udp, 5432/tcp")
    assert docker.parse_docker_ports(ports) == [
        docker.PortBinding("127.0.0.1", 18002, 8002, "tcp"),
        docker.PortBinding("0.0.0.0", 8000, 9000, "tcp"),
        docker.PortBinding("0.0.0.0", 8001, 9001, "tcp"),
        docker.PortBinding("::", 8003, 8003, "tcp"),
        docker.PortBinding("::", 8004, 8004, "udp"),
    ]
    assert docker.parse_docker_ports("") == []
    assert docker.parse_docker_ports("x:y->z/tcp") == []


def test_parse_docker_ps_matches_host_port_not_container_port():
    text = (f"abc123\t{CONTAINER}\t127.0.0.1:8002->8002/tcp\n"
            "def456\tother\t127.0.0.1:18002->8002/tcp\n"
            "0a0a0a\tudp-only\t0.0.0.0:8002->53/udp\n"
            "1b1b1b\telsewhere\t10.0.0.5:8002->8002/tcp\n"
            "2c2c2c\tall\t:::8002->80/tcp\n"
            "short line\n")
    found = docker.parse_docker_ps(text, 8002)
    assert [(c.id, c.name) for c in found] == [("abc123", CONTAINER), ("2c2c2c", "all")]
    assert [c.name for c in docker.parse_docker_ps(text, 18002)] == ["other"]
    assert docker.parse_docker_ps(text, 8003) == []


def test_docker_proxy_target():
    argv = ["/usr/bin/docker-proxy", "-proto", "tcp", "-host-ip", "127.0.0.1", "-host-port",
            "8002", "-container-ip", "172.17.0.2", "-container-port", "8002"]
    assert docker.docker_proxy_target(argv) == {
        "proto": "tcp", "host-ip": "127.0.0.1", "host-port": "8002",
        "container-ip": "172.17.0.2", "container-port": "8002"}
    assert docker.docker_proxy_target(["python3", "-m", "http.server"]) is None
    assert docker.docker_proxy_target([]) is None


def test_docker_containers_asks_docker_ps(monkeypatch):
    calls = []

    def run(cmd, timeout):
        calls.append((cmd, timeout))
        return subprocess.CompletedProcess(cmd, 0, f"abc\t{CONTAINER}\t127.0.0.1:8002->8002/tcp\n",
                                           "")

    monkeypatch.setattr(docker, "shutil", types.SimpleNamespace(which=lambda name: "/bin/docker"))
    monkeypatch.setattr(docker, "run", run)
    assert [c.name for c in docker.docker_containers(8002)] == [CONTAINER]
    assert calls == [(["docker", "ps", "--filter", "publish=8002", "--format",
                       docker.DOCKER_PS_FORMAT], 15)]
    assert docker.docker_stop(CONTAINER).returncode == 0
    assert calls[-1] == (["docker", "stop", CONTAINER], 60)


def test_docker_not_reachable_is_none(monkeypatch):
    monkeypatch.setattr(docker, "shutil", types.SimpleNamespace(which=lambda name: None))
    assert docker.docker_containers(8002) is None
    monkeypatch.setattr(docker, "shutil", types.SimpleNamespace(which=lambda name: "/bin/docker"))
    monkeypatch.setattr(docker, "run", lambda cmd, timeout: subprocess.CompletedProcess(
        cmd, 1, "", "Cannot connect to the Docker daemon"))
    assert docker.docker_containers(8002) is None
    monkeypatch.setattr(docker, "run", lambda cmd, timeout: None)
    assert docker.docker_containers(8002) is None
