"""Rolling deploys over 3 sandbox backends (deploy_serial, default 1).

The SECOND host's smoke check fails after activation (a host var adds a check of a route that
does not exist): it rolls itself back, the rollout stops there, the third host is never touched,
and the run ends with one line per host.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import time
from pathlib import Path

import pytest
import yaml
from atp_sandbox.config import container_name

from .conftest import (
    APP,
    REPO,
    SAMPLE,
    active_release,
    backend_fleet,
    instance_read,
    playbook,
    sandbox_env,
)


def inventory_order() -> list[str]:
    """The backend hosts in the order the play visits them."""
    proc = subprocess.run([str(REPO / ".venv/bin/ansible-inventory"), "--list"], cwd=REPO,
                          env=sandbox_env(), capture_output=True, text=True, timeout=120,
                          check=False)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return json.loads(proc.stdout)["backend"]["hosts"]


def changed_source(tmp_path: Path) -> Path:
    dest = tmp_path / "rolling-src"
    shutil.copytree(SAMPLE, dest)
    with open(dest / "backend/app/__init__.py", "a", encoding="utf-8") as handle:
        handle.write(f"# rolling {time.time()}\n")
    return dest


def broken_smoke_for(tmp_path: Path, host: str) -> Path:
    """An extra inventory source: ``host`` gets a smoke check no release can pass (404)."""
    extra = tmp_path / "broken-second.yml"
    extra.write_text(yaml.safe_dump({"backend": {"hosts": {host: {
        "smoke_timeout": 15,
        "smoke_check_checks": [
            {"name": "health", "path": "/api/health", "expect_status": 200},
            {"name": "route missing on purpose", "path": "/api/rolling-test-missing",
             "expect_status": 200}]}}}}))
    return extra


def releases(host: str) -> list[str]:
    return instance_read(container_name(host), "ls", f"{APP}/releases").split()


@pytest.fixture(scope="module")
def fleet():
    with backend_fleet(3) as ids:
        order = inventory_order()
        assert sorted(order) == sorted(ids), order
        # a release on every host first (serial 3: all at once), so each has one to go back to
        proc = playbook("deploy.yml", "-e", "deploy_serial=3")
        assert proc.returncode == 0, proc.stdout[-3000:]
        yield order


def test_rollout_stops_at_the_first_failed_host(fleet, tmp_path):
    first, second, third = fleet
    before = {host: active_release(container_name(host)) for host in fleet}
    third_releases = releases(third)
    extra = broken_smoke_for(tmp_path, second)
    started = time.monotonic()
    proc = playbook("-i", str(REPO / "inventory/sandbox"), "-i", str(extra), "deploy.yml",
                    "-e", f"backend_src_dir={changed_source(tmp_path)}")
    elapsed = time.monotonic() - started
    out = proc.stdout
    assert proc.returncode != 0, out[-3000:]

    new = active_release(container_name(first))
    assert new != before[first]
    # zero-downtime: the failing release never got traffic there, the old one still serves
    assert active_release(container_name(second)) == before[second]
    assert active_release(container_name(third)) == before[third]  # never reached
    assert releases(third) == third_releases  # nothing uploaded there either

    # the output ends with one line per host, in rollout order
    tail = [line for line in out.rstrip().splitlines() if line.strip()][-3:]
    assert tail[0] == f"{first}: new release {new}"
    assert tail[1].startswith(f"{second}: failed, the new container never received traffic")
    assert f"(active release {before[second]})" in tail[1]
    assert tail[2] == f"{third}: untouched"
    # the third host's play never started: no task ran for it
    assert not re.search(rf"\[{third}\]", out.split("PLAY RECAP")[0])
    print(f"rolling deploy, 3 hosts, second fails: {elapsed:.1f}s")


def test_a_batch_in_flight_finishes_and_no_later_batch_starts(fleet, tmp_path):
    """deploy_serial=2: the FIRST host fails; the second (same batch) completes its deploy
    and records it; the third (next batch) stays untouched."""
    first, second, third = fleet
    before = {host: active_release(container_name(host)) for host in fleet}
    extra = broken_smoke_for(tmp_path, first)
    proc = playbook("-i", str(REPO / "inventory/sandbox"), "-i", str(extra), "deploy.yml",
                    "-e", "deploy_serial=2", "-e", f"backend_src_dir={changed_source(tmp_path)}")
    out = proc.stdout
    assert proc.returncode != 0, out[-3000:]
    assert active_release(container_name(first)) == before[first]
    new = active_release(container_name(second))
    assert new != before[second]
    assert active_release(container_name(third)) == before[third]
    assert not instance_read(container_name(second), "ls", f"{APP}/.deploy.lock")
    tail = [line for line in out.rstrip().splitlines() if line.strip()][-3:]
    assert tail[1:] == [f"{second}: new release {new}", f"{third}: untouched"]
    assert tail[0].startswith(f"{first}: failed, the new container never received traffic")
    assert f"(active release {before[first]})" in tail[0]
