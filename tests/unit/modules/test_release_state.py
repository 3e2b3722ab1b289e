"""Tests of the release_state module with a fake `docker` first on PATH."""

from __future__ import annotations

import json
import threading
import time

import pytest
from ansible_collections.atp.deploy.plugins.module_utils import dotenv, release_model
from ansible_collections.atp.deploy.plugins.modules import release_state

from .module_runner import (
    CODE_HASHES,
    FakeDocker,
    doc_spec_problems,
    install_env_set,
    install_release,
    run_module,
    warnings_of,
)

REPO = "automated-trading-platform-backend-aws"
READ_ONLY = {"info", "ps", "inspect", ("compose", "version"), ("image", "inspect")}


def content_hash_of(rid: str) -> str:
    """The code hash of a release install_release made."""
    return CODE_HASHES[rid]


SALT = "per-run-salt-0123456789"


def env_args(values: dict, required=(".env", ".env.aws"), replace=False,
             supersedes=None) -> dict:
    """release_state's env options for these rendered values (digests, never the values)."""
    return {"env_plan": {"files": {f: dotenv.digests(v, SALT) for f, v in values.items()},
                         "required": list(required), "replace": replace,
                         "supersedes": supersedes or {}},
            "env_salt": SALT}


def state(app_root, content_hash="ab" * 32, **extra) -> dict:
    return run_module(release_state, {"app_root": str(app_root), "content_hash": content_hash,
                                      **extra})


def assert_read_only(docker: FakeDocker) -> None:
    for argv in docker.argvs:
        assert argv[0] in READ_ONLY or tuple(argv[:2]) in READ_ONLY, argv


def test_documentation_matches_argument_spec():
    assert doc_spec_problems(release_state) == []


def test_fresh_instance_plans_everything(tmp_path, docker):
    result = state(tmp_path / "absent-app-root")
    assert "failed" not in result, result.get("msg")
    assert result["changed"] is False
    plan = result["plan"]
    rid = plan.pop("release_id")
    assert release_model.is_release_id(rid) and release_model.hash_part(rid) == "ab" * 6
    assert plan == {"new": True, "upload": True, "clone_from": None, "env": False,
                    "env_set": "shared", "build": True, "image_from": None, "activate": True}
    assert result["docker_version"] == "26.1.5" and result["compose_version"] == "2.26.1"
    assert result["releases"] == [] and result["current_release"] is None
    assert result["previous_release"] is None and result["existing_release"] is None
    assert result["image"] == {"ref": f"{REPO}:{rid}", "exists": False, "id": None}
    assert result["containers"] == [] and result["port_publishers"] == []
    assert result["free_mb"] > 0
    assert_read_only(docker)


def in_sync_set(app_root, rid, values=None) -> str:
    """The release's env set, holding the rendered values of env_args(values)."""
    text = "".join(f"{k}='{v}'\n" for k, v in (values or {"A": "1"}).items())
    name = install_env_set(app_root, {".env": text, ".env.aws": ""})
    release = app_root / "releases" / rid
    for rel in (".env", ".env.aws"):
        if (release / rel).is_symlink():
            (release / rel).unlink()
        (release / rel).symlink_to(release_model.env_link_target(rel, name))
    return name


def test_everything_in_place_plans_nothing(app_root, docker):
    rid = install_release(app_root, current=True)
    name = in_sync_set(app_root, rid)
    docker.state["images"][f"{REPO}:{rid}"] = "sha256:rel"
    docker.save()
    docker.add_container(id="c1", image_id="sha256:rel", image=f"{REPO}:{rid}")
    result = state(app_root, content_hash_of(rid),
                   **env_args({".env": {"A": "1"}}, required=[".env", ".env.aws"]))
    assert result["plan"] == {"release_id": rid, "new": False, "upload": False,
                              "clone_from": None, "env": False, "env_set": name,
                              "build": False, "image_from": None, "activate": False}
    assert result["current_release"] == rid and result["existing_release"] == rid
    assert result["image"] == {"ref": f"{REPO}:{rid}", "exists": True, "id": "sha256:rel"}
    assert result["containers"] == [{
        "id": "c1", "name": "automated-trading-platform-backend-aws-1",
        "image": f"{REPO}:{rid}", "image_id": "sha256:rel", "state": "running",
        "running": True}]
    assert result["env_in_sync"] is True and result["env_base"] == name
    assert result["env_files"] == {".env": {"exists": True, "in_sync": True, "set": [],
                                            "kept": [], "dropped": [], "loose_mode": False}}
    assert result["env_missing"] == [] and result["env_links_missing"] == []
    assert result["env_summary"] == [f"env set {name} (unchanged)"]
    assert result["releases"] == [{"id": rid, "hash": rid[-12:], "complete": True,
                                   "partial": False, "code_hash": content_hash_of(rid),
                                   "env": name}]
    assert_read_only(docker)


def test_env_only_change_is_a_new_release_of_the_same_code(app_root, docker):
    rid = install_release(app_root, current=True)
    in_sync_set(app_root, rid)
    docker.state["images"][f"{REPO}:{rid}"] = "sha256:rel"
    docker.save()
    docker.add_container(id="c1", image_id="sha256:rel", image=f"{REPO}:{rid}")
    result = state(app_root, content_hash_of(rid), **env_args({".env": {"A": "2"}}))
    plan = result["plan"]
    assert plan["new"] is True and plan["release_id"] != rid
    assert plan["upload"] is False and plan["clone_from"] == rid
    assert plan["env"] is True and plan["env_set"] is None
    assert plan["build"] is False and plan["image_from"] == f"{REPO}:{rid}"
    assert plan["activate"] is True and result["existing_release"] is None
    assert result["env_files"][".env"]["set"] == ["A"]
    assert "env set: a new one, merged onto the env of" in result["env_summary"][-1]


def test_code_change_with_the_env_in_sync_links_the_active_set(app_root, docker):
    old = install_release(app_root, {"docker-compose.yml": "old\n"}, "2026-11-01T00:00:00",
                          current=True)
    name = in_sync_set(app_root, old)
    result = state(app_root, **env_args({".env": {"A": "1"}}))
    plan = result["plan"]
    assert plan["new"] and plan["upload"] and plan["build"]
    assert plan["env"] is False and plan["env_set"] == name
    assert release_model.hash_part(plan["release_id"]) == release_model.release_hash(
        "ab" * 32, name)


def test_legacy_layout_moves_into_an_env_set_with_a_new_release(app_root, docker):
    rid = install_release(app_root, current=True, env="shared")
    (app_root / "shared" / ".env").write_text("A='1'\nKEEP=x\n")
    (app_root / "shared" / ".env.aws").write_text("")
    docker.state["images"][f"{REPO}:{rid}"] = "sha256:rel"
    docker.save()
    docker.add_container(id="c1", image_id="sha256:rel", image=f"{REPO}:{rid}")
    result = state(app_root, content_hash_of(rid), **env_args({".env": {"A": "1"}}))
    plan = result["plan"]
    content = {".env": b"A='1'\nKEEP=x\n", ".env.aws": b""}
    assert result["env_base"] == "shared" and result["env_in_sync"] is False
    assert plan["new"] is True and plan["clone_from"] == rid and plan["env"] is True
    assert plan["image_from"] == f"{REPO}:{rid}" and plan["build"] is False
    # the values did not change: the id already names the set the env moves into
    assert release_model.hash_part(plan["release_id"]) == release_model.release_hash(
        content_hash_of(rid), release_model.env_set_hash(content))
    assert "moved into an env set, values unchanged" in result["env_summary"][-1]


def test_release_on_disk_not_current_image_missing_stale_container(app_root, docker):
    old = install_release(app_root, {"docker-compose.yml": "old\n"}, "2026-11-01T00:00:00",
                          current=True)
    rid = install_release(app_root)
    docker.add_container(image_id="sha256:old")
    result = state(app_root, content_hash_of(rid))
    assert result["plan"] == {"release_id": rid, "new": False, "upload": False,
                              "clone_from": None, "env": False, "env_set": None,
                              "build": True, "image_from": None, "activate": True}
    assert result["current_release"] == old
    assert result["previous_release"] is None


def test_env_out_of_sync(app_root, docker):
    (app_root / "shared" / ".env").write_text("A=1\n")
    (app_root / "shared" / ".env").chmod(0o600)
    result = state(app_root, **env_args({".env": {"A": "2"}, ".env.aws": {"B": "1"}}))
    assert result["plan"]["env"] is True and result["plan"]["activate"] is True
    assert result["env_in_sync"] is False
    assert result["env_files"][".env"]["set"] == ["A"]
    assert result["env_files"][".env.aws"] == {"exists": False, "in_sync": False, "set": ["B"],
                                               "kept": [], "dropped": [], "loose_mode": False}


def test_partial_and_foreign_dirs(app_root, docker):
    rid = install_release(app_root)
    (app_root / "releases" / (rid + ".partial")).mkdir()
    (app_root / "releases" / "notes").mkdir()
    no_manifest = "20261125T000000Z-" + rid[-12:]
    (app_root / "releases" / no_manifest).mkdir()
    result = state(app_root, content_hash_of(rid))
    assert [(r["id"], r["complete"], r["partial"]) for r in result["releases"]] == [
        (rid, True, False), (rid, False, True), (no_manifest, False, False)]
    assert result["existing_release"] == rid


def test_previous_release_is_the_one_live_before_from_deploy_log(app_root, docker):
    first = install_release(app_root, {"a": "1\n"}, "2026-11-01T00:00:00")
    second = install_release(app_root, {"a": "2\n"}, "2026-11-02T00:00:00")
    third = install_release(app_root, {"a": "3\n"}, "2026-11-03T00:00:00", current=True)
    log = [{"release": first, "result": "ok"}, {"release": second, "result": "failed"},
           {"release": third, "result": "ok"}]
    (app_root / "deploy.log").write_text("".join(json.dumps(r) + "\n" for r in log))
    assert state(app_root)["previous_release"] == first
    # older content redeployed: first is current again, the one live before it is third
    log += [{"release": second, "result": "ok"}, {"release": first, "result": "ok"}]
    (app_root / "deploy.log").write_text("".join(json.dumps(r) + "\n" for r in log))
    (app_root / "current").unlink()
    (app_root / "current").symlink_to(f"releases/{first}")
    assert state(app_root)["previous_release"] == second
    (app_root / "deploy.log").unlink()
    assert state(app_root)["previous_release"] is None  # never guessed from the ids


def test_named_release_plans_its_activation(app_root, docker):
    old = install_release(app_root, {"a": "1\n"}, "2026-11-01T00:00:00", env="shared")
    rid = install_release(app_root, current=True)
    docker.state["images"][f"{REPO}:{old}"] = "sha256:old"
    docker.save()
    result = run_module(release_state, {"app_root": str(app_root), "release_id": old})
    assert result["plan"] == {"release_id": old, "new": False, "upload": False,
                              "clone_from": None, "env": False, "env_set": "shared",
                              "build": False, "image_from": None, "activate": True}
    assert result["current_release"] == rid and result["env_summary"] == []
    result = run_module(release_state, {"app_root": str(app_root),
                                        "release_id": "20261101T000000Z-ffffffffffff"})
    assert result["failed"] is True and "is not a complete release on the instance" in \
        result["msg"] and rid in result["msg"]
    result = run_module(release_state, {"app_root": str(app_root), "release_id": "latest"})
    assert result["failed"] is True and "release_id must look like" in result["msg"]


def test_two_port_publishers_warn(app_root, docker):
    docker.add_container(id="c1", image_id="sha256:a")
    docker.add_container(id="c2", name="stray-backend", image="old:latest", project="other",
                         service="web", image_id="sha256:b")
    result = state(app_root)
    assert [c["id"] for c in result["containers"]] == ["c1"]
    assert [p["name"] for p in result["port_publishers"]] == [
        "automated-trading-platform-backend-aws-1", "stray-backend"]
    assert any("2 containers publish host port 8002" in w for w in warnings_of(result))


def test_docker_engine_down(app_root, docker):
    docker.state["info"] = {"rc": 1, "stderr": "Cannot connect to the Docker daemon at "
                            "unix:///var/run/docker.sock. Is the docker daemon running?\nmore"}
    docker.save()
    result = state(app_root)
    assert result["failed"] is True
    assert result["msg"] == (
        "docker engine not reachable on the instance: `docker info` failed: Cannot connect to "
        "the Docker daemon at unix:///var/run/docker.sock. Is the docker daemon running?; "
        "start docker (systemctl start docker)")


@pytest.mark.parametrize(("compose", "seen"), [
    ({"rc": 0, "version": "2.17.3"}, "gave: Docker Compose version v2.17.3;"),
    ({"rc": 1}, "gave: docker: unknown command: docker compose;"),
])
def test_compose_v2_required(app_root, docker, compose, seen):
    docker.state["compose"] = compose
    docker.save()
    result = state(app_root)
    assert result["failed"] is True
    assert result["msg"].startswith("docker compose v2 >= 2.18 required on the instance")
    assert seen in result["msg"]
    assert "\n" not in result["msg"]


def test_app_root_problems(tmp_path, docker):
    afile = tmp_path / "afile"
    afile.write_text("x")
    result = state(afile)
    assert result["failed"] is True and "is a file" in result["msg"]
    result = state(tmp_path / "no" / "such" / "root")
    assert result["failed"] is True and "does not exist" in result["msg"]


def test_low_disk(app_root, docker):
    result = state(app_root, min_free_mb=10**12)
    assert result["failed"] is True
    assert "not enough free disk" in result["msg"] and "expected >= 1000000000000 MiB" in \
        result["msg"]


def test_bad_inputs(app_root, docker):
    result = state(app_root, content_hash="xyz")
    assert result["failed"] is True and "content_hash must be a sha256 hex" in result["msg"]
    result = state(app_root, **env_args({"../.env": {"A": "1"}}))
    assert result["failed"] is True and "../.env is outside the app dir" in result["msg"]
    result = state(app_root, env_plan={"files": {".env": {"A": "0" * 64}}})
    assert result["failed"] is True and "env_salt must be the per-run salt" in result["msg"]
    result = state(app_root, env_plan={"files": {".env": "A=1"}}, env_salt=SALT)
    assert result["failed"] is True and "env_plan.files must map" in result["msg"]


def test_check_mode_same_answer(app_root, docker):
    result = run_module(release_state, {"app_root": str(app_root), "content_hash": "ab" * 32},
                        check_mode=True)
    assert result["changed"] is False and result["plan"]["upload"] is True


# --------------------------------------------------------------------------- deploy lock

LOCK = {"token": "tok-mine", "holder": "alice@laptop", "release": "abababababab"}


def lock_path(app_root):
    return app_root / ".deploy.lock"


def foreign_lock(app_root, token="tok-other", holder="bob@ci", started="2026-11-24T09:00:00Z"):
    record = {"token": token, "holder": holder, "release": "0123456789ab", "started": started}
    lock_path(app_root).write_text(json.dumps(record))
    return record


def in_place(app_root, docker) -> str:
    """A deployed release, its image and container: the plan needs nothing."""
    rid = install_release(app_root, current=True)
    docker.state["images"][f"{REPO}:{rid}"] = "sha256:rel"
    docker.save()
    docker.add_container(id="c1", image_id="sha256:rel", image=f"{REPO}:{rid}")
    return rid


def test_lock_taken_when_the_plan_changes_something(app_root, docker):
    result = state(app_root, lock=LOCK)
    assert "failed" not in result, result.get("msg")
    assert result["changed"] is False and result["plan"]["upload"] is True
    assert result["lock_acquired"] is True
    on_disk = json.loads(lock_path(app_root).read_text())
    assert on_disk == result["lock"]
    assert {k: on_disk[k] for k in LOCK} == LOCK and on_disk["started"].endswith("Z")
    assert "pid" not in on_disk
    assert result["lock_holder"] is None and result["lock_broken"] is None
    assert_read_only(docker)


def test_no_lock_when_nothing_to_change_unless_lock_always(app_root, docker):
    rid = in_place(app_root, docker)
    result = state(app_root, content_hash_of(rid), lock=LOCK)
    assert not any(result["plan"][k] for k in ("upload", "env", "build", "activate"))
    assert result["lock_acquired"] is False and result["lock"] is None
    assert not lock_path(app_root).exists()
    result = state(app_root, content_hash_of(rid), lock=LOCK, lock_always=True)
    assert result["lock_acquired"] is True and lock_path(app_root).exists()


def test_no_lock_option_no_lock(app_root, docker):
    result = state(app_root)
    assert result["lock_acquired"] is False and not lock_path(app_root).exists()


def test_check_mode_never_locks_but_reports_the_holder(app_root, docker):
    result = run_module(release_state, {"app_root": str(app_root), "content_hash": "ab" * 32,
                                        "lock": LOCK}, check_mode=True)
    assert result["lock_acquired"] is False and not lock_path(app_root).exists()
    assert result["lock_holder"] is None
    foreign_lock(app_root)
    result = run_module(release_state, {"app_root": str(app_root), "content_hash": "ab" * 32,
                                        "lock": LOCK}, check_mode=True)
    assert "failed" not in result
    assert {k: result["lock_holder"][k] for k in ("holder", "started", "release", "expired")} \
        == {"holder": "bob@ci", "started": "2026-11-24T09:00:00Z", "release": "0123456789ab",
            "expired": False}
    assert any("is held by bob@ci" in w for w in warnings_of(result))
    assert json.loads(lock_path(app_root).read_text())["token"] == "tok-other"


def test_read_only_call_reports_a_held_lock(app_root, docker):
    foreign_lock(app_root)
    result = state(app_root)
    assert result["lock_holder"]["holder"] == "bob@ci"
    assert "token" not in result["lock_holder"]


def test_lock_held_by_another_run_fails_naming_it(app_root, docker):
    before = foreign_lock(app_root)
    result = state(app_root, lock=LOCK)
    assert result["failed"] is True
    assert result["msg"].startswith(
        "deploy lock held by bob@ci since 2026-11-24T09:00:00Z for release 0123456789ab (last "
        "renewed ")
    assert "lock_action=release" in result["msg"] and "tok-other" not in result["msg"]
    assert result["lock_acquired"] is False and result["lock_holder"]["holder"] == "bob@ci"
    assert json.loads(lock_path(app_root).read_text()) == before


def test_own_lock_is_reentrant(app_root, docker):
    foreign_lock(app_root, token="tok-mine", holder="alice@laptop")
    result = state(app_root, lock=LOCK)
    assert "failed" not in result
    assert result["lock_acquired"] is True
    assert result["lock"]["started"] == "2026-11-24T09:00:00Z"


def test_break_lock_takes_it_and_names_the_broken_holder(app_root, docker):
    foreign_lock(app_root)
    result = state(app_root, lock=LOCK, break_lock=True)
    assert "failed" not in result, result.get("msg")
    assert result["lock_acquired"] is True and result["changed"] is False
    assert {k: result["lock_broken"][k] for k in ("holder", "started", "release")} == {
        "holder": "bob@ci", "started": "2026-11-24T09:00:00Z", "release": "0123456789ab"}
    assert json.loads(lock_path(app_root).read_text())["token"] == "tok-mine"
    assert any("broke the deploy lock of bob@ci" in w for w in warnings_of(result))


def test_break_lock_of_a_corrupt_lock_file(app_root, docker):
    lock_path(app_root).write_text("{half")
    result = state(app_root, lock=LOCK)
    assert result["failed"] is True and "held by unknown (corrupt lock file)" in result["msg"]
    result = state(app_root, lock=LOCK, break_lock=True)
    assert result["lock_acquired"] is True


def test_lock_wait_takes_the_lock_once_freed_and_reads_again(app_root, docker, monkeypatch):
    monkeypatch.setattr(release_state, "LOCK_POLL_SECONDS", 0.05)
    foreign_lock(app_root)
    installed = []
    contended = threading.Event()
    real_try = release_state.deploy_lock.try_acquire

    def try_acquire(path, record):
        acquired, lock, taken = real_try(path, record)
        if not acquired:
            contended.set()  # the module found the lock held: the other run may finish now
        return acquired, lock, taken

    monkeypatch.setattr(release_state.deploy_lock, "try_acquire", try_acquire)

    def other_deploy_finishes():
        assert contended.wait(10)
        time.sleep(0.1)
        installed.append(install_release(app_root, {"a": "other\n"}, "2026-11-24T09:00:00"))
        lock_path(app_root).unlink()

    thread = threading.Thread(target=other_deploy_finishes)
    thread.start()
    try:
        result = state(app_root, lock=LOCK, lock_wait=10)
    finally:
        thread.join()
    assert "failed" not in result, result.get("msg")
    assert result["lock_acquired"] is True and result["lock_broken"] is None
    # Read again after the wait: the release the other run unpacked meanwhile is seen.
    assert [r["id"] for r in result["releases"]] == installed
    assert json.loads(lock_path(app_root).read_text())["token"] == "tok-mine"


def test_lock_wait_is_bounded(app_root, docker, monkeypatch):
    monkeypatch.setattr(release_state, "LOCK_POLL_SECONDS", 0.05)
    foreign_lock(app_root)
    started = time.monotonic()
    result = state(app_root, lock=LOCK, lock_wait=1)
    assert 0.9 <= time.monotonic() - started < 5
    assert result["failed"] is True
    assert result["msg"].startswith("deploy lock held by bob@ci since 2026-11-24T09:00:00Z for "
                                    "release 0123456789ab (last renewed ")
    assert "(still held after waiting 1 s): " in result["msg"]


def test_failure_after_waiting_releases_our_lock(app_root, docker, monkeypatch):
    monkeypatch.setattr(release_state, "LOCK_POLL_SECONDS", 0.05)
    foreign_lock(app_root)
    real_free_mb = release_state.fsutil.free_mb
    calls = []

    def free_mb(path):
        calls.append(path)
        return real_free_mb(path) if len(calls) == 1 else 0  # the disk filled while waiting

    monkeypatch.setattr(release_state.fsutil, "free_mb", free_mb)
    result = state(app_root, lock=LOCK, break_lock=True)
    assert result["failed"] is True and "not enough free disk" in result["msg"]
    assert result["lock_acquired"] is False
    assert not lock_path(app_root).exists()


def test_lock_creates_missing_app_root_with_parent_owner(tmp_path, docker):
    root = tmp_path / "fresh" / "app"
    root.parent.mkdir()
    result = state(root, lock=LOCK)
    assert "failed" not in result, result.get("msg")
    assert result["lock_acquired"] is True and (root / ".deploy.lock").is_file()
    st, parent = root.stat(), root.parent.stat()
    assert (st.st_uid, st.st_gid) == (parent.st_uid, parent.st_gid)
    assert st.st_mode & 0o777 == 0o755


def test_custom_lock_file(app_root, docker, tmp_path):
    custom = tmp_path / "locks" / "atp.lock"
    custom.parent.mkdir()
    result = state(app_root, lock=LOCK, lock_file=str(custom))
    assert result["lock_acquired"] is True and custom.is_file()
    assert not lock_path(app_root).exists()


def test_bad_lock_inputs(app_root, docker):
    result = state(app_root, lock={**LOCK, "token": "  "})
    assert result["failed"] is True and "lock.token must be a non-empty string" in result["msg"]
    result = state(app_root, lock=LOCK, lock_wait=-1)
    assert result["failed"] is True and "lock_wait must be >= 0" in result["msg"]


# --------------------------------------------------------------------------- adoption


def test_hand_managed_checkout_is_reported_not_failed(tmp_path, docker):
    root = tmp_path / "checkout"
    root.mkdir()
    (root / "docker-compose.yml").write_text("services: {}\n")
    (root / ".git").mkdir()
    (root / ".env").write_text("A=1\n")
    result = state(root, lock=LOCK)
    assert "failed" not in result, result.get("msg")
    assert result["adoption_needed"] is True and result["plan"]["upload"] is True
    assert "hand-managed checkout" in result["plan_reasons"][0]
    assert result["lock_acquired"] is True


def test_managed_layout_needs_no_adoption(app_root, docker):
    (app_root / "docker-compose.yml").write_text("x")
    assert state(app_root)["adoption_needed"] is False


# --------------------------------------------------------------------------- env plan

OPERATOR_ENV = "# by hand\nPOSTGRES_PASSWORD=hand-pw\nexport ENVIRONMENT='aws'\nOLD=1\n"


def test_env_plan_names_kept_set_and_dropped_keys_never_values(app_root, docker):
    (app_root / "shared" / ".env").write_text(OPERATOR_ENV)
    (app_root / "shared" / ".env").chmod(0o600)
    result = state(app_root, **env_args({".env": {"ENVIRONMENT": "aws", "NEW": "x"}}))
    assert result["env_files"][".env"] == {
        "exists": True, "in_sync": False, "set": ["NEW"],
        "kept": ["OLD", "POSTGRES_PASSWORD"], "dropped": [], "loose_mode": False}
    assert result["env_summary"] == [".env: sets NEW; kept from the instance: OLD, "
                                     "POSTGRES_PASSWORD", "created empty (0600): .env.aws",
                                     "env set: a new one, merged onto the env of shared"]
    assert "env .env: sets NEW; kept from the instance: OLD, POSTGRES_PASSWORD" in \
        result["plan_reasons"]
    assert "hand-pw" not in json.dumps(result)
    replaced = state(app_root, **env_args({".env": {"ENVIRONMENT": "aws"}}, replace=True))
    assert replaced["env_files"][".env"]["dropped"] == ["OLD", "POSTGRES_PASSWORD"]
    assert replaced["plan"]["env"] is True


def test_only_instance_keys_left_is_in_sync(app_root, docker):
    rid = install_release(app_root, current=True)
    name = in_sync_set(app_root, rid, {"ENVIRONMENT": "aws", "OLD": "x"})
    result = state(app_root, content_hash_of(rid), **env_args({".env": {"ENVIRONMENT": "aws"}}))
    assert result["env_in_sync"] is True and result["plan"]["env"] is False
    assert result["plan"]["env_set"] == name and result["plan"]["new"] is False
    assert result["env_files"][".env"]["kept"] == ["OLD"]
    assert result["env_summary"] == [".env: kept from the instance: OLD",
                                     f"env set {name} (unchanged)"]


def test_superseded_alias_is_a_change(app_root, docker):
    (app_root / "shared" / ".env.aws").write_text(
        "CRYPTOCOM_API_KEY=k\nEXCHANGE_CUSTOM_API_KEY=k\n")
    (app_root / "shared" / ".env.aws").chmod(0o600)
    result = state(app_root, **env_args({".env.aws": {"EXCHANGE_CUSTOM_API_KEY": "k"}},
                                        supersedes={"EXCHANGE_CUSTOM_API_KEY":
                                                    ["CRYPTOCOM_API_KEY"]}))
    assert result["env_files"][".env.aws"]["dropped"] == ["CRYPTOCOM_API_KEY"]
    assert result["plan"]["env"] is True


def test_loose_mode_of_the_set_is_a_change(app_root, docker):
    rid = install_release(app_root, current=True)
    name = in_sync_set(app_root, rid)
    (app_root / "shared" / "env" / name / ".env").chmod(0o644)
    result = state(app_root, content_hash_of(rid), **env_args({".env": {"A": "1"}}))
    assert result["env_files"][".env"]["loose_mode"] is True and result["plan"]["env"] is True
    assert result["plan"]["env_set"] == name and result["plan"]["new"] is False
    assert result["env_summary"][-1] == f"env set {name}: modes made 0700/0600"


def test_missing_env_files_make_a_new_set_and_missing_links_are_fixed(app_root, docker):
    rid = install_release(app_root, current=True)
    docker.state["images"][f"{REPO}:{rid}"] = "sha256:rel"
    docker.save()
    docker.add_container(id="c1", image_id="sha256:rel", image=f"{REPO}:{rid}")
    in_sync_set(app_root, rid, {})
    required = [".env", ".env.aws", ".env.db", "config/db.env"]
    result = state(app_root, content_hash_of(rid), **env_args({".env": {}}, required=required))
    assert result["env_missing"] == [".env.db", "config/db.env"]
    assert result["plan"]["new"] is True and result["plan"]["env"] is True
    assert result["plan"]["clone_from"] == rid
    assert "created empty (0600): .env.db, config/db.env" in result["env_summary"]
    # a set holding them exists, the release lacks the links: relinked, same release
    content = {".env": "", ".env.aws": "", ".env.db": "", "config/db.env": ""}
    name = install_env_set(app_root, content)
    for rel in (".env", ".env.aws"):
        (app_root / "releases" / rid / rel).unlink()
        (app_root / "releases" / rid / rel).symlink_to(release_model.env_link_target(rel, name))
    result = state(app_root, content_hash_of(rid), **env_args({".env": {}}, required=required))
    assert result["plan"]["new"] is False and result["plan"]["env"] is True
    assert result["env_links_missing"] == [".env.db", "config/db.env"]
    assert "linked into the release: .env.db, config/db.env" in result["env_summary"]
    for rel in (".env.db", "config/db.env"):
        (app_root / "releases" / rid / rel).parent.mkdir(exist_ok=True)
        (app_root / "releases" / rid / rel).symlink_to(release_model.env_link_target(rel, name))
    result = state(app_root, content_hash_of(rid), **env_args({".env": {}}, required=required))
    assert result["plan"]["env"] is False and result["plan"]["activate"] is False
    assert result["env_missing"] == [] and result["env_links_missing"] == []


def test_adoption_plans_against_the_checkouts_env_files(tmp_path, docker):
    root = tmp_path / "checkout"
    root.mkdir()
    (root / "docker-compose.yml").write_text("services: {}\n")
    (root / ".env").write_text(OPERATOR_ENV)
    (root / ".env").chmod(0o600)
    result = state(root, **env_args({".env": {"ENVIRONMENT": "aws"}},
                                    required=[".env", ".env.db"]))
    assert result["adoption_needed"] is True
    assert result["env_files"][".env"]["kept"] == ["OLD", "POSTGRES_PASSWORD"]
    assert result["env_missing"] == [".env.db"] and result["env_links_missing"] == []
    assert result["plan"]["upload"] is True and result["plan"]["env"] is True
    assert result["env_base"] == "checkout"


def test_unreadable_env_file_fails_naming_its_line(app_root, docker):
    (app_root / "shared" / ".env").write_text("A=1\nB=\"open secret-xyz\n")
    result = state(app_root, **env_args({".env": {"A": "1"}}))
    assert result["failed"] is True and "\n" not in result["msg"]
    assert "line 2" in result["msg"] and "secret-xyz" not in result["msg"]


def test_env_paths_outside_the_app_are_warned_about(app_root, docker):
    result = state(app_root, **env_args({".env": {}}, required=["/etc/x.env"]))
    assert "failed" not in result
    assert any("/etc/x.env is an absolute path" in w for w in warnings_of(result))
