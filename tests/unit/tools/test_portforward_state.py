"""tools/atp_ops/portforward/state.py: the per-port state directory."""

from __future__ import annotations

import pytest
from atp_ops.portforward import cli, state
from atp_ops.portforward.common import PortForwardError


def test_state_round_trip_and_stop_without_state(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv(state.STATE_ENV, str(tmp_path / "state"))
    assert state.state_dir(18002) == tmp_path / "state" / "18002"
    assert state.load_state(18002) is None
    state.save_state(18002, {"session_id": "s-1", "pid": 1})
    assert state.load_state(18002) == {"session_id": "s-1", "pid": 1}
    assert (state.state_dir(18002) / state.STATE_FILE).stat().st_mode & 0o777 == 0o600
    state.clear_state(18002)
    assert not state.state_dir(18002).exists()
    assert cli.main(["stop", "--local-port", "18002"]) == 0
    assert "nothing to stop" in capsys.readouterr().out


def test_corrupt_state_is_a_one_line_error(tmp_path, monkeypatch):
    monkeypatch.setenv(state.STATE_ENV, str(tmp_path))
    (tmp_path / "18002").mkdir()
    (tmp_path / "18002" / state.STATE_FILE).write_text("{not json")
    with pytest.raises(PortForwardError, match="expected a readable state file"):
        state.load_state(18002)


def test_state_root_defaults(monkeypatch, tmp_path):
    monkeypatch.delenv(state.STATE_ENV, raising=False)
    monkeypatch.delenv("XDG_CACHE_HOME", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    assert state.state_root() == tmp_path / ".cache" / "atp-portforward"
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert state.state_root() == tmp_path / "xdg" / "atp-portforward"


def test_clear_state_keeps_the_log_when_asked(tmp_path, monkeypatch):
    monkeypatch.setenv(state.STATE_ENV, str(tmp_path))
    state.save_state(18002, {"session_id": "s-1"})
    log = state.state_dir(18002) / state.LOG_FILE
    log.write_text("Starting session\n\nWaiting for connections...\n\n")
    state.clear_state(18002, keep_log=True)
    assert log.exists() and state.load_state(18002) is None
    assert state.last_log_line(log) == "Waiting for connections..."
    state.clear_state(18002)
    assert not state.state_dir(18002).exists()
    assert state.last_log_line(log) == "(no output)"


def test_non_object_state_is_no_state(tmp_path, monkeypatch):
    monkeypatch.setenv(state.STATE_ENV, str(tmp_path))
    (tmp_path / "18002").mkdir()
    (tmp_path / "18002" / state.STATE_FILE).write_text("[1, 2]")
    assert state.load_state(18002) is None
