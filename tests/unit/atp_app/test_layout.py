"""The fixture app's compose file, Dockerfiles and env files, and the base images they need."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import yaml

from .conftest import SKELETON

sys.path.insert(0, str(Path(__file__).resolve().parents[3] / "sandbox"))
from atp_sandbox import images

COMPOSE = yaml.safe_load((SKELETON / "docker-compose.yml").read_text())
SERVICES = COMPOSE["services"]


def test_nine_services_with_profiles_local_and_aws() -> None:
    assert set(SERVICES) == {"db", "backend-dev", "backend", "backend-aws", "market-updater",
                             "market-updater-aws", "frontend", "frontend-aws", "aws-backup"}
    profiles = {p for s in SERVICES.values() for p in s["profiles"]}
    assert profiles == {"local", "aws"}


def test_db_service() -> None:
    db = SERVICES["db"]
    assert db["build"]["context"] == "./docker/postgres"
    assert db["container_name"] == "postgres_hardened"
    assert db["env_file"] == [".env", ".env.aws", ".env.db"]
    assert db["profiles"] == ["local", "aws"]
    assert db["restart"] == "always"
    assert db["volumes"] == ["postgres_data:/var/lib/postgresql/data"]
    assert "postgres_data" in COMPOSE["volumes"]
    assert db["healthcheck"]["interval"] == "30s"
    assert "pg_isready" in db["healthcheck"]["test"][1]


def test_db_only_env_file_is_used_by_no_other_service() -> None:
    users = [name for name, svc in SERVICES.items() if ".env.db" in svc.get("env_file", [])]
    assert users == ["db"]


def test_backend_aws_service() -> None:
    svc = SERVICES["backend-aws"]
    assert svc["profiles"] == ["aws"]
    assert svc["build"]["context"] == "."
    assert svc["build"]["dockerfile"] == "backend/Dockerfile.aws"
    assert set(svc["build"]["args"]) == {"GIT_SHA", "BUILD_TIME"}
    assert svc["env_file"] == [".env", ".env.aws"]
    env = svc["environment"]
    assert 38 <= len(env) <= 50, len(env)
    assert env["ENVIRONMENT"] == "aws" and "PORTFOLIO_DEBUG" in env
    assert re.fullmatch(r"postgresql://\$\{POSTGRES_USER:-\w+\}:\$\{POSTGRES_PASSWORD:-\w+\}"
                        r"@db:5432/\$\{POSTGRES_DB:-\w+\}", env["DATABASE_URL"])
    assert svc["ports"] == ["8002:8002"]
    assert svc["command"].startswith("sh -c \"sleep 10 && python3 -m gunicorn app.main:app -w 1 "
                                     "-k uvicorn.workers.UvicornWorker -b 0.0.0.0:8002")
    assert svc["restart"] == "always" and svc["mem_limit"] == "1g"
    assert "/ping_fast" in " ".join(svc["healthcheck"]["test"])
    assert svc["healthcheck"]["interval"] == "120s"
    assert svc["healthcheck"]["start_period"] == "180s"
    assert svc["depends_on"] == {"db": {"condition": "service_healthy"}}


def test_aws_services_that_depend_on_backend_aws() -> None:
    for name in ("market-updater-aws", "frontend-aws"):
        assert SERVICES[name]["depends_on"]["backend-aws"] == {"condition": "service_healthy"}


def test_dockerfiles_build_offline_from_the_sandbox_base_images() -> None:
    aws = (SKELETON / "backend/Dockerfile.aws").read_text()
    assert f"ARG BASE_IMAGE={images.BACKEND_BASE_TAG}" in aws
    assert aws.count("FROM ${BASE_IMAGE}") == 2
    assert re.search(r"^USER appuser$", aws, re.M)
    assert re.search(r"^WORKDIR /app$", aws, re.M)
    assert "COPY --from=builder --chown=appuser:appuser /build/app /app/app" in aws
    for dockerfile in ("backend/Dockerfile.aws", "backend/Dockerfile",
                       "docker/postgres/Dockerfile"):
        text = (SKELETON / dockerfile).read_text()
        code = "\n".join(line for line in text.splitlines() if not line.startswith("#"))
        assert not re.search(r"\b(pip|apt-get|apt|curl|wget)\b", code), dockerfile
        assert "# syntax=" not in text  # would pull a frontend image from a registry
    pg = (SKELETON / "docker/postgres/Dockerfile").read_text()
    assert f"ARG BASE_IMAGE={images.POSTGRES_BASE_TAG}" in pg
    assert (SKELETON / "docker/postgres/docker-entrypoint.sh").stat().st_mode & 0o111


def test_base_images_carry_what_the_fixture_needs() -> None:
    assert images.BACKEND_BASE_TAG == "atp-backend-base:bookworm"
    assert {"python3-fastapi", "python3-uvicorn", "python3-gunicorn",
            "python3-psycopg2"} <= set(images.BACKEND_BASE_PACKAGES)
    assert "postgresql-15" in images.POSTGRES_BASE_PACKAGES
    assert images.INSTANCE_BASE_TAGS == (images.BACKEND_BASE_TAG, images.POSTGRES_BASE_TAG)


def test_env_examples_and_backups() -> None:
    example = (SKELETON / ".env.example").read_text()
    for key in ("POSTGRES_USER", "POSTGRES_PASSWORD", "POSTGRES_DB", "EXCHANGE_CUSTOM_API_KEY",
                "ADMIN_ACTIONS_KEY"):
        assert re.search(rf"^{key}=", example, re.M), key
    ignored = (SKELETON / ".gitignore").read_text().split()
    assert {".env", ".env.aws", ".env.db", ".env.local"} <= set(ignored)
