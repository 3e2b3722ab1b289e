# Copyright: atp.deploy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The services the deployed service depends on (db, ...): what to do with them (pure, stdlib).

compose_release never lets `up` touch a dependency (`up --no-deps`). Instead, before the backend
is touched, every dependency (source_preflight's compose.dependencies, deps first) is read by
its compose labels: a running one is kept as it is, a missing or stopped one is started (never
recreated), then each is waited for until its depends_on condition holds. This file decides;
the module runs the docker commands.
"""

from __future__ import annotations

import re

CONDITIONS = ("service_started", "service_healthy", "service_completed_successfully")
RUNNING, STOPPED, MISSING = "running", "stopped", "missing"
KEPT, STARTED = "kept", "started"
READY, WAIT, FAIL = "ready", "wait", "fail"

_SERVICE_RE = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9_.-]*$")


class DependencyConfigError(ValueError):
    """A malformed dependencies input; str() is the one-line problem."""


def normalize(dependencies: list | None) -> list[dict]:
    """[{name, condition, container_name}] validated, de-duplicated by name, order kept.

    condition defaults to service_started (compose's default); container_name may be None.
    Raises DependencyConfigError.
    """
    out: list[dict] = []
    for item in dependencies or []:
        if isinstance(item, str):
            item = {"name": item}
        if not isinstance(item, dict):
            raise DependencyConfigError(
                f"each dependency must be a dict {{name, condition, container_name}}, got "
                f"{type(item).__name__}; pass source_preflight_result.compose.dependencies "
                "as it is")
        name = str(item.get("name") or "").strip()
        if not _SERVICE_RE.match(name):
            raise DependencyConfigError(
                f"dependency name must be a compose service name, got {name!r}; pass "
                "source_preflight_result.compose.dependencies as it is")
        condition = str(item.get("condition") or "service_started").strip()
        if condition not in CONDITIONS:
            raise DependencyConfigError(
                f"dependency {name}: condition must be one of {', '.join(CONDITIONS)}, got "
                f"{condition!r}; check depends_on in the compose file")
        container_name = item.get("container_name")
        container_name = str(container_name).strip() if container_name else None
        if any(d["name"] == name for d in out):
            continue
        out.append({"name": name, "condition": condition, "container_name": container_name})
    return out


def before_state(containers: list[dict]) -> str:
    """running | stopped | missing, from the dependency's containers (docker_cmd.parse_inspect)."""
    if any(c.get("running") for c in containers):
        return RUNNING
    return STOPPED if containers else MISSING


def completed(containers: list[dict]) -> bool:
    """A one-shot dependency that already ran to a successful end."""
    return bool(containers) and all(
        not c.get("running") and c.get("exit_code") == 0 for c in containers)


def needs_start(dep: dict, containers: list[dict]) -> bool:
    """Whether `up -d --no-deps --no-recreate <dep>` must run: the dependency is missing or
    stopped (a completed one-shot under service_completed_successfully is left alone)."""
    state = before_state(containers)
    if state == RUNNING:
        return False
    return not (dep["condition"] == "service_completed_successfully" and completed(containers))


def health_of(containers: list[dict]) -> str | None:
    """What the result shows as the dependency's health: healthy/starting/unhealthy, 'running'
    (no healthcheck), 'exited <code>', or None when there is no container."""
    if not containers:
        return None
    running = [c for c in containers if c.get("running")]
    if running:
        return running[0].get("health") or "running"
    return f"exited {containers[0].get('exit_code')}"


def readiness(dep: dict, containers: list[dict]) -> tuple[str, str]:
    """(ready|wait|fail, what was seen) for the dependency's depends_on condition.

    service_started: a running container. service_healthy: a running container whose
    healthcheck says healthy (a container without a healthcheck can never be healthy: fail at
    once, as compose does). service_completed_successfully: exited with code 0 (another exit
    code fails at once).
    """
    running = [c for c in containers if c.get("running")]
    seen = health_of(containers) or "no container"
    condition = dep["condition"]
    if condition == "service_completed_successfully":
        if completed(containers):
            return READY, seen
        if containers and not running:
            return FAIL, seen
        return WAIT, seen
    if not running:
        return WAIT, seen
    if condition == "service_started":
        return READY, seen
    health = running[0].get("health")
    if health is None:
        return FAIL, "running without a healthcheck (condition service_healthy can never hold)"
    return (READY if health == "healthy" else WAIT), health


def name_conflict(dep: dict, named: list[dict], project: str) -> str | None:
    """A one-line problem when the dependency has no compose container in `project` but a
    container already carries its fixed container_name (another project, or made by hand):
    `up` would fail on the name and the backend could not reach it under its service name."""
    if not named or not dep.get("container_name"):
        return None
    other = named[0]
    owner = (f"compose project {other.get('project')!r}" if other.get("project")
             else "no compose project (made by hand)")
    return (f"dependency {dep['name']}: expected a container of compose project {project!r}, "
            f"found {dep['container_name']} ({other.get('state')}) belonging to {owner}; set "
            "deploy_compose_project to the project that runs it, or migrate it, then re-run")


def not_ready_message(dep: dict, verdict: str, seen: str, waited: int, log_lines: list[str],
                      untouched: str, container: str | None = None, bound: str = "") -> str:
    """The failure text for a dependency that did not reach its condition: verdict `fail`
    (it never can: no healthcheck, a failed one-shot) or `wait` (not in `waited` seconds)."""
    want = {"service_started": "running", "service_healthy": "healthy",
            "service_completed_successfully": "exited 0"}[dep["condition"]]
    name = container or dep.get("container_name") or dep["name"]
    if verdict == FAIL:
        what = f"dependency {dep['name']} cannot become {want} ({dep['condition']}): {seen}"
    else:
        what = f"dependency {dep['name']} did not become {want} within {waited}s (seen: {seen})"
    raise_it = ", or raise deploy_dependency_timeout" if not bound else f" ({bound})"
    head = (f"{what}; {untouched}; check it with `docker logs {name}`, fix it"
            + (raise_it if verdict != FAIL else "")
            + ", then re-run")
    if log_lines:
        return "\n".join([head + ". Its last log lines:", *log_lines])
    return head
