#!/usr/bin/python
# Copyright: atp.deploy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Build (if needed), gate, and activate one release with Docker Compose v2, in one call."""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: compose_release
short_description: Build the release image, check its routes, start its dependencies, up -d it
description:
  - Writes C(releases/<release_id>/docker-compose.deploy.yml), an override pinning the service
    image to C(<image_repo>:<release_id>) with build args C(GIT_SHA) and C(BUILD_TIME).
  - When that image is missing, runs C(docker compose ... build <service>) in the release
    directory. A failed build fails the task with the error lines first (the failing step and
    its output, at most I(build_log_lines) lines, no C(CACHED) noise) and touches nothing
    else (current and the running container stay as they were).
  - "Route gate: when the release is not active yet, runs the new image once with the
    service's compose config (env files, environment) but no published ports and no
    dependencies (C(docker compose run --rm --no-deps -T --entrypoint python3 <service>)),
    imports I(app_import) and lists its routes. A failing import or a missing route of
    I(expected_routes) fails the task before anything else changes; bounded by
    I(route_gate_timeout), after which the one-off container is removed."
  - "Dependencies (I(dependencies), the service's depends_on, deps first): a running one is
    kept untouched; a missing or stopped one is started, never recreated
    (C(up -d --no-deps --no-recreate <dep>)); then each is waited for until its condition
    holds (healthy, running, or exited 0), within I(dependency_timeout) seconds in all. A
    dependency that does not get there fails the task with its last log lines, before the
    backend is touched."
  - Switches the C(current) symlink atomically to C(releases/<release_id>).
  - Runs C(docker compose ... up -d --no-deps --no-build <service>) from the release directory
    (never C(restart), never without C(--no-deps)), then checks that exactly one container of
    project+service runs, with the image id of C(<image_repo>:<release_id>).
  - To roll back, call it again with the previous release id (release_state returns it; it is
    also in the result of this module, even when it fails) and I(route_gate=false).
version_added: "1.0.0"
author: atp.deploy contributors (!UNKNOWN)
extends_documentation_fragment:
  - atp.deploy.backend
  - atp.deploy.deploy_lock
options:
  release_id:
    description: The release to activate; C(releases/<release_id>) must be unpacked.
    type: str
    required: true
  project_name:
    description: Compose project name (C(-p)); keep it stable, the db volume is named after it.
    type: str
    default: automated-trading-platform
  profile:
    description: Compose profile enabling the service.
    type: str
    default: aws
  compose_file:
    description: Base compose file name inside the release.
    type: str
    default: docker-compose.yml
  git_sha:
    description: Passed as build arg C(GIT_SHA) (omitted when empty).
    type: str
    default: ""
  build_time:
    description: Passed as build arg C(BUILD_TIME); empty takes the release id's time
      (release model).
    type: str
    default: ""
  image_from:
    description: The image of a release holding the same code (release_state's
      C(plan.image_from)); when the release image is missing it is tagged from this one
      (C(docker tag)) instead of a build - an env-only change reuses the built image.
    type: str
    default: ""
  build_log_lines:
    description: At most this many lines of a failed build / up / gate are shown, error lines
      first (at least 3).
    type: int
    default: 15
  command_timeout:
    description: Seconds allowed for each of build, starting a dependency, and up (at least 1).
    type: int
    default: 900
  call_timeout:
    description:
      - Seconds this whole call may take (0, the default, sets no bound). Over SSM one remote
        call is cut off at C(ansible_aws_ssm_timeout), which would leave this module running on
        the instance with nobody reading it; the role passes that timeout less a margin. Each
        step (build, route gate, dependency wait, starting the container) then waits at most
        its own timeout or what is left of this one, whichever is less, and a step cut short
        says so.
    type: int
    default: 0
  route_gate:
    description: Run the route gate before activating a release that is not active yet.
    type: bool
    default: true
  route_gate_timeout:
    description: Seconds the one-off gate container may take (at least 1); then it is removed
      (C(docker rm --force)) and the task fails.
    type: int
    default: 120
  app_import:
    description: The app as gunicorn/uvicorn import it, C(package.module:attribute).
    type: str
    default: app.main:app
  expected_routes:
    description: Routes like C(GET /api/portfolio/snapshot) the app must register (the gate
      fails naming those it does not). Empty, the gate only checks that the app imports.
    type: list
    elements: str
    default:
      - GET /api/health
      - GET /api/dashboard/state
      - GET /api/portfolio/snapshot
      - GET /api/portfolio/latest
      - POST /api/portfolio/refresh
  dependencies:
    description: The service's dependencies, deps first, as source_preflight returns them in
      C(compose.dependencies) - dicts with C(name) (compose service), C(condition)
      (C(service_started), C(service_healthy) or C(service_completed_successfully)) and
      C(container_name) (null when the service has none).
    type: list
    elements: dict
    default: []
  dependency_timeout:
    description: Seconds (at least 1) all dependencies together may take to reach their
      condition.
    type: int
    default: 180
  zero_downtime:
    description:
      - "Activate without a gap (zero_downtime module_utils): start the release's container
        beside the running one (no host port; C(<service>-proxy) holds the port), wait until
        it answers I(health_path), and return it as C(candidate) WITHOUT switching C(current)
        or traffic; the smoke checks then run against C(candidate.url) and traffic_switch
        moves the port to it (or discards it)."
      - false recreates the container (C(up -d)); a proxy left from zero-downtime is removed
        first (one gap).
    type: bool
    default: false
  port:
    description: Host port the backend is served on (the proxy takes the service's ports).
    type: int
    default: 8002
  proxy_image:
    description: Image of the proxy (needs python3); empty tags the release image as
      C(<image_repo>:proxy) the first time (no registry, no pull).
    type: str
    default: ""
  health_path:
    description: Path the new container must answer 2xx/3xx on (waited for here with
      I(wait_candidate), else by the smoke checks; it is also C(candidate.health_url)).
    type: str
    default: /api/health
  candidate_timeout:
    description: Seconds the new container may take to answer I(health_path) (at least 1);
      with I(wait_candidate), it is then removed and the task fails, traffic untouched.
    type: int
    default: 180
  wait_candidate:
    description:
      - Zero-downtime; wait here until the new container answers I(health_path) (removing it
        when it exits, restarts or does not answer within I(candidate_timeout)).
      - false returns it once started (C(candidate.answering=false)); the next task waits
        for C(candidate.health_url) (O(atp.deploy.smoke_check#module:candidate)), so the
        app's start-up overlaps the opening of that task's SSM session.
    type: bool
    default: true
notes:
  - Supports check mode; it then only runs read-only docker commands (image inspect, ps,
    inspect) and reports C(would_build), C(would_activate), C(would_check_routes) and
    C(would_start); the route gate does not run.
  - On SSM, C(ansible_aws_ssm_timeout) caps the whole module run; raise it above build +
    gate + dependency wait + up.
"""

EXAMPLES = r"""
- name: Build, gate and activate the release
  atp.deploy.compose_release:
    app_root: /home/ubuntu/automated-trading-platform
    release_id: "{{ atp_state.plan.release_id | default(atp_release_id, true) }}"
    git_sha: "{{ atp_git_sha }}"
    build_time: "{{ atp_build_time }}"
    expected_routes: ["GET /api/health", "GET /api/portfolio/snapshot"]
    dependencies: "{{ atp_source.compose.dependencies }}"
  register: atp_compose

- name: Roll back, without the gate (the previous release ran before)
  atp.deploy.compose_release:
    release_id: "{{ atp_compose.previous_release }}"
    route_gate: false
"""

RETURN = r"""
release_id:
  description: The activated release.
  returned: always
  type: str
previous_release:
  description: Release C(current) pointed to before (null if none).
  returned: always
  type: str
image_ref:
  description: C(<image_repo>:<release_id>).
  returned: always
  type: str
image_id:
  description: Id of the release image (null in check mode when it would be built).
  returned: success
  type: str
container_id:
  description: Id of the running backend container (null in check mode).
  returned: success
  type: str
container_name:
  description: Name of the running backend container (null in check mode).
  returned: success
  type: str
built:
  description: Whether the image was built.
  returned: always
  type: bool
tagged_from:
  description: The image ref the release image was tagged from (I(image_from)), or null.
  returned: always
  type: str
recreated:
  description: Whether the backend container id changed (or it was started).
  returned: always
  type: bool
switched:
  description: Whether C(current) was switched (false when the build, the gate or a
    dependency failed - nothing to roll back then).
  returned: always
  type: bool
route_gate:
  description: "The route gate: C(checked) (it ran), C(routes) (how many routes the app
    registers), C(missing) (expected routes it does not register)."
  returned: always
  type: dict
  sample: {checked: true, routes: 112, missing: []}
dependencies:
  description: "One entry per dependency: C(name), C(condition), C(before) (running, stopped,
    missing), C(action) (kept, started; would_start in check mode), C(health) (healthy,
    starting, unhealthy, running, exited N)."
  returned: always
  type: list
  elements: dict
  sample: [{name: db, condition: service_healthy, before: running, action: kept,
            health: healthy}]
candidate:
  description: "Zero-downtime: the new container, running beside the old one and answering
    health (C(answering); false with I(wait_candidate=false): started, not yet waited for),
    not yet receiving traffic - C(id), C(name), C(url) (its own address, for the smoke
    checks), C(upstream) (C(name:port) for the proxy), C(health_url), C(started_at) (epoch
    seconds), C(release_id), C(service); null when nothing was started."
  returned: always
  type: dict
old_containers:
  description: Zero-downtime; names of the containers serving before (traffic_switch drains
    and stops them after the switch).
  returned: always
  type: list
  elements: str
topology:
  description: "How the port was served before: C(proxy), C(direct) (the container published
    it itself: the switch converts it, with one gap) or C(none)."
  returned: always
  type: str
timings:
  description: "Seconds each step took, for the steps that ran: C(build), C(route_gate),
    C(dependencies), C(candidate) (zero-downtime: started beside the old one until it
    answered health) or C(up) (recreate)."
  returned: always
  type: dict
  sample: {build: 41.2, route_gate: 3.1, dependencies: 0.2, candidate: 12.4}
would_build:
  description: Check mode only; the image is missing.
  returned: check mode
  type: bool
would_activate:
  description: Check mode only; current or the container would change.
  returned: check mode
  type: bool
would_check_routes:
  description: Check mode only; the route gate would run.
  returned: check mode
  type: bool
would_start:
  description: Check mode only; dependencies that would be started.
  returned: check mode
  type: list
  elements: str
"""

import contextlib  # noqa: E402
import inspect  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import secrets  # noqa: E402
import time  # noqa: E402

from ansible.module_utils.basic import AnsibleModule  # noqa: E402
from ansible_collections.atp.deploy.plugins.module_utils import (  # noqa: E402
    compose_deps,
    deploy_lock,
    docker_cmd,
    docker_read,
    fsutil,
    masking,
    proc,
    release_model,
    route_gate,
    routes,
    tcp_proxy,
    zero_downtime,
)
from ansible_collections.atp.deploy.plugins.module_utils.release_manifest import (  # noqa: E402
    MANIFEST_NAME,
)

READ_TIMEOUT = 60
BUILD_ENV = {"BUILDKIT_PROGRESS": "plain"}
POLL_INTERVAL = 2.0
DEPENDENCY_LOG_LINES = 10
GATE_ENTRYPOINT = "python3"
MIN_LOG_LINES = 3


class Budget:
    """One deadline for the whole call (call_timeout > 0): a step waits at most its own
    timeout or what is left, whichever is less."""

    def __init__(self) -> None:
        self.seconds = 0
        self.deadline: float | None = None

    def start(self, seconds: int) -> None:
        self.seconds = seconds
        self.deadline = time.monotonic() + seconds if seconds > 0 else None

    def left(self) -> float | None:
        """Seconds left of the call (None: no bound)."""
        return None if self.deadline is None else self.deadline - time.monotonic()

    def limit(self, own: int, name: str) -> tuple[int, str]:
        """(seconds, the setting that bounds them) for a step whose own timeout is `own`."""
        if self.deadline is None:
            return own, name
        left = max(1, int(self.deadline - time.monotonic()))
        if own <= left:
            return own, name
        return left, (f"what was left of this call's {self.seconds}s, call_timeout: "
                      "ansible_aws_ssm_timeout less a margin")


BUDGET = Budget()  # started by main(): one call, one deadline
# A step that changes what runs (switching current + up, starting the new container) is not
# begun with less than this left of the call (or its own timeout, when that is shorter): cut
# off halfway it would leave a half-made change.
MIN_STEP_SECONDS = 60


def ensure_time(dk, step: str, own: int, untouched: str) -> None:
    """Fail, changing nothing, when too little of the call is left to begin `step`."""
    left = BUDGET.left()
    if left is not None and left < min(own, MIN_STEP_SECONDS):
        dk.fail(f"{step} not begun: {max(left, 0):.0f}s of this call's {BUDGET.seconds}s "
                "(call_timeout: ansible_aws_ssm_timeout less a margin) were left, the steps "
                f"before it used the rest; {untouched}; re-run the deploy (what was built "
                "is kept) or raise ansible_aws_ssm_timeout")


class Docker:
    def __init__(self, module: AnsibleModule, docker: str, project: str, result: dict):
        self.module = module
        self.result = result
        self.docker = docker
        self.project = project

    def image_id(self, ref: str) -> str | None:
        return docker_read.image_id(self.docker, ref, READ_TIMEOUT)

    def service_containers(self, service: str) -> list[dict]:
        try:
            return docker_read.containers(self.docker, READ_TIMEOUT, self.project, service)
        except docker_read.DockerReadError as exc:
            hint = "" if exc.stage == "inspect" else " (journalctl -u docker)"
            self.fail(f"{exc}; check the docker engine{hint}")

    def named_containers(self, name: str) -> list[dict]:
        """Containers named exactly `name` (any project, any state); [] when unreadable."""
        rc, out, _err = proc.run(docker_cmd.ps_name_ids(name, self.docker), timeout=READ_TIMEOUT)
        ids = docker_cmd.parse_ids(out) if rc == 0 else []
        if not ids:
            return []
        rc, out, _err = proc.run(docker_cmd.inspect(ids, self.docker), timeout=READ_TIMEOUT)
        try:
            return docker_cmd.parse_inspect(out) if rc == 0 else []
        except ValueError:
            return []

    def log_tail(self, container: str, lines: int) -> list[str]:
        return docker_read.log_tail(self.docker, container, lines, READ_TIMEOUT)

    def fail(self, msg: str) -> None:
        self.module.fail_json(msg=msg, **self.result)


ARGUMENT_SPEC = {
    "app_root": {"type": "path", "default": "/home/ubuntu/automated-trading-platform"},
    "release_id": {"type": "str", "required": True},
    "project_name": {"type": "str", "default": "automated-trading-platform"},
    "service": {"type": "str", "default": "backend-aws"},
    "profile": {"type": "str", "default": "aws"},
    "image_repo": {"type": "str", "default": "automated-trading-platform-backend-aws"},
    "compose_file": {"type": "str", "default": "docker-compose.yml"},
    "git_sha": {"type": "str", "default": ""},
    "build_time": {"type": "str", "default": ""},
    "image_from": {"type": "str", "default": ""},
    "build_log_lines": {"type": "int", "default": 15},
    "command_timeout": {"type": "int", "default": 900},
    "call_timeout": {"type": "int", "default": 0},
    "route_gate": {"type": "bool", "default": True},
    "route_gate_timeout": {"type": "int", "default": 120},
    "app_import": {"type": "str", "default": "app.main:app"},
    "expected_routes": {"type": "list", "elements": "str",
                        "default": list(routes.EXPECTED_ROUTES)},
    "dependencies": {"type": "list", "elements": "dict", "default": []},
    "dependency_timeout": {"type": "int", "default": 180},
    "zero_downtime": {"type": "bool", "default": False},
    "port": {"type": "int", "default": 8002},
    "proxy_image": {"type": "str", "default": ""},
    "health_path": {"type": "str", "default": "/api/health"},
    "candidate_timeout": {"type": "int", "default": 180},
    "wait_candidate": {"type": "bool", "default": True},
    **deploy_lock.MODULE_ARGS,
}


def check_params(p: dict) -> tuple[list[str], tuple[str, str], list[dict]]:
    """(expected routes, (module, attr), dependencies), or ValueError with a one-line problem."""
    for name, minimum in (("route_gate_timeout", 1), ("dependency_timeout", 1),
                          ("command_timeout", 1), ("build_log_lines", MIN_LOG_LINES),
                          ("candidate_timeout", 1)):
        if p[name] < minimum:
            raise ValueError(f"{name} must be at least {minimum}, got {p[name]}; set "
                             f"deploy_{name.replace('command_timeout', 'build_timeout')} to a "
                             f"number >= {minimum}")
    expected = routes.normalize_all(p["expected_routes"])
    target = route_gate.parse_app_import(p["app_import"])
    deps = compose_deps.normalize(p["dependencies"])
    if any(d["name"] == p["service"] for d in deps):
        raise ValueError(f"dependencies list the service {p['service']} itself; expected only "
                         "the services it depends on (source_preflight's compose.dependencies)")
    return expected, target, deps


def main() -> None:
    module = AnsibleModule(
        argument_spec=ARGUMENT_SPEC,
        supports_check_mode=True,
    )
    p = module.params
    app_root, rid, service, project = p["app_root"], p["release_id"], p["service"], \
        p["project_name"]
    ref = release_model.image_ref(p["image_repo"], rid) if rid else ""
    current_link = release_model.current_link_path(app_root)
    previous = release_model.current(app_root)
    result = {"changed": False, "release_id": rid, "previous_release": previous, "image_ref": ref,
              "image_id": None, "container_id": None, "container_name": None, "built": False,
              "recreated": False, "switched": False, "tagged_from": None,
              "route_gate": {"checked": False, "routes": 0, "missing": []},
              "dependencies": [], "candidate": None, "old_containers": [],
              "topology": None, "timings": {}}
    untouched = ("the running container was not touched and current still points at "
                 f"{previous}" if previous else
                 "the running container was not touched and current was not created")

    def fail(msg: str) -> None:
        module.fail_json(msg=msg, **result)

    # Build, gate, up and dependency output can quote env values: masked in all we return.
    masking.protect(module, masking.for_release(app_root, os.path.join(
        app_root, "releases", rid or "none")))
    time_failures(module, result)
    BUDGET.start(p["call_timeout"])
    lock_file = deploy_lock.module_lock_file(p, app_root)
    deploy_lock.hold(module, lock_file, p["lock_token"], "compose_release", result)
    try:
        expected, (app_module, app_attr), deps = check_params(p)
    except ValueError as exc:
        fail(str(exc))
    log_lines = p["build_log_lines"]
    problem = release_model.id_problem(rid)
    if problem:
        fail(problem)
    release_dir = release_model.release_path(app_root, rid)
    # In check mode a new release is not made (release_unpack / env_files only report): what
    # activating it would do is still reported.
    unpacked = os.path.isfile(os.path.join(release_dir, MANIFEST_NAME))
    if not unpacked and not module.check_mode:
        fail(f"release {rid} is not unpacked: expected {release_dir}/{MANIFEST_NAME}, not "
             "found; run release_unpack first")
    if unpacked and not os.path.isfile(os.path.join(release_dir, p["compose_file"])):
        fail(f"release {rid} has no {p['compose_file']} in {release_dir}; expected the app's "
             "compose file in the archive, rebuild the archive")
    if os.path.lexists(current_link) and not os.path.islink(current_link):
        fail(f"{current_link} must be a symlink, but it is a real file or directory; move it "
             "away (it is not a release) and re-run")
    docker = module.get_bin_path("docker")
    if not docker:
        fail("docker CLI not found in PATH on the instance, expected docker with compose v2; "
             "install docker")
    dk = Docker(module, docker, project, result)
    files = [p["compose_file"], docker_cmd.OVERRIDE_NAME]

    image_id = dk.image_id(ref)
    before = dk.service_containers(service)
    before_running = {c["id"] for c in before if c["running"]}
    link_target = release_model.current_link_target(rid)
    needs_switch = fsutil.read_link_target(current_link) != link_target

    def would_activate(img: str | None) -> bool:
        stale = [c for c in before if c["running"] and c["image_id"] != img]
        return needs_switch or not before_running or img is None or bool(stale)

    if module.check_mode:
        if image_id is None and p["image_from"]:
            image_id = dk.image_id(p["image_from"])
            result["tagged_from"] = p["image_from"] if image_id else None
        activate = would_activate(image_id)
        entries = []
        for dep in deps:
            containers = dk.service_containers(dep["name"])
            start = compose_deps.needs_start(dep, containers)
            entries.append({"name": dep["name"], "condition": dep["condition"],
                            "before": compose_deps.before_state(containers),
                            "action": "would_start" if start else compose_deps.KEPT,
                            "health": compose_deps.health_of(containers)})
        would_start = [e["name"] for e in entries if e["action"] == "would_start"]
        result.update(image_id=image_id, would_build=image_id is None,
                      would_activate=activate, would_check_routes=activate and p["route_gate"],
                      would_start=would_start, dependencies=entries,
                      changed=image_id is None or activate or bool(would_start))
        module.exit_json(**result)

    st = os.stat(release_dir)
    build_time = p["build_time"] or release_model.build_time(rid)
    zd = zero_downtime_layout(dk, p, release_dir, untouched) if p["zero_downtime"] else None
    override = docker_cmd.override_text(service, ref, p["git_sha"], build_time,
                                        zd["proxy"] if zd else None).encode()
    override_path = os.path.join(release_dir, docker_cmd.OVERRIDE_NAME)
    try:
        if fsutil.file_differs(override_path, override, 0o644, st.st_uid, st.st_gid):
            fsutil.atomic_write(override_path, override, 0o644, st.st_uid, st.st_gid)
    except OSError as exc:
        fail(f"writing {override_path} failed: {exc.strerror or exc}; check permissions/disk")

    # 1. The image: a release of the same code (an env-only change) reuses the image built for
    #    it, tagged for this release; else build (only when the release image is missing).
    if image_id is None and p["image_from"]:
        image_id = tag_image(dk, p["image_from"], ref, untouched)
        result["tagged_from"] = p["image_from"]
    if image_id is None:
        argv = docker_cmd.compose_build(project, files, p["profile"], service, docker)
        limit, bound = BUDGET.limit(p["command_timeout"], "deploy_build_timeout")
        with timed(result, "build"):
            rc, out, _err = proc.run(argv, cwd=release_dir, env_update=BUILD_ENV,
                                     timeout=limit, merge_stderr=True)
        if rc != 0:
            how = (f"did not finish within {limit}s ({bound})"
                   if rc == proc.TIMEOUT_RC else f"failed (exit {rc})")
            excerpt = docker_cmd.error_excerpt(out, log_lines - 2)
            fail("\n".join([f"docker build for release {rid} {how}:", *excerpt,
                            f"{untouched}; fix the build and re-run"]))
        result["built"] = True
        # A build can take long: still ours before anything is switched?
        deploy_lock.hold(module, lock_file, p["lock_token"], "compose_release", result)
        image_id = dk.image_id(ref)
        if image_id is None:
            fail(f"docker build for release {rid} succeeded but image {ref} is missing; expected "
                 f"service {service} to be built as that tag, check {p['compose_file']}")
    result["image_id"] = image_id

    # 2. Route gate: the new image imports and registers every expected route.
    if p["route_gate"] and would_activate(image_id):
        with timed(result, "route_gate"):
            run_gate(module, dk, p, release_dir, files, expected, app_module, app_attr, result,
                     untouched)

    # 3. Dependencies: kept when running, started (never recreated) otherwise, then waited for.
    with timed(result, "dependencies"):
        ensure_dependencies(dk, p, release_dir, files, deps, result, untouched)

    # 4z. Zero-downtime: the new container beside the old one, checked by the next steps.
    if zd:
        ensure_time(dk, "starting the new container", p["command_timeout"], untouched)
        with timed(result, "candidate"):
            start_beside(dk, p, release_dir, files, image_id, before, needs_switch, zd, result,
                         untouched)
        module.exit_json(**result)

    # 4. Switch current, then up the backend alone (a proxy left from zero-downtime goes).
    ensure_time(dk, "switching current and recreating the container", p["command_timeout"],
                untouched)
    remove_proxy(dk, service, result)
    if needs_switch:
        try:
            fsutil.atomic_symlink(link_target, current_link, st.st_uid, st.st_gid)
        except (OSError, ValueError) as exc:
            fail(f"switching {current_link} to {link_target} failed: {exc}; the running "
                 "container was not touched, fix and re-run")
        result["switched"] = True

    argv = docker_cmd.compose_up(project, files, p["profile"], service, docker)
    limit, bound = BUDGET.limit(p["command_timeout"], "deploy_build_timeout")
    with timed(result, "up"):
        rc, out, _err = proc.run(argv, cwd=release_dir, timeout=limit, merge_stderr=True)
    if rc != 0:
        result["changed"] = True
        how = (f"did not finish within {limit}s ({bound})" if rc == proc.TIMEOUT_RC
               else f"failed (exit {rc})")
        fail("\n".join([f"docker compose up for release {rid} {how}:",
                        *docker_cmd.error_excerpt(out, log_lines - 2),
                        f"current now points at {rid} (previous: {previous}); roll back with "
                        f"release_id={previous}"]))

    after = dk.service_containers(service)
    running = [c for c in after if c["running"]]
    after_ids = {c["id"] for c in running}
    result["recreated"] = after_ids != before_running
    started = any(d["action"] == compose_deps.STARTED for d in result["dependencies"])
    result["changed"] = (result["built"] or result["switched"] or result["recreated"]
                         or started)
    if len(running) != 1:
        seen = ", ".join(f"{c['name']} ({c['state']})" for c in after) or "none"
        fail(f"expected exactly one running container for {project}/{service} after "
             f"up, found {len(running)}: {seen}; check docker logs and the compose file")
    container = running[0]
    result.update(container_id=container["id"], container_name=container["name"])
    if container["image_id"] != image_id:
        fail(f"container {container['name']} runs image {container['image_id']}, expected "
             f"{image_id} (release {rid}); check the service's image in the compose files")
    module.exit_json(**result)


@contextlib.contextmanager
def timed(result: dict, step: str):
    """Seconds the step took, in result["timings"][step] (what a slow deploy waited for).
    A step that fails from inside (fail_json ends the module there) is timed by
    time_failures' wrapper, so a failed deploy also says what it waited for."""
    started = time.monotonic()
    _RUNNING[step] = started
    try:
        yield
    finally:
        _RUNNING.pop(step, None)
        result["timings"][step] = round(time.monotonic() - started, 1)


_RUNNING: dict[str, float] = {}


def time_failures(module: AnsibleModule, result: dict) -> None:
    """Wrap module.fail_json: the steps still running when the module fails get their time
    so far in result["timings"] (the failing route gate, dependency or new container)."""
    fail_json = module.fail_json

    def failing(msg=None, **kw):
        now = time.monotonic()
        for step, started in list(_RUNNING.items()):
            result["timings"][step] = round(now - started, 1)
        fail_json(msg=msg, **dict(kw, timings=result["timings"]))

    module.fail_json = failing


def tag_image(dk: Docker, source: str, ref: str, untouched: str) -> str:
    """``docker tag <source> <ref>``; the image id of ref, or fail naming the cause."""
    rc, out, err = proc.run(docker_cmd.tag(source, ref, dk.docker), timeout=READ_TIMEOUT,
                            merge_stderr=True)
    image_id = dk.image_id(ref) if rc == 0 else None
    if image_id is None:
        dk.fail(f"tagging {source} as {ref} (same code, no build) failed (exit {rc}): "
                f"{docker_cmd.first_line(err or out)}; {untouched}; re-run the deploy (it "
                "builds when that image is gone)")
    return image_id


def run_gate(module: AnsibleModule, dk: Docker, p: dict, release_dir: str, files: list[str],
             expected: list[str], app_module: str, app_attr: str, result: dict,
             untouched: str) -> None:
    """Run route_gate.PROGRAM once in the release image; fail the module when it does not pass.

    `docker compose run` (not `docker run`): the one-off container gets exactly the env_file,
    environment, working_dir and user the service will have, from the same compose files; it
    publishes no ports (no --service-ports) and starts no dependency (--no-deps).
    """
    name = route_gate.oneoff_name(p["project_name"], p["service"], secrets.token_hex(4))
    argv = docker_cmd.compose_run_once(p["project_name"], files, p["profile"], p["service"],
                                       name, GATE_ENTRYPOINT,
                                       ["-c", route_gate.PROGRAM, app_module, app_attr],
                                       dk.docker)
    limit, bound = BUDGET.limit(p["route_gate_timeout"], "")
    rc, out, err = proc.run(argv, cwd=release_dir, timeout=limit, merge_stderr=True)
    timed_out = rc == proc.TIMEOUT_RC and err.startswith("timed out")
    if timed_out:
        proc.run(docker_cmd.rm_force(name, dk.docker), timeout=READ_TIMEOUT)
    verdict = route_gate.evaluate(rc, out, expected, timed_out=timed_out)
    verdict["detail"] = verdict["detail"][-(p["build_log_lines"] - 1):]
    result["route_gate"] = {"checked": True, "routes": verdict["routes"],
                            "missing": verdict["missing"]}
    if not verdict["ok"]:
        module.fail_json(msg=route_gate.failure_message(
            verdict, p["release_id"], p["app_import"], untouched,
            timeout=limit, oneoff=name, rc=rc, bound=bound), **result)


def ensure_dependencies(dk: Docker, p: dict, release_dir: str, files: list[str],
                        deps: list[dict], result: dict, untouched: str) -> None:
    """Keep running dependencies, start missing/stopped ones (never recreate), wait for each
    (in order, one deadline for all) until its depends_on condition holds."""
    waited, bound = BUDGET.limit(p["dependency_timeout"], "")
    deadline = time.monotonic() + waited
    for dep in deps:
        containers = dk.service_containers(dep["name"])
        entry = {"name": dep["name"], "condition": dep["condition"],
                 "before": compose_deps.before_state(containers), "action": compose_deps.KEPT,
                 "health": compose_deps.health_of(containers)}
        result["dependencies"].append(entry)
        if not containers and dep["container_name"]:
            problem = compose_deps.name_conflict(
                dep, dk.named_containers(dep["container_name"]), p["project_name"])
            if problem:
                dk.fail(f"{problem}; {untouched}")
        if compose_deps.needs_start(dep, containers):
            argv = docker_cmd.compose_start_dependency(p["project_name"], files, p["profile"],
                                                       dep["name"], dk.docker)
            limit, why = BUDGET.limit(p["command_timeout"], "deploy_build_timeout")
            rc, out, _err = proc.run(argv, cwd=release_dir, merge_stderr=True, timeout=limit)
            if rc != 0:
                how = (f"did not finish within {limit}s ({why})" if rc == proc.TIMEOUT_RC
                       else f"failed (exit {rc})")
                dk.fail("\n".join([
                    f"starting dependency {dep['name']} ({entry['before']}) {how}:",
                    *docker_cmd.error_excerpt(out, p["build_log_lines"] - 2),
                    f"{untouched}; fix it and re-run"]))
            entry["action"] = compose_deps.STARTED
            result["changed"] = True
            containers = dk.service_containers(dep["name"])
        while True:
            verdict, seen = compose_deps.readiness(dep, containers)
            entry["health"] = compose_deps.health_of(containers)
            if verdict == compose_deps.READY:
                break
            remaining = deadline - time.monotonic()
            if verdict == compose_deps.FAIL or remaining <= 0:
                where = containers[0] if containers else None
                logs = dk.log_tail(where["id"], DEPENDENCY_LOG_LINES) if where else []
                dk.fail(compose_deps.not_ready_message(
                    dep, verdict, seen, waited, logs, untouched,
                    container=where["name"] if where else None, bound=bound))
            time.sleep(min(POLL_INTERVAL, max(remaining, 0.05)))
            containers = dk.service_containers(dep["name"])


# ----------------------------------------------------------------------------- zero-downtime


def zero_downtime_layout(dk: Docker, p: dict, release_dir: str, untouched: str) -> dict:
    """Read the service's ports and networks from the release's own compose file (merged by
    compose itself) and describe the proxy: {proxy, target, networks, ports}."""
    service = p["service"]
    argv = docker_cmd.compose_config(p["project_name"], [p["compose_file"]], p["profile"],
                                     dk.docker)
    rc, out, err = proc.run(argv, cwd=release_dir, timeout=READ_TIMEOUT)
    try:
        config = json.loads(out) if rc == 0 else None
    except ValueError:
        config = None
    if not isinstance(config, dict):
        dk.fail(f"docker compose config for {p['compose_file']} failed (exit {rc}): "
                f"{docker_cmd.first_line(err or out)}; expected a valid compose file, "
                f"{untouched}")
    ports = zero_downtime.service_ports(config, service)
    try:
        target = zero_downtime.target_port(ports, service, p["port"])
    except ValueError as exc:
        dk.fail(f"{exc}; {untouched}")
    networks = zero_downtime.service_networks(config, service)
    image = p["proxy_image"] or zero_downtime.proxy_image(p["image_repo"])
    proxy = zero_downtime.proxy_service(service, image, ports, networks, p["app_root"],
                                        p["profile"], target)
    return {"proxy": proxy, "target": target, "networks": networks, "image": image}


def ensure_proxy_files(dk: Docker, app_root: str) -> str:
    """shared/proxy/ (owned by the proxy's user) with the proxy program; its path."""
    pdir = zero_downtime.proxy_dir(app_root)
    uid = zero_downtime.PROXY_UID
    try:
        os.makedirs(pdir, mode=0o755, exist_ok=True)
        os.chown(pdir, uid, uid)
        os.chmod(pdir, 0o755)
        source = inspect.getsource(tcp_proxy).encode()
        script = os.path.join(pdir, zero_downtime.SCRIPT_NAME)
        if fsutil.file_differs(script, source, 0o644, 0, 0):
            fsutil.atomic_write(script, source, 0o644, 0, 0)
    except (OSError, TypeError) as exc:
        dk.fail(f"preparing {pdir} for the proxy failed: {exc}; check permissions/disk")
    return pdir


def remove_containers(dk: Docker, names: list[str]) -> None:
    for name in names:
        proc.run(docker_cmd.rm_force(name, dk.docker), timeout=READ_TIMEOUT)


def remove_proxy(dk: Docker, service: str, result: dict) -> None:
    """Recreate mode after zero-downtime: the proxy holds the port the service will publish."""
    proxies = dk.service_containers(zero_downtime.proxy_name(service))
    if proxies:
        remove_containers(dk, [c["name"] for c in proxies])
        result["proxy_removed"] = [c["name"] for c in proxies]


def start_beside(dk: Docker, p: dict, release_dir: str, files: list[str], image_id: str,
                 before: list[dict], needs_switch: bool, zd: dict, result: dict,
                 untouched: str) -> None:
    """Start the release's container beside the running one; return it once it answers."""
    service, project, rid = p["service"], p["project_name"], p["release_id"]
    pdir = ensure_proxy_files(dk, p["app_root"])
    proxies = dk.service_containers(zero_downtime.proxy_name(service))
    upstream = zero_downtime.read_upstream(os.path.join(pdir, zero_downtime.UPSTREAM_NAME))
    result["topology"] = zero_downtime.topology(before, proxies, p["port"])
    running = [c for c in before if c["running"]]
    if not needs_switch and zero_downtime.settled(before, proxies, upstream, image_id,
                                                  p["port"]):
        result.update(container_id=running[0]["id"], container_name=running[0]["name"])
        started = any(d["action"] == compose_deps.STARTED for d in result["dependencies"])
        result["changed"] = result["built"] or bool(result["tagged_from"]) or started
        return
    result["changed"] = True
    if not p["proxy_image"] and dk.image_id(zd["image"]) is None:
        tag_image(dk, release_model.image_ref(p["image_repo"], rid), zd["image"], untouched)
    # Stopped containers of the service serve nothing; compose would start them again.
    remove_containers(dk, [c["name"] for c in before if not c["running"]])
    before = running
    argv = docker_cmd.compose_scale_up(project, files, p["profile"], service,
                                       len(running) + 1, dk.docker)
    started_at = round(time.time(), 3)
    limit, bound = BUDGET.limit(p["command_timeout"], "deploy_build_timeout")
    rc, out, _err = proc.run(argv, cwd=release_dir, timeout=limit, merge_stderr=True)
    after = dk.service_containers(service)
    new = zero_downtime.new_containers(before, after)
    gone = {c["id"] for c in before} - {c["id"] for c in after if c["running"]}

    def discard(why: list[str]) -> None:
        remove_containers(dk, [c["name"] for c in new])
        gone_note = f"the new container never received traffic and was removed; {untouched}"
        dk.fail("\n".join([*why, gone_note]))

    if rc != 0:
        how = (f"did not finish within {limit}s ({bound})" if rc == proc.TIMEOUT_RC
               else f"failed (exit {rc})")
        discard([f"starting the container of release {rid} beside the running one {how}:",
                 *docker_cmd.error_excerpt(out, p["build_log_lines"] - 2)])
    if gone:
        remove_containers(dk, [c["name"] for c in new])
        dk.fail(f"starting release {rid} beside the running container stopped "
                f"{len(gone)} running container(s) of {service}; expected them kept "
                "(--no-recreate); check the compose version and playbooks/diagnose.yml")
    if len(new) != 1:
        discard([f"expected one new container of {project}/{service} for release {rid}, "
                 f"found {len(new)}: {', '.join(c['name'] for c in new) or 'none'}"])
    cand = new[0]
    if cand["image_id"] != image_id:
        discard([f"the new container {cand['name']} runs image {cand['image_id']}, expected "
                 f"{image_id} (release {rid}); check the service's image in the compose files"])
    url = zero_downtime.container_url(cand, zd["target"], zd["networks"])
    if url and p["wait_candidate"]:
        def state() -> dict | None:
            return next((c for c in dk.service_containers(cand["service"])
                         if c["id"] == cand["id"]), None)

        waited, bound = BUDGET.limit(p["candidate_timeout"], "")
        problem = zero_downtime.wait_answering(url + p["health_path"], waited, state,
                                               bound=bound)
    elif url:
        problem = None  # the smoke checks wait for it (candidate.health_url), in their session
    elif not cand["running"]:
        # A container that stopped at once has no address: say it exited, with its log.
        problem = f"exited (code {cand.get('exit_code')}) before it answered {p['health_path']}"
    else:
        discard([f"the new container {cand['name']} has no network address; expected it on "
                 f"the networks {', '.join(zd['networks'])}"])
    if problem:
        tail = dk.log_tail(cand["name"], max(p["build_log_lines"] - 2, 1))
        discard([f"the new container of release {rid} ({cand['name']}) {problem}",
                 *(f"  {line}" for line in tail)])
    result.update(candidate={"id": cand["id"], "name": cand["name"], "url": url,
                             "upstream": f"{cand['name']}:{zd['target']}",
                             "health_url": url + p["health_path"], "started_at": started_at,
                             "answering": p["wait_candidate"], "release_id": rid,
                             "service": service},
                  old_containers=[c["name"] for c in running], recreated=True,
                  container_id=cand["id"], container_name=cand["name"])


if __name__ == "__main__":
    main()
