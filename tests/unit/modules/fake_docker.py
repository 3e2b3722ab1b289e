"""A fake `docker` CLI for module tests: records argv, answers from a JSON state file.

Installed by tests as ``<tmp>/bin/docker`` (first on PATH). Environment:
  FAKE_DOCKER_STATE  JSON state file (read and updated)
  FAKE_DOCKER_LOG    JSON lines, one per call: {"argv": [...], "cwd": "..."}

State keys: info {rc, version, stderr}, compose {rc, version}, images {ref: id},
containers [{id, name, image, image_id, running, project, service, ports, status,
restart_count, exit_code}],
build {rc, output}, up {rc, output, wrong_image}, rm_errors {ref: (rc, stderr)},
inspect_error {rc, stderr} (docker image inspect itself failing).

``image inspect`` takes several refs; with ``--format`` containing ``RepoTags`` it prints
``<tags JSON> <id>`` per found image, else the id. Missing refs go to stderr, exit 1.
``image rm <ref>`` untags; it refuses (as docker does) when the ref is the image's last tag and
a container, running or not, uses the image.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys


def load() -> dict:
    with open(os.environ["FAKE_DOCKER_STATE"], encoding="utf-8") as handle:
        return json.load(handle)


def save(state: dict) -> None:
    with open(os.environ["FAKE_DOCKER_STATE"], "w", encoding="utf-8") as handle:
        json.dump(state, handle)


def record(argv: list[str]) -> None:
    with open(os.environ["FAKE_DOCKER_LOG"], "a", encoding="utf-8") as handle:
        handle.write(json.dumps({"argv": argv, "cwd": os.getcwd()}) + "\n")


def fake_id(*parts: str) -> str:
    return "sha256:" + hashlib.sha256("|".join(parts).encode()).hexdigest()


def inspect_doc(c: dict) -> dict:
    labels = {}
    if c.get("project"):
        labels["com.docker.compose.project"] = c["project"]
    if c.get("service"):
        labels["com.docker.compose.service"] = c["service"]
    ports = {f"{p}/tcp": [{"HostIp": "0.0.0.0", "HostPort": str(p)}] for p in c.get("ports", [])}
    return {
        "Id": c["id"],
        "Name": "/" + c["name"],
        "Image": c["image_id"],
        "Config": {"Image": c.get("image", ""), "Labels": labels},
        "State": {"Status": c.get("status") or ("running" if c.get("running") else "exited"),
                  "Running": bool(c.get("running")), "ExitCode": c.get("exit_code", 0)},
        "RestartCount": c.get("restart_count", 0),
        "NetworkSettings": {"Ports": ports if c.get("running") else {}},
    }


def override_image(service: str) -> str:
    with open("docker-compose.deploy.yml", encoding="utf-8") as handle:
        return json.load(handle)["services"][service]["image"]


def compose(state: dict, args: list[str]) -> int:
    project, i, rest = None, 0, []
    while i < len(args):
        if args[i] == "-p":
            project, i = args[i + 1], i + 2
        elif args[i] in ("-f", "--profile"):
            i += 2
        else:
            rest.append(args[i])
            i += 1
    if rest == ["version"]:
        if state["compose"].get("rc"):
            print("docker: unknown command: docker compose", file=sys.stderr)
            return state["compose"]["rc"]
        print(f"Docker Compose version v{state['compose']['version']}")
        return 0
    command, service = rest[0], rest[-1]
    if command == "build":
        print(state["build"].get("output", ""))
        if state["build"].get("rc"):
            return state["build"]["rc"]
        ref = override_image(service)
        state["images"][ref] = fake_id("image", ref)
        save(state)
        return 0
    if command == "up":
        print(state["up"].get("output", ""))
        if state["up"].get("rc"):
            return state["up"]["rc"]
        ref = override_image(service)
        image_id = state["images"].get(ref)
        if image_id is None:
            print(f"pull access denied for {ref}", file=sys.stderr)
            return 1
        if state["up"].get("wrong_image"):
            image_id = state["up"]["wrong_image"]
        mine = [c for c in state["containers"]
                if c.get("project") == project and c.get("service") == service]
        if len(mine) == 1 and mine[0]["running"] and mine[0]["image_id"] == image_id:
            return 0
        state["containers"] = [c for c in state["containers"] if c not in mine]
        state["containers"].append({
            "id": fake_id("container", ref, str(len(state.get("history", [])))),
            "name": f"{project}-{service}-1", "image": ref, "image_id": image_id,
            "running": True, "project": project, "service": service, "ports": [8002],
        })
        state.setdefault("history", []).append(ref)
        save(state)
        return 0
    print(f"fake docker: unsupported compose command {rest}", file=sys.stderr)
    return 99


def ps(state: dict, args: list[str]) -> int:
    wanted = [a.split("=", 1)[1] for i, a in enumerate(args) if i and args[i - 1] == "--filter"]
    labels = {}
    for item in wanted:
        key, _, value = item.partition("=")
        labels[key] = value
    for c in state["containers"]:
        if "--all" not in args and not c.get("running"):
            continue
        doc_labels = inspect_doc(c)["Config"]["Labels"]
        if all(doc_labels.get(k) == v for k, v in labels.items()):
            print(c["id"])
    return 0


def image_inspect(state: dict, args: list[str]) -> int:
    fmt, refs, i = "{{json .}}", [], 0
    while i < len(args):
        if args[i] == "--format":
            fmt, i = args[i + 1], i + 2
        else:
            refs.append(args[i])
            i += 1
    if state.get("inspect_error"):
        print(state["inspect_error"].get("stderr", "Cannot connect to the Docker daemon"),
              file=sys.stderr)
        return state["inspect_error"].get("rc", 1)
    rc = 0
    for ref in refs:
        if ref not in state["images"]:
            print(f"Error: No such image: {ref}", file=sys.stderr)
            rc = 1
            continue
        image_id = state["images"][ref]
        if "RepoTags" in fmt:
            tags = sorted(r for r, i in state["images"].items() if i == image_id)
            print(json.dumps(tags, separators=(",", ":")) + " " + image_id)
        else:
            print(image_id)
    return rc


def image_rm(state: dict, args: list[str]) -> int:
    ref = args[-1]
    forced = state.get("rm_errors", {}).get(ref)
    if forced:
        print(forced[1], file=sys.stderr)
        return forced[0]
    if ref not in state["images"]:
        print(f"Error response from daemon: No such image: {ref}", file=sys.stderr)
        return 1
    image_id = state["images"][ref]
    other_tags = [r for r, i in state["images"].items() if i == image_id and r != ref]
    users = [c for c in state["containers"] if c.get("image_id") == image_id]
    if users and not other_tags:
        print(f'Error response from daemon: conflict: unable to remove repository reference '
              f'"{ref}" (must force) - container {users[0]["id"][:12]} is using its referenced '
              f'image {image_id[7:19]}', file=sys.stderr)
        return 1
    del state["images"][ref]
    save(state)
    print(f"Untagged: {ref}")
    if not other_tags:
        print(f"Deleted: {image_id}")
    return 0


def main(argv: list[str]) -> int:
    record(argv)
    state = load()
    if argv[:1] == ["info"]:
        if state["info"].get("rc"):
            print(state["info"].get("stderr", "Cannot connect to the Docker daemon"),
                  file=sys.stderr)
            return state["info"]["rc"]
        print(json.dumps(state["info"]["version"]))
        return 0
    if argv[:1] == ["compose"]:
        return compose(state, argv[1:])
    if argv[:2] == ["image", "inspect"]:
        return image_inspect(state, argv[2:])
    if argv[:2] == ["image", "rm"]:
        return image_rm(state, argv[2:])
    if argv[:1] == ["ps"]:
        return ps(state, argv[1:])
    if argv[:1] == ["inspect"]:
        found = [inspect_doc(c) for c in state["containers"] if c["id"] in argv[1:]]
        print(json.dumps(found))
        return 0 if len(found) == len(argv) - 1 else 1
    print(f"fake docker: unsupported {argv}", file=sys.stderr)
    return 99


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
