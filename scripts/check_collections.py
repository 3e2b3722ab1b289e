#!/usr/bin/env python3
"""Check that the installed collections satisfy requirements.yml (no Galaxy needed).

Usage: check_collections.py [requirements.yml]. Exit 1 with one line per problem.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import yaml
from ansible.module_utils.compat.version import LooseVersion


def satisfies(version: str, spec: str) -> bool:
    for clause in (c.strip() for c in spec.split(",") if c.strip()):
        for op in (">=", "<=", "==", "!=", ">", "<"):
            if clause.startswith(op):
                want = LooseVersion(clause[len(op):].strip())
                have = LooseVersion(version)
                ok = {">=": have >= want, "<=": have <= want, "==": have == want,
                      "!=": have != want, ">": have > want, "<": have < want}[op]
                if not ok:
                    return False
                break
        else:
            if LooseVersion(version) != LooseVersion(clause):
                return False
    return True


def installed() -> dict[str, str]:
    out = subprocess.run(["ansible-galaxy", "collection", "list", "--format", "json"],
                         capture_output=True, text=True, check=True).stdout
    found: dict[str, str] = {}
    for collections in json.loads(out).values():
        for name, info in collections.items():
            found.setdefault(name, info["version"])  # first path wins, as Ansible loads it
    return found


def main() -> int:
    req_file = Path(sys.argv[1] if len(sys.argv) > 1 else "requirements.yml")
    wanted = yaml.safe_load(req_file.read_text())["collections"]
    have = installed()
    problems = []
    for item in wanted:
        name, spec = item["name"], str(item.get("version", "*"))
        if name not in have:
            problems.append(f"collection {name} ({spec}) is not installed: run `make setup` "
                            "(the ansible bundle ships it) or ansible-galaxy collection install")
        elif spec != "*" and not satisfies(have[name], spec):
            problems.append(f"collection {name} is {have[name]}, requirements.yml wants {spec}: "
                            "pin the matching `ansible` bundle in requirements.txt")
        else:
            print(f"ok: {name} {have[name]} ({spec})")
    for line in problems:
        print(f"ERROR: {line}", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
