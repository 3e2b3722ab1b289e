#!/usr/bin/python
# Copyright: atp.deploy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Move the backend's port to a checked new container, drain and stop the old one (one call)."""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: traffic_switch
short_description: Zero-downtime switch - port to the checked container, drain, stop the old
description:
  - "C(action=promote): the new release's container (compose_release's C(candidate)) passed
    its checks. Points C(shared/proxy/upstream) at it (the C(<service>-proxy) sends every NEW
    connection there, open ones finish where they started), proves the switch (health through
    127.0.0.1:I(port) answers and the proxy reports the new upstream), switches C(current) to
    the release, waits until the old container has no open connection (at most
    I(drain_timeout) seconds), then stops it (C(docker stop -t I(stop_timeout)), graceful) and
    removes it. When its PID 1 is a shell (C(sh -c 'sleep 10 && gunicorn ...'), as the real
    app's compose file runs it) that shell ignores SIGTERM, so the container's other processes
    get SIGTERM first (C(docker exec ... kill -TERM -1)): gunicorn stops gracefully at once
    instead of being killed after I(stop_timeout)."
  - "When no proxy runs yet and the old container publishes the port itself (the recreate-era
    topology) the old container is stopped first and the proxy started: the one gap of the
    conversion, measured and returned in C(gap_seconds)."
  - "If the switch cannot be proven, traffic goes back to the old container (C(upstream)
    rewritten) and the task fails; C(current) is not switched."
  - "C(action=discard): removes the candidate that failed its checks (it never received
    traffic); refuses when the proxy forwards to it."
version_added: "1.1.0"
author: atp.deploy contributors (!UNKNOWN)
extends_documentation_fragment:
  - atp.deploy.backend.app_root
  - atp.deploy.backend.service
  - atp.deploy.deploy_lock
options:
  action:
    description: C(promote) or C(discard).
    type: str
    choices: [promote, discard]
    default: promote
  release_id:
    description: The release of the candidate (C(current) is switched to it on promote).
    type: str
    required: true
  candidate:
    description: compose_release's C(candidate) (C(name), C(upstream)).
    type: dict
    required: true
  project_name:
    description: Compose project name.
    type: str
    default: automated-trading-platform
  profile:
    description: Compose profile enabling the service.
    type: str
    default: aws
  compose_file:
    description: Base compose file name inside the release.
    type: str
    default: docker-compose.yml
  port:
    description: Host port the backend is served on.
    type: int
    default: 8002
  health_path:
    description: Path proving the switch through the port.
    type: str
    default: /api/health
  switch_timeout:
    description: Seconds the switch may take to be proven (at least 1).
    type: int
    default: 20
  drain_timeout:
    description: Seconds to wait for the old container's open connections to end (0 stops it
      at once).
    type: int
    default: 30
  stop_timeout:
    description: Seconds C(docker stop) gives the old container before SIGKILL.
    type: int
    default: 30
"""

EXAMPLES = r"""
- name: Move 8002 to the checked container, drain and stop the old one
  atp.deploy.traffic_switch:
    release_id: "{{ deploy_release_id }}"
    candidate: "{{ compose_release_result.candidate }}"
"""

RETURN = r"""
switched:
  description: Whether traffic and C(current) moved to the candidate.
  returned: always
  type: bool
upstream:
  description: What the proxy forwards to now (C(name:port)).
  returned: always
  type: str
previous_upstream:
  description: What it forwarded to before (null on the first switch).
  returned: always
  type: str
topology:
  description: How the port was served before (C(proxy), C(direct), C(none); zero_downtime).
  returned: always
  type: str
previous_release:
  description: Release C(current) pointed to before.
  returned: always
  type: str
gap_seconds:
  description: Converting the recreate-era topology only; seconds the port was not served.
  returned: always
  type: float
drained:
  description: C(seconds) waited, C(open) connections left on the old container when stopped.
  returned: always
  type: dict
stopped:
  description: Old containers stopped and removed.
  returned: always
  type: list
  elements: str
terminated:
  description: Old containers whose processes got SIGTERM directly (PID 1 a shell).
  returned: when any
  type: list
  elements: str
removed:
  description: Discard; the removed candidate.
  returned: always
  type: list
  elements: str
"""

import os  # noqa: E402
import time  # noqa: E402

from ansible.module_utils.basic import AnsibleModule  # noqa: E402
from ansible_collections.atp.deploy.plugins.module_utils import (  # noqa: E402
    deploy_lock,
    docker_cmd,
    docker_read,
    fsutil,
    proc,
    release_model,
    zero_downtime,
)

READ_TIMEOUT = 60
POLL = 0.2

ARGUMENT_SPEC = {
    "action": {"type": "str", "choices": ["promote", "discard"], "default": "promote"},
    "app_root": {"type": "path", "default": "/home/ubuntu/automated-trading-platform"},
    "release_id": {"type": "str", "required": True},
    "candidate": {"type": "dict", "required": True},
    "project_name": {"type": "str", "default": "automated-trading-platform"},
    "service": {"type": "str", "default": "backend-aws"},
    "profile": {"type": "str", "default": "aws"},
    "compose_file": {"type": "str", "default": "docker-compose.yml"},
    "port": {"type": "int", "default": 8002},
    "health_path": {"type": "str", "default": "/api/health"},
    "switch_timeout": {"type": "int", "default": 20},
    "drain_timeout": {"type": "int", "default": 30},
    "stop_timeout": {"type": "int", "default": 30},
    **deploy_lock.MODULE_ARGS,
}


class Switch:
    def __init__(self, module: AnsibleModule, result: dict):
        self.module = module
        self.p = module.params
        self.result = result
        self.docker = module.get_bin_path("docker", required=True)
        self.pdir = zero_downtime.proxy_dir(self.p["app_root"])
        self.upstream_path = os.path.join(self.pdir, zero_downtime.UPSTREAM_NAME)
        self.status_path = os.path.join(self.pdir, zero_downtime.STATUS_NAME)

    def fail(self, msg: str) -> None:
        self.module.fail_json(msg=msg, **self.result)

    def containers(self, service: str) -> list[dict]:
        try:
            return docker_read.containers(self.docker, READ_TIMEOUT, self.p["project_name"],
                                          service, retry_vanished=True)
        except docker_read.DockerReadError as exc:
            self.fail(f"{exc}; check the docker engine (journalctl -u docker)")

    def run(self, argv: list[str], timeout: int = READ_TIMEOUT, cwd: str | None = None):
        return proc.run(argv, cwd=cwd, timeout=timeout, merge_stderr=True)

    def write_upstream(self, upstream: str) -> None:
        name, _sep, port = upstream.rpartition(":")
        data = zero_downtime.upstream_text(name, int(port)).encode()
        try:
            fsutil.atomic_write(self.upstream_path, data, 0o644, 0, 0)
        except OSError as exc:
            self.fail(f"writing {self.upstream_path} failed: {exc.strerror or exc}; traffic "
                      "was not switched, check permissions/disk")

    def proven(self, upstream: str) -> str | None:
        """None once the port answers health through the proxy and the proxy reports
        `upstream`; else what was last seen."""
        url = f"http://127.0.0.1:{self.p['port']}{self.p['health_path']}"
        deadline = time.monotonic() + max(self.p["switch_timeout"], 1)
        seen = "no answer"
        while True:
            status = zero_downtime.http_status(url, timeout=5.0)
            reported = zero_downtime.read_status(self.status_path).get("upstream")
            if status is not None and 200 <= status < 400 and reported == upstream:
                return None
            seen = (f"HTTP {status}" if status is not None else "no answer") + \
                f", proxy forwards to {reported or 'nothing'}"
            if time.monotonic() >= deadline:
                return f"{url} within {self.p['switch_timeout']}s: {seen}"
            time.sleep(POLL)

    def stop_and_remove(self, names: list[str]) -> None:
        if not names:
            return
        self.term_app_processes(names)
        rc, out, _err = self.run(docker_cmd.stop(names, self.p["stop_timeout"], self.docker),
                                 timeout=self.p["stop_timeout"] + READ_TIMEOUT)
        for name in names:
            self.run(docker_cmd.rm_force(name, self.docker))
        self.result["stopped"] = list(names)
        if rc != 0:
            self.module.warn(f"docker stop {' '.join(names)} (exit {rc}): "
                             f"{docker_cmd.first_line(out)}; removed with rm --force")

    def term_app_processes(self, names: list[str]) -> None:
        """A drained container whose PID 1 is a shell (``sh -c "sleep 10 && gunicorn ..."``)
        ignores docker stop's SIGTERM: its processes get it directly, so the app stops
        gracefully at once instead of being killed after stop_timeout."""
        rc, out, _err = self.run(docker_cmd.inspect(names, self.docker))
        try:
            found = docker_cmd.parse_inspect(out) if rc == 0 else []
        except ValueError:
            found = []
        for container in found:
            shell = docker_cmd.shell_pid1(container.get("cmd") or [])
            if shell and container.get("running"):
                self.run(docker_cmd.term_children(container["name"], shell, self.docker))
                self.result.setdefault("terminated", []).append(container["name"])

    def drain(self, upstream: str | None) -> None:
        start = time.monotonic()
        left = 0
        if upstream:
            deadline = start + max(self.p["drain_timeout"], 0)
            while True:
                left = zero_downtime.active_on(zero_downtime.read_status(self.status_path),
                                               upstream)
                if left == 0 or time.monotonic() >= deadline:
                    break
                time.sleep(POLL)
        self.result["drained"] = {"seconds": round(time.monotonic() - start, 2), "open": left}

    def promote(self) -> None:
        p, rid = self.p, self.p["release_id"]
        service = p["service"]
        cand = p["candidate"]
        name, upstream = str(cand.get("name") or ""), str(cand.get("upstream") or "")
        if not name or ":" not in upstream:
            self.fail(f"candidate must have name and upstream (name:port), got {cand!r}; pass "
                      "compose_release's candidate")
        app_root = p["app_root"]
        release_dir = release_model.release_path(app_root, rid)
        previous = release_model.current(app_root)
        self.result["previous_release"] = previous
        app = self.containers(service)
        mine = [c for c in app if c["name"] == name]
        if not mine or not mine[0]["running"]:
            self.fail(f"the new container {name} of release {rid} is not running any more; "
                      "expected it to run beside the old one; traffic was not switched, see "
                      "playbooks/diagnose.yml and re-run the deploy")
        proxies = self.containers(zero_downtime.proxy_name(service))
        old_upstream = zero_downtime.read_upstream(self.upstream_path)
        self.result["previous_upstream"] = old_upstream
        topo = zero_downtime.topology(app, proxies, p["port"])
        self.result["topology"] = topo
        others = [c["name"] for c in app if c["running"] and c["name"] != name]
        stale = topo == zero_downtime.TOPOLOGY_PROXY and not zero_downtime.read_status(
            self.status_path)
        if stale:
            # The running proxy writes no status into shared/proxy: that directory was
            # replaced under it (the app dir removed and redeployed), so it would never see
            # the new upstream. It is started again on this directory: one gap, measured.
            self.module.warn(f"the proxy reports nothing in {self.status_path}: its directory "
                             "was replaced; starting it again (one gap)")
        if topo == zero_downtime.TOPOLOGY_PROXY and not stale:
            self.write_upstream(upstream)
            self.result["changed"] = True
            problem = self.proven(upstream)
            if problem:
                if old_upstream:
                    self.write_upstream(old_upstream)
                self.fail(f"the switch to {name} could not be proven: {problem}; traffic is "
                          f"back on {old_upstream or 'nothing'} and current still points at "
                          f"{previous}; see playbooks/diagnose.yml")
        else:
            # The recreate-era container publishes the port: it must go before the proxy can
            # take the port. The one gap of the conversion, measured.
            direct = [c["name"] for c in app if c["running"] and c["name"] != name
                      and p["port"] in (c.get("host_ports") or [])]
            gap_start = time.monotonic()
            self.result["changed"] = True
            for proxy in proxies if stale else []:
                self.run(docker_cmd.rm_force(proxy["name"], self.docker))
            if direct:
                # The real app's `sh -c "sleep 10 && gunicorn ..."` PID 1 ignores docker stop's
                # SIGTERM: without this the gap would last stop_timeout, ending in SIGKILL.
                self.term_app_processes(direct)
                rc, out, _err = self.run(docker_cmd.stop(direct, p["stop_timeout"], self.docker),
                                         timeout=p["stop_timeout"] + READ_TIMEOUT)
                if rc != 0:
                    self.fail(f"stopping {', '.join(direct)} (it publishes port {p['port']}) "
                              f"failed (exit {rc}): {docker_cmd.first_line(out)}; traffic "
                              "was not switched")
            self.write_upstream(upstream)
            files = [p["compose_file"], docker_cmd.OVERRIDE_NAME]
            rc, out, _err = self.run(docker_cmd.compose_start_proxy(
                p["project_name"], files, p["profile"], zero_downtime.proxy_name(service),
                self.docker), timeout=READ_TIMEOUT * 3, cwd=release_dir)
            problem = (f"starting the proxy failed (exit {rc}): {docker_cmd.first_line(out)}"
                       if rc != 0 else self.proven(upstream))
            if problem:
                # Back to the recreate-era container as it was.
                for proxy in self.containers(zero_downtime.proxy_name(service)):
                    self.run(docker_cmd.rm_force(proxy["name"], self.docker))
                for old in direct:
                    self.run([self.docker, "start", old])
                self.fail(f"moving port {p['port']} to the proxy failed: {problem}; the old "
                          f"container(s) {', '.join(direct) or 'none'} were started again, "
                          f"current still points at {previous}; set "
                          "deploy_zero_downtime=false to keep recreating, see "
                          "playbooks/diagnose.yml")
            self.result["gap_seconds"] = round(time.monotonic() - gap_start, 2) \
                if direct or stale else 0.0
        self.result.update(switched=True, upstream=upstream)
        link = release_model.current_link_path(app_root)
        target = release_model.current_link_target(rid)
        if fsutil.read_link_target(link) != target:
            st = os.stat(release_dir)
            try:
                fsutil.atomic_symlink(target, link, st.st_uid, st.st_gid)
            except (OSError, ValueError) as exc:
                self.fail(f"switching {link} to {target} failed: {exc}; traffic already goes "
                          f"to {name} (release {rid}); fix and re-run the deploy")
        self.drain(old_upstream if topo == zero_downtime.TOPOLOGY_PROXY and not stale else None)
        self.stop_and_remove(others)

    def discard(self) -> None:
        name = str(self.p["candidate"].get("name") or "")
        if not name:
            self.fail("candidate has no name; nothing to discard")
        serving = zero_downtime.read_upstream(self.upstream_path) or ""
        if serving.rpartition(":")[0] == name:
            self.fail(f"refusing to remove {name}: the proxy forwards to it "
                      f"({self.upstream_path}); it is the serving container")
        app = self.containers(self.p["service"])
        if any(c["name"] == name for c in app):
            self.run(docker_cmd.rm_force(name, self.docker))
            self.result.update(removed=[name], changed=True)


def main() -> None:
    module = AnsibleModule(argument_spec=ARGUMENT_SPEC, supports_check_mode=False)
    p = module.params
    result = {"changed": False, "switched": False, "upstream": None, "previous_upstream": None,
              "topology": None,
              "previous_release": None, "gap_seconds": 0.0,
              "drained": {"seconds": 0.0, "open": 0}, "stopped": [], "removed": []}
    problem = release_model.id_problem(p["release_id"])
    if problem:
        module.fail_json(msg=problem, **result)
    for name in ("switch_timeout", "drain_timeout", "stop_timeout"):
        if p[name] < (1 if name == "switch_timeout" else 0):
            module.fail_json(msg=f"{name} must be a number of seconds >= "
                                 f"{1 if name == 'switch_timeout' else 0}, got {p[name]}; fix "
                                 f"deploy_{name}", **result)
    deploy_lock.hold(module, deploy_lock.module_lock_file(p, p["app_root"]), p["lock_token"],
                     "traffic_switch", result)
    switch = Switch(module, result)
    if p["action"] == "discard":
        switch.discard()
    else:
        switch.promote()
    module.exit_json(**result)


if __name__ == "__main__":
    main()
