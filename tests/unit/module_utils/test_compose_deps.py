"""Tests of module_utils/compose_deps.py (what compose_release does with each dependency)."""

from __future__ import annotations

import pytest
from ansible_collections.atp.deploy.plugins.module_utils import compose_deps as cd

DB = {"name": "db", "condition": "service_healthy", "container_name": "postgres_hardened"}


def container(running=True, health=None, exit_code=0, **extra) -> dict:
    return {"id": "c1", "name": "postgres_hardened", "running": running, "health": health,
            "exit_code": exit_code, "state": "running" if running else "exited", **extra}


def test_normalize():
    deps = cd.normalize([DB, {"name": "redis"}, "migrate", {**DB, "condition": "service_started"},
                         {"name": "cache", "condition": "service_started",
                          "container_name": ""}])
    assert deps == [DB,
                    {"name": "redis", "condition": "service_started", "container_name": None},
                    {"name": "migrate", "condition": "service_started", "container_name": None},
                    {"name": "cache", "condition": "service_started", "container_name": None}]
    assert cd.normalize(None) == []


@pytest.mark.parametrize(("bad", "match"), [
    ([["db"]], "each dependency must be a dict"),
    ([{"name": ""}], "dependency name must be a compose service name"),
    ([{"name": "db; rm -rf /"}], "dependency name must be a compose service name"),
    ([{"name": "db", "condition": "healthy"}], "dependency db: condition must be one of"),
])
def test_normalize_rejects(bad, match):
    with pytest.raises(cd.DependencyConfigError, match=match):
        cd.normalize(bad)


def test_before_state_and_needs_start():
    assert cd.before_state([]) == cd.MISSING
    assert cd.before_state([container(running=False)]) == cd.STOPPED
    assert cd.before_state([container(running=False), container()]) == cd.RUNNING
    assert cd.needs_start(DB, []) is True
    assert cd.needs_start(DB, [container(running=False)]) is True
    assert cd.needs_start(DB, [container(health="unhealthy")]) is False
    once = {"name": "migrate", "condition": "service_completed_successfully",
            "container_name": None}
    assert cd.needs_start(once, [container(running=False, exit_code=0)]) is False
    assert cd.needs_start(once, [container(running=False, exit_code=3)]) is True


@pytest.mark.parametrize(("condition", "containers", "want"), [
    ("service_healthy", [], (cd.WAIT, "no container")),
    ("service_healthy", [container(running=False, exit_code=1)], (cd.WAIT, "exited 1")),
    ("service_healthy", [container(health="starting")], (cd.WAIT, "starting")),
    ("service_healthy", [container(health="unhealthy")], (cd.WAIT, "unhealthy")),
    ("service_healthy", [container(health="healthy")], (cd.READY, "healthy")),
    ("service_healthy", [container(health=None)],
     (cd.FAIL, "running without a healthcheck (condition service_healthy can never hold)")),
    ("service_started", [container(health=None)], (cd.READY, "running")),
    ("service_started", [container(health="starting")], (cd.READY, "starting")),
    ("service_started", [container(running=False)], (cd.WAIT, "exited 0")),
    ("service_completed_successfully", [container()], (cd.WAIT, "running")),
    ("service_completed_successfully", [container(running=False)], (cd.READY, "exited 0")),
    ("service_completed_successfully", [container(running=False, exit_code=2)],
     (cd.FAIL, "exited 2")),
])
def test_readiness(condition, containers, want):
    assert cd.readiness({**DB, "condition": condition}, containers) == want


def test_health_of():
    assert cd.health_of([]) is None
    assert cd.health_of([container(health="healthy")]) == "healthy"
    assert cd.health_of([container()]) == "running"
    assert cd.health_of([container(running=False, exit_code=137)]) == "exited 137"


def test_name_conflict():
    theirs = container(project="atp-old")
    assert cd.name_conflict(DB, [], "atp") is None
    assert cd.name_conflict({**DB, "container_name": None}, [theirs], "atp") is None
    assert cd.name_conflict(DB, [theirs], "atp") == (
        "dependency db: expected a container of compose project 'atp', found postgres_hardened "
        "(running) belonging to compose project 'atp-old'; set deploy_compose_project to the "
        "project that runs it, or migrate it, then re-run")
    assert "no compose project (made by hand)" in cd.name_conflict(DB, [container()], "atp")


def test_not_ready_message():
    untouched = "the running container was not touched and current still points at R0"
    msg = cd.not_ready_message(DB, cd.WAIT, "starting", 180, ["LOG: a", "FATAL: b"], untouched)
    assert msg == (
        "dependency db did not become healthy within 180s (seen: starting); the running "
        "container was not touched and current still points at R0; check it with `docker logs "
        "postgres_hardened`, fix it, or raise deploy_dependency_timeout, then re-run. Its last "
        "log lines:\nLOG: a\nFATAL: b")
    once = {"name": "migrate", "condition": "service_completed_successfully",
            "container_name": None}
    msg = cd.not_ready_message(once, cd.FAIL, "exited 2", 180, [], untouched,
                               container="atp-migrate-1")
    assert msg == ("dependency migrate cannot become exited 0 (service_completed_successfully): "
                   "exited 2; the running container was not touched and current still points "
                   "at R0; check it with `docker logs atp-migrate-1`, fix it, then re-run")
    # cut short by the call's deadline: raising deploy_dependency_timeout would not help
    msg = cd.not_ready_message(DB, cd.WAIT, "starting", 12, [], untouched,
                               bound="what was left of this call's 240s")
    assert msg.startswith("dependency db did not become healthy within 12s (seen: starting)")
    assert msg.endswith("fix it (what was left of this call's 240s), then re-run")
    assert "raise deploy_dependency_timeout" not in msg
