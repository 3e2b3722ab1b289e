# Copyright: atp.deploy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Input checks only the instance can answer, made by the plan call before the deploy lock
(stdlib only, runs on the instance): the app owner exists, and the compose project name is the
one the running backend and its database already belong to.

The shapes of the variables are checked on the controller (module_utils/deploy_inputs.py);
these need the instance's users and containers.
"""

from __future__ import annotations

import grp
import os
import pwd


def owner_problem(owner: str, getpwnam=pwd.getpwnam, getgrnam=grp.getgrnam) -> str | None:
    """Why deploy_app_owner cannot own the app tree here (user and group of that name), or
    None. An empty owner is not checked."""
    if not owner:
        return None
    missing = []
    try:
        getpwnam(owner)
    except KeyError:
        missing.append("user")
    try:
        getgrnam(owner)
    except KeyError:
        missing.append("group")
    if not missing:
        return None
    return (f"deploy_app_owner {owner!r} does not exist on the instance (no "
            f"{' and no '.join(missing)} of that name); expected the user and group that own "
            f"the app tree (e.g. ubuntu): pass -e deploy_app_owner=<existing user>, or create "
            f"it first")


def _relevant(containers: list[dict], service: str, dependencies: list[dict]) -> list[dict]:
    """Compose containers of the service or of one of its dependencies (by compose service or
    by the dependency's fixed container_name)."""
    services = {service} | {str(d.get("name")) for d in dependencies if d.get("name")}
    names = {str(d.get("container_name")) for d in dependencies if d.get("container_name")}
    return [c for c in containers
            if c.get("project") and (c.get("service") in services or c.get("name") in names)]


def _inside(path: str, root: str) -> bool:
    path, root = os.path.realpath(path), os.path.realpath(root)
    return path == root or path.startswith(root.rstrip("/") + "/")


def checkout_check(app_root: str, project: str, service: str, dependencies: list[dict],
                   containers: list[dict]) -> str | None:
    """Why this project's running backend or db, started by compose from a directory outside
    app_root (its working_dir label), must not be deployed over, or None.

    A hand-managed checkout is adopted from app_root only: one elsewhere would be passed over,
    its env files (secrets, the db password) not carried, and the backend it runs replaced.
    """
    found = [c for c in _relevant(containers, service, dependencies or [])
             if c.get("project") == project and c.get("running") and c.get("working_dir")
             and not _inside(str(c["working_dir"]), app_root)]
    if not found:
        return None
    where = sorted({str(c["working_dir"]) for c in found})
    names = ", ".join(sorted(f"{c.get('name')} ({c.get('service')})" for c in found))
    return (f"the running {names} of compose project {project} were started from "
            f"{', '.join(where)} (their compose working dir), not under deploy_app_root "
            f"{app_root}: this deploy would not carry that checkout's env files (.env, .env.aws, "
            f".env.db: secrets, the db password) and would replace the backend it runs; pass "
            f"-e deploy_app_root={where[0]}, or stop that stack first (docker compose -p "
            f"{project} down, without -v, keeps the db volume)")


def project_check(project: str, service: str, dependencies: list[dict],
                  containers: list[dict], rename: bool) -> tuple[str | None, str | None]:
    """(problem, warning) about deploy_compose_project against the containers already there.

    The compose project names the db volume: deploying the backend under another project than
    the one its running database belongs to starts a new, EMPTY database. Refused unless
    rename (then a warning says what happens). No backend/db container at all: fine.
    """
    found = _relevant(containers, service, dependencies or [])
    if not found:
        return None, None
    by_project: dict[str, list[str]] = {}
    for c in found:
        by_project.setdefault(c["project"], []).append(f"{c.get('name')} ({c.get('service')})")
    others = sorted(p for p in by_project if p != project)
    if not others:
        return None, None
    seen = "; ".join(f"{p}: {', '.join(sorted(by_project[p]))}" for p in others)
    if project in by_project:
        return None, (f"containers of {service} or its dependencies also exist under another "
                      f"compose project ({seen}); the deploy uses {project}, which already runs "
                      "them: remove the stray ones when they are not needed")
    if rename:
        return None, (f"compose project renamed on purpose (deploy_rename_project): the "
                      f"instance runs {seen}; {project} starts its own containers and a NEW, "
                      f"empty database volume; the old project's containers and volumes are "
                      "left as they are")
    keep = others[0]
    return (f"compose project mismatch: deploy_compose_project is {project!r} but the backend "
            f"and its database on the instance belong to project {', '.join(map(repr, others))} "
            f"({seen}); another project name starts a new, EMPTY database volume: keep "
            f"-e deploy_compose_project={keep}, or pass -e deploy_rename_project=true to switch "
            f"on purpose"), None
