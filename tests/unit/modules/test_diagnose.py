"""Tests of the diagnose module with a fake `docker` first on PATH.

The fake is module_runner's FakeDocker plus `docker exec` and `docker logs`: `exec` really
runs the route probe (with this Python) in the directory the test gives the container, so the
probe walks a real FastAPI app (the sample backend) or a broken copy of it.
"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import pytest
from ansible_collections.atp.deploy.plugins.module_utils import diagnosis_routes, routes
from ansible_collections.atp.deploy.plugins.modules import diagnose

from .module_runner import FakeDocker, doc_spec_problems, install_release, run_module

SAMPLE_BACKEND = Path(__file__).resolve().parents[3] / "files" / "sample-backend" / "backend"
REPO = "automated-trading-platform-backend-aws"
KEY, SECRET = "sandbox-fake-key-3f9a", "sandbox-fake-secret-c41d"
READ_ONLY = {"ps", "inspect", "exec", "logs", ("image", "inspect")}

EXTENSION = '''
import json as _json, os as _os, subprocess as _sp, sys as _sys
FAKE_MAIN = main
def main(argv):
    if argv[:1] not in (["exec"], ["logs"], ["ps"]) and argv[:2] != ["inspect", "--format"]:
        return FAKE_MAIN(argv)
    state = load()
    if argv[:2] == ["inspect", "--format"]:
        record(argv)
        print(_json.dumps(state.get("env", {}).get(argv[-1], [])))
        return 0
    if argv[:1] == ["ps"]:
        if state.get("ps_rc"):
            record(argv)
            print("Cannot connect to the Docker daemon", file=_sys.stderr)
            return state["ps_rc"]
        return FAKE_MAIN(argv)
    record(argv)
    if argv[0] == "logs":
        tail = int(argv[argv.index("--tail") + 1])
        lines = state.get("logs", {}).get(argv[-1], "").splitlines()
        print("\\n".join(lines[-tail:]))
        return 0
    container, command = argv[1], argv[2:]
    where = state.get("exec", {}).get(container)
    if where is None:
        print("Error response from daemon: container %s is not running" % container,
              file=_sys.stderr)
        return 1
    if command[:1] == ["python3"]:
        command = [_sys.executable] + command[1:]
    proc = _sp.run(command, cwd=where, capture_output=True, text=True, timeout=60)
    _sys.stdout.write(proc.stdout)
    _sys.stderr.write(proc.stderr)
    return proc.returncode
'''


@pytest.fixture
def docker(tmp_path, monkeypatch):
    fake = FakeDocker(tmp_path, monkeypatch)
    script = tmp_path / "fakebin" / "docker"
    text = script.read_text()
    head, sep, tail = text.rpartition('\nif __name__ == "__main__":')
    script.write_text(head + "\n" + EXTENSION + sep + tail)
    fake.state.update(exec={}, logs={})
    fake.save()
    return fake


@pytest.fixture
def backend_src(tmp_path):
    pytest.importorskip("fastapi")
    dest = tmp_path / "backend-src"
    shutil.copytree(SAMPLE_BACKEND, dest)
    return dest


def write_env(app_root: Path, env_aws: dict, env: dict | None = None) -> None:
    for name, values in ((".env", env or {"ENVIRONMENT": "aws"}), (".env.aws", env_aws)):
        lines = ["# Managed by Ansible (atp.deploy). Local edits are overwritten."]
        lines += [f"{k}='{v}'" for k, v in values.items()]
        (app_root / "shared" / name).write_text("\n".join(lines) + "\n")


CANONICAL = {"ENVIRONMENT": "aws", "PORTFOLIO_DEBUG": "1", "ATP_INSTANCE_ID": "i-08726dc37133b3565",
             "EXCHANGE_CUSTOM_API_KEY": KEY, "EXCHANGE_CUSTOM_API_SECRET": SECRET}


def healthy(app_root: Path, docker: FakeDocker, backend_src: Path) -> str:
    """A deployed instance as the deploy leaves it; returns the release id."""
    rid = install_release(app_root, current=True, env="shared")
    write_env(app_root, CANONICAL)
    records = [
        {"release": "20261123T090000Z-aaaaaaaaaaaa", "git_sha": "1" * 40, "result": "ok",
         "operator": "ops", "finished": "2026-11-23T09:01:00+00:00"},
        {"release": rid, "git_sha": "2" * 40, "result": "ok", "operator": "ops",
         "started": "2026-11-24T10:15:00+00:00", "finished": "2026-11-24T10:16:00+00:00"},
    ]
    (app_root / "deploy.log").write_text("".join(json.dumps(r) + "\n" for r in records))
    docker.state["images"][f"{REPO}:{rid}"] = "sha256:release"
    docker.save()
    docker.add_container(id="c1", image_id="sha256:release", image=f"{REPO}:{rid}")
    docker.state["exec"]["c1"] = str(backend_src)
    docker.state["env"] = {"c1": [f"{k}={v}" for k, v in CANONICAL.items()]
                           + ["PATH=/usr/local/bin:/usr/bin", "ATP_GIT_SHA=" + "2" * 40]}
    docker.state["logs"]["c1"] = "\n".join(
        [f"INFO line {n}" for n in range(30)]
        + ["PATH is /usr/local/bin:/usr/bin",
           f"DEBUG resolved key {KEY} secret={SECRET} on i-08726dc37133b3565 env aws"])
    docker.save()
    return rid


def diag(app_root: Path, check_mode: bool = False, **extra) -> dict:
    return run_module(diagnose, {"app_root": str(app_root), **extra}, check_mode=check_mode)


def assert_read_only(docker: FakeDocker) -> None:
    for argv in docker.argvs:
        assert argv[0] in READ_ONLY or tuple(argv[:2]) in READ_ONLY, argv


def assert_no_secret(result: dict) -> None:
    text = json.dumps(result)
    assert KEY not in text and SECRET not in text


def test_documentation_matches_argument_spec():
    assert doc_spec_problems(diagnose) == []


def test_healthy_instance(app_root, docker, backend_src):
    rid = healthy(app_root, docker, backend_src)
    result = diag(app_root)
    assert "failed" not in result, result.get("msg")
    assert result["changed"] is False and result["drift"] is False
    assert result["findings"] == []
    assert result["active_release"] == rid and result["releases"] == [rid]
    assert result["git_sha"] == "2" * 40 and result["git_sha_source"] == "deploy.log"
    assert result["release_image"] == {"ref": f"{REPO}:{rid}", "id": "sha256:release"}
    assert [c["name"] for c in result["containers"]] == ["automated-trading-platform-backend-aws-1"]
    assert result["port_publishers"][0]["id"] == "c1"
    probe = result["routes"]["automated-trading-platform-backend-aws-1"]
    assert probe["missing"] == [] and "GET /api/portfolio/snapshot" in probe["registered"]
    assert result["missing_routes"] == []
    assert result["credential_alias"] == "EXCHANGE_CUSTOM_API_KEY"
    assert result["credential_pair"] == ["EXCHANGE_CUSTOM_API_KEY", "EXCHANGE_CUSTOM_API_SECRET"]
    assert result["env_files"][".env"] == {"exists": True, "names": ["ENVIRONMENT"], "empty": []}
    assert result["env_files"][".env.aws"]["names"] == sorted(CANONICAL)
    log = result["logs"]["automated-trading-platform-backend-aws-1"]
    assert len(log) == 20 and log[0] == "INFO line 12"
    assert log[-2] == "PATH is /usr/local/bin:/usr/bin"
    assert log[-1] == "DEBUG resolved key *** secret=*** on *** env aws"
    assert [r["release"] for r in result["deploy_log"]][-1] == rid
    assert result["disk"]["total_mb"] > 0 and 0 <= result["disk"]["used_percent"] <= 100
    assert result["summary"][0].startswith("no drift")
    assert "## Verdict" in result["markdown"]
    assert_no_secret(result)
    assert_read_only(docker)


def test_env_names_come_from_the_active_releases_env_set(app_root, docker, backend_src):
    from .module_runner import install_env_set

    rid = healthy(app_root, docker, backend_src)
    # the release links its own env set; shared/ holds an older env (the layout before sets)
    name = install_env_set(app_root, {
        ".env": (app_root / "shared" / ".env").read_text(),
        ".env.aws": (app_root / "shared" / ".env.aws").read_text()})
    for rel in (".env", ".env.aws"):
        (app_root / "releases" / rid / rel).unlink()
        (app_root / "releases" / rid / rel).symlink_to(f"../../shared/env/{name}/{rel}")
    write_env(app_root, {"ENVIRONMENT": "aws"})  # no credentials in shared/ any more
    result = diag(app_root)
    assert result["credential_alias"] == "EXCHANGE_CUSTOM_API_KEY"
    assert result["env_files"][".env.aws"]["names"] == sorted(CANONICAL)
    assert result["findings"] == []
    assert_no_secret(result)


def test_check_mode_gives_the_same_answer(app_root, docker, backend_src):
    healthy(app_root, docker, backend_src)
    result = diag(app_root, check_mode=True)
    assert result["changed"] is False and result["drift"] is False
    assert result["credential_alias"] == "EXCHANGE_CUSTOM_API_KEY"
    assert_read_only(docker)


def test_limits_of_logs_and_deploy_log(app_root, docker, backend_src):
    healthy(app_root, docker, backend_src)
    with open(app_root / "deploy.log", "a", encoding="utf-8") as handle:
        handle.write(f"not json, mentions {SECRET}\n")
    result = diag(app_root, log_lines=3, deploy_log_lines=2)
    assert len(result["logs"]["automated-trading-platform-backend-aws-1"]) == 3
    assert len(result["deploy_log"]) == 2
    assert result["deploy_log"][-1] == {"raw": "not json, mentions ***"}
    assert_no_secret(result)
    result = diag(app_root, log_lines=0, deploy_log_lines=0)
    assert result["logs"] == {} and result["deploy_log"] == []


def test_missing_route_is_named(app_root, docker, backend_src):
    healthy(app_root, docker, backend_src)
    main = backend_src / "app" / "main.py"
    main.write_text("\n".join(line for line in main.read_text().splitlines()
                              if "include_router(portfolio_router" not in line) + "\n")
    result = diag(app_root)
    assert result["drift"] is True
    assert result["missing_routes"] == ["GET /api/portfolio/snapshot",
                                        "GET /api/portfolio/latest",
                                        "POST /api/portfolio/refresh"]
    (finding,) = result["findings"]
    assert finding["code"] == "missing_routes"
    assert "GET /api/portfolio/snapshot" in finding["message"]


def test_routes_unreadable_when_the_app_does_not_import(app_root, docker, backend_src, tmp_path):
    healthy(app_root, docker, backend_src)
    docker.state["exec"]["c1"] = str(tmp_path)  # no app package there
    docker.save()
    result = diag(app_root)
    (finding,) = result["findings"]
    assert finding["code"] == "routes_unreadable" and "ModuleNotFoundError" in finding["message"]


def test_stale_image_and_second_container(app_root, docker, backend_src):
    healthy(app_root, docker, backend_src)
    docker.add_container(id="c2", name="stray", image="atp-backend-base:bookworm",
                         image_id="sha256:base", ports=[])
    docker.state["exec"]["c2"] = str(backend_src)
    docker.save()
    result = diag(app_root)
    assert result["drift"] is True
    by_code = {f["code"]: f["message"] for f in result["findings"]}
    assert set(by_code) == {"duplicate_backend", "stale_image"}
    assert "automated-trading-platform-backend-aws-1" in by_code["duplicate_backend"]
    assert "stray" in by_code["duplicate_backend"]
    assert by_code["stale_image"].startswith("container stray runs image atp-backend-base")
    assert set(result["logs"]) == {"automated-trading-platform-backend-aws-1", "stray"}


def test_two_containers_publishing_the_port(app_root, docker, backend_src):
    healthy(app_root, docker, backend_src)
    docker.add_container(id="c3", name="local-backend", project="", service="",
                         image="nginx", image_id="sha256:nginx", ports=[8002])
    result = diag(app_root)
    (finding,) = result["findings"]
    assert finding["code"] == "port_conflict"
    assert "automated-trading-platform-backend-aws-1" in finding["message"]
    assert "local-backend (nginx)" in finding["message"]


def test_no_container_running(app_root, docker, backend_src):
    healthy(app_root, docker, backend_src)
    docker.state["containers"][0]["running"] = False
    docker.save()
    result = diag(app_root)
    assert [f["code"] for f in result["findings"]] == ["no_container"]
    assert "exited" in result["findings"][0]["message"]
    assert result["routes"] == {}
    assert list(result["logs"]) == ["automated-trading-platform-backend-aws-1"]
    assert_no_secret(result)


def test_no_credentials(app_root, docker, backend_src):
    healthy(app_root, docker, backend_src)
    write_env(app_root, {"ENVIRONMENT": "aws", "EXCHANGE_CUSTOM_API_KEY": KEY,
                         "EXCHANGE_CUSTOM_API_SECRET": ""})
    result = diag(app_root)
    assert result["credential_alias"] is None and result["credential_pair"] is None
    (finding,) = result["findings"]
    assert finding["code"] == "no_credentials"
    assert "EXCHANGE_CUSTOM_API_SECRET is missing or empty" in finding["message"]
    assert result["env_files"][".env.aws"]["empty"] == ["EXCHANGE_CUSTOM_API_SECRET"]
    assert_no_secret(result)


def test_alias_resolution_across_files(app_root, docker, backend_src):
    healthy(app_root, docker, backend_src)
    write_env(app_root, {"CRYPTO_COM_API_SECRET": SECRET},
              env={"CRYPTO_COM_API_KEY": KEY})
    result = diag(app_root)
    assert result["credential_alias"] == "CRYPTO_COM_API_KEY"
    assert [f["code"] for f in result["findings"]] == ["credential_alias"]
    assert result["drift"] is False
    assert_no_secret(result)


def test_release_image_missing_and_git_sha_from_override(app_root, docker, backend_src):
    rid = healthy(app_root, docker, backend_src)
    (app_root / "deploy.log").unlink()
    override = {"services": {"backend-aws": {"image": f"{REPO}:{rid}",
                                             "build": {"args": {"GIT_SHA": "3" * 40}}}}}
    (app_root / "releases" / rid / "docker-compose.deploy.yml").write_text(json.dumps(override))
    del docker.state["images"][f"{REPO}:{rid}"]
    docker.save()
    result = diag(app_root)
    assert result["git_sha"] == "3" * 40 and result["git_sha_source"] == "compose override"
    assert result["deploy_record"] is None
    assert [f["code"] for f in result["findings"]] == ["release_image_missing"]


def test_nothing_deployed(tmp_path, docker):
    result = diag(tmp_path / "absent")
    assert result["drift"] is True and result["active_release"] is None
    assert [f["code"] for f in result["findings"]] == ["no_release"]
    assert result["env_files"][".env"]["exists"] is False
    assert result["disk"]["path"] == str(tmp_path)


def test_docker_down(app_root, docker, backend_src):
    healthy(app_root, docker, backend_src)
    docker.state["ps_rc"] = 1
    docker.save()
    result = diag(app_root)
    assert "failed" not in result
    assert [f["code"] for f in result["findings"]] == ["docker_unreachable"]
    assert "Cannot connect" in result["findings"][0]["message"]


@pytest.mark.parametrize(("args", "expected"), [
    ({"expected_routes": ["/api/health"]}, "expected_routes"),
    ({"env_files": ["../etc/passwd"]}, "env_files"),
    ({"app_import": "app.main:app()"}, "app_import"),
    ({"log_lines": -1}, "log_lines"),
    ({"command_timeout": 0}, "command_timeout"),
    ({"port": 70000}, "1-65535"),
])
def test_bad_parameters(tmp_path, docker, args, expected):
    result = diag(tmp_path, **args)
    assert result["failed"] is True and expected in result["msg"]
    assert docker.argvs == []


def test_probe_script_is_the_one_documented():
    assert diagnosis_routes.ROUTE_MARK in diagnosis_routes.ROUTE_PROBE
    compile(diagnosis_routes.ROUTE_PROBE, "<probe>", "exec")
    assert sys.version_info >= (3, 8)


def test_expected_routes_default_is_the_app_contract(app_root, docker, backend_src):
    assert diagnose.ARGUMENT_SPEC["expected_routes"]["default"] == list(routes.EXPECTED_ROUTES)
    healthy(app_root, docker, backend_src)
    result = diag(app_root)
    assert result["expected_routes"] == list(routes.EXPECTED_ROUTES)
    result = diag(app_root, expected_routes=["GET /api/health/", "GET /api/health"])
    assert "failed" not in result, result.get("msg")
    assert result["expected_routes"] == ["GET /api/health"]


# --------------------------------------------------------------------------- git sha


RID = "20261124T101500Z-0123456789ab"


def test_git_sha_prefers_successful_deploy_log_record():
    records = [{"release": RID, "git_sha": "aaa", "result": "ok"},
               {"release": "other", "git_sha": "bbb", "result": "ok"},
               {"release": RID, "git_sha": "ccc", "result": "failed"}]
    sha, source, record = diagnose.git_sha_for(RID, records)
    assert (sha, source, record["git_sha"]) == ("aaa", "deploy.log", "aaa")
    sha, source, _ = diagnose.git_sha_for(RID, records[1:])
    assert (sha, source) == ("ccc", "deploy.log")


def test_git_sha_good_record_is_the_release_models():
    """A good record is release_model.is_good: a rollback TO the release is, a deploy rolled
    back away from it (an error) is not, nor is a record without a result."""
    records = [{"release": RID, "git_sha": "aaa", "result": "rolled_back"},
               {"release": RID, "git_sha": "bbb", "result": "rolled_back", "error": "smoke"}]
    assert diagnose.git_sha_for(RID, records)[:2] == ("aaa", "deploy.log")
    records = [{"release": RID, "git_sha": "aaa", "result": "OK"},
               {"release": RID, "git_sha": "bbb"}]
    sha, _, record = diagnose.git_sha_for(RID, records)
    assert sha == "aaa" and record is records[0]
    # no good record at all: the newest record of the release still names the sha
    assert diagnose.git_sha_for(RID, records[1:])[:2] == ("bbb", "deploy.log")


def test_git_sha_falls_back_to_manifest_then_override():
    override = {"services": {"backend-aws": {"image": "x", "build": {"args": {
        "GIT_SHA": "ddd"}}}}}
    assert diagnose.git_sha_for(RID, [], {"git_sha": "mmm"}, override)[:2] == (
        "mmm", "release manifest")
    assert diagnose.git_sha_for(RID, [{"release": RID, "git_sha": "unknown"}], {},
                                override)[:2] == ("ddd", "compose override")
    assert diagnose.git_sha_for(RID, [], {}, {})[:2] == (None, None)
    assert diagnose.git_sha_for(None, [{"release": RID, "git_sha": "x"}]) == (None, None, None)
