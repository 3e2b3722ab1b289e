"""release_state: the lock's expiry and takeover, and the instance-side input checks made
before the lock (app owner exists, compose project matches the running backend/db)."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

from ansible_collections.atp.deploy.plugins.module_utils import deploy_lock
from ansible_collections.atp.deploy.plugins.modules import release_state

from .module_runner import run_module, warnings_of

LOCK = {"token": "tok-mine", "holder": "alice@laptop", "release": "abababababab"}
DB = [{"name": "db", "condition": "service_healthy", "container_name": "postgres_hardened"}]


def state(app_root, **extra) -> dict:
    return run_module(release_state, {"app_root": str(app_root), "content_hash": "ab" * 32,
                                      **extra})


def lock_path(app_root):
    return app_root / deploy_lock.LOCK_NAME


def write_lock(app_root, age_seconds: int, ttl: int = 1800, token: str = "tok-other"):
    when = datetime.now(timezone.utc) - timedelta(seconds=age_seconds)  # noqa: UP017
    record = deploy_lock.new_record(token, "bob@ci", "0123456789ab", when, ttl, "smoke_check")
    lock_path(app_root).write_text(json.dumps(record))
    return record


def test_an_expired_lock_is_taken_over_and_the_output_says_whose(app_root, docker):
    old = write_lock(app_root, age_seconds=2000)
    result = state(app_root, lock={**LOCK, "ttl": 900})
    assert "failed" not in result, result.get("msg")
    assert result["lock_acquired"] is True
    taken = result["lock_taken_over"]
    assert taken["holder"] == "bob@ci" and taken["started"] == old["started"]
    assert taken["step"] == "smoke_check" and taken["expired"] is True and "token" not in taken
    warning = next(w for w in warnings_of(result) if "took over the expired deploy lock" in w)
    assert "bob@ci" in warning and old["started"] in warning and "tok-other" not in warning
    on_disk = json.loads(lock_path(app_root).read_text())
    assert on_disk["token"] == "tok-mine" and on_disk["ttl"] == 900
    assert result["lock"] == on_disk


def test_a_live_lock_is_not_taken_over(app_root, docker):
    write_lock(app_root, age_seconds=100)
    result = state(app_root, lock=LOCK)
    assert result["failed"] is True and result["msg"].startswith("deploy lock held by bob@ci")
    assert "expires " in result["msg"] and result["lock_holder"]["expired"] is False


def test_lock_record_carries_ttl_and_expiry(app_root, docker):
    result = state(app_root, lock={**LOCK, "ttl": 120})
    on_disk = json.loads(lock_path(app_root).read_text())
    started = deploy_lock.parse_iso(on_disk["started"])
    assert on_disk["ttl"] == 120 and on_disk["step"] == "release_state"
    assert deploy_lock.parse_iso(on_disk["expires"]) == started + timedelta(seconds=120)
    assert result["lock_taken_over"] is None


def test_ttl_below_a_minute_is_refused_before_anything(app_root, docker):
    result = state(app_root, lock={**LOCK, "ttl": 10})
    assert result["failed"] is True and "deploy_lock_ttl must be" in result["msg"]
    assert not lock_path(app_root).exists() and docker.argvs == []


def test_unknown_owner_is_refused_before_the_lock(app_root, docker):
    result = state(app_root, lock=LOCK, app_owner="no-such-user-xyz")
    assert result["failed"] is True
    assert result["msg"].startswith("deploy_app_owner 'no-such-user-xyz' does not exist on the "
                                    "instance (no user and no group of that name)")
    assert not lock_path(app_root).exists()


def test_existing_owner_passes(app_root, docker):
    # root: a user and a group of that name on every Linux (like ubuntu:ubuntu on the instance)
    result = state(app_root, lock=LOCK, app_owner="root")
    assert "failed" not in result, result.get("msg")


def test_project_of_the_running_db_must_match(app_root, docker):
    docker.add_container(id="db1", name="postgres_hardened", project="atp-old", service="db",
                         ports=[])
    docker.add_container(id="be1", name="atp-old-backend-aws-1", project="atp-old",
                         service="backend-aws")
    result = state(app_root, lock=LOCK, dependencies=DB)
    assert result["failed"] is True
    assert result["msg"].startswith(
        "compose project mismatch: deploy_compose_project is 'automated-trading-platform' but "
        "the backend and its database on the instance belong to project 'atp-old'")
    assert "-e deploy_rename_project=true" in result["msg"]
    assert "-e deploy_compose_project=atp-old" in result["msg"]
    assert not lock_path(app_root).exists()


def test_a_stack_started_from_a_checkout_outside_app_root_is_refused(app_root, docker):
    """The hand-managed stack runs from /opt/...: deploying to the default app root would
    not adopt that checkout (its env files, the db password) and would replace its backend."""
    elsewhere = "/opt/automated-trading-platform"
    docker.add_container(id="db1", name="postgres_hardened", service="db", ports=[],
                         project="automated-trading-platform", working_dir=elsewhere)
    docker.add_container(id="be1", name="automated-trading-platform-backend-aws-1",
                         project="automated-trading-platform", service="backend-aws",
                         working_dir=elsewhere)
    result = state(app_root, lock=LOCK, dependencies=DB)
    assert result["failed"] is True
    assert result["msg"].startswith(
        "the running automated-trading-platform-backend-aws-1 (backend-aws), postgres_hardened "
        f"(db) of compose project automated-trading-platform were started from {elsewhere} "
        f"(their compose working dir), not under deploy_app_root {app_root}: ")
    assert f"pass -e deploy_app_root={elsewhere}" in result["msg"]
    assert not lock_path(app_root).exists()
    # started from app_root itself (adoption) or from one of its releases: deployed over
    for c in docker.load()["containers"]:
        c["working_dir"] = str(app_root / "releases" / "20261130T120000Z-aaaaaaaaaaaa")
    docker.save()
    result = state(app_root, lock=LOCK, dependencies=DB)
    assert "failed" not in result, result.get("msg")


def test_rename_project_allows_the_change_with_a_warning(app_root, docker):
    docker.add_container(id="db1", name="postgres_hardened", project="atp-old", service="db",
                         ports=[])
    result = state(app_root, lock=LOCK, dependencies=DB, rename_project=True)
    assert "failed" not in result, result.get("msg")
    assert any("renamed on purpose" in w and "empty database volume" in w
               for w in warnings_of(result))


def test_matching_project_or_no_containers_pass(app_root, docker):
    assert "failed" not in state(app_root, lock=LOCK, dependencies=DB)
    lock_path(app_root).unlink()
    docker.add_container(id="db1", name="postgres_hardened", service="db", ports=[])
    docker.add_container(id="x1", name="stray-db", project="other", service="db", ports=[])
    result = state(app_root, lock=LOCK, dependencies=DB)
    assert "failed" not in result, result.get("msg")
    assert any("also exist under another compose project" in w for w in warnings_of(result))
