"""Fault tests: whatever goes wrong in a deploy, the backend keeps serving.

While each deploy runs, a probe polls /api/health inside the instance (through the instance's
network namespace, like a client on the instance would) and the failed probes are reported.
All instance changes go through the real aws_ssm plugin; reads for assertions use docker exec.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from functools import partial
from pathlib import Path

import pytest

from .conftest import (
    APP,
    REPO,
    SAMPLE,
    Events,
    HealthProbe,
    active_release,
    instance_read,
    playbook,
    sandbox_env,
    ssm_shell,
)

sys.path.insert(0, str(REPO / "sandbox"))
from atp_sandbox.config import FIRST_INSTANCE_ID, container_name

INSTANCE = FIRST_INSTANCE_ID
CONTAINER = container_name(INSTANCE)


on_instance = partial(instance_read, CONTAINER)
current_release = partial(active_release, CONTAINER)


def backend_container() -> str:
    return on_instance("docker", "ps", "-q", "--filter",
                       "label=com.docker.compose.service=backend-aws")


def changed_copy(tmp_path: Path, name: str) -> Path:
    dest = tmp_path / name
    shutil.copytree(SAMPLE, dest)
    with open(dest / "backend/app/__init__.py", "a", encoding="utf-8") as handle:
        handle.write(f"# {name} {time.time()}\n")
    return dest


@pytest.fixture(scope="module", autouse=True)
def deployed_with_sentinel():
    """A healthy deploy of the sample, and a sentinel in the data volume."""
    proc = playbook("deploy.yml")
    assert proc.returncode == 0, proc.stdout[-3000:]
    ssm_shell("docker exec automated-trading-platform-db-1 sh -c "
              "'echo fault-sentinel > /var/lib/atp-db/fault-sentinel'")
    yield
    sentinel = on_instance("docker", "exec", "automated-trading-platform-db-1", "cat",
                           "/var/lib/atp-db/fault-sentinel")
    assert sentinel == "fault-sentinel"


def test_failed_build_leaves_the_running_container_untouched(tmp_path):
    src = changed_copy(tmp_path, "build-fails")
    with open(src / "backend/Dockerfile", "a", encoding="utf-8") as handle:
        handle.write('RUN echo "compiling assets" && exit 3\n')
    before = (current_release(), backend_container())
    with HealthProbe() as probe:
        proc = playbook("deploy.yml", "-e", f"backend_src_dir={src}")
    assert proc.returncode != 0
    assert "docker build" in proc.stdout and "failed" in proc.stdout
    assert "compiling assets" in proc.stdout  # the end of the build log is shown
    assert (current_release(), backend_container()) == before
    assert probe.failed == 0


@pytest.mark.parametrize(("breakage", "mode"), [("router-not-included", "zero-downtime"),
                                               ("crash-on-start", "zero-downtime"),
                                               ("router-not-included", "recreate"),
                                               ("crash-on-start", "recreate")])
def test_broken_release_never_serves_or_is_rolled_back(tmp_path, breakage, mode):
    """Zero-downtime (the default): the broken release's container is checked beside the
    serving one and removed, never receiving traffic: no failed probe. Recreate: it is
    activated, fails the smoke checks and the previous release is re-activated."""
    src = changed_copy(tmp_path, breakage)
    main = src / "backend/app/main.py"
    if breakage == "router-not-included":  # the seed's 404, forced past the static preflight
        main.write_text("\n".join(line for line in main.read_text().splitlines()
                                  if "include_router(portfolio_router" not in line) + "\n")
    else:
        main.write_text(main.read_text() + '\nraise RuntimeError("crash on start")\n')
    before = current_release()
    serving = backend_container()
    with HealthProbe(interval=0.1) as probe:
        proc = playbook("deploy.yml", "-e", f"backend_src_dir={src}",
                        "-e", "deploy_skip_router_check=true", "-e", "smoke_timeout=20",
                        "-e", "deploy_candidate_timeout=30",
                        "-e", f"deploy_zero_downtime={mode == 'zero-downtime'}",
                        # both breakages are caught by the route gate before activation
                        # (tests/integration/test_real_app.py); here: the smoke + rollback path
                        "-e", "deploy_route_gate=false")
    out = proc.stdout
    assert proc.returncode != 0
    if breakage == "router-not-included":
        assert "/api/portfolio/snapshot" in out and "route not registered" in out, out[-3000:]
    elif mode == "recreate":  # the checks stop at the crash instead of waiting out smoke_timeout
        assert "crashed on start" in out
    else:  # the new container exits before it answers health: no smoke check at all
        assert "before it answered" in out and "crash on start" in out, out[-3000:]
        # the summary says how long the deploy waited for it (a crash: at once)
        waited = re.search(r"^  waited   .*new container, never answered (\d+\.\d) s$", out,
                           re.M)
        assert waited and float(waited.group(1)) < 30, out[-3000:]
    last = json.loads(on_instance("tail", "-n1", f"{APP}/deploy.log"))
    assert last["result"] == "failed"
    if mode == "zero-downtime":
        assert "never received traffic" in out, out[-3000:]
        assert backend_container() == serving      # the same container serves, alone
        assert probe.failed == 0
    else:
        assert f"rolled back to {before}" in out, out[-3000:]
        assert "health after rollback: ok" in out
        assert f"rolled back to {before}" in last["error"]
    assert current_release() == before
    assert on_instance("curl", "-s", "http://127.0.0.1:8002/api/health").startswith(
        '{"status":"ok"')
    print(f"{breakage}/{mode}: {probe.failed} failed health probes during the deploy")


def test_two_deploys_at_once_only_one_proceeds(tmp_path):
    sources = [changed_copy(tmp_path, f"concurrent-{n}") for n in (1, 2)]
    env = sandbox_env()
    procs = [subprocess.Popen([str(REPO / ".venv/bin/ansible-playbook"), "deploy.yml", "-e",
                               f"backend_src_dir={src}"], cwd=REPO, env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
             for src in sources]
    outs = [p.communicate(timeout=600)[0] for p in procs]
    codes = [p.returncode for p in procs]
    assert sorted(codes)[0] == 0 and sorted(codes)[1] != 0, codes
    loser = outs[codes.index(max(codes))]
    assert "deploy lock held by" in loser
    assert not on_instance("ls", f"{APP}/.deploy.lock")


def test_full_release_disk_is_a_clear_error(tmp_path):
    before = (current_release(), backend_container())
    ssm_shell(f"set -e; cd {APP}; cp -a releases /var/tmp/releases-keep; "
              "mount -t tmpfs -o size=8m tmpfs releases; cp -a /var/tmp/releases-keep/. releases/; "
              "rm -rf /var/tmp/releases-keep")
    try:
        src = changed_copy(tmp_path, "disk-full")
        (src / "backend/app/blob.bin").write_bytes(os.urandom(12 * 1024 * 1024))
        proc = playbook("deploy.yml", "-e", f"backend_src_dir={src}",
                        "-e", "deploy_min_free_mb=1")
    finally:
        ssm_shell(f"set -e; cd {APP}; cp -a releases /var/tmp/releases-keep; umount releases; "
                  "cp -a /var/tmp/releases-keep/. releases/; rm -rf /var/tmp/releases-keep")
    assert proc.returncode != 0
    assert "No space left" in proc.stdout or "free" in proc.stdout, proc.stdout[-2000:]
    assert (current_release(), backend_container()) == before
    assert not on_instance("ls", f"{APP}/.deploy.lock")


def test_session_killed_during_sync_then_next_run_converges(tmp_path):
    src = changed_copy(tmp_path, "killed-sync")
    (src / "backend/app/blob.bin").write_bytes(os.urandom(20 * 1024 * 1024))
    before = current_release()
    events = Events()
    # No reconnection retries: the plugin would otherwise retry the command and hide the cut.
    proc = subprocess.Popen([str(REPO / ".venv/bin/ansible-playbook"), "deploy.yml", "-e",
                             f"backend_src_dir={src}", "-e", "ansible_aws_ssm_retries=0"],
                            cwd=REPO, env=sandbox_env(),
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    killed = False
    latency = REPO / ".sandbox" / "latency.json"
    latency.write_text('{"S3_GET": 4000}')  # the instance's download of the archive is slow
    try:
        deadline = time.monotonic() + 120
        while not killed and time.monotonic() < deadline and proc.poll() is None:
            seen = events.since()
            big = {e["key"] for e in seen
                   if e["kind"] == "s3_start" and e["method"] == "PUT" and e["bytes_in"] > 1e6}
            if any(e["kind"] == "s3_start" and e["method"] == "GET" and e["key"] in big
                   for e in seen):
                pids = subprocess.run(["pgrep", "-f", "bin/session-manager-plugin"],
                                      capture_output=True, text=True).stdout.split()
                for pid in pids:
                    os.kill(int(pid), signal.SIGKILL)
                killed = bool(pids)
            time.sleep(0.05)
    finally:
        latency.unlink(missing_ok=True)
    out = proc.communicate(timeout=600)[0]
    assert killed, "the sync finished before the session could be killed"
    # The real plugin reconnects a cut session and may finish the transfer (printed below);
    # when it gives up, the run fails. Either way the active release is whole.
    recovered = proc.returncode == 0
    print(f"session cut during sync: run {'recovered' if recovered else 'failed'} "
          f"(rc {proc.returncode}), active release {current_release()}")
    assert (current_release() != before) if recovered else (current_release() == before)
    problems = on_instance("python3", "-c", (
        "import json,hashlib,os;r='" + APP + "/current/';"
        "m=json.load(open(r+'.release-manifest.json'))['files'];"
        "print([p for p,e in m.items() if hashlib.sha256(open(r+p,'rb').read()).hexdigest()"
        "!=e['sha256']])"))
    assert problems == "[]"
    assert not on_instance("ls", f"{APP}/.deploy.lock")  # released, also on failure
    retry = playbook("deploy.yml", "-e", f"backend_src_dir={src}")
    assert retry.returncode == 0, retry.stdout[-3000:] + out[-2000:]
    assert current_release() != before
    again = playbook("deploy.yml", "-e", f"backend_src_dir={src}")
    assert again.returncode == 0 and "changed=0" in again.stdout


def test_a_release_that_adds_an_expected_route_and_fails_is_rolled_back(tmp_path):
    """The failed release adds a route the operator now expects: the automatic rollback
    re-activates the release that served before, which cannot have that route (the route gate
    does not judge it by the new list, as rollback.yml does not either)."""
    src = changed_copy(tmp_path, "new-route-broken-snapshot")
    routes = src / "backend/app/api/routes_portfolio.py"
    text = routes.read_text()
    assert "return build_snapshot(exchange)" in text
    routes.write_text(text.replace("return build_snapshot(exchange)",
                                   'raise RuntimeError("snapshot broken on purpose")')
                      + '\n\n@router.get("/portfolio/extra")\ndef extra() -> dict:\n'
                        '    return {"ok": True}\n')
    expected = json.dumps({"deploy_expected_routes": [
        "GET /api/health", "GET /api/portfolio/snapshot", "GET /api/portfolio/extra"]})
    before = current_release()
    proc = playbook("deploy.yml", "-e", f"backend_src_dir={src}", "-e", "smoke_timeout=20",
                    "-e", "deploy_zero_downtime=false", "-e", expected)
    out = proc.stdout
    assert proc.returncode != 0
    assert "/api/portfolio/snapshot" in out, out[-3000:]
    assert f"rolled back to {before}" in out, out[-3000:]
    assert "health after rollback: ok" in out, out[-3000:]
    assert current_release() == before
    last = json.loads(on_instance("tail", "-n1", f"{APP}/deploy.log"))
    assert last["result"] == "failed" and f"rolled back to {before}" in last["error"]
    assert on_instance("curl", "-s", "http://127.0.0.1:8002/api/health").startswith(
        '{"status":"ok"')
