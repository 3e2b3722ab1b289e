"""rollback.yml, release listing and retention, over SSM on the first sandbox instance."""

from __future__ import annotations

import json
import shutil
import subprocess
import time
from functools import partial
from pathlib import Path

import pytest

from .conftest import APP, SAMPLE, active_release, instance_read, playbook

CONTAINER = "atp-sandbox-i-08726dc37133b2454"
on_instance = partial(instance_read, CONTAINER)
current = partial(active_release, CONTAINER)


def variant(tmp: Path, name: str) -> Path:
    dest = tmp / name
    shutil.copytree(SAMPLE, dest)
    with open(dest / "backend/app/__init__.py", "a", encoding="utf-8") as handle:
        handle.write(f"# {name} {time.time()}\n")
    return dest


@pytest.fixture(scope="module")
def two_releases(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("rollback")
    ids = []
    for name in ("release-a", "release-b"):
        proc = playbook("deploy.yml", "-e", f"backend_src_dir={variant(tmp, name)}")
        assert proc.returncode == 0, proc.stdout[-3000:]
        ids.append(current())
    return tmp, ids


def test_list_shows_releases_and_changes_nothing(two_releases):
    _, (a, b) = two_releases
    proc = playbook("playbooks/rollback.yml", "-e", "rollback_list=true")
    assert proc.returncode == 0, proc.stdout[-2000:]
    assert a in proc.stdout and b in proc.stdout
    assert current() == b


def test_unknown_release_is_a_clear_error_that_changes_nothing(two_releases):
    _, (_a, b) = two_releases
    proc = playbook("playbooks/rollback.yml", "-e", "rollback_to=20200101T000000Z-000000000000")
    assert proc.returncode != 0
    assert "unknown release 20200101T000000Z-000000000000" in proc.stdout
    assert current() == b
    assert not on_instance("ls", f"{APP}/.deploy.lock")


def test_rollback_to_previous_then_to_a_named_release(two_releases):
    _, (a, b) = two_releases
    proc = playbook("playbooks/rollback.yml")
    assert proc.returncode == 0, proc.stdout[-3000:]
    assert current() == a
    assert on_instance("curl", "-s", "http://127.0.0.1:8002/api/health").startswith(
        '{"status":"ok"')
    (backend,) = on_instance("docker", "ps", "--format", "{{.Names}}", "--filter",
                             "label=com.docker.compose.service=backend-aws").split()
    image = on_instance("docker", "inspect", "-f", "{{.Config.Image}}", backend)
    assert image.endswith(":" + a)
    last = json.loads(on_instance("tail", "-n1", f"{APP}/deploy.log"))
    assert (last["result"], last["release"]) == ("rolled_back", a)
    proc = playbook("playbooks/rollback.yml", "-e", f"rollback_to={b}")
    assert proc.returncode == 0, proc.stdout[-3000:]
    assert current() == b


def test_a_release_is_rolled_back_to_on_its_health_not_on_todays_contract(two_releases):
    """The release served before: a route added to the contract since (or the exchange's
    state today) does not decide whether the operator may go back to it."""
    active = current()
    target = next(r for r in on_instance("ls", f"{APP}/releases").split() if r != active)
    contract = {"deploy_expected_routes": ["GET /api/health", "GET /api/added-since-then"]}
    proc = playbook("playbooks/rollback.yml", "-e", f"rollback_to={target}",
                    "-e", json.dumps(contract), "-e", "smoke_timeout=20")
    assert proc.returncode == 0, proc.stdout[-3000:]
    assert current() == target
    assert "added-since-then" not in proc.stdout
    proc = playbook("playbooks/rollback.yml", "-e", f"rollback_to={active}")
    assert proc.returncode == 0, proc.stdout[-3000:]
    assert current() == active


def test_retention_keeps_the_newest_and_never_the_active_or_previous(two_releases):
    tmp, (_a, b) = two_releases
    proc = playbook("deploy.yml", "-e", f"backend_src_dir={variant(tmp, 'release-c')}",
                    "-e", "deploy_keep_releases=2")
    assert proc.returncode == 0, proc.stdout[-3000:]
    releases = on_instance("ls", f"{APP}/releases").split()
    assert releases == sorted([b, current()])
    tags = on_instance("docker", "images", "--format", "{{.Tag}}",
                       "automated-trading-platform-backend-aws").split()
    # every kept release's image, and the zero-downtime proxy's own tag (never pruned)
    assert sorted(t for t in tags if t != "proxy") == sorted(releases) and "proxy" in tags


def test_keep_releases_below_two_is_rejected_before_the_instance(two_releases, events):
    proc = playbook("deploy.yml", "-e", "deploy_keep_releases=1")
    assert proc.returncode != 0
    assert "deploy_keep_releases: expected a whole number of releases >= 2" in " ".join(
        proc.stdout.split())
    assert events.sessions() == 0


def test_a_failed_rollback_still_records_and_releases_the_lock(two_releases):
    """rollback.yml's always: section: a rollback whose release crashes on start is recorded
    as failed, the lock is released, and the output says what failed."""
    repo = "automated-trading-platform-backend-aws"
    active = current()
    target = next(r for r in on_instance("ls", f"{APP}/releases").split() if r != active)
    original = on_instance("docker", "image", "inspect", "-f", "{{.Id}}", f"{repo}:{target}")
    assert original.startswith("sha256:"), original
    # the target's image now exits at once (same tag, so the release still looks whole)
    dockerfile = f'FROM {repo}:{target}\nCMD ["python3", "-c", "raise SystemExit(3)"]\n'
    built = subprocess.run(["docker", "exec", "-i", CONTAINER, "docker", "build", "-q", "-t",
                            f"{repo}:{target}", "-"], input=dockerfile, capture_output=True,
                           text=True, timeout=300, check=False)
    assert built.returncode == 0, built.stdout + built.stderr
    try:
        proc = playbook("playbooks/rollback.yml", "-e", f"rollback_to={target}",
                        "-e", "smoke_timeout=20")
        text = " ".join(proc.stdout.split())
        assert proc.returncode != 0, proc.stdout[-3000:]
        assert f"rollback to {target} failed: " in text, proc.stdout[-3000:]
        assert not on_instance("ls", f"{APP}/.deploy.lock"), "the lock leaked"
        last = json.loads(on_instance("tail", "-n1", f"{APP}/deploy.log"))
        assert (last["result"], last["release"]) == ("failed", target), last
    finally:
        # put the real image back and the release that was active before
        subprocess.run(["docker", "exec", CONTAINER, "docker", "tag", original,
                        f"{repo}:{target}"], capture_output=True, timeout=60, check=True)
        proc = playbook("playbooks/rollback.yml", "-e", f"rollback_to={active}")
        assert proc.returncode == 0, proc.stdout[-3000:]
    assert current() == active
