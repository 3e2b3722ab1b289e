#!/usr/bin/python
# Copyright: atp.deploy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Unpack an uploaded release archive into releases/<release_id>, verified, in one call."""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: release_unpack
short_description: Verify and unpack a release archive into releases/<release_id>; adopt a checkout
description:
  - Idempotent. When C(releases/<release_id>) exists and verifies against its manifest, only its
    env links are checked (and fixed).
  - Otherwise the archive sha256 is checked, the archive is extracted safely (absolute paths,
    C(..), links, devices are rejected) into C(releases/<release_id>.partial) (a stale one is
    removed first), the tree is verified against the manifest member (and its code hash against
    I(content_hash)), every env file of I(env_files) is linked into the release's env
    I(env_set) (C(.env -> ../../shared/env/<set>/.env),
    C(config/db.env -> ../../../shared/env/<set>/config/db.env); paths under C(secrets/)
    through the C(secrets -> ../../shared/secrets) link), the tree is chowned to owner:group
    and renamed atomically to C(releases/<release_id>).
  - Without I(env_set) (the deploy writes a new env set) no env link is made, env_files makes
    them. An env set is never changed here.
  - Never touches C(current) or other releases. A release directory that exists but fails
    verification is replaced by the verified new one. An env file the archive ships itself
    stays the shipped file (reported in C(env_shipped)).
  - An archive shipping C(.env), C(.env.aws) or C(secrets) is rejected.
  - "Adoption (I(adopt)): when app_root has no C(releases/) and looks like a hand-managed
    checkout (C(docker-compose.yml) or C(.git)), it becomes release zero, atomically: beside
    it, C(<app_root>.adopting-<stamp>) gets C(releases/<zero id>) (a copy of the checkout's
    files without .git, env files, secrets/ and caches, with a manifest), C(shared/) (every env
    file of the checkout -- .env, .env.aws, I(env_files), the env_file entries of its own
    compose file -- at 0600, and secrets/ with modes and owners kept), the env links,
    C(current -> releases/<zero id>), a deploy.log line and the deploy lock. The running
    backend container's image (I(project_name)/I(service)) is tagged
    C(<image_repo>:<zero id>), so re-activating release zero needs no build. Then the new
    layout and the checkout swap places (C(renameat2) exchange, else two renames undone on
    failure); the checkout is kept whole at C(<app_root>.pre-ansible-<stamp>). A failure
    before the swap leaves app_root as it was."
  - The zero id is C(<adoption UTC time>-<12 hex of its content>), the time kept before the id
    of I(release_id) so release zero sorts as the older release.
  - Adoption happens after the archive checksum is verified; an archive inside app_root is
    read from the aside dir.
version_added: "1.0.0"
author: atp.deploy contributors (!UNKNOWN)
extends_documentation_fragment:
  - atp.deploy.backend.app_root
  - atp.deploy.backend.service
  - atp.deploy.deploy_lock
options:
  archive:
    description:
      - Path of the uploaded tar.gz on the instance (first member is the manifest).
      - Set by the action plugin when O(src) is given.
    type: path
    required: true
  src:
    description:
      - Release archive on the controller. The action plugin uploads it into the task's remote
        tmp dir and unpacks it in the same task (one SSM session instead of two).
    type: path
  archive_sha256:
    description: Expected sha256 hex of the archive file.
    type: str
    required: true
  release_id:
    description: Release id (release_state's C(plan.release_id), made by the release model).
    type: str
    required: true
  content_hash:
    description:
      - The code hash (of the manifest) the archive must hold; checked when given.
    type: str
    default: ""
  env_set:
    description:
      - The env the release links (release_state's C(plan.env_set)), an env set under
        C(shared/env/) (it must hold every env file of I(env_files)), or C(shared) for the
        layout before env sets (missing files are then created empty in C(shared/)).
      - Empty, no env link is made here (env_files writes the release's new set and links it).
    type: str
    default: ""
  env_files:
    description:
      - Every env file compose needs, relative to the compose file's directory (the
        C(env_file) entries of the service and its dependencies, or of every service).
        C(.env) and C(.env.aws) are always included.
      - Absolute paths and paths leaving the app dir are skipped with a warning.
    type: list
    elements: str
    default: [.env, .env.aws]
  owner:
    description: Owner of the unpacked tree and of created env files.
    type: str
    default: ubuntu
  group:
    description: Group of the unpacked tree and of created env files.
    type: str
    default: ubuntu
  remove_archive:
    description: Remove the archive after a successful unpack.
    type: bool
    default: true
  adopt:
    description:
      - Adopt a hand-managed checkout found in app_root as release zero (see above). When
        false, the release is unpacked into it as it is (with a warning).
    type: bool
    default: true
  project_name:
    description:
      - Compose project of the hand-managed stack (its backend image becomes release zero's).
    type: str
    default: automated-trading-platform
  image_repo:
    description: Image repository; release zero's image is tagged C(<image_repo>:<zero id>).
    type: str
    default: automated-trading-platform-backend-aws
notes:
  - Supports check mode; it then only verifies an existing release and reports (C(would_adopt)
    tells whether a checkout would be adopted, C(release_zero.env_files) what would move).
"""

EXAMPLES = r"""
- name: Unpack the release
  atp.deploy.release_unpack:
    app_root: /home/ubuntu/automated-trading-platform
    archive: /home/ubuntu/automated-trading-platform/incoming/{{ atp_release_id }}.tar.gz
    archive_sha256: "{{ atp_archive_sha256 }}"
    release_id: "{{ atp_release_id }}"
    env_files: [.env, .env.aws, .env.db, secrets/runtime.env]
  when: atp_state.plan.upload
"""

RETURN = r"""
release_id:
  description: The release id.
  returned: always
  type: str
release_path:
  description: Absolute path of C(releases/<release_id>).
  returned: always
  type: str
unpacked:
  description: Whether the archive was (or in check mode would be) unpacked.
  returned: success
  type: bool
replaced:
  description: Whether an existing but broken release directory was replaced.
  returned: success
  type: bool
files:
  description: Number of files listed in the manifest.
  returned: when unpacked
  type: int
archive_removed:
  description: Whether the archive was removed.
  returned: success
  type: bool
adopted_from:
  description: Where the adopted hand-managed checkout was kept whole, or null.
  returned: always
  type: str
  sample: /home/ubuntu/automated-trading-platform.pre-ansible-20261124T101500Z
would_adopt:
  description: Check mode only; app_root is a hand-managed checkout that would be adopted.
  returned: check mode
  type: bool
release_zero:
  description: The release made of the adopted checkout, or null without adoption.
  returned: always
  type: dict
  contains:
    release_id:
      description: Its id (C(current) points at it until the new release is activated).
      type: str
    image:
      description: C(<image_repo>:<zero id>), null when no backend container was running.
      type: str
    image_id:
      description: Image id of the running backend that was tagged, or null.
      type: str
    env_files:
      description: Env files carried from the checkout into shared/ (names only).
      type: list
      elements: str
    env_created:
      description: Env files created empty in shared/ (no such file in the checkout).
      type: list
      elements: str
    files:
      description: Files of the checkout held by release zero.
      type: int
    git_sha:
      description: Commit of the checkout's .git HEAD, or null.
      type: str
secrets_linked:
  description: Whether C(secrets -> ../../shared/secrets) was (or would be) created in the release.
  returned: always
  type: bool
env_linked:
  description: Env links created or fixed in the release (relative paths).
  returned: always
  type: list
  elements: str
env_created:
  description: Env files created empty (0600) in shared/ (only with I(env_set=shared), the
    layout before env sets).
  returned: always
  type: list
  elements: str
env_shipped:
  description: Env files the archive ships itself (they stay release content, not links).
  returned: always
  type: list
  elements: str
env_set:
  description: The env the release was linked to (I(env_set)), or null.
  returned: always
  type: str
"""

import json  # noqa: E402
import os  # noqa: E402
import shutil  # noqa: E402

from ansible.module_utils.basic import AnsibleModule  # noqa: E402
from ansible_collections.atp.deploy.plugins.module_utils import (  # noqa: E402
    adoption,
    deploy_lock,
    docker_cmd,
    docker_read,
    env_layout,
    fsutil,
    proc,
    release_model,
    release_plan,
)
from ansible_collections.atp.deploy.plugins.module_utils.release_manifest import (  # noqa: E402
    DEFAULT_VERIFY_IGNORE,
    MANIFEST_NAME,
    content_hash,
    verify_tree,
)
from ansible_collections.atp.deploy.plugins.module_utils.safe_tar import (  # noqa: E402
    UnsafeArchive,
    extract_release,
)

SECRETS_NAME = env_layout.SECRETS_NAME
FORBIDDEN = (*env_layout.DEFAULT_ENV_FILES, SECRETS_NAME)
# Not part of the release content: the secrets link, the compose override that compose_release
# writes into an activated release (the env links into shared/ are found by their targets).
VERIFY_IGNORE = (*DEFAULT_VERIFY_IGNORE, SECRETS_NAME, docker_cmd.OVERRIDE_NAME)
SHOWN_PROBLEMS = 5
DOCKER_TIMEOUT = 60


def verify_existing(path: str) -> list[str]:
    """Problems of an existing release dir (empty = complete and intact)."""
    manifest_path = os.path.join(path, MANIFEST_NAME)
    try:
        with open(manifest_path, encoding="utf-8") as handle:
            manifest = json.load(handle)
    except (OSError, ValueError) as exc:
        return [f"manifest unreadable: {exc}"]
    if not isinstance(manifest, dict):
        return ["manifest is not a JSON object"]
    ignore = (*VERIFY_IGNORE, *env_layout.shared_links(path))
    return verify_tree(path, manifest, ignore)


def remove_tree(path: str) -> None:
    if os.path.islink(path) or os.path.isfile(path):
        os.unlink(path)
    elif os.path.isdir(path):
        shutil.rmtree(path)


def moved_path(path: str, old_root: str, new_root: str) -> str:
    """path inside old_root -> the same path inside new_root (others unchanged)."""
    old_root = os.path.abspath(old_root)
    path = os.path.abspath(path)
    if os.path.commonpath([path, old_root]) != old_root:
        return path
    return os.path.join(new_root, os.path.relpath(path, old_root))


class ZeroTagger:
    """Tag the running backend's image as release zero's (one `docker tag`)."""

    def __init__(self, module: AnsibleModule, project: str, service: str):
        self.module, self.project, self.service = module, project, service
        self.warning = None

    def __call__(self, ref: str) -> str | None:
        docker = self.module.get_bin_path("docker")
        if not docker:
            raise adoption.AdoptionError("docker CLI not found in PATH on the instance, "
                                         "expected it to tag the running backend's image")
        try:
            found = docker_read.containers(docker, DOCKER_TIMEOUT, self.project, self.service,
                                           retry_vanished=True)
        except docker_read.DockerReadError as exc:
            raise adoption.AdoptionError(f"{exc}; check the docker engine") from exc
        running = [c for c in found if c["running"] and c.get("image_id")]
        if not running:
            self.warning = (f"no running {self.project}/{self.service} container in the "
                            "hand-managed stack: release zero has no image, re-activating it "
                            "builds one")
            return None
        image_id = running[0]["image_id"]
        rc, out, err = proc.run(docker_cmd.tag(image_id, ref, docker), timeout=DOCKER_TIMEOUT)
        if rc != 0:
            raise adoption.AdoptionError(
                f"`docker tag {image_id[:19]} {ref}` failed (exit {rc}): "
                f"{docker_cmd.first_line(err or out)}; check the docker engine")
        return image_id


ARGUMENT_SPEC = {
    "app_root": {"type": "path", "default": "/home/ubuntu/automated-trading-platform"},
    "archive": {"type": "path", "required": True},
    # Handled by the action plugin (upload in the same task); never reaches the module.
    "src": {"type": "path"},
    "archive_sha256": {"type": "str", "required": True},
    "release_id": {"type": "str", "required": True},
    "content_hash": {"type": "str", "default": ""},
    "env_set": {"type": "str", "default": ""},
    "env_files": {"type": "list", "elements": "str", "default": [".env", ".env.aws"]},
    "owner": {"type": "str", "default": "ubuntu"},
    "group": {"type": "str", "default": "ubuntu"},
    "remove_archive": {"type": "bool", "default": True},
    "adopt": {"type": "bool", "default": True},
    "project_name": {"type": "str", "default": "automated-trading-platform"},
    "service": {"type": "str", "default": "backend-aws"},
    "image_repo": {"type": "str", "default": "automated-trading-platform-backend-aws"},
    **deploy_lock.MODULE_ARGS,
}


def link_failure(release: str, app_root: str, exc: OSError) -> str:
    return (f"linking the env files of {release} into {app_root}/shared failed: "
            f"{exc.strerror or exc} ({exc.filename or release}); expected symlinks into shared/ "
            "where the release has no file of that name, move the file away and re-run")


def env_paths(module: AnsibleModule, given: list[str]) -> list[str]:
    rels, problems = env_layout.split_env_paths([*env_layout.DEFAULT_ENV_FILES, *given])
    for problem in problems:
        module.warn(f"{problem}: not linked into the release (compose reads it from there)")
    return rels


def env_problem(app_root: str, env: str | None, rels: list[str]) -> str | None:
    """None when the env to link exists with every env file, else the one-line problem."""
    if not env or env == env_layout.LEGACY_ENV:
        return None
    if not release_model.is_env_set(env):
        return (f"env_set must name an env set (12 hex) or {env_layout.LEGACY_ENV!r}, got "
                f"{env!r}; pass plan.env_set from release_state")
    files = env_layout.read_set(release_model.env_dir(app_root, env))
    if files is None:
        return (f"env set {env} is missing from {release_model.env_sets_path(app_root)}; "
                "re-run the deploy (its plan writes a new env set)")
    lacking = [rel for rel in env_layout.set_rels(rels) if rel not in files]
    if lacking:
        return (f"env set {env} lacks {', '.join(lacking)}; expected every env file compose "
                "needs, re-run the deploy (its plan writes a new env set)")
    return None


def link_env(release: str, app_root: str, rels: list[str], env: str | None, uid: int | None,
             gid: int | None, result: dict, check: bool = False) -> bool:
    """Link the release's env files into env (an env set, or shared/ before env sets); True
    when anything changed. Without env nothing is linked (env_files writes the release's set
    and links it). Only for shared/ are missing files created (empty, 0600): an env set is
    never changed.

    Raises OSError (a real file where a link goes, permissions, disk).
    """
    shipped = env_layout.shipped_files(release)
    result["env_shipped"] = sorted(r for r in rels if r in shipped)
    result["env_set"] = env or None
    if not env:
        return False
    wanted = [r for r in rels if r not in shipped]
    legacy = env == env_layout.LEGACY_ENV
    shared = release_model.shared_path(app_root)
    missing_files = [r for r in wanted if legacy
                     and not os.path.lexists(os.path.join(shared, *r.split("/")))]
    link_rels = env_layout.release_link_rels(app_root, wanted, shipped)
    missing_links = env_layout.missing_links(release, link_rels, shipped, env)
    if check:
        result["env_created"] = missing_files
        result["env_linked"] = missing_links
        result["secrets_linked"] = SECRETS_NAME in missing_links
        return bool(missing_files or missing_links)
    if missing_files and not os.path.isdir(shared):
        fsutil.makedirs_owned(shared, env_layout.SHARED_DIR_MODE, uid, gid)
    if legacy:
        result["env_created"] = env_layout.create_missing(shared, wanted, uid, gid)
    made = env_layout.make_links(release, link_rels, uid, gid, shipped, env)
    result["env_linked"] = made
    result["secrets_linked"] = SECRETS_NAME in made
    return bool(result["env_created"] or made)


def main() -> None:
    module = AnsibleModule(
        argument_spec=ARGUMENT_SPEC,
        supports_check_mode=True,
    )
    p = module.params
    app_root, archive, rid = p["app_root"], p["archive"], p["release_id"]
    want_sha = p["archive_sha256"].strip().lower()
    result = {"changed": False, "release_id": rid, "unpacked": False, "replaced": False,
              "archive_removed": False, "adopted_from": None, "release_zero": None,
              "secrets_linked": False, "env_linked": [], "env_created": [], "env_shipped": [],
              "env_set": None}
    if module.check_mode:
        result["would_adopt"] = False
    deploy_lock.hold(module, deploy_lock.module_lock_file(p, app_root), p["lock_token"],
                     "release_unpack", result)

    problem = release_model.id_problem(rid)
    if problem:
        module.fail_json(msg=problem, **result)
    rels = env_paths(module, p["env_files"])
    env = (p["env_set"] or "").strip() or None
    problem = env_problem(app_root, env, rels)
    if problem and not module.check_mode:
        module.fail_json(msg=problem, **result)
    releases = release_model.releases_path(app_root)
    final = release_model.release_path(app_root, rid)
    partial = final + release_model.PARTIAL_SUFFIX
    result["release_path"] = final

    try:
        entries = os.listdir(app_root)
    except OSError:
        entries = None
    adopt = release_plan.needs_adoption(entries)
    if adopt and not p["adopt"]:
        module.warn(f"{app_root} looks like a hand-managed checkout (no releases/) but adopt is "
                    "false: unpacking into it as it is")
        adopt = False

    owner = None
    if not module.check_mode:
        try:
            owner = fsutil.resolve_owner(p["owner"], p["group"])
        except KeyError as exc:
            module.fail_json(msg=f"{exc.args[0]}; expected owner/group to exist, create them or "
                             "set owner/group", **result)
    uid, gid = owner or (None, None)

    existed = os.path.lexists(final)
    if existed:
        problems = verify_existing(final)
        if not problems:
            try:
                if link_env(final, app_root, rels, env, uid, gid, result, module.check_mode):
                    result["changed"] = True
            except OSError as exc:
                module.fail_json(msg=link_failure(final, app_root, exc), **result)
            module.exit_json(**result)
        module.warn(f"release {rid} exists but fails verification ({problems[0]}); "
                    "replacing it from the archive")

    if module.check_mode:
        if not os.path.isfile(archive):
            module.warn(f"archive {archive} not present (expected in check mode)")
        if adopt:
            plan = adoption.Adopter(app_root, 0, 0, rels, p["image_repo"], None).plan()
            result["release_zero"] = {"env_files": plan["carried"], "files": len(plan["files"])}
        result.update(changed=True, unpacked=True, replaced=existed, would_adopt=adopt)
        module.exit_json(**result)

    if not os.path.isfile(archive):
        module.fail_json(
            msg=f"archive {archive} not found on the instance, expected the uploaded release "
            f"{rid}; re-run the deploy to upload it again", **result)
    seen_sha = fsutil.sha256_file(archive)
    if seen_sha != want_sha:
        module.fail_json(
            msg=f"archive {archive} is corrupt or partial: sha256 {seen_sha} != expected "
            f"{want_sha}; re-run the deploy to upload it again", **result)

    if adopt:
        tagger = ZeroTagger(module, p["project_name"], p["service"])
        adopter = adoption.Adopter(app_root, uid, gid, rels, p["image_repo"], tagger,
                                   next_release_id=rid)
        try:
            zero = adopter.run()
        except (OSError, adoption.AdoptionError) as exc:
            reason = (f"{exc.strerror or exc} ({exc.filename})"
                      if isinstance(exc, OSError) and exc.filename else
                      (exc.strerror or str(exc)) if isinstance(exc, OSError) else str(exc))
            module.fail_json(
                msg=f"adopting the hand-managed checkout {app_root} as release zero failed: "
                f"{reason}; {app_root} is as it was (nothing moved, nothing deleted), the "
                "running containers were not touched: fix the cause and re-run, or pass "
                "adopt=false", **result)
        aside = zero.pop("adopted_from")
        result.update(changed=True, adopted_from=aside, release_zero=zero)
        archive = moved_path(archive, app_root, aside)
        if tagger.warning:
            module.warn(tagger.warning)
        carried = ", ".join(zero["env_files"]) or "none"
        module.warn(f"adopted the hand-managed checkout as release {zero['release_id']} "
                    f"(current points at it; its env files {carried} and secrets/ are in "
                    f"shared/); the checkout is kept whole at {aside}")

    try:
        fsutil.makedirs_owned(releases, 0o755, uid, gid)
        remove_tree(partial)
        os.mkdir(partial, 0o755)
    except OSError as exc:
        module.fail_json(msg=f"cannot create {partial}: {exc}; check permissions and disk at "
                         f"{app_root}", **result)

    def fail_clean(msg: str) -> None:
        remove_tree(partial)
        module.fail_json(msg=msg, **result)

    try:
        manifest = extract_release(archive, partial, forbidden=FORBIDDEN)
    except UnsafeArchive as exc:
        fail_clean(f"archive {archive} rejected: {exc}; expected a release archive built by "
                   "the deploy, rebuild and re-run the deploy")
    except OSError as exc:
        fail_clean(f"extracting {archive} into {partial} failed: {exc}; check disk space "
                   "and permissions, then re-run the deploy")

    want_code = (p["content_hash"] or "").strip().lower()
    if want_code and content_hash(manifest) != want_code:
        fail_clean(
            f"archive {archive} holds code {content_hash(manifest)[:12]}, expected "
            f"{want_code[:12]} (content_hash) for release {rid}; the archive and the plan do "
            "not belong together, re-run the deploy")
    problems = verify_tree(partial, manifest, VERIFY_IGNORE)
    if problems:
        shown = "; ".join(problems[:SHOWN_PROBLEMS])
        extra = len(problems) - SHOWN_PROBLEMS
        more = f" (+{extra} more)" if extra > 0 else ""
        fail_clean(f"release {rid} does not match its manifest: {shown}{more}; rebuild the "
                   "archive and re-run the deploy")

    try:
        fsutil.chown_tree(partial, uid, gid)
        link_env(partial, app_root, rels, env, uid, gid, result)
    except OSError as exc:
        fail_clean(link_failure(partial, app_root, exc))
    try:
        if existed:
            old = os.path.join(releases, f".{rid}.broken-{os.getpid()}")
            os.rename(final, old)
            os.rename(partial, final)
            remove_tree(old)
        else:
            os.rename(partial, final)
        fsutil.fsync_dir(releases)
    except OSError as exc:
        fail_clean(f"activating {partial} as {final} failed: {exc}; check permissions, "
                   "then re-run the deploy")

    if p["remove_archive"]:
        try:
            os.unlink(archive)
            result["archive_removed"] = True
        except OSError as exc:
            module.warn(f"could not remove archive {archive}: {exc}")
    result.update(changed=True, unpacked=True, replaced=existed,
                  files=len(manifest.get("files") or {}))
    module.exit_json(**result)


if __name__ == "__main__":
    main()
