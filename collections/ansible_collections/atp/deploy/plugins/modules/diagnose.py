#!/usr/bin/python
# Copyright: atp.deploy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Answer "what is actually running on the instance, and is it right?" in one call."""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: diagnose
short_description: Diagnose the deployed backend in one call (read-only)
description:
  - Collects, in one SSM session, everything needed to answer what runs on the instance and
    whether it matches the deploy; decides drift with the pure functions of
    C(ansible_collections.atp.deploy.plugins.module_utils.diagnosis_rules).
  - The active release (C(current)) and its git SHA (from C(deploy.log), else the release
    manifest, else the compose override); the backend container(s) of I(project_name) /
    I(service) and whether they run the image tagged C(<image_repo>:<release>); every
    container publishing host I(port).
  - The routes registered INSIDE each running backend container (C(docker exec <container>
    python3 -c ...) imports I(app_import) and walks C(app.routes), nested routers included),
    compared with I(expected_routes).
  - The variable NAMES set in each of I(env_files) of the active release (read through its
    links into its env set C(shared/env/<set>/); C(<app_root>/shared) without one; never values),
    and which exchange credential alias resolves (C(EXCHANGE_CUSTOM_API_KEY/SECRET), then
    C(CRYPTO_COM_API_*), then C(CRYPTOCOM_API_*); a pair counts only when both are non-empty).
  - The last I(log_lines) log lines of the backend container, with every env file value of
    4+ characters (and every value of a secret-looking name) replaced by C(***), and the
    container's own values of those names too (they differ when the env files changed after
    the container was created); the disk use of the app dir's filesystem; the last
    I(deploy_log_lines) records of C(deploy.log).
  - Never changes anything and never fails because of drift; C(changed) is always false.
    Drift is returned in C(findings) and C(drift); the caller decides to fail.
version_added: "1.1.0"
author: atp.deploy contributors (!UNKNOWN)
extends_documentation_fragment:
  - atp.deploy.backend.service
options:
  app_root:
    description: Directory holding C(releases/), C(shared/), C(current) and C(deploy.log).
    type: path
    default: /home/ubuntu/automated-trading-platform
  project_name:
    description: Docker Compose project name of the backend.
    type: str
    default: automated-trading-platform
  image_repo:
    description: Image repository; the active release's image is C(<image_repo>:<release_id>).
    type: str
    default: automated-trading-platform-backend-aws
  port:
    description: Host port the backend publishes; exactly one container should publish it.
    type: int
    default: 8002
  expected_routes:
    description:
      - Entries like C(GET /api/health) that must be registered in the running app.
      - The default is the app contract (docs/app-contract.md), the same list every route
        check of the deploy uses.
    type: list
    elements: str
    default:
      - GET /api/health
      - GET /api/dashboard/state
      - GET /api/portfolio/snapshot
      - GET /api/portfolio/latest
      - POST /api/portfolio/refresh
  app_import:
    description: The ASGI app as C(<module>:<attribute>), imported inside the container.
    type: str
    default: "app.main:app"
  env_files:
    description: Env files of the active release (its env set), in the order compose reads them.
    type: list
    elements: str
    default: [.env, .env.aws]
  log_lines:
    description: Log lines of each backend container to return (0 for none).
    type: int
    default: 20
  deploy_log_lines:
    description: Records of C(deploy.log) to return, newest last.
    type: int
    default: 5
  command_timeout:
    description: Upper bound in seconds for each docker command.
    type: int
    default: 30
  disk_warn_percent:
    description: Warn when the app dir's filesystem is this full (percent).
    type: int
    default: 90
notes:
  - Supports check mode (it never changes anything anyway).
  - Runs C(docker ps), C(docker inspect), C(docker image inspect), C(docker exec) (a read-only
    Python snippet) and C(docker logs) on the instance; needs root or the docker group.
  - Env values are read only to mask them and to tell empty from set; none is returned.
  - At most 3 backend containers are probed; every command is bounded by I(command_timeout).
"""

EXAMPLES = r"""
- name: Diagnose the backend (one SSM session)
  atp.deploy.diagnose:
    app_root: /home/ubuntu/automated-trading-platform
    expected_routes: [GET /api/health, GET /api/portfolio/snapshot]
  become: true
  register: diagnose_result

- name: Say what is wrong
  ansible.builtin.debug:
    msg: "{{ diagnose_result.summary }}"
"""

RETURN = r"""
drift:
  description: At least one finding of severity drift.
  returned: always
  type: bool
findings:
  description: What is wrong and what to do, one plain-words message each.
  returned: always
  type: list
  elements: dict
  contains:
    code:
      description: >-
        docker_unreachable, no_release, release_missing, release_image_missing, no_container,
        duplicate_backend, stale_image, port_conflict, port_foreign, routes_unreadable,
        missing_routes, no_credentials, env_file_missing, credential_alias or disk_low.
      type: str
    severity:
      description: drift or warning.
      type: str
    message:
      description: The finding and the fix, in plain words.
      type: str
summary:
  description: The answer in plain words, one line per question, findings last.
  returned: always
  type: list
  elements: str
markdown:
  description: The report body in Markdown (env values never appear in it).
  returned: always
  type: str
active_release:
  description: Release id C(current) points to, or null.
  returned: always
  type: str
git_sha:
  description: Git SHA of the active release, or null when unknown.
  returned: always
  type: str
git_sha_source:
  description: Where git_sha came from (deploy.log, release manifest, compose override).
  returned: always
  type: str
deploy_record:
  description: The deploy.log record of the active release (masked), or null.
  returned: always
  type: dict
releases:
  description: Release ids under C(releases/) (complete ones).
  returned: always
  type: list
  elements: str
release_image:
  description: The image tagged for the active release.
  returned: always
  type: dict
  sample: {ref: "automated-trading-platform-backend-aws:20261124T101500Z-0123456789ab",
           id: "sha256:0123"}
containers:
  description: Backend containers of project_name/service (running or not).
  returned: always
  type: list
  elements: dict
port_publishers:
  description: Running containers publishing host I(port) ({name, image, id}).
  returned: always
  type: list
  elements: dict
routes:
  description: >-
    Per running backend container: C(registered) (METHOD /path), C(missing) (of
    expected_routes) and C(error) (the probe could not read them).
  returned: always
  type: dict
missing_routes:
  description: Expected routes missing in at least one probed container.
  returned: always
  type: list
  elements: str
env_files:
  description: Per env file, C(exists), C(names) (set, non-empty) and C(empty) (set, empty).
  returned: always
  type: dict
credential_alias:
  description: Key name of the credential pair that resolves, or null.
  returned: always
  type: str
credential_pair:
  description: Both names of the resolving pair, or null.
  returned: always
  type: list
  elements: str
logs:
  description: Per backend container, its last log lines with env values masked.
  returned: always
  type: dict
disk:
  description: Filesystem of app_root (path, total_mb, used_mb, free_mb, used_percent).
  returned: always
  type: dict
deploy_log:
  description: The last deploy_log_lines records of deploy.log (masked), newest last.
  returned: always
  type: list
  elements: dict
"""

import json  # noqa: E402
import os  # noqa: E402

from ansible.module_utils.basic import AnsibleModule  # noqa: E402
from ansible_collections.atp.deploy.plugins.module_utils import (  # noqa: E402
    diagnosis_env,
    diagnosis_report,
    diagnosis_routes,
    diagnosis_rules,
    docker_cmd,
    docker_read,
    fsutil,
    masking,
    proc,
    release_model,
    routes,
    zero_downtime,
)
from ansible_collections.atp.deploy.plugins.module_utils.release_manifest import (  # noqa: E402
    MANIFEST_NAME,
)

MAX_PROBED = 3
MAX_READ = 1024 * 1024  # bytes of deploy.log / an env file read at most


def read_tail(path: str, limit: int = MAX_READ) -> str | None:
    """The last `limit` bytes of a file as text, None when it cannot be read."""
    try:
        with open(path, "rb") as handle:
            handle.seek(0, os.SEEK_END)
            size = handle.tell()
            handle.seek(max(0, size - limit))
            data = handle.read(limit)
    except OSError:
        return None
    text = data.decode("utf-8", "replace")
    if size > limit:
        text = text.split("\n", 1)[-1]
    return text


def read_json(path: str) -> dict | None:
    text = read_tail(path)
    if text is None:
        return None
    # The release override is JSON but for compose's `!reset []` (zero-downtime ports).
    text = text.replace("!reset []", "[]")
    try:
        value = json.loads(text)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


def deploy_log_records(text: str | None) -> list[dict]:
    """Every non-empty line: its JSON object, or {raw: line} when it is not one."""
    records = []
    for line in (text or "").splitlines():
        line = line.strip()
        if not line:
            continue
        parsed = release_model.parse_deploy_log(line)
        records.append(parsed[0] if parsed else {"raw": line[:500]})
    return records


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


def disk_usage(path: str) -> dict:
    where = fsutil.nearest_existing_dir(path)
    st = os.statvfs(where)
    total = st.f_blocks * st.f_frsize
    free = st.f_bavail * st.f_frsize
    used = (st.f_blocks - st.f_bfree) * st.f_frsize
    usable = used + free
    return {
        "path": where,
        "total_mb": int(total // (1024 * 1024)),
        "used_mb": int(used // (1024 * 1024)),
        "free_mb": int(free // (1024 * 1024)),
        "used_percent": round(100.0 * used / usable) if usable else 0,
    }


class Docker:
    """Read-only docker calls, each bounded; failures become text, never exceptions."""

    def __init__(self, docker: str, timeout: int):
        self.docker = docker
        self.timeout = timeout

    def run(self, argv: list[str], merge: bool = False) -> tuple[int, str, str]:
        return proc.run(argv, timeout=self.timeout, merge_stderr=merge)

    def containers(self) -> tuple[list[dict], str | None]:
        try:
            return docker_read.containers(self.docker, self.timeout, retry_vanished=True), None
        except docker_read.DockerReadError as exc:
            return [], str(exc)

    def image_id(self, ref: str) -> str | None:
        return docker_read.image_id(self.docker, ref, self.timeout)

    def routes(self, container: str, app_import: str) -> dict:
        module_name, _sep, attr = app_import.partition(":")
        argv = [self.docker, "exec", container, "python3", "-c", diagnosis_routes.ROUTE_PROBE,
                module_name, attr or "app"]
        rc, out, err = self.run(argv)
        result = diagnosis_routes.parse_route_probe(out)
        if "error" in result and rc != 0:
            result["error"] = (f"`docker exec {container} python3` failed (exit {rc}): "
                               f"{docker_cmd.first_line(err or out)}")
        return result

    def env_pairs(self, container: str) -> list[tuple[str, str]]:
        """The container's environment as (name, value); only ever used for masking."""
        rc, out, _err = self.run([self.docker, "inspect", "--format", "{{json .Config.Env}}",
                                  container])
        try:
            items = json.loads(out) if rc == 0 else []
        except ValueError:
            items = []
        pairs = []
        for item in items if isinstance(items, list) else []:
            name, _sep, value = str(item).partition("=")
            pairs.append((name, value))
        return pairs

    def logs(self, container: str, lines: int) -> list[str]:
        rc, out, err = self.run([self.docker, "logs", "--tail", str(lines), container],
                                merge=True)
        if rc != 0:
            return [f"(docker logs failed, exit {rc}: {docker_cmd.first_line(err or out)})"]
        return (out or "").rstrip("\n").splitlines()[-lines:]


ARGUMENT_SPEC = {
    "app_root": {"type": "path", "default": "/home/ubuntu/automated-trading-platform"},
    "project_name": {"type": "str", "default": "automated-trading-platform"},
    "service": {"type": "str", "default": "backend-aws"},
    "image_repo": {"type": "str", "default": "automated-trading-platform-backend-aws"},
    "port": {"type": "int", "default": 8002},
    "expected_routes": {"type": "list", "elements": "str",
                        "default": list(routes.EXPECTED_ROUTES)},
    "app_import": {"type": "str", "default": "app.main:app"},
    "env_files": {"type": "list", "elements": "str", "default": [".env", ".env.aws"]},
    "log_lines": {"type": "int", "default": 20},
    "deploy_log_lines": {"type": "int", "default": 5},
    "command_timeout": {"type": "int", "default": 30},
    "disk_warn_percent": {"type": "int", "default": 90},
}


def check_params(module: AnsibleModule) -> list[str]:
    p = module.params
    try:
        expected = routes.normalize_all(p["expected_routes"])
    except routes.RouteError as exc:
        module.fail_json(msg=f"expected_routes: {exc}")
    for name in p["env_files"] or []:
        if not fsutil.is_plain_name(name):
            module.fail_json(msg=f"env_files must be plain file names like .env, got {name!r}; "
                             "fix env_files")
    module_name, _sep, attr = p["app_import"].partition(":")
    if not module_name or not all(part.isidentifier() for part in module_name.split(".")) \
            or (attr and not attr.isidentifier()):
        module.fail_json(msg=f"app_import must look like app.main:app, got {p['app_import']!r}")
    for key in ("log_lines", "deploy_log_lines"):
        if not 0 <= p[key] <= 1000:
            module.fail_json(msg=f"{key} must be 0-1000, got {p[key]}")
    if not 1 <= p["command_timeout"] <= 600:
        module.fail_json(msg=f"command_timeout must be 1-600 seconds, got {p['command_timeout']}")
    if not 1 <= p["port"] <= 65535:
        module.fail_json(msg=f"port must be 1-65535, got {p['port']}")
    return expected


def read_env_files(shared: str, names: list[str]) -> tuple[dict, list, list]:
    """-> (per-file {exists, names, empty}, parsed pairs per file in order, all pairs)."""
    info, parsed, every = {}, [], []
    for name in names:
        text = read_tail(os.path.join(shared, name))
        pairs = diagnosis_env.parse_env_text(text) if text is not None else []
        parsed.append(pairs)
        every.extend(pairs)
        nonempty = {n for n, v in pairs if str(v).strip()}
        info[name] = {"exists": text is not None,
                      "names": sorted(nonempty),
                      "empty": sorted({n for n, _v in pairs} - nonempty)}
    return info, parsed, every


def main() -> None:
    module = AnsibleModule(argument_spec=ARGUMENT_SPEC, supports_check_mode=True)
    p = module.params
    expected = check_params(module)
    app_root = p["app_root"]

    # Env files first: their values are what must be masked everywhere else. They are the
    # active release's (its links lead into its env set), shared/ without an active release.
    release = release_model.current(app_root)
    env_root = (release_model.release_path(app_root, release) if release
                else release_model.shared_path(app_root))
    env_info, parsed, pairs = read_env_files(env_root, p["env_files"])
    secrets = diagnosis_env.secrets_to_mask(pairs)
    # Everything returned is masked with every env value on the instance (any release's);
    # protect also hands all of them (secrets included) to Ansible's no_log_values.
    masking.protect(module, masking.for_release(app_root, env_root, pairs).add(secrets))
    creds = diagnosis_env.resolve_alias(diagnosis_env.merged_set_names(parsed))

    releases = sorted(r["id"] for r in release_model.read_releases(app_root)
                      if not r["partial"])
    release_dir = release_model.release_path(app_root, release) if release else None
    manifest = read_json(os.path.join(release_dir, MANIFEST_NAME)) if release_dir else None
    override = (read_json(os.path.join(release_dir, docker_cmd.OVERRIDE_NAME))
                if release_dir else None)
    log_records = deploy_log_records(read_tail(release_model.deploy_log_path(app_root)))
    git_sha, sha_source, record = git_sha_for(
        release, [r for r in log_records if "raw" not in r], manifest, override, p["service"])

    docker_bin = module.get_bin_path("docker")
    docker_error = None
    containers, image_id = [], None
    ref = release_model.image_ref(p["image_repo"], release) if release else None
    dk = Docker(docker_bin, p["command_timeout"]) if docker_bin else None
    if dk is None:
        docker_error = "docker CLI not found in PATH"
    else:
        containers, docker_error = dk.containers()
        if ref and not docker_error:
            image_id = dk.image_id(ref)
    backend = docker_cmd.service_containers(containers, p["project_name"], p["service"])
    publishers = docker_cmd.publishers(containers, p["port"])
    proxies = docker_cmd.service_containers(containers, p["project_name"],
                                            zero_downtime.proxy_name(p["service"]))
    proxy = {"ids": [c["id"] for c in proxies if c["running"]],
             "names": [c["name"] for c in proxies if c["running"]],
             "upstream": zero_downtime.read_upstream(os.path.join(
                 zero_downtime.proxy_dir(app_root), zero_downtime.UPSTREAM_NAME))}

    found_routes, logs, missing_any = {}, {}, []
    running = [c for c in backend if c["running"]]
    for c in running[:MAX_PROBED]:
        probe = dk.routes(c["id"], p["app_import"])
        if "error" in probe:
            found_routes[c["name"]] = {
                "error": diagnosis_env.mask_text(probe["error"], secrets)[:500],
                "registered": [], "missing": []}
            continue
        found_routes[c["name"]] = compared = diagnosis_routes.compare(expected,
                                                                      probe.get("routes"))
        missing_any += [m for m in compared["missing"] if m not in missing_any]
    if dk is not None and p["log_lines"]:
        env_names = {name for name, _value in pairs}
        for c in (running or backend[-1:])[:MAX_PROBED]:
            # The container may still hold values the env files no longer have (changed
            # since it was created): mask its values of those names (and secret-like ones).
            mine = [(n, v) for n, v in dk.env_pairs(c["id"])
                    if n in env_names or diagnosis_env.SECRET_NAME_RE.search(n)]
            masks = sorted(set(secrets) | set(diagnosis_env.secrets_to_mask(mine)),
                           key=lambda v: (-len(v), v))
            logs[c["name"]] = [diagnosis_env.mask_text(line, masks)
                               for line in dk.logs(c["id"], p["log_lines"])]

    facts = {
        "app_root": app_root,
        "app_root_exists": os.path.isdir(app_root),
        "project_name": p["project_name"],
        "service": p["service"],
        "port": p["port"],
        "active_release": release,
        "release_dir_ok": bool(release_dir and os.path.isdir(release_dir)
                               and os.path.isfile(os.path.join(release_dir, MANIFEST_NAME))),
        "releases": releases,
        "git_sha": diagnosis_env.mask_text(git_sha, secrets) if git_sha else None,
        "git_sha_source": sha_source,
        "deploy_record": diagnosis_env.mask_data(record, secrets) if record else None,
        "release_image": {"ref": ref, "id": image_id},
        "docker_error": (diagnosis_env.mask_text(docker_error, secrets) if docker_error
                         else None),
        "containers": [{k: c[k] for k in ("id", "name", "image", "image_id", "state",
                                          "running", "host_ports")} for c in backend],
        "port_publishers": publishers,
        "proxy": proxy,
        "expected_routes": expected,
        "routes": found_routes,
        "env_files": env_info,
        "credentials": creds,
        "disk": disk_usage(app_root),
        "disk_warn_percent": p["disk_warn_percent"],
        "logs": logs,
        "deploy_log": diagnosis_env.mask_data(log_records[-p["deploy_log_lines"]:], secrets)
        if p["deploy_log_lines"] else [],
    }
    found = diagnosis_rules.findings(facts)
    module.exit_json(
        changed=False,
        drift=diagnosis_rules.has_drift(found),
        findings=found,
        summary=diagnosis_report.summary_lines(facts, found),
        markdown=diagnosis_report.markdown(facts, found),
        active_release=release,
        git_sha=facts["git_sha"],
        git_sha_source=sha_source,
        deploy_record=facts["deploy_record"],
        releases=releases,
        release_image=facts["release_image"],
        containers=facts["containers"],
        port_publishers=publishers,
        proxy=proxy,
        routes=found_routes,
        missing_routes=missing_any,
        expected_routes=expected,
        env_files=env_info,
        credential_alias=creds["alias"],
        credential_pair=creds["pair"],
        credential_problems=creds["partial"],
        logs=logs,
        disk=facts["disk"],
        deploy_log=facts["deploy_log"],
    )


if __name__ == "__main__":
    main()
