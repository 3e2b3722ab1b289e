"""Tests of module_utils/instance_checks.py: owner_problem and project_check on their own.

tests/unit/modules/test_release_state_lock.py checks that release_state refuses before the lock;
these pin each message and branch with injected user/group lookups and container lists.
"""

from __future__ import annotations

import pytest
from ansible_collections.atp.deploy.plugins.module_utils import instance_checks as ic

# --------------------------------------------------------------------------- owner_problem


class Lookup:
    """A getpwnam/getgrnam stand-in that knows some names and records every call."""

    def __init__(self, *known: str) -> None:
        self.known = set(known)
        self.calls: list[str] = []

    def __call__(self, name: str) -> object:
        self.calls.append(name)
        if name not in self.known:
            raise KeyError(name)
        return object()


def owner(name: str, users: Lookup, groups: Lookup) -> str | None:
    return ic.owner_problem(name, getpwnam=users, getgrnam=groups)


def test_owner_with_user_and_group_passes() -> None:
    users, groups = Lookup("ubuntu"), Lookup("ubuntu")
    assert owner("ubuntu", users, groups) is None
    assert users.calls == ["ubuntu"] and groups.calls == ["ubuntu"]


@pytest.mark.parametrize("empty", ["", None])
def test_empty_owner_is_not_checked(empty) -> None:
    users, groups = Lookup(), Lookup()
    assert owner(empty, users, groups) is None
    assert users.calls == [] and groups.calls == []


@pytest.mark.parametrize(("users", "groups", "missing"), [
    (Lookup(), Lookup("deployer"), "no user of that name"),
    (Lookup("deployer"), Lookup(), "no group of that name"),
    (Lookup(), Lookup(), "no user and no group of that name"),
])
def test_missing_user_or_group_is_named(users: Lookup, groups: Lookup, missing: str) -> None:
    assert owner("deployer", users, groups) == (
        f"deploy_app_owner 'deployer' does not exist on the instance ({missing}); expected the "
        "user and group that own the app tree (e.g. ubuntu): pass -e "
        "deploy_app_owner=<existing user>, or create it first")


def test_only_key_error_means_missing() -> None:
    def broken(name: str) -> None:
        raise OSError("nss down")

    with pytest.raises(OSError, match="nss down"):
        ic.owner_problem("ubuntu", getpwnam=broken, getgrnam=Lookup("ubuntu"))


# --------------------------------------------------------------------------- project_check

PROJECT = "automated-trading-platform"
SERVICE = "backend-aws"
DB = [{"name": "db", "container_name": "postgres_hardened"}]


def box(name: str, service: str, project: str | None = PROJECT) -> dict:
    """A container as DockerReader.containers() lists it (only the keys read here)."""
    return {"name": name, "service": service, "project": project}


def check(containers: list[dict], dependencies: list[dict] | None = DB,
          rename: bool = False, project: str = PROJECT) -> tuple[str | None, str | None]:
    return ic.project_check(project, SERVICE, dependencies, containers, rename)


@pytest.mark.parametrize("containers", [
    [],
    # not compose (no project label), or not the service nor one of its dependencies
    [box("postgres_hardened", "db", project=None), box("backend", SERVICE, project="")],
    [box("redis-1", "redis", project="atp-old"), box("web-1", "web", project="other")],
    # all of them in the deploy's own project
    [box("atp-backend-aws-1", SERVICE), box("postgres_hardened", "db")],
])
def test_nothing_to_say(containers: list[dict]) -> None:
    assert check(containers) == (None, None)


def test_backend_and_db_under_another_project_are_refused() -> None:
    problem, warning = check([box("postgres_hardened", "db", "atp-old"),
                              box("atp-old-backend-aws-1", SERVICE, "atp-old")])
    assert warning is None
    assert problem == (
        f"compose project mismatch: deploy_compose_project is '{PROJECT}' but the backend and "
        "its database on the instance belong to project 'atp-old' (atp-old: "
        "atp-old-backend-aws-1 (backend-aws), postgres_hardened (db)); another project name "
        "starts a new, EMPTY database volume: keep -e deploy_compose_project=atp-old, or pass "
        "-e deploy_rename_project=true to switch on purpose")


def test_dependency_found_by_its_fixed_container_name() -> None:
    # compose service "postgres" is not a dependency name, but the container_name is.
    problem, _ = check([box("postgres_hardened", "postgres", "atp-old")])
    assert problem is not None and "(atp-old: postgres_hardened (postgres))" in problem


def test_dependency_found_by_its_compose_service() -> None:
    problem, _ = check([box("atp-old-db-1", "db", "atp-old")],
                       dependencies=[{"name": "db"}])
    assert problem is not None and "(atp-old: atp-old-db-1 (db))" in problem


@pytest.mark.parametrize("dependencies", [
    None, [], [{"name": "", "container_name": None}], [{"container_name": "pg-fixed"}],
    [{"name": "cache"}],
])
def test_without_dependencies_only_the_service_counts(dependencies) -> None:
    containers = [box("postgres_hardened", "db", "atp-old"),
                  box("None", "None", "atp-old")]  # no "None" from a missing name
    assert check(containers, dependencies=dependencies) == (None, None)
    problem, _ = check([*containers, box("old-backend", SERVICE, "atp-old")],
                       dependencies=dependencies)
    assert problem is not None and "(atp-old: old-backend (backend-aws))" in problem


def test_several_other_projects_are_listed_sorted_and_the_first_is_suggested() -> None:
    problem, warning = check([box("z-db", "db", "zeta"), box("b-db", "db", "alpha"),
                              box("a-backend", SERVICE, "alpha")])
    assert warning is None
    assert "belong to project 'alpha', 'zeta' (alpha: a-backend (backend-aws), b-db (db); " \
           "zeta: z-db (db))" in problem
    assert "keep -e deploy_compose_project=alpha," in problem


def test_rename_turns_the_refusal_into_a_warning() -> None:
    problem, warning = check([box("postgres_hardened", "db", "atp-old")], rename=True)
    assert problem is None
    assert warning == (
        "compose project renamed on purpose (deploy_rename_project): the instance runs "
        f"atp-old: postgres_hardened (db); {PROJECT} starts its own containers and a NEW, empty "
        "database volume; the old project's containers and volumes are left as they are")


@pytest.mark.parametrize("rename", [False, True])
def test_strays_beside_the_deploys_own_project_only_warn(rename: bool) -> None:
    problem, warning = check([box("atp-backend-aws-1", SERVICE), box("stray-db", "db", "other")],
                             rename=rename)
    assert problem is None
    assert warning == (
        f"containers of {SERVICE} or its dependencies also exist under another compose project "
        f"(other: stray-db (db)); the deploy uses {PROJECT}, which already runs them: remove the "
        "stray ones when they are not needed")


# --------------------------------------------------------------------------- checkout_check


def test_a_checkout_is_inside_app_root_or_named(tmp_path) -> None:
    root = str(tmp_path / "app")
    inside = [dict(box("b", SERVICE), running=True, working_dir=root),
              dict(box("d", "db"), running=True, working_dir=f"{root}/releases/x"),
              dict(box("old", SERVICE), running=False, working_dir="/opt/x"),  # stopped
              dict(box("other", SERVICE, project="p2"), running=True, working_dir="/opt/x"),
              dict(box("nolabel", SERVICE), running=True)]
    assert ic.checkout_check(root, PROJECT, SERVICE, DB, inside) is None
    # a sibling that only shares the prefix is outside
    out = [dict(box("b", SERVICE), running=True, working_dir=f"{root}-old")]
    problem = ic.checkout_check(root, PROJECT, SERVICE, DB, out)
    assert problem and f"pass -e deploy_app_root={root}-old" in problem and "\n" not in problem
