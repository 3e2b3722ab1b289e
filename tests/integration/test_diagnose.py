"""playbooks/diagnose.yml against a sandbox instance over the real aws_ssm plugin.

Uses ONLY instance i-08726dc37133b3565 (other test files use the other instances). The sample
backend is deployed there once per module; then a healthy diagnose, and broken cases, each
made through ansible ad-hoc commands over SSM (the operator's way) and undone afterwards.
`docker exec` into the sandbox instance is used only for read-only assertions.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import time
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import pytest
import yaml

from .conftest import (
    APP,
    REPO,
    SAMPLE,
    Events,
    active_release,
    instance_read,
    playbook,
)
from .conftest import ssm_shell as ssm_shell_on

INSTANCE = "i-08726dc37133b3565"
CONTAINER = f"atp-sandbox-{INSTANCE}"
PROJECT = "automated-trading-platform"
SERVICE = "backend-aws"
PROXY = f"{PROJECT}-{SERVICE}-proxy-1"
IMAGE_REPO = f"{PROJECT}-{SERVICE}"
BASE_IMAGE = "atp-backend-base:bookworm"
LABELS = (f"-l com.docker.compose.project={PROJECT} -l com.docker.compose.service={SERVICE}")
EXPECTED = ["GET /api/health", "GET /api/dashboard/state", "GET /api/portfolio/snapshot",
            "GET /api/portfolio/latest", "POST /api/portfolio/refresh"]


def fake_secrets() -> list[str]:
    """The sandbox's fake credential values (inventory/sandbox/group_vars/backend/env.yml)."""
    data = yaml.safe_load((REPO / "inventory/sandbox/group_vars/backend/env.yml").read_text())
    values = [str(v) for k, v in (data.get("deploy_env_aws") or {}).items()
              if re.search(r"KEY|SECRET", k)]
    assert len(values) == 2, values
    return values


SECRETS = fake_secrets()


# --------------------------------------------------------------------------- helpers


on_instance = partial(instance_read, CONTAINER)
current_release = partial(active_release, CONTAINER)


def backend() -> str:
    """The running backend container (zero-downtime: each release's container is a new one)."""
    names = on_instance("docker", "ps", "--format", "{{.Names}}", "--filter",
                        f"label=com.docker.compose.project={PROJECT}", "--filter",
                        f"label=com.docker.compose.service={SERVICE}").split()
    assert len(names) == 1, names
    return names[0]


def ssm_shell(inventory: Path, command: str, check: bool = True) -> subprocess.CompletedProcess:
    """Change the instance the operator's way: an ad-hoc shell command over SSM."""
    return ssm_shell_on(command, inventory, check)


def deploy(inventory: Path, *extra: str) -> subprocess.CompletedProcess:
    return playbook("-i", str(inventory), "deploy.yml", *extra)


def redeploy(inventory: Path) -> None:
    proc = deploy(inventory)
    assert proc.returncode == 0, proc.stdout[-3000:]


def deploy_log() -> list[dict]:
    text = on_instance("cat", f"{APP}/deploy.log")
    return [json.loads(line) for line in text.splitlines() if line.strip().startswith("{")]


@dataclass
class Diagnosis:
    proc: subprocess.CompletedProcess
    report: dict
    markdown: str
    sessions: int
    seconds: float

    @property
    def output(self) -> str:
        return self.proc.stdout + self.proc.stderr

    @property
    def words(self) -> str:
        """stdout with the YAML callback's line wrapping undone."""
        return " ".join(self.proc.stdout.replace("''", "'").split())

    def codes(self) -> list[str]:
        return [f["code"] for f in self.report["findings"]]

    def finding(self, code: str) -> str:
        messages = [f["message"] for f in self.report["findings"] if f["code"] == code]
        assert messages, f"no {code} finding in {self.codes()}: {self.output[-2000:]}"
        return messages[0]


def diagnose(inventory: Path, report_dir: Path, *extra: str) -> Diagnosis:
    report_dir.mkdir(parents=True, exist_ok=True)
    before = set(report_dir.iterdir())
    events = Events()
    started = time.monotonic()
    proc = playbook("-i", str(inventory), "playbooks/diagnose.yml",
                    "-e", f"diagnose_report_dir={report_dir}", *extra, timeout=300)
    seconds = time.monotonic() - started
    sessions = sum(1 for e in events.since()
                   if e.get("kind") == "start_session" and e.get("target") == INSTANCE)
    new = sorted(set(report_dir.iterdir()) - before)
    jsons = [p for p in new if p.suffix == ".json"]
    mds = [p for p in new if p.suffix == ".md"]
    assert len(jsons) == 1 and len(mds) == 1, (new, proc.stdout[-3000:])
    assert jsons[0].name.startswith(f"diagnose-{INSTANCE}-")
    assert jsons[0].with_suffix(".md") == mds[0]
    return Diagnosis(proc, json.loads(jsons[0].read_text()), mds[0].read_text(), sessions,
                     seconds)


def assert_no_secrets(diag: Diagnosis) -> None:
    for secret in SECRETS:
        for where, text in (("json report", json.dumps(diag.report)), ("md", diag.markdown),
                            ("stdout", diag.proc.stdout), ("stderr", diag.proc.stderr)):
            assert secret not in text, f"a fake secret value appears in the {where}"


def assert_healthy(inventory: Path, report_dir: Path) -> Diagnosis:
    diag = diagnose(inventory, report_dir)
    assert diag.proc.returncode == 0, diag.output[-3000:]
    assert diag.report["drift"] is False and diag.report["findings"] == []
    return diag


# --------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def inventory(tmp_path_factory) -> Path:
    inv = tmp_path_factory.mktemp("diagnose-inventory")
    (inv / "hosts.yml").write_text(f"backend:\n  hosts:\n    {INSTANCE}:\n")
    (inv / "group_vars").symlink_to(REPO / "inventory/sandbox/group_vars")
    return inv


@pytest.fixture(scope="module")
def deployed(inventory: Path) -> Path:
    """The sample backend deployed on the instance (once for the module)."""
    redeploy(inventory)
    return inventory


@pytest.fixture
def reports(tmp_path: Path) -> Path:
    return tmp_path / "reports"


# --------------------------------------------------------------------------- healthy


def test_healthy(deployed, reports):
    backend_name = backend()
    # Put the credentials into the container's log (as a careless app would) to see them masked.
    ssm_shell(deployed, f"docker exec {backend_name} sh -c 'echo \"leak check "
              "key=$EXCHANGE_CUSTOM_API_KEY secret=$EXCHANGE_CUSTOM_API_SECRET\" > /proc/1/fd/1'")
    diag = assert_healthy(deployed, reports)
    report = diag.report

    release = current_release()
    assert report["active_release"] == release and re.match(r"^\d{8}T\d{6}Z-[0-9a-f]{12}$",
                                                            release)
    shas = [r.get("git_sha") for r in deploy_log() if r.get("release") == release]
    assert shas, "the deploy recorded no line for the active release"
    if shas[-1] and shas[-1] != "unknown":
        assert report["git_sha"] == shas[-1] and report["git_sha_source"] == "deploy.log"
        assert f"git {shas[-1]}" in diag.words

    (container,) = report["containers"]
    assert container["name"] == backend_name and container["running"] is True
    assert container["image"] == f"{IMAGE_REPO}:{release}"
    assert container["image_id"] == report["release_image"]["id"]
    # Zero-downtime: the proxy publishes 8002 and forwards to the backend container.
    assert [p["name"] for p in report["port_publishers"]] == [PROXY]
    assert report["proxy"]["names"] == [PROXY]
    assert report["proxy"]["upstream"] == f"{backend_name}:8002"
    registered = report["routes"][backend_name]["registered"]
    assert set(EXPECTED) <= set(registered) and report["missing_routes"] == []

    assert report["credential_alias"] == "EXCHANGE_CUSTOM_API_KEY"
    aws_names = report["env_files"][".env.aws"]["names"]
    assert {"EXCHANGE_CUSTOM_API_KEY", "EXCHANGE_CUSTOM_API_SECRET"} <= set(aws_names)
    assert not {"CRYPTO_COM_API_KEY", "CRYPTO_COM_API_SECRET"} & set(aws_names)

    log = report["logs"][backend_name]
    assert 0 < len(log) <= 20
    assert "leak check key=*** secret=***" in log
    assert report["disk"]["total_mb"] > 0 and report["disk"]["path"].startswith(APP)
    assert 1 <= len(report["deploy_log"]) <= 5
    assert report["deploy_log"][-1]["release"] == release

    for words in (f"active release: {release}", "the active release's image",
                  "all 5 expected routes registered", "EXCHANGE_CUSTOM_API_KEY"):
        assert words in diag.words, words
        assert any(words in line for line in report["summary"]), words
    assert "## Verdict" in diag.markdown and f"# Diagnose of {INSTANCE}" in diag.markdown
    assert_no_secrets(diag)
    # One module call = one SSM session (the report is written on the controller).
    assert 1 <= diag.sessions <= 2, diag.sessions


# --------------------------------------------------------------------------- broken cases


def test_second_backend_container(deployed, reports):
    assert_healthy(deployed, reports)
    backend_name = backend()
    stray = "atp-diag-stray"
    try:
        ssm_shell(deployed, f"docker run -d --name {stray} {LABELS} {BASE_IMAGE} sleep 600")
        diag = diagnose(deployed, reports)
        assert diag.proc.returncode != 0
        message = diag.finding("duplicate_backend")
        assert backend_name in message and stray in message and "docker rm -f" in message
        assert "drifted" in diag.words and stray in diag.words
        assert_no_secrets(diag)
    finally:
        ssm_shell(deployed, f"docker rm -f {stray}", check=False)
    assert stray not in on_instance("docker", "ps", "-a", "--format", "{{.Names}}")


def test_stale_image_retagged(deployed, reports):
    assert_healthy(deployed, reports)
    backend_name = backend()
    release = current_release()
    ref = f"{IMAGE_REPO}:{release}"
    original = on_instance("docker", "image", "inspect", "-f", "{{.Id}}", ref)
    assert original.startswith("sha256:")
    try:
        ssm_shell(deployed, f"docker tag {BASE_IMAGE} {ref}")
        diag = diagnose(deployed, reports)
        assert diag.proc.returncode != 0
        assert diag.codes() == ["stale_image"], diag.codes()
        message = diag.finding("stale_image")
        assert f"container {backend_name} runs image {ref}" in message
        assert "ansible-playbook deploy.yml" in message
        assert "NOT the active release's image" in diag.words
    finally:
        ssm_shell(deployed, f"docker tag {original} {ref}", check=False)
    assert on_instance("docker", "image", "inspect", "-f", "{{.Id}}", ref) == original


def test_stale_container_from_another_image(deployed, reports):
    assert_healthy(deployed, reports)
    backend_name = backend()
    other = "atp-diag-other"
    try:
        ssm_shell(deployed, f"docker stop {backend_name} && "
                  f"docker run -d --name {other} {LABELS} {BASE_IMAGE} sleep 600")
        diag = diagnose(deployed, reports)
        assert diag.proc.returncode != 0
        message = diag.finding("stale_image")
        assert f"container {other} runs image {BASE_IMAGE}" in message
        assert "routes_unreadable" in diag.codes()  # no app inside the base image
        assert "no_container" not in diag.codes()
    finally:
        ssm_shell(deployed, f"docker rm -f {other}; docker start {backend_name}", check=False)


def test_no_backend_and_port_taken_by_another_container(deployed, reports):
    assert_healthy(deployed, reports)
    backend_name = backend()
    squatter = "atp-diag-squatter"
    try:
        # The proxy holds 8002 (zero-downtime): it stops too, so the squatter can take it.
        ssm_shell(deployed, f"docker stop {backend_name} {PROXY} && docker run -d "
                  f"--name {squatter} -p 8002:8002 {BASE_IMAGE} sleep 600")
        diag = diagnose(deployed, reports)
        assert diag.proc.returncode != 0
        assert "exited" in diag.finding("no_container")
        assert "ansible-playbook deploy.yml" in diag.finding("no_container")
        message = diag.finding("port_foreign")
        assert squatter in message and f"docker stop {squatter}" in message
        assert diag.report["routes"] == {}
    finally:
        ssm_shell(deployed, f"docker rm -f {squatter}; docker start {backend_name} {PROXY}",
                  check=False)


def test_missing_route(deployed, reports, tmp_path):
    assert_healthy(deployed, reports)
    healthy_release = current_release()
    src = tmp_path / "backend-src"
    shutil.copytree(SAMPLE, src)
    main = src / "backend/app/main.py"
    main.write_text("\n".join(line for line in main.read_text().splitlines()
                              if "include_router(portfolio_router" not in line) + "\n")
    try:
        # Fails its smoke check (expected): the exit code is not what this test is about.
        deploy(deployed, "-e", f"backend_src_dir={src}", "-e", "deploy_skip_router_check=true",
               "-e", "smoke_timeout=10")
        broken = on_instance("sh", "-c", f"grep -L 'include_router(portfolio_router' "
                             f"{APP}/releases/*/backend/app/main.py")
        assert broken, "the broken release was not unpacked"
        broken_release = broken.splitlines()[-1].split("/releases/")[1].split("/")[0]
        assert broken_release != healthy_release
        if current_release() != broken_release:
            # The deploy rolled back: activate the broken release by hand, as it was left.
            ssm_shell(deployed, f"cd {APP} && ln -sfn releases/{broken_release} current.diag "
                      f"&& mv -Tf current.diag current && cd releases/{broken_release} && "
                      f"docker compose -p {PROJECT} -f docker-compose.yml "
                      f"-f docker-compose.deploy.yml --profile aws up -d --no-build {SERVICE}")
        assert current_release() == broken_release
        diag = diagnose(deployed, reports)
        assert diag.proc.returncode != 0
        assert diag.report["active_release"] == broken_release
        assert diag.report["missing_routes"] == ["GET /api/portfolio/snapshot",
                                                 "GET /api/portfolio/latest",
                                                 "POST /api/portfolio/refresh"]
        message = diag.finding("missing_routes")
        assert "GET /api/portfolio/snapshot" in message and "include_router" in message
        assert "GET /api/portfolio/snapshot" in diag.output
        assert "stale_image" not in diag.codes()
    finally:
        redeploy(deployed)
    assert current_release() == healthy_release


def test_no_credentials(deployed, reports):
    assert_healthy(deployed, reports)
    try:
        # A deploy can no longer leave the backend without credentials (instance keys are
        # kept; missing credentials fail the smoke check and roll back, env included), so
        # the operator removes them by hand from the active env set and recreates the backend.
        ssm_shell(deployed, f"set -e; cd {APP}/current; "
                  "sed -i '/^EXCHANGE_CUSTOM_API_\\|^CRYPTO_\\?COM_API_/d' "
                  "$(readlink -f .env.aws) $(readlink -f .env); "
                  "docker compose -p automated-trading-platform -f docker-compose.yml "
                  "-f docker-compose.deploy.yml --profile aws up -d --no-deps --force-recreate "
                  "backend-aws")
        diag = diagnose(deployed, reports)
        assert diag.proc.returncode != 0
        assert diag.report["credential_alias"] is None
        message = diag.finding("no_credentials")
        assert "EXCHANGE_CUSTOM_API_KEY and EXCHANGE_CUSTOM_API_SECRET" in message
        assert "deploy_env_aws" in message and "redeploy" in message
        names = diag.report["env_files"][".env.aws"]["names"]
        assert "EXCHANGE_CUSTOM_API_KEY" not in names
        assert "credentials: none resolve" in diag.words
        assert_no_secrets(diag)
    finally:
        redeploy(deployed)
    assert_healthy(deployed, reports)
