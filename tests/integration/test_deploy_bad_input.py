"""Bad input and broken sources fail with one clear line, and open no SSM session at all."""

from __future__ import annotations

import json
import re
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


@pytest.mark.parametrize(("edit", "expected"), [
    # the compose file lost the service (renamed), or the service lost the aws profile
    (("  backend-aws:\n", "  backend:\n"),
     "service 'backend-aws' (deploy_service) is not in "),
    (("    profiles: [aws]\n    build:", "    profiles: [local]\n    build:"),
     "service 'backend-aws' is not enabled under profile 'aws' (deploy_compose_profile): "
     "its profiles are local; pass -e deploy_compose_profile=local"),
], ids=["service-missing", "profile-mismatch"])
def test_compose_file_without_the_service_under_the_profile(events, sample_copy, edit, expected):
    compose = sample_copy / "docker-compose.yml"
    text = compose.read_text()
    assert edit[0] in text
    compose.write_text(text.replace(edit[0], edit[1], 1))
    out = _fail_line(playbook("deploy.yml", "-e", f"backend_src_dir={sample_copy}"))
    assert expected in " ".join(out.split()), out[-3000:]
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


# One case per variable an operator can pass: (extra vars, the start of the one line). Each run
# stops at the first task that can fail (atp.deploy.deploy_inputs, on the controller): no SSM
# session, no S3 request, no other role reached.
BAD_VARIABLES = [
    ({"deploy_service": ""}, "deploy_service: expected a compose service name"),
    ("deploy_service=--profile", "deploy_service: expected a compose service name: letters, "
     "digits, '.', '_', '-', starting with a letter or digit (never '-'), saw '--profile': "),
    ("deploy_compose_project=Automated_Trading",
     "deploy_compose_project: expected a compose project name: lowercase letters, digits, '-' "
     "and '_', starting with a letter or digit, saw 'Automated_Trading': "),
    ("deploy_compose_profile=-aws", "deploy_compose_profile: expected a compose profile name"),
    ("deploy_image_repo=atp-backend:latest",
     "deploy_image_repo: expected a docker image repository, lowercase, without tag"),
    ("deploy_image_repo=ATP/Backend", "deploy_image_repo: expected a docker image repository"),
    ({"deploy_app_root": ""}, "deploy_app_root: expected an absolute, normalised path"),
    ("deploy_app_root=apps/atp", "deploy_app_root: expected an absolute, normalised path"),
    ("deploy_app_root=/", "deploy_app_root: expected an absolute, normalised path"),
    ("deploy_app_owner=Ubuntu", "deploy_app_owner: expected a user name"),
    ("deploy_port=0", "deploy_port: expected a whole number of a TCP port 1-65535, saw '0': "),
    ("deploy_build_timeout=0",
     "deploy_build_timeout: expected a whole number of seconds >= 30, saw '0': "),
    ("deploy_build_timeout=600",  # the sandbox's ansible_aws_ssm_timeout is 300
     "deploy_build_timeout: expected fewer seconds than ansible_aws_ssm_timeout (300, "),
    ("smoke_timeout=-5", "smoke_timeout: expected a whole number of seconds >= 1, saw '-5': "),
    ("smoke_timeout=abc", "smoke_timeout: expected a whole number of seconds >= 1, saw 'abc': "),
    ("deploy_keep_releases=1", "deploy_keep_releases: expected a whole number of releases >= 2"),
    ("deploy_lock_wait=-1", "deploy_lock_wait: expected a whole number of seconds >= 0"),
    ("deploy_lock_ttl=30", "deploy_lock_ttl: expected a whole number of seconds >= 60, saw '30': "
     "pass e.g. -e deploy_lock_ttl=1800"),
    ("deploy_lock_ttl=500",  # the sandbox's build step: 240 + route gate 120 + dependencies 180
     "deploy_lock_ttl: expected more seconds than the slowest single step (compose_release: "
     "deploy_build_timeout 240 + deploy_route_gate_timeout 120 + deploy_dependency_timeout 180), "
     "saw 500: "),
    ("deploy_serial=0", "deploy_serial: expected a whole number of hosts >= 1 or a percentage "
     "1%-100%, saw '0': "),
    ("deploy_min_free_mb=1G", "deploy_min_free_mb: expected a whole number of MiB >= 0"),
    ({"deploy_expected_routes": "GET /api/health"},
     "deploy_expected_routes: expected a list of 'METHOD /path' items"),
    ({"deploy_expected_routes": ["GET /api/health", "/api/portfolio/snapshot"]},
     "deploy_expected_routes: expected a list of 'METHOD /path' items"),
    ("deploy_route_gate_timeout=0", "deploy_route_gate_timeout: expected a whole number of "
     "seconds >= 1"),
    ("deploy_dependency_timeout=soon", "deploy_dependency_timeout: expected a whole number of "
     "seconds >= 1"),
    ("deploy_require_clean_git=maybe", "deploy_require_clean_git: expected true or false"),
    ("deploy_zero_downtime=maybe", "deploy_zero_downtime: expected true or false"),
    ("deploy_candidate_timeout=3m", "deploy_candidate_timeout: expected a whole number of "
     "seconds >= 1, saw '3m': "),
    ("smoke_timeout=200",  # + the sandbox's deploy_candidate_timeout 180 >= its SSM cap 300
     "smoke_timeout: expected the smoke step (deploy_candidate_timeout 180 + smoke_timeout 200, "
     "+ 20 for its last requests and log reads) to take fewer seconds than "
     "ansible_aws_ssm_timeout (300, "),
    ("deploy_health_path=api/health", "deploy_health_path: expected a URL path starting with /"),
    ("deploy_break_lock=maybe", "deploy_break_lock: expected true or false"),
    ("deploy_allow_exchange_unreachable=perhaps",
     "deploy_allow_exchange_unreachable: expected true or false"),
    ("deploy_env_replace=perhaps", "deploy_env_replace: expected true or false (also yes/no, "
     "on/off, 1/0), saw 'perhaps': pass -e deploy_env_replace=true or -e "
     "deploy_env_replace=false"),
    ({"deploy_env_aws": {"EXCHANGE_CUSTOM_API_KEY": {"value": "s3cr3t-nested"}}},
     "deploy_env_aws: expected a mapping of env variable names to strings or numbers, saw "
     "EXCHANGE_CUSTOM_API_KEY holding a mapping: "),
    ({"deploy_env": ["ENVIRONMENT=aws"]}, "deploy_env: expected a mapping of env variable names"),
    ("deploy_env_parameter_prefix=atp/prod", "deploy_env_parameter_prefix: expected a Parameter "
     "Store path like /atp/prod/backend/ (letters, digits, _ . - between slashes, not under /aws "
     "or /ssm), or '' for none, saw 'atp/prod': "),
    ("deploy_archive_max_mb=0", "deploy_archive_max_mb: expected a whole number of MB >= 1"),
    ("deploy_archive_max_file_mb=0",
     "deploy_archive_max_file_mb: expected a whole number of MB >= 1, saw '0': "),
    ("deploy_build_log_lines=2",
     "deploy_build_log_lines: expected a whole number of lines 3-1000, saw '2': "),
    ("smoke_check_interval=0",
     "smoke_check_interval: expected a number of seconds > 0, saw '0': "),
    ({"backend_src_dir": ""}, "backend_src_dir: expected the path of the app checkout"),
    ({"ansible_aws_ssm_bucket_name": ""},
     "ansible_aws_ssm_bucket_name: expected the S3 bucket the aws_ssm plugin moves files"),
]


def _extra(extra: str | dict) -> str:
    return extra if isinstance(extra, str) else json.dumps(extra)


def _case_id(extra: str | dict) -> str:
    """``smoke_timeout-abc``: the variable and its value in letters and digits (-k friendly)."""
    name, value = (extra.split("=", 1) if isinstance(extra, str)
                   else next(iter(extra.items())))
    return f"{name}-{re.sub(r'[^A-Za-z0-9]+', '', json.dumps(value))[:16] or 'empty'}"


@pytest.mark.parametrize(("extra", "line"), BAD_VARIABLES,
                         ids=[_case_id(e) for e, _ in BAD_VARIABLES])
def test_each_bad_variable_is_one_line_before_any_session(events, extra, line):
    proc = playbook("deploy.yml", "-e", _extra(extra))
    out = _fail_line(proc)
    failed = [text for text in out.splitlines() if text.startswith("[ERROR]: Task failed: ")]
    assert len(failed) == 1, out[-3000:]
    message = failed[0].removeprefix("[ERROR]: Task failed: Action failed: ")
    assert message.startswith(line), message
    assert " | " not in message  # one variable, one line
    assert "s3cr3t" not in out
    assert "TASK [deploy_inputs : Check every deploy variable" in out
    for later in ("TASK [Check the transfer bucket", "TASK [source_preflight",
                  "TASK [release_state", "Validating arguments against arg spec 'main' - "
                  "Check the app checkout"):
        assert later not in out, later
    kinds = [e["kind"] for e in events.since()]
    assert events.sessions() == 0
    assert not {"start_session", "plugin_start", "s3", "s3_start"} & set(kinds), kinds


def test_all_bad_variables_at_once_one_line_each(events):
    proc = playbook("deploy.yml", "-e", "smoke_timeout=abc", "-e", "deploy_service=-d",
                    "-e", "deploy_route_gate=maybe")
    out = _fail_line(proc)
    message = next(text for text in out.splitlines()
                   if text.startswith("[ERROR]: Task failed: "))
    message = message.removeprefix("[ERROR]: Task failed: Action failed: ")
    assert [part.split(":")[0] for part in message.split(" | ")] == [
        "deploy_service", "smoke_timeout", "deploy_route_gate"]
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
