"""Tests of the compose_release module with a fake `docker` first on PATH.

The route gate's program really runs (with this Python) against a copy of the sample backend
(or a broken copy), the way `docker compose run` would run it in the release image.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import time
from pathlib import Path

import pytest
from ansible_collections.atp.deploy.plugins.module_utils import route_gate
from ansible_collections.atp.deploy.plugins.module_utils.docker_cmd import OVERRIDE_NAME
from ansible_collections.atp.deploy.plugins.modules import compose_release

from .module_runner import FakeDocker, doc_spec_problems, install_release, run_module

REPO = "automated-trading-platform-backend-aws"
PROJECT = "automated-trading-platform"
SAMPLE_BACKEND = Path(__file__).resolve().parents[3] / "files" / "sample-backend" / "backend"
BUILD_LOGS = Path(__file__).resolve().parents[1] / "module_utils" / "build_logs"
EXPECTED = ["GET /api/health", "GET /api/dashboard/state", "GET /api/portfolio/snapshot",
            "GET /api/portfolio/latest", "POST /api/portfolio/refresh"]
DB = {"name": "db", "condition": "service_healthy", "container_name": "postgres_hardened"}


@pytest.fixture
def releases(app_root):
    old = install_release(app_root, {"docker-compose.yml": "old\n"}, "2026-11-01T00:00:00",
                          current=True)
    new = install_release(app_root)
    return old, new


@pytest.fixture
def fast_poll(monkeypatch):
    monkeypatch.setattr(compose_release, "POLL_INTERVAL", 0.05)


@pytest.fixture
def backend_src(tmp_path):
    """A copy of the sample backend: the image's /app as the gate program sees it."""
    dest = tmp_path / "backend-src"
    shutil.copytree(SAMPLE_BACKEND, dest, ignore=shutil.ignore_patterns("__pycache__"))
    return dest


def compose(app_root, rid, check_mode=False, **extra) -> dict:
    # expected_routes defaults to the app contract's routes (routes.EXPECTED_ROUTES); the fake
    # app registers its own, so a test names the ones it expects (none: the import check only)
    params = {"app_root": str(app_root), "release_id": rid, "git_sha": "abc123",
              "build_time": "2026-11-24T10:15:00Z", "expected_routes": [], **extra}
    return run_module(compose_release, params, check_mode=check_mode)


def compose_calls(docker: FakeDocker, verb: str) -> list[dict]:
    return [c for c in docker.calls if c["argv"][:1] == ["compose"] and verb in c["argv"]]


def backend_ups(docker: FakeDocker) -> list[dict]:
    return [c for c in compose_calls(docker, "up") if c["argv"][-1] == "backend-aws"]


def assert_never_restart(docker: FakeDocker) -> None:
    assert not any("restart" in argv for argv in docker.argvs)


def assert_untouched(app_root, docker: FakeDocker, old: str, result: dict,
                     backend_id: str = "c-old") -> None:
    """current, the running backend container: as before; nothing switched or brought up."""
    assert os.readlink(app_root / "current") == f"releases/{old}"
    assert result["switched"] is False
    assert backend_ups(docker) == []
    backend = [c for c in docker.load()["containers"] if c.get("service") == "backend-aws"]
    assert [(c["id"], c["running"]) for c in backend] == [(backend_id, True)]


def gate_app(docker: FakeDocker, where: Path, env: dict | None = None) -> None:
    docker.state["run"] = {"exec_cwd": str(where), "env": env or {}}
    docker.save()


def add_db(docker: FakeDocker, **kwargs) -> dict:
    docker.state.setdefault("services", {})["db"] = {"container_name": "postgres_hardened",
                                                     "health": "healthy"}
    defaults = {"id": "c-db", "name": "postgres_hardened", "service": "db", "ports": [],
                "image_id": "sha256:pg"}
    container = docker.add_container(**{**defaults, **kwargs})
    docker.state["containers"][-1]["health"] = kwargs.get("health", "healthy")
    docker.save()
    return container


def db_container(docker: FakeDocker) -> dict | None:
    found = [c for c in docker.load()["containers"] if c.get("service") == "db"]
    assert len(found) <= 1
    return found[0] if found else None


# --------------------------------------------------------------------------- basics


def test_documentation_matches_argument_spec():
    assert doc_spec_problems(compose_release) == []


def test_build_gate_switch_and_up(app_root, releases, docker, backend_src):
    old, new = releases
    docker.add_container(id="c-old", image_id="sha256:old", image=f"{REPO}:{old}")
    gate_app(docker, backend_src)
    result = compose(app_root, new, expected_routes=EXPECTED)
    assert "failed" not in result, result.get("msg")
    ref = f"{REPO}:{new}"
    image_id = docker.load()["images"][ref]
    assert result["changed"] is True and result["built"] is True
    assert result["switched"] is True and result["recreated"] is True
    assert result["release_id"] == new and result["previous_release"] == old
    assert result["image_ref"] == ref and result["image_id"] == image_id
    assert result["container_name"] == f"{PROJECT}-backend-aws-1"
    assert result["container_id"] != "c-old"
    assert os.readlink(app_root / "current") == f"releases/{new}"
    assert result["route_gate"]["checked"] is True and result["route_gate"]["missing"] == []
    assert result["route_gate"]["routes"] >= len(EXPECTED)
    assert result["dependencies"] == []

    release_dir = str(app_root / "releases" / new)
    (build,) = compose_calls(docker, "build")
    assert build["cwd"] == release_dir
    assert build["argv"] == ["compose", "-p", PROJECT, "-f", "docker-compose.yml", "-f",
                             OVERRIDE_NAME, "--profile", "aws", "build", "backend-aws"]
    (run,) = compose_calls(docker, "run")
    assert run["cwd"] == release_dir
    name = run["argv"][run["argv"].index("--name") + 1]
    assert run["argv"] == ["compose", "-p", PROJECT, "-f", "docker-compose.yml", "-f",
                           OVERRIDE_NAME, "--profile", "aws", "run", "--rm", "--no-deps", "-T",
                           "--name", name, "--entrypoint", "python3", "backend-aws", "-c",
                           route_gate.PROGRAM, "app.main", "app"]
    assert name.startswith(f"{PROJECT}-backend-aws-route-gate-")
    assert "--service-ports" not in run["argv"] and "-p" not in run["argv"][9:]
    (up,) = compose_calls(docker, "up")
    assert up["cwd"] == release_dir
    assert up["argv"][-5:] == ["up", "-d", "--no-deps", "--no-build", "backend-aws"]
    calls = docker.calls
    assert calls.index(build) < calls.index(run) < calls.index(up)
    assert_never_restart(docker)
    assert not any(c.get("oneoff") for c in docker.load()["containers"])

    override = json.loads((app_root / "releases" / new / OVERRIDE_NAME).read_text())
    assert override == {"services": {"backend-aws": {"image": ref, "build": {"args": {
        "GIT_SHA": "abc123", "BUILD_TIME": "2026-11-24T10:15:00Z"}}}}}


def test_second_run_changes_nothing_and_skips_the_gate(app_root, releases, docker):
    _, new = releases
    compose(app_root, new)
    result = compose(app_root, new)
    assert "failed" not in result, result.get("msg")
    assert result["changed"] is False
    assert result["built"] is False and result["switched"] is False
    assert result["recreated"] is False
    assert result["route_gate"] == {"checked": False, "routes": 0, "missing": []}
    assert len(compose_calls(docker, "build")) == 1
    assert len(compose_calls(docker, "run")) == 1
    assert len(compose_calls(docker, "up")) == 2
    assert_never_restart(docker)


def test_existing_image_is_not_rebuilt_but_gated(app_root, releases, docker):
    _, new = releases
    docker.state["images"][f"{REPO}:{new}"] = "sha256:prebuilt"
    docker.save()
    result = compose(app_root, new)
    assert result["built"] is False and result["image_id"] == "sha256:prebuilt"
    assert compose_calls(docker, "build") == []
    assert len(compose_calls(docker, "run")) == 1 and result["route_gate"]["checked"] is True
    assert result["changed"] is True


def test_env_only_release_reuses_the_image_of_the_same_code(app_root, releases, docker):
    old, new = releases
    docker.state["images"][f"{REPO}:{old}"] = "sha256:built-once"
    docker.save()
    docker.add_container(id="c-old", image_id="sha256:built-once", image=f"{REPO}:{old}")
    check = compose(app_root, new, check_mode=True, image_from=f"{REPO}:{old}")
    assert check["would_build"] is False and check["tagged_from"] == f"{REPO}:{old}"
    assert f"{REPO}:{new}" not in docker.load()["images"]
    result = compose(app_root, new, image_from=f"{REPO}:{old}", route_gate=False)
    assert "failed" not in result, result.get("msg")
    assert result["built"] is False and result["tagged_from"] == f"{REPO}:{old}"
    assert result["image_id"] == "sha256:built-once"
    assert ["tag", f"{REPO}:{old}", f"{REPO}:{new}"] in docker.argvs
    assert compose_calls(docker, "build") == []
    # same image, new release (its env): switched and recreated
    assert result["switched"] is True and result["recreated"] is True
    assert result["container_id"] != "c-old"


def test_a_failed_tag_fails_and_touches_nothing(app_root, releases, docker):
    old, new = releases
    docker.add_container(id="c-old", image_id="sha256:old", image=f"{REPO}:{old}")
    result = compose(app_root, new, image_from=f"{REPO}:gone")
    assert result["failed"] is True and "\n" not in result["msg"]
    assert result["msg"].startswith(f"tagging {REPO}:gone as {REPO}:{new} (same code, no "
                                    "build) failed (exit 1)")
    assert_untouched(app_root, docker, old, result)


def test_build_time_defaults_to_the_time_of_the_release_id(app_root, releases, docker):
    _, new = releases
    result = run_module(compose_release, {"app_root": str(app_root), "release_id": new,
                                          "expected_routes": []})
    assert "failed" not in result, result.get("msg")
    override = json.loads((app_root / "releases" / new / OVERRIDE_NAME).read_text())
    args = override["services"]["backend-aws"]["build"]["args"]
    assert args["BUILD_TIME"] == new[:16] == "20261124T101500Z"


def test_route_gate_false_skips_the_gate(app_root, releases, docker):
    _, new = releases
    result = compose(app_root, new, route_gate=False, expected_routes=EXPECTED)
    assert "failed" not in result, result.get("msg")
    assert compose_calls(docker, "run") == []
    assert result["route_gate"]["checked"] is False and result["switched"] is True


# --------------------------------------------------------------------------- build failure


def test_build_failure_shows_the_error_first_in_at_most_15_lines(app_root, releases, docker):
    old, new = releases
    docker.add_container(id="c-old", image_id="sha256:old")
    log = (BUILD_LOGS / "buildkit_compose_cached.log").read_text()
    assert len(log.splitlines()) >= 40
    docker.state["build"] = {"rc": 17, "output": log}
    docker.save()
    result = compose(app_root, new)
    assert result["failed"] is True
    lines = result["msg"].splitlines()
    assert len(lines) <= 15
    assert lines[0] == f"docker build for release {new} failed (exit 17):"
    assert lines[1].startswith("failed to solve: process ")
    assert lines[1].endswith("did not complete successfully: exit code: 1")
    assert lines[2].startswith("failing step: [backend-aws builder 5/6] RUN ")
    assert "  ERROR: No matching distribution found for psycopg2==2.9.99" in lines
    assert not any("CACHED" in line or "load build definition" in line for line in lines)
    assert lines[-1] == (f"the running container was not touched and current still points at "
                         f"{old}; fix the build and re-run")
    assert_untouched(app_root, docker, old, result)
    assert compose_calls(docker, "run") == []
    assert result["previous_release"] == old and result["built"] is False


def test_build_log_lines_bounds_the_message(app_root, releases, docker):
    _, new = releases
    docker.state["build"] = {"rc": 1, "output": (BUILD_LOGS / "classic_builder.log").read_text()}
    docker.save()
    result = compose(app_root, new, build_log_lines=6)
    lines = result["msg"].splitlines()
    assert len(lines) == 6
    assert "returned a non-zero code: 1" in lines[1]
    assert lines[2].startswith("failing step: Step 5/8 : RUN ")
    assert lines[4] == "  ERROR: No matching distribution found for psycopg2==2.9.99"


def test_container_runs_wrong_image(app_root, releases, docker):
    _, new = releases
    docker.state["up"] = {"rc": 0, "wrong_image": "sha256:bogus"}
    docker.save()
    result = compose(app_root, new)
    assert result["failed"] is True
    image_id = docker.load()["images"][f"{REPO}:{new}"]
    assert result["msg"] == (f"container {PROJECT}-backend-aws-1 runs image sha256:bogus, "
                             f"expected {image_id} (release {new}); check the service's image "
                             "in the compose files")


def test_up_failure_shows_the_error_first_and_reports_previous(app_root, releases, docker):
    old, new = releases
    noise = [f" Container {PROJECT}-backend-aws-1  Recreate",
             f" Container {PROJECT}-backend-aws-1  Starting"] * 10
    error = ("Error response from daemon: driver failed programming external connectivity: "
             "Bind for 0.0.0.0:8002 failed: port is already allocated")
    docker.state["up"] = {"rc": 1, "output": "\n".join([*noise, error])}
    docker.save()
    result = compose(app_root, new)
    assert result["failed"] is True and result["previous_release"] == old
    lines = result["msg"].splitlines()
    assert len(lines) <= 15
    assert lines[0] == f"docker compose up for release {new} failed (exit 1):"
    assert "port is already allocated" in lines[1]
    assert lines[-1] == (f"current now points at {new} (previous: {old}); roll back with "
                         f"release_id={old}")
    assert result["switched"] is True


def test_rollback_to_previous_release(app_root, releases, docker):
    old, new = releases
    compose(app_root, new)
    result = compose(app_root, old, route_gate=False)
    assert "failed" not in result, result.get("msg")
    assert result["previous_release"] == new and result["switched"] is True
    assert os.readlink(app_root / "current") == f"releases/{old}"


# --------------------------------------------------------------------------- route gate


def test_gate_names_missing_routes_and_touches_nothing(app_root, releases, docker, backend_src):
    """The seed incident: main.py stops including the portfolio router."""
    old, new = releases
    docker.add_container(id="c-old", image_id="sha256:old", image=f"{REPO}:{old}")
    add_db(docker)
    main = backend_src / "app" / "main.py"
    main.write_text(main.read_text().replace(
        'app.include_router(portfolio_router, prefix="/api", tags=["portfolio"])\n', ""))
    gate_app(docker, backend_src)
    result = compose(app_root, new, expected_routes=EXPECTED, dependencies=[DB])
    assert result["failed"] is True
    missing = ["GET /api/portfolio/snapshot", "GET /api/portfolio/latest",
               "POST /api/portfolio/refresh"]
    assert result["route_gate"]["checked"] is True
    assert result["route_gate"]["missing"] == missing
    # what the failed deploy waited for, the failing step too (the summary's waited line)
    assert set(result["timings"]) == {"build", "route_gate"}
    assert result["timings"]["route_gate"] >= 0
    assert "\n" not in result["msg"]
    assert result["msg"].startswith(
        f"route gate for release {new}: app.main:app does not register 3 expected route(s): "
        f"{', '.join(missing)} (")
    assert (f"the running container was not touched and current still points at {old}"
            in result["msg"])
    assert_untouched(app_root, docker, old, result)
    assert db_container(docker)["id"] == "c-db"
    assert [c for c in compose_calls(docker, "up")] == []
    assert result["built"] is True  # the image is kept: the next try does not rebuild
    assert not any(c.get("oneoff") for c in docker.load()["containers"])


def test_gate_shows_the_import_traceback_with_secrets_masked(app_root, releases, docker,
                                                             backend_src):
    old, new = releases
    docker.add_container(id="c-old", image_id="sha256:old")
    main = backend_src / "app" / "main.py"
    main.write_text("import os\nfrom app.api import routes_gone  # noqa\n" + main.read_text())
    gate_app(docker, backend_src)
    result = compose(app_root, new, expected_routes=EXPECTED)
    assert result["failed"] is True
    lines = result["msg"].splitlines()
    assert lines[0] == (f"route gate for release {new}: importing app.main:app inside the new "
                        "image failed; the running container was not touched and current "
                        f"still points at {old}; fix the app and re-run. Last traceback lines:")
    assert 2 <= len(lines) - 1 <= 10
    assert lines[-1] == "ImportError: cannot import name 'routes_gone' from 'app.api' " \
        f"({backend_src}/app/api/__init__.py)"
    assert any("app/main.py" in line for line in lines)
    assert result["route_gate"] == {"checked": True, "routes": 0, "missing": []}
    assert_untouched(app_root, docker, old, result)

    secret = "pg-s3cret-Value-77"
    main.write_text("import os\nraise RuntimeError('cannot reach postgresql://atp:' + "
                    "os.environ['POSTGRES_PASSWORD'] + '@db/atp as ' + os.environ['API_KEY'])\n")
    gate_app(docker, backend_src, env={"POSTGRES_PASSWORD": secret, "API_KEY": "key-abcdef"})
    result = compose(app_root, new, expected_routes=EXPECTED)
    assert result["failed"] is True
    assert secret not in result["msg"] and "key-abcdef" not in result["msg"]
    assert "RuntimeError: cannot reach postgresql://atp:***@db/atp as ***" in result["msg"]


def test_gate_timeout_removes_the_oneoff_container(app_root, releases, docker):
    old, new = releases
    docker.add_container(id="c-old", image_id="sha256:old")
    docker.state["run"] = {"hang": 30}
    docker.save()
    started = time.monotonic()
    result = compose(app_root, new, route_gate_timeout=1)
    assert time.monotonic() - started < 15
    assert result["failed"] is True
    (run,) = compose_calls(docker, "run")
    name = run["argv"][run["argv"].index("--name") + 1]
    assert ["rm", "--force", name] in docker.argvs
    assert not [c for c in docker.load()["containers"] if c["name"] == name]
    assert result["msg"].startswith(
        f"route gate for release {new}: importing app.main:app did not finish within 1s "
        f"(raise deploy_route_gate_timeout if the import is that slow); removed the one-off "
        f"container {name}; the running container was not touched")
    assert_untouched(app_root, docker, old, result)


def test_one_deadline_for_the_whole_call_cuts_a_step_short_and_says_why(app_root, releases,
                                                                        docker):
    """Over SSM ansible_aws_ssm_timeout cuts one remote call off (the module would go on
    running unread): with call_timeout each step waits at most what is left of it."""
    old, new = releases
    docker.add_container(id="c-old", image_id="sha256:old")
    docker.state["run"] = {"hang": 30}
    docker.save()
    started = time.monotonic()
    result = compose(app_root, new, route_gate_timeout=120, call_timeout=3)
    assert time.monotonic() - started < 15
    assert result["failed"] is True
    assert re.search(r"^route gate for release \S+: importing app.main:app did not finish within "
                     r"[123]s \(what was left of this call's 3s, call_timeout: "
                     r"ansible_aws_ssm_timeout less a margin\); removed the one-off container",
                     result["msg"]), result["msg"]
    assert_untouched(app_root, docker, old, result)


def test_a_switch_is_not_begun_with_too_little_of_the_call_left(app_root, releases, docker,
                                                                 monkeypatch):
    """The build used the call: switching current and recreating would be cut off halfway
    (current switched, the backend down); it is refused before anything changes."""
    old, new = releases
    docker.add_container(id="c-old", image_id="sha256:old")
    monkeypatch.setattr(compose_release, "MIN_STEP_SECONDS", 3600)
    result = compose(app_root, new, call_timeout=600)
    assert result["failed"] is True
    assert re.match(r"switching current and recreating the container not begun: \d+s of this "
                    r"call's 600s \(call_timeout: ansible_aws_ssm_timeout less a margin\) "
                    r"were left", result["msg"]), result["msg"]
    assert "the running container was not touched" in result["msg"]
    assert_untouched(app_root, docker, old, result)
    # zero-downtime: the new container is not started either
    result = compose(app_root, new, call_timeout=600, zero_downtime=True)
    assert result["failed"] is True and result["msg"].startswith(
        "starting the new container not begun: ")
    assert not [c for c in docker.calls if "--scale" in c["argv"]]


def test_the_call_budget_only_ever_shortens_a_step():
    budget = compose_release.Budget()
    budget.start(0)
    assert budget.limit(840, "deploy_build_timeout") == (840, "deploy_build_timeout")
    budget.start(100)
    assert budget.limit(30, "deploy_route_gate_timeout") == (30, "deploy_route_gate_timeout")
    seconds, why = budget.limit(840, "deploy_build_timeout")
    assert seconds in (99, 100) and why.startswith("what was left of this call's 100s")
    budget.deadline = time.monotonic() - 5  # spent: a step still gets a second to say so
    assert budget.limit(840, "x")[0] == 1


def test_gate_without_a_result_shows_what_compose_said(app_root, releases, docker):
    old, new = releases
    docker.add_container(id="c-old", image_id="sha256:old")
    docker.state["run"] = {"rc": 1, "output": "env file /app/releases/x/.env.db not found: "
                           "stat /app/releases/x/.env.db: no such file or directory"}
    docker.save()
    result = compose(app_root, new)
    assert result["failed"] is True
    head, *detail = result["msg"].splitlines()
    assert head.startswith(f"route gate for release {new}: the one-off container printed no "
                           "route list (exit 1)")
    assert detail == ["env file /app/releases/x/.env.db not found: stat "
                      "/app/releases/x/.env.db: no such file or directory"]
    assert_untouched(app_root, docker, old, result)


# --------------------------------------------------------------------------- dependencies


def test_missing_dependency_is_started_with_no_recreate(app_root, releases, docker):
    _, new = releases
    docker.state["services"] = {"db": {"container_name": "postgres_hardened",
                                       "health": "healthy"}}
    docker.save()
    result = compose(app_root, new, dependencies=[DB])
    assert "failed" not in result, result.get("msg")
    assert result["dependencies"] == [{"name": "db", "condition": "service_healthy",
                                       "before": "missing", "action": "started",
                                       "health": "healthy"}]
    ups = compose_calls(docker, "up")
    assert [c["argv"][-5:] for c in ups] == [
        ["up", "-d", "--no-deps", "--no-recreate", "db"],
        ["up", "-d", "--no-deps", "--no-build", "backend-aws"]]
    assert ups[0]["cwd"] == str(app_root / "releases" / new)
    calls = docker.calls
    assert calls.index(compose_calls(docker, "run")[0]) < calls.index(ups[0])
    assert db_container(docker)["name"] == "postgres_hardened"


def test_stopped_dependency_is_started_not_recreated(app_root, releases, docker):
    _, new = releases
    add_db(docker, running=False, health=None)
    result = compose(app_root, new, dependencies=[DB])
    assert "failed" not in result, result.get("msg")
    assert result["dependencies"][0]["before"] == "stopped"
    assert result["dependencies"][0]["action"] == "started"
    db = db_container(docker)
    assert db["id"] == "c-db" and db["running"] is True and db["started"] == 1


def test_healthy_dependency_is_kept_and_never_recreated(app_root, releases, docker):
    _, new = releases
    docker.add_container(id="c-old", image_id="sha256:old")
    add_db(docker)
    result = compose(app_root, new, dependencies=[DB])
    assert "failed" not in result, result.get("msg")
    assert result["dependencies"] == [{"name": "db", "condition": "service_healthy",
                                       "before": "running", "action": "kept",
                                       "health": "healthy"}]
    assert [c["argv"][-1] for c in compose_calls(docker, "up")] == ["backend-aws"]
    # the fake recreates running dependencies on an `up` without --no-deps
    db = db_container(docker)
    assert db["id"] == "c-db" and "started" not in db
    assert result["recreated"] is True


def test_backend_up_without_no_deps_would_recreate_the_db(app_root, releases, docker,
                                                          monkeypatch):
    """The fake models the incident: proves the test above can fail."""
    _, new = releases
    add_db(docker)
    from ansible_collections.atp.deploy.plugins.module_utils import docker_cmd

    def old_up(project, files, profile, service, docker="docker"):
        return docker_cmd.compose(project, files, profile, "up", "-d", "--no-build", service,
                                  docker=docker)

    monkeypatch.setattr(docker_cmd, "compose_up", old_up)
    compose(app_root, new, dependencies=[DB])
    assert db_container(docker)["id"] != "c-db"


def test_dependency_starting_is_waited_for(app_root, releases, docker, fast_poll):
    _, new = releases
    add_db(docker, health="starting")
    docker.state["containers"][-1]["health_seq"] = ["starting", "starting", "healthy"]
    docker.save()
    result = compose(app_root, new, dependencies=[DB], dependency_timeout=30)
    assert "failed" not in result, result.get("msg")
    assert result["dependencies"][0]["action"] == "kept"
    assert result["dependencies"][0]["health"] == "healthy"


def test_dependency_never_healthy_fails_before_the_backend_is_touched(app_root, releases,
                                                                      docker, fast_poll):
    old, new = releases
    docker.add_container(id="c-old", image_id="sha256:old")
    add_db(docker, running=False)
    docker.state["services"]["db"]["health"] = "unhealthy"
    docker.state["logs"] = {"c-db": "\n".join(
        [f"LOG:  checkpoint {i}" for i in range(30)]
        + ["FATAL:  password authentication failed for user \"atp\""])}
    docker.save()
    started = time.monotonic()
    result = compose(app_root, new, dependencies=[DB], dependency_timeout=1)
    assert time.monotonic() - started < 10
    assert result["failed"] is True
    head, *logs = result["msg"].splitlines()
    assert head.startswith("dependency db did not become healthy within 1s (seen: unhealthy); "
                           f"the running container was not touched and current still points "
                           f"at {old}; check it with `docker logs postgres_hardened`")
    assert len(logs) == 10 and logs[-1] == 'FATAL:  password authentication failed for user "atp"'
    assert result["dependencies"] == [{"name": "db", "condition": "service_healthy",
                                       "before": "stopped", "action": "started",
                                       "health": "unhealthy"}]
    assert_untouched(app_root, docker, old, result)
    assert result["changed"] is True  # the db was started


def test_dependency_without_healthcheck_fails_at_once(app_root, releases, docker):
    old, new = releases
    docker.add_container(id="c-old", image_id="sha256:old")
    add_db(docker, health=None)
    result = compose(app_root, new, dependencies=[DB], dependency_timeout=60)
    assert result["failed"] is True
    assert result["msg"].startswith(
        "dependency db cannot become healthy (service_healthy): running without a healthcheck")
    assert_untouched(app_root, docker, old, result)


def test_service_started_dependency_needs_only_to_run(app_root, releases, docker):
    _, new = releases
    add_db(docker, health=None)
    dep = {**DB, "condition": "service_started"}
    result = compose(app_root, new, dependencies=[dep])
    assert "failed" not in result, result.get("msg")
    assert result["dependencies"][0]["health"] == "running"


def test_dependency_start_failure_touches_nothing(app_root, releases, docker):
    old, new = releases
    docker.add_container(id="c-old", image_id="sha256:old")
    docker.state["services"] = {"db": {"up_rc": 1, "up_output": "Error response from daemon: "
                                       "pull access denied for atp-db"}}
    docker.save()
    result = compose(app_root, new, dependencies=[DB])
    assert result["failed"] is True
    lines = result["msg"].splitlines()
    assert lines[0] == "starting dependency db (missing) failed (exit 1):"
    assert "pull access denied" in lines[1]
    assert lines[-1].startswith("the running container was not touched")
    assert_untouched(app_root, docker, old, result)


def test_dependency_name_taken_by_another_project(app_root, releases, docker):
    old, new = releases
    docker.add_container(id="c-old", image_id="sha256:old")
    add_db(docker, project="atp-handmade")
    result = compose(app_root, new, dependencies=[DB])
    assert result["failed"] is True
    assert result["msg"].startswith(
        f"dependency db: expected a container of compose project '{PROJECT}', found "
        "postgres_hardened (running) belonging to compose project 'atp-handmade'; set "
        "deploy_compose_project")
    assert_untouched(app_root, docker, old, result)
    assert db_container(docker)["id"] == "c-db"


# --------------------------------------------------------------------------- check mode


def test_check_mode_runs_nothing(app_root, releases, docker):
    old, new = releases
    docker.state["services"] = {"db": {"health": "healthy"}}
    docker.save()
    result = compose(app_root, new, check_mode=True, dependencies=[DB])
    assert result["changed"] is True
    assert result["would_build"] is True and result["would_activate"] is True
    assert result["would_check_routes"] is True and result["would_start"] == ["db"]
    assert result["route_gate"]["checked"] is False
    assert result["built"] is False and result["switched"] is False
    assert os.readlink(app_root / "current") == f"releases/{old}"
    assert not (app_root / "releases" / new / OVERRIDE_NAME).exists()
    for argv in docker.argvs:
        assert argv[0] in ("ps", "inspect") or argv[:2] == ["image", "inspect"], argv


def test_check_mode_nothing_to_do(app_root, releases, docker):
    _, new = releases
    add_db(docker)
    compose(app_root, new, dependencies=[DB])
    result = compose(app_root, new, check_mode=True, dependencies=[DB])
    assert result["changed"] is False
    assert result["would_build"] is False and result["would_activate"] is False
    assert result["would_check_routes"] is False and result["would_start"] == []
    assert result["dependencies"][0]["action"] == "kept"


# --------------------------------------------------------------------------- inputs


@pytest.mark.parametrize(("extra", "start"), [
    ({"route_gate_timeout": 0}, "route_gate_timeout must be at least 1, got 0; set "
                                "deploy_route_gate_timeout"),
    ({"dependency_timeout": -5}, "dependency_timeout must be at least 1, got -5; set "
                                 "deploy_dependency_timeout"),
    ({"command_timeout": 0}, "command_timeout must be at least 1, got 0; set "
                             "deploy_build_timeout"),
    ({"build_log_lines": 1}, "build_log_lines must be at least 3"),
    ({"expected_routes": ["/api/health"]}, "deploy_expected_routes item '/api/health' is not"),
    ({"app_import": "app/main.py"}, "app_import must look like 'package.module:attribute'"),
    ({"dependencies": [{"name": "db", "condition": "healthy"}]},
     "dependency db: condition must be one of"),
    ({"dependencies": [{"name": "backend-aws"}]}, "dependencies list the service backend-aws"),
])
def test_bad_inputs_fail_before_any_docker_call(app_root, releases, docker, extra, start):
    _, new = releases
    result = compose(app_root, new, **extra)
    assert result["failed"] is True
    assert result["msg"].startswith(start) and "\n" not in result["msg"]
    assert docker.argvs == []


def test_release_not_unpacked(app_root, docker):
    rid = "20261124T101500Z-0123456789ab"
    result = compose(app_root, rid)
    assert result["failed"] is True
    assert result["msg"].startswith(f"release {rid} is not unpacked")
    assert docker.argvs == []


def test_check_mode_reports_a_release_not_made_yet(app_root, releases, docker):
    # check mode: release_unpack / env_files only reported the new release, none is on disk
    old, _new = releases
    docker.state["images"][f"{REPO}:{old}"] = "sha256:old"
    docker.save()
    rid = "20261125T000000Z-0123456789ab"
    result = compose(app_root, rid, check_mode=True, image_from=f"{REPO}:{old}")
    assert "failed" not in result, result.get("msg")
    assert result["would_activate"] is True and result["would_build"] is False
    assert result["tagged_from"] == f"{REPO}:{old}"
    assert not (app_root / "releases" / rid).exists()
    assert os.readlink(app_root / "current") == f"releases/{old}"


def test_bad_release_id(app_root, docker):
    result = compose(app_root, "latest")
    assert result["failed"] is True and "release_id must look like" in result["msg"]


def test_current_is_a_real_directory(app_root, docker):
    rid = install_release(app_root)
    (app_root / "current").mkdir()
    result = compose(app_root, rid)
    assert result["failed"] is True and "must be a symlink" in result["msg"]
    assert docker.argvs == []


def test_unset_expected_routes_gate_the_app_contract(app_root, releases, docker):
    """Without expected_routes the gate checks the app contract's routes (routes.py), the one
    default every step uses: an app registering none of them is refused before activation."""
    old, new = releases
    result = run_module(compose_release, {"app_root": str(app_root), "release_id": new,
                                          "git_sha": "abc123"})
    assert result["failed"] is True
    assert ("does not register 5 expected route(s): GET /api/health, GET /api/dashboard/state"
            in result["msg"]), result["msg"]
    assert os.readlink(app_root / "current") == f"releases/{old}"
