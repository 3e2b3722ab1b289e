"""Every command in docs/runbook.md (and README.md) names things that exist and parse."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[3]
DOCS = [REPO / "docs" / "runbook.md", REPO / "README.md"]
MAKE_TARGETS = set(re.findall(r"^([a-z][a-z-]*):", (REPO / "Makefile").read_text(), re.M))


def commands() -> list[tuple[str, list[str]]]:
    found = []
    for doc in DOCS:
        for block in re.findall(r"```bash\n(.*?)```", doc.read_text(), re.S):
            for line in block.splitlines():
                for part in line.split("#", 1)[0].split("&&"):
                    if part.strip():
                        found.append((f"{doc.name}: {part.strip()}", shlex.split(part)))
    return found


COMMANDS = commands()
PLAYBOOK_RUNS = [(label, argv) for label, argv in COMMANDS if argv[0] == "ansible-playbook"]


def _known_variables() -> str:
    text = []
    for base in ("roles", "playbooks", "inventory"):
        for path in (REPO / base).rglob("*.yml"):
            text.append(path.read_text())
    return "\n".join(text)


KNOWN = _known_variables()


def test_the_runbook_has_commands():
    assert len(PLAYBOOK_RUNS) >= 8
    assert {argv[1] for _, argv in COMMANDS if argv[0] == "make"} >= {"setup", "sandbox-up"}


@pytest.mark.parametrize(("label", "argv"), PLAYBOOK_RUNS, ids=[c[0] for c in PLAYBOOK_RUNS])
def test_playbook_commands_pass_syntax_check(label, argv):
    inventory = "inventory/sandbox"
    playbook, extra = None, []
    args = iter(argv[1:])
    for arg in args:
        if arg == "-i":
            inventory = next(args)
        elif arg == "-e":
            extra.append(next(args))
        elif arg.endswith(".yml"):
            playbook = arg
    assert playbook and (REPO / playbook).is_file(), f"{label}: no playbook {playbook}"
    # an inline host list ("localhost,") reads no inventory source
    assert inventory.endswith(",") or (REPO / inventory).exists(), \
        f"{label}: no inventory {inventory}"
    for assignment in extra:
        name = assignment.split("=", 1)[0]
        assert re.search(rf"\b{re.escape(name)}\b", KNOWN), f"{label}: unknown variable {name}"
    env = dict(os.environ, ANSIBLE_CONFIG=str(REPO / "ansible.cfg"))
    env["PATH"] = f"{REPO / '.venv' / 'bin'}:{env['PATH']}"
    # the syntax only: the inventories are aws_ec2 sources (AWS or the sandbox's moto), which a
    # unit test must not reach; tests/unit/inventory parses them against a local moto
    proc = subprocess.run(["ansible-playbook", "-i", "localhost,", playbook, "--syntax-check"],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, f"{label}: {proc.stderr[-800:]}"


@pytest.mark.parametrize(("label", "argv"), [c for c in COMMANDS if c[1][0] == "make"],
                         ids=[c[0] for c in COMMANDS if c[1][0] == "make"])
def test_make_targets_exist(label, argv):
    for target in argv[1:]:
        if not target.startswith("-") and "=" not in target:
            assert target in MAKE_TARGETS, f"{label}: no make target {target}"


@pytest.mark.parametrize(("label", "argv"), [c for c in COMMANDS if c[1][0].startswith("bin/")],
                         ids=[c[0] for c in COMMANDS if c[1][0].startswith("bin/")])
def test_repo_tools_exist_and_know_the_subcommand(label, argv):
    tool = REPO / argv[0]
    assert tool.is_file() and os.access(tool, os.X_OK), f"{label}: {tool} missing"
    proc = subprocess.run([str(tool), "--help"], capture_output=True, text=True, timeout=60,
                          cwd=REPO)
    assert proc.returncode == 0 and argv[1] in proc.stdout, f"{label}: {proc.stderr[-500:]}"
    for flag in (a.split("=")[0] for a in argv[2:] if a.startswith("--")):
        sub = subprocess.run([str(tool), argv[1], "--help"], capture_output=True, text=True,
                             timeout=60, cwd=REPO)
        assert flag in sub.stdout, f"{label}: {flag} not an option of {argv[1]}"
