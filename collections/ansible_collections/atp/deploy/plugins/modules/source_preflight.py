#!/usr/bin/python
# Copyright: (c) 2025, ATP deploy
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Controller-side preflight of an app checkout; builds the release archive."""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: source_preflight
short_description: Check an app checkout and build its deterministic release archive
version_added: 1.0.0
description:
  - Runs on the controller (use C(delegate_to=localhost)) before any remote session.
  - Checks, in order, that O(expected_routes) are well formed, that O(src_dir) exists, that
    the O(required_files) exist, the compose file (O(compose_file), read with PyYAML), the
    FastAPI routers (static, with C(ast)), and the git state of O(src_dir).
  - "Compose: O(service) must be a service of O(compose_file), enabled under O(profile);
    every required C(depends_on) (list or mapping form, transitively) must exist and be
    enabled too; every C(env_file) of the service and its dependencies must be a relative
    path inside the checkout. The summary is returned as RV(compose)."
  - "Routers: every importable module of O(main_file)'s package (C(backend/app): C(api/),
    C(routers/), anywhere) is read. It fails only where it is certain: a router that
    O(main_file) imports but never includes (the import is there, the C(include_router)
    line is gone or the name is rebound before it), or a router that serves one of
    O(expected_routes) while no included router does. Every other router that is never
    included is a line in RV(router_warnings). Stray copies (C(x.py.bak), C(.backup2),
    C(.new), C(.current), C(x.old.py)) are not modules and are ignored."
  - Then selects the files to ship (git tracked plus untracked-not-ignored files, minus
    O(excludes)) and writes C(<artifact_dir>/<content_hash>.tar.gz), a byte-for-byte
    deterministic archive whose first member is C(.release-manifest.json).
  - "Secret files are never shipped, whatever O(excludes) says: env files (C(.env), C(.env.*)
    such as C(.env.bak), C(.envrc)), C(.aws/), C(.ssh/), C(.gnupg/), C(secrets/), ssh private
    keys (C(id_rsa), C(id_ed25519)... and copies such as C(id_rsa.bak)), C(*.pem), C(*.key),
    C(*.p12), C(*.pfx), C(*.jks), C(*.keystore), C(*.ppk), C(*.kdbx), C(.netrc),
    C(.git-credentials), C(.npmrc), C(.pypirc), C(.pgpass), C(.htpasswd), C(credentials.json),
    C(client_secret*.json), C(*service-account*.json), C(*.tfstate) (case-insensitive;
    C(*.pub) public keys and C(*.example) templates are shipped). One warning names them (paths
    only, first five) and RV(excluded_secrets) lists them; their content is never read."
  - The files shipped may total at most O(archive_max_mb) MiB and none may exceed
    O(archive_max_file_mb) MiB; the error names the largest files and their sizes.
  - Writing the archive into the controller cache is not considered a change, so the
    module always reports C(changed=false) and also writes the archive in check mode.
  - Every failure is a single line naming the file or router and what to do.
author: atp.deploy contributors (!UNKNOWN)
options:
  src_dir:
    description: App checkout holding C(docker-compose.yml) and C(backend/).
    type: path
    required: true
  required_files:
    description: Paths relative to O(src_dir) that must exist as regular files.
    type: list
    elements: str
    default:
      - docker-compose.yml
      - backend/app/main.py
      - backend/app/api/routes_portfolio.py
      - backend/app/utils/credential_resolver.py
      - backend/app/services/portfolio_snapshot.py
  main_file:
    description:
      - FastAPI entry point (relative to O(src_dir)). Its directory is the C(app) package whose
        modules are scanned for routers.
    type: str
    default: backend/app/main.py
  expected_routes:
    description:
      - Routes the app must serve, each C(METHOD /path) (METHOD one of GET, POST, PUT, PATCH,
        DELETE, HEAD, OPTIONS; the path starts with C(/), no query string).
      - Matched against the routers' decorators, the C(prefix) of each C(APIRouter) and the
        C(prefix) of each C(include_router) call on the way from O(main_file).
    type: list
    elements: str
    default:
      - GET /api/health
      - GET /api/dashboard/state
      - GET /api/portfolio/snapshot
      - GET /api/portfolio/latest
      - POST /api/portfolio/refresh
  compose_file:
    description: The app's compose file, relative to O(src_dir).
    type: str
    default: docker-compose.yml
  service:
    description: The compose service the deploy builds and starts.
    type: str
    default: backend-aws
  profile:
    description:
      - Compose profile(s) the deploy runs with (comma-separated; empty for none). Services
        without C(profiles) are always enabled.
    type: str
    default: aws
  require_clean_git:
    description: Fail when shipped files are untracked or have uncommitted changes.
    type: bool
    default: false
  skip_router_check:
    description:
      - Report the static router check's failures as warnings instead of failing.
      - Only this static check is skipped; the route gate inside the built image (before
        activation) still runs. Meant for fault-injection tests.
    type: bool
    default: false
  excludes:
    description:
      - Patterns matched (fnmatch, case-sensitive) against every path component.
      - Names ending in C(.example) are never excluded by wildcard patterns.
    type: list
    elements: str
    default:
      - .git
      - __pycache__
      - "*.pyc"
      - "*.pyo"
      - .pytest_cache
      - .mypy_cache
      - .ruff_cache
      - .venv
      - venv
      - node_modules
      - .DS_Store
      - .env
      - .env.*
      - secrets
      - "*.swp"
  artifact_dir:
    description: Controller directory receiving C(<content_hash>.tar.gz); created if missing.
    type: path
    required: true
  archive_max_mb:
    description: Most MiB the shipped files may total (before compression).
    type: int
    default: 200
  archive_max_file_mb:
    description: Most MiB one shipped file may have.
    type: int
    default: 50
notes:
  - Symlinks are refused unless they resolve to a regular file inside O(src_dir), in which
    case the target content is archived as a regular file. A link leaving the checkout is
    refused (naming the link and its target), and so is a shipped path that runs through a
    symlinked directory, tracked or gitignored, clean git required or not.
"""

EXAMPLES = r"""
- name: Preflight the app checkout and build the release archive
  atp.deploy.source_preflight:
    src_dir: "{{ backend_src_dir }}"
    artifact_dir: "{{ playbook_dir }}/.cache/releases"
    require_clean_git: "{{ deploy_require_clean_git | default(false) }}"
    service: backend-aws
    profile: aws
    expected_routes:
      - GET /api/health
      - GET /api/portfolio/snapshot
  delegate_to: localhost
  run_once: true
  register: preflight

- name: Fault test - ship a release whose router is not included
  atp.deploy.source_preflight:
    src_dir: "{{ broken_src_dir }}"
    artifact_dir: /tmp/atp-releases
    skip_router_check: true
  delegate_to: localhost
"""

RETURN = r"""
src_dir:
  description: Absolute path of the checked app checkout.
  returned: success
  type: str
git_sha:
  description: Full HEAD commit, or C(unknown) outside git or before the first commit.
  returned: success
  type: str
git_dirty:
  description: Whether any shipped path is untracked or has uncommitted changes.
  returned: success
  type: bool
untracked:
  description: Untracked, not ignored, not excluded paths (relative to O(src_dir)).
  returned: success
  type: list
  elements: str
modified:
  description: Tracked paths with uncommitted changes, not excluded (relative to O(src_dir)).
  returned: success
  type: list
  elements: str
routers:
  description: Every module-level APIRouter found in O(main_file)'s package.
  returned: success
  type: list
  elements: dict
  contains:
    module:
      description: Dotted module, e.g. C(app.api.routes_portfolio).
      type: str
    name:
      description: Variable name, e.g. C(router).
      type: str
    file:
      description: File relative to O(src_dir).
      type: str
    line:
      description: Line of the assignment.
      type: int
    included:
      description: Whether O(main_file) includes it (directly or via an included router).
      type: bool
    prefix:
      description: The C(prefix) given to its C(APIRouter), null when not a literal.
      type: str
    routes:
      description: C(METHOD path) of each route it declares (path relative to the router).
      type: list
      elements: str
router_warnings:
  description:
    - One line per router that is never included but breaks nothing (dead code), per syntax
      error in a module O(main_file) does not import, and per expected route no router
      serves statically. The deploy continues.
  returned: success
  type: list
  elements: str
routes_found:
  description: Each expected route found statically, mapped to the router that serves it.
  returned: success
  type: dict
compose:
  description: The compose file as the deploy will run it.
  returned: success
  type: dict
  contains:
    file:
      description: Compose file relative to O(src_dir), normalised.
      type: str
    service:
      description: O(service).
      type: str
    profile:
      description: O(profile).
      type: str
    dependencies:
      description:
        - Transitive C(depends_on) of the service, dependencies first, only services enabled
          under the profile. Each is C({name, condition, container_name}); C(condition) is
          service_started, service_healthy or service_completed_successfully (from the first
          edge that reaches it); C(container_name) is null when the service sets none.
      type: list
      elements: dict
    env_files:
      description:
        - Every required C(env_file) of the service and its dependencies (relative to the
          compose file's directory, normalised, de-duplicated, in order), that is the files
          C(up) needs to exist.
      type: list
      elements: str
    optional_env_files:
      description: C(env_file) entries with C(required=false) of the service and its dependencies.
      type: list
      elements: str
    all_env_files:
      description: Every C(env_file) of every service in the file, any profile.
      type: list
      elements: str
    environment:
      description:
        - The service's C(environment) entries as written in the compose file (C(${VAR})
          references unexpanded; null for a name without a value). They win over its
          C(env_file) values; atp.deploy.env_guard warns when the deploy sets one of them.
      type: dict
excluded_secrets:
  description: Secret files of the checkout left out of the archive (paths, never content).
  returned: success
  type: list
  elements: str
input_size:
  description: Bytes of the shipped files before compression.
  returned: success
  type: int
file_count:
  description: Number of files in the archive (the manifest not counted).
  returned: success
  type: int
content_hash:
  description: sha256 of the canonical manifest file list; names the archive.
  returned: success
  type: str
archive_path:
  description: Path of C(<artifact_dir>/<content_hash>.tar.gz).
  returned: success
  type: str
archive_sha256:
  description: sha256 of the archive bytes.
  returned: success
  type: str
archive_size:
  description: Archive size in bytes.
  returned: success
  type: int
archive_reused:
  description: True when an identical archive already existed and was left untouched.
  returned: success
  type: bool
"""

import os  # noqa: E402

from ansible.module_utils.basic import AnsibleModule  # noqa: E402
from ansible_collections.atp.deploy.plugins.module_utils import routes  # noqa: E402
from ansible_collections.atp.deploy.plugins.module_utils.compose_file import (  # noqa: E402
    ComposeError,
    compose_summary,
)
from ansible_collections.atp.deploy.plugins.module_utils.git_util import GitError  # noqa: E402
from ansible_collections.atp.deploy.plugins.module_utils.release_archive import (  # noqa: E402
    DEFAULT_EXCLUDES,
    MIB,
    ReleaseArchiveError,
    build_archive,
    is_excluded,
    secrets_warning,
    select_release,
)
from ansible_collections.atp.deploy.plugins.module_utils.release_manifest import (  # noqa: E402
    build_manifest,
    content_hash,
)
from ansible_collections.atp.deploy.plugins.module_utils.source_check import (  # noqa: E402
    RouterCheck,
    SourceCheckError,
    check_routers,
    git_state,
    missing_files,
    parse_expected_routes,
)

DEFAULT_REQUIRED_FILES = [
    "docker-compose.yml",
    "backend/app/main.py",
    "backend/app/api/routes_portfolio.py",
    "backend/app/utils/credential_resolver.py",
    "backend/app/services/portfolio_snapshot.py",
]
_LIST_LIMIT = 10

ARGUMENT_SPEC = {
    "src_dir": {"type": "path", "required": True},
    "required_files": {"type": "list", "elements": "str", "default": DEFAULT_REQUIRED_FILES},
    "main_file": {"type": "str", "default": "backend/app/main.py"},
    "expected_routes": {"type": "list", "elements": "str",
                        "default": list(routes.EXPECTED_ROUTES)},
    "compose_file": {"type": "str", "default": "docker-compose.yml"},
    "service": {"type": "str", "default": "backend-aws"},
    "profile": {"type": "str", "default": "aws"},
    "require_clean_git": {"type": "bool", "default": False},
    "skip_router_check": {"type": "bool", "default": False},
    "excludes": {"type": "list", "elements": "str", "default": list(DEFAULT_EXCLUDES)},
    "artifact_dir": {"type": "path", "required": True},
    "archive_max_mb": {"type": "int", "default": 200},
    "archive_max_file_mb": {"type": "int", "default": 50},
}


class PreflightError(Exception):
    """A one-line preflight failure."""


def _short_list(paths: list[str]) -> str:
    """``a, b, c`` limited to the first 10, with a marker when truncated."""
    text = ", ".join(paths[:_LIST_LIMIT])
    return f"{text} (first {_LIST_LIMIT})" if len(paths) > _LIST_LIMIT else text


def check_src_dir(src_dir: str) -> str:
    """Absolute src_dir, or PreflightError when it is not a directory."""
    if not os.path.isdir(src_dir):
        what = "is not a directory" if os.path.exists(src_dir) else "does not exist"
        raise PreflightError(
            f"backend_src_dir '{src_dir}' {what}: expected an app checkout holding "
            "docker-compose.yml and backend/; pass -e backend_src_dir=<path>"
        )
    return os.path.abspath(src_dir)


def check_required(src_dir: str, required: list[str]) -> None:
    """PreflightError naming every missing required file."""
    missing = missing_files(src_dir, required)
    if missing:
        raise PreflightError(
            f"{len(missing)} required file(s) missing in {src_dir}: {', '.join(missing)}: "
            "the app checkout is incomplete; add (and commit) them or fix backend_src_dir"
        )


def check_router_inclusion(module: AnsibleModule, src_dir: str) -> RouterCheck:
    """Run the static router check; fail (or only warn with skip_router_check) on problems.

    Several problems are joined with `` | `` so the message stays one line per problem
    within Ansible's single ``msg``.
    """
    params = module.params
    result = check_routers(src_dir, params["main_file"], params["expected_routes"])
    if result.problems and not params["skip_router_check"]:
        raise PreflightError(" | ".join(result.problems))
    for problem in result.problems:
        module.warn(
            f"deploy_skip_router_check=true, shipping anyway (the route gate in the built "
            f"image still runs): {problem}"
        )
    return result


def _shipped(paths: list[str], excludes: list[str]) -> list[str]:
    """Drop paths that are excluded from the release (they are not shipped)."""
    return [p for p in paths if not is_excluded(p, excludes)]


def check_git(module: AnsibleModule, src_dir: str) -> dict:
    """Git state of src_dir restricted to shipped paths; warn, or fail if clean is required."""
    params = module.params
    state = git_state(src_dir)
    state["untracked"] = _shipped(state["untracked"], params["excludes"])
    state["modified"] = _shipped(state["modified"], params["excludes"])
    state["dirty"] = bool(state["untracked"] or state["modified"])
    if not state["is_git"]:
        if params["require_clean_git"]:
            raise PreflightError(
                f"{src_dir} is not inside a git work tree but require_clean_git is set: deploy "
                "from a git checkout or pass -e deploy_require_clean_git=false"
            )
        module.warn(f"{src_dir} is not a git checkout: git_sha is 'unknown' and every "
                    "non-excluded file is shipped")
        return state
    _warn_uncommitted(module, src_dir, state)
    pending = sorted(state["untracked"] + state["modified"])
    if pending and params["require_clean_git"]:
        raise PreflightError(
            f"{len(pending)} file(s) not committed in {src_dir}: {_short_list(pending)}: "
            "commit them or pass -e deploy_require_clean_git=false"
        )
    return state


def _warn_uncommitted(module: AnsibleModule, src_dir: str, state: dict) -> None:
    """One warning each for untracked and modified shipped files."""
    if state["untracked"]:
        module.warn(f"{len(state['untracked'])} untracked file(s) in {src_dir} are shipped but "
                    f"not committed: {_short_list(state['untracked'])}")
    if state["modified"]:
        module.warn(f"{len(state['modified'])} file(s) in {src_dir} are shipped with "
                    f"uncommitted changes: {_short_list(state['modified'])}")


def build_release(module: AnsibleModule, src_dir: str) -> dict:
    """Select files and write ``artifact_dir/<content_hash>.tar.gz``."""
    params = module.params
    selection = select_release(src_dir, params["excludes"],
                               max_total_bytes=params["archive_max_mb"] * MIB,
                               max_file_bytes=params["archive_max_file_mb"] * MIB)
    warning = secrets_warning(selection.secrets)
    if warning:
        module.warn(warning)
    files = selection.files
    if not files:
        raise PreflightError(f"no files to ship in {src_dir} after applying the excludes")
    manifest = build_manifest(src_dir, files)
    dest = os.path.join(params["artifact_dir"], content_hash(manifest) + ".tar.gz")
    archive = build_archive(src_dir, files, dest, manifest=manifest)
    return {**archive, "excluded_secrets": selection.secrets,
            "input_size": selection.total_bytes}


def _router_dicts(result: RouterCheck, src_dir: str) -> list[dict]:
    """Routers as plain dicts for the module result."""
    return [
        {
            "module": r.module,
            "name": r.name,
            "file": os.path.relpath(r.file, src_dir).replace(os.sep, "/"),
            "line": r.line,
            "included": r.ref in result.included,
            "prefix": r.prefix,
            "routes": [f"{route.method} {route.path}" for route in r.routes if route.path],
        }
        for r in result.routers
    ]


def run(module: AnsibleModule) -> dict:
    """All checks in order; returns the module result (PreflightError on failure)."""
    params = module.params
    parse_expected_routes(params["expected_routes"])
    src_dir = check_src_dir(params["src_dir"])
    check_required(src_dir, params["required_files"])
    compose = compose_summary(
        src_dir, params["compose_file"], params["service"], params["profile"]
    )
    routers = check_router_inclusion(module, src_dir)
    state = check_git(module, src_dir)
    archive = build_release(module, src_dir)
    return {
        "changed": False,
        "src_dir": src_dir,
        "git_sha": state["sha"],
        "git_dirty": state["dirty"],
        "untracked": state["untracked"],
        "modified": state["modified"],
        "routers": _router_dicts(routers, src_dir),
        "router_warnings": routers.warnings,
        "routes_found": routers.served,
        "compose": compose,
        "excluded_secrets": archive["excluded_secrets"],
        "input_size": archive["input_size"],
        "file_count": archive["file_count"],
        "content_hash": archive["content_hash"],
        "archive_path": archive["path"],
        "archive_sha256": archive["sha256"],
        "archive_size": archive["size"],
        "archive_reused": archive["reused"],
    }


def main() -> None:
    """Module entry point."""
    module = AnsibleModule(argument_spec=ARGUMENT_SPEC, supports_check_mode=True)
    try:
        result = run(module)
    except (
        PreflightError, ReleaseArchiveError, SourceCheckError, GitError, ComposeError
    ) as exc:
        module.fail_json(msg=str(exc))
    except OSError as exc:
        module.fail_json(msg=f"preflight I/O error: {exc}")
    module.exit_json(**result)


if __name__ == "__main__":
    main()
