#!/usr/bin/python
# Copyright: atp.deploy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Unpack an uploaded release archive into releases/<release_id>, verified, in one call."""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: release_unpack
short_description: Verify and unpack a release archive into releases/<release_id>
description:
  - Idempotent. When C(releases/<release_id>) exists and verifies against its manifest, nothing
    is done.
  - Otherwise the archive sha256 is checked, the archive is extracted safely (absolute paths,
    C(..), links, devices are rejected) into C(releases/<release_id>.partial) (a stale one is
    removed first), the tree is verified against the manifest member, the symlinks
    C(.env -> ../../shared/.env) and C(.env.aws -> ../../shared/.env.aws) are created,
    the tree is chowned to owner:group and renamed atomically to C(releases/<release_id>).
  - Never touches C(current) or other releases. A release directory that exists but fails
    verification is replaced by the verified new one.
  - When C(shared/secrets) exists, the release gets C(secrets -> ../../shared/secrets) (also an
    existing, verified release that lacks it). C(secrets), C(.env), C(.env.aws) and
    C(docker-compose.deploy.yml) are not release content (ignored by verification); an archive
    shipping C(.env), C(.env.aws) or C(secrets) is rejected.
  - "Adoption (I(adopt)): when app_root exists, has no C(releases/) and looks like a
    hand-managed checkout (C(docker-compose.yml) or C(.git)), it is first moved aside whole
    (C(os.rename)) to C(<app_root>.pre-ansible-<UTC %Y%m%dT%H%M%SZ>); a fresh app_root is
    created with the old owner, group and mode, with C(shared/) (0750, owner:group) holding
    copies of the old C(.env), C(.env.aws) (mode and owner kept) and C(secrets/) (modes and
    owners kept). Nothing is deleted: the originals stay in the aside dir (the deploy later
    overwrites C(shared/.env*) with the rendered ones). The deploy lock file moves along."
  - Adoption happens after the archive checksum is verified; an archive inside app_root is
    read from the aside dir.
version_added: "1.0.0"
author: atp.deploy contributors
options:
  app_root:
    description: Directory holding C(releases/), C(shared/), C(current).
    type: path
    default: /home/ubuntu/automated-trading-platform
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
    description: Release id C(YYYYmmddTHHMMSSZ-<12 hex of the content hash>).
    type: str
    required: true
  owner:
    description: Owner of the unpacked tree.
    type: str
    default: ubuntu
  group:
    description: Group of the unpacked tree.
    type: str
    default: ubuntu
  remove_archive:
    description: Remove the archive after a successful unpack.
    type: bool
    default: true
  adopt:
    description:
      - Adopt a hand-managed checkout found in app_root (see above). When false, the release is
        unpacked into it as it is (with a warning).
    type: bool
    default: true
notes:
  - Supports check mode; it then only verifies an existing release and reports (C(would_adopt)
    tells whether a checkout would be adopted).
"""

EXAMPLES = r"""
- name: Unpack the release
  atp.deploy.release_unpack:
    app_root: /home/ubuntu/automated-trading-platform
    archive: /home/ubuntu/automated-trading-platform/incoming/{{ atp_release_id }}.tar.gz
    archive_sha256: "{{ atp_archive_sha256 }}"
    release_id: "{{ atp_release_id }}"
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
  description: Where the adopted hand-managed checkout was kept aside, or null.
  returned: always
  type: str
  sample: /home/ubuntu/automated-trading-platform.pre-ansible-20261124T101500Z
would_adopt:
  description: Check mode only; app_root is a hand-managed checkout that would be adopted.
  returned: check mode
  type: bool
secrets_linked:
  description: Whether C(secrets -> ../../shared/secrets) was (or would be) created in the release.
  returned: always
  type: bool
"""

import json  # noqa: E402
import os  # noqa: E402
import shutil  # noqa: E402
import stat  # noqa: E402
from datetime import datetime, timezone  # noqa: E402

from ansible.module_utils.basic import AnsibleModule  # noqa: E402
from ansible_collections.atp.deploy.plugins.module_utils import (  # noqa: E402
    deploy_lock,
    docker_cmd,
    fsutil,
    release_plan,
)
from ansible_collections.atp.deploy.plugins.module_utils.release_manifest import (  # noqa: E402
    DEFAULT_VERIFY_IGNORE,
    MANIFEST_NAME,
    content_hash,
    release_content_hash_prefix,
    verify_tree,
)
from ansible_collections.atp.deploy.plugins.module_utils.safe_tar import (  # noqa: E402
    UnsafeArchive,
    extract_release,
)

ENV_LINKS = {".env": "../../shared/.env", ".env.aws": "../../shared/.env.aws"}
SECRETS_NAME = "secrets"
SECRETS_LINK = "../../shared/secrets"
# Not part of the release content: the env links, the secrets link, the compose override that
# compose_release writes into an activated release.
VERIFY_IGNORE = (*DEFAULT_VERIFY_IGNORE, SECRETS_NAME, docker_cmd.OVERRIDE_NAME)
ADOPTED_FILES = (".env", ".env.aws")
SHOWN_PROBLEMS = 5


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
    return verify_tree(path, manifest, VERIFY_IGNORE)


def remove_tree(path: str) -> None:
    if os.path.islink(path) or os.path.isfile(path):
        os.unlink(path)
    elif os.path.isdir(path):
        shutil.rmtree(path)


def make_env_links(path: str) -> None:
    for name, target in ENV_LINKS.items():
        link = os.path.join(path, name)
        if os.path.lexists(link):
            os.unlink(link)
        os.symlink(target, link)


def secrets_link_missing(release: str, app_root: str) -> bool:
    """shared/secrets exists but the release has no secrets -> ../../shared/secrets link."""
    if not os.path.isdir(os.path.join(app_root, "shared", SECRETS_NAME)):
        return False
    return fsutil.read_link_target(os.path.join(release, SECRETS_NAME)) != SECRETS_LINK


def make_secrets_link(release: str, uid: int | None = None, gid: int | None = None) -> None:
    link = os.path.join(release, SECRETS_NAME)
    if os.path.islink(link):
        os.unlink(link)
    elif os.path.lexists(link):
        raise OSError(f"{link} exists and is not a symlink")
    os.symlink(SECRETS_LINK, link)
    if uid is not None and gid is not None:
        os.lchown(link, uid, gid)


def utc_stamp() -> str:
    return datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")  # noqa: UP017


def copy_owned(src: str, dest: str) -> None:
    """Copy one file keeping its mode and owner."""
    st = os.stat(src)
    shutil.copy2(src, dest)
    os.chown(dest, st.st_uid, st.st_gid)


def copy_tree_owned(src: str, dest: str) -> None:
    """copytree keeping modes (copy2/copystat) and owners; symlinks stay symlinks."""
    shutil.copytree(src, dest, symlinks=True)
    for dirpath, dirnames, filenames in os.walk(src, followlinks=False):
        rel = os.path.relpath(dirpath, src)
        target_dir = dest if rel == "." else os.path.join(dest, rel)
        st = os.lstat(dirpath)
        os.lchown(target_dir, st.st_uid, st.st_gid)
        for name in dirnames + filenames:
            st = os.lstat(os.path.join(dirpath, name))
            os.lchown(os.path.join(target_dir, name), st.st_uid, st.st_gid)


def adopt_checkout(app_root: str, uid: int, gid: int) -> str:
    """Move the hand-managed checkout aside and start a managed app_root from its operator files.

    Nothing is deleted: the checkout stays whole at the returned aside path; .env, .env.aws and
    secrets/ are copied into the new shared/; the deploy lock (ours) moves along.
    """
    parent = os.path.dirname(os.path.abspath(app_root))
    taken = {os.path.join(parent, n) for n in os.listdir(parent)}
    aside = release_plan.aside_path(os.path.abspath(app_root), utc_stamp(), taken)
    st = os.stat(app_root)
    os.rename(app_root, aside)
    try:
        os.mkdir(app_root, 0o700)
        os.chmod(app_root, stat.S_IMODE(st.st_mode))
        os.chown(app_root, st.st_uid, st.st_gid)
    except OSError:
        if os.path.isdir(app_root) and not os.listdir(app_root):
            os.rmdir(app_root)
        if not os.path.lexists(app_root):
            os.rename(aside, app_root)
        raise
    lock = os.path.join(aside, deploy_lock.LOCK_NAME)
    if os.path.isfile(lock) and not os.path.islink(lock):
        os.rename(lock, os.path.join(app_root, deploy_lock.LOCK_NAME))
    shared = os.path.join(app_root, "shared")
    fsutil.makedirs_owned(shared, 0o750, uid, gid)
    for name in ADOPTED_FILES:
        src = os.path.join(aside, name)
        if os.path.isfile(src):
            copy_owned(src, os.path.join(shared, name))
    secrets = os.path.join(aside, SECRETS_NAME)
    if os.path.isdir(secrets) and not os.path.islink(secrets):
        copy_tree_owned(secrets, os.path.join(shared, SECRETS_NAME))
    fsutil.fsync_dir(parent)
    return aside


def moved_path(path: str, old_root: str, new_root: str) -> str:
    """path inside old_root -> the same path inside new_root (others unchanged)."""
    old_root = os.path.abspath(old_root)
    path = os.path.abspath(path)
    if os.path.commonpath([path, old_root]) != old_root:
        return path
    return os.path.join(new_root, os.path.relpath(path, old_root))


ARGUMENT_SPEC = {
    "app_root": {"type": "path", "default": "/home/ubuntu/automated-trading-platform"},
    "archive": {"type": "path", "required": True},
    # Handled by the action plugin (upload in the same task); never reaches the module.
    "src": {"type": "path"},
    "archive_sha256": {"type": "str", "required": True},
    "release_id": {"type": "str", "required": True},
    "owner": {"type": "str", "default": "ubuntu"},
    "group": {"type": "str", "default": "ubuntu"},
    "remove_archive": {"type": "bool", "default": True},
    "adopt": {"type": "bool", "default": True},
}


def main() -> None:
    module = AnsibleModule(
        argument_spec=ARGUMENT_SPEC,
        supports_check_mode=True,
    )
    p = module.params
    app_root, archive, rid = p["app_root"], p["archive"], p["release_id"]
    want_sha = p["archive_sha256"].strip().lower()
    result = {"changed": False, "release_id": rid, "unpacked": False, "replaced": False,
              "archive_removed": False, "adopted_from": None, "secrets_linked": False}
    if module.check_mode:
        result["would_adopt"] = False

    if not release_plan.is_release_id(rid):
        module.fail_json(
            msg=f"release_id must look like 20261124T101500Z-<12 hex>, got {rid!r}; "
            "pass the id computed by the archive builder", **result)
    releases = os.path.join(app_root, "releases")
    final = os.path.join(releases, rid)
    partial = final + release_plan.PARTIAL_SUFFIX
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

    existed = os.path.lexists(final)
    if existed:
        problems = verify_existing(final)
        if not problems:
            if secrets_link_missing(final, app_root):
                if not module.check_mode:
                    st = os.lstat(final)
                    try:
                        make_secrets_link(final, st.st_uid, st.st_gid)
                    except OSError as exc:
                        module.fail_json(
                            msg=f"linking {final}/{SECRETS_NAME} to {SECRETS_LINK} failed: "
                            f"{exc.strerror or exc}; expected no {SECRETS_NAME} in the release, "
                            "move it away and re-run", **result)
                result.update(changed=True, secrets_linked=True)
            module.exit_json(**result)
        module.warn(f"release {rid} exists but fails verification ({problems[0]}); "
                    "replacing it from the archive")

    if module.check_mode:
        if not os.path.isfile(archive):
            module.warn(f"archive {archive} not present (expected in check mode)")
        result.update(changed=True, unpacked=True, replaced=existed, would_adopt=adopt)
        module.exit_json(**result)

    try:
        uid, gid = fsutil.resolve_owner(p["owner"], p["group"])
    except KeyError as exc:
        module.fail_json(msg=f"{exc.args[0]}; expected owner/group to exist, create them or "
                         "set owner/group", **result)

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
        try:
            aside = adopt_checkout(app_root, uid, gid)
        except OSError as exc:
            module.fail_json(
                msg=f"adopting the hand-managed checkout {app_root} failed: "
                f"{exc.strerror or exc}; expected to move it aside to "
                f"{app_root}{release_plan.ASIDE_INFIX}<time> and copy .env, .env.aws, secrets/ "
                "into shared/ (nothing was deleted: check both dirs, fix permissions or disk "
                "and re-run, or pass adopt=false)", **result)
        result.update(changed=True, adopted_from=aside)
        archive = moved_path(archive, app_root, aside)
        module.warn(f"adopted the hand-managed checkout: kept it aside at {aside} (its .env, "
                    ".env.aws, secrets/ copied to shared/)")

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
        manifest = extract_release(archive, partial,
                                   forbidden=(*tuple(ENV_LINKS), SECRETS_NAME))
    except UnsafeArchive as exc:
        fail_clean(f"archive {archive} rejected: {exc}; expected a release archive built by "
                   "the deploy, rebuild and re-run the deploy")
    except OSError as exc:
        fail_clean(f"extracting {archive} into {partial} failed: {exc}; check disk space "
                   "and permissions, then re-run the deploy")

    if content_hash(manifest)[:12] != release_content_hash_prefix(rid):
        fail_clean(
            f"archive {archive} holds content {content_hash(manifest)[:12]}, expected "
            f"{release_content_hash_prefix(rid)} from release id {rid}; the archive and release "
            "id do not belong together, re-run the deploy")
    problems = verify_tree(partial, manifest, VERIFY_IGNORE)
    if problems:
        shown = "; ".join(problems[:SHOWN_PROBLEMS])
        extra = len(problems) - SHOWN_PROBLEMS
        more = f" (+{extra} more)" if extra > 0 else ""
        fail_clean(f"release {rid} does not match its manifest: {shown}{more}; rebuild the "
                   "archive and re-run the deploy")

    try:
        make_env_links(partial)
        if secrets_link_missing(partial, app_root):
            make_secrets_link(partial)
            result["secrets_linked"] = True
        fsutil.chown_tree(partial, uid, gid)
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
