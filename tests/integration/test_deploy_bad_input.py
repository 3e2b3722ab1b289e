"""Bad input and broken sources fail with one clear line, and open no SSM session at all."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from .conftest import playbook


def _fail_line(proc: subprocess.CompletedProcess) -> str:
    assert proc.returncode != 0, proc.stdout[-2000:]
    return proc.stdout + proc.stderr


def _git(cwd: Path, *args: str) -> None:
    subprocess.run(["git", "-c", "user.email=t@example.invalid", "-c", "user.name=t", *args],
                   cwd=cwd, check=True, capture_output=True)


def test_missing_source_dir(events, tmp_path):
    out = _fail_line(playbook("deploy.yml", "-e", f"backend_src_dir={tmp_path}/nope"))
    assert "does not exist" in out and "backend_src_dir" in out
    assert events.sessions() == 0


def test_missing_required_file(events, sample_copy):
    (sample_copy / "backend/app/services/portfolio_snapshot.py").unlink()
    out = _fail_line(playbook("deploy.yml", "-e", f"backend_src_dir={sample_copy}"))
    assert "backend/app/services/portfolio_snapshot.py" in out
    assert events.sessions() == 0


def test_router_defined_but_not_included(events, sample_copy):
    """The seed's 404: routes_portfolio.py exists, main.py never includes its router."""
    main = sample_copy / "backend/app/main.py"
    lines = [line for line in main.read_text().splitlines()
             if "include_router(portfolio_router" not in line]
    main.write_text("\n".join(lines) + "\n")
    out = _fail_line(playbook("deploy.yml", "-e", f"backend_src_dir={sample_copy}"))
    assert "routes_portfolio.py" in out and "never included" in out
    assert events.sessions() == 0


def test_untracked_file_with_clean_git_required(events, sample_copy):
    _git(sample_copy, "init", "-q")
    _git(sample_copy, "add", "-A")
    _git(sample_copy, "commit", "-qm", "app")
    (sample_copy / "backend/app/utils/new_helper.py").write_text("X = 1\n")
    out = _fail_line(playbook("deploy.yml", "-e", f"backend_src_dir={sample_copy}",
                              "-e", "deploy_require_clean_git=true"))
    assert "backend/app/utils/new_helper.py" in out and "not committed" in out
    assert events.sessions() == 0


@pytest.mark.parametrize(("extra", "expected"), [
    ('{"deploy_env_aws": {"EXCHANGE_CUSTOM_API_KEY": "k1", "EXCHANGE_CUSTOM_API_SECRET": "s1",'
     ' "CRYPTO_COM_API_KEY": "k2", "CRYPTO_COM_API_SECRET": "s1"}}', "conflicting"),
    ('{"deploy_env_aws": {"ENVIRONMENT": "aws"}}', "no exchange credentials"),
    ('{"deploy_env_aws": {"EXCHANGE_CUSTOM_API_KEY": "k1"}}', "EXCHANGE_CUSTOM_API_SECRET"),
    ('{"deploy_env": {"BAD-NAME": "x"}}', "BAD-NAME"),
    ('{"deploy_port": 70000}', "1-65535"),
    ('{"ansible_aws_ssm_bucket_name": ""}', "ansible_aws_ssm_bucket_name"),
])
def test_bad_variables_fail_before_any_session(events, extra, expected):
    proc = playbook("deploy.yml", "-e", extra)
    out = _fail_line(proc)
    assert expected in out
    for secret in ("k1", "k2", "s1"):
        assert f"'{secret}'" not in out and f'"{secret}"' not in out
    assert events.sessions() == 0


def test_unknown_instance_is_a_clear_error(events, tmp_path):
    inventory = tmp_path / "inventory"
    inventory.mkdir()
    (inventory / "hosts.yml").write_text("backend:\n  hosts:\n    i-0123456789abcdef0:\n")
    repo = Path(__file__).resolve().parents[2]
    (inventory / "group_vars").symlink_to(repo / "inventory/sandbox/group_vars")
    out = _fail_line(playbook("-i", str(inventory), "deploy.yml"))
    assert "TargetNotConnected" in out
    assert [e["kind"] for e in events.since()].count("start_session_refused") >= 1
    assert events.sessions() == 0
