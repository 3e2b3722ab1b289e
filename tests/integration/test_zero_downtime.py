"""Zero-downtime activation over SSM: no request to 8002 fails in a deploy, a rollback or an
unchanged redeploy; other services keep reaching backend-aws:8002 by name; the db is never
recreated; the recreate-era topology is converted with one gap, stated in the output.

A probe polls GET /api/health on the instance's 127.0.0.1:8002 at 10 Hz (a socket in the
instance's network namespace); a second one runs INSIDE the db container (another compose
service) against http://backend-aws:8002 by name. Reads for assertions use docker exec.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import subprocess
import time
from functools import partial
from pathlib import Path

import pytest
from atp_sandbox.config import FIRST_INSTANCE_ID, container_name

from .conftest import APP, SAMPLE, HealthProbe, active_release, instance_read, playbook

CONTAINER = container_name(FIRST_INSTANCE_ID)
PROJECT = "automated-trading-platform"
DB = f"{PROJECT}-db-1"
PROXY = f"{PROJECT}-backend-aws-proxy-1"
on_instance = partial(instance_read, CONTAINER)
current_release = partial(active_release, CONTAINER)

# Runs in the db container (python3 on the same base image): GET by service name at 10 Hz until
# /tmp/stop-byname exists (bounded: 600 probes), then prints its counts as JSON.
BY_NAME = r"""
import json, os, time, urllib.request
ok = failed = 0
opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
for _ in range(600):
    if os.path.exists("/tmp/stop-byname"):
        break
    try:
        with opener.open("http://backend-aws:8002/api/health", timeout=2) as resp:
            ok += resp.status == 200
            failed += resp.status != 200
    except Exception:
        failed += 1
    time.sleep(0.1)
print(json.dumps({"ok": ok, "failed": failed}))
"""


@contextlib.contextmanager
def by_name_probe():
    on_instance("docker", "exec", DB, "rm", "-f", "/tmp/stop-byname")
    proc = subprocess.Popen(["docker", "exec", CONTAINER, "docker", "exec", DB, "python3", "-c",
                             BY_NAME], stdout=subprocess.PIPE, text=True)
    counts: dict = {}
    try:
        time.sleep(0.5)
        yield counts
    finally:
        on_instance("docker", "exec", DB, "touch", "/tmp/stop-byname")
        out, _ = proc.communicate(timeout=30)
        counts.update(json.loads(out.strip().splitlines()[-1]))
        print(f"by-name probes (db -> backend-aws:8002): {counts}")


def backend_names() -> list[str]:
    return on_instance("docker", "ps", "--format", "{{.Names}}", "--filter",
                       "label=com.docker.compose.service=backend-aws").split()


def db_id() -> str:
    return on_instance("docker", "inspect", "-f", "{{.Id}}", DB)


def upstream() -> str:
    return on_instance("cat", f"{APP}/shared/proxy/upstream")


def on_8002() -> list[str]:
    return on_instance("docker", "ps", "--filter", "publish=8002", "--format",
                       "{{.Names}}").split()


def changed_copy(tmp_path: Path, name: str) -> Path:
    dest = tmp_path / name
    shutil.copytree(SAMPLE, dest)
    with open(dest / "backend/app/__init__.py", "a", encoding="utf-8") as handle:
        handle.write(f"# {name} {time.time()}\n")
    return dest


@pytest.fixture(scope="module")
def recreate_era():
    """The sample deployed the old way (the backend publishes 8002 itself)."""
    proc = playbook("deploy.yml", "-e", "deploy_zero_downtime=false")
    assert proc.returncode == 0, proc.stdout[-3000:]
    names = backend_names()
    assert len(names) == 1 and on_8002() == names   # the backend publishes 8002 itself
    return current_release()


def test_first_deploy_converts_the_recreate_era_topology_with_one_stated_gap(recreate_era,
                                                                            tmp_path):
    db = db_id()
    src = changed_copy(tmp_path, "convert")
    with HealthProbe(interval=0.1) as probe:
        proc = playbook("deploy.yml", "-e", f"backend_src_dir={src}")
    out = proc.stdout
    assert proc.returncode == 0, out[-3000:]
    assert "CONVERTED to the proxy: one gap of" in out, out[-3000:]
    assert on_8002() == [PROXY]
    names = backend_names()
    assert len(names) == 1 and upstream() == f"{names[0]}:8002"
    assert current_release() != recreate_era
    assert db_id() == db
    print(f"conversion: {probe.failed} failed probes, longest gap {probe.longest_gap:.1f}s")


def test_changed_deploy_rollback_and_unchanged_redeploy_fail_no_request(tmp_path):
    db = db_id()
    before = current_release()
    serving = backend_names()
    src = changed_copy(tmp_path, "changed")

    with HealthProbe(interval=0.1) as probe, by_name_probe() as by_name:
        proc = playbook("deploy.yml", "-e", f"backend_src_dir={src}")
    assert proc.returncode == 0, proc.stdout[-3000:]
    assert probe.failed == 0 and probe.ok > 0
    assert by_name["failed"] == 0 and by_name["ok"] > 0
    new = current_release()
    assert new != before
    names = backend_names()
    assert len(names) == 1 and names != serving and upstream() == f"{names[0]}:8002"
    assert "CONVERTED" not in proc.stdout

    with HealthProbe(interval=0.1) as probe, by_name_probe() as by_name:
        proc = playbook("playbooks/rollback.yml")
    assert proc.returncode == 0, proc.stdout[-3000:]
    assert probe.failed == 0 and by_name["failed"] == 0
    assert current_release() == before
    assert len(backend_names()) == 1

    with HealthProbe(interval=0.1) as probe:
        proc = playbook("deploy.yml", "-e", f"backend_src_dir={src}")   # back to `new`
    assert proc.returncode == 0 and probe.failed == 0, proc.stdout[-3000:]
    assert current_release() == new
    kept = backend_names()
    with HealthProbe(interval=0.1) as probe:
        proc = playbook("deploy.yml", "-e", f"backend_src_dir={src}")   # unchanged
    assert proc.returncode == 0 and probe.failed == 0, proc.stdout[-3000:]
    assert backend_names() == kept and current_release() == new
    assert db_id() == db


def test_diagnose_reads_the_proxy_topology():
    proc = playbook("playbooks/diagnose.yml")
    assert proc.returncode == 0, proc.stdout[-3000:]
    assert f"zero-downtime proxy: {PROXY} -> {upstream()}" in proc.stdout
    # The proxy pointing at a container that is gone is drift, named.
    original = upstream()
    on_instance("sh", "-c", f"echo gone-container:8002 > {APP}/shared/proxy/upstream")
    try:
        proc = playbook("playbooks/diagnose.yml")
        assert proc.returncode != 0
        assert "forwards to gone-container:8002" in proc.stdout
    finally:
        on_instance("sh", "-c", f"echo {original} > {APP}/shared/proxy/upstream")


def test_recreate_mode_removes_the_proxy_and_publishes_the_port_again(tmp_path):
    src = changed_copy(tmp_path, "recreate")
    proc = playbook("deploy.yml", "-e", "deploy_zero_downtime=false",
                    "-e", f"backend_src_dir={src}")
    assert proc.returncode == 0, proc.stdout[-3000:]
    names = backend_names()
    assert len(names) == 1 and on_8002() == names
