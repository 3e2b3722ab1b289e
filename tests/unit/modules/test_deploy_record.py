"""Tests of the deploy_record module, for real on tmp_path."""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime

from ansible_collections.atp.deploy.plugins.modules import deploy_record

from .module_runner import doc_spec_problems, run_module, warnings_of

RECORD = {
    "release": "20261124T101500Z-0123456789ab",
    "git_sha": "abc123",
    "image_id": "sha256:1",
    "operator": "alice",
    "started": "2026-11-24T10:15:00Z",
    "finished": "2026-11-24T10:17:00Z",
    "result": "ok",
}


def test_documentation_matches_argument_spec():
    assert doc_spec_problems(deploy_record) == []


def test_build_record_adds_recorded_at_once():
    now = datetime(2026, 11, 24, 10, 15, tzinfo=UTC)
    assert deploy_record.build_record({}, now) == {"recorded_at": "2026-11-24T10:15:00Z"}
    assert deploy_record.build_record({"recorded_at": "x"}, now) == {"recorded_at": "x"}


def test_appends_sorted_json_lines(tmp_path):
    log = tmp_path / "deploy.log"
    first = run_module(deploy_record, {"log_file": str(log), "record": RECORD})
    assert first["changed"] is True and first["created"] is True
    assert os.stat(log).st_mode & 0o777 == 0o640
    second = run_module(deploy_record, {"log_file": str(log),
                                        "record": {**RECORD, "result": "failed"}})
    assert second["created"] is False
    lines = log.read_text().splitlines()
    assert len(lines) == 2 and lines[0] == first["line"]
    parsed = json.loads(lines[0])
    assert list(parsed) == sorted(parsed)
    assert {k: parsed[k] for k in RECORD} == RECORD and "recorded_at" in parsed
    assert json.loads(lines[1])["result"] == "failed"


def test_existing_lines_and_mode_kept(tmp_path):
    log = tmp_path / "deploy.log"
    log.write_text('{"old": 1}\n')
    log.chmod(0o600)
    run_module(deploy_record, {"log_file": str(log), "record": RECORD})
    assert log.read_text().splitlines()[0] == '{"old": 1}'
    assert os.stat(log).st_mode & 0o777 == 0o600


def test_warns_without_release(tmp_path):
    result = run_module(deploy_record, {"log_file": str(tmp_path / "l"), "record": {"a": 1}})
    assert any("no 'release'" in w for w in warnings_of(result))


def test_check_mode_writes_nothing(tmp_path):
    log = tmp_path / "deploy.log"
    result = run_module(deploy_record, {"log_file": str(log), "record": RECORD}, check_mode=True)
    assert result["changed"] is True and json.loads(result["line"])["release"] == RECORD["release"]
    assert not log.exists()


def test_missing_directory_and_directory_log(tmp_path):
    result = run_module(deploy_record, {"log_file": str(tmp_path / "nope" / "deploy.log"),
                                        "record": RECORD})
    assert result["failed"] is True and "does not exist" in result["msg"]
    (tmp_path / "d").mkdir()
    result = run_module(deploy_record, {"log_file": str(tmp_path / "d"), "record": RECORD})
    assert result["failed"] is True and "is a directory" in result["msg"]
