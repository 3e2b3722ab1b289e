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
version_added: "1.0.0"
author: atp.deploy contributors
options:
  app_root:
    description: Directory holding C(releases/), C(shared/), C(current).
    type: path
    default: /home/ubuntu/automated-trading-platform
  archive:
    description: Path of the uploaded tar.gz on the instance (first member is the manifest).
    type: path
    required: true
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
notes:
  - Supports check mode; it then only verifies an existing release and reports.
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
"""

import json  # noqa: E402
import os  # noqa: E402
import shutil  # noqa: E402

from ansible.module_utils.basic import AnsibleModule  # noqa: E402
from ansible_collections.atp.deploy.plugins.module_utils import fsutil, release_plan  # noqa: E402
from ansible_collections.atp.deploy.plugins.module_utils.release_manifest import (  # noqa: E402
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
    return verify_tree(path, manifest)


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


ARGUMENT_SPEC = {
    "app_root": {"type": "path", "default": "/home/ubuntu/automated-trading-platform"},
    "archive": {"type": "path", "required": True},
    "archive_sha256": {"type": "str", "required": True},
    "release_id": {"type": "str", "required": True},
    "owner": {"type": "str", "default": "ubuntu"},
    "group": {"type": "str", "default": "ubuntu"},
    "remove_archive": {"type": "bool", "default": True},
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
                  "archive_removed": False}

    if not release_plan.is_release_id(rid):
        module.fail_json(
            msg=f"release_id must look like 20261124T101500Z-<12 hex>, got {rid!r}; "
            "pass the id computed by the archive builder", **result)
    releases = os.path.join(app_root, "releases")
    final = os.path.join(releases, rid)
    partial = final + release_plan.PARTIAL_SUFFIX
    result["release_path"] = final

    existed = os.path.lexists(final)
    if existed:
        problems = verify_existing(final)
        if not problems:
            module.exit_json(**result)
        module.warn(f"release {rid} exists but fails verification ({problems[0]}); "
                    "replacing it from the archive")

    if module.check_mode:
        if not os.path.isfile(archive):
            module.warn(f"archive {archive} not present (expected in check mode)")
        result.update(changed=True, unpacked=True, replaced=existed)
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
        manifest = extract_release(archive, partial, forbidden=tuple(ENV_LINKS))
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
    problems = verify_tree(partial, manifest)
    if problems:
        shown = "; ".join(problems[:SHOWN_PROBLEMS])
        extra = len(problems) - SHOWN_PROBLEMS
        more = f" (+{extra} more)" if extra > 0 else ""
        fail_clean(f"release {rid} does not match its manifest: {shown}{more}; rebuild the "
                   "archive and re-run the deploy")

    try:
        make_env_links(partial)
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
