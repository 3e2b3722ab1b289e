#!/usr/bin/python
# Copyright: atp.deploy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""List the releases on the instance with their deploy history, and pick a rollback target."""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: release_history
short_description: List the releases on the instance and pick the release to roll back to
description:
  - Read-only; C(changed) is always false.
  - In one call it reads C(releases/), the C(current) symlink and C(deploy.log) (the last
    record of each release), and inspects the release images C(<image_repo>:<id>) with one
    C(docker image inspect) per 50 tags.
  - The joining is C(ansible_collections.atp.deploy.plugins.module_utils.history); what a
    release is, which one was live before the current one and what counts as a good release
    is the release model (C(module_utils/release_model.py)).
  - "A rollback target is a complete release other than current whose image still exists and
    whose last deploy.log record says C(ok), or C(rolled_back) without an error (a rollback to
    it). A release that only ever failed (C(failed), or C(rolled_back) with an error: a deploy
    that failed its checks and was rolled back away from) is not a target."
  - "C(previous) is the release that was live before the current one, from deploy.log's
    ORDER (the releases that became live one after the other), never from the ids: after
    redeploying older content (an older id re-activated), or ids made with a clock that was
    off, it is still the release that served before. Releases that are no rollback target are
    skipped, further back."
  - A release is code + env; re-activating one (C(compose_release) with its id) activates its
    own env set too.
version_added: "1.1.0"
author: atp.deploy contributors (!UNKNOWN)
extends_documentation_fragment:
  - atp.deploy.backend.image_repo
options:
  app_root:
    description: Directory holding C(releases/), C(current) and C(deploy.log).
    type: path
    default: /home/ubuntu/automated-trading-platform
  select:
    description:
      - C(previous) (the previous_release) or a release id. The task fails, changing nothing,
        when there is no previous release, the id is unknown or incomplete, or its image is
        gone. Omit to only list.
    type: str
notes:
  - Supports check mode (it never changes anything anyway).
  - Runs C(docker image inspect) on the instance; needs root or the docker group.
"""

EXAMPLES = r"""
- name: Find the release to roll back to
  atp.deploy.release_history:
    app_root: /home/ubuntu/automated-trading-platform
    select: "{{ rollback_to | default('previous', true) }}"
  register: atp_history

- name: Roll back
  atp.deploy.compose_release:
    release_id: "{{ atp_history.selected.id }}"
"""

RETURN = r"""
releases:
  description: Release directories (partial ones left out), newest first.
  returned: always
  type: list
  elements: dict
  contains:
    id:
      description: Release id.
      type: str
    complete:
      description: Has its manifest (fully unpacked).
      type: bool
    active:
      description: C(current) points to it.
      type: bool
    image:
      description: C(<image_repo>:<id>).
      type: str
    image_exists:
      description: Whether that image exists.
      type: bool
    image_id:
      description: Its image id, or null.
      type: str
    git_sha:
      description: From the last deploy.log record of the release, or null.
      type: str
    result:
      description: C(ok), C(failed) or C(rolled_back) from that record, or null.
      type: str
    finished:
      description: When that deploy finished, or null.
      type: str
    operator:
      description: Who ran it, or null.
      type: str
    code_hash:
      description: Code hash of its manifest (complete releases), or null.
      type: str
    env:
      description: The env set it links (C(shared/env/<env>)), C(shared) for a release made
        before env sets, or null.
      type: str
    rollback_target:
      description: Whether it can be rolled back to (see the description).
      type: bool
  sample:
    - id: 20261124T101500Z-0123456789ab
      complete: true
      active: true
      image: automated-trading-platform-backend-aws:20261124T101500Z-0123456789ab
      image_exists: true
      image_id: sha256:4f1c...
      git_sha: 9f2d3c1
      result: ok
      finished: "2026-11-24T10:17:02+00:00"
      operator: alice
      rollback_target: false
current_release:
  description: Release id C(current) points to, or null.
  returned: always
  type: str
previous_release:
  description:
    - The release live before current that is a rollback target (see the description), or
      null.
  returned: always
  type: str
selected:
  description: The entry of I(releases) that I(select) resolved to.
  returned: when select is given
  type: dict
"""

import os  # noqa: E402

from ansible.module_utils.basic import AnsibleModule  # noqa: E402
from ansible_collections.atp.deploy.plugins.module_utils import (  # noqa: E402
    docker_cmd,
    docker_read,
    history,
    proc,
    release_model,
)

COMMAND_TIMEOUT = 60


def inspect_images(module: AnsibleModule, docker: str, refs: list[str]) -> dict:
    """ref -> image id or None, one `docker image inspect` per batch of refs."""
    found: dict = {}
    for batch in history.batches(refs):
        rc, out, err = proc.run(docker_cmd.image_tags(batch, docker), timeout=COMMAND_TIMEOUT)
        problem = history.inspect_problem(err) if rc != 0 else None
        if problem:
            module.fail_json(msg=f"`docker image inspect` failed (exit {rc}): {problem}; "
                             "expected the docker engine to answer, check it (journalctl -u "
                             "docker)")
        mapped = history.parse_inspect_tags(out, batch)
        lines = [line for line in (out or "").splitlines() if line.strip()]
        if len(lines) > sum(1 for v in mapped.values() if v):
            # Found images whose tags read differently (e.g. a registry prefix): ask per tag.
            for ref in [r for r, v in mapped.items() if v is None]:
                mapped[ref] = docker_read.image_id(docker, ref, COMMAND_TIMEOUT)
        found.update(mapped)
    return found


ARGUMENT_SPEC = {
    "app_root": {"type": "path", "default": "/home/ubuntu/automated-trading-platform"},
    "image_repo": {"type": "str", "default": "automated-trading-platform-backend-aws"},
    "select": {"type": "str"},
}


def main() -> None:
    module = AnsibleModule(
        argument_spec=ARGUMENT_SPEC,
        supports_check_mode=True,
    )
    p = module.params
    app_root, repo = p["app_root"], p["image_repo"]
    if not os.path.isdir(app_root):
        module.fail_json(msg=f"app_root {app_root} is not a directory, expected a deployed "
                         "instance; deploy first (playbooks/deploy.yml) or set app_root")

    releases = release_model.read_releases(app_root, details=True)
    current = release_model.current(app_root)
    records = release_model.read_deploy_log(app_root)

    refs = sorted({release_model.image_ref(repo, r["id"]) for r in releases
                   if not r["partial"]})
    image_ids: dict = {}
    if refs:
        docker = module.get_bin_path("docker")
        if not docker:
            module.fail_json(msg="docker CLI not found in PATH on the instance, expected docker "
                             "to check the release images; install docker")
        image_ids = inspect_images(module, docker, refs)

    entries = history.build_history(releases, records, current, image_ids, repo)
    result = {
        "changed": False,
        "releases": entries,
        "current_release": current,
        "previous_release": history.previous_release(entries, records, current),
    }
    select = (p["select"] or "").strip()
    if select:
        selected, problem = history.select_release(entries, records, current, select)
        if problem:
            module.fail_json(msg=problem, **result)
        skipped = (history.passed_over(entries, records, current, selected["id"])
                   if select == "previous" else [])
        if skipped:
            module.warn(f"rolling back to {selected['id']}, passing over the release(s) live "
                        f"after it that cannot be rolled back to: {'; '.join(skipped)}; to "
                        "go back to one of them, deploy its source again")
        if selected["active"]:
            module.warn(f"release {selected['id']} is already the active release")
        elif not release_model.is_good_release(selected["id"], records):
            module.warn(f"release {selected['id']} never finished a deploy ok (last result: "
                        f"{selected['result'] or 'none recorded'}); using it as asked")
        result["selected"] = selected
    module.exit_json(**result)


if __name__ == "__main__":
    main()
