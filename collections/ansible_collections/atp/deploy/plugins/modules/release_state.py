#!/usr/bin/python
# Copyright: atp.deploy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Read everything a deploy needs to know about the instance in one call, and plan the deploy."""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: release_state
short_description: Read the release state of the instance and plan the deploy (read-only)
description:
  - First remote call of a deploy. In one SSM session it checks the Docker engine, Compose v2
    (>= 2.18), free disk and the app_root layout, reads the releases, the C(current) symlink,
    the release image, the backend container(s), the containers publishing the backend port
    and the shared env files, and returns a plan.
  - Never changes anything; C(changed) is always false.
  - The plan is computed by the pure function
    C(ansible_collections.atp.deploy.plugins.module_utils.release_plan.compute_plan).
version_added: "1.0.0"
author: atp.deploy contributors
options:
  app_root:
    description: Directory holding C(releases/), C(shared/), C(current) and C(deploy.log).
    type: path
    default: /home/ubuntu/automated-trading-platform
  content_hash:
    description: sha256 hex content hash of the release to deploy (of its manifest).
    type: str
    required: true
  env_digests:
    description:
      - Desired sha256 hex of each C(shared/<filename>), keyed by plain file name.
      - Empty means the env files are not managed by this deploy (always in sync).
    type: dict
    default: {}
  min_free_mb:
    description: Minimum free space (MiB) at app_root (or its nearest existing parent).
    type: int
    default: 1024
  project_name:
    description:
      - Docker Compose project name (C(-p)); keep it stable, the db volume is named after it.
    type: str
    default: automated-trading-platform
  service:
    description: Compose service of the backend.
    type: str
    default: backend-aws
  image_repo:
    description: Image repository; the release image is C(<image_repo>:<release_id>).
    type: str
    default: automated-trading-platform-backend-aws
  port:
    description: Host port the backend publishes; more than one container on it is a warning.
    type: int
    default: 8002
notes:
  - Supports check mode (it never changes anything anyway).
  - Runs C(docker info), C(docker compose version), C(docker image inspect), C(docker ps) and
    C(docker inspect) on the instance; needs root or the docker group.
"""

EXAMPLES = r"""
- name: Read the instance and plan the deploy
  atp.deploy.release_state:
    app_root: /home/ubuntu/automated-trading-platform
    content_hash: "{{ atp_release_content_hash }}"
    env_digests:
      .env: "{{ atp_env_content | hash('sha256') }}"
      .env.aws: "{{ atp_env_aws_content | hash('sha256') }}"
  register: atp_state
  check_mode: false

- name: Upload the archive only when needed
  ansible.builtin.copy:
    src: "{{ atp_archive }}"
    dest: "{{ atp_app_root }}/incoming/"
  when: atp_state.plan.upload
"""

RETURN = r"""
plan:
  description: What the deploy has to do.
  returned: success
  type: dict
  contains:
    upload:
      description: No complete release holds content_hash; upload the archive.
      type: bool
    release_id:
      description: Id of the existing release holding content_hash, or null.
      type: str
    env:
      description: Shared env files differ from env_digests; write them.
      type: bool
    build:
      description: Image C(<image_repo>:<release_id>) is missing (always true without a release).
      type: bool
    activate:
      description: current, the container or the env must change to serve the release.
      type: bool
  sample:
    upload: false
    release_id: 20261124T101500Z-0123456789ab
    env: false
    build: false
    activate: true
plan_reasons:
  description: One line per reason behind the plan.
  returned: success
  type: list
  elements: str
docker_version:
  description: Docker engine (server) version.
  returned: success
  type: str
compose_version:
  description: Docker Compose version (e.g. 2.26.1).
  returned: success
  type: str
free_mb:
  description: Free MiB at app_root or its nearest existing parent.
  returned: success
  type: int
releases:
  description: Release directories found under C(releases/), sorted by id.
  returned: success
  type: list
  elements: dict
  contains:
    id:
      description: Release id.
      type: str
    content_hash:
      description: Content hash prefix (12 hex) taken from the id.
      type: str
    complete:
      description: Has the manifest and no C(.partial) suffix.
      type: bool
    partial:
      description: Directory name ends in C(.partial).
      type: bool
current_release:
  description: Release id C(current) points to, or null.
  returned: success
  type: str
previous_release:
  description: Release live before current (per deploy.log, else by name order), or null.
  returned: success
  type: str
existing_release:
  description: Complete release holding content_hash (same as plan.release_id).
  returned: success
  type: str
image:
  description: The release image.
  returned: success
  type: dict
  contains:
    ref:
      description: C(<image_repo>:<release_id>), or null without a release.
      type: str
    exists:
      description: Whether the image exists.
      type: bool
    id:
      description: Image id, or null.
      type: str
containers:
  description: The backend containers of project+service, running or not.
  returned: success
  type: list
  elements: dict
  contains:
    id:
      description: Container id.
      type: str
    name:
      description: Container name.
      type: str
    image:
      description: Image reference the container was created from.
      type: str
    image_id:
      description: Image id the container runs.
      type: str
    state:
      description: Docker state (running, exited, ...).
      type: str
    running:
      description: Whether it runs.
      type: bool
port_publishers:
  description: All running containers publishing host I(port); more than one is a warning.
  returned: success
  type: list
  elements: dict
  contains:
    name:
      description: Container name.
      type: str
    image:
      description: Image reference.
      type: str
    id:
      description: Container id.
      type: str
env_in_sync:
  description: Every file of env_digests exists in shared/ with that sha256.
  returned: success
  type: bool
env_files:
  description: Per env file name, whether it is in sync.
  returned: success
  type: dict
  sample: {.env: true, .env.aws: false}
"""

import os  # noqa: E402

from ansible.module_utils.basic import AnsibleModule  # noqa: E402
from ansible_collections.atp.deploy.plugins.module_utils import (  # noqa: E402
    docker_cmd,
    fsutil,
    proc,
    release_plan,
)
from ansible_collections.atp.deploy.plugins.module_utils.release_manifest import (  # noqa: E402
    MANIFEST_NAME,
)

COMMAND_TIMEOUT = 60


def check_app_root(app_root: str) -> str | None:
    """None when app_root is usable, else the one-line problem."""
    if os.path.isdir(app_root):
        return None
    if os.path.lexists(app_root):
        return (f"app_root {app_root} must be a directory, but it is a file; "
                "move it away or set app_root")
    parent = os.path.dirname(os.path.abspath(app_root))
    if not os.path.isdir(parent):
        return (f"app_root {app_root} must exist or have an existing parent directory, "
                f"but {parent} does not exist; create it or set app_root")
    return None


def read_releases(app_root: str) -> list[dict]:
    releases_dir = os.path.join(app_root, "releases")
    if not os.path.isdir(releases_dir):
        return []
    found = []
    for entry in os.scandir(releases_dir):
        if not entry.is_dir(follow_symlinks=False):
            continue
        has_manifest = os.path.isfile(os.path.join(entry.path, MANIFEST_NAME))
        described = release_plan.describe_release_dir(entry.name, has_manifest)
        if described:
            found.append(described)
    return sorted(found, key=lambda r: (r["id"], r["partial"]))


def read_env(shared: str, desired: dict) -> dict:
    actual = {}
    for name in desired:
        path = os.path.join(shared, name)
        actual[name] = fsutil.sha256_file(path) if os.path.isfile(path) else None
    return release_plan.env_status(desired, actual)


def read_log(path: str) -> list[dict]:
    try:
        with open(path, encoding="utf-8", errors="replace") as handle:
            return release_plan.parse_deploy_log(handle.read())
    except OSError:
        return []


class DockerReader:
    def __init__(self, module: AnsibleModule, docker: str):
        self.module = module
        self.docker = docker

    def run(self, argv: list[str]) -> tuple[int, str, str]:
        return proc.run(argv, timeout=COMMAND_TIMEOUT)

    def engine_version(self) -> str:
        rc, out, err = self.run(docker_cmd.info(self.docker))
        version = docker_cmd.parse_server_version(out) if rc == 0 else None
        if not version:
            self.module.fail_json(
                msg="docker engine not reachable on the instance: `docker info` failed: "
                f"{docker_cmd.first_line(err or out)}; start docker (systemctl start docker)"
            )
        return version

    def compose_version(self) -> str:
        rc, out, err = self.run(docker_cmd.compose_version(self.docker))
        version = docker_cmd.parse_compose_version(out) if rc == 0 else None
        if not docker_cmd.compose_version_ok(version):
            seen = docker_cmd.first_line(out) if rc == 0 else docker_cmd.first_line(err or out)
            want = ".".join(str(n) for n in docker_cmd.MIN_COMPOSE)
            self.module.fail_json(
                msg=f"docker compose v2 >= {want} required on the instance, "
                f"`docker compose version` gave: {seen}; install the compose v2 plugin "
                "(docker-compose-plugin or docker-compose >= 2.18)"
            )
        return ".".join(str(n) for n in version)

    def image_id(self, ref: str) -> str | None:
        rc, out, _err = self.run(docker_cmd.image_id(ref, self.docker))
        return docker_cmd.parse_image_id(rc, out)

    def containers(self) -> list[dict]:
        rc, out, err = self.run(docker_cmd.ps_all_ids(self.docker))
        if rc != 0:
            self.module.fail_json(
                msg=f"`docker ps` failed (exit {rc}): {docker_cmd.first_line(err or out)}; "
                "check the docker engine (journalctl -u docker)"
            )
        ids = docker_cmd.parse_ids(out)
        if not ids:
            return []
        rc, out, err = self.run(docker_cmd.inspect(ids, self.docker))
        if rc != 0:
            # A container may vanish between ps and inspect; retry once with fresh ids.
            rc, out, err = self.run(docker_cmd.ps_all_ids(self.docker))
            ids = docker_cmd.parse_ids(out) if rc == 0 else []
            if not ids:
                return []
            rc, out, err = self.run(docker_cmd.inspect(ids, self.docker))
        if rc != 0:
            self.module.fail_json(
                msg=f"`docker inspect` failed (exit {rc}): {docker_cmd.first_line(err or out)}; "
                "check the docker engine (journalctl -u docker)"
            )
        try:
            return docker_cmd.parse_inspect(out)
        except ValueError as exc:
            self.module.fail_json(msg=f"{exc}; check the docker engine (journalctl -u docker)")


ARGUMENT_SPEC = {
    "app_root": {"type": "path", "default": "/home/ubuntu/automated-trading-platform"},
    "content_hash": {"type": "str", "required": True},
    "env_digests": {"type": "dict", "default": {}},
    "min_free_mb": {"type": "int", "default": 1024},
    "project_name": {"type": "str", "default": "automated-trading-platform"},
    "service": {"type": "str", "default": "backend-aws"},
    "image_repo": {"type": "str", "default": "automated-trading-platform-backend-aws"},
    "port": {"type": "int", "default": 8002},
}


def main() -> None:
    module = AnsibleModule(
        argument_spec=ARGUMENT_SPEC,
        supports_check_mode=True,
    )
    p = module.params
    app_root = p["app_root"]
    content_hash = (p["content_hash"] or "").strip().lower()
    if len(content_hash) < 12 or any(c not in "0123456789abcdef" for c in content_hash):
        module.fail_json(
            msg=f"content_hash must be a sha256 hex string (>= 12 hex chars), got "
            f"{p['content_hash']!r}; pass the content hash of the release manifest"
        )
    desired = {}
    for name, digest in (p["env_digests"] or {}).items():
        if not fsutil.is_plain_name(name):
            module.fail_json(
                msg=f"env_digests keys must be plain file names like .env, got {name!r}; "
                "fix env_digests"
            )
        desired[name] = str(digest).strip().lower()

    problem = check_app_root(app_root)
    if problem:
        module.fail_json(msg=problem)

    docker = module.get_bin_path("docker")
    if not docker:
        module.fail_json(
            msg="docker engine not reachable on the instance: `docker info` failed: docker CLI "
            "not found in PATH; install docker and start it (systemctl start docker)"
        )
    reader = DockerReader(module, docker)
    docker_version = reader.engine_version()
    compose_version = reader.compose_version()

    free = fsutil.free_mb(app_root)
    if free < p["min_free_mb"]:
        where = fsutil.nearest_existing_dir(app_root)
        module.fail_json(
            msg=f"not enough free disk at {where}: expected >= {p['min_free_mb']} MiB, "
            f"found {free} MiB; prune old images (docker image prune -a) or old releases"
        )

    releases = read_releases(app_root)
    current = release_plan.release_from_link(
        fsutil.read_link_target(os.path.join(app_root, "current"))
    )
    current_path = os.path.join(app_root, "current")
    if os.path.lexists(current_path) and current is None:
        module.warn(f"{current_path} exists but does not point at releases/<release_id>; "
                    "the deploy will replace it")
    existing = release_plan.find_existing_release(releases, content_hash, current)
    previous = release_plan.previous_release(
        read_log(os.path.join(app_root, "deploy.log")), releases, current
    )

    ref = docker_cmd.image_ref(p["image_repo"], existing) if existing else None
    image_id = reader.image_id(ref) if ref else None

    containers = reader.containers()
    backend = docker_cmd.service_containers(containers, p["project_name"], p["service"])
    backend_view = [
        {k: c[k] for k in ("id", "name", "image", "image_id", "state", "running")}
        for c in backend
    ]
    port_publishers = docker_cmd.publishers(containers, p["port"])
    if len(port_publishers) > 1:
        names = ", ".join(f"{c['name']} ({c['image']})" for c in port_publishers)
        module.warn(f"{len(port_publishers)} containers publish host port {p['port']}: {names}; "
                    "only one should (stop the stray one)")
    if len([c for c in backend if c["running"]]) > 1:
        module.warn(f"more than one running container for {p['project_name']}/{p['service']}")

    env_files = read_env(os.path.join(app_root, "shared"), desired)
    env_in_sync = all(env_files.values())
    plan, reasons = release_plan.compute_plan(existing, current, image_id, backend, env_in_sync)

    module.exit_json(
        changed=False,
        plan=plan,
        plan_reasons=reasons,
        docker_version=docker_version,
        compose_version=compose_version,
        free_mb=free,
        releases=releases,
        current_release=current,
        previous_release=previous,
        existing_release=existing,
        image={"ref": ref, "exists": image_id is not None, "id": image_id},
        containers=backend_view,
        port_publishers=port_publishers,
        env_in_sync=env_in_sync,
        env_files=env_files,
    )


if __name__ == "__main__":
    main()
