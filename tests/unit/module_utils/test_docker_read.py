"""Tests for docker_read: the shared ps + inspect and image id reads (proc.run scripted)."""

from __future__ import annotations

import json

import pytest
from ansible_collections.atp.deploy.plugins.module_utils import docker_read, proc

INSPECT = json.dumps([{
    "Id": "c1", "Name": "/app-backend-1", "Image": "sha256:img",
    "Config": {"Image": "repo:tag", "Labels": {"com.docker.compose.project": "app",
                                               "com.docker.compose.service": "backend"}},
    "State": {"Status": "running", "Running": True},
}])


@pytest.fixture
def script(monkeypatch):
    """Answer proc.run from a list of (rc, stdout, stderr), recording each argv."""
    calls: list[list[str]] = []
    answers: list[tuple[int, str, str]] = []

    def run(argv, timeout=None, **_kwargs):
        calls.append(argv)
        return answers.pop(0)

    monkeypatch.setattr(proc, "run", run)
    return calls, answers


def test_containers_lists_then_inspects(script):
    calls, answers = script
    answers += [(0, "c1\n", ""), (0, INSPECT, "")]
    found = docker_read.containers("docker", 5)
    assert [c["name"] for c in found] == ["app-backend-1"]
    assert calls == [["docker", "ps", "--all", "--quiet", "--no-trunc"],
                     ["docker", "inspect", "c1"]]


def test_containers_of_project_service_filter_by_labels(script):
    calls, answers = script
    answers += [(0, "", "")]
    assert docker_read.containers("docker", 5, "app", "backend") == []
    assert "label=com.docker.compose.project=app" in calls[0]
    assert "label=com.docker.compose.service=backend" in calls[0]


@pytest.mark.parametrize(("answers", "stage", "text"), [
    ([(1, "", "daemon down\n")], "ps", "`docker ps` failed (exit 1): daemon down"),
    ([(0, "c1", ""), (1, "", "no such container")], "inspect",
     "`docker inspect` failed (exit 1): no such container"),
    ([(0, "c1", ""), (0, "garbage", "")], "parse", "docker inspect printed no JSON: garbage"),
])
def test_containers_failures_name_their_stage(script, answers, stage, text):
    script[1].extend(answers)
    with pytest.raises(docker_read.DockerReadError) as info:
        docker_read.containers("docker", 5)
    assert info.value.stage == stage
    assert str(info.value) == text


def test_containers_retry_once_when_one_vanished(script):
    calls, answers = script
    answers += [(0, "c1\nc2\n", ""), (1, "", "No such object: c2"), (0, "c1\n", ""),
                (0, INSPECT, "")]
    found = docker_read.containers("docker", 5, retry_vanished=True)
    assert [c["id"] for c in found] == ["c1"]
    assert calls[-1] == ["docker", "inspect", "c1"]


def test_containers_retry_finding_none_is_empty(script):
    script[1].extend([(0, "c1\n", ""), (1, "", "gone"), (0, "", "")])
    assert docker_read.containers("docker", 5, retry_vanished=True) == []


def test_image_id(script):
    calls, answers = script
    answers += [(0, "sha256:x\n", ""), (1, "", "No such image")]
    assert docker_read.image_id("docker", "repo:tag", 5) == "sha256:x"
    assert docker_read.image_id("docker", "repo:gone", 5) is None
    assert calls[0] == ["docker", "image", "inspect", "--format", "{{.Id}}", "repo:tag"]
