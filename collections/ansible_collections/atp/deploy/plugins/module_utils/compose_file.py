# Copyright: (c) 2025, ATP deploy
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Controller-side reading of the app's compose file (PyYAML): the deployed service, the
services it depends on under the active profile, and the env files ``up`` needs.

Pure functions over the parsed document; only :func:`load_compose` touches the disk.
Every error is a one-line :class:`ComposeError`. Env values are never read or printed.
"""

from __future__ import annotations

import os
import posixpath
from dataclasses import dataclass

CONDITIONS = ("service_started", "service_healthy", "service_completed_successfully")
_DEFAULT_CONDITION = "service_started"
_LIST_LIMIT = 12


class ComposeError(ValueError):
    """One-line, user-facing problem with the compose file."""


@dataclass(frozen=True)
class Dependency:
    """One ``depends_on`` edge of a service."""

    name: str
    condition: str = _DEFAULT_CONDITION
    required: bool = True


@dataclass(frozen=True)
class EnvFile:
    """One ``env_file`` entry of a service (path as written in the file)."""

    path: str
    required: bool = True


# --------------------------------------------------------------------------- loading


def load_compose(path: str, display: str | None = None) -> dict:
    """Parse the compose file at ``path``; ComposeError when missing, not YAML or not compose."""
    display = display or path
    if not os.path.isfile(path):
        raise ComposeError(
            f"compose file {display} not found: expected the app's compose file there; "
            "add it to the checkout (or pass compose_file=<path relative to the checkout>)"
        )
    try:
        import yaml  # controller-only dependency, imported when needed
    except ImportError:
        raise ComposeError(
            "PyYAML is not importable by the controller's python: install python3-yaml "
            "(or run ansible from the repo's venv) to read the compose file"
        ) from None
    try:
        # The C safe loader when libyaml is there (10x faster), else the pure-Python one.
        loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
        with open(path, "rb") as handle:
            doc = yaml.load(handle, Loader=loader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or type(exc).__name__
        raise ComposeError(
            f"compose file {display} is not valid YAML{where}: {problem}; fix the file "
            "(docker compose config shows the same error)"
        ) from None
    except UnicodeDecodeError:
        raise ComposeError(f"compose file {display} is not UTF-8 text: fix the file") from None
    return check_document(doc, display)


def check_document(doc: object, display: str = "docker-compose.yml") -> dict:
    """The document if it has a ``services`` mapping of mappings, else ComposeError."""
    if not isinstance(doc, dict):
        raise ComposeError(
            f"compose file {display} is not a YAML mapping (saw {type(doc).__name__}): "
            "expected a compose file with a top-level 'services:' section"
        )
    services = doc.get("services")
    if not isinstance(services, dict) or not services:
        raise ComposeError(
            f"compose file {display} has no 'services:' mapping: expected the app's compose "
            "file with its services (db, backend-aws, ...)"
        )
    for name, spec in services.items():
        if spec is not None and not isinstance(spec, dict):
            raise ComposeError(
                f"service '{name}' in {display} is a {type(spec).__name__}, not a mapping: "
                "fix the compose file"
            )
    return doc


# --------------------------------------------------------------------------- one service


def _spec(doc: dict, name: str) -> dict:
    """The service's mapping ({} for ``name:`` with no body)."""
    return doc["services"].get(name) or {}


def parse_profiles(profile: str | list[str] | None) -> list[str]:
    """Active profiles from ``aws``, ``aws,extra`` or a list; empty means none."""
    if profile is None:
        return []
    items = profile if isinstance(profile, list) else str(profile).split(",")
    return [p.strip() for p in items if str(p).strip()]


def service_profiles(spec: dict) -> list[str]:
    """The ``profiles:`` of a service (empty: always enabled)."""
    profiles = spec.get("profiles") or []
    if isinstance(profiles, str):
        return [profiles]
    return [str(p) for p in profiles]


def is_enabled(spec: dict, active: list[str]) -> bool:
    """Compose rule: a service without profiles is always enabled, else one must be active."""
    profiles = service_profiles(spec)
    return not profiles or any(p in active for p in profiles)


def depends_on(spec: dict, name: str = "?") -> list[Dependency]:
    """``depends_on`` in list form (``[db]``) or mapping form (``{db: {condition: ...}}``)."""
    raw = spec.get("depends_on")
    if raw is None:
        return []
    if isinstance(raw, str):
        raw = [raw]
    if isinstance(raw, list):
        if not all(isinstance(item, str) for item in raw):
            raise ComposeError(
                f"service '{name}' depends_on list holds a non-string item: expected service "
                "names (or the mapping form with condition)"
            )
        return [Dependency(item) for item in raw]
    if not isinstance(raw, dict):
        raise ComposeError(
            f"service '{name}' depends_on is a {type(raw).__name__}: expected a list of service "
            "names or a mapping of name -> {condition: ...}"
        )
    deps = []
    for dep, options in raw.items():
        options = options or {}
        if not isinstance(options, dict):
            raise ComposeError(
                f"service '{name}' depends_on.{dep} is a {type(options).__name__}: expected "
                "{condition: service_started|service_healthy|service_completed_successfully}"
            )
        condition = options.get("condition", _DEFAULT_CONDITION)
        if condition not in CONDITIONS:
            raise ComposeError(
                f"service '{name}' depends_on.{dep}.condition is '{condition}': expected one of "
                f"{', '.join(CONDITIONS)}"
            )
        deps.append(Dependency(str(dep), condition, options.get("required", True) is not False))
    return deps


def env_file_entries(spec: dict, name: str = "?") -> list[EnvFile]:
    """``env_file`` as a string, a list of strings, or a list of ``{path, required}``."""
    raw = spec.get("env_file")
    if raw is None:
        return []
    if isinstance(raw, str):
        raw = [raw]
    if not isinstance(raw, list):
        raise ComposeError(
            f"service '{name}' env_file is a {type(raw).__name__}: expected a path, a list of "
            "paths, or a list of {path, required}"
        )
    entries = []
    for item in raw:
        if isinstance(item, str):
            entries.append(EnvFile(item))
        elif isinstance(item, dict) and isinstance(item.get("path"), str):
            entries.append(EnvFile(item["path"], item.get("required", True) is not False))
        else:
            raise ComposeError(
                f"service '{name}' env_file holds an entry without a string path: expected "
                "'.env' or {path: .env, required: true}"
            )
    return entries


def normalise_env_path(raw: str, service: str, compose_dir: str = "") -> str:
    """``raw`` relative to the compose file's dir, normalised; ComposeError if it leaves the
    checkout (``compose_dir`` is the compose file's dir relative to the checkout root)."""
    if "$" in raw:
        raise ComposeError(
            f"service '{service}' env_file '{raw}' uses variable interpolation: the deploy must "
            "know which files to carry; write the path literally"
        )
    if not raw.strip():
        raise ComposeError(f"service '{service}' has an empty env_file entry: remove it")
    if raw.startswith(("/", "~")) or posixpath.isabs(raw):
        raise ComposeError(
            f"service '{service}' env_file '{raw}' is an absolute path: a release only carries "
            "files inside the checkout; use a path relative to the compose file"
        )
    rel = posixpath.normpath(raw.replace("\\", "/"))
    inside = posixpath.normpath(posixpath.join(compose_dir or ".", rel))
    if inside == ".." or inside.startswith("../"):
        raise ComposeError(
            f"service '{service}' env_file '{raw}' escapes the checkout: a release only carries "
            "files inside it; move the file under the checkout"
        )
    return rel


# --------------------------------------------------------------------------- graph


def _names(items: list[str]) -> str:
    """``a, b, c`` (limited)."""
    text = ", ".join(items[:_LIST_LIMIT])
    return text + (f" (+{len(items) - _LIST_LIMIT} more)" if len(items) > _LIST_LIMIT else "")


def check_service(doc: dict, service: str, active: list[str], display: str) -> None:
    """ComposeError when ``service`` is not in the file or not enabled under ``active``."""
    services = doc["services"]
    if service not in services:
        raise ComposeError(
            f"service '{service}' (deploy_service) is not in {display}: its services are "
            f"{_names(list(services))}; pass -e deploy_service=<one of them>"
        )
    spec = _spec(doc, service)
    if not is_enabled(spec, active):
        shown = ",".join(active) or "(none)"
        profiles = service_profiles(spec)
        raise ComposeError(
            f"service '{service}' is not enabled under profile '{shown}' "
            f"(deploy_compose_profile): its profiles are {_names(profiles)}; pass "
            f"-e deploy_compose_profile={profiles[0]}"
        )


def dependencies(doc: dict, service: str, active: list[str], display: str) -> list[dict]:
    """Transitive ``depends_on`` of ``service``, deps first, only services enabled under
    ``active``: ``[{name, condition, container_name}]``.

    A required dependency that is missing or disabled is a ComposeError (compose refuses it
    too); an optional one (``required: false``) is left out. ``condition`` comes from the
    first edge that reaches the dependency (the service's own edges first).
    """
    order: list[str] = []
    conditions: dict[str, str] = {}
    state: dict[str, str] = {}  # name -> "visiting" | "done"

    def visit(name: str, path: list[str]) -> None:
        state[name] = "visiting"
        for dep in depends_on(_spec(doc, name), name):
            if not _usable(doc, name, dep, active, display):
                continue
            conditions.setdefault(dep.name, dep.condition)
            if state.get(dep.name) == "visiting":
                chain = [*path, name]
                cycle = " -> ".join([*chain[chain.index(dep.name):], dep.name])
                raise ComposeError(
                    f"depends_on cycle in {display}: {cycle}: compose cannot start it; "
                    "remove one edge"
                )
            if dep.name not in state:
                visit(dep.name, [*path, name])
        state[name] = "done"
        order.append(name)

    # The service's own edges win for the condition: record them before descending.
    for dep in depends_on(_spec(doc, service), service):
        if _usable(doc, service, dep, active, display):
            conditions.setdefault(dep.name, dep.condition)
    visit(service, [])
    return [
        {
            "name": name,
            "condition": conditions.get(name, _DEFAULT_CONDITION),
            "container_name": _container_name(_spec(doc, name)),
        }
        for name in order
        if name != service
    ]


def _usable(doc: dict, parent: str, dep: Dependency, active: list[str], display: str) -> bool:
    """True if ``dep`` is a service enabled under ``active``; errors for required ones."""
    services = doc["services"]
    if dep.name not in services:
        if not dep.required:
            return False
        raise ComposeError(
            f"service '{parent}' depends on '{dep.name}', which is not a service in {display}: "
            "add the service or fix depends_on"
        )
    spec = _spec(doc, dep.name)
    if is_enabled(spec, active):
        return True
    if not dep.required:
        return False
    shown = ",".join(active) or "(none)"
    raise ComposeError(
        f"service '{parent}' depends on '{dep.name}', which is not enabled under profile "
        f"'{shown}' (its profiles: {_names(service_profiles(spec))}): compose refuses to start "
        f"{parent}; add the profile to {dep.name} or set required: false on the dependency"
    )


def _container_name(spec: dict) -> str | None:
    """The fixed ``container_name`` or None."""
    value = spec.get("container_name")
    return str(value) if value not in (None, "") else None


def _add_unique(target: list[str], items: list[str]) -> None:
    """Append items not yet in target, keeping order."""
    for item in items:
        if item not in target:
            target.append(item)


def service_env_files(
    doc: dict, service: str, compose_dir: str = "", required_only: bool = True
) -> list[str]:
    """Normalised env_file paths of one service (ComposeError on a bad path)."""
    entries = env_file_entries(_spec(doc, service), service)
    paths: list[str] = []
    _add_unique(
        paths,
        [
            normalise_env_path(e.path, service, compose_dir)
            for e in entries
            if e.required or not required_only
        ],
    )
    return paths


def all_env_files(doc: dict, compose_dir: str = "") -> list[str]:
    """Every env_file of every service (any profile, required or not), normalised and
    de-duplicated; entries that are malformed or leave the checkout are left out (they
    belong to services this deploy does not start)."""
    paths: list[str] = []
    for name in doc["services"]:
        try:
            entries = env_file_entries(_spec(doc, name), name)
        except ComposeError:
            continue
        for entry in entries:
            try:
                _add_unique(paths, [normalise_env_path(entry.path, name, compose_dir)])
            except ComposeError:
                continue
    return paths


def service_environment(doc: dict, service: str) -> dict[str, str | None]:
    """The service's ``environment:`` as {name: entry as written} (mapping or list form;
    None: a name without a value, which compose passes through from its own shell)."""
    env = _spec(doc, service).get("environment")
    out: dict[str, str | None] = {}
    if isinstance(env, dict):
        for key, value in env.items():
            out[str(key)] = (None if value is None else
                             str(value).lower() if isinstance(value, bool) else str(value))
    elif isinstance(env, list):
        for item in env:
            key, sep, value = str(item).partition("=")
            out[key.strip()] = value if sep else None
    return out


def describe(doc: dict, compose_file: str, service: str, profile: str | list[str]) -> dict:
    """The ``compose`` summary of the source_preflight result (see module RETURN)."""
    doc = check_document(doc, compose_file)
    active = parse_profiles(profile)
    check_service(doc, service, active, compose_file)
    deps = dependencies(doc, service, active, compose_file)
    compose_dir = posixpath.dirname(posixpath.normpath(compose_file))
    started = [d["name"] for d in deps] + [service]
    env_files: list[str] = []
    optional: list[str] = []
    for name in started:
        _add_unique(env_files, service_env_files(doc, name, compose_dir))
        _add_unique(optional, service_env_files(doc, name, compose_dir, required_only=False))
    return {
        "file": posixpath.normpath(compose_file),
        "service": service,
        "profile": profile if isinstance(profile, str) else ",".join(profile),
        "dependencies": deps,
        "env_files": env_files,
        "optional_env_files": [p for p in optional if p not in env_files],
        "all_env_files": all_env_files(doc, compose_dir),
        "environment": service_environment(doc, service),
    }


def compose_summary(src_dir: str, compose_file: str, service: str, profile: str) -> dict:
    """Load ``<src_dir>/<compose_file>`` and :func:`describe` it."""
    rel = posixpath.normpath(compose_file.replace("\\", "/"))
    if posixpath.isabs(rel) or rel == ".." or rel.startswith("../"):
        raise ComposeError(
            f"compose_file '{compose_file}' is not a path inside the checkout: pass it relative "
            "to backend_src_dir (default docker-compose.yml)"
        )
    doc = load_compose(os.path.join(src_dir, *rel.split("/")), rel)
    return describe(doc, rel, service, profile)
