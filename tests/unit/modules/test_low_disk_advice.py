"""Low-disk advice never suggests a command that deletes the images kept for rollback.

`docker image prune -a` / `docker system prune -a` remove every image no container uses: the
images of the previous releases, i.e. every rollback target. `docker system prune` also removes
stopped containers (a stopped db), `docker volume prune` the db volume. The advice names only
the build cache, dangling images and deploy_keep_releases.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from ansible_collections.atp.deploy.plugins.module_utils import diagnosis_rules as dg
from ansible_collections.atp.deploy.plugins.modules import release_state

from .module_runner import run_module

REPO = Path(__file__).resolve().parents[3]
# Commands that delete images a rollback needs (or containers and volumes of the stack).
HARMFUL = re.compile(
    r"image\s+prune\b[^\n\"']*\s(-a\b|-af\b|-fa\b|--all\b)"
    r"|system\s+prune|volume\s+prune|container\s+prune")
SAFE_ADVICE = ("docker builder prune -f", "docker image prune -f", "deploy_keep_releases")


def assert_safe_advice(text: str) -> None:
    assert not HARMFUL.search(text), text
    for advice in SAFE_ADVICE:
        assert advice in text, text


@pytest.mark.parametrize("text", [
    "docker image prune -a", "docker image prune -af", "docker system prune -a -f",
    "docker system prune", "docker image prune --all --force", "docker volume prune -f",
    "docker container prune"])
def test_the_harmful_pattern_catches_deleting_commands(text):
    assert HARMFUL.search(text)


@pytest.mark.parametrize("text", ["docker builder prune -f", "docker image prune -f",
                                  "docker builder prune -af (build cache only)",
                                  "docker image prune (dangling images only)"])
def test_the_harmful_pattern_lets_safe_commands_pass(text):
    assert not HARMFUL.search(text)


def test_release_state_low_disk_message(app_root, docker):
    result = run_module(release_state, {"app_root": str(app_root), "content_hash": "ab" * 32,
                                        "min_free_mb": 10**12})
    assert result["failed"] is True and "not enough free disk" in result["msg"]
    assert "\n" not in result["msg"]
    assert_safe_advice(result["msg"])


def test_diagnose_disk_warning():
    facts = {"disk": {"path": "/home/ubuntu", "used_percent": 95, "free_mb": 300},
             "disk_warn_percent": 90}
    found = [f for f in dg.findings(facts) if f["code"] == "disk_low"]
    assert len(found) == 1
    assert_safe_advice(found[0]["message"])


def test_no_advice_anywhere_deletes_rollback_images():
    """Every place an operator reads advice: modules, module_utils, roles, playbooks, docs."""
    roots = ["collections/ansible_collections/atp/deploy/plugins", "roles", "playbooks",
             "docs", "README.md", "deploy.yml"]
    offenders = []
    for root in roots:
        base = REPO / root
        for path in ([base] if base.is_file() else sorted(base.rglob("*"))):
            if path.suffix not in (".py", ".yml", ".yaml", ".md", ".j2") or not path.is_file():
                continue
            for number, line in enumerate(path.read_text(errors="replace").splitlines(), 1):
                if HARMFUL.search(line):
                    offenders.append(f"{path.relative_to(REPO)}:{number}: {line.strip()}")
    assert offenders == []
