"""Tests of module_utils/docker_cmd.py (argv builders and output parsers)."""

from __future__ import annotations

import json
from pathlib import Path

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
    assert up[-5:] == ["up", "-d", "--no-deps", "--no-build", "backend-aws"]
    assert "restart" not in up
    start = dc.compose_start_dependency("p", FILES, "aws", "db")
    assert start[-5:] == ["up", "-d", "--no-deps", "--no-recreate", "db"]
    assert "--force-recreate" not in start and "restart" not in start
    assert dc.compose("p", ["a.yml"], None, "ps") == ["docker", "compose", "-p", "p", "-f",
                                                      "a.yml", "ps"]


def test_override_document_and_text():
    ref = "repo:20261124T101500Z-0123456789ab"
    assert dc.tag("repo:a", ref) == ["docker", "tag", "repo:a", ref]
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
        "working_dir": None, "host_ports": [8002], "restart_count": 0, "exit_code": None,
        "health": None, "ips": {}, "cmd": []}
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


def test_gate_and_dependency_builders():
    run = dc.compose_run_once("p", FILES, "aws", "backend-aws", "p-gate-1", "python3",
                              ["-c", "print(1)", "app.main", "app"])
    assert run == ["docker", "compose", "-p", "p", "-f", FILES[0], "-f", FILES[1], "--profile",
                   "aws", "run", "--rm", "--no-deps", "-T", "--name", "p-gate-1",
                   "--entrypoint", "python3", "backend-aws", "-c", "print(1)", "app.main", "app"]
    assert "--service-ports" not in run and "--publish" not in run
    assert dc.ps_name_ids("postgres_hardened") == [
        "docker", "ps", "--all", "--quiet", "--no-trunc", "--filter",
        "name=^/postgres_hardened$"]
    assert dc.rm_force("x") == ["docker", "rm", "--force", "x"]
    assert dc.logs_tail("c1", 10) == ["docker", "logs", "--tail", "10", "c1"]
    assert dc.logs_tail("c1", 0)[3] == "1"


def test_parse_inspect_health():
    doc = json.loads(inspect_json())
    doc[0]["State"]["Health"] = {"Status": "starting", "Log": []}
    containers = dc.parse_inspect(json.dumps(doc))
    assert [c["health"] for c in containers] == ["starting", None, None]


# --------------------------------------------------------------------------- failure excerpts

BUILD_LOGS = Path(__file__).with_name("build_logs")


def read_log(name: str) -> str:
    return (BUILD_LOGS / name).read_text()


@pytest.mark.parametrize("name", ["buildkit_compose_fresh.log", "buildkit_compose_cached.log"])
def test_error_excerpt_buildkit(name):
    text = read_log(name)
    assert len(text.splitlines()) >= 40
    out = dc.error_excerpt(text, 15)
    assert 5 <= len(out) <= 15
    assert out[0].startswith("failed to solve: process \"/bin/sh -c for i in")
    assert out[0].endswith("did not complete successfully: exit code: 1")
    assert " ... " in out[0] and len(out[0]) <= dc.LINE_WIDTH
    assert out[1].startswith("failing step: [backend-aws builder 5/6] RUN for i in")
    assert out[2:] == [f"  Collecting package{i}==1.{i}" for i in range(1, 9)] + [
        "  ERROR: Could not find a version that satisfies the requirement psycopg2==2.9.99 "
        "(from versions: none)",
        "  ERROR: No matching distribution found for psycopg2==2.9.99"]
    joined = "\n".join(out)
    for noise in ("CACHED", "[backend-aws internal] load", "DONE", "#0 building", "#9 "):
        assert noise not in joined


def test_error_excerpt_keeps_the_step_errors_when_short_of_room():
    out = dc.error_excerpt(read_log("buildkit_compose_cached.log"), 5)
    assert len(out) == 5
    assert out[0].startswith("failed to solve")
    assert out[1].startswith("failing step: ")
    assert out[2:] == ["  Collecting package8==1.8",
                       "  ERROR: Could not find a version that satisfies the requirement "
                       "psycopg2==2.9.99 (from versions: none)",
                       "  ERROR: No matching distribution found for psycopg2==2.9.99"]


def test_error_excerpt_classic_builder():
    text = read_log("classic_builder.log")
    assert "\x1b[91m" in text
    out = dc.error_excerpt(text, 15)
    assert len(out) == 12
    assert out[0].startswith("The command '/bin/sh -c for i in")
    assert out[0].endswith("returned a non-zero code: 1")
    assert out[1].startswith("failing step: Step 5/8 : RUN for i in")
    assert out[-1] == "  ERROR: No matching distribution found for psycopg2==2.9.99"
    joined = "\n".join(out)
    for noise in ("\x1b", "--->", "Removing intermediate", "Sending build context",
                  "DEPRECATED", "compiling2"):
        assert noise not in joined


def test_error_excerpt_long_step_output_keeps_errors_and_tail():
    lines = ["#1 [internal] load build definition from Dockerfile.aws", "#1 DONE 0.0s", ""]
    for i in range(2, 8):
        lines += [f"#{i} [backend-aws builder {i}/9] COPY x{i} .", f"#{i} CACHED", ""]
    lines += ["#8 [backend-aws builder 8/9] RUN pip wheel -r requirements.txt"]
    lines += [f"#8 {i}.0 Building wheel for pkg{i}" for i in range(60)]
    lines[-30] = "#8 31.0 error: command 'gcc' failed: No such file or directory"
    lines += ["#8 61.0 note: This error originates from a subprocess",
              "#8 ERROR: process \"/bin/sh -c pip wheel -r requirements.txt\" did not complete "
              "successfully: exit code: 1",
              "------", " > [backend-aws builder 8/9] RUN pip wheel -r requirements.txt:",
              "61.0 note: This error originates from a subprocess", "------",
              "Dockerfile.aws:14", "--------------------",
              "  14 | >>> RUN pip wheel -r requirements.txt", "--------------------",
              "failed to solve: process \"/bin/sh -c pip wheel -r requirements.txt\" did not "
              "complete successfully: exit code: 1"]
    out = dc.error_excerpt("\n".join(lines), 13)
    assert len(out) == 13
    assert out[0] == ("failed to solve: process \"/bin/sh -c pip wheel -r requirements.txt\" "
                      "did not complete successfully: exit code: 1")
    assert out[1] == "failing step: [backend-aws builder 8/9] RUN pip wheel -r requirements.txt"
    assert out[2] == "  error: command 'gcc' failed: No such file or directory"
    assert out[-1] == "  note: This error originates from a subprocess"
    assert "CACHED" not in "\n".join(out)


def test_error_excerpt_up_failure_puts_the_error_first():
    text = "\n".join([" Network atp_default  Created"]
                     + [" Container atp-backend-aws-1  Recreate"] * 30
                     + ["Error response from daemon: Bind for 0.0.0.0:8002 failed: port is "
                        "already allocated", ""])
    out = dc.error_excerpt(text, 4)
    assert out[0] == ("Error response from daemon: Bind for 0.0.0.0:8002 failed: port is already "
                      "allocated")
    assert out[1:] == ["Container atp-backend-aws-1  Recreate"] * 3
    assert dc.error_excerpt("", 15) == []
    assert dc.error_excerpt("just one line", 15) == ["just one line"]


def test_short_line_keeps_both_ends():
    line = "a" * 300 + "exit code: 1"
    short = dc.short_line(line, 100)
    assert len(short) == 100 and short.endswith("exit code: 1") and " ... " in short
    assert dc.short_line("short") == "short"


def test_parse_inspect_reads_network_addresses():
    doc = [{"Id": "c9", "Name": "/atp-backend-aws-2", "Config": {}, "State": {},
            "NetworkSettings": {"Networks": {"atp_default": {"IPAddress": "172.18.0.5"},
                                             "none": {"IPAddress": ""}}}}]
    assert dc.parse_inspect(json.dumps(doc))[0]["ips"] == {"atp_default": "172.18.0.5"}


def test_override_text_resets_the_service_ports_when_a_proxy_takes_them():
    proxy = {"name": "backend-aws-proxy", "service": {"image": "repo:proxy",
                                                      "ports": [{"target": 8002,
                                                                 "published": "8002"}]}}
    text = dc.override_text("backend-aws", "repo:r1", proxy=proxy)
    assert '"ports": !reset []' in text
    assert dc.RESET_LIST not in text
    # Everything else stays JSON: the tag read as an empty list gives the document back.
    doc = json.loads(text.replace("!reset []", "[]"))
    assert doc["services"]["backend-aws"] == {"image": "repo:r1", "ports": []}
    assert doc["services"]["backend-aws-proxy"]["ports"][0]["published"] == "8002"
    assert "!reset" not in dc.override_text("backend-aws", "repo:r1")


def test_scale_up_keeps_the_running_containers():
    argv = dc.compose_scale_up("atp", ["c.yml", "o.yml"], "aws", "backend-aws", 2)
    assert argv[-4:] == ["--no-recreate", "--scale", "backend-aws=2", "backend-aws"]
    assert "--no-recreate" in argv and "--no-deps" in argv and "restart" not in argv
    assert dc.stop(["a", "b"], 30) == ["docker", "stop", "-t", "30", "a", "b"]


@pytest.mark.parametrize(("cmd", "shell"), [
    (["sh", "-c", "sleep 10 && python -m gunicorn app.main:app"], "sh"),
    (["/bin/bash", "-c", "exec gunicorn"], "/bin/bash"),
    (["python3", "-m", "uvicorn", "app.main:app"], None),
    (["sh"], None),
    (["sh", "/entrypoint.sh"], None),
    ([], None),
])
def test_shell_pid1(cmd, shell):
    assert dc.shell_pid1(cmd) == shell


def test_term_children_and_cmd_from_inspect():
    assert dc.term_children("c1", "sh") == ["docker", "exec", "c1", "sh", "-c",
                                            "kill -TERM -1 2>/dev/null; exit 0"]
    doc = '[{"Id": "c1", "Name": "/x", "Path": "sh", "Args": ["-c", "sleep 10 && gunicorn"]}]'
    assert dc.parse_inspect(doc)[0]["cmd"] == ["sh", "-c", "sleep 10 && gunicorn"]
