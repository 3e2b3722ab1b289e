"""Tests of the env_files module (merge onto the instance's env files, links), on tmp_path."""

from __future__ import annotations

import grp
import json
import os
import pwd

import pytest
from ansible_collections.atp.deploy.plugins.module_utils import dotenv
from ansible_collections.atp.deploy.plugins.modules import env_files

from .module_runner import doc_spec_problems, install_release, run_module, warnings_of

USER = pwd.getpwuid(os.getuid()).pw_name
GROUP = grp.getgrgid(os.getgid()).gr_name
SECRET = {"EXCHANGE_CUSTOM_API_KEY": "very-secret-value"}
OPERATOR = ("# the operator's file\nexport POSTGRES_PASSWORD=\"hand-pw\"\n"
            "ENVIRONMENT=aws  # inline\nCRYPTOCOM_API_KEY=old-alias\n")


@pytest.fixture
def dest(tmp_path):
    return tmp_path / "app" / "shared"


def args(dest, files, **extra) -> dict:
    return {"dest": str(dest), "files": files, "owner": USER, "group": GROUP, **extra}


def write(dest, name, text, mode=0o600):
    path = dest / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    path.chmod(mode)
    return path


def test_documentation_matches_argument_spec():
    assert doc_spec_problems(env_files) == []


def test_creates_dir_and_files(dest):
    dest.parent.mkdir()
    result = run_module(env_files, args(dest, {".env": SECRET, ".env.aws": {"A": "1"}}))
    assert result["changed"] is True and result["dest_created"] is True
    assert result["files"] == {".env": True, ".env.aws": True}
    assert result["set"] == {".env": ["EXCHANGE_CUSTOM_API_KEY"], ".env.aws": ["A"]}
    assert os.stat(dest).st_mode & 0o777 == 0o750
    assert (dest / ".env").read_text() == (dotenv.HEADER + "\n"
                                           "EXCHANGE_CUSTOM_API_KEY='very-secret-value'\n")
    assert os.stat(dest / ".env").st_mode & 0o777 == 0o600
    assert os.stat(dest / ".env").st_uid == os.getuid()
    assert sorted(os.listdir(dest)) == [".env", ".env.aws"]


def test_result_never_contains_values(dest):
    write(dest, ".env", OPERATOR)
    result = run_module(env_files, args(dest, {".env": SECRET}))
    text = json.dumps(result)
    assert "very-secret-value" not in text and "hand-pw" not in text


def test_operator_keys_are_kept_and_named_the_file_keeps_its_lines(dest):
    write(dest, ".env", OPERATOR)
    result = run_module(env_files, args(dest, {".env": {"ENVIRONMENT": "aws", "NEW": "1"}}))
    assert result["changed"] is True
    assert result["set"] == {".env": ["NEW"]}
    assert result["kept"] == {".env": ["CRYPTOCOM_API_KEY", "POSTGRES_PASSWORD"]}
    assert result["dropped"] == {".env": []}
    assert (dest / ".env").read_text() == OPERATOR + "NEW='1'\n"


def test_a_key_the_deploy_passes_wins(dest):
    write(dest, ".env", OPERATOR)
    run_module(env_files, args(dest, {".env": {"POSTGRES_PASSWORD": "new-pw"}}))
    text = (dest / ".env").read_text()
    assert "POSTGRES_PASSWORD='new-pw'\n" in text and "hand-pw" not in text
    assert text.startswith("# the operator's file\n")
    assert dotenv.values(text)["POSTGRES_PASSWORD"] == "new-pw"


def test_replace_drops_instance_only_keys_and_names_them(dest):
    write(dest, ".env", OPERATOR)
    result = run_module(env_files, args(dest, {".env": {"ENVIRONMENT": "aws"}}, replace=True))
    assert result["dropped"] == {".env": ["CRYPTOCOM_API_KEY", "POSTGRES_PASSWORD"]}
    assert result["kept"] == {".env": []}
    assert dotenv.values((dest / ".env").read_text()) == {"ENVIRONMENT": "aws"}


def test_superseded_alias_is_dropped_without_replace(dest):
    write(dest, ".env.aws", OPERATOR)
    supersedes = {"EXCHANGE_CUSTOM_API_KEY": ["CRYPTO_COM_API_KEY", "CRYPTOCOM_API_KEY"]}
    result = run_module(env_files, args(dest, {".env.aws": SECRET}, supersedes=supersedes))
    assert result["dropped"] == {".env.aws": ["CRYPTOCOM_API_KEY"]}
    assert result["kept"] == {".env.aws": ["ENVIRONMENT", "POSTGRES_PASSWORD"]}
    assert "CRYPTOCOM_API_KEY" not in dotenv.values((dest / ".env.aws").read_text())


def test_second_run_unchanged_then_only_changed_file(dest):
    files = {".env": SECRET, ".env.aws": {"A": "1"}}
    run_module(env_files, args(dest, files))
    again = run_module(env_files, args(dest, files))
    assert again["changed"] is False and again["files"] == {".env": False, ".env.aws": False}
    inode = os.stat(dest / ".env").st_ino
    changed = run_module(env_files, args(dest, {**files, ".env.aws": {"A": "2"}}))
    assert changed["changed"] is True
    assert changed["files"] == {".env": False, ".env.aws": True}
    assert dotenv.values((dest / ".env.aws").read_text()) == {"A": "2"}
    assert os.stat(dest / ".env").st_ino == inode


def test_mode_difference_fixed_in_place(dest):
    path = write(dest, ".env", OPERATOR, mode=0o644)
    inode = os.stat(path).st_ino
    result = run_module(env_files, args(dest, {".env": {"ENVIRONMENT": "aws"}}))
    assert result["files"] == {".env": True} and result["set"] == {".env": []}
    assert os.stat(path).st_mode & 0o777 == 0o600 and os.stat(path).st_ino == inode
    assert path.read_text() == OPERATOR
    result = run_module(env_files, args(dest, {".env": {}}, mode="0640"))
    assert result["changed"] is True and os.stat(path).st_mode & 0o777 == 0o640


def test_ensure_creates_missing_env_files_empty_0600_nested_too(dest):
    write(dest, ".env.db", "POSTGRES_INITDB_ARGS=x\n", mode=0o640)
    ensure = [".env.db", "config/db.env", "secrets/runtime.env", "/etc/x.env"]
    result = run_module(env_files, args(dest, {".env": {}}, ensure=ensure))
    assert sorted(result["created"]) == ["config/db.env", "secrets/runtime.env"]
    for rel in result["created"]:
        st = os.stat(dest / rel)
        assert st.st_size == 0 and st.st_mode & 0o777 == 0o600
    assert os.stat(dest / "secrets").st_mode & 0o777 == 0o700
    assert (dest / ".env.db").read_text() == "POSTGRES_INITDB_ARGS=x\n"  # never touched
    assert any("/etc/x.env is an absolute path" in w for w in warnings_of(result))


def test_release_dir_gets_every_env_link(tmp_path):
    app = tmp_path / "app"
    (app / "releases").mkdir(parents=True)
    rid = install_release(app)
    release = app / "releases" / rid
    dest = app / "shared"
    ensure = [".env", ".env.aws", ".env.db", "config/db.env", "secrets/runtime.env"]
    result = run_module(env_files, args(dest, {".env": {"A": "1"}}, ensure=ensure,
                                        release_dir=str(release)))
    assert "failed" not in result, result.get("msg")
    assert sorted(result["linked"]) == [".env", ".env.aws", ".env.db", "config/db.env",
                                        "secrets"]
    assert os.readlink(release / "config" / "db.env") == "../../../shared/config/db.env"
    for rel in ensure:
        assert (release / rel).is_file(), rel
    again = run_module(env_files, args(dest, {".env": {"A": "1"}}, ensure=ensure,
                                       release_dir=str(release)))
    assert again["changed"] is False and again["linked"] == []


def test_release_dir_missing_fails(tmp_path, dest):
    result = run_module(env_files, args(dest, {".env": {}},
                                        release_dir=str(tmp_path / "releases" / "nope")))
    assert result["failed"] is True and "is not unpacked" in result["msg"]


def test_values_as_json_documents(dest):
    result = run_module(env_files, args(dest, {".env": json.dumps({"A": "1"}), ".env.aws": ""}))
    assert result["set"] == {".env": ["A"], ".env.aws": []}
    assert dotenv.values((dest / ".env").read_text()) == {"A": "1"}
    result = run_module(env_files, args(dest, {".env": "not json"}))
    assert result["failed"] is True and "must be a mapping (or its JSON)" in result["msg"]


def test_unreadable_env_file_fails_naming_the_line_not_the_value(dest):
    write(dest, ".env", "A=1\nB='never closed secret-xyz\n")
    # values as JSON: Ansible masks the whole document, not every short value in the message
    result = run_module(env_files, args(dest, {".env": json.dumps({"A": "2"})}))
    assert result["failed"] is True and "\n" not in result["msg"]
    assert "line 2" in result["msg"] and "of B is never closed" in result["msg"]
    assert "secret-xyz" not in result["msg"]


def test_other_files_left_alone(dest):
    dest.mkdir(parents=True)
    (dest / "keep.txt").write_text("keep")
    run_module(env_files, args(dest, {".env": SECRET}))
    assert (dest / "keep.txt").read_text() == "keep"


@pytest.mark.parametrize("name", ["../x", ".", "..", "/etc/passwd", ""])
def test_bad_paths_rejected(dest, name):
    result = run_module(env_files, args(dest, {name: SECRET}))
    assert result["failed"] is True
    assert "expected file paths inside the shared dir" in result["msg"]
    assert not dest.exists()


def test_bad_values_rejected(dest):
    result = run_module(env_files, args(dest, {".env": {"BAD NAME": "x"}}))
    assert result["failed"] is True and "invalid variable name" in result["msg"]
    result = run_module(env_files, args(dest, {".env": "A=1\n"}))
    assert result["failed"] is True and "must be a mapping" in result["msg"]


def test_bad_mode_and_owner(dest):
    result = run_module(env_files, args(dest, {".env": SECRET}, mode="rw"))
    assert result["failed"] is True and "mode must be an octal string" in result["msg"]
    result = run_module(env_files, args(dest, {".env": SECRET}, owner="no-such-user-xyz"))
    assert result["failed"] is True and "does not exist" in result["msg"]


def test_dest_is_a_file(dest):
    dest.parent.mkdir(parents=True)
    dest.write_text("oops")
    result = run_module(env_files, args(dest, {".env": SECRET}))
    assert result["failed"] is True and "must be a directory" in result["msg"]


def test_check_mode_reports_and_writes_nothing(dest):
    result = run_module(env_files, args(dest, {".env": SECRET}, ensure=[".env.db"]),
                        check_mode=True)
    assert result["changed"] is True and result["files"] == {".env": True}
    assert result["created"] == [".env.db"]
    assert not dest.exists()
    write(dest, ".env", OPERATOR)
    result = run_module(env_files, args(dest, {".env": {"NEW": "1"}}), check_mode=True)
    assert result["changed"] is True and result["set"] == {".env": ["NEW"]}
    assert (dest / ".env").read_text() == OPERATOR
