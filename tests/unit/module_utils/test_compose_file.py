"""Tests for compose_file: the deployed service, its dependencies and env files."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from ansible_collections.atp.deploy.plugins.module_utils import compose_file as cf

from . import realistic_app as ra


@pytest.fixture
def doc() -> dict:
    """The real app's compose file (9 services, profiles local/aws)."""
    return yaml.safe_load(ra.COMPOSE)


def _doc(services: dict) -> dict:
    return {"services": services}


def _error(func, *args) -> str:
    with pytest.raises(cf.ComposeError) as info:
        func(*args)
    msg = str(info.value)
    assert "\n" not in msg
    return msg


# --------------------------------------------------------------------------- the real shape


def test_backend_aws_under_aws(doc: dict) -> None:
    assert len(doc["services"]) == 9
    assert cf.describe(doc, "docker-compose.yml", "backend-aws", "aws") == {
        "file": "docker-compose.yml",
        "service": "backend-aws",
        "profile": "aws",
        "dependencies": [
            {"name": "db", "condition": "service_healthy", "container_name": "postgres_hardened"},
        ],
        "env_files": [".env", ".env.aws", ".env.db"],
        "optional_env_files": [],
        "all_env_files": [".env", ".env.aws", ".env.db", ".env.local",
                          "frontend/.env.production", ".env.backup"],
        "environment": {
            "DATABASE_URL": "postgresql://trader:${POSTGRES_PASSWORD:-traderpass}@db:5432/atp",
            "ENVIRONMENT": "aws", "PORTFOLIO_DEBUG": "0", "TZ": "UTC"},
    }


def test_transitive_dependencies_come_first(doc: dict) -> None:
    summary = cf.describe(doc, "docker-compose.yml", "market-updater-aws", "aws")
    assert summary["dependencies"] == [
        # the service's own edge to db (service_started) wins over backend-aws's edge
        {"name": "db", "condition": "service_started", "container_name": "postgres_hardened"},
        {"name": "backend-aws", "condition": "service_healthy", "container_name": None},
    ]
    assert summary["env_files"] == [".env", ".env.aws", ".env.db"]


def test_optional_env_files_are_listed_apart(doc: dict) -> None:
    summary = cf.describe(doc, "docker-compose.yml", "frontend-aws", "aws")
    assert [d["name"] for d in summary["dependencies"]] == ["db", "backend-aws"]
    assert summary["env_files"] == [".env", ".env.aws", ".env.db"]
    assert summary["optional_env_files"] == ["frontend/.env.production"]
    backup = cf.describe(doc, "docker-compose.yml", "aws-backup", "aws")
    assert backup["dependencies"] == []
    assert backup["env_files"] == [".env.aws"]
    assert backup["optional_env_files"] == [".env.backup"]


def test_local_profile(doc: dict) -> None:
    summary = cf.describe(doc, "docker-compose.yml", "frontend", "local")
    assert [d["name"] for d in summary["dependencies"]] == ["db", "backend"]
    assert summary["dependencies"][1]["condition"] == "service_started"
    assert summary["env_files"] == [".env", ".env.aws", ".env.db", ".env.local"]


def test_service_not_enabled_under_profile_names_its_profiles(doc: dict) -> None:
    msg = _error(cf.describe, doc, "docker-compose.yml", "backend-aws", "local")
    assert msg == (
        "service 'backend-aws' is not enabled under profile 'local' (deploy_compose_profile): "
        "its profiles are aws; pass -e deploy_compose_profile=aws"
    )


def test_service_missing_lists_the_services(doc: dict) -> None:
    msg = _error(cf.describe, doc, "docker-compose.yml", "backend-prod", "aws")
    assert msg == (
        "service 'backend-prod' (deploy_service) is not in docker-compose.yml: its services are "
        "db, backend-dev, backend, backend-aws, market-updater, market-updater-aws, frontend, "
        "frontend-aws, aws-backup; pass -e deploy_service=<one of them>"
    )


# --------------------------------------------------------------------------- profiles


def test_services_without_profiles_are_always_enabled() -> None:
    doc = _doc({"api": {"depends_on": ["cache"]}, "cache": {}})
    for profile in ("", "aws", "aws,local"):
        summary = cf.describe(doc, "docker-compose.yml", "api", profile)
        assert summary["dependencies"] == [
            {"name": "cache", "condition": "service_started", "container_name": None}
        ]


def test_comma_separated_profiles() -> None:
    doc = _doc({"api": {"profiles": ["b"], "depends_on": ["x"]}, "x": {"profiles": "a"}})
    assert [d["name"] for d in cf.describe(doc, "c.yml", "api", "a, b")["dependencies"]] == ["x"]
    assert cf.parse_profiles(["a", " ", "b"]) == ["a", "b"]
    assert cf.parse_profiles(None) == []


def test_required_dependency_disabled_by_profile_fails() -> None:
    doc = _doc({"api": {"profiles": ["aws"], "depends_on": ["db"]},
                "db": {"profiles": ["local"]}})
    msg = _error(cf.describe, doc, "docker-compose.yml", "api", "aws")
    assert msg.startswith(
        "service 'api' depends on 'db', which is not enabled under profile 'aws' "
        "(its profiles: local): compose refuses to start api;"
    )


def test_optional_dependency_disabled_or_missing_is_left_out() -> None:
    doc = _doc({
        "api": {"depends_on": {"db": {"condition": "service_healthy", "required": False},
                               "ghost": {"required": False}, "cache": None}},
        "db": {"profiles": ["local"]},
        "cache": {"container_name": "cache_1"},
    })
    assert cf.describe(doc, "docker-compose.yml", "api", "aws")["dependencies"] == [
        {"name": "cache", "condition": "service_started", "container_name": "cache_1"}
    ]


def test_missing_dependency_fails() -> None:
    doc = _doc({"api": {"depends_on": {"db": {"condition": "service_healthy"}}}})
    assert _error(cf.describe, doc, "docker-compose.yml", "api", "aws") == (
        "service 'api' depends on 'db', which is not a service in docker-compose.yml: add the "
        "service or fix depends_on"
    )


def test_dependency_cycle_fails() -> None:
    doc = _doc({"a": {"depends_on": ["b"]}, "b": {"depends_on": ["c"]}, "c": {"depends_on": ["b"]}})
    assert _error(cf.describe, doc, "c.yml", "a", "") == (
        "depends_on cycle in c.yml: b -> c -> b: compose cannot start it; remove one edge"
    )


@pytest.mark.parametrize(
    ("depends_on", "fragment"),
    [
        ({"db": {"condition": "service_ready"}}, "depends_on.db.condition is 'service_ready'"),
        ({"db": "healthy"}, "depends_on.db is a str"),
        ([{"db": 1}], "depends_on list holds a non-string item"),
        (7, "depends_on is a int"),
    ],
)
def test_malformed_depends_on(depends_on: object, fragment: str) -> None:
    doc = _doc({"api": {"depends_on": depends_on}, "db": {}})
    assert fragment in _error(cf.describe, doc, "c.yml", "api", "")


# --------------------------------------------------------------------------- env files


def test_env_file_forms_are_normalised() -> None:
    spec = {"env_file": ["./.env", {"path": "config//.env.aws"}, {"path": ".env.x",
                                                                  "required": False}]}
    assert cf.env_file_entries(spec) == [
        cf.EnvFile("./.env"), cf.EnvFile("config//.env.aws"), cf.EnvFile(".env.x", False),
    ]
    doc = _doc({"api": {**spec, "depends_on": ["db"]}, "db": {"env_file": "./.env"}})
    summary = cf.describe(doc, "docker-compose.yml", "api", "")
    assert summary["env_files"] == [".env", "config/.env.aws"]
    assert summary["optional_env_files"] == [".env.x"]


@pytest.mark.parametrize(
    ("path", "fragment"),
    [
        ("/etc/atp/.env", "is an absolute path"),
        ("~/.env", "is an absolute path"),
        ("../secrets/.env", "escapes the checkout"),
        ("config/../../.env", "escapes the checkout"),
        ("${ENV_FILE:-.env}", "uses variable interpolation"),
        ("  ", "has an empty env_file entry"),
    ],
)
def test_env_file_outside_the_checkout_fails(path: str, fragment: str) -> None:
    doc = _doc({"api": {"env_file": [".env", path]}, "other": {"env_file": ".env.other"}})
    msg = _error(cf.describe, doc, "docker-compose.yml", "api", "")
    assert msg.startswith("service 'api' ")
    assert fragment in msg


def test_env_file_of_a_subdir_compose_file() -> None:
    doc = _doc({"api": {"env_file": ["../.env", ".env.local"]}})
    summary = cf.describe(doc, "deploy/docker-compose.yml", "api", "")
    assert summary["file"] == "deploy/docker-compose.yml"
    assert summary["env_files"] == ["../.env", ".env.local"]
    doc = _doc({"api": {"env_file": "../../.env"}})
    assert "escapes the checkout" in _error(cf.describe, doc, "deploy/c.yml", "api", "")


def test_all_env_files_skip_services_with_bad_paths() -> None:
    doc = _doc({
        "api": {"env_file": ".env"},
        "tool": {"profiles": ["dev"], "env_file": ["/abs/.env", ".env.tool"]},
        "broken": {"env_file": 3},
    })
    summary = cf.describe(doc, "docker-compose.yml", "api", "aws")
    assert summary["all_env_files"] == [".env", ".env.tool"]


def test_malformed_env_file_of_the_service_fails() -> None:
    doc = _doc({"api": {"env_file": [{"required": True}]}})
    assert "env_file holds an entry without a string path" in _error(
        cf.describe, doc, "c.yml", "api", ""
    )


# --------------------------------------------------------------------------- loading


def test_compose_summary_reads_the_file(tmp_path: Path) -> None:
    root = ra.write_app(tmp_path / "checkout")
    summary = cf.compose_summary(str(root), "./docker-compose.yml", "backend-aws", "aws")
    assert summary["file"] == "docker-compose.yml"
    assert summary["env_files"] == [".env", ".env.aws", ".env.db"]


def test_missing_compose_file(tmp_path: Path) -> None:
    msg = _error(cf.compose_summary, str(tmp_path), "docker-compose.yml", "backend-aws", "aws")
    assert msg.startswith("compose file docker-compose.yml not found: ")


def test_compose_file_outside_the_checkout(tmp_path: Path) -> None:
    msg = _error(cf.compose_summary, str(tmp_path), "../docker-compose.yml", "api", "")
    assert msg.startswith("compose_file '../docker-compose.yml' is not a path inside")


def test_invalid_yaml_names_the_line_not_the_content(tmp_path: Path) -> None:
    (tmp_path / "docker-compose.yml").write_text(
        "services:\n  api:\n    environment:\n      KEY: s3cr3t-value: [\n"
    )
    msg = _error(cf.compose_summary, str(tmp_path), "docker-compose.yml", "api", "")
    assert msg.startswith("compose file docker-compose.yml is not valid YAML at line 4: ")
    assert "s3cr3t" not in msg


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("- a\n- b\n", "is not a YAML mapping (saw list)"),
        ("", "is not a YAML mapping (saw NoneType)"),
        ("version: '3'\n", "has no 'services:' mapping"),
        ("services:\n  api: [1]\n", "service 'api' in docker-compose.yml is a list"),
    ],
)
def test_not_a_compose_file(tmp_path: Path, text: str, fragment: str) -> None:
    (tmp_path / "docker-compose.yml").write_text(text)
    assert fragment in _error(cf.compose_summary, str(tmp_path), "docker-compose.yml", "api", "")


def test_not_utf8(tmp_path: Path) -> None:
    (tmp_path / "docker-compose.yml").write_bytes(b"services:\n  api: {image: \xff\xfe}\n")
    msg = _error(cf.compose_summary, str(tmp_path), "docker-compose.yml", "api", "")
    assert "docker-compose.yml" in msg


def test_service_with_empty_body() -> None:
    summary = cf.describe(_doc({"api": None}), "c.yml", "api", "")
    assert summary["dependencies"] == [] and summary["env_files"] == []
