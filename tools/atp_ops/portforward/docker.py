"""Docker as a holder of the local port: `docker ps` rows, docker-proxy command lines."""

from __future__ import annotations

import itertools
import os
import shutil
import subprocess
from dataclasses import dataclass

from .common import blocks_bind, run

DOCKER_PS_FORMAT = "{{.ID}}\t{{.Names}}\t{{.Ports}}"


# =========================================================================== pure


@dataclass(frozen=True)
class PortBinding:
    host_ip: str
    host_port: int
    container_port: int
    proto: str


@dataclass(frozen=True)
class Container:
    id: str
    name: str
    bindings: tuple[PortBinding, ...] = ()


def _port_range(text: str) -> list[int]:
    low, _, high = text.partition("-")
    return list(range(int(low), int(high or low) + 1))


def parse_docker_ports(ports: str) -> list[PortBinding]:
    """`docker ps` Ports column -> published bindings (exposed-only ports are skipped)."""
    bindings = []
    for entry in (part.strip() for part in ports.split(",")):
        if "->" not in entry:
            continue
        left, _, right = entry.partition("->")
        host_ip, _, host_ports = left.rpartition(":")
        container_ports, _, proto = right.partition("/")
        try:
            hosts, conts = _port_range(host_ports), _port_range(container_ports)
        except ValueError:
            continue
        for index, host_port in enumerate(hosts):
            cport = conts[index] if index < len(conts) else conts[0] + index
            bindings.append(PortBinding(host_ip.strip("[]") or "0.0.0.0", host_port, cport,
                                        proto or "tcp"))
    return bindings


def parse_docker_ps(text: str, port: int) -> list[Container]:
    """Containers (from `docker ps --format DOCKER_PS_FORMAT`) publishing 127.0.0.1:``port``."""
    containers = []
    for line in text.splitlines():
        parts = line.split("\t")
        if len(parts) < 3:
            continue
        bindings = tuple(b for b in parse_docker_ports(parts[2])
                         if b.host_port == port and b.proto == "tcp" and blocks_bind(b.host_ip))
        if bindings:
            containers.append(Container(parts[0], parts[1], bindings))
    return containers


def docker_proxy_target(argv: list[str]) -> dict[str, str] | None:
    """For a docker-proxy command line, its -host-ip/-host-port/-container-ip/-container-port."""
    if not argv or os.path.basename(argv[0]) != "docker-proxy":
        return None
    flags: dict[str, str] = {}
    for flag, value in itertools.pairwise(argv[1:]):
        if flag.startswith("-") and not value.startswith("-"):
            flags[flag.lstrip("-")] = value
    return {key: flags.get(key, "") for key in
            ("proto", "host-ip", "host-port", "container-ip", "container-port")}


# =========================================================================== I/O


def docker_containers(port: int) -> list[Container] | None:
    """Running containers publishing the port; None when docker is not reachable."""
    if not shutil.which("docker"):
        return None
    done = run(["docker", "ps", "--filter", f"publish={port}", "--format", DOCKER_PS_FORMAT],
               timeout=15)
    if done is None or done.returncode != 0:
        return None
    return parse_docker_ps(done.stdout, port)


def docker_stop(name: str) -> subprocess.CompletedProcess | None:
    """`docker stop <name>` (bounded: 60 s); None if it could not run or did not end in time."""
    return run(["docker", "stop", name], timeout=60)
