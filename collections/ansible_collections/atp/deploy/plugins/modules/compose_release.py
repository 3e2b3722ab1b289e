#!/usr/bin/python
# Copyright: atp.deploy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Build (if needed) and activate one release with Docker Compose v2, in one call."""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: compose_release
short_description: Build the release image if missing, switch current, and up -d the service
description:
  - Writes C(releases/<release_id>/docker-compose.deploy.yml), an override pinning the service
    image to C(<image_repo>:<release_id>) with build args C(GIT_SHA) and C(BUILD_TIME).
  - When that image is missing, runs C(docker compose ... build <service>) in the release
    directory. A failed build fails the task with the last build lines and touches nothing
    else (current and the running container stay as they were).
  - Switches the C(current) symlink atomically to C(releases/<release_id>).
  - Runs C(docker compose ... up -d --no-build <service>) from the release directory (never
    C(restart)), then checks that exactly one container of project+service runs, with the
    image id of C(<image_repo>:<release_id>).
  - To roll back, call it again with the previous release id (release_state returns it; it is
    also in the result of this module, even when it fails).
version_added: "1.0.0"
author: atp.deploy contributors
options:
  app_root:
    description: Directory holding C(releases/), C(shared/), C(current).
    type: path
    default: /home/ubuntu/automated-trading-platform
  release_id:
    description: The release to activate; C(releases/<release_id>) must be unpacked.
    type: str
    required: true
  project_name:
    description: Compose project name (C(-p)); keep it stable, the db volume is named after it.
    type: str
    default: automated-trading-platform
  service:
    description: Compose service of the backend.
    type: str
    default: backend-aws
  profile:
    description: Compose profile enabling the service.
    type: str
    default: aws
  image_repo:
    description: Image repository; the release image is C(<image_repo>:<release_id>).
    type: str
    default: automated-trading-platform-backend-aws
  compose_file:
    description: Base compose file name inside the release.
    type: str
    default: docker-compose.yml
  git_sha:
    description: Passed as build arg C(GIT_SHA) (omitted when empty).
    type: str
    default: ""
  build_time:
    description: Passed as build arg C(BUILD_TIME) (omitted when empty).
    type: str
    default: ""
  build_log_lines:
    description: How many last lines of build / up output a failure shows.
    type: int
    default: 40
  command_timeout:
    description: Seconds allowed for each of build and up.
    type: int
    default: 900
notes:
  - Supports check mode; it then only runs read-only docker commands (image inspect, ps,
    inspect) and reports C(would_build) / C(would_activate).
  - On SSM, C(ansible_aws_ssm_timeout) caps the whole module run; raise it above the build time.
"""

EXAMPLES = r"""
- name: Build and activate the release
  atp.deploy.compose_release:
    app_root: /home/ubuntu/automated-trading-platform
    release_id: "{{ atp_state.plan.release_id | default(atp_release_id, true) }}"
    git_sha: "{{ atp_git_sha }}"
    build_time: "{{ atp_build_time }}"
  register: atp_compose
  when: atp_state.plan.build or atp_state.plan.activate

- name: Roll back
  atp.deploy.compose_release:
    release_id: "{{ atp_compose.previous_release }}"
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
  returned: success
  type: bool
recreated:
  description: Whether the backend container id changed (or it was started).
  returned: success
  type: bool
switched:
  description: Whether C(current) was switched.
  returned: success
  type: bool
would_build:
  description: Check mode only; the image is missing.
  returned: check mode
  type: bool
would_activate:
  description: Check mode only; current or the container would change.
  returned: check mode
  type: bool
"""

import os  # noqa: E402

from ansible.module_utils.basic import AnsibleModule  # noqa: E402
from ansible_collections.atp.deploy.plugins.module_utils import (  # noqa: E402
    docker_cmd,
    docker_read,
    fsutil,
    proc,
    release_plan,
)
from ansible_collections.atp.deploy.plugins.module_utils.release_manifest import (  # noqa: E402
    MANIFEST_NAME,
)

READ_TIMEOUT = 60
BUILD_ENV = {"BUILDKIT_PROGRESS": "plain"}


class Docker:
    def __init__(self, module: AnsibleModule, docker: str, project: str, service: str,
                 result: dict):
        self.module = module
        self.result = result
        self.docker = docker
        self.project = project
        self.service = service

    def image_id(self, ref: str) -> str | None:
        return docker_read.image_id(self.docker, ref, READ_TIMEOUT)

    def service_containers(self) -> list[dict]:
        try:
            return docker_read.containers(self.docker, READ_TIMEOUT, self.project, self.service)
        except docker_read.DockerReadError as exc:
            hint = "" if exc.stage == "inspect" else " (journalctl -u docker)"
            self.fail(f"{exc}; check the docker engine{hint}")

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
    "build_log_lines": {"type": "int", "default": 40},
    "command_timeout": {"type": "int", "default": 900},
}


def main() -> None:
    module = AnsibleModule(
        argument_spec=ARGUMENT_SPEC,
        supports_check_mode=True,
    )
    p = module.params
    app_root, rid, service = p["app_root"], p["release_id"], p["service"]
    ref = docker_cmd.image_ref(p["image_repo"], rid) if rid else ""
    current_link = os.path.join(app_root, "current")
    previous = release_plan.release_from_link(fsutil.read_link_target(current_link))
    result = {"changed": False, "release_id": rid, "previous_release": previous, "image_ref": ref,
                  "image_id": None, "container_id": None, "container_name": None, "built": False,
                  "recreated": False, "switched": False}

    def fail(msg: str) -> None:
        module.fail_json(msg=msg, **result)

    if not release_plan.is_release_id(rid):
        fail(f"release_id must look like 20261124T101500Z-<12 hex>, got {rid!r}; pass "
             "plan.release_id from release_state or the id of the uploaded archive")
    release_dir = os.path.join(app_root, "releases", rid)
    if not os.path.isfile(os.path.join(release_dir, MANIFEST_NAME)):
        fail(f"release {rid} is not unpacked: expected {release_dir}/{MANIFEST_NAME}, not "
             "found; run release_unpack first")
    if not os.path.isfile(os.path.join(release_dir, p["compose_file"])):
        fail(f"release {rid} has no {p['compose_file']} in {release_dir}; expected the app's "
             "compose file in the archive, rebuild the archive")
    if os.path.lexists(current_link) and not os.path.islink(current_link):
        fail(f"{current_link} must be a symlink, but it is a real file or directory; move it "
             "away (it is not a release) and re-run")
    docker = module.get_bin_path("docker")
    if not docker:
        fail("docker CLI not found in PATH on the instance, expected docker with compose v2; "
             "install docker")
    dk = Docker(module, docker, p["project_name"], service, result)

    image_id = dk.image_id(ref)
    before = dk.service_containers()
    before_running = {c["id"] for c in before if c["running"]}
    link_target = os.path.join("releases", rid)
    needs_switch = fsutil.read_link_target(current_link) != link_target

    if module.check_mode:
        stale = [c for c in before if c["running"] and c["image_id"] != image_id]
        would_activate = needs_switch or not before_running or image_id is None or bool(stale)
        result.update(image_id=image_id, would_build=image_id is None,
                      would_activate=would_activate,
                      changed=image_id is None or would_activate)
        module.exit_json(**result)

    st = os.stat(release_dir)
    files = [p["compose_file"], docker_cmd.OVERRIDE_NAME]
    override = docker_cmd.override_text(service, ref, p["git_sha"], p["build_time"]).encode()
    override_path = os.path.join(release_dir, docker_cmd.OVERRIDE_NAME)
    try:
        if fsutil.file_differs(override_path, override, 0o644, st.st_uid, st.st_gid):
            fsutil.atomic_write(override_path, override, 0o644, st.st_uid, st.st_gid)
    except OSError as exc:
        fail(f"writing {override_path} failed: {exc.strerror or exc}; check permissions/disk")

    if image_id is None:
        argv = docker_cmd.compose_build(p["project_name"], files, p["profile"], service, docker)
        rc, out, _err = proc.run(argv, cwd=release_dir, env_update=BUILD_ENV,
                                 timeout=p["command_timeout"], merge_stderr=True)
        if rc != 0:
            tail = docker_cmd.tail_lines(out, p["build_log_lines"])
            fail(f"docker build for release {rid} failed (exit {rc}); the running container "
                 f"was not touched. Last lines:\n{tail}")
        result["built"] = True
        image_id = dk.image_id(ref)
        if image_id is None:
            fail(f"docker build for release {rid} succeeded but image {ref} is missing; expected "
                 f"service {service} to be built as that tag, check {p['compose_file']}")
    result["image_id"] = image_id

    if needs_switch:
        try:
            fsutil.atomic_symlink(link_target, current_link, st.st_uid, st.st_gid)
        except (OSError, ValueError) as exc:
            fail(f"switching {current_link} to {link_target} failed: {exc}; the running "
                 "container was not touched, fix and re-run")
        result["switched"] = True

    argv = docker_cmd.compose_up(p["project_name"], files, p["profile"], service, docker)
    rc, out, _err = proc.run(argv, cwd=release_dir, timeout=p["command_timeout"],
                             merge_stderr=True)
    if rc != 0:
        result["changed"] = True
        fail(f"docker compose up for release {rid} failed (exit {rc}); current now points at "
             f"{rid} (previous: {previous}), roll back with release_id={previous}. Last lines:\n"
             f"{docker_cmd.tail_lines(out, p['build_log_lines'])}")

    after = dk.service_containers()
    running = [c for c in after if c["running"]]
    after_ids = {c["id"] for c in running}
    result["recreated"] = after_ids != before_running
    result["changed"] = result["built"] or result["switched"] or result["recreated"]
    if len(running) != 1:
        seen = ", ".join(f"{c['name']} ({c['state']})" for c in after) or "none"
        fail(f"expected exactly one running container for {p['project_name']}/{service} after "
             f"up, found {len(running)}: {seen}; check docker logs and the compose file")
    container = running[0]
    result.update(container_id=container["id"], container_name=container["name"])
    if container["image_id"] != image_id:
        fail(f"container {container['name']} runs image {container['image_id']}, expected "
             f"{image_id} (release {rid}); check the service's image in the compose files")
    module.exit_json(**result)


if __name__ == "__main__":
    main()
