#!/usr/bin/python
# Copyright: atp.deploy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Write the shared env files (secrets) atomically, only when they differ, in one call."""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: env_files
short_description: Write shared env files atomically, only when content, mode or owner differ
description:
  - Writes each file of I(files) into I(dest) with a temp file, fsync and rename, only when its
    content, mode or owner differ. Files not named in I(files) are left alone.
  - Creates I(dest) with mode 0750 (missing parents 0755), owned by owner:group, when missing.
  - Never returns file contents; call it with C(no_log=true) on the task.
version_added: "1.0.0"
author: atp.deploy contributors
options:
  dest:
    description: Directory of the shared env files (C(<app_root>/shared)).
    type: path
    default: /home/ubuntu/automated-trading-platform/shared
  files:
    description:
      - File name -> full file content. Names must be plain names such as C(.env) or
        C(.env.aws) (no C(/), not C(.) or C(..)).
    type: dict
    required: true
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
  - Supports check mode (reports which files would change).
"""

EXAMPLES = r"""
- name: Write the env files
  atp.deploy.env_files:
    dest: /home/ubuntu/automated-trading-platform/shared
    files:
      .env: "{{ atp_env_content }}"
      .env.aws: "{{ atp_env_aws_content }}"
  no_log: true
  when: atp_state.plan.env
"""

RETURN = r"""
files:
  description: File name -> whether that file changed (or would change in check mode).
  returned: success
  type: dict
  sample: {.env: false, .env.aws: true}
dest:
  description: The directory written to.
  returned: success
  type: str
dest_created:
  description: Whether I(dest) was created.
  returned: success
  type: bool
"""

import os  # noqa: E402

from ansible.module_utils.basic import AnsibleModule  # noqa: E402
from ansible_collections.atp.deploy.plugins.module_utils import fsutil  # noqa: E402


def parse_mode(value: str) -> int | None:
    text = str(value).strip()
    if not text or any(c not in "01234567" for c in text):
        return None
    mode = int(text, 8)
    return mode if mode <= 0o7777 else None


ARGUMENT_SPEC = {
    "dest": {"type": "path", "default": "/home/ubuntu/automated-trading-platform/shared"},
    "files": {"type": "dict", "required": True, "no_log": True},
    "owner": {"type": "str", "default": "ubuntu"},
    "group": {"type": "str", "default": "ubuntu"},
    "mode": {"type": "str", "default": "0600"},
}


def main() -> None:
    module = AnsibleModule(
        argument_spec=ARGUMENT_SPEC,
        supports_check_mode=True,
    )
    p = module.params
    dest = p["dest"]
    result = {"changed": False, "dest": dest, "dest_created": False, "files": {}}

    mode = parse_mode(p["mode"])
    if mode is None:
        module.fail_json(msg=f"mode must be an octal string like 0600, got {p['mode']!r}; "
                         "fix the mode option", **result)
    contents = {}
    for name, content in (p["files"] or {}).items():
        if not fsutil.is_plain_name(name):
            module.fail_json(msg=f"file names must be plain names like .env or .env.aws, got "
                             f"{name!r}; fix the files option", **result)
        if content is None:
            content = ""
        if not isinstance(content, str):
            module.fail_json(msg=f"content of {name} must be a string, got "
                             f"{type(content).__name__}; pass the file content as text", **result)
        contents[name] = content.encode("utf-8")
    try:
        uid, gid = fsutil.resolve_owner(p["owner"], p["group"])
    except KeyError as exc:
        module.fail_json(msg=f"{exc.args[0]}; expected owner/group to exist, create them or set "
                         "owner/group", **result)
    if os.path.lexists(dest) and not os.path.isdir(dest):
        module.fail_json(msg=f"dest {dest} must be a directory, but it is not; move it away "
                         "or set dest", **result)

    changes = {}
    for name, data in sorted(contents.items()):
        path = os.path.join(dest, name)
        if os.path.isdir(path):
            module.fail_json(msg=f"{path} must be a file, but it is a directory; remove it",
                             **result)
        changes[name] = fsutil.file_differs(path, data, mode, uid, gid)
    result["files"] = changes
    dest_missing = not os.path.isdir(dest)
    result["changed"] = dest_missing or any(changes.values())
    result["dest_created"] = dest_missing
    if module.check_mode or not result["changed"]:
        module.exit_json(**result)

    try:
        if dest_missing:
            fsutil.makedirs_owned(dest, 0o750, uid, gid)
        for name, data in sorted(contents.items()):
            if changes[name]:
                fsutil.atomic_write(os.path.join(dest, name), data, mode, uid, gid)
    except OSError as exc:
        module.fail_json(msg=f"writing env files into {dest} failed: {exc.strerror or exc} "
                         f"({exc.filename or dest}); check permissions and disk, then re-run",
                         **result)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
