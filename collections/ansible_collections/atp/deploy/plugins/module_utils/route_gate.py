# Copyright: atp.deploy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The route gate: import the app inside the release image and list its routes (pure, stdlib).

compose_release runs PROGRAM once in a one-off container of the new image (before `current`
is switched and before the running container is touched); this file parses what it printed
and compares it with the routes the operator expects. Nothing here runs docker.
"""

from __future__ import annotations

import json
import re

from ansible_collections.atp.deploy.plugins.module_utils import docker_cmd, routes

MARK = "ATP_ROUTE_GATE_RESULT="
TRACEBACK_LINES = 10
OUTPUT_LINES = 10
ONEOFF_SUFFIX = "route-gate"

_IMPORT_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*"
                        r":[A-Za-z_][A-Za-z0-9_]*$")
_URL_PASSWORD_RE = re.compile(r"(://[^/\s:@]*:)[^@\s/]+@")
_NAME_BAD_RE = re.compile(r"[^a-zA-Z0-9_.-]+")

# Runs INSIDE the release image: `python3 -c PROGRAM <module> <attr>`. Imports the app the way
# gunicorn/uvicorn do (from the image's working dir), walks app.routes (routes.WALK_PROGRAM,
# the walk diagnose runs too), and prints one line MARK + JSON after everything the app printed:
#   {"routes": [[path, [methods]], ...]}   or   {"error": "...", "traceback": [last lines]}
# Values of secret-looking environment variables and URL passwords are masked in the error
# text. os._exit ends the process at once (the app's threads or atexit hooks cannot hold it).
# Python 3.6+ syntax: the image's Python is not ours to choose.
PROGRAM = routes.WALK_PROGRAM + r'''
import json, os, re, sys, traceback
MARK = "ATP_ROUTE_GATE_RESULT="
SECRET = re.compile(r"KEY|SECRET|TOKEN|PASSW|PWD|CREDENTIAL|AUTH|PRIVATE", re.I)
def mask(text):
    text = re.sub(r"(://[^/\s:@]*:)[^@\s/]+@", r"\1***@", text)
    for name, value in os.environ.items():
        if value and len(value) >= 4 and SECRET.search(name) and name not in ("PWD", "OLDPWD"):
            text = text.replace(value, "***")
    return text
def tb_lines(exc):
    # The app's frames only (no importlib, no <frozen ...>, no caret-only lines), then the error.
    frames = [f for f in traceback.extract_tb(exc.__traceback__)
              if not str(f.filename).startswith("<") and "importlib" not in str(f.filename)]
    text = "".join(traceback.format_list(frames)
                   + traceback.format_exception_only(type(exc), exc))
    lines = [l for l in text.rstrip().splitlines() if l.strip(" ^~")]
    return [mask(l) for l in lines[-10:]]
def leaf(found, prefix, path, methods, route):
    if path:
        found.append([prefix + path, sorted(str(m).upper() for m in (methods or ()))])
def gate(module_name, attr):
    here = os.getcwd()
    if here not in sys.path:
        sys.path.insert(0, here)
    if os.path.isdir("/app") and "/app" not in sys.path:
        sys.path.append("/app")
    try:
        import importlib
        app = getattr(importlib.import_module(module_name), attr)
    except BaseException as exc:
        return {"error": mask("importing %s:%s failed: %s: %s"
                              % (module_name, attr, type(exc).__name__, str(exc)[:300])),
                "traceback": tb_lines(exc)}
    if isinstance(app, type) or not hasattr(app, "routes"):
        return {"error": "%s:%s is a %s, not an ASGI app with routes"
                % (module_name, attr, type(app).__name__), "traceback": []}
    found = []
    walk_routes(getattr(app, "routes", None), "", 0, found, set(), leaf)
    return {"routes": found}
try:
    result = gate(sys.argv[1], sys.argv[2])
except BaseException as exc:
    result = {"error": mask("route gate failed: %s: %s" % (type(exc).__name__, str(exc)[:300])),
              "traceback": tb_lines(exc)}
sys.stderr.flush()
sys.stdout.write("\n" + MARK + json.dumps(result) + "\n")
sys.stdout.flush()
os._exit(0)
'''


class GateConfigError(ValueError):
    """A bad gate input (app_import, expected_routes); str() is the one-line problem."""


def parse_app_import(value: str) -> tuple[str, str]:
    """'app.main:app' -> ('app.main', 'app'); raises GateConfigError."""
    value = str(value or "").strip()
    if not _IMPORT_RE.match(value):
        raise GateConfigError(
            f"app_import must look like 'package.module:attribute' (e.g. app.main:app), got "
            f"{value!r}; set deploy_app_import to what gunicorn/uvicorn are given")
    module, _sep, attr = value.partition(":")
    return module, attr


def oneoff_name(project: str, service: str, token: str) -> str:
    """A container name no other container has: <project>-<service>-route-gate-<token>."""
    base = _NAME_BAD_RE.sub("-", f"{project}-{service}-{ONEOFF_SUFFIX}-{token}").strip("-._")
    return base or f"{ONEOFF_SUFFIX}-{token}"


def mask_urls(text: str) -> str:
    """Passwords in URLs (scheme://user:password@host) -> ***."""
    return _URL_PASSWORD_RE.sub(r"\1***@", text or "")


def parse_output(stdout: str) -> dict | None:
    """What PROGRAM printed -> {routes: [[path, [methods]]]} | {error, traceback}; None when
    there is no result line (the program never ran to its end)."""
    for line in reversed((stdout or "").splitlines()):
        if not line.startswith(MARK):
            continue
        try:
            data = json.loads(line[len(MARK):])
        except ValueError:
            return None
        if isinstance(data, dict) and isinstance(data.get("routes"), list):
            return {"routes": data["routes"]}
        if isinstance(data, dict) and data.get("error"):
            tb = data.get("traceback")
            return {"error": str(data["error"]),
                    "traceback": [str(x) for x in tb] if isinstance(tb, list) else []}
        return None
    return None


def route_keys(found: list) -> list[str]:
    """PROGRAM's ``[[path, [methods]]]`` -> sorted unique 'METHOD /path' (routes.keys)."""
    return routes.keys(
        (item[0], item[1] if len(item) > 1 and isinstance(item[1], list) else [])
        for item in found or [] if isinstance(item, (list, tuple)) and item)


def output_tail(text: str, count: int = OUTPUT_LINES) -> list[str]:
    """What the one-off run printed worth reading, error lines first (docker_cmd.error_excerpt),
    at most `count` lines, URL passwords masked."""
    lines = [line for line in (text or "").splitlines() if not line.startswith(MARK)]
    if count <= 0:
        return []
    return [mask_urls(line) for line in docker_cmd.error_excerpt("\n".join(lines), count)]


def evaluate(rc: int, stdout: str, expected: list[str], timed_out: bool = False) -> dict:
    """Decide the gate from the run's exit code and output.

    Returns {ok, verdict, routes (count), registered (keys), missing, detail (lines)} where
    verdict is one of: passed, missing_routes, import_failed, timeout, no_result.
    """
    out = {"ok": False, "routes": 0, "registered": [], "missing": [], "detail": []}
    if timed_out:
        return {**out, "verdict": "timeout", "detail": output_tail(stdout)}
    parsed = parse_output(stdout)
    if parsed is None:
        return {**out, "verdict": "no_result", "detail": output_tail(stdout)}
    if "error" in parsed:
        detail = parsed["traceback"] or [parsed["error"]]
        return {**out, "verdict": "import_failed", "error": parsed["error"],
                "detail": detail[-TRACEBACK_LINES:]}
    registered = route_keys(parsed["routes"])
    missing = routes.missing(expected, registered)
    verdict = "missing_routes" if missing else "passed"
    return {**out, "ok": not missing, "verdict": verdict, "routes": len(registered),
            "registered": registered, "missing": missing}


def failure_message(verdict: dict, release_id: str, app_import: str, untouched: str,
                    timeout: int = 0, oneoff: str = "", rc: int | None = None,
                    bound: str = "") -> str:
    """The module's failure text for a failed gate. `untouched` is the sentence saying what was
    left as it was (e.g. 'the running container was not touched, current still points at X')."""
    kind = verdict["verdict"]
    what = f"route gate for release {release_id}"
    if kind == "missing_routes":
        missing = verdict["missing"]
        return (f"{what}: {app_import} does not register {len(missing)} expected route(s): "
                f"{', '.join(missing)} ({verdict['routes']} routes registered); {untouched}; "
                "include the router(s) in the app (app.include_router) or correct "
                "deploy_expected_routes, then re-run")
    if kind == "import_failed":
        return "\n".join([f"{what}: importing {app_import} inside the new image failed; "
                          f"{untouched}; fix the app and re-run. Last traceback lines:",
                          *verdict["detail"]])
    if kind == "timeout":
        head = (f"{what}: importing {app_import} did not finish within {timeout}s ("
                + (bound or "raise deploy_route_gate_timeout if the import is that slow")
                + "); removed the one-off "
                f"container {oneoff}; {untouched}")
    else:
        head = (f"{what}: the one-off container printed no route list (exit {rc}); expected "
                f"the app to import and the gate program to print its routes; {untouched}; "
                "check the compose file and env files the service needs")
    if verdict["detail"]:
        return "\n".join([head + ". Last lines:", *verdict["detail"]])
    return head
