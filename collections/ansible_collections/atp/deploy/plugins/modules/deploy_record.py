#!/usr/bin/python
# Copyright: atp.deploy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Append one audit line to deploy.log, prune old releases, release the deploy lock."""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: deploy_record
short_description: Append one JSON line describing a deploy to deploy.log, prune, unlock
description:
  - Appends I(record) as one JSON line (sorted keys) to I(log_file) with a single write.
  - Creates I(log_file) with mode 0640 when missing; never rewrites earlier lines.
  - Adds C(recorded_at) (UTC, ISO 8601) when the record has none.
  - release_state reads this log to find the previous release; a successful deploy should
    record C(result=ok).
  - "Retention (when I(keep_releases) is given): after the line is appended, the complete
    releases under C(<app_root>/releases) are sorted by id; the newest I(keep_releases), the
    release C(current) points to and every I(protect) id are kept, older ones are pruned: first
    their image C(<image_repo>:<id>) with a plain C(docker image rm) (never forced; a missing
    image is fine; an image a container still uses is kept, with its release, and a warning),
    then the release dir (C(rm -r)). C(releases/*.partial) dirs older than one hour are removed
    too. The release live before the active one (deploy.log order) is kept as well. Then every
    env set (C(shared/env/<set>)) no remaining release links is removed (the active and the
    previous release's sets stay with them). Pruning problems are warnings, never failures:
    the deploy itself is over."
  - "Unlock (when I(unlock_token) is given): last, C(<dir of log_file>/.deploy.lock) is removed
    if it holds that token, never another run's lock. When this call fails, the lock of
    I(unlock_token) is still released (the run ends here)."
  - "Lock lost: when the lock no longer holds I(unlock_token) (expired and taken over, broken,
    released by hand), the line is still appended (with C(lock) saying so) but nothing is
    pruned or unlocked, and the call fails with C(lock_lost=true): another run owns the
    instance now."
  - Every string of I(record) (e.g. C(error), a failed step's output) is masked with the values
    of the env files on the instance before it is written or returned.
version_added: "1.0.0"
author: atp.deploy contributors (!UNKNOWN)
extends_documentation_fragment:
  - atp.deploy.backend.image_repo
options:
  log_file:
    description: The JSON lines log (C(<app_root>/deploy.log)).
    type: path
    default: /home/ubuntu/automated-trading-platform/deploy.log
  record:
    description:
      - What happened, e.g. C(release), C(git_sha), C(image_id), C(operator), C(started),
        C(finished), C(result) (C(ok), C(failed), C(rolled_back)); any extra keys are kept.
    type: dict
    required: true
  unlock_token:
    description: This run's deploy lock token (see release_state I(lock.token)); omit to keep
      the lock.
    type: str
    aliases: [lock_token]
  keep_releases:
    description:
      - How many newest complete releases (and their images) to keep; at least 2 (the active
        and the previous release). Omit to prune nothing.
    type: int
  app_root:
    description: Directory holding C(releases/) and C(current); defaults to the dir of log_file.
    type: path
  protect:
    description: Release ids never pruned (e.g. the deployed one and the one active before).
    type: list
    elements: str
    default: []
notes:
  - Supports check mode; nothing is written, removed or unlocked then, C(changed) is still
    true, and C(pruned) / C(pruned_images) / C(unlocked) tell what would be done.
"""

EXAMPLES = r"""
- name: Record the deploy
  atp.deploy.deploy_record:
    log_file: /home/ubuntu/automated-trading-platform/deploy.log
    record:
      release: "{{ atp_release_id }}"
      git_sha: "{{ atp_git_sha }}"
      image_id: "{{ atp_compose.image_id }}"
      operator: "{{ lookup('env', 'USER') }}"
      started: "{{ atp_started }}"
      finished: "{{ now(utc=true).isoformat() }}"
      result: ok
    unlock_token: "{{ atp_lock_token }}"
    keep_releases: 5
    protect:
      - "{{ atp_release_id }}"
      - "{{ atp_state.current_release }}"
"""

RETURN = r"""
line:
  description: The JSON line appended (without the newline).
  returned: success
  type: str
created:
  description: Whether the log file was created.
  returned: success
  type: bool
pruned:
  description: Release ids whose directory was removed (oldest first).
  returned: always
  type: list
  elements: str
  sample: [20261101T090000Z-0123456789ab]
pruned_images:
  description: Image refs removed (a missing image is not listed).
  returned: always
  type: list
  elements: str
  sample: [automated-trading-platform-backend-aws:20261101T090000Z-0123456789ab]
pruned_env_sets:
  description: Env sets removed from C(shared/env/) (no remaining release linked them).
  returned: always
  type: list
  elements: str
unlocked:
  description: Whether this run's deploy lock was released.
  returned: always
  type: bool
"""

import contextlib  # noqa: E402
import os  # noqa: E402
import shutil  # noqa: E402
import time  # noqa: E402
from datetime import UTC, datetime  # noqa: E402

from ansible.module_utils.basic import AnsibleModule  # noqa: E402
from ansible_collections.atp.deploy.plugins.module_utils import (  # noqa: E402
    deploy_lock,
    docker_cmd,
    env_layout,
    fsutil,
    masking,
    proc,
    release_model,
    retention,
)

DOCKER_TIMEOUT = 120


def build_record(record: dict, now: datetime) -> dict:
    out = dict(record)
    out.setdefault("recorded_at", now.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"))
    return out


def scan_releases(releases_dir: str) -> tuple[list[dict], list[tuple[str, float]]]:
    """(release dirs as describe_release_dir entries, [(partial dir name, mtime)])."""
    found, partials = [], []
    for entry, described in release_model.release_entries(releases_dir):
        found.append(described)
        if described["partial"]:
            partials.append((entry.name, entry.stat(follow_symlinks=False).st_mtime))
    return found, partials


def remove_release_dir(path: str) -> None:
    """rm -r, first renamed to <id>.partial so an interrupted removal is cleaned up later."""
    doomed = path + release_model.PARTIAL_SUFFIX
    if os.path.lexists(doomed):
        shutil.rmtree(doomed)
    os.rename(path, doomed)
    shutil.rmtree(doomed)


class Pruner:
    def __init__(self, module: AnsibleModule, app_root: str, image_repo: str):
        self.module = module
        self.app_root = app_root
        self.releases_dir = os.path.join(app_root, "releases")
        self.image_repo = image_repo
        self.pruned: list[str] = []
        self.pruned_images: list[str] = []
        self.pruned_env_sets: list[str] = []

    def plan(self, keep: int, protect: list[str]) -> tuple[list[str], list[str]]:
        releases, partials = scan_releases(self.releases_dir)
        current = release_model.current(self.app_root)
        complete = release_model.complete_ids(releases)
        # The release live before current (deploy.log order) is a rollback target: kept.
        previous = release_model.previous(release_model.read_deploy_log(self.app_root),
                                          current, lambda rid: rid in complete)
        doomed = retention.select_prune(releases, keep, current,
                                        [*protect, *([previous] if previous else [])])
        stale = retention.stale_partials(partials, time.time())
        return doomed, stale

    def prune_env_sets(self, protect: list[str]) -> None:
        """Remove the env sets no release links any more (those of the releases kept, the
        active and the previous one among them, stay) and stale temporary set dirs."""
        try:
            entries = env_layout.list_sets(self.app_root)
            linked = set()
            for entry, _described in release_model.release_entries(self.releases_dir):
                linked |= set(release_model.env_links(entry.path).values())
            for rid in protect:
                linked.add(release_model.release_env(
                    release_model.release_path(self.app_root, rid)))
            doomed = retention.select_env_prune([entry[0] for entry in entries], linked)
            doomed += env_layout.stale_partial_sets(entries)
        except OSError as exc:
            self.module.warn(f"not pruning env sets: reading {self.app_root} failed: {exc}")
            return
        for name in doomed:
            try:
                env_layout.remove_set(self.app_root, name)
            except (OSError, ValueError) as exc:
                self.module.warn(f"could not remove env set {name}: {exc}; remove "
                                 f"{release_model.env_sets_path(self.app_root)}/{name} by hand")
                continue
            if release_model.is_env_set(name):
                self.pruned_env_sets.append(name)

    def remove_image(self, docker: str, ref: str) -> bool:
        """True when the release may go (image removed or already gone)."""
        rc, out, err = proc.run(docker_cmd.image_rm(ref, docker), timeout=DOCKER_TIMEOUT)
        outcome = retention.classify_image_rm(rc, out, err)
        if outcome == "removed":
            self.pruned_images.append(ref)
            return True
        if outcome == "missing":
            return True
        seen = docker_cmd.first_line(err or out)
        if outcome == "in_use":
            self.module.warn(f"kept release image {ref} and its release: a container uses it "
                             f"({seen}); remove that container, the next deploy prunes it")
        else:
            self.module.warn(f"kept release image {ref} and its release: `docker image rm` "
                             f"failed (exit {rc}): {seen}; check the docker engine")
        return False

    def run(self, docker: str | None, doomed: list[str], stale: list[str]) -> None:
        for rid in doomed:
            ref = release_model.image_ref(self.image_repo, rid)
            if docker is None:
                self.module.warn(f"kept release {rid}: docker CLI not found, cannot tell "
                                 f"whether a container uses {ref}; install docker")
                continue
            if not self.remove_image(docker, ref):
                continue
            try:
                remove_release_dir(os.path.join(self.releases_dir, rid))
            except OSError as exc:
                self.module.warn(f"could not remove release {rid}: {exc}; remove "
                                 f"{self.releases_dir}/{rid} by hand")
                continue
            self.pruned.append(rid)
        for name in stale:
            try:
                shutil.rmtree(os.path.join(self.releases_dir, name))
            except OSError as exc:
                self.module.warn(f"could not remove stale {self.releases_dir}/{name}: {exc}")


ARGUMENT_SPEC = {
    "log_file": {"type": "path", "default": "/home/ubuntu/automated-trading-platform/deploy.log"},
    "record": {"type": "dict", "required": True},
    "unlock_token": {"type": "str", "no_log": False, "aliases": ["lock_token"]},
    "keep_releases": {"type": "int"},
    "app_root": {"type": "path"},
    "image_repo": {"type": "str", "default": "automated-trading-platform-backend-aws"},
    "protect": {"type": "list", "elements": "str", "default": []},
}


def main() -> None:
    module = AnsibleModule(
        argument_spec=ARGUMENT_SPEC,
        supports_check_mode=True,
    )
    p = module.params
    log_file = p["log_file"]
    record = build_record(p["record"] or {}, datetime.now(UTC))
    directory = os.path.dirname(os.path.abspath(log_file))
    app_root = p["app_root"] or directory
    lock_file = os.path.join(directory, deploy_lock.LOCK_NAME)
    token = p["unlock_token"] or None
    keep = p["keep_releases"]
    protect = [r for r in (p["protect"] or []) if r]
    result = {"pruned": [], "pruned_images": [], "pruned_env_sets": [], "unlocked": False}
    # A failed step's error text may quote env values: never into deploy.log or the output.
    masker = masking.protect(module, masking.for_release(
        app_root, os.path.join(app_root, "releases", str(record.get("release") or "none"))))
    record = masker.data(record)
    lost = None  # (the lock now in place,) when this run no longer holds its lock
    if token and not module.check_mode and os.path.isdir(directory):
        try:
            ours, current = deploy_lock.renew(lock_file, token, "deploy_record")
        except OSError:
            ours, current = True, None  # releasing it below reports the problem
        if not ours:
            lost = (current,)
            record["lock"] = deploy_lock.lost_message(current)
            keep = None  # another run owns the instance now: prune nothing

    def fail(msg: str) -> None:
        """This call ends the run: release our lock even when failing, then fail."""
        if token and not module.check_mode:
            with contextlib.suppress(OSError):
                result["unlocked"] = deploy_lock.release_lock(lock_file, token)
        module.fail_json(msg=msg, **result)

    problem = retention.keep_problem(keep)
    if problem:
        fail(problem)
    if not record.get("release"):
        module.warn("record has no 'release'; release_state cannot use it to find the "
                    "previous release")
    if not os.path.isdir(directory):
        fail(f"directory of log_file {directory} does not exist, expected the "
             "app_root; run the deploy's setup first or fix log_file")
    if os.path.isdir(log_file):
        fail(f"log_file {log_file} is a directory, expected a file; "
             "move it away or fix log_file")

    pruner = Pruner(module, app_root, p["image_repo"])
    doomed, stale = [], []
    if keep is not None:
        try:
            doomed, stale = pruner.plan(keep, protect)
        except OSError as exc:
            module.warn(f"not pruning: reading {pruner.releases_dir} failed: {exc}; check "
                        "permissions")
    if module.check_mode:
        held = deploy_lock.read_lock(lock_file)
        result.update(
            pruned=doomed,
            pruned_images=[release_model.image_ref(p["image_repo"], rid) for rid in doomed],
            unlocked=bool(token and held and held.get("token") == token),
        )
        module.exit_json(changed=True, line=fsutil.json_line(record),
                         created=not os.path.exists(log_file), **result)
    try:
        line, created = fsutil.append_json_line(log_file, record, 0o640)
    except OSError as exc:
        fail(f"appending to {log_file} failed: {exc.strerror or exc}; check "
             "permissions and disk")

    if lost is not None:
        module.fail_json(msg=deploy_lock.lost_message(lost[0]), lock_lost=True, line=line,
                         created=created, lock_holder=deploy_lock.public_view(lost[0]),
                         **result)
    if doomed or stale:
        pruner.run(module.get_bin_path("docker"), doomed, stale)
    if keep is not None:
        pruner.prune_env_sets(protect)
    result.update(pruned=pruner.pruned, pruned_images=pruner.pruned_images,
                  pruned_env_sets=pruner.pruned_env_sets)

    if token:
        try:
            result["unlocked"] = deploy_lock.release_lock(lock_file, token)
        except OSError as exc:
            fail(f"releasing the deploy lock {lock_file} failed: {exc.strerror or exc}; "
                 "expected to remove it (become root); remove it by hand if this run holds it")
        if not result["unlocked"]:
            held = deploy_lock.read_lock(lock_file)
            if held is not None:
                module.warn(f"deploy lock {lock_file} is held by {held['holder']} since "
                            f"{held['started']}, not by this run: left it in place")
    module.exit_json(changed=True, line=line, created=created, **result)


if __name__ == "__main__":
    main()
