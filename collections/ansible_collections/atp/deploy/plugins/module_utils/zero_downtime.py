# Copyright: atp.deploy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Zero-downtime activation: a proxy holds the backend's port, releases start beside it.

The topology (Kamal-style, on one compose project):

- ``<service>-proxy`` (a compose service the release override adds) publishes the ports the
  app's compose file gives ``<service>`` and forwards every new connection to the container
  named in ``shared/proxy/upstream`` (tcp_proxy.py, run with the release image's python3);
- ``<service>`` publishes no host port (``ports: !reset []``); other services still reach it
  as ``<service>:<port>`` by name;
- a deploy starts the new release's container beside the running one (``--scale N+1
  --no-recreate``), checks it directly (health, smoke contract), then rewrites the upstream
  file (new connections go to it, open ones finish on the old one), waits for the old one to
  drain (bounded), and stops it.

Pure helpers (no docker, no I/O besides the small files of shared/proxy); the modules
compose_release (start and check the new container) and traffic_switch (switch, drain, stop)
run the commands.
"""

from __future__ import annotations

import os
import time
import urllib.error
import urllib.request
from collections.abc import Callable

from ansible_collections.atp.deploy.plugins.module_utils import tcp_proxy

PROXY_SUFFIX = "-proxy"
SCRIPT_NAME = "tcp_proxy.py"
UPSTREAM_NAME = "upstream"
STATUS_NAME = "status.json"
IN_CONTAINER_DIR = "/etc/atp-proxy"
# The proxy runs as nobody: it needs no privilege, only its own directory (status file).
PROXY_UID = 65534
PROXY_TAG = "proxy"
ROLE_LABEL = "atp.deploy.role"

TOPOLOGY_PROXY = "proxy"      # the proxy holds the port, the app publishes none
TOPOLOGY_DIRECT = "direct"    # the app container publishes the port itself (recreate era)
TOPOLOGY_NONE = "none"        # nothing runs yet


def proxy_name(service: str) -> str:
    return f"{service}{PROXY_SUFFIX}"


def proxy_dir(app_root: str) -> str:
    return os.path.join(app_root, "shared", "proxy")


def proxy_image(image_repo: str) -> str:
    """The proxy's image: the first zero-downtime release's image, tagged so no prune drops it
    (the proxy only needs its python3; no registry, no pull)."""
    return f"{image_repo}:{PROXY_TAG}"


def service_ports(config: dict, service: str) -> list[dict]:
    """The service's ports from ``docker compose config --format json`` (long syntax)."""
    svc = ((config or {}).get("services") or {}).get(service) or {}
    return [dict(p) for p in svc.get("ports") or [] if isinstance(p, dict)]


def service_networks(config: dict, service: str) -> list[str]:
    svc = ((config or {}).get("services") or {}).get(service) or {}
    nets = svc.get("networks")
    if isinstance(nets, dict) and nets:
        return sorted(nets)
    if isinstance(nets, list) and nets:
        return sorted(str(n) for n in nets)
    return ["default"]


def target_port(ports: list[dict], service: str, port: int) -> int:
    """The container port behind host port `port`; ValueError (one line) when the compose file
    does not publish `port` for the service."""
    targets = sorted({int(p["target"]) for p in ports
                      if str(p.get("published") or "") == str(port) and p.get("target")})
    if len(targets) != 1:
        seen = ", ".join(f"{p.get('published') or '-'}:{p.get('target')}" for p in ports) or "none"
        raise ValueError(f"zero-downtime needs {service} to publish host port {port} once in the "
                         f"compose file, found ports {seen}; fix deploy_port or set "
                         "deploy_zero_downtime=false")
    return targets[0]


def proxy_service(service: str, image: str, ports: list[dict], networks: list[str],
                  app_root: str, profile: str | None, target: int) -> dict:
    """{name, service}: the compose definition of the proxy (override_document's `proxy`)."""
    inside = IN_CONTAINER_DIR
    svc = {
        "image": image,
        "entrypoint": ["python3", f"{inside}/{SCRIPT_NAME}"],
        "command": ["--listen", f"0.0.0.0:{target}",
                    "--upstream-file", f"{inside}/{UPSTREAM_NAME}",
                    "--status-file", f"{inside}/{STATUS_NAME}"],
        "ports": [dict(p) for p in ports],
        "networks": list(networks),
        "volumes": [{"type": "bind", "source": proxy_dir(app_root), "target": inside}],
        "user": f"{PROXY_UID}:{PROXY_UID}",
        "working_dir": inside,
        "restart": "always",
        "stop_grace_period": "15s",
        "healthcheck": {"disable": True},
        "labels": {ROLE_LABEL: "proxy"},
        "mem_limit": "128m",
    }
    if profile:
        svc["profiles"] = [profile]
    return {"name": proxy_name(service), "service": svc}


def upstream_text(container: str, port: int) -> str:
    return f"{container}:{int(port)}\n"


def read_upstream(path: str) -> str | None:
    """`name:port` the proxy forwards to, or None (no file, unreadable, empty)."""
    try:
        with open(path, encoding="utf-8") as handle:
            for line in handle:
                line = line.strip()
                if line and not line.startswith("#"):
                    return line
    except OSError:
        return None
    return None


# The proxy's own readers of its status file (one definition, next to the writer).
read_status = tcp_proxy.read_status
active_on = tcp_proxy.active_on


def http_status(url: str, timeout: float) -> int | None:
    """Status of GET url (no proxy from the environment), or None when nothing answered: how
    the new container and the switched port are checked."""
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(url, timeout=timeout) as resp:
            return resp.status
    except urllib.error.HTTPError as exc:
        return exc.code
    except (OSError, ValueError):
        return None


def wait_answering(url: str, timeout: float, state: Callable[[], dict | None],
                   interval: float = 0.5, bound: str = "") -> str | None:
    """None once GET url answers 2xx/3xx; else what went wrong: the container exited, was
    restarted or is gone (``state()`` returns its inspect record, None when gone, polled
    between tries) or it did not answer within timeout seconds. Both the module that starts
    the new container and the smoke checks (which wait for it in their own session, while
    the app starts) use it. bound: the setting that limited timeout, when not
    deploy_candidate_timeout."""
    deadline = time.monotonic() + timeout
    while True:
        status = http_status(url, timeout=min(5.0, max(timeout, 1)))
        now = state()
        if status is not None and 200 <= status < 400 and now and \
                now.get("restart_count", 0) == 0:
            return None  # answering, and the same run of its app that was started
        if not now or not now.get("running"):
            code = now.get("exit_code") if now else "gone"
            return f"exited (code {code}) before it answered {url}"
        if now.get("restart_count", 0) > 0:
            return f"restarted {now['restart_count']} time(s) before it answered {url}"
        if time.monotonic() >= deadline:
            seen = f"HTTP {status}" if status is not None else "no answer"
            return (f"did not answer {url} with 2xx/3xx within {timeout}s "
                    f"({bound or 'deploy_candidate_timeout'}), last: {seen}")
        time.sleep(interval)


def container_url(container: dict, target: int, networks: list[str] | None = None) -> str | None:
    """http://<ip>:<target> of a container, preferring the given networks; None without an IP."""
    ips = container.get("ips") or {}
    for name in networks or []:
        for net, ip in ips.items():
            if net == name or net.endswith(f"_{name}"):
                return f"http://{ip}:{int(target)}"
    for ip in ips.values():
        return f"http://{ip}:{int(target)}"
    return None


def topology(app: list[dict], proxy: list[dict], port: int) -> str:
    """How the port is served now: proxy, direct (an app container publishes it) or none."""
    if any(c.get("running") for c in proxy):
        return TOPOLOGY_PROXY
    if any(c.get("running") and port in (c.get("host_ports") or []) for c in app):
        return TOPOLOGY_DIRECT
    return TOPOLOGY_NONE


def new_containers(before: list[dict], after: list[dict]) -> list[dict]:
    """Containers in `after` that were not there before (the candidate)."""
    seen = {c["id"] for c in before}
    return [c for c in after if c["id"] not in seen]


def settled(app: list[dict], proxy: list[dict], upstream: str | None, image_id: str | None,
            port: int) -> bool:
    """Nothing to activate: the proxy runs and forwards to the one running app container, which
    runs the release image and publishes no host port."""
    running = [c for c in app if c.get("running")]
    if len(running) != 1 or topology(app, proxy, port) != TOPOLOGY_PROXY:
        return False
    only = running[0]
    return (only.get("image_id") == image_id and not only.get("host_ports")
            and bool(upstream) and upstream.rsplit(":", 1)[0] == only.get("name"))
