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
  - "The plan names the release that serves (C(plan.release_id), always set): an existing
    release holding the same code (I(content_hash)) with the same env, or a NEW id made by the
    release model (C(module_utils/release_model.py): C(<UTC time>-<hash of code + env>)). A
    release is code + env: an env change makes a new release, whose code dir is made from the
    release holding that code (C(plan.clone_from), no upload) and whose image is the one
    already built for that code (C(plan.image_from), no build)."
  - "Env: the deploy's values (as salted digests) are compared with the merge base, the env
    set of the active release (C(shared/env/<set>/)), or C(shared/) itself before env sets
    (or without an active release), or the checkout about to be adopted. Nothing changed: the
    release runs with the env set holding that content (C(plan.env_set)), a new set is written
    when there is none yet (C(plan.env)). Values changed: a new set (C(plan.env))."
  - With I(release_id) (a rollback) the plan activates that existing release, with its own env.
  - The plan is computed by the pure function
    C(ansible_collections.atp.deploy.plugins.module_utils.release_plan.plan_release).
version_added: "1.0.0"
author: atp.deploy contributors (!UNKNOWN)
extends_documentation_fragment:
  - atp.deploy.backend.service
  - atp.deploy.backend.image_repo
  - atp.deploy.deploy_lock.lock_file
options:
  app_root:
    description: Directory holding C(releases/), C(shared/), C(current) and C(deploy.log).
    type: path
    default: /home/ubuntu/automated-trading-platform
  content_hash:
    description:
      - sha256 hex content hash of the code to deploy (of its manifest).
      - Required unless I(release_id) is given.
    type: str
  release_id:
    description:
      - Plan the activation of this existing release (a rollback) instead of a deploy of
        I(content_hash); it must be complete on the instance. Its env is its own env set.
    type: str
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
      - The base files are read from the env set of the active release, from C(shared/) before
        env sets, or from app_root itself when it is a hand-managed checkout (adoption carries
        them into C(shared/) as they are).
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
  port:
    description: Host port the backend publishes; more than one container on it is a warning.
    type: int
    default: 8002
  zero_downtime:
    description: How the port should be served (compose_release I(zero_downtime)); when it is
      served the other way (or the proxy does not forward to the one running container), the
      plan activates the release so compose_release converts it. Unset ignores the topology.
    type: bool
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
      ttl:
        description:
          - Seconds the lock lives without a renewal (C(deploy_lock_ttl), at least 60). Every
            later step of the run renews it (their I(lock_token)); an expired lock of another
            run is taken over (reported in C(lock_taken_over) and a warning).
        type: int
        default: 1800
  app_owner:
    description:
      - The owner (user and group of that name) of the app tree; checked to exist on the
        instance before the lock is taken. Empty skips the check.
    type: str
    default: ""
  dependencies:
    description:
      - The service's dependencies (source_preflight's C(compose.dependencies), C(name) and
        C(container_name)). With I(service) they name the containers whose compose project
        must be I(project_name), checked before the lock is taken (another project means a
        new, empty database volume).
    type: list
    elements: dict
    default: []
  rename_project:
    description: Allow I(project_name) to differ from the project the backend and its
      database already run under (C(-e deploy_rename_project=true)); a warning says so.
    type: bool
    default: false
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
    release_id:
      description: The release that serves after the deploy (existing, or a new id).
      type: str
    new:
      description: release_id is a new release (no directory yet).
      type: bool
    upload:
      description: No complete release holds this code; upload the archive.
      type: bool
    clone_from:
      description: The release holding this code that the new release dir is made from
        (env-only change), or null.
      type: str
    env:
      description: env_files must run (write a new env set, make the release dir from
        clone_from, or fix the release's env links).
      type: bool
    env_set:
      description: The env (set name, or C(shared) before env sets) the release links when
        it is known already, else null (env_files writes a new set).
      type: str
    build:
      description: No image holds this code yet; build it.
      type: bool
    image_from:
      description: Ref of the image of a release with the same code, tagged for the release
        instead of a build; or null.
      type: str
    activate:
      description: current, the container or the env must change to serve the release.
      type: bool
  sample:
    release_id: 20261124T101500Z-0123456789ab
    new: true
    upload: false
    clone_from: 20261120T080000Z-5c1d2e3f4a5b
    env: true
    env_set: null
    build: false
    image_from: automated-trading-platform-backend-aws:20261120T080000Z-5c1d2e3f4a5b
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
    hash:
      description: The hash part of the id (12 hex, covers code and env).
      type: str
    code_hash:
      description: The code hash (of the manifest) of a complete release, else null.
      type: str
    env:
      description: The env it links (set name, C(shared) before env sets), or null.
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
  description:
    - The release live before current, from deploy.log's order (never from the ids), complete
      on disk with a good last record; or null.
  returned: success
  type: str
existing_release:
  description: plan.release_id when it already exists, else null.
  returned: success
  type: str
image:
  description: The release image.
  returned: success
  type: dict
  contains:
    ref:
      description: C(<image_repo>:<plan.release_id>).
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
  description: The release's env set exists with the deploy's values (see env_plan).
  returned: success
  type: bool
env_base:
  description: The merge base of a new env set (set name, C(shared), or C(checkout)).
  returned: success
  type: str
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
  description: Env links the existing release lacks (it is relinked).
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
lock_taken_over:
  description: The other run's EXPIRED lock this call took over ({holder, started, release,
    renewed, step, expires}), or null.
  returned: success
  type: dict
"""

import os  # noqa: E402
import time  # noqa: E402

from ansible.module_utils.basic import AnsibleModule  # noqa: E402
from ansible_collections.atp.deploy.plugins.module_utils import (  # noqa: E402
    adoption,
    deploy_lock,
    docker_cmd,
    docker_read,
    dotenv,
    env_layout,
    fsutil,
    instance_checks,
    proc,
    release_model,
    release_plan,
    zero_downtime,
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


CHECKOUT_BASE = "checkout"


def read_env(app_root: str, env: dict, adopt: bool) -> dict:
    """The env the release runs with, against the merge base (env_layout.base_env: the active
    release's env set, or shared/ before env sets; the checkout being adopted).

    Returns env_layout.plan_env's report plus base, target (the existing env the release links,
    or None: a new set), token (the env's identity for a new release id), write (env_files must
    write or fix the set) and in_sync.
    """
    base = CHECKOUT_BASE if adopt else env_layout.base_env(app_root)
    base_dir = app_root if adopt else release_model.env_dir(app_root, base)
    if not env["managed"]:
        # Not managed by this call: any release of the code serves; a new one links the base.
        target = env_layout.LEGACY_ENV if adopt else base
        return {"files": {}, "missing": [], "values_in_sync": True, "content": None,
                "base": base, "target": target, "write": False, "in_sync": True, "any": True,
                "token": release_model.env_set_content_hash(target)}
    # the base's env files every new set keeps: of a checkout, what adoption carries into
    # shared/ (env_files then finds them there)
    kept = (adoption.carried_env_files(app_root, env["required"]) if adopt
            else env_layout.kept_rels(base_dir, base == env_layout.LEGACY_ENV))
    report = env_layout.plan_env(base_dir, env["files"], env["required"], env["salt"],
                                 env["replace"], env["supersedes"], kept)
    content = report.pop("content")
    if content is not None:
        token = release_model.env_set_hash(content)
        target = None if adopt else env_layout.find_set(app_root, content)
        write = target is None or not env_layout.set_modes_ok(
            release_model.env_dir(app_root, target))
        line = (f"env set {target} (unchanged)" if target and not write else
                f"env set {token}: the env of {base} moved into an env set, values unchanged"
                if target is None else f"env set {target}: modes made 0700/0600")
    else:
        change = {k: env[k] for k in ("files", "required", "replace", "supersedes")}
        token = release_plan.env_change_token(base, change)
        target, write = None, True
        line = f"env set: a new one, merged onto the env of {base}"
    report.update(base=base, target=target, token=token, write=write, set_line=line,
                  in_sync=target is not None and not write, content=None)
    return report


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
    "ttl": {"type": "int", "default": deploy_lock.DEFAULT_TTL},
}

ARGUMENT_SPEC = {
    "app_root": {"type": "path", "default": "/home/ubuntu/automated-trading-platform"},
    "content_hash": {"type": "str"},
    "release_id": {"type": "str"},
    "env_plan": {"type": "dict", "default": {}},
    "env_salt": {"type": "str", "default": "", "no_log": True},
    "min_free_mb": {"type": "int", "default": 1024},
    "project_name": {"type": "str", "default": "automated-trading-platform"},
    "service": {"type": "str", "default": "backend-aws"},
    "image_repo": {"type": "str", "default": "automated-trading-platform-backend-aws"},
    "zero_downtime": {"type": "bool"},
    "port": {"type": "int", "default": 8002},
    "lock": {"type": "dict", "options": LOCK_SPEC},
    "app_owner": {"type": "str", "default": ""},
    "dependencies": {"type": "list", "elements": "dict", "default": []},
    "rename_project": {"type": "bool", "default": False},
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

    releases = release_model.read_releases(app_root, details=True)
    current = release_model.current(app_root)
    warnings = []
    problem = release_model.current_problem(app_root)
    if problem:
        warnings.append(f"{problem}; the deploy will replace it")
    complete = release_model.complete_ids(releases)
    previous = release_model.previous(release_model.read_deploy_log(app_root), current,
                                      lambda rid: rid in complete)
    named = (p.get("release_id") or "").strip() or None
    if named and named not in complete:
        shown = ", ".join(sorted(complete, reverse=True)[:10]) or "none"
        reader.fail(f"release {named} is not a complete release on the instance, expected one "
                    f"of: {shown}; list them with ansible-playbook playbooks/rollback.yml "
                    "-e rollback_list=true")

    images: dict = {}

    def image_of(rid: str) -> str | None:
        if rid not in images:
            images[rid] = reader.image_id(release_model.image_ref(p["image_repo"], rid))
        return images[rid]

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
    try:
        env = read_env(app_root, env_spec if not named else {"managed": False}, adopt)
    except dotenv.DotenvError as exc:
        reader.fail(f"{exc}; fix the file on the instance (compose cannot read it either) "
                    "and re-run")
    except OSError as exc:
        reader.fail(f"reading the env files at {app_root} failed: {exc.strerror or exc} "
                    f"({exc.filename}); check permissions (become root)")
    rels = env_layout.set_rels([*env_spec.get("required", []), *env_spec.get("files", {})])

    def links_missing(rid: str, target: str) -> list[str]:
        release_dir = release_model.release_path(app_root, rid)
        shipped = env_layout.shipped_files(release_dir)
        wanted = env_layout.release_link_rels(app_root, rels, shipped)
        return env_layout.missing_links(release_dir, wanted, shipped, target)

    plan, reasons = release_plan.plan_release(
        content_hash or None, releases, current, env, image_of, backend, p["image_repo"],
        links_missing=links_missing, named=named)
    if p["zero_downtime"] is not None and not plan["activate"]:
        why = topology_mismatch(app_root, containers, backend, p)
        if why:
            plan["activate"] = True
            reasons.append(why)
    links = [] if plan["new"] or named else links_missing(plan["release_id"], plan["env_set"])
    env["links_missing"] = links
    summary = env_layout.plan_lines(env) if not named else []
    if plan["env"]:
        at = reasons.index(release_plan.ENV_REASON) if release_plan.ENV_REASON in reasons \
            else len(reasons)
        reasons[at + 1:at + 1] = [f"env {line}" for line in summary]
    if adopt:
        plan["upload"] = True
        reasons.insert(0, f"{app_root} is a hand-managed checkout (no releases/): release_unpack "
                          "adopts it as release zero (current -> it; its env files and "
                          "secrets/ go to shared/; the checkout is kept aside whole)")
    rid = plan["release_id"]
    own = None if plan["new"] else image_of(rid)
    return {
        "plan": plan,
        "plan_reasons": reasons,
        "free_mb": free,
        "releases": releases,
        "current_release": current,
        "previous_release": previous,
        "existing_release": None if plan["new"] else rid,
        "image": {"ref": release_model.image_ref(p["image_repo"], rid), "exists": own is not None,
                  "id": own},
        "containers": backend_view,
        "port_publishers": port_publishers,
        "env_in_sync": bool(env["in_sync"]) and not links,
        "env_base": env["base"],
        "env_files": env["files"],
        "env_missing": env["missing"],
        "env_links_missing": links,
        "env_summary": summary,
        "adoption_needed": adopt,
        "_warnings": warnings,
    }


def topology_mismatch(app_root: str, containers: list[dict], backend: list[dict],
                      p: dict) -> str | None:
    """Why the release must be activated again although nothing else changed: the port is not
    served the way deploy_zero_downtime says (compose_release converts it)."""
    proxy = zero_downtime.proxy_name(p["service"])
    proxies = docker_cmd.service_containers(containers, p["project_name"], proxy)
    running = [c for c in backend if c["running"]]
    upstream = zero_downtime.read_upstream(os.path.join(zero_downtime.proxy_dir(app_root),
                                                        zero_downtime.UPSTREAM_NAME))
    if not p["zero_downtime"]:
        if any(c["running"] for c in proxies):
            return (f"the zero-downtime proxy {proxy} holds port {p['port']} and "
                    "deploy_zero_downtime is false: recreate the backend publishing it (one gap)")
        return None
    if not running:
        return None
    if not zero_downtime.settled(running, proxies, upstream, running[0]["image_id"],
                                 p["port"]):
        return (f"port {p['port']} is not served through the zero-downtime proxy by the one "
                f"running {p['service']} container: convert it (one gap at most)")
    return None


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
        self.taken_over = None  # the expired lock we took over
        self.contended = False  # someone else held it when we first looked

    def acquire(self) -> dict:
        started = time.monotonic()
        deadline = started + self.wait
        while True:
            try:
                acquired, lock, taken = deploy_lock.try_acquire(self.path, self.record)
            except OSError as exc:
                self.module.fail_json(
                    msg=f"cannot create the deploy lock {self.path}: {exc.strerror or exc}; "
                    "expected to write it (become root), check permissions and disk")
            if acquired:
                if taken is not None:
                    self.taken_over = deploy_lock.public_view(taken)
                    self.contended = True
                    self.module.warn(deploy_lock.takeover_message(taken))
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
    if p["release_id"]:
        problem = release_model.id_problem(p["release_id"])
        if problem:
            module.fail_json(msg=problem)
        content_hash = ""
    elif len(content_hash) < 12 or any(c not in "0123456789abcdef" for c in content_hash):
        module.fail_json(
            msg=f"content_hash must be a sha256 hex string (>= 12 hex chars), got "
            f"{p['content_hash']!r}; pass the content hash of the release manifest "
            "(or release_id for a rollback)"
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
    if lock_opt is not None and deploy_lock.ttl_problem(lock_opt["ttl"]):
        module.fail_json(msg=deploy_lock.ttl_problem(lock_opt["ttl"]))
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
    # Inputs only the instance can check, before the lock (a refusal changes nothing).
    problem = instance_checks.owner_problem(p["app_owner"])
    containers = reader.containers()
    project_problem, project_warning = instance_checks.project_check(
        p["project_name"], p["service"], p["dependencies"], containers, p["rename_project"])
    problem = problem or project_problem or instance_checks.checkout_check(
        app_root, p["project_name"], p["service"], p["dependencies"], containers)
    if problem:
        module.fail_json(msg=problem)
    if project_warning:
        state["_warnings"].append(project_warning)

    lock_result = {"lock_acquired": False, "lock": None, "lock_holder": None,
                   "lock_broken": None, "lock_taken_over": None}
    take = (lock_opt is not None and not module.check_mode
            and (p["lock_always"] or plan_changes(state["plan"])))
    if take:
        try:
            ensure_app_root(app_root)
        except OSError as exc:
            module.fail_json(msg=f"cannot create app_root {app_root} for the deploy lock: "
                             f"{exc.strerror or exc}; check permissions (become root)")
        record = deploy_lock.new_record(lock_opt["token"], lock_opt["holder"],
                                        lock_opt.get("release") or "", ttl=lock_opt["ttl"])
        taker = LockTaker(module, lock_file, record, p["lock_wait"], p["break_lock"])
        lock = taker.acquire()
        lock_result.update(lock_acquired=True, lock=lock, lock_broken=taker.broken,
                           lock_taken_over=taker.taken_over)
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
                f"deploy lock {lock_file} is {deploy_lock.describe(held)}; this call did not "
                "take it")

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
