# Copyright: atp.deploy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""diagnose: drift rules -- what the collected facts mean and what to do (stdlib only).

Each rule is one small function ``rule_<code>(facts) -> list[Finding]`` (empty when it does not
apply; more than one for the per-container and per-file rules), registered once in
:data:`RULES`, whose order is the order of the findings. A finding is a dict
``{code, severity, message}``: severity ``drift`` (the play fails) or ``warning``; the message is
one plain-words line saying what is wrong and what to do. The facts are the dict the diagnose
module collects (every key optional here).
"""

from __future__ import annotations

from collections.abc import Callable

from ansible_collections.atp.deploy.plugins.module_utils.credentials import CREDENTIAL_PAIRS
from ansible_collections.atp.deploy.plugins.module_utils.diagnosis_env import alias_patterns

DRIFT = "drift"
WARNING = "warning"
DEPLOY_CMD = "ansible-playbook deploy.yml"

Finding = dict
Rule = Callable[[dict], "list[Finding]"]


def finding(code: str, message: str, severity: str = DRIFT) -> Finding:
    return {"code": code, "severity": severity, "message": message}


def short_id(image_id: str | None) -> str:
    """'sha256:0123456789abcdef...' -> '0123456789ab' ('none' without one)."""
    value = str(image_id or "")
    return value.split(":", 1)[-1][:12] if value else "none"


def names_of(containers: list[dict], with_image: bool = False) -> str:
    if with_image:
        return ", ".join(f"{c.get('name')} ({c.get('image') or short_id(c.get('image_id'))})"
                         for c in containers)
    return ", ".join(str(c.get("name")) for c in containers)


def _running(facts: dict) -> list[dict]:
    return [c for c in facts.get("containers") or [] if c.get("running")]


def _image(facts: dict) -> dict:
    return facts.get("release_image") or {}


def _env_files(facts: dict) -> dict:
    # Without an app dir the env files and credentials are the deploy's job, not drift.
    return (facts.get("env_files") or {}) if facts.get("app_root_exists") else {}


# --------------------------------------------------------------------------- the rules


def rule_docker_unreachable(facts: dict) -> list[Finding]:
    error = facts.get("docker_error")
    if not error:
        return []
    return [finding("docker_unreachable",
                    f"docker is not usable on the instance ({error}); start it "
                    "(sudo systemctl start docker) and run the diagnose again")]


def rule_no_release(facts: dict) -> list[Finding]:
    app_root = facts.get("app_root")
    if not facts.get("app_root_exists"):
        return [finding("no_release", f"nothing is deployed: {app_root} does not exist; deploy "
                                      f"the backend ({DEPLOY_CMD})")]
    if not facts.get("active_release"):
        return [finding("no_release", f"no active release: {app_root}/current is missing or does "
                                      "not point at releases/<release_id>; deploy "
                                      f"({DEPLOY_CMD}) or point current at a release")]
    return []


def rule_release_missing(facts: dict) -> list[Finding]:
    release = facts.get("active_release")
    if not facts.get("app_root_exists") or not release or facts.get("release_dir_ok"):
        return []
    return [finding("release_missing",
                    f"current points at releases/{release}, but that directory or its "
                    f".release-manifest.json is missing; redeploy ({DEPLOY_CMD}) or roll back "
                    "to a complete release")]


def rule_release_image_missing(facts: dict) -> list[Finding]:
    image = _image(facts)
    if not facts.get("active_release") or facts.get("docker_error") or image.get("id"):
        return []
    return [finding("release_image_missing",
                    f"the image of the active release, {image.get('ref')}, does not exist; "
                    f"rebuild it by redeploying ({DEPLOY_CMD})")]


def rule_no_container(facts: dict) -> list[Finding]:
    if not facts.get("app_root_exists") or facts.get("docker_error") or _running(facts):
        return []
    project, service = facts.get("project_name"), facts.get("service")
    seen = ", ".join(f"{c.get('name')} ({c.get('state')})" for c in facts.get("containers") or [])
    return [finding(
        "no_container", f"no {project}/{service} container is running"
        + (f" (found {seen})" if seen else "")
        + f"; start it from the active release: {DEPLOY_CMD} (or docker compose -p {project} "
        f"--profile aws up -d {service} in {facts.get('app_root')}/current)")]


def rule_duplicate_backend(facts: dict) -> list[Finding]:
    running = _running(facts)
    if len(running) <= 1:
        return []
    return [finding(
        "duplicate_backend", f"{len(running)} containers run as {facts.get('project_name')}/"
        f"{facts.get('service')}: {names_of(running, True)}; only one should: remove the stray "
        f"one(s) (docker rm -f <name>) and keep the one running "
        f"{_image(facts).get('ref') or 'the release'}")]


def rule_stale_image(facts: dict) -> list[Finding]:
    image = _image(facts)
    if not image.get("id"):
        return []
    return [finding(
        "stale_image", f"container {c.get('name')} runs image {c.get('image') or '?'} "
        f"({short_id(c.get('image_id'))}), not {image.get('ref')} ({short_id(image.get('id'))}) "
        f"of the active release {facts.get('active_release')}; recreate it from the release: "
        f"{DEPLOY_CMD} (docker compose up -d, never restart)")
        for c in _running(facts) if c.get("image_id") != image.get("id")]


def rule_proxy_upstream(facts: dict) -> list[Finding]:
    proxy = facts.get("proxy") or {}
    upstream = proxy.get("upstream") or ""
    running = {c.get("name") for c in _running(facts)}
    if not proxy.get("ids") or upstream.rpartition(":")[0] in running:
        return []
    port = facts.get("port")
    return [finding(
        "proxy_upstream", f"the proxy {names_of([{'name': n} for n in proxy.get('names') or []])}"
        f" on port {port} forwards to {upstream or 'nothing'}, which is not a running "
        f"{facts.get('project_name')}/{facts.get('service')} container: requests to port "
        f"{port} fail; redeploy ({DEPLOY_CMD}) or roll back (playbooks/rollback.yml)")]


def rule_port_conflict(facts: dict) -> list[Finding]:
    publishers = facts.get("port_publishers") or []
    if len(publishers) <= 1:
        return []
    return [finding(
        "port_conflict", f"{len(publishers)} containers publish host port {facts.get('port')}: "
        f"{names_of(publishers, True)}; only the {facts.get('service')} container should: stop "
        "the others (docker stop <name>)")]


def rule_port_foreign(facts: dict) -> list[Finding]:
    publishers = facts.get("port_publishers") or []
    backend_ids = ({c.get("id") for c in facts.get("containers") or []}
                   | set((facts.get("proxy") or {}).get("ids") or []))
    if len(publishers) != 1 or publishers[0].get("id") in backend_ids:
        return []
    other = publishers[0]
    return [finding(
        "port_foreign", f"host port {facts.get('port')} is published by {other.get('name')} "
        f"({other.get('image')}), which is not the {facts.get('project_name')}/"
        f"{facts.get('service')} container; stop it (docker stop {other.get('name')}) and "
        f"redeploy ({DEPLOY_CMD})")]


def rule_routes_unreadable(facts: dict) -> list[Finding]:
    return [finding(
        "routes_unreadable", f"could not read the routes registered inside {name}: "
        f"{probe['error']}; check the container (docker logs {name}) and redeploy "
        f"({DEPLOY_CMD})")
        for name, probe in (facts.get("routes") or {}).items() if probe.get("error")]


def rule_missing_routes(facts: dict) -> list[Finding]:
    return [finding(
        "missing_routes", f"{name} does not register {', '.join(probe['missing'])} "
        "(requests answer 404): make backend/app/main.py include the router that defines them "
        "(app.include_router(..., prefix=\"/api\")), commit it and redeploy "
        f"({DEPLOY_CMD})")
        for name, probe in (facts.get("routes") or {}).items()
        if not probe.get("error") and probe.get("missing")]


def rule_env_file_missing(facts: dict) -> list[Finding]:
    return [finding(
        "env_file_missing", f"{facts.get('app_root')}/shared/{fname} is missing; the next "
        f"compose up fails without it: redeploy ({DEPLOY_CMD}) to write it", WARNING)
        for fname, info in sorted(_env_files(facts).items()) if not info.get("exists")]


def rule_no_credentials(facts: dict) -> list[Finding]:
    env_files = _env_files(facts)
    creds = facts.get("credentials") or {}
    if not env_files or creds.get("alias"):
        return []
    key, secret = CREDENTIAL_PAIRS[0]
    half = "; ".join(creds.get("partial") or [])
    return [finding(
        "no_credentials", "no exchange credentials resolve from "
        f"{' + '.join('shared/' + f for f in env_files)}: need {key} and {secret} both "
        f"non-empty (or a {alias_patterns()} pair)"
        + (f" ({half})" if half else "")
        + f"; set them in deploy_env_aws (the vault) and redeploy ({DEPLOY_CMD}); until then "
        'the portfolio snapshot answers ok=false "Missing API credentials"')]


def rule_credential_alias(facts: dict) -> list[Finding]:
    creds = facts.get("credentials") or {}
    if not creds.get("alias") or creds["alias"] == CREDENTIAL_PAIRS[0][0]:
        return []
    return [finding(
        "credential_alias", f"credentials resolve only through the alias "
        f"{'/'.join(creds.get('pair') or [])}, not {'/'.join(CREDENTIAL_PAIRS[0])}; "
        f"redeploy ({DEPLOY_CMD}) to write them under the canonical names", WARNING)]


def rule_disk_low(facts: dict) -> list[Finding]:
    disk = facts.get("disk") or {}
    limit = facts.get("disk_warn_percent")
    if disk.get("used_percent") is None or not limit or disk["used_percent"] < limit:
        return []
    return [finding(
        "disk_low", f"the filesystem of {disk.get('path')} is {disk['used_percent']}% full "
        f"({disk.get('free_mb')} MiB free); free space without touching the images kept "
        "for rollback: docker builder prune -f (build cache), docker image prune -f "
        "(dangling images only), or keep fewer releases (-e deploy_keep_releases=N, at "
        "least 2)", WARNING)]


# The order findings are reported in (what to fix first comes first).
RULES: tuple[Rule, ...] = (
    rule_docker_unreachable,
    rule_no_release,
    rule_release_missing,
    rule_release_image_missing,
    rule_no_container,
    rule_duplicate_backend,
    rule_stale_image,
    rule_proxy_upstream,
    rule_port_conflict,
    rule_port_foreign,
    rule_routes_unreadable,
    rule_missing_routes,
    rule_env_file_missing,
    rule_no_credentials,
    rule_credential_alias,
    rule_disk_low,
)


def findings(facts: dict) -> list[Finding]:
    """Collected facts -> every finding of every rule, in RULES order."""
    return [found for rule in RULES for found in rule(facts)]


def has_drift(found: list[Finding]) -> bool:
    return any(f.get("severity") == DRIFT for f in found or [])
