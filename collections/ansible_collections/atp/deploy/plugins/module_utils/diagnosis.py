# Copyright: atp.deploy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Deciding logic of the diagnose module (pure functions: stdlib and release_model only).

The diagnose module collects facts on the instance in one call; everything that decides what
those facts mean lives here: env file parsing (names; values only for masking), which
credential alias resolves, secret masking, the in-container route probe and its output,
drift findings with what to do about them, and the plain-words summary and Markdown report.

Nothing returned by these functions contains an env value: names only, and free text is
masked with :func:`mask_text` before it leaves the module.
"""

from __future__ import annotations

import json
import re

from ansible_collections.atp.deploy.plugins.module_utils import release_model

# Same order as credentials.CREDENTIAL_PAIRS (canonical first); kept here as plain data so this
# file runs on the instance without the controller-side helpers.
CREDENTIAL_PAIRS: tuple[tuple[str, str], ...] = (
    ("EXCHANGE_CUSTOM_API_KEY", "EXCHANGE_CUSTOM_API_SECRET"),
    ("CRYPTO_COM_API_KEY", "CRYPTO_COM_API_SECRET"),
    ("CRYPTOCOM_API_KEY", "CRYPTOCOM_API_SECRET"),
)
MASK = "***"
# Values this long or longer are always masked; shorter ones only under a secret-looking name
# (masking "1" or "aws" everywhere would make the logs unreadable and hide nothing).
MIN_MASK_LEN = 4
SECRET_NAME_RE = re.compile(r"KEY|SECRET|TOKEN|PASSW|PWD|CREDENTIAL|AUTH|PRIVATE", re.I)
DEFAULT_EXPECTED_ROUTES = (
    "GET /api/health",
    "GET /api/dashboard/state",
    "GET /api/portfolio/snapshot",
    "GET /api/portfolio/latest",
    "POST /api/portfolio/refresh",
)
ROUTE_MARK = "ATP_DIAGNOSE_ROUTES="
DRIFT = "drift"
WARNING = "warning"
DEPLOY_CMD = "ansible-playbook deploy.yml"

_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")

# Runs INSIDE the backend container: `python3 -c ROUTE_PROBE <module> <attr>`. It imports the
# app the way uvicorn does and walks app.routes, following anything nested: objects with
# `.routes` (Mount, sub-apps, routers) and newer FastAPI's included-router objects
# (`original_router` + `include_context.prefix`). Prints one line: ROUTE_MARK + JSON.
# Python 3.6+ syntax (the container's Python is not ours to choose); bounded depth and count.
ROUTE_PROBE = r'''
import importlib, json, os, sys
MARK = "ATP_DIAGNOSE_ROUTES="
def probe(module_name, attr):
    for path in (os.getcwd(), "/app"):
        if path not in sys.path:
            sys.path.insert(0, path)
    try:
        app = getattr(importlib.import_module(module_name), attr)
    except BaseException as exc:
        return {"error": "importing %s:%s failed: %s: %s"
                % (module_name, attr, type(exc).__name__, str(exc)[:300])}
    found, seen = [], set()
    def walk(routes, prefix, depth):
        if depth > 25 or len(found) > 5000:
            return
        try:
            routes = list(routes or [])
        except Exception:
            return
        for route in routes:
            if id(route) in seen:
                continue
            seen.add(id(route))
            path = getattr(route, "path", None)
            path = path if isinstance(path, str) else ""
            inner = getattr(route, "original_router", None)
            if inner is not None and hasattr(inner, "routes"):
                ctx = getattr(route, "include_context", None)
                walk(inner.routes, prefix + str(getattr(ctx, "prefix", "") or ""), depth + 1)
                continue
            methods = getattr(route, "methods", None)
            try:
                sub = getattr(route, "routes", None)
            except Exception:
                sub = None
            if sub is not None and not methods:
                walk(sub, prefix + path, depth + 1)
                continue
            if path or methods:
                found.append({"path": prefix + path,
                              "methods": sorted(str(m).upper() for m in (methods or ())),
                              "name": str(getattr(route, "name", "") or ""),
                              "kind": type(route).__name__})
    walk(getattr(app, "routes", None), "", 0)
    return {"routes": found}
try:
    out = probe(sys.argv[1], sys.argv[2])
except BaseException as exc:
    out = {"error": "route probe failed: %s: %s" % (type(exc).__name__, str(exc)[:300])}
sys.stdout.write("\n" + MARK + json.dumps(out) + "\n")
'''


# --------------------------------------------------------------------------- env files


def _unquote(raw: str) -> str:
    """The value of one env line's right-hand side, as docker compose reads it."""
    raw = raw.strip()
    if len(raw) >= 2 and raw[0] == raw[-1] and raw[0] in ("'", '"'):
        inner = raw[1:-1]
        if raw[0] == '"':
            inner = (inner.replace("\\\\", "\0").replace('\\"', '"').replace("\\n", "\n")
                     .replace("\0", "\\"))
        return inner
    if raw[:1] in ("'", '"'):
        quote = raw[0]
        end = raw.find(quote, 1)
        if end > 0:
            return raw[1:end]
        return raw[1:]
    cut = re.search(r"\s#", raw)
    return (raw[: cut.start()] if cut else raw).strip()


def parse_env_text(text: str) -> list[tuple[str, str]]:
    """``KEY=value`` lines (optionally ``export``, quoted, commented) -> [(name, value)].

    A bare ``KEY`` line (compose: take it from the shell) counts as set with an empty value.
    Lines that are not assignments are skipped.
    """
    pairs = []
    for line in (text or "").splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("export "):
            line = line[len("export "):].strip()
        name, sep, raw = line.partition("=")
        name = name.strip()
        if not _NAME_RE.match(name):
            continue
        pairs.append((name, _unquote(raw) if sep else ""))
    return pairs


def merged_set_names(files: list[list[tuple[str, str]]]) -> dict:
    """Env files in compose order (later wins) -> {name: value is non-empty}."""
    merged: dict = {}
    for pairs in files:
        for name, value in pairs:
            merged[name] = bool(str(value).strip())
    return merged


def resolve_alias(set_names) -> dict:
    """Which credential pair resolves, from NAMES only.

    ``set_names``: names whose value is non-empty (an iterable, or a {name: non-empty} dict).
    Returns {alias, pair, partial}: alias is the key name of the first pair (canonical, then
    CRYPTO_COM_*, then CRYPTOCOM_*) with both halves set, else None; partial lists
    "<set> set but <other> missing or empty" for half pairs.
    """
    if isinstance(set_names, dict):
        names = {name for name, nonempty in set_names.items() if nonempty}
    else:
        names = set(set_names or ())
    alias, pair, partial = None, None, []
    for key, secret in CREDENTIAL_PAIRS:
        if key in names and secret in names:
            if alias is None:
                alias, pair = key, [key, secret]
        elif key in names or secret in names:
            have, other = (key, secret) if key in names else (secret, key)
            partial.append(f"{have} is set but {other} is missing or empty")
    return {"alias": alias, "pair": pair, "partial": partial}


# --------------------------------------------------------------------------- masking


def secrets_to_mask(pairs: list[tuple[str, str]]) -> list[str]:
    """The env values that must never appear in output, longest first."""
    values = set()
    for name, value in pairs:
        value = str(value)
        if not value.strip():
            continue
        if len(value) >= MIN_MASK_LEN or SECRET_NAME_RE.search(name):
            values.add(value)
            escaped = json.dumps(value)[1:-1]
            if escaped != value:
                values.add(escaped)
    return sorted(values, key=lambda v: (-len(v), v))


def mask_text(text: str, secrets: list[str]) -> str:
    """Replace every occurrence of each secret (longest first) by ``***``."""
    text = "" if text is None else str(text)
    for value in sorted(secrets or (), key=len, reverse=True):
        if value:
            text = text.replace(value, MASK)
    return text


def mask_data(value, secrets: list[str]):
    """mask_text applied to every string in a JSON-like structure (keys included)."""
    if isinstance(value, str):
        return mask_text(value, secrets)
    if isinstance(value, dict):
        return {mask_text(str(k), secrets): mask_data(v, secrets) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [mask_data(v, secrets) for v in value]
    return value


# --------------------------------------------------------------------------- routes


def normalize_route(entry: str) -> str:
    """'get  /api/health/' -> 'GET /api/health' (method upper-cased, trailing slash dropped)."""
    parts = str(entry).split()
    if len(parts) != 2:
        raise ValueError(f"expected a route like 'GET /api/health', got {entry!r}")
    method, path = parts[0].upper(), parts[1]
    if not path.startswith("/"):
        raise ValueError(f"route path must start with /, got {entry!r}")
    if len(path) > 1:
        path = path.rstrip("/") or "/"
    return f"{method} {path}"


def parse_route_probe(stdout: str) -> dict:
    """Output of ROUTE_PROBE -> {routes: [{path, methods, name, kind}]} or {error: str}."""
    for line in reversed((stdout or "").splitlines()):
        if line.startswith(ROUTE_MARK):
            try:
                data = json.loads(line[len(ROUTE_MARK):])
            except ValueError:
                break
            if isinstance(data, dict) and ("routes" in data or "error" in data):
                return data
            break
    return {"error": "the route probe printed no result"}


def route_keys(routes: list[dict]) -> list[str]:
    """Probe routes -> sorted unique 'METHOD /path' strings (a route without methods: 'ANY')."""
    keys = set()
    for route in routes or []:
        path = str(route.get("path") or "")
        if not path:
            continue
        if len(path) > 1:
            path = path.rstrip("/") or "/"
        for method in route.get("methods") or ["ANY"]:
            keys.add(f"{str(method).upper()} {path}")
    return sorted(keys)


def missing_routes(expected: list[str], registered: list[str]) -> list[str]:
    """Expected 'METHOD /path' entries not registered (order of expected kept)."""
    have = set()
    for key in registered or []:
        try:
            have.add(normalize_route(key))
        except ValueError:
            continue
    missing = []
    for entry in expected or []:
        key = normalize_route(entry)
        if key not in have and key not in missing:
            missing.append(key)
    return missing


# --------------------------------------------------------------------------- release facts


def git_sha_for(release: str | None, log_records: list[dict], manifest: dict | None = None,
                override: dict | None = None, service: str = "backend-aws") -> tuple:
    """(git_sha, source, record) of the active release.

    deploy.log first (the newest good record of the release -- release_model.is_good: it left
    the release serving -- else its newest record), then the release manifest's git_sha, then
    the compose override's GIT_SHA build arg.
    """
    if not release:
        return None, None, None
    mine = [r for r in log_records or [] if isinstance(r, dict) and r.get("release") == release]
    ok = [r for r in mine if release_model.is_good(r)]
    for record in [*reversed(ok), *reversed(mine)]:
        sha = str(record.get("git_sha") or "").strip()
        if sha and sha != "unknown":
            return sha, "deploy.log", record
    record = (ok or mine or [None])[-1]
    sha = str((manifest or {}).get("git_sha") or "").strip()
    if sha and sha != "unknown":
        return sha, "release manifest", record
    svc = ((override or {}).get("services") or {}).get(service) or {}
    sha = str(((svc.get("build") or {}).get("args") or {}).get("GIT_SHA") or "").strip()
    if sha and sha != "unknown":
        return sha, "compose override", record
    return None, None, record


# --------------------------------------------------------------------------- findings


def _finding(code: str, message: str, severity: str = DRIFT) -> dict:
    return {"code": code, "severity": severity, "message": message}


def _short(image_id: str | None) -> str:
    value = str(image_id or "")
    return value.split(":", 1)[-1][:12] if value else "none"


def _names(containers: list[dict], with_image: bool = False) -> str:
    if with_image:
        return ", ".join(f"{c.get('name')} ({c.get('image') or _short(c.get('image_id'))})"
                         for c in containers)
    return ", ".join(str(c.get("name")) for c in containers)


def findings(facts: dict) -> list[dict]:
    """Collected facts -> findings [{code, severity (drift|warning), message}].

    Every message is one plain-words line that says what is wrong and what to do.
    """
    out: list[dict] = []
    project, service = facts.get("project_name"), facts.get("service")
    port, app_root = facts.get("port"), facts.get("app_root")
    release = facts.get("active_release")
    docker_error = facts.get("docker_error")
    if docker_error:
        out.append(_finding(
            "docker_unreachable",
            f"docker is not usable on the instance ({docker_error}); start it "
            "(sudo systemctl start docker) and run the diagnose again"))

    if not facts.get("app_root_exists"):
        out.append(_finding(
            "no_release", f"nothing is deployed: {app_root} does not exist; deploy the backend "
            f"({DEPLOY_CMD})"))
    elif not release:
        out.append(_finding(
            "no_release", f"no active release: {app_root}/current is missing or does not point "
            f"at releases/<release_id>; deploy ({DEPLOY_CMD}) or point current at a release"))
    elif not facts.get("release_dir_ok"):
        out.append(_finding(
            "release_missing", f"current points at releases/{release}, but that directory or its "
            f".release-manifest.json is missing; redeploy ({DEPLOY_CMD}) or roll back to a "
            "complete release"))

    image = facts.get("release_image") or {}
    if release and not docker_error and not image.get("id"):
        out.append(_finding(
            "release_image_missing", f"the image of the active release, {image.get('ref')}, "
            f"does not exist; rebuild it by redeploying ({DEPLOY_CMD})"))

    containers = facts.get("containers") or []
    running = [c for c in containers if c.get("running")]
    deployed = bool(facts.get("app_root_exists"))
    if deployed and not docker_error and not running:
        seen = ", ".join(f"{c.get('name')} ({c.get('state')})" for c in containers)
        out.append(_finding(
            "no_container", f"no {project}/{service} container is running"
            + (f" (found {seen})" if seen else "")
            + f"; start it from the active release: {DEPLOY_CMD} (or docker compose -p {project} "
            f"--profile aws up -d {service} in {app_root}/current)"))
    if len(running) > 1:
        out.append(_finding(
            "duplicate_backend", f"{len(running)} containers run as {project}/{service}: "
            f"{_names(running, True)}; only one should: remove the stray one(s) "
            f"(docker rm -f <name>) and keep the one running {image.get('ref') or 'the release'}"))
    if image.get("id"):
        for c in running:
            if c.get("image_id") != image.get("id"):
                out.append(_finding(
                    "stale_image", f"container {c.get('name')} runs image "
                    f"{c.get('image') or '?'} ({_short(c.get('image_id'))}), not "
                    f"{image.get('ref')} ({_short(image.get('id'))}) of the active release "
                    f"{release}; recreate it from the release: {DEPLOY_CMD} "
                    "(docker compose up -d, never restart)"))

    publishers = facts.get("port_publishers") or []
    proxy = facts.get("proxy") or {}
    backend_ids = {c.get("id") for c in containers} | set(proxy.get("ids") or [])
    if proxy.get("ids"):
        upstream = proxy.get("upstream") or ""
        if upstream.rpartition(":")[0] not in {c.get("name") for c in running}:
            out.append(_finding(
                "proxy_upstream", f"the proxy {_names([{'name': n} for n in proxy.get('names')])}"
                f" on port {port} forwards to {upstream or 'nothing'}, which is not a running "
                f"{project}/{service} container: requests to port {port} fail; redeploy "
                f"({DEPLOY_CMD}) or roll back (playbooks/rollback.yml)"))
    if len(publishers) > 1:
        out.append(_finding(
            "port_conflict", f"{len(publishers)} containers publish host port {port}: "
            f"{_names(publishers, True)}; only the {service} container should: stop the "
            "others (docker stop <name>)"))
    elif publishers and publishers[0].get("id") not in backend_ids:
        other = publishers[0]
        out.append(_finding(
            "port_foreign", f"host port {port} is published by {other.get('name')} "
            f"({other.get('image')}), which is not the {project}/{service} container; stop it "
            f"(docker stop {other.get('name')}) and redeploy ({DEPLOY_CMD})"))

    for name, probe in (facts.get("routes") or {}).items():
        if probe.get("error"):
            out.append(_finding(
                "routes_unreadable", f"could not read the routes registered inside {name}: "
                f"{probe['error']}; check the container (docker logs {name}) and redeploy "
                f"({DEPLOY_CMD})"))
        elif probe.get("missing"):
            out.append(_finding(
                "missing_routes", f"{name} does not register {', '.join(probe['missing'])} "
                "(requests answer 404): make backend/app/main.py include the router that "
                "defines them (app.include_router(..., prefix=\"/api\")), commit it and redeploy "
                f"({DEPLOY_CMD})"))

    # Without an app dir the env files and credentials are the deploy's job, not drift.
    env_files = (facts.get("env_files") or {}) if deployed else {}
    for fname, info in sorted(env_files.items()):
        if not info.get("exists"):
            out.append(_finding(
                "env_file_missing", f"{app_root}/shared/{fname} is missing; the next compose up "
                f"fails without it: redeploy ({DEPLOY_CMD}) to write it", WARNING))
    creds = facts.get("credentials") or {}
    if env_files and not creds.get("alias"):
        key, secret = CREDENTIAL_PAIRS[0]
        half = "; ".join(creds.get("partial") or [])
        out.append(_finding(
            "no_credentials", "no exchange credentials resolve from "
            f"{' + '.join('shared/' + f for f in env_files)}: need {key} and {secret} both "
            "non-empty (or a CRYPTO_COM_API_*/CRYPTOCOM_API_* pair)"
            + (f" ({half})" if half else "")
            + "; set them in deploy_env_aws (the vault) and redeploy "
            f"({DEPLOY_CMD}); until then the portfolio snapshot answers ok=false "
            '"Missing API credentials"'))
    elif creds.get("alias") and creds["alias"] != CREDENTIAL_PAIRS[0][0]:
        out.append(_finding(
            "credential_alias", f"credentials resolve only through the alias "
            f"{'/'.join(creds.get('pair') or [])}, not {'/'.join(CREDENTIAL_PAIRS[0])}; "
            f"redeploy ({DEPLOY_CMD}) to write them under the canonical names", WARNING))

    disk = facts.get("disk") or {}
    limit = facts.get("disk_warn_percent")
    if disk.get("used_percent") is not None and limit and disk["used_percent"] >= limit:
        out.append(_finding(
            "disk_low", f"the filesystem of {disk.get('path')} is {disk['used_percent']}% full "
            f"({disk.get('free_mb')} MiB free); free space without touching the images kept "
            "for rollback: docker builder prune -f (build cache), docker image prune -f "
            "(dangling images only), or keep fewer releases (-e deploy_keep_releases=N, at "
            "least 2)", WARNING))
    return out


def has_drift(found: list[dict]) -> bool:
    return any(f.get("severity") == DRIFT for f in found or [])


# --------------------------------------------------------------------------- words


def _deployed_words(record: dict | None) -> str:
    if not record:
        return "not in deploy.log"
    parts = []
    if record.get("finished") or record.get("started"):
        parts.append(f"deployed {record.get('finished') or record.get('started')}")
    operator = str(record.get("operator") or "").strip(" ,")
    if operator:
        parts.append(f"by {operator}")
    if record.get("result"):
        parts.append(f"result {record['result']}")
    return ", ".join(parts) or "in deploy.log"


def summary_lines(facts: dict, found: list[dict]) -> list[str]:
    """The plain-words answer, one line per question, findings last."""
    drift = [f for f in found if f["severity"] == DRIFT]
    warnings = [f for f in found if f["severity"] != DRIFT]
    lines = [f"{len(drift)} drift finding(s), {len(warnings)} warning(s)" if found
             else "no drift: the backend runs the active release with every expected route"]
    release = facts.get("active_release")
    if release:
        sha = facts.get("git_sha")
        sha_words = (f"git {sha} (from {facts.get('git_sha_source')})" if sha
                     else "git SHA unknown")
        lines.append(f"active release: {release}, {sha_words}; "
                     f"{_deployed_words(facts.get('deploy_record'))}")
    else:
        lines.append("active release: none")
    image = facts.get("release_image") or {}
    if image.get("ref"):
        lines.append(f"release image: {image['ref']} = {_short(image.get('id'))}"
                     if image.get("id") else f"release image: {image['ref']} is missing")
    containers = facts.get("containers") or []
    if facts.get("docker_error"):
        lines.append(f"backend container: unknown, docker failed ({facts['docker_error']})")
    elif not containers:
        lines.append(f"backend container: none for {facts.get('project_name')}/"
                     f"{facts.get('service')}")
    for c in containers:
        if not c.get("running"):
            lines.append(f"backend container: {c.get('name')} is {c.get('state')} "
                         f"(image {c.get('image')})")
            continue
        if image.get("id"):
            same = c.get("image_id") == image.get("id")
            verdict = ("the active release's image" if same
                       else "NOT the active release's image")
        else:
            verdict = "no release image to compare with"
        ports = ", ".join(str(p) for p in c.get("host_ports") or []) or "none"
        lines.append(f"backend container: {c.get('name')} running {c.get('image')} "
                     f"({_short(c.get('image_id'))}) = {verdict}; host ports {ports}")
    publishers = facts.get("port_publishers") or []
    lines.append(f"port {facts.get('port')}: "
                 + (f"published by {_names(publishers)}" if publishers else "not published"))
    proxy = facts.get("proxy") or {}
    if proxy.get("names"):
        lines.append(f"zero-downtime proxy: {', '.join(proxy['names'])} -> "
                     f"{proxy.get('upstream') or 'nothing'}")
    expected = facts.get("expected_routes") or []
    for name, probe in (facts.get("routes") or {}).items():
        if probe.get("error"):
            lines.append(f"routes in {name}: unreadable ({probe['error']})")
        elif probe.get("missing"):
            lines.append(f"routes in {name}: MISSING {', '.join(probe['missing'])} "
                         f"({len(expected) - len(probe['missing'])} of {len(expected)} expected "
                         f"present, {len(probe.get('registered') or [])} registered)")
        else:
            lines.append(f"routes in {name}: all {len(expected)} expected routes registered "
                         f"({len(probe.get('registered') or [])} in total)")
    for fname, info in sorted((facts.get("env_files") or {}).items()):
        if info.get("exists"):
            names = ", ".join(info.get("names") or []) or "no variables"
            empty = info.get("empty") or []
            lines.append(f"env names in shared/{fname}: {names}"
                         + (f" (empty: {', '.join(empty)})" if empty else ""))
        else:
            lines.append(f"env names in shared/{fname}: file missing")
    creds = facts.get("credentials") or {}
    if creds.get("alias"):
        lines.append(f"credentials: {'/'.join(creds['pair'])} resolves (alias {creds['alias']})")
    elif facts.get("env_files"):
        lines.append("credentials: none resolve"
                     + (f" ({'; '.join(creds['partial'])})" if creds.get("partial") else ""))
    disk = facts.get("disk") or {}
    if disk:
        lines.append(f"disk: {disk.get('used_percent')}% used, {disk.get('free_mb')} MiB free of "
                     f"{disk.get('total_mb')} MiB on the filesystem of {disk.get('path')}")
    for name, log in (facts.get("logs") or {}).items():
        lines.append(f"log of {name}: last {len(log)} line(s) in the report")
    records = facts.get("deploy_log") or []
    lines.append(f"deploy log: last {len(records)} record(s)"
                 + (": " + "; ".join(_record_words(r) for r in records) if records else ""))
    lines.extend(f"{f['severity'].upper()}: {f['message']}" for f in found)
    return lines


def _record_words(record: dict) -> str:
    if "raw" in record and len(record) == 1:
        return f"(unparsed) {str(record['raw'])[:80]}"
    operator = str(record.get("operator") or "").strip(" ,") or "?"
    return (f"{record.get('release', '?')} {record.get('result', '?')} "
            f"git {str(record.get('git_sha') or '?')[:12]} by {operator} "
            f"at {record.get('finished') or record.get('started') or '?'}")


def markdown(facts: dict, found: list[dict]) -> str:
    """The Markdown report body (no title: the caller adds host and time)."""
    md = ["## Verdict", ""]
    if found:
        md += [f"- **{f['severity'].upper()}** `{f['code']}`: {f['message']}" for f in found]
    else:
        md.append("No drift: the backend runs the active release with every expected route.")
    md += ["", "## Summary", ""]
    md += [f"- {line}" for line in summary_lines(facts, [])[1:]]
    md += ["", "## Backend containers", ""]
    containers = facts.get("containers") or []
    if containers:
        md += ["| name | state | image | image id | host ports |", "|---|---|---|---|---|"]
        md += [f"| {c.get('name')} | {c.get('state')} | {c.get('image')} | "
               f"{_short(c.get('image_id'))} | "
               f"{', '.join(str(p) for p in c.get('host_ports') or []) or '-'} |"
               for c in containers]
    else:
        md.append("None.")
    md += ["", "## Routes", ""]
    for name, probe in (facts.get("routes") or {}).items():
        md.append(f"### {name}")
        md.append("")
        if probe.get("error"):
            md.append(f"Unreadable: {probe['error']}")
        else:
            missing = set(probe.get("missing") or [])
            md += [f"- {'MISSING' if r in missing else 'ok'}: `{r}`"
                   for r in facts.get("expected_routes") or []]
            md.append(f"- registered in total: {len(probe.get('registered') or [])}")
        md.append("")
    if not facts.get("routes"):
        md += ["No running backend container to ask.", ""]
    md += ["## Logs", ""]
    for name, log in (facts.get("logs") or {}).items():
        md += [f"### {name} (last {len(log)} lines, env values masked)", "", "```"]
        md += [line.replace("```", "'''") for line in log]
        md += ["```", ""]
    if not facts.get("logs"):
        md += ["No backend container.", ""]
    md += ["## Deploy log (newest last)", "", "```"]
    md += [json.dumps(r, sort_keys=True) for r in facts.get("deploy_log") or []]
    md += ["```", ""]
    return "\n".join(md)
