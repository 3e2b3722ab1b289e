#!/usr/bin/python
# Copyright: atp.deploy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Append one audit line to deploy.log."""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: deploy_record
short_description: Append one JSON line describing a deploy to deploy.log
description:
  - Appends I(record) as one JSON line (sorted keys) to I(log_file) with a single write.
  - Creates I(log_file) with mode 0640 when missing; never rewrites earlier lines.
  - Adds C(recorded_at) (UTC, ISO 8601) when the record has none.
  - release_state reads this log to find the previous release; a successful deploy should
    record C(result=ok).
version_added: "1.0.0"
author: atp.deploy contributors
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
notes:
  - Supports check mode; nothing is written then, C(changed) is still true.
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
"""

import os  # noqa: E402
from datetime import UTC, datetime  # noqa: E402

from ansible.module_utils.basic import AnsibleModule  # noqa: E402
from ansible_collections.atp.deploy.plugins.module_utils import fsutil  # noqa: E402


def build_record(record: dict, now: datetime) -> dict:
    out = dict(record)
    out.setdefault("recorded_at", now.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"))
    return out


ARGUMENT_SPEC = {
    "log_file": {"type": "path", "default": "/home/ubuntu/automated-trading-platform/deploy.log"},
    "record": {"type": "dict", "required": True},
}


def main() -> None:
    module = AnsibleModule(
        argument_spec=ARGUMENT_SPEC,
        supports_check_mode=True,
    )
    log_file = module.params["log_file"]
    record = build_record(module.params["record"] or {}, datetime.now(UTC))
    if not record.get("release"):
        module.warn("record has no 'release'; release_state cannot use it to find the "
                    "previous release")
    directory = os.path.dirname(os.path.abspath(log_file))
    if not os.path.isdir(directory):
        module.fail_json(msg=f"directory of log_file {directory} does not exist, expected the "
                         "app_root; run the deploy's setup first or fix log_file")
    if os.path.isdir(log_file):
        module.fail_json(msg=f"log_file {log_file} is a directory, expected a file; "
                         "move it away or fix log_file")
    if module.check_mode:
        module.exit_json(changed=True, line=fsutil.json_line(record),
                         created=not os.path.exists(log_file))
    try:
        line, created = fsutil.append_json_line(log_file, record, 0o640)
    except OSError as exc:
        module.fail_json(msg=f"appending to {log_file} failed: {exc.strerror or exc}; check "
                         "permissions and disk")
    module.exit_json(changed=True, line=line, created=created)


if __name__ == "__main__":
    main()
