#!/usr/bin/python
# Copyright: atp.deploy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Show the deploy lock, or release it by hand (playbooks/lock.yml), in one call."""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: deploy_lock
short_description: Show the deploy lock of the instance, or release it by hand
description:
  - "C(status): reads C(<app_root>/.deploy.lock) and returns who holds it, since when, for which
    release, when and at which step it was last renewed and when it expires (never its token).
    Read-only."
  - "C(release): removes the lock whoever holds it (like Kamal's C(lock release)) and appends
    one line to C(deploy.log) saying who released whose lock. The run that held it stops at
    its next step (deploy lock lost). Use it when a holder died; a live deploy is told at its
    next step."
  - The lock file format and its rules are in C(module_utils/deploy_lock.py).
version_added: "1.1.0"
author: atp.deploy contributors (!UNKNOWN)
extends_documentation_fragment:
  - atp.deploy.deploy_lock.lock_file
options:
  app_root:
    description: Directory holding C(.deploy.lock) and C(deploy.log).
    type: path
    default: /home/ubuntu/automated-trading-platform
  action:
    description: C(status) shows the lock, C(release) removes it.
    type: str
    choices: [status, release]
    default: status
  operator:
    description: Who releases the lock (recorded in C(deploy.log)).
    type: str
    default: ""
notes:
  - Supports check mode; C(release) then only says what it would remove.
"""

EXAMPLES = r"""
- name: Show the deploy lock
  atp.deploy.deploy_lock:
    app_root: /home/ubuntu/automated-trading-platform
  register: atp_lock

- name: Release it by hand
  atp.deploy.deploy_lock:
    action: release
    operator: alice@laptop
"""

RETURN = r"""
held:
  description: A lock was in place (before a release).
  returned: always
  type: bool
lock:
  description: The lock (holder, started, release, renewed, step, expires, expired,
    expires_in), or null.
  returned: always
  type: dict
released:
  description: This call removed the lock.
  returned: always
  type: bool
message:
  description: One line for the operator.
  returned: always
  type: str
  sample: "deploy lock on /home/ubuntu/automated-trading-platform: held by alice@laptop since
    2026-11-24T10:15:00Z for release 0123456789ab, last renewed 2026-11-24T10:17:42Z at step
    compose_release, expires 2026-11-24T10:47:42Z (in 1650 s)"
"""

import os  # noqa: E402

from ansible.module_utils.basic import AnsibleModule  # noqa: E402
from ansible_collections.atp.deploy.plugins.module_utils import (  # noqa: E402
    deploy_lock,
    fsutil,
    release_model,
)

ARGUMENT_SPEC = {
    "app_root": {"type": "path", "default": "/home/ubuntu/automated-trading-platform"},
    "action": {"type": "str", "choices": ["status", "release"], "default": "status"},
    "lock_file": {"type": "path"},
    "operator": {"type": "str", "default": ""},
}


def main() -> None:
    module = AnsibleModule(argument_spec=ARGUMENT_SPEC, supports_check_mode=True)
    p = module.params
    app_root = p["app_root"]
    lock_file = p["lock_file"] or os.path.join(app_root, deploy_lock.LOCK_NAME)
    where = f"deploy lock on {app_root}"
    try:
        held = deploy_lock.read_lock(lock_file)
    except OSError as exc:
        module.fail_json(msg=f"reading the deploy lock {lock_file} failed: "
                         f"{exc.strerror or exc}; run with become (root)")
    view = deploy_lock.public_view(held)
    result = {"changed": False, "held": held is not None, "lock": view, "released": False}
    if p["action"] == "status" or held is None:
        module.exit_json(message=f"{where}: {deploy_lock.describe(held)}", **result)
    if module.check_mode:
        module.exit_json(message=f"{where}: would release the lock "
                         f"{deploy_lock.describe(held)}", **{**result, "changed": True})
    try:
        removed = deploy_lock.release_any(lock_file)
    except OSError as exc:
        module.fail_json(msg=f"releasing the deploy lock {lock_file} failed: "
                         f"{exc.strerror or exc}; run with become (root)", **result)
    if removed is None:
        module.exit_json(message=f"{where}: not held (it was released meanwhile)", **result)
    view = deploy_lock.public_view(removed)
    record = {"event": "lock_released", "result": "lock_released",
              "operator": p["operator"] or "unknown", "lock": view,
              "recorded_at": deploy_lock.utc_iso()}
    try:
        if os.path.isdir(app_root):
            fsutil.append_json_line(release_model.deploy_log_path(app_root), record, 0o640)
    except OSError as exc:
        module.warn(f"released the lock but could not append to deploy.log: {exc}")
    module.exit_json(
        message=(f"{where}: released the lock of {view['holder']} (since {view['started']} for "
                 f"release {view['release']}, last renewed {view['renewed']} at step "
                 f"{view['step']}); if that run is still alive, it stops at its next step"),
        **{**result, "changed": True, "released": True, "lock": view})


if __name__ == "__main__":
    main()
