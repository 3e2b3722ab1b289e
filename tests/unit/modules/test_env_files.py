"""Tests of the env_files module: a release's env set (merged onto the active release's env),
its links, the env-only release made from the release holding the code; on tmp_path."""

from __future__ import annotations

import grp
import json
import os
import pwd

import pytest
from ansible_collections.atp.deploy.plugins.module_utils import dotenv, release_model
from ansible_collections.atp.deploy.plugins.modules import env_files

from .module_runner import (
    doc_spec_problems,
    install_env_set,
    install_release,
    run_module,
    warnings_of,
)

USER = pwd.getpwuid(os.getuid()).pw_name
GROUP = grp.getgrgid(os.getgid()).gr_name
SECRET = {"EXCHANGE_CUSTOM_API_KEY": "very-secret-value"}
OPERATOR = ("# the operator's file\nexport POSTGRES_PASSWORD=\"hand-pw\"\n"
            "ENVIRONMENT=aws  # inline\nCRYPTOCOM_API_KEY=old-alias\n")


@pytest.fixture
def app(tmp_path):
    """app_root with one release (no env links yet), not active."""
    root = tmp_path / "app"
    (root / "releases").mkdir(parents=True)
    return root


@pytest.fixture
def rid(app):
    return install_release(app)


def args(app, rid, files, **extra) -> dict:
    return {"app_root": str(app), "release_id": rid, "files": files, "owner": USER,
            "group": GROUP, **extra}


def write(app, name, text, mode=0o600):
    path = app / "shared" / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    path.chmod(mode)
    return path


def env_of(app, rid) -> str | None:
    return release_model.release_env(str(app / "releases" / rid))


def read(app, rid, rel) -> str:
    return (app / "releases" / rid / rel).read_text()


def activate(app, rid):
    link = app / "current"
    if link.is_symlink():
        link.unlink()
    link.symlink_to(f"releases/{rid}")


def test_documentation_matches_argument_spec():
    assert doc_spec_problems(env_files) == []


def test_first_set_is_written_0700_0600_and_linked(app, rid):
    result = run_module(env_files, args(app, rid, {".env": SECRET, ".env.aws": {"A": "1"}}))
    assert "failed" not in result, result.get("msg")
    name = result["env_set"]
    assert result["changed"] is True and result["set_written"] is True
    assert result["base"] == "shared" and result["cloned_from"] is None
    assert result["files"] == {".env": True, ".env.aws": True}
    assert result["set"] == {".env": ["EXCHANGE_CUSTOM_API_KEY"], ".env.aws": ["A"]}
    assert sorted(result["linked"]) == [".env", ".env.aws"]
    assert env_of(app, rid) == name
    path = app / "shared" / "env" / name
    assert os.stat(path).st_mode & 0o777 == 0o700
    assert os.readlink(app / "releases" / rid / ".env") == f"../../shared/env/{name}/.env"
    assert read(app, rid, ".env") == (dotenv.HEADER + "\n"
                                      "EXCHANGE_CUSTOM_API_KEY='very-secret-value'\n")
    assert os.stat(path / ".env").st_mode & 0o777 == 0o600
    assert os.stat(path / ".env").st_uid == os.getuid()
    assert sorted(os.listdir(path)) == [".env", ".env.aws"]
    again = run_module(env_files, args(app, rid, {".env": SECRET, ".env.aws": {"A": "1"}}))
    assert again["changed"] is False and again["env_set"] == name and again["linked"] == []


def test_result_never_contains_values(app, rid):
    write(app, ".env", OPERATOR)
    result = run_module(env_files, args(app, rid, {".env": SECRET}))
    text = json.dumps(result)
    assert "very-secret-value" not in text and "hand-pw" not in text


def test_legacy_shared_files_are_the_base_and_never_written(app, rid):
    legacy = write(app, ".env", OPERATOR, mode=0o644)
    result = run_module(env_files, args(app, rid, {".env": {"ENVIRONMENT": "aws", "NEW": "1"}}))
    assert result["set"] == {".env": ["NEW"]}
    assert result["kept"] == {".env": ["CRYPTOCOM_API_KEY", "POSTGRES_PASSWORD"]}
    assert result["dropped"] == {".env": []}
    assert read(app, rid, ".env") == OPERATOR + "NEW='1'\n"
    assert legacy.read_text() == OPERATOR and os.stat(legacy).st_mode & 0o777 == 0o644


def test_the_base_is_the_active_releases_set(app, rid):
    first = run_module(env_files, args(app, rid, {".env": {"A": "alpha-one", "KEEP": "kept"}}))
    activate(app, rid)
    other = install_release(app, {"docker-compose.yml": "other\n"}, "2026-11-25T00:00:00")
    result = run_module(env_files, args(app, other, {".env": {"A": "alpha-two"}}))
    assert result["base"] == first["env_set"] and result["kept"] == {".env": ["KEEP"]}
    assert result["env_set"] != first["env_set"]
    assert dotenv.values(read(app, other, ".env")) == {"A": "alpha-two", "KEEP": "kept"}
    # the active release's env is untouched: a rollback to it gets its own values back
    assert dotenv.values(read(app, rid, ".env")) == {"A": "alpha-one", "KEEP": "kept"}


def test_a_key_the_deploy_passes_wins(app, rid):
    write(app, ".env", OPERATOR)
    run_module(env_files, args(app, rid, {".env": {"POSTGRES_PASSWORD": "new-pw"}}))
    text = read(app, rid, ".env")
    assert "POSTGRES_PASSWORD='new-pw'\n" in text and "hand-pw" not in text
    assert text.startswith("# the operator's file\n")


def test_replace_drops_instance_only_keys_and_names_them(app, rid):
    write(app, ".env", OPERATOR)
    result = run_module(env_files, args(app, rid, {".env": {"ENVIRONMENT": "aws"}},
                                        replace=True))
    assert result["dropped"] == {".env": ["CRYPTOCOM_API_KEY", "POSTGRES_PASSWORD"]}
    assert result["kept"] == {".env": []}
    assert dotenv.values(read(app, rid, ".env")) == {"ENVIRONMENT": "aws"}


def test_superseded_alias_is_dropped_without_replace(app, rid):
    write(app, ".env.aws", OPERATOR)
    supersedes = {"EXCHANGE_CUSTOM_API_KEY": ["CRYPTO_COM_API_KEY", "CRYPTOCOM_API_KEY"]}
    result = run_module(env_files, args(app, rid, {".env.aws": SECRET}, supersedes=supersedes))
    assert result["dropped"] == {".env.aws": ["CRYPTOCOM_API_KEY"]}
    assert result["kept"] == {".env.aws": ["ENVIRONMENT", "POSTGRES_PASSWORD"]}
    assert "CRYPTOCOM_API_KEY" not in dotenv.values(read(app, rid, ".env.aws"))


def test_ensure_carries_other_env_files_and_creates_the_missing_ones_empty(app, rid):
    write(app, ".env.db", "POSTGRES_INITDB_ARGS=x\n", mode=0o640)
    (app / "shared" / "secrets").mkdir()
    ensure = [".env.db", "config/db.env", "secrets/runtime.env", "/etc/x.env"]
    result = run_module(env_files, args(app, rid, {".env": {}}, ensure=ensure))
    assert result["created"] == ["config/db.env"]
    assert sorted(result["linked"]) == [".env", ".env.db", "config/db.env", "secrets"]
    path = app / "shared" / "env" / result["env_set"]
    assert sorted(str(p.relative_to(path)) for p in path.rglob("*")) == [
        ".env", ".env.db", "config", "config/db.env"]
    assert os.stat(path / "config").st_mode & 0o777 == 0o700
    assert os.stat(path / ".env.db").st_mode & 0o777 == 0o600
    assert read(app, rid, ".env.db") == "POSTGRES_INITDB_ARGS=x\n"
    assert os.readlink(app / "releases" / rid / "secrets") == "../../shared/secrets"
    assert any("/etc/x.env is an absolute path" in w for w in warnings_of(result))


def test_env_only_release_is_made_from_the_release_holding_the_code(app, rid):
    first = run_module(env_files, args(app, rid, {".env": {"A": "alpha-one"}}))
    activate(app, rid)
    new = "20261125T000000Z-aaaaaaaaaaaa"
    result = run_module(env_files, args(app, new, {".env": {"A": "alpha-two"}},
                                        clone_from=rid))
    assert "failed" not in result, result.get("msg")
    assert result["cloned_from"] == rid and result["changed"] is True
    assert release_model.code_hash(str(app / "releases" / new)) == \
        release_model.code_hash(str(app / "releases" / rid))
    assert env_of(app, new) == result["env_set"] != first["env_set"]
    assert dotenv.values(read(app, new, ".env")) == {"A": "alpha-two"}
    assert dotenv.values(read(app, rid, ".env")) == {"A": "alpha-one"}


def test_missing_release_without_clone_from_fails(app):
    result = run_module(env_files, args(app, "20261125T000000Z-aaaaaaaaaaaa", {".env": {}}))
    assert result["failed"] is True and "is not unpacked" in result["msg"]
    result = run_module(env_files, args(app, "20261125T000000Z-aaaaaaaaaaaa", {".env": {}},
                                        clone_from="20261101T000000Z-bbbbbbbbbbbb"))
    assert result["failed"] is True and "clone_from must name a complete release" in \
        result["msg"]
    assert not (app / "shared" / "env").exists()


def test_a_real_file_where_a_link_goes_fails(app, rid):
    (app / "releases" / rid / ".env").write_text("mine")
    result = run_module(env_files, args(app, rid, {".env": {}}))
    assert result["failed"] is True and "move the file away" in result["msg"]
    assert (app / "releases" / rid / ".env").read_text() == "mine"


def test_same_content_reuses_the_set(app, rid):
    name = install_env_set(app, {".env": dotenv.HEADER + "\nA='alpha-one'\n"})
    result = run_module(env_files, args(app, rid, {".env": {"A": "alpha-one"}}))
    assert result["env_set"] == name and result["set_written"] is False


def test_values_as_json_documents(app, rid):
    result = run_module(env_files, args(app, rid, {".env": json.dumps({"A": "1"}),
                                                   ".env.aws": ""}))
    assert result["set"] == {".env": ["A"], ".env.aws": []}
    assert dotenv.values(read(app, rid, ".env")) == {"A": "1"}
    result = run_module(env_files, args(app, rid, {".env": "not json"}))
    assert result["failed"] is True and "must be a mapping (or its JSON)" in result["msg"]


def test_unreadable_base_file_fails_naming_the_line_not_the_value(app, rid):
    write(app, ".env", "A=1\nB='never closed secret-xyz\n")
    result = run_module(env_files, args(app, rid, {".env": json.dumps({"A": "2"})}))
    assert result["failed"] is True and "\n" not in result["msg"]
    assert "line 2" in result["msg"] and "of B is never closed" in result["msg"]
    assert "secret-xyz" not in result["msg"]


@pytest.mark.parametrize("name", ["../x", ".", "..", "/etc/passwd", "", "secrets/x.env"])
def test_bad_paths_rejected(app, rid, name):
    result = run_module(env_files, args(app, rid, {name: SECRET}))
    assert result["failed"] is True
    assert "expected file paths inside the release" in result["msg"] or \
        "under secrets/" in result["msg"]
    assert not (app / "shared").exists()


def test_bad_values_owner_and_id_rejected(app, rid):
    result = run_module(env_files, args(app, rid, {".env": {"BAD NAME": "x"}}))
    assert result["failed"] is True and "invalid variable name" in result["msg"]
    result = run_module(env_files, args(app, rid, {".env": "A=1\n"}))
    assert result["failed"] is True and "must be a mapping" in result["msg"]
    result = run_module(env_files, args(app, rid, {".env": SECRET}, owner="no-such-user-xyz"))
    assert result["failed"] is True and "does not exist" in result["msg"]
    result = run_module(env_files, args(app, "latest", {".env": SECRET}))
    assert result["failed"] is True and "release_id must look like" in result["msg"]


def test_check_mode_reports_and_writes_nothing(app, rid):
    result = run_module(env_files, args(app, rid, {".env": SECRET}, ensure=[".env.db"]),
                        check_mode=True)
    assert result["changed"] is True and result["files"] == {".env": True}
    assert result["created"] == [".env.db"] and result["set_written"] is True
    assert sorted(result["linked"]) == [".env", ".env.db"]
    assert not (app / "shared").exists()
    assert not (app / "releases" / rid / ".env").is_symlink()
    new = "20261125T000000Z-aaaaaaaaaaaa"
    result = run_module(env_files, args(app, new, {".env": {}}, clone_from=rid),
                        check_mode=True)
    assert result["cloned_from"] == rid and result["changed"] is True
    assert not (app / "releases" / new).exists()


def test_every_env_file_of_the_base_is_kept_when_compose_no_longer_names_it(app, rid):
    """The operator's .env.db (named by the hand-managed stack's compose file, not by the
    release's) stays in every new set: nothing of the operator's env is dropped."""
    write(app, ".env.db", "POSTGRES_INITDB_ARGS=x\n")
    write(app, ".env.example", "TEMPLATE=1\n")
    (app / "shared" / "secrets").mkdir()
    (app / "shared" / "secrets" / "exchange.pem").write_text("KEY")
    first = run_module(env_files, args(app, rid, {".env": {"A": "alpha-one"}}))
    path = app / "shared" / "env" / first["env_set"]
    assert sorted(p.name for p in path.iterdir()) == [".env", ".env.db"]
    assert read(app, rid, ".env.db") == "POSTGRES_INITDB_ARGS=x\n"
    activate(app, rid)
    other = install_release(app, {"docker-compose.yml": "other\n"}, "2026-11-25T00:00:00")
    second = run_module(env_files, args(app, other, {".env": {"A": "alpha-two"}}))
    assert second["base"] == first["env_set"] and second["env_set"] != first["env_set"]
    assert read(app, other, ".env.db") == "POSTGRES_INITDB_ARGS=x\n"
