#!/usr/bin/python
# Copyright: atp.deploy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Read everything a deploy needs to know about the instance in one call, plan the deploy, and
take the deploy lock when the deploy will change something."""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: release_state
short_description: Read the release state of the instance, plan the deploy, take the deploy lock
description:
  - First remote call of a deploy. In one SSM session it checks the Docker engine, Compose v2
    (>= 2.18), free disk and the app_root layout, reads the releases, the C(current) symlink,
    the release image, the backend container(s), the containers publishing the backend port
    and the shared env files, and returns a plan.
  - Never changes the releases, the images or the containers; C(changed) is always false, also
    when it takes the deploy lock (the lock is bookkeeping of this run, released by
    C(deploy_record) in the same run).
  - "Deploy lock: when I(lock) is given, not in check mode, and the plan needs a change
    (upload, env, build or activate) or I(lock_always) is true, it takes the lock file
    I(lock_file) atomically (C(O_CREAT|O_EXCL)) writing C({token, holder, release, started}).
    A lock with our own token is ours (re-entrant). A lock of another run is broken when
    I(break_lock) (with a warning naming its holder), waited for up to I(lock_wait) seconds
    (polled every second), else the task fails naming the holder, its start and its release."
  - After waiting for (or breaking) another run's lock everything is read again, since that run
    may have changed the instance; a failure then releases our lock before failing.
  - A hand-managed checkout in app_root (no C(releases/), a C(docker-compose.yml) or C(.git))
    is not an error; it is reported as C(adoption_needed) and the plan uploads (release_unpack
    adopts it).
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
  env_plan:
    description:
      - What the deploy wants of the env files, without their values. Omitted or empty means
        the env files are not managed by this call (always in sync).
      - C(files) maps each env file the deploy renders (C(.env), C(.env.aws)) to a mapping
        of KEY to digest, the HMAC-SHA256 of C(KEY\0value) under I(env_salt)
        (C(atp.deploy.env_key_digests)). The instance computes the same digest for its own
        values; a key whose digest differs is set by the deploy, a key only on the instance
        is kept (dropped with C(replace), or when C(supersedes) names it as an alias of a key
        the deploy passes).
      - C(required) lists every env file compose needs (relative paths); a missing one, or a
        missing link to it in the existing release, is a change too.
      - The files are read from C(shared/), or from app_root itself when it is a hand-managed
        checkout (adoption carries them into C(shared/) as they are).
    type: dict
    default: {}
  env_salt:
    description: Per-run random salt of the digests in I(env_plan) (never logged).
    type: str
    default: ""
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
  lock:
    description:
      - The deploy lock to take; omitted = no locking.
    type: dict
    suboptions:
      token:
        description: Random string unique to this run; deploy_record releases only this token.
        type: str
        required: true
      holder:
        description: Who deploys (e.g. C(alice@laptop)); shown to whoever finds the lock held.
        type: str
        required: true
      release:
        description: What is deployed (release id or content hash prefix); shown likewise.
        type: str
        default: ""
  lock_always:
    description: Take the lock even when the plan needs no change (e.g. for a rollback).
    type: bool
    default: false
  lock_wait:
    description:
      - Seconds to wait for a lock held by another run (polled every second); 0 fails at once.
      - On SSM, C(ansible_aws_ssm_timeout) must exceed it.
    type: int
    default: 0
  break_lock:
    description:
      - Remove a lock held by another run (its holder died) and take it; reported in
        C(lock_broken) and a warning.
    type: bool
    default: false
  lock_file:
    description: The lock file; defaults to C(<app_root>/.deploy.lock).
    type: path
notes:
  - Supports check mode; it then never takes the lock (it reports a held one in
    C(lock_holder)).
  - When app_root is missing and the lock is taken, app_root is created (0755, owner and group
    of its parent directory); an existing app_root is never chowned.
  - Runs C(docker info), C(docker compose version), C(docker image inspect), C(docker ps) and
    C(docker inspect) on the instance; needs root or the docker group.
"""

EXAMPLES = r"""
- name: Read the instance and plan the deploy
  atp.deploy.release_state:
    app_root: /home/ubuntu/automated-trading-platform
    content_hash: "{{ atp_release_content_hash }}"
    env_plan:
      files: "{{ atp_env_values | atp.deploy.env_key_digests(atp_env_salt) }}"
      required: [.env, .env.aws, .env.db]
      replace: false
    env_salt: "{{ atp_env_salt }}"
    lock:
      token: "{{ atp_lock_token }}"
      holder: "{{ lookup('env', 'USER') }}"
      release: "{{ atp_release_content_hash[:12] }}"
    lock_wait: "{{ deploy_lock_wait | default(0) }}"
    break_lock: "{{ deploy_break_lock | default(false) }}"
  register: atp_state

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
      description: Env files must change (values, missing files, links, mode); write them.
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
  description: The env files need no change (see env_plan).
  returned: success
  type: bool
env_files:
  description:
    - Per env file the deploy renders, what the write will do (names of keys only).
  returned: success
  type: dict
  sample:
    .env: {exists: true, in_sync: false, set: [ENVIRONMENT], kept: [POSTGRES_PASSWORD],
           dropped: [], loose_mode: false}
env_missing:
  description: Env files compose needs that do not exist yet (they are created empty, 0600).
  returned: success
  type: list
  elements: str
env_links_missing:
  description: Env links the existing release lacks.
  returned: success
  type: list
  elements: str
env_summary:
  description: One line per env file with something to say (names only, never values).
  returned: success
  type: list
  elements: str
adoption_needed:
  description:
    - app_root is a hand-managed checkout (no C(releases/), has C(docker-compose.yml) or
      C(.git)); release_unpack will adopt it. C(plan.upload) is then true.
  returned: success
  type: bool
lock_acquired:
  description: This call holds the deploy lock now (taken, or already ours).
  returned: success and when the lock is held by another run
  type: bool
lock:
  description: Our lock record when lock_acquired, else null.
  returned: success
  type: dict
  contains:
    token:
      description: This run's token.
      type: str
    holder:
      description: Who deploys.
      type: str
    release:
      description: What is deployed.
      type: str
    started:
      description: When the lock was taken (UTC, ISO 8601).
      type: str
  sample:
    token: 3k9x0q2m7d1c8v4b6n5a
    holder: alice@laptop
    release: 0123456789ab
    started: "2026-11-24T10:15:00Z"
lock_holder:
  description:
    - When this call did not take the lock (check mode, no I(lock), nothing to change), the
      lock found on the instance, else null. On a failure because the lock is held, its holder.
  returned: success and when the lock is held by another run
  type: dict
  contains:
    holder:
      description: Who holds it.
      type: str
    started:
      description: Since when (UTC, ISO 8601).
      type: str
    release:
      description: For which release.
      type: str
lock_broken:
  description: The other run's lock broken by I(break_lock) ({holder, started, release}), or null.
  returned: success
  type: dict
"""

import os  # noqa: E402
import time  # noqa: E402

from ansible.module_utils.basic import AnsibleModule  # noqa: E402
from ansible_collections.atp.deploy.plugins.module_utils import (  # noqa: E402
    deploy_lock,
    docker_cmd,
    docker_read,
    dotenv,
    env_layout,
    fsutil,
    proc,
    release_dirs,
    release_plan,
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


def read_env(app_root: str, release: str | None, env: dict, adopt: bool) -> dict:
    """The env plan (env_layout.plan_env) against shared/, or the checkout being adopted."""
    if not env["managed"]:
        return {"files": {}, "missing": [], "links_missing": [], "in_sync": True}
    base = app_root if adopt else os.path.join(app_root, "shared")
    return env_layout.plan_env(base, None if adopt else release, env["files"], env["required"],
                               env["salt"], env["replace"], env["supersedes"])


def parse_env_plan(plan: dict, salt: str) -> tuple[dict | None, str | None, list[str]]:
    """env_plan option -> (normalised spec, one-line problem, warnings)."""
    plan = plan or {}
    files = plan.get("files") or {}
    if not isinstance(files, dict) or not all(isinstance(v, dict) for v in files.values()):
        return None, ("env_plan.files must map env file paths to {KEY: digest}; pass "
                      "app_env_values | atp.deploy.env_key_digests(salt)"), []
    warnings = []
    required, problems = env_layout.split_env_paths(
        [*files, *(plan.get("required") or [])])
    warnings += [f"{problem}: not managed by the deploy (compose reads it where it is)"
                 for problem in problems]
    norm_files = {}
    for name, digests in files.items():
        try:
            norm_files[env_layout.norm_env_path(name)] = {
                str(k): str(v).strip().lower() for k, v in digests.items()}
        except env_layout.EnvPathError as exc:
            return None, f"{exc}; expected env_plan.files paths inside the app dir", []
    if norm_files and not salt:
        return None, ("env_salt must be the per-run salt of the env_plan digests, got an empty "
                      "one; pass the salt app_env's render step made"), []
    supersedes = plan.get("supersedes") or {}
    spec = {"files": norm_files, "required": required, "salt": salt or "",
            "replace": bool(plan.get("replace")), "managed": bool(norm_files or required),
            "supersedes": {str(k): [str(a) for a in (v or [])] for k, v in supersedes.items()}}
    return spec, None, warnings


class DockerReader:
    def __init__(self, module: AnsibleModule, docker: str):
        self.module = module
        self.docker = docker
        self.fail = lambda msg: module.fail_json(msg=msg)

    def run(self, argv: list[str]) -> tuple[int, str, str]:
        return proc.run(argv, timeout=COMMAND_TIMEOUT)

    def engine_version(self) -> str:
        rc, out, err = self.run(docker_cmd.info(self.docker))
        version = docker_cmd.parse_server_version(out) if rc == 0 else None
        if not version:
            self.fail(
                "docker engine not reachable on the instance: `docker info` failed: "
                f"{docker_cmd.first_line(err or out)}; start docker (systemctl start docker)"
            )
        return version

    def compose_version(self) -> str:
        rc, out, err = self.run(docker_cmd.compose_version(self.docker))
        version = docker_cmd.parse_compose_version(out) if rc == 0 else None
        if not docker_cmd.compose_version_ok(version):
            seen = docker_cmd.first_line(out) if rc == 0 else docker_cmd.first_line(err or out)
            want = ".".join(str(n) for n in docker_cmd.MIN_COMPOSE)
            self.fail(
                f"docker compose v2 >= {want} required on the instance, "
                f"`docker compose version` gave: {seen}; install the compose v2 plugin "
                "(docker-compose-plugin or docker-compose >= 2.18)"
            )
        return ".".join(str(n) for n in version)

    def image_id(self, ref: str) -> str | None:
        return docker_read.image_id(self.docker, ref, COMMAND_TIMEOUT)

    def containers(self) -> list[dict]:
        try:
            return docker_read.containers(self.docker, COMMAND_TIMEOUT, retry_vanished=True)
        except docker_read.DockerReadError as exc:
            self.fail(f"{exc}; check the docker engine (journalctl -u docker)")


LOCK_SPEC = {
    "token": {"type": "str", "required": True, "no_log": False},
    "holder": {"type": "str", "required": True},
    "release": {"type": "str", "default": ""},
}

ARGUMENT_SPEC = {
    "app_root": {"type": "path", "default": "/home/ubuntu/automated-trading-platform"},
    "content_hash": {"type": "str", "required": True},
    "env_plan": {"type": "dict", "default": {}},
    "env_salt": {"type": "str", "default": "", "no_log": True},
    "min_free_mb": {"type": "int", "default": 1024},
    "project_name": {"type": "str", "default": "automated-trading-platform"},
    "service": {"type": "str", "default": "backend-aws"},
    "image_repo": {"type": "str", "default": "automated-trading-platform-backend-aws"},
    "port": {"type": "int", "default": 8002},
    "lock": {"type": "dict", "options": LOCK_SPEC},
    "lock_always": {"type": "bool", "default": False},
    "lock_wait": {"type": "int", "default": 0},
    "break_lock": {"type": "bool", "default": False},
    "lock_file": {"type": "path"},
}

# Polling interval while waiting for another run's lock (tests shorten it).
LOCK_POLL_SECONDS = 1.0


def adoption_needed(app_root: str) -> bool:
    """app_root is a hand-managed checkout (no releases/, a compose file or .git)."""
    try:
        entries = os.listdir(app_root)
    except OSError:
        return False
    return release_plan.needs_adoption(entries)


def read_state(p: dict, reader: DockerReader, content_hash: str, env_spec: dict) -> dict:
    """Everything read on the instance, and the plan: the fields of the result."""
    app_root = p["app_root"]
    free = fsutil.free_mb(app_root)
    if free < p["min_free_mb"]:
        where = fsutil.nearest_existing_dir(app_root)
        reader.fail(
            f"not enough free disk at {where}: expected >= {p['min_free_mb']} MiB, "
            f"found {free} MiB; free space without touching the images kept for rollback: "
            "docker builder prune -f (build cache), docker image prune -f (dangling images "
            "only), or keep fewer releases (-e deploy_keep_releases=N, at least 2)"
        )

    releases = release_dirs.read_releases(app_root)
    current = release_plan.release_from_link(
        fsutil.read_link_target(os.path.join(app_root, "current"))
    )
    current_path = os.path.join(app_root, "current")
    warnings = []
    if os.path.lexists(current_path) and current is None:
        warnings.append(f"{current_path} exists but does not point at releases/<release_id>; "
                        "the deploy will replace it")
    existing = release_plan.find_existing_release(releases, content_hash, current)
    previous = release_plan.previous_release(
        release_dirs.read_deploy_log(os.path.join(app_root, "deploy.log")), releases, current
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
        warnings.append(f"{len(port_publishers)} containers publish host port {p['port']}: "
                        f"{names}; only one should (stop the stray one)")
    if len([c for c in backend if c["running"]]) > 1:
        warnings.append(f"more than one running container for {p['project_name']}/"
                        f"{p['service']}")

    adopt = adoption_needed(app_root)
    release_dir = os.path.join(app_root, "releases", existing) if existing else None
    try:
        env = read_env(app_root, release_dir, env_spec, adopt)
    except dotenv.DotenvError as exc:
        reader.fail(f"{exc}; fix the file on the instance (compose cannot read it either) "
                    "and re-run")
    except OSError as exc:
        reader.fail(f"reading the env files at {app_root} failed: {exc.strerror or exc} "
                    f"({exc.filename}); check permissions (become root)")
    env_in_sync = env["in_sync"]
    plan, reasons = release_plan.compute_plan(existing, current, image_id, backend, env_in_sync)
    summary = env_layout.plan_lines(env)
    if not env_in_sync:
        at = reasons.index(release_plan.ENV_REASON) if release_plan.ENV_REASON in reasons \
            else len(reasons)
        reasons[at + 1:at + 1] = [f"env {line}" for line in summary]
    if adopt:
        plan["upload"] = True
        reasons.insert(0, f"{app_root} is a hand-managed checkout (no releases/): release_unpack "
                          "adopts it as release zero (current -> it; its env files and "
                          "secrets/ go to shared/; the checkout is kept aside whole)")
    return {
        "plan": plan,
        "plan_reasons": reasons,
        "free_mb": free,
        "releases": releases,
        "current_release": current,
        "previous_release": previous,
        "existing_release": existing,
        "image": {"ref": ref, "exists": image_id is not None, "id": image_id},
        "containers": backend_view,
        "port_publishers": port_publishers,
        "env_in_sync": env_in_sync,
        "env_files": env["files"],
        "env_missing": env["missing"],
        "env_links_missing": env["links_missing"],
        "env_summary": summary,
        "adoption_needed": adopt,
        "_warnings": warnings,
    }


def plan_changes(plan: dict) -> bool:
    return any(plan.get(k) for k in ("upload", "env", "build", "activate"))


def ensure_app_root(app_root: str) -> None:
    """mkdir app_root (0755, owner and group of its parent) when missing; never chown it else."""
    if os.path.isdir(app_root):
        return
    parent = os.stat(os.path.dirname(os.path.abspath(app_root)))
    os.mkdir(app_root, 0o755)
    os.chmod(app_root, 0o755)
    os.chown(app_root, parent.st_uid, parent.st_gid)


class LockTaker:
    """Take the deploy lock: wait for it (bounded), break it when told to, fail naming it."""

    def __init__(self, module: AnsibleModule, path: str, record: dict, wait: int,
                 break_it: bool):
        self.module = module
        self.path = path
        self.record = record
        self.wait = wait
        self.break_it = break_it
        self.broken = None  # the lock we broke
        self.contended = False  # someone else held it when we first looked

    def acquire(self) -> dict:
        started = time.monotonic()
        deadline = started + self.wait
        while True:
            try:
                acquired, lock = deploy_lock.try_acquire(self.path, self.record)
            except OSError as exc:
                self.module.fail_json(
                    msg=f"cannot create the deploy lock {self.path}: {exc.strerror or exc}; "
                    "expected to write it (become root), check permissions and disk")
            if acquired:
                return lock
            self.contended = True
            if self.break_it and self.broken is None:
                if deploy_lock.break_lock(self.path, lock):
                    self.broken = deploy_lock.public_view(lock)
                    self.module.warn(
                        f"broke the deploy lock of {lock['holder']} (since {lock['started']}, "
                        f"release {lock['release']}) as asked with break_lock")
                continue
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                waited = self.wait
                self.module.fail_json(msg=deploy_lock.held_message(lock, waited),
                                      lock_holder=deploy_lock.public_view(lock),
                                      lock_acquired=False)
            time.sleep(min(LOCK_POLL_SECONDS, remaining))


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
    desired, problem, env_warnings = parse_env_plan(p["env_plan"], p["env_salt"])
    if problem:
        module.fail_json(msg=problem)
    for warning in env_warnings:
        module.warn(warning)
    lock_opt = p["lock"]
    if lock_opt is not None and not (lock_opt.get("token") or "").strip():
        module.fail_json(msg="lock.token must be a non-empty string unique to this run, got an "
                         "empty one; pass the run's random deploy_lock_token")
    if p["lock_wait"] < 0:
        module.fail_json(msg=f"lock_wait must be >= 0 seconds, got {p['lock_wait']}; pass "
                         "-e deploy_lock_wait=SECONDS")
    lock_file = p["lock_file"] or os.path.join(app_root, deploy_lock.LOCK_NAME)

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

    state = read_state(p, reader, content_hash, desired)

    lock_result = {"lock_acquired": False, "lock": None, "lock_holder": None,
                   "lock_broken": None}
    take = (lock_opt is not None and not module.check_mode
            and (p["lock_always"] or plan_changes(state["plan"])))
    if take:
        try:
            ensure_app_root(app_root)
        except OSError as exc:
            module.fail_json(msg=f"cannot create app_root {app_root} for the deploy lock: "
                             f"{exc.strerror or exc}; check permissions (become root)")
        record = deploy_lock.new_record(lock_opt["token"], lock_opt["holder"],
                                        lock_opt.get("release") or "")
        taker = LockTaker(module, lock_file, record, p["lock_wait"], p["break_lock"])
        lock = taker.acquire()
        lock_result.update(lock_acquired=True, lock=lock, lock_broken=taker.broken)
        if taker.contended:
            # Another run held the lock: what it did may change the plan, read again. A failure
            # now must not leave our lock behind.
            def fail_and_unlock(msg: str) -> None:
                deploy_lock.release_lock(lock_file, lock_opt["token"])
                module.fail_json(msg=msg, lock_acquired=False)

            reader.fail = fail_and_unlock
            state = read_state(p, reader, content_hash, desired)
    else:
        held = deploy_lock.read_lock(lock_file)
        lock_result["lock_holder"] = deploy_lock.public_view(held)
        ours = held is not None and lock_opt is not None and held.get("token") == lock_opt["token"]
        if held is not None and not ours:
            state["_warnings"].append(
                f"deploy lock {lock_file} is held by {held['holder']} since {held['started']} "
                f"for release {held['release']}; this call did not take it")

    for warning in state.pop("_warnings"):
        module.warn(warning)
    module.exit_json(
        changed=False,
        docker_version=docker_version,
        compose_version=compose_version,
        **state,
        **lock_result,
    )


if __name__ == "__main__":
    main()
