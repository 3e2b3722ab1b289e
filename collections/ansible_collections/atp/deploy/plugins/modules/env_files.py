#!/usr/bin/python
# Copyright: atp.deploy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Write the env set of a release (the deploy's values merged onto the active release's env)
and link it into the release, in one call; an env-only change first makes the release's code
dir from the release holding that code."""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: env_files
short_description: Write a release's env set (values merged onto the active env) and link it
description:
  - A release is code + env. Its env files live in an env set, C(<app_root>/shared/env/<set>/)
    (0700 directories, 0600 files, owner:group), named by the hash of its content and never
    changed afterwards; the release links each of them
    (C(releases/<id>/.env -> ../../shared/env/<set>/.env)), so activating a release (a deploy,
    an automatic rollback, C(rollback.yml)) activates its env too.
  - "The merge base is the env of the active release (C(current)): its env set, or
    C(shared/<file>) directly for a release made before env sets (those files are read, never
    written: the first deploy moves them into a set without losing a value), or C(shared/)
    without an active release."
  - For each file of I(files), the deploy's values are merged onto the base file, as compose
    reads it (C(KEY=value), quotes, C(export) prefix, comments). A key the deploy passes gets
    its value (written C(KEY='value')); a key only in the base is kept, its line untouched, and
    named in C(kept); with I(replace) it is dropped and named in C(dropped). A key listed in
    I(supersedes) under a key the deploy passes (an old alias of it) is always dropped.
  - Every other env file of I(ensure) (not under C(secrets/), which stays operator-managed in
    C(shared/secrets), linked as a whole) is carried from the base as it is, or created empty.
  - A set with the same content is reused; else the new set is written under a temporary name
    and renamed into place.
  - When C(releases/<release_id>) does not exist and I(clone_from) names a release holding the
    same code (an env-only change), the release dir is made from it (hard links of its files,
    under C(<id>.partial), renamed into place).
  - Never returns a value (names of keys only); call it with C(no_log=true) on the task.
version_added: "1.0.0"
author: atp.deploy contributors (!UNKNOWN)
extends_documentation_fragment:
  - atp.deploy.backend.app_root
  - atp.deploy.deploy_lock
options:
  release_id:
    description: The release whose env set is written and linked (release_state's plan).
    type: str
    required: true
  clone_from:
    description:
      - A complete release holding the same code; when C(releases/<release_id>) is missing it
        is made from this release's files (release_state's C(plan.clone_from)).
    type: str
  files:
    description:
      - Env file path (relative to the release, e.g. C(.env), C(.env.aws)) -> the deploy's
        values (variable name -> value as a string), as a JSON object string (C(to_json)) or a
        mapping.
      - Pass JSON strings, so that Ansible's no_log masking hides that whole document in the
        result; with a mapping it masks every short value (C(1), C(aws)) wherever it appears,
        paths and line numbers of a failure included.
    type: dict
    required: true
  replace:
    description:
      - Drop the keys of a file that the deploy does not pass (C(-e deploy_env_replace=true)).
    type: bool
    default: false
  supersedes:
    description:
      - Variable name -> older names of the same setting (credential aliases); when the deploy
        passes the name, the older names are dropped from that file.
    type: dict
    default: {}
  ensure:
    description:
      - Every env file compose needs (relative to the release); each is in the set (carried
        from the base, or empty) and linked into the release.
    type: list
    elements: str
    default: []
  owner:
    description: Owner of the env set (and of a cloned release dir).
    type: str
    default: ubuntu
  group:
    description: Group of the env set (and of a cloned release dir).
    type: str
    default: ubuntu
notes:
  - Supports check mode (reports what would change; the set name is then its content hash).
"""

EXAMPLES = r"""
- name: Write the release's env set and link it into the release
  atp.deploy.env_files:
    app_root: /home/ubuntu/automated-trading-platform
    release_id: "{{ atp_state.plan.release_id }}"
    clone_from: "{{ atp_state.plan.clone_from | default(omit, true) }}"
    files:
      .env: "{{ atp_env | to_json }}"
      .env.aws: "{{ atp_env_aws | to_json }}"
    ensure: [.env, .env.aws, .env.db, secrets/runtime.env]
  no_log: true
  when: atp_state.plan.env
"""

RETURN = r"""
env_set:
  description: Name of the release's env set (C(shared/env/<env_set>/)).
  returned: success
  type: str
  sample: 3f9a0c1d2e4b
set_written:
  description: Whether the set was written now (false when a set with that content existed).
  returned: success
  type: bool
base:
  description: The merge base (set name, or C(shared) before env sets).
  returned: success
  type: str
cloned_from:
  description: The release the release dir was made from (env-only change), or null.
  returned: success
  type: str
files:
  description: File path -> whether the release's file differs from the base's.
  returned: success
  type: dict
  sample: {.env: false, .env.aws: true}
set:
  description: File path -> names of the keys the deploy set (new or with another value).
  returned: success
  type: dict
  sample: {.env: [], .env.aws: [EXCHANGE_CUSTOM_API_KEY]}
kept:
  description: File path -> names of the keys only in the base, kept.
  returned: success
  type: dict
  sample: {.env: [POSTGRES_PASSWORD]}
dropped:
  description: File path -> names of the keys removed (I(replace), or superseded aliases).
  returned: success
  type: dict
created:
  description: Env files of I(ensure) the base lacks (empty in the set).
  returned: success
  type: list
  elements: str
linked:
  description: Links created or fixed in the release.
  returned: success
  type: list
  elements: str
"""

import json  # noqa: E402
import os  # noqa: E402

from ansible.module_utils.basic import AnsibleModule  # noqa: E402
from ansible_collections.atp.deploy.plugins.module_utils import (  # noqa: E402
    deploy_lock,
    dotenv,
    env_layout,
    fsutil,
    release_model,
)

ARGUMENT_SPEC = {
    "app_root": {"type": "path", "default": "/home/ubuntu/automated-trading-platform"},
    "release_id": {"type": "str", "required": True},
    "clone_from": {"type": "str"},
    "files": {"type": "dict", "required": True, "no_log": True},
    "replace": {"type": "bool", "default": False},
    "supersedes": {"type": "dict", "default": {}},
    "ensure": {"type": "list", "elements": "str", "default": []},
    "owner": {"type": "str", "default": "ubuntu"},
    "group": {"type": "str", "default": "ubuntu"},
    **deploy_lock.MODULE_ARGS,
}


def wanted_values(files: dict, fail) -> dict[str, dict[str, str]]:
    """files option -> {relpath: {KEY: value}}; fail(msg) on a bad path, document or name."""
    wanted: dict[str, dict[str, str]] = {}
    for name, env in (files or {}).items():
        if isinstance(env, str):
            try:
                env = json.loads(env) if env.strip() else {}
            except ValueError:
                env = None
        try:
            rel = env_layout.norm_env_path(name)
        except env_layout.EnvPathError as exc:
            fail(f"{exc}; expected file paths inside the release like .env or .env.aws")
        if env_layout.under_secrets(rel):
            fail(f"env file {rel} is under secrets/, which the deploy never writes; expected "
                 "files like .env or .env.aws")
        if not isinstance(env, dict):
            fail(f"the values of {name} must be a mapping (or its JSON) of variable names to "
                 f"values, got {type(env).__name__}; pass the rendered env (app_env's render "
                 "step)")
        values = {}
        for key, value in env.items():
            if not isinstance(key, str) or not key or not all(dotenv.key_char(c) for c in key):
                fail(f"invalid variable name {str(key)!r} in {name}: use letters, digits and _")
            values[key] = "" if value is None else str(value)
        wanted[rel] = values
    return wanted


def main() -> None:
    module = AnsibleModule(
        argument_spec=ARGUMENT_SPEC,
        supports_check_mode=True,
    )
    p = module.params
    app_root, rid = p["app_root"], p["release_id"]
    result = {"changed": False, "env_set": None, "set_written": False, "base": None,
              "cloned_from": None, "files": {}, "set": {}, "kept": {}, "dropped": {},
              "created": [], "linked": []}

    def fail(msg: str) -> None:
        module.fail_json(msg=msg, **result)

    deploy_lock.hold(module, deploy_lock.module_lock_file(p, app_root), p["lock_token"],
                     "env_files", result)
    problem = release_model.id_problem(rid)
    if problem:
        fail(problem)
    wanted = wanted_values(p["files"], fail)
    ensure, problems = env_layout.split_env_paths(p["ensure"])
    for problem in problems:
        module.warn(f"{problem}: not part of the release's env set")
    supersedes = {str(k): [str(a) for a in (v or [])] for k, v in (p["supersedes"] or {}).items()}
    try:
        uid, gid = fsutil.resolve_owner(p["owner"], p["group"])
    except KeyError as exc:
        fail(f"{exc.args[0]}; expected owner/group to exist, create them or set owner/group")

    release_dir = release_model.release_path(app_root, rid)
    clone_from = (p["clone_from"] or "").strip() or None
    if not os.path.isdir(release_dir):
        if not clone_from:
            fail(f"release {rid} is not unpacked, expected {release_dir} to link the env set "
                 "into; run release_unpack first (or pass clone_from for an env-only change)")
        problem = release_model.id_problem(clone_from)
        source = release_model.release_path(app_root, clone_from or "")
        if problem or release_model.code_hash(source) is None:
            fail(f"clone_from must name a complete release on the instance, got "
                 f"{clone_from!r}; pass plan.clone_from from release_state")
        result["cloned_from"] = clone_from

    # The merge base: the env of the active release (re-read here: adoption may have made
    # release zero since the plan).
    base = env_layout.base_env(app_root)
    base_dir = release_model.env_dir(app_root, base)
    result["base"] = base
    # what compose needs, what the deploy renders, and every env file the base had
    rels = env_layout.set_rels([*ensure, *wanted, *env_layout.kept_rels(
        base_dir, base == env_layout.LEGACY_ENV)])
    try:
        present = env_layout.read_files(base_dir, rels)
        merged = {}
        for rel, values in sorted(wanted.items()):
            text = None if present[rel] is None else \
                present[rel].decode("utf-8", "surrogateescape")
            new_text, report = dotenv.merge(text, values, p["replace"], supersedes,
                                            where=f"{base_dir}/{rel}")
            merged[rel] = new_text
            result["files"][rel] = report["changed"]
            result["set"][rel] = report["set"]
            result["kept"][rel] = report["kept"]
            result["dropped"][rel] = report["dropped"]
    except dotenv.DotenvError as exc:
        fail(f"{exc}; fix the file on the instance (compose cannot read it either) and re-run")
    except OSError as exc:
        fail(f"reading the env files of {base} at {base_dir} failed: {exc.strerror or exc} "
             f"({exc.filename}); check permissions (become root)")
    content = env_layout.new_set_files(present, merged, rels)
    result["created"] = [rel for rel in rels if present[rel] is None and rel not in wanted]
    existing = env_layout.find_set(app_root, content)
    name = existing or release_model.env_set_hash(content)
    result["env_set"] = name

    if module.check_mode:
        modes_ok = bool(existing) and env_layout.set_modes_ok(
            release_model.env_dir(app_root, existing), uid, gid)
        result["set_written"] = not modes_ok
        if os.path.isdir(release_dir):
            shipped = env_layout.shipped_files(release_dir)
            link_rels = env_layout.release_link_rels(app_root, rels, shipped)
            result["linked"] = env_layout.missing_links(release_dir, link_rels, shipped, name)
        else:
            result["linked"] = env_layout.release_link_rels(app_root, rels)
        result["changed"] = bool(result["cloned_from"] or result["set_written"]
                                 or result["linked"])
        module.exit_json(**result)

    try:
        name, result["set_written"] = env_layout.write_set(app_root, content, uid, gid)
        result["env_set"] = name
    except OSError as exc:
        fail(f"writing the env set into {release_model.env_sets_path(app_root)} failed: "
             f"{exc.strerror or exc} ({exc.filename or app_root}); check permissions and disk, "
             "then re-run")
    if result["cloned_from"]:
        try:
            release_model.clone_code(app_root, clone_from, rid, uid, gid)
        except OSError as exc:
            fail(f"making release {rid} from the code of {clone_from} failed: "
                 f"{exc.strerror or exc}; check permissions and disk, then re-run")
    try:
        shipped = env_layout.shipped_files(release_dir)
        link_rels = env_layout.release_link_rels(app_root, rels, shipped)
        result["linked"] = env_layout.make_links(release_dir, link_rels, uid, gid, shipped,
                                                 name)
    except OSError as exc:
        fail(f"linking the env set {name} into {release_dir} failed: {exc.strerror or exc} "
             f"({exc.filename or release_dir}); expected symlinks where the release has no "
             "file of that name, move the file away and re-run")
    result["changed"] = bool(result["cloned_from"] or result["set_written"] or result["linked"])
    module.exit_json(**result)


if __name__ == "__main__":
    main()
