"""Tests of module_utils/deploy_inputs.py: the rules table every deploy variable is checked by."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest
import yaml
from ansible.module_utils.common.arg_spec import ArgumentSpecValidator
from ansible_collections.atp.deploy.plugins.module_utils import deploy_inputs as di

REPO = Path(__file__).resolve().parents[3]
LINE_RE = re.compile(r"^[a-z_]+: expected .+, saw .+: .+$")
# What to do comes after what was seen, and starts with a verb.
FIX_RE = re.compile(r", saw .+?: (pass|set|keep|fix|give|rename|drop|list|lower) ")

# Values each rule must accept (the first is also a usable example); -e passes strings.
GOOD = {
    "backend_src_dir": ["/srv/checkout", "files/sample-backend"],
    "deploy_required_files": [["docker-compose.yml", "backend/app/main.py"], []],
    "deploy_service": ["backend-aws", "db", "backend_aws.2"],
    "deploy_compose_project": ["automated-trading-platform", "atp_2", "0atp"],
    "deploy_compose_profile": ["aws", "", "aws,extra"],
    "deploy_image_repo": ["automated-trading-platform-backend-aws", "atp/backend",
                          "registry.example.com:5000/atp/backend-aws", "localhost/atp",
                          "a__b", "a--b"],
    "deploy_app_root": ["/home/ubuntu/automated-trading-platform", "/opt/atp", "/srv/a.b-c_d"],
    "deploy_app_owner": ["ubuntu", "_svc", "deploy-user1"],
    "deploy_operator": ["alice", "ci bot"],
    "deploy_port": [8002, "8002", 1, 65535],
    "deploy_build_timeout": [840, "30", 30.0],
    "deploy_build_log_lines": [15, "3"],
    "deploy_route_gate_timeout": [120, "1"],
    "deploy_dependency_timeout": [180, "1"],
    "deploy_candidate_timeout": [180, "1"],
    "deploy_switch_timeout": [20, "1"],
    "deploy_drain_timeout": [30, "0"],
    "deploy_stop_timeout": [30, 0],
    "deploy_health_path": ["/api/health", "/ping_fast", "/health?full=1"],
    "deploy_proxy_image": ["", "haproxy:2.8", "registry.local:5000/atp/proxy@sha256:ab12"],
    "deploy_app_import": ["app.main:app", "main:application"],
    "diagnose_app_import": ["app.main:app"],
    "deploy_expected_routes": [["GET /api/health", "POST /api/portfolio/refresh"], []],
    "deploy_keep_releases": [5, "2"],
    "deploy_lock_wait": [0, "600"],
    "deploy_lock_ttl": [1800, "60", 3600],
    "deploy_min_free_mb": [1024, "0"],
    "deploy_serial": [1, "3", "50%", "100%"],
    "deploy_transfer_cleanup_min_age": [60, "0"],
    "deploy_artifact_dir": ["~/.cache/atp-deploy/releases"],
    "deploy_archive_max_mb": [200, "1"],
    "deploy_archive_max_file_mb": [50, "1"],
    "smoke_timeout": [90, "1", " 5 "],
    "smoke_check_interval": [2, 0.5, "0.5"],
    "smoke_check_request_timeout": [10, "2.5"],
    "smoke_check_identical_failures": [3, "1"],
    "smoke_check_max_body_bytes": [33554432, "1024"],
    "smoke_check_max_error_rate": [0, 1.5, "0"],
    "smoke_check_checks": [[{"name": "health", "path": "/api/health"}], []],
    "diagnose_log_lines": [20, 0, "1000"],
    "diagnose_deploy_log_lines": [5, 0],
    "diagnose_command_timeout": [30, 1, 600],
    "diagnose_disk_warn_percent": [90, 1, 100],
    "deploy_env": [{"ENVIRONMENT": "aws", "PORT": 8002, "DEBUG": True, "RATE": 0.5}, {}],
    "deploy_env_aws": [{"EXCHANGE_CUSTOM_API_KEY": "k", "_X1": ""}],
    "deploy_env_parameter_prefix": ["", "/atp/prod/backend/", "/atp/prod/backend"],
    "deploy_env_parameters": [{".env.aws": ["EXCHANGE_CUSTOM_API_KEY"]}, {}],
    "ansible_aws_ssm_timeout": [900, "300"],
    "ansible_aws_ssm_bucket_name": ["atp-sandbox-ssm-transfer", "atp.transfer.bucket", "a1b"],
    **{name: [True, False, "true", "false", "yes", "no", "on", "off", "1", "0", 1, 0, "True"]
       for name in di.BOOLEANS},
}

# (variable, bad value, text the line must hold) -- at least one per rule.
BAD = [
    ("backend_src_dir", "", "expected the path of the app checkout, saw ''"),
    ("backend_src_dir", None, "saw nothing (null)"),
    ("deploy_required_files", ["../etc/passwd"], "saw the item '../etc/passwd'"),
    ("deploy_required_files", ["/etc/passwd"], "no leading /"),
    ("deploy_required_files", "docker-compose.yml", "expected a list of paths"),
    ("deploy_service", "", "expected a compose service name"),
    ("deploy_service", "-d", "never '-'"),
    ("deploy_service", "--profile", "saw '--profile'"),
    ("deploy_service", "backend aws", "saw 'backend aws'"),
    ("deploy_service", ["backend-aws"], "(a list)"),
    ("deploy_compose_project", "Automated-Trading", "lowercase letters"),
    ("deploy_compose_project", "-atp", "saw '-atp'"),
    ("deploy_compose_project", "atp.prod", "saw 'atp.prod'"),
    ("deploy_compose_project", "", "expected a compose project name"),
    ("deploy_compose_profile", "-aws", "expected a compose profile name"),
    ("deploy_compose_profile", "aws,,x", "saw 'aws,,x'"),
    ("deploy_image_repo", "atp-backend:latest", "drop the tag or digest"),
    ("deploy_image_repo", "atp@sha256:abc", "drop the tag or digest"),
    ("deploy_image_repo", "ATP-Backend", "lowercase"),
    ("deploy_image_repo", "Atp/backend", "saw 'Atp/backend'"),
    ("deploy_image_repo", "atp backend", "saw 'atp backend'"),
    ("deploy_image_repo", "", "expected a docker image repository"),
    ("deploy_image_repo", "atp/", "saw 'atp/'"),
    ("deploy_image_repo", "-atp", "saw '-atp'"),
    ("deploy_app_root", "", "expected an absolute, normalised path"),
    ("deploy_app_root", "apps/atp", "saw 'apps/atp'"),
    ("deploy_app_root", "/", "saw '/'"),
    ("deploy_app_root", "/home/ubuntu/atp/", "saw '/home/ubuntu/atp/'"),
    ("deploy_app_root", "/home/ubuntu/../atp", "normalised"),
    ("deploy_app_root", "//home/atp", "saw '//home/atp'"),
    ("deploy_app_root", "/home/ubuntu/my app", "saw '/home/ubuntu/my app'"),
    ("deploy_app_root", "/etc", "system directory"),
    ("deploy_app_root", "/home/ubuntu", "saw '/home/ubuntu'"),
    ("deploy_app_owner", "", "expected a user name"),
    ("deploy_app_owner", "Ubuntu", "saw 'Ubuntu'"),
    ("deploy_app_owner", "-x", "saw '-x'"),
    ("deploy_app_owner", "1000", "saw '1000'"),
    ("deploy_app_owner", "a" * 33, "at most 32 characters"),
    ("deploy_operator", "", "expected a non-empty, single-line name"),
    ("deploy_operator", "a\nb", "single-line"),
    ("deploy_port", 70000, "expected a whole number of a TCP port 1-65535, saw 70000"),
    ("deploy_port", 0, "saw 0"),
    ("deploy_port", "http", "saw 'http'"),
    ("deploy_port", True, "saw True (a boolean)"),
    ("deploy_port", 80.5, "saw 80.5"),
    ("deploy_build_timeout", 0, "expected a whole number of seconds >= 30, saw 0"),
    ("deploy_build_timeout", "29", "saw '29'"),
    ("deploy_build_log_lines", 2, "3-1000"),
    ("deploy_route_gate_timeout", 0, "seconds >= 1, saw 0"),
    ("deploy_dependency_timeout", -1, "saw -1"),
    ("deploy_candidate_timeout", 0, "saw 0"),
    ("deploy_candidate_timeout", "3m", "saw '3m'"),
    ("deploy_switch_timeout", 0, "saw 0"),
    ("deploy_drain_timeout", -1, "saw -1"),
    ("deploy_stop_timeout", "30s", "saw '30s'"),
    ("deploy_health_path", "api/health", "expected a URL path starting with /"),
    ("deploy_health_path", "/api/ health", "saw '/api/ health'"),
    ("deploy_health_path", "", "saw ''"),
    ("deploy_proxy_image", "haproxy 2.8", "expected an image reference"),
    ("deploy_proxy_image", "-x", "saw '-x'"),
    ("deploy_dependency_timeout", "3m", "saw '3m'"),
    ("deploy_app_import", "app.main", "package.module:attribute"),
    ("deploy_app_import", "app/main.py:app", "saw 'app/main.py:app'"),
    ("diagnose_app_import", "", "package.module:attribute"),
    ("deploy_expected_routes", "GET /api/health", "pass a list"),
    ("deploy_expected_routes", "GET /api/health,GET /api/x", "saw 'GET /api/health,GET /api/x'"),
    ("deploy_expected_routes", ["GET /api/health", "/api/portfolio/snapshot"],
     "saw the item '/api/portfolio/snapshot'"),
    ("deploy_expected_routes", ["FETCH /api/x"], "saw the item 'FETCH /api/x'"),
    ("deploy_expected_routes", ["GET api/x"], "starting with /"),
    ("deploy_expected_routes", ["GET /api/x?y=1"], "no query string"),
    ("deploy_expected_routes", [{"GET": "/api/x"}], "saw the item {'GET': '/api/x'}"),
    ("deploy_expected_routes", {"GET": "/api/x"}, "expected a list of 'METHOD /path' items"),
    ("deploy_keep_releases", 1, "expected a whole number of releases >= 2, saw 1"),
    ("deploy_keep_releases", "one", "saw 'one'"),
    ("deploy_lock_wait", -1, "seconds >= 0, saw -1"),
    ("deploy_lock_wait", "soon", "saw 'soon'"),
    ("deploy_lock_ttl", 59, "expected a whole number of seconds >= 60, saw 59: pass e.g. "
     "-e deploy_lock_ttl=1800 (longer than the slowest single step)"),
    ("deploy_lock_ttl", "0", "saw '0'"),
    ("deploy_lock_ttl", "30m", "saw '30m'"),
    ("deploy_lock_ttl", True, "saw True (a boolean)"),
    ("deploy_min_free_mb", -5, "MiB >= 0, saw -5"),
    ("deploy_min_free_mb", "1G", "saw '1G'"),
    ("deploy_serial", 0, "saw 0"),
    ("deploy_serial", "0%", "percentage 1%-100%"),
    ("deploy_serial", "150%", "saw '150%'"),
    ("deploy_serial", "all", "saw 'all'"),
    ("deploy_transfer_cleanup_min_age", -1, "saw -1"),
    ("deploy_artifact_dir", "", "expected a controller directory"),
    ("deploy_archive_max_mb", 0, "MB >= 1, saw 0"),
    ("deploy_archive_max_file_mb", "big", "saw 'big'"),
    ("smoke_timeout", -5, "expected a whole number of seconds >= 1, saw -5"),
    ("smoke_timeout", "-5", "saw '-5'"),
    ("smoke_timeout", "abc", "saw 'abc'"),
    ("smoke_timeout", 0, "saw 0"),
    ("smoke_timeout", 1.5, "saw 1.5"),
    ("smoke_timeout", None, "saw nothing (null)"),
    ("smoke_check_interval", 0, "seconds > 0, saw 0"),
    ("smoke_check_interval", "nan", "saw 'nan'"),
    ("smoke_check_request_timeout", -1, "saw -1"),
    ("smoke_check_identical_failures", 0, ">= 1"),
    ("smoke_check_max_body_bytes", 0, ">= 1"),
    ("smoke_check_max_error_rate", -0.1, ">= 0"),
    ("smoke_check_checks", {"name": "health"}, "expected a list of mappings"),
    ("smoke_check_checks", ["health"], "(a list)"),
    ("diagnose_log_lines", 1001, "0-1000"),
    ("diagnose_deploy_log_lines", -1, "0-1000"),
    ("diagnose_command_timeout", 601, "1-600"),
    ("diagnose_disk_warn_percent", 0, "1-100"),
    ("deploy_env", "ENVIRONMENT=aws", "saw a string"),
    ("deploy_env", ["ENVIRONMENT"], "saw a list"),
    ("deploy_env", {"BAD-NAME": "x"}, "saw the name 'BAD-NAME'"),
    ("deploy_env", {"1X": "x"}, "saw the name '1X'"),
    ("deploy_env_aws", {"API": {"key": "x"}}, "saw API holding a mapping"),
    ("deploy_env_aws", {"API": ["x"]}, "saw API holding a list"),
    ("deploy_env_aws", {"API": None}, "saw API without a value (null)"),
    ("deploy_env_parameter_prefix", "atp/prod", "Parameter Store path"),
    ("deploy_env_parameter_prefix", "/aws/x/", "not under /aws or /ssm"),
    ("deploy_env_parameter_prefix", ["/atp/"], "(a list)"),
    ("deploy_env_parameters", [".env.aws"], "expected a mapping of env files"),
    ("deploy_env_parameters", {"env.aws": ["X"]}, "saw the key 'env.aws'"),
    ("deploy_env_parameters", {".env.aws": "X"}, "saw 'X' for .env.aws"),
    ("deploy_env_parameters", {".env.aws": ["BAD-X"]}, "saw the name 'BAD-X' for .env.aws"),
    ("deploy_env_parameters", {".env.aws": ["X", "X"]}, "a name listed twice"),
    ("ansible_aws_ssm_timeout", "forever", "saw 'forever'"),
    ("ansible_aws_ssm_bucket_name", "", "expected the S3 bucket the aws_ssm plugin moves files "
     "through"),
    ("ansible_aws_ssm_bucket_name", "My_Bucket", "saw 'My_Bucket'"),
    ("ansible_aws_ssm_bucket_name", "ab", "saw 'ab'"),
    ("ansible_aws_ssm_bucket_name", None, "saw nothing (null)"),
    *((name, "maybe", f"saw 'maybe': pass -e {name}=true or -e {name}=false")
      for name in di.BOOLEANS),
    ("deploy_route_gate", 2, "saw 2"),
    ("deploy_route_gate", "", "saw ''"),
    ("deploy_route_gate", None, "saw nothing (null)"),
]


BUCKET = {"ansible_aws_ssm_bucket_name": "atp-transfer"}


def one_line(values: dict, ssm: bool | None = None) -> str:
    if ssm is None:  # the bucket rule applies over SSM only
        ssm = "ansible_aws_ssm_bucket_name" in values
    problems = di.check_inputs(values if not ssm else {**BUCKET, **values}, ssm=ssm)
    assert len(problems) == 1, problems
    line = problems[0]
    assert "\n" not in line and LINE_RE.match(line), line
    return line


def test_every_rule_has_good_and_bad_samples():
    names = set(di.RULES_BY_NAME)
    assert set(GOOD) == names
    assert {name for name, _, _ in BAD} == names
    assert len(di.RULES) == len(names)  # one rule per variable


@pytest.mark.parametrize(("name", "value"),
                         [(n, v) for n, values in GOOD.items() for v in values])
def test_good_values_pass(name, value):
    ssm = name == "ansible_aws_ssm_bucket_name"
    assert di.check_inputs({**(BUCKET if ssm else {}), name: value}, ssm=ssm) == []


@pytest.mark.parametrize(("name", "value", "text"), BAD)
def test_bad_values_give_one_line_naming_variable_value_and_fix(name, value, text):
    line = one_line({name: value})
    assert line.startswith(f"{name}: expected "), line
    assert text in line, line
    assert FIX_RE.search(line), line


def test_the_transfer_bucket_is_required_over_ssm_only():
    assert di.check_inputs({}) == []
    assert di.check_inputs({}, ssm=True) == [
        "ansible_aws_ssm_bucket_name: expected the S3 bucket the aws_ssm plugin moves files "
        "through: 3-63 lowercase letters, digits, '.' and '-', saw nothing (null): set it in "
        "group_vars/backend/transfer.yml (or -e ansible_aws_ssm_bucket_name=<bucket>) to a "
        "bucket in the instance's region"]
    assert di.check_inputs({"ansible_aws_ssm_bucket_name": ""}) == []


def test_unset_variables_are_not_checked():
    assert di.check_inputs({}) == []
    assert di.check_inputs({"unrelated_var": "x", "deploy_unknown": -1}) == []


def test_several_problems_are_each_one_line_in_table_order():
    problems = di.check_inputs({"smoke_timeout": "abc", "deploy_service": "-x",
                                "deploy_port": 0})
    assert [p.split(":")[0] for p in problems] == ["deploy_service", "deploy_port",
                                                    "smoke_timeout"]


@pytest.mark.parametrize("value", [
    {"EXCHANGE_CUSTOM_API_SECRET": {"nested": "s3cr3t-value"}},
    {"EXCHANGE_CUSTOM_API_SECRET": ["s3cr3t-value"]},
    {"OK": "s3cr3t-value", "BAD-NAME": "s3cr3t-value"},
    "s3cr3t-value",
    ["s3cr3t-value"],
])
@pytest.mark.parametrize("name", ["deploy_env", "deploy_env_aws"])
def test_env_values_are_never_shown(name, value):
    line = one_line({name: value})
    assert "s3cr3t" not in line, line


def test_env_value_of_a_bad_entry_is_not_shown_but_its_key_is():
    line = one_line({"deploy_env_aws": {"OK": "visible-secret", "API": {"k": "hidden"}}})
    assert "API" in line and "hidden" not in line and "visible-secret" not in line


def test_long_values_are_shortened_to_keep_the_line_short():
    line = one_line({"deploy_service": "-" + "x" * 500})
    assert len(line) < 400 and "...'" in line


# --------------------------------------------------------------------------- between variables


def test_build_timeout_must_stay_below_the_ssm_timeout():
    line = one_line({"deploy_build_timeout": 840, "ansible_aws_ssm_timeout": 300}, ssm=True)
    assert line == (
        "deploy_build_timeout: expected fewer seconds than ansible_aws_ssm_timeout (300, which "
        "caps the whole build-and-activate call), saw 840: pass -e deploy_build_timeout=240 or "
        "raise ansible_aws_ssm_timeout in group_vars/backend/connection.yml")
    assert di.check_inputs({**BUCKET, "deploy_build_timeout": 840,
                            "ansible_aws_ssm_timeout": 900}, ssm=True) == []
    assert one_line({"deploy_build_timeout": "300", "ansible_aws_ssm_timeout": "300"}, ssm=True)


def test_ssm_timeout_defaults_to_the_plugins_60_seconds():
    assert "(60," in one_line({"deploy_build_timeout": 60}, ssm=True)
    assert di.check_inputs({**BUCKET, "deploy_build_timeout": 59}, ssm=True) == []


def test_without_ssm_the_ssm_timeout_does_not_matter():
    assert di.check_inputs({"deploy_build_timeout": 840, "ansible_aws_ssm_timeout": 300}) == []


def test_a_bad_build_timeout_is_reported_once():
    line = one_line({"deploy_build_timeout": "x", "ansible_aws_ssm_timeout": 300}, ssm=True)
    assert "saw 'x'" in line


def test_lock_ttl_minimum_is_the_instances():
    """One minimum on both sides: deploy_lock.MIN_TTL (release_state refuses below it too)."""
    from ansible_collections.atp.deploy.plugins.module_utils import deploy_lock
    assert di.check_inputs({"deploy_lock_ttl": deploy_lock.MIN_TTL}) == []
    assert deploy_lock.ttl_problem(deploy_lock.MIN_TTL) is None
    line = one_line({"deploy_lock_ttl": deploy_lock.MIN_TTL - 1})
    assert f">= {deploy_lock.MIN_TTL}," in line
    assert deploy_lock.ttl_problem(deploy_lock.MIN_TTL - 1) is not None
    assert f"deploy_lock_ttl={deploy_lock.DEFAULT_TTL} " in line


def test_lock_ttl_must_outlive_the_build_and_activate_step():
    values = {"deploy_build_timeout": 840, "deploy_route_gate_timeout": 120,
              "deploy_dependency_timeout": 180}
    line = one_line({**values, "deploy_lock_ttl": 1140})
    assert line == (
        "deploy_lock_ttl: expected more seconds than the slowest single step (compose_release: "
        "deploy_build_timeout 840 + deploy_route_gate_timeout 120 + deploy_dependency_timeout "
        "180), saw 1140: pass -e deploy_lock_ttl=1800 or lower those timeouts")
    assert FIX_RE.search(line)
    assert di.check_inputs({**values, "deploy_lock_ttl": 1141}) == []
    # the gate does not run when it is switched off
    assert di.check_inputs({**values, "deploy_route_gate": "false",
                            "deploy_lock_ttl": 1100}) == []
    # only the timeouts that are set count
    assert "(compose_release: deploy_build_timeout 2000), saw 1800: pass -e " \
        "deploy_lock_ttl=2300 " in one_line({"deploy_build_timeout": 2000,
                                             "deploy_lock_ttl": 1800})


def test_lock_ttl_must_outlive_the_smoke_checks():
    line = one_line({"smoke_timeout": 600, "deploy_build_timeout": 300, "deploy_lock_ttl": 600})
    assert line.startswith("deploy_lock_ttl: expected more seconds than the slowest single step "
                           "(smoke_check: smoke_timeout 600), saw 600: ")
    assert di.check_inputs({"smoke_timeout": 90, "deploy_lock_ttl": 91}) == []


def test_lock_ttl_counts_the_wait_for_the_new_container_in_the_smoke_step():
    """Zero-downtime: the smoke task waits for the new container, then checks."""
    values = {"smoke_timeout": 600, "deploy_candidate_timeout": 300}
    line = one_line({**values, "deploy_lock_ttl": 900})
    assert line.startswith("deploy_lock_ttl: expected more seconds than the slowest single step "
                           "(smoke_check: deploy_candidate_timeout 300 + smoke_timeout 600), "
                           "saw 900: pass -e deploy_lock_ttl=1800 ")
    assert di.check_inputs({**values, "deploy_lock_ttl": 901}) == []
    # recreate (zero-downtime off): no wait for a new container
    assert di.check_inputs({**values, "deploy_zero_downtime": "false",
                            "deploy_lock_ttl": 601}) == []


def test_the_smoke_step_must_fit_in_one_ssm_call():
    values = {**BUCKET, "ansible_aws_ssm_timeout": 300, "deploy_candidate_timeout": 180}
    assert di.check_inputs({**values, "smoke_timeout": 99}, ssm=True) == []
    problems = di.check_inputs({**values, "smoke_timeout": 100}, ssm=True)
    assert problems == [
        "smoke_timeout: expected the smoke step (deploy_candidate_timeout 180 + smoke_timeout "
        "100, + 20 for its last requests and log reads) to take fewer seconds than "
        "ansible_aws_ssm_timeout (300, which caps one remote call), saw 300: lower "
        "smoke_timeout or deploy_candidate_timeout, or raise ansible_aws_ssm_timeout in "
        "group_vars/backend/connection.yml"]
    assert LINE_RE.match(problems[0]) and FIX_RE.search(problems[0])
    # not over SSM: no cap
    assert di.check_inputs({**values, "smoke_timeout": 600}) == []


def test_lock_ttl_cross_check_needs_good_values():
    # a bad ttl is reported once (its own rule); an unset ttl or bad timeouts: nothing to compare
    line = one_line({"deploy_lock_ttl": "x", "deploy_build_timeout": 5000})
    assert "saw 'x'" in line
    assert di.check_inputs({"deploy_build_timeout": 5000, "smoke_timeout": 5000}) == []
    assert one_line({"deploy_lock_ttl": 60, "deploy_build_timeout": 0}).startswith(
        "deploy_build_timeout: expected a whole number")


def test_file_cap_cannot_exceed_total_cap():
    line = one_line({"deploy_archive_max_mb": 100, "deploy_archive_max_file_mb": 150})
    assert line.startswith("deploy_archive_max_file_mb: expected at most deploy_archive_max_mb")


@pytest.mark.parametrize(("connection", "ssm"), [
    ("amazon.aws.aws_ssm", True), ("community.aws.aws_ssm", True), ("aws_ssm", True),
    ("local", False), (None, False), ("ssh", False)])
def test_is_ssm(connection, ssm):
    assert di.is_ssm(connection) is ssm


def test_unevaluated_secret_never_shows_the_error_text():
    line = di.unevaluated_line("deploy_env_aws", "template error in 's3cr3t{{'")
    assert "s3cr3t" not in line and line.startswith("deploy_env_aws: expected a value Ansible")
    line = di.unevaluated_line("deploy_port", "'port_var' is undefined\nmore")
    assert "'port_var' is undefined" in line and "more" not in line


# --------------------------------------------------------------------------- agreement


def _role_files(kind: str) -> dict[str, dict]:
    out = {}
    for path in sorted((REPO / "roles").glob(f"*/{kind}")):
        out[path.parts[-3]] = yaml.safe_load(path.read_text()) or {}
    return out


def test_the_roles_defaults_pass_the_rules():
    checked = 0
    for role, defaults in _role_files("defaults/main.yml").items():
        values = {k: v for k, v in defaults.items() if k in di.RULES_BY_NAME
                  and not (isinstance(v, str) and "{{" in v)}
        assert di.check_inputs(values) == [], role
        checked += len(values)
    assert checked >= 30


def test_the_inventories_pass_the_rules():
    for inventory in ("sandbox", "production"):
        values: dict = {}
        for path in sorted((REPO / "inventory" / inventory / "group_vars").rglob("*.yml")):
            values.update(yaml.safe_load(path.read_text()) or {})
        # production leaves these to the operator on purpose (-e or its own group_vars)
        values = {k: v for k, v in values.items() if k in di.RULES_BY_NAME
                  and (inventory == "sandbox"
                       or k not in ("backend_src_dir", "ansible_aws_ssm_bucket_name"))}
        values.setdefault("ansible_aws_ssm_bucket_name", "atp-transfer")
        defaults = {}
        for role_defaults in _role_files("defaults/main.yml").values():
            defaults.update({k: v for k, v in role_defaults.items() if k in di.RULES_BY_NAME
                             and not (isinstance(v, str) and "{{" in v)})
        assert di.check_inputs({**defaults, **values}, ssm=True) == [], inventory


def _specs() -> list[tuple[str, str, dict]]:
    found = []
    for role, meta in _role_files("meta/argument_specs.yml").items():
        for entry in (meta.get("argument_specs") or {}).values():
            for name, spec in (entry.get("options") or {}).items():
                if name in di.RULES_BY_NAME:
                    found.append((role, name, spec))
    return found


def test_argument_specs_cover_the_main_variables():
    names = {name for _, name, _ in _specs()}
    assert {"deploy_service", "deploy_port", "smoke_timeout", "deploy_expected_routes",
            "deploy_env", "deploy_keep_releases", "deploy_build_timeout"} <= names


@pytest.mark.parametrize(("role", "name", "spec"), _specs(),
                         ids=lambda x: x if isinstance(x, str) else "")
def test_argument_specs_accept_everything_the_rules_accept(role, name, spec):
    """This check runs first; a role's spec must never refuse what it let through."""
    spec = {k: v for k, v in spec.items() if k not in ("description", "required")}
    for value in GOOD[name]:
        result = ArgumentSpecValidator({name: spec}).validate({name: value})
        assert result.error_messages == [], (role, name, value)


def _integration_bad_variables() -> list:
    """BAD_VARIABLES of tests/integration/test_deploy_bad_input.py (read, not imported: that
    package needs the sandbox)."""
    path = REPO / "tests/integration/test_deploy_bad_input.py"
    for node in ast.parse(path.read_text()).body:
        if (isinstance(node, ast.Assign) and len(node.targets) == 1
                and getattr(node.targets[0], "id", None) == "BAD_VARIABLES"):
            return ast.literal_eval(node.value)
    raise AssertionError("BAD_VARIABLES not found")


def _sandbox_deploy_values() -> dict:
    """What deploy.yml's deploy_inputs task sees with the sandbox inventory and no -e: the
    defaults of the roles deploy.yml imports (static, so visible to the play), then the
    sandbox group_vars."""
    imported = set(re.findall(r"import_role:\s+name: ([a-z_]+)",
                              (REPO / "playbooks/deploy.yml").read_text()))
    # and what they depend on (meta/main.yml): the deploy role holds every deploy_* default
    for role in list(imported):
        meta_file = REPO / "roles" / role / "meta/main.yml"
        meta = (yaml.safe_load(meta_file.read_text()) or {}) if meta_file.is_file() else {}
        imported |= {d["role"] if isinstance(d, dict) else d
                     for d in meta.get("dependencies") or []}
    values: dict = {}
    for role, defaults in _role_files("defaults/main.yml").items():
        if role in imported:
            values.update({k: v for k, v in defaults.items()
                           if not (isinstance(v, str) and "{{" in v)})
    for path in sorted((REPO / "inventory/sandbox/group_vars").rglob("*.yml")):
        values.update(yaml.safe_load(path.read_text()) or {})
    return values


def _row_id(extra: str | dict) -> str:
    name, value = extra.split("=", 1) if isinstance(extra, str) else next(iter(extra.items()))
    return f"{name}-{re.sub(r'[^A-Za-z0-9]+', '', str(value))[:16] or 'empty'}"


@pytest.mark.parametrize(("extra", "expected"), _integration_bad_variables(),
                         ids=[_row_id(e) for e, _ in _integration_bad_variables()])
def test_integration_bad_variable_rows_match_the_rules(extra, expected):
    """Each row's line is what the rules print, alone, in the sandbox deploy (-e k=v passes a
    string; a mapping is passed as JSON)."""
    base = _sandbox_deploy_values()
    ssm = di.is_ssm(base.get("ansible_connection"))
    assert ssm and di.check_inputs(base, ssm=ssm) == []
    if isinstance(extra, str):
        name, value = extra.split("=", 1)
        extra = {name: value}
    problems = di.check_inputs({**base, **extra}, ssm=ssm)
    assert len(problems) == 1, problems
    assert problems[0].startswith(expected), problems[0]


def test_integration_rows_cover_the_rules():
    """Most rules have a row that runs the real playbook (0 sessions)."""
    names = {(e.split("=", 1)[0] if isinstance(e, str) else next(iter(e)))
             for e, _ in _integration_bad_variables()}
    assert names <= set(di.RULES_BY_NAME)
    assert {"deploy_lock_ttl", "deploy_serial", "deploy_archive_max_file_mb",
            "deploy_build_log_lines", "deploy_env_parameter_prefix", "deploy_env_replace"} <= names
    assert any(name.startswith("smoke_check_") for name in names)


@pytest.mark.parametrize("name", sorted(di.BOOLEANS))
def test_boolean_strings_match_ansibles(name):
    from ansible.module_utils.parsing.convert_bool import BOOLEANS_FALSE, BOOLEANS_TRUE
    strings = {v for v in BOOLEANS_TRUE | BOOLEANS_FALSE if isinstance(v, str)}
    assert {s.lower() for s in strings} == di.TRUE_STRINGS | di.FALSE_STRINGS
    assert di.check_inputs({name: "maybe"}) != []
