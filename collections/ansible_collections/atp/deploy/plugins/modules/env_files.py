#!/usr/bin/python
# Copyright: atp.deploy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Merge the deploy's env values onto the shared env files, create the missing ones, link them
into the release: atomically, only what differs, in one call."""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: env_files
short_description: Merge env values onto the shared env files, link every env file into a release
description:
  - For each file of I(files), the deploy's values are merged onto the file on the instance,
    as compose reads it (C(KEY=value), quotes, C(export) prefix, comments). A key the deploy
    passes gets its value (written C(KEY='value')); a key only on the instance is kept, its
    line untouched, and named in C(kept); with I(replace) it is dropped and named in
    C(dropped). A key listed in I(supersedes) under a key the deploy passes (an old alias of
    it) is always dropped. Comments and the order of the operator's lines stay.
  - A file is written (temp file, fsync, rename) only when its content, mode or owner differ;
    a file that is missing is created with a header line and the deploy's keys.
  - Every path of I(ensure) missing in I(dest) is created empty (mode I(mode), owner:group).
  - With I(release_dir), every path of I(ensure) and I(files) is linked from the release into
    I(dest) (C(.env -> ../../shared/.env); paths under C(secrets/) through the
    C(secrets -> ../../shared/secrets) link), unless the release ships that file itself.
  - Creates I(dest) with mode 0750 (missing parents 0755), owned by owner:group, when missing.
  - Never returns a value (names of keys only); call it with C(no_log=true) on the task.
version_added: "1.0.0"
author: atp.deploy contributors
options:
  dest:
    description: Directory of the shared env files (C(<app_root>/shared)).
    type: path
    default: /home/ubuntu/automated-trading-platform/shared
  files:
    description:
      - Env file path (relative to I(dest), e.g. C(.env), C(.env.aws)) -> the deploy's values
        (variable name -> value as a string), as a JSON object string (C(to_json)) or a mapping.
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
      - Env file paths (relative to I(dest)) that must exist; missing ones are created empty.
    type: list
    elements: str
    default: []
  release_dir:
    description: Release directory to link every env file into (C(<app_root>/releases/<id>)).
    type: path
  owner:
    description: Owner of the files and of a created I(dest).
    type: str
    default: ubuntu
  group:
    description: Group of the files and of a created I(dest).
    type: str
    default: ubuntu
  mode:
    description: Octal mode of the files, as a string.
    type: str
    default: "0600"
notes:
  - Supports check mode (reports what would change).
"""

EXAMPLES = r"""
- name: Merge the env values and link every env file into the release
  atp.deploy.env_files:
    dest: /home/ubuntu/automated-trading-platform/shared
    files:
      .env: "{{ atp_env | to_json }}"
      .env.aws: "{{ atp_env_aws | to_json }}"
    ensure: [.env.db, secrets/runtime.env]
    release_dir: /home/ubuntu/automated-trading-platform/releases/{{ atp_release_id }}
  no_log: true
  when: atp_state.plan.env
"""

RETURN = r"""
files:
  description: File path -> whether that file changed (or would change in check mode).
  returned: success
  type: dict
  sample: {.env: false, .env.aws: true}
set:
  description: File path -> names of the keys the deploy set (new or with another value).
  returned: success
  type: dict
  sample: {.env: [], .env.aws: [EXCHANGE_CUSTOM_API_KEY]}
kept:
  description: File path -> names of the keys only on the instance, kept.
  returned: success
  type: dict
  sample: {.env: [POSTGRES_PASSWORD]}
dropped:
  description: File path -> names of the keys removed (I(replace), or superseded aliases).
  returned: success
  type: dict
created:
  description: Paths of I(ensure) created empty.
  returned: success
  type: list
  elements: str
linked:
  description: Links created or fixed in I(release_dir).
  returned: success
  type: list
  elements: str
dest:
  description: The directory written to.
  returned: success
  type: str
dest_created:
  description: Whether I(dest) was created.
  returned: success
  type: bool
"""

import json  # noqa: E402
import os  # noqa: E402
import stat  # noqa: E402

from ansible.module_utils.basic import AnsibleModule  # noqa: E402
from ansible_collections.atp.deploy.plugins.module_utils import (  # noqa: E402
    dotenv,
    env_layout,
    fsutil,
)


def parse_mode(value: str) -> int | None:
    text = str(value).strip()
    if not text or any(c not in "01234567" for c in text):
        return None
    mode = int(text, 8)
    return mode if mode <= 0o7777 else None


ARGUMENT_SPEC = {
    "dest": {"type": "path", "default": "/home/ubuntu/automated-trading-platform/shared"},
    "files": {"type": "dict", "required": True, "no_log": True},
    "replace": {"type": "bool", "default": False},
    "supersedes": {"type": "dict", "default": {}},
    "ensure": {"type": "list", "elements": "str", "default": []},
    "release_dir": {"type": "path"},
    "owner": {"type": "str", "default": "ubuntu"},
    "group": {"type": "str", "default": "ubuntu"},
    "mode": {"type": "str", "default": "0600"},
}


def attrs_differ(path: str, mode: int, uid: int, gid: int) -> bool:
    st = os.lstat(path)
    return (not stat.S_ISREG(st.st_mode) or stat.S_IMODE(st.st_mode) != mode
            or st.st_uid != uid or st.st_gid != gid)


def main() -> None:
    module = AnsibleModule(
        argument_spec=ARGUMENT_SPEC,
        supports_check_mode=True,
    )
    p = module.params
    dest = p["dest"]
    result = {"changed": False, "dest": dest, "dest_created": False, "files": {}, "set": {},
              "kept": {}, "dropped": {}, "created": [], "linked": []}

    def fail(msg: str) -> None:
        module.fail_json(msg=msg, **result)

    mode = parse_mode(p["mode"])
    if mode is None:
        fail(f"mode must be an octal string like 0600, got {p['mode']!r}; fix the mode option")
    wanted: dict[str, dict[str, str]] = {}
    for name, env in (p["files"] or {}).items():
        if isinstance(env, str):
            try:
                env = json.loads(env) if env.strip() else {}
            except ValueError:
                env = None
        try:
            rel = env_layout.norm_env_path(name)
        except env_layout.EnvPathError as exc:
            fail(f"{exc}; expected file paths inside the shared dir like .env or .env.aws")
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
    ensure, problems = env_layout.split_env_paths(p["ensure"])
    for problem in problems:
        module.warn(f"{problem}: not created in {dest}")
    supersedes = {str(k): [str(a) for a in (v or [])] for k, v in (p["supersedes"] or {}).items()}
    try:
        uid, gid = fsutil.resolve_owner(p["owner"], p["group"])
    except KeyError as exc:
        fail(f"{exc.args[0]}; expected owner/group to exist, create them or set owner/group")
    if os.path.lexists(dest) and not os.path.isdir(dest):
        fail(f"dest {dest} must be a directory, but it is not; move it away or set dest")

    plans = {}
    for rel, values in sorted(wanted.items()):
        path = os.path.join(dest, *rel.split("/"))
        if os.path.isdir(path):
            fail(f"{path} must be a file, but it is a directory; remove it")
        try:
            text = env_layout.read_text(path)
            new_text, report = dotenv.merge(text, values, p["replace"], supersedes,
                                            where=f"{dest}/{rel}")
        except dotenv.DotenvError as exc:
            fail(f"{exc}; fix the file on the instance (compose cannot read it either) and "
                 "re-run")
        except OSError as exc:
            fail(f"reading {path} failed: {exc.strerror or exc}; check permissions")
        rewrite = text is None or report["changed"] or os.path.islink(path)
        differs = rewrite or attrs_differ(path, mode, uid, gid)
        plans[rel] = (new_text, rewrite, differs)
        result["files"][rel] = differs
        result["set"][rel] = report["set"]
        result["kept"][rel] = report["kept"]
        result["dropped"][rel] = report["dropped"]
    missing = [r for r in ensure if r not in wanted
               and not os.path.lexists(os.path.join(dest, *r.split("/")))]
    release = p["release_dir"]
    link_rels = sorted(set(ensure) | set(wanted))
    if release and (module.check_mode or os.path.isdir(release)):
        shipped = env_layout.shipped_files(release)
        link_rels = [r for r in link_rels if r not in shipped]
        if os.path.isdir(os.path.join(dest, env_layout.SECRETS_NAME)) and \
                env_layout.SECRETS_NAME not in link_rels:
            link_rels.append(env_layout.SECRETS_NAME)
        links_missing = env_layout.missing_links(release, link_rels, shipped)
    elif release:
        fail(f"release {release} is not unpacked, expected its directory to link the env files "
             "into; run release_unpack first")
    else:
        links_missing, shipped = [], set()
    dest_missing = not os.path.isdir(dest)
    result["dest_created"] = dest_missing
    result["created"] = missing
    result["linked"] = links_missing
    result["changed"] = (dest_missing or any(result["files"].values()) or bool(missing)
                         or bool(links_missing))
    if module.check_mode or not result["changed"]:
        module.exit_json(**result)

    try:
        if dest_missing:
            fsutil.makedirs_owned(dest, 0o750, uid, gid)
        for rel, (new_text, rewrite, differs) in sorted(plans.items()):
            if not differs:
                continue
            path = os.path.join(dest, *rel.split("/"))
            if rewrite:
                parent = os.path.dirname(path)
                if not os.path.isdir(parent):
                    fsutil.makedirs_owned(parent, env_layout.SHARED_DIR_MODE, uid, gid,
                                          parent_mode=env_layout.SHARED_DIR_MODE)
                fsutil.atomic_write(path, new_text.encode("utf-8", "surrogateescape"), mode,
                                    uid, gid)
            else:
                os.chmod(path, mode)
                os.chown(path, uid, gid)
        result["created"] = env_layout.create_missing(dest, missing, uid, gid)
        if release:
            result["linked"] = env_layout.make_links(release, link_rels, uid, gid, shipped)
    except OSError as exc:
        fail(f"writing env files into {dest} failed: {exc.strerror or exc} "
             f"({exc.filename or dest}); check permissions and disk, then re-run")
    module.exit_json(**result)


if __name__ == "__main__":
    main()
