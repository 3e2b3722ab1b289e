"""Tests of module_utils/docker_cmd.py (argv builders and output parsers)."""

from __future__ import annotations

import json

import pytest
from ansible_collections.atp.deploy.plugins.module_utils import docker_cmd as dc

FILES = ["docker-compose.yml", "docker-compose.deploy.yml"]


def test_read_only_builders():
    assert dc.info("/usr/bin/docker") == ["/usr/bin/docker", "info", "--format",
                                          "{{json .ServerVersion}}"]
    assert dc.compose_version() == ["docker", "compose", "version"]
    assert dc.image_id("repo:tag") == ["docker", "image", "inspect", "--format", "{{.Id}}",
                                       "repo:tag"]
    assert dc.ps_all_ids() == ["docker", "ps", "--all", "--quiet", "--no-trunc"]
    assert dc.ps_service_ids("proj", "svc") == [
        "docker", "ps", "--all", "--quiet", "--no-trunc",
        "--filter", "label=com.docker.compose.project=proj",
        "--filter", "label=com.docker.compose.service=svc",
    ]
    assert dc.inspect(["a", "b"]) == ["docker", "inspect", "a", "b"]
    with pytest.raises(ValueError):
        dc.inspect([])


def test_compose_build_and_up():
    assert dc.compose_build("p", FILES, "aws", "backend-aws") == [
        "docker", "compose", "-p", "p", "-f", FILES[0], "-f", FILES[1], "--profile", "aws",
        "build", "backend-aws"]
    up = dc.compose_up("p", FILES, "aws", "backend-aws")
    assert up[-4:] == ["up", "-d", "--no-build", "backend-aws"]
    assert "restart" not in up
    assert dc.compose("p", ["a.yml"], None, "ps") == ["docker", "compose", "-p", "p", "-f",
                                                      "a.yml", "ps"]


def test_override_document_and_text():
    ref = dc.image_ref("repo", "20261124T101500Z-0123456789ab")
    assert ref == "repo:20261124T101500Z-0123456789ab"
    assert dc.override_document("svc", ref, "abc", "2026") == {
        "services": {"svc": {"image": ref, "build": {"args": {"GIT_SHA": "abc",
                                                               "BUILD_TIME": "2026"}}}}}
    assert dc.override_document("svc", ref) == {"services": {"svc": {"image": ref}}}
    text = dc.override_text("svc", ref, "abc")
    assert text.endswith("\n") and json.loads(text)["services"]["svc"]["build"]["args"] == {
        "GIT_SHA": "abc"}


def test_first_line_and_tail():
    assert dc.first_line("\n  \nCannot connect\nmore") == "Cannot connect"
    assert dc.first_line("") == "(no output)"
    text = "\n".join(f"l{i}" for i in range(10)) + "\n"
    assert dc.tail_lines(text, 3) == "l7\nl8\nl9"
    assert dc.tail_lines(text, 0) == ""
    assert dc.tail_lines("", 5) == ""


@pytest.mark.parametrize(("text", "want"), [
    ("2.26.1\n", (2, 26, 1)),
    ("v2.18.0", (2, 18, 0)),
    ("Docker Compose version v2.29.7-desktop.1", (2, 29, 7)),
    ("1.29", (1, 29, 0)),
    ("garbage", None),
    ("", None),
])
def test_parse_compose_version(text, want):
    assert dc.parse_compose_version(text) == want


def test_compose_version_ok():
    assert dc.compose_version_ok((2, 18, 0))
    assert dc.compose_version_ok((3, 0, 0))
    assert not dc.compose_version_ok((2, 17, 9))
    assert not dc.compose_version_ok((1, 29, 2))
    assert not dc.compose_version_ok(None)


def test_parse_server_version_and_ids_and_image():
    assert dc.parse_server_version('"26.1.5"\n') == "26.1.5"
    assert dc.parse_server_version("26.1.5") == "26.1.5"
    assert dc.parse_server_version('""') is None
    assert dc.parse_server_version("") is None
    assert dc.parse_ids("a\n\n b \n") == ["a", "b"]
    assert dc.parse_image_id(0, "sha256:x\n") == "sha256:x"
    assert dc.parse_image_id(1, "") is None
    assert dc.parse_image_id(0, "  ") is None


def inspect_json() -> str:
    return json.dumps([
        {"Id": "c1", "Name": "/atp-backend-aws-1", "Image": "sha256:img",
         "Config": {"Image": "repo:rel", "Labels": {dc.PROJECT_LABEL: "atp",
                                                     dc.SERVICE_LABEL: "backend-aws"}},
         "State": {"Status": "running", "Running": True},
         "NetworkSettings": {"Ports": {"8002/tcp": [{"HostIp": "0.0.0.0", "HostPort": "8002"},
                                                     {"HostIp": "::", "HostPort": "8002"}],
                                       "9000/tcp": None}}},
        {"Id": "c2", "Name": "/stray", "Image": "sha256:other",
         "Config": {"Image": "old:latest", "Labels": None},
         "State": {"Status": "running", "Running": True},
         "NetworkSettings": {"Ports": {"8000/tcp": [{"HostPort": "8002"}]}}},
        {"Id": "c3", "Name": "/db", "Image": "sha256:pg", "Config": {}, "RestartCount": 3,
         "State": {"Status": "exited", "Running": False, "ExitCode": 1}, "NetworkSettings": {}},
    ])


def test_parse_inspect_and_filters():
    containers = dc.parse_inspect(inspect_json())
    assert containers[0] == {
        "id": "c1", "name": "atp-backend-aws-1", "image": "repo:rel", "image_id": "sha256:img",
        "state": "running", "running": True, "project": "atp", "service": "backend-aws",
        "host_ports": [8002], "restart_count": 0, "exit_code": None}
    assert containers[2]["running"] is False and containers[2]["host_ports"] == []
    assert (containers[2]["restart_count"], containers[2]["exit_code"]) == (3, 1)
    assert [c["id"] for c in dc.service_containers(containers, "atp", "backend-aws")] == ["c1"]
    assert dc.service_containers(containers, "other", "backend-aws") == []
    assert dc.publishers(containers, 8002) == [
        {"name": "atp-backend-aws-1", "image": "repo:rel", "id": "c1"},
        {"name": "stray", "image": "old:latest", "id": "c2"}]
    assert dc.publishers(containers, 9000) == []


def test_parse_inspect_rejects_non_json():
    with pytest.raises(ValueError, match="no JSON"):
        dc.parse_inspect("Error: No such object")
    assert dc.parse_inspect("") == []
