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
WORKING_DIR_LABEL = "com.docker.compose.project.working_dir"
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


def tag(source: str, ref: str, docker: str = "docker") -> list[str]:
    """``docker tag <source> <ref>`` (a release reusing the image built for the same code)."""
    return [docker, "tag", source, ref]


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

    ``--no-deps``: never touch the services it depends on (without it, compose recreates the
    db whenever the db's effective config differs); compose_release starts and waits for them
    itself (compose_start_dependency). ``--no-build``: the image was built (or found) by the
    step before; ``up`` must not build.
    """
    return compose(project, files, profile, "up", "-d", "--no-deps", "--no-build", service,
                   docker=docker)


def compose_start_dependency(project: str, files: list[str], profile: str | None,
                             service: str, docker: str = "docker") -> list[str]:
    """Start a missing or stopped dependency and never recreate it.

    ``--no-recreate``: an existing container is started as it is, even when its config differs
    from the release's compose file. ``--no-deps``: the dependencies come in order, each on its
    own. No ``--no-build``: a dependency whose image is missing (a db built from the app's
    ``docker/postgres``) is built once, as plain ``up`` would; an existing image is used as is.
    """
    return compose(project, files, profile, "up", "-d", "--no-deps", "--no-recreate", service,
                   docker=docker)


def compose_run_once(project: str, files: list[str], profile: str | None, service: str,
                     name: str, entrypoint: str, args: list[str],
                     docker: str = "docker") -> list[str]:
    """Run the service's image once: the service's env_file/environment/working_dir/user, no
    published ports (no ``--service-ports``), no dependencies, removed when it ends."""
    return compose(project, files, profile, "run", "--rm", "--no-deps", "-T", "--name", name,
                   "--entrypoint", entrypoint, service, *args, docker=docker)


def ps_name_ids(name: str, docker: str = "docker") -> list[str]:
    """Containers (any state) named exactly `name`."""
    return [docker, "ps", "--all", "--quiet", "--no-trunc", "--filter", f"name=^/{name}$"]


def rm_force(name: str, docker: str = "docker") -> list[str]:
    return [docker, "rm", "--force", name]


def logs_tail(container: str, lines: int, docker: str = "docker") -> list[str]:
    return [docker, "logs", "--tail", str(max(int(lines), 1)), container]


def logs_since(container: str, since: int, docker: str = "docker") -> list[str]:
    """``docker logs --since <unix seconds>``: what the container printed since then."""
    return [docker, "logs", "--since", str(int(since)), container]


def image_tags(refs: list[str], docker: str = "docker") -> list[str]:
    """One ``docker image inspect`` for several tags: one line ``<RepoTags JSON> <Id>`` each."""
    if not refs:
        raise ValueError("image_tags needs at least one image ref")
    return [docker, "image", "inspect", "--format", "{{json .RepoTags}} {{.Id}}", *refs]


def image_rm(ref: str, docker: str = "docker") -> list[str]:
    """Plain ``docker image rm`` (never --force: an image a container uses must stay)."""
    return [docker, "image", "rm", ref]


# JSON cannot carry a YAML tag: override_text swaps this string for compose's `!reset []`.
RESET_LIST = "__atp_reset_list__"


def override_document(service: str, ref: str, git_sha: str = "", build_time: str = "",
                      proxy: dict | None = None) -> dict:
    """The compose override pinning the service image to the release tag (JSON is YAML).

    proxy (zero-downtime, zero_downtime.proxy_service): the service publishes no host port
    (``ports: !reset []``) and the proxy service the document names takes its ports.
    """
    svc: dict = {"image": ref}
    args = {}
    if git_sha:
        args["GIT_SHA"] = git_sha
    if build_time:
        args["BUILD_TIME"] = build_time
    if args:
        svc["build"] = {"args": args}
    services = {service: svc}
    if proxy:
        svc["ports"] = RESET_LIST
        services[proxy["name"]] = proxy["service"]
    return {"services": services}


def override_text(service: str, ref: str, git_sha: str = "", build_time: str = "",
                  proxy: dict | None = None) -> str:
    doc = override_document(service, ref, git_sha, build_time, proxy)
    text = json.dumps(doc, indent=2, sort_keys=True) + "\n"
    return text.replace(json.dumps(RESET_LIST), "!reset []")


def compose_config(project: str, files: list[str], profile: str | None,
                   docker: str = "docker") -> list[str]:
    """The merged compose model as JSON (interpolated, env files read, nothing started)."""
    return compose(project, files, profile, "config", "--format", "json", docker=docker)


def compose_scale_up(project: str, files: list[str], profile: str | None, service: str,
                     count: int, docker: str = "docker") -> list[str]:
    """Start one more container of the service beside the running ones (zero-downtime).

    ``--no-recreate``: the running containers are kept as they are (the old release keeps
    serving); the new one is made from the release's compose files. ``--no-deps --no-build``
    as in compose_up.
    """
    return compose(project, files, profile, "up", "-d", "--no-deps", "--no-build",
                   "--no-recreate", "--scale", f"{service}={int(count)}", service,
                   docker=docker)


def compose_start_proxy(project: str, files: list[str], profile: str | None, service: str,
                        docker: str = "docker") -> list[str]:
    """Create the proxy when missing, never recreate it (a recreate would drop port 8002)."""
    return compose(project, files, profile, "up", "-d", "--no-deps", "--no-build",
                   "--no-recreate", service, docker=docker)


def stop(names: list[str], timeout: int, docker: str = "docker") -> list[str]:
    """``docker stop -t``: SIGTERM, then SIGKILL after `timeout` seconds (graceful drain)."""
    return [docker, "stop", "-t", str(max(int(timeout), 0)), *names]


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


def _ips(attrs: dict) -> dict:
    """{network name: IPv4 address} of a container (only networks with an address)."""
    nets = ((attrs.get("NetworkSettings") or {}).get("Networks") or {})
    return {name: net["IPAddress"] for name, net in sorted(nets.items())
            if isinstance(net, dict) and net.get("IPAddress")}


def parse_inspect(text: str) -> list[dict]:
    """`docker inspect <ids>` JSON -> [{id, name, image, image_id, state, running, project,
    service, host_ports, restart_count, exit_code, health, ips, cmd}] (health: healthy,
    starting, unhealthy, or None without a healthcheck; cmd: PID 1's argv)."""
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
            "working_dir": labels.get(WORKING_DIR_LABEL),
            "host_ports": _host_ports(attrs),
            "restart_count": int(attrs.get("RestartCount") or 0),
            "exit_code": state.get("ExitCode"),
            "health": (state.get("Health") or {}).get("Status") or None,
            "ips": _ips(attrs),
            "cmd": [str(x) for x in [attrs.get("Path"), *(attrs.get("Args") or [])] if x],
        })
    return result


SHELLS = frozenset({"sh", "bash", "dash", "ash"})


def shell_pid1(cmd: list[str]) -> str | None:
    """The shell when a container's PID 1 is ``sh -c "..."`` (the real app's
    ``sh -c "sleep 10 && gunicorn ..."``), else None. Such a PID 1 ignores SIGTERM: `docker
    stop` then waits its whole timeout and SIGKILLs, and the app never stops gracefully."""
    if len(cmd) >= 2 and cmd[0].rsplit("/", 1)[-1] in SHELLS and "-c" in cmd[1:]:
        return cmd[0]
    return None


def term_children(container: str, shell: str, docker: str = "docker") -> list[str]:
    """SIGTERM to every process of the container but PID 1 (the shell) -- gunicorn's master
    then stops gracefully and the shell, its command done, exits."""
    return [docker, "exec", container, shell, "-c", "kill -TERM -1 2>/dev/null; exit 0"]


def service_containers(containers: list[dict], project: str, service: str) -> list[dict]:
    return [c for c in containers if c.get("project") == project and c.get("service") == service]


def publishers(containers: list[dict], port: int) -> list[dict]:
    """Running containers publishing host port `port`: [{name, image, id}]."""
    return [
        {"name": c["name"], "image": c["image"], "id": c["id"]}
        for c in containers
        if c.get("running") and port in c.get("host_ports", [])
    ]


# --------------------------------------------------------------------------- failure excerpts

EXCERPT_LINES = 15
LINE_WIDTH = 240
_ANSI_RE = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
_BK_HEADER_RE = re.compile(r"^#(\d+) \[([^\]]+)\] (.*)$")
_BK_OUTPUT_RE = re.compile(r"^#(\d+) \d+\.\d+ ?(.*)$")
_BK_ERROR_RE = re.compile(r"^#(\d+) ERROR: (.*)$")
_BK_SUMMARY_HEAD_RE = re.compile(r"^ > \[([^\]]+)\] (.*?):?$")
_TIMESTAMP_RE = re.compile(r"^\d+\.\d+ ")
_CLASSIC_STEP_RE = re.compile(r"^Step \d+/\d+ : (.*)$")
_NOISE_RES = [re.compile(p) for p in (
    r"^#\d+ CACHED$",
    r"^#\d+ DONE\b",
    r"^#\d+ \[[^\]]*\binternal\]",
    r"^#\d+ (transferring|resolve|sha256:|extracting|exporting|writing image|naming to"
    r"|unpacking|preparing|loading|load)\b",
    r"^#0 building with",
    r"^#\d+ \[[^\]]*\] FROM ",
    r"^ ---> ",
    r"^Removing intermediate container",
    r"^Sending build context",
    r"^Step \d+/\d+ : FROM ",
    r"^DEPRECATED: The legacy builder",
    r"^\s+(BuildKit is currently disabled|environment-variable|install the buildx)",
    r"^-{3,}$",
    r"^\s*$",
)]
_ERROR_RES = [re.compile(p, re.I) for p in (
    r"failed to solve",
    r"returned a non-zero code",
    r"did not complete successfully",
    r"^(#\d+ )?(\d+\.\d+ )?ERROR\b",
    r"^Error\b",
    r"\berror( response from daemon)?:",
    r"failed to build",
    r"\bno such file or directory\b",
    r"\bis already in use\b",
    r"\bport is already allocated\b",
    r"\bnot found\b",
    r"\bdenied\b",
)]
_KEY_PREFIX_RE = re.compile(
    r"^(#\d+ )?(\d+\.\d+ )?(target [^:]+: )?(failed to solve: )?(error: )?", re.I)


def _clean(text: str) -> list[str]:
    """ANSI colours dropped, carriage-return progress collapsed, trailing blanks cut."""
    lines = []
    for raw in _ANSI_RE.sub("", text or "").split("\n"):
        lines.append(raw.rsplit("\r", 1)[-1].rstrip() if "\r" in raw.rstrip("\r") else
                     raw.rstrip())
    return lines


def short_line(line: str, width: int = LINE_WIDTH) -> str:
    """One line at most `width` characters: the start and the end kept (exit codes are there)."""
    if len(line) <= width:
        return line
    head = width * 2 // 3
    return line[:head] + " ... " + line[-(width - head - 5):]


def is_noise(line: str) -> bool:
    return any(p.search(line) for p in _NOISE_RES)


def _is_step_header(line: str) -> bool:
    return bool(_BK_HEADER_RE.match(line) or _BK_SUMMARY_HEAD_RE.match(line)
                or _CLASSIC_STEP_RE.match(line))


def is_error_line(line: str) -> bool:
    """A line saying what failed (a step header quoting a command with 'ERROR' in it is not)."""
    return (not is_noise(line) and not _is_step_header(line)
            and any(p.search(line) for p in _ERROR_RES))


def _key(line: str) -> str:
    return _KEY_PREFIX_RE.sub("", line.strip()).strip().lower()


def _failing_step(lines: list[str]) -> tuple[str, list[str]] | None:
    """(header, output lines) of the step that failed, from a BuildKit plain log or a classic
    builder log; None when the log names no failing step."""
    failed = None
    for line in lines:
        match = _BK_ERROR_RE.match(line)
        if match:
            failed = match.group(1)
    if failed is not None:
        header, output = f"step #{failed}", []
        for line in lines:
            match = _BK_HEADER_RE.match(line)
            if match and match.group(1) == failed and header == f"step #{failed}":
                header = f"[{match.group(2)}] {match.group(3)}"
                continue
            match = _BK_OUTPUT_RE.match(line)
            if match and match.group(1) == failed:
                output.append(match.group(2))
        return header, output
    for i, line in enumerate(lines):  # BuildKit's summary block: ' > [stage] RUN ...:'
        match = _BK_SUMMARY_HEAD_RE.match(line)
        if match:
            output = []
            for inner in lines[i + 1:]:
                if inner.startswith("------"):
                    break
                output.append(_TIMESTAMP_RE.sub("", inner))
            return f"[{match.group(1)}] {match.group(2)}", output
    step, output = None, []
    for line in lines:  # classic builder: 'Step 5/8 : RUN ...' ... 'returned a non-zero code'
        match = _CLASSIC_STEP_RE.match(line)
        if match:
            step, output = line, []
            continue
        if "returned a non-zero code" in line and step:
            return step, output
        if step and not is_noise(line):
            output.append(line)
    return None


def error_excerpt(text: str, limit: int = EXCERPT_LINES) -> list[str]:
    """The lines of a failed build or `up` worth reading, error lines FIRST, at most `limit`.

    1. The error lines (``failed to solve``, ``returned a non-zero code``, ``ERROR ...``,
       ``Error response from daemon``), de-duplicated, at most 3;
    2. the failing step (BuildKit ``[stage 5/6] RUN ...`` or classic ``Step 5/8 : RUN ...``)
       and the last lines of its output, its own error lines always kept;
    3. without a failing step (an ``up`` failure): the last meaningful lines.
    ``CACHED``, ``#N [internal] load ...``, ``DONE``, ``---> Using cache`` are never shown.
    """
    limit = max(int(limit), 1)
    lines = _clean(text)
    step = _failing_step(lines)
    step_keys = {_key(line) for line in (step[1] if step else [])}
    errors: list[str] = []
    where: dict[str, int] = {}
    for line in lines:
        if not is_error_line(line):
            continue
        key = _key(line)
        if key in step_keys:
            continue
        line = line.strip()
        if key in where:  # the same error twice: keep the plainer wording ('failed to solve')
            if line.startswith("#") < errors[where[key]].startswith("#"):
                errors[where[key]] = line
            continue
        where[key] = len(errors)
        errors.append(line)
    if step:
        errors = errors[-min(3, max(limit - 2, 1)):]
    out = [short_line(line) for line in errors[-limit:]]
    if step and len(out) < limit:
        header, output = step
        out.append(short_line(f"failing step: {header}"))
        body = [line for line in output if line.strip() and not is_noise(line)]
        room = limit - len(out)
        if room > 0 and body:
            keep = {i for i, line in enumerate(body) if is_error_line(line)}
            keep = set(sorted(keep)[-room:])
            for i in range(len(body) - 1, -1, -1):
                if len(keep) >= room:
                    break
                keep.add(i)
            out += [short_line("  " + body[i].strip()) for i in sorted(keep)]
    elif not step and len(out) < limit:
        shown = {_key(line) for line in out}
        rest = [line.strip() for line in lines
                if not is_noise(line) and _key(line) not in shown]
        out += [short_line(line) for line in rest[-(limit - len(out)):]]
    return out
