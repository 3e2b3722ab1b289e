# Copyright: atp.deploy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Docker / Compose v2 command builders and output parsers (pure, stdlib only).

Builders only BUILD argv lists; the modules run them (see proc.run). Parsers turn the text
those commands print into plain dicts, so the deciding code never sees raw docker output.
"""

from __future__ import annotations

import json
import re

MIN_COMPOSE = (2, 18)
PROJECT_LABEL = "com.docker.compose.project"
SERVICE_LABEL = "com.docker.compose.service"
OVERRIDE_NAME = "docker-compose.deploy.yml"


# --------------------------------------------------------------------------- builders


def info(docker: str = "docker") -> list[str]:
    return [docker, "info", "--format", "{{json .ServerVersion}}"]


def compose_version(docker: str = "docker") -> list[str]:
    """No --short: without the compose plugin docker would report the flag, not the plugin."""
    return [docker, "compose", "version"]


def image_id(ref: str, docker: str = "docker") -> list[str]:
    return [docker, "image", "inspect", "--format", "{{.Id}}", ref]


def ps_all_ids(docker: str = "docker") -> list[str]:
    return [docker, "ps", "--all", "--quiet", "--no-trunc"]


def ps_service_ids(project: str, service: str, docker: str = "docker") -> list[str]:
    return [
        docker, "ps", "--all", "--quiet", "--no-trunc",
        "--filter", f"label={PROJECT_LABEL}={project}",
        "--filter", f"label={SERVICE_LABEL}={service}",
    ]


def inspect(ids: list[str], docker: str = "docker") -> list[str]:
    if not ids:
        raise ValueError("inspect needs at least one container id")
    return [docker, "inspect", *ids]


def image_ref(image_repo: str, release_id: str) -> str:
    return f"{image_repo}:{release_id}"


def compose(project: str, files: list[str], profile: str | None, *args: str,
            docker: str = "docker") -> list[str]:
    argv = [docker, "compose", "-p", project]
    for name in files:
        argv += ["-f", name]
    if profile:
        argv += ["--profile", profile]
    return argv + list(args)


def compose_build(project: str, files: list[str], profile: str | None, service: str,
                  docker: str = "docker") -> list[str]:
    return compose(project, files, profile, "build", service, docker=docker)


def compose_up(project: str, files: list[str], profile: str | None, service: str,
               docker: str = "docker") -> list[str]:
    """``up -d`` (never ``restart``): recreates the container when its config or image changed.

    ``--no-build``: the image was built (or found) by the step before; ``up`` must not build.
    """
    return compose(project, files, profile, "up", "-d", "--no-build", service, docker=docker)


def override_document(service: str, ref: str, git_sha: str = "", build_time: str = "") -> dict:
    """The compose override pinning the service image to the release tag (JSON is YAML)."""
    svc: dict = {"image": ref}
    args = {}
    if git_sha:
        args["GIT_SHA"] = git_sha
    if build_time:
        args["BUILD_TIME"] = build_time
    if args:
        svc["build"] = {"args": args}
    return {"services": {service: svc}}


def override_text(service: str, ref: str, git_sha: str = "", build_time: str = "") -> str:
    doc = override_document(service, ref, git_sha, build_time)
    return json.dumps(doc, indent=2, sort_keys=True) + "\n"


# --------------------------------------------------------------------------- parsers


def first_line(text: str, default: str = "(no output)") -> str:
    for line in (text or "").splitlines():
        if line.strip():
            return line.strip()
    return default


def tail_lines(text: str, count: int) -> str:
    lines = (text or "").rstrip("\n").splitlines()
    if count <= 0:
        return ""
    return "\n".join(lines[-count:])


def parse_server_version(text: str) -> str | None:
    text = (text or "").strip()
    if not text:
        return None
    try:
        value = json.loads(text)
    except ValueError:
        value = text
    value = str(value).strip()
    return value or None


_VERSION_RE = re.compile(r"v?(\d+)\.(\d+)(?:\.(\d+))?")


def parse_compose_version(text: str) -> tuple[int, int, int] | None:
    """'2.26.1', 'v2.26.1' or 'Docker Compose version v2.26.1' -> (2, 26, 1)."""
    match = _VERSION_RE.search(text or "")
    if not match:
        return None
    return int(match.group(1)), int(match.group(2)), int(match.group(3) or 0)


def compose_version_ok(version: tuple[int, int, int] | None,
                       minimum: tuple[int, int] = MIN_COMPOSE) -> bool:
    return version is not None and version[:2] >= minimum


def parse_ids(text: str) -> list[str]:
    return [line.strip() for line in (text or "").splitlines() if line.strip()]


def parse_image_id(rc: int, stdout: str) -> str | None:
    """`docker image inspect --format {{.Id}}` -> id, or None when the image is missing."""
    if rc != 0:
        return None
    value = (stdout or "").strip()
    return value or None


def _host_ports(attrs: dict) -> list[int]:
    ports = set()
    bindings = ((attrs.get("NetworkSettings") or {}).get("Ports") or {})
    for binds in bindings.values():
        for bind in binds or []:
            host_port = str((bind or {}).get("HostPort") or "")
            if host_port.isdigit():
                ports.add(int(host_port))
    return sorted(ports)


def parse_inspect(text: str) -> list[dict]:
    """`docker inspect <ids>` JSON -> [{id, name, image, image_id, state, running, project,
    service, host_ports, restart_count, exit_code}]."""
    try:
        items = json.loads(text or "[]")
    except ValueError as exc:
        raise ValueError(f"docker inspect printed no JSON: {first_line(text)}") from exc
    result = []
    for attrs in items or []:
        state = attrs.get("State") or {}
        config = attrs.get("Config") or {}
        labels = config.get("Labels") or {}
        result.append({
            "id": attrs.get("Id", ""),
            "name": str(attrs.get("Name", "")).lstrip("/"),
            "image": config.get("Image", ""),
            "image_id": attrs.get("Image", ""),
            "state": state.get("Status", "unknown"),
            "running": bool(state.get("Running")),
            "project": labels.get(PROJECT_LABEL),
            "service": labels.get(SERVICE_LABEL),
            "host_ports": _host_ports(attrs),
            "restart_count": int(attrs.get("RestartCount") or 0),
            "exit_code": state.get("ExitCode"),
        })
    return result


def service_containers(containers: list[dict], project: str, service: str) -> list[dict]:
    return [c for c in containers if c.get("project") == project and c.get("service") == service]


def publishers(containers: list[dict], port: int) -> list[dict]:
    """Running containers publishing host port `port`: [{name, image, id}]."""
    return [
        {"name": c["name"], "image": c["image"], "id": c["id"]}
        for c in containers
        if c.get("running") and port in c.get("host_ports", [])
    ]
