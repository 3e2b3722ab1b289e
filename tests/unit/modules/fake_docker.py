"""A fake `docker` CLI for module tests: records argv, answers from a JSON state file.

Installed by tests as ``<tmp>/bin/docker`` (first on PATH). Environment:
  FAKE_DOCKER_STATE  JSON state file (read and updated)
  FAKE_DOCKER_LOG    JSON lines, one per call: {"argv": [...], "cwd": "..."}

State keys: info {rc, version, stderr}, compose {rc, version}, images {ref: id},
containers [{id, name, image, image_id, running, project, service, ports, status,
restart_count, exit_code}],
build {rc, output}, up {rc, output, wrong_image}, rm_errors {ref: (rc, stderr)},
inspect_error {rc, stderr} (docker image inspect itself failing).
``tag <image id|ref> <ref>`` adds a tag to an image (known by a tag or used by a container).

Dependencies and the route gate (compose_release):
  services {name: {container_name, health, health_seq, up_rc, up_output}}: compose services
    other than the backend. `up ... --no-recreate <svc>` starts a stopped container as it is
    (same id) or creates a missing one; `up` WITHOUT --no-recreate recreates it (new id). An
    `up` of the backend WITHOUT --no-deps recreates every running container of `services`,
    as compose does when a dependency's config changed. Containers may carry `health`
    (State.Health.Status) and `health_seq` (statuses taken one per `docker inspect`).
  run {output, rc} | {exec_cwd, env} | {hang: seconds}: `compose run --name N ...`; the one-off
    container N is in `containers` while it runs and removed at its end (--rm); `hang` sleeps
    without removing it (the caller's timeout kills the fake). exec_cwd runs the command with
    this Python in that directory. Default: prints an empty route list of the route gate.
  logs {id: text} for `docker logs --tail N <id>`; `rm --force <name|id>` removes a container;
  `stop -t N <name|id>...` stops containers.

Zero-downtime (compose_release zero_downtime=true):
  config: the model ``compose ... config --format json`` prints (default: DEFAULT_CONFIG, the
    backend-aws service publishing 8002 -> 8002 on network ``default``).
  candidate_ip: IPv4 address of containers created by ``up ... --scale <svc>=N`` (default
    "127.0.0.1"), as ``ips`` {"<project>_default": ip} (inspect
    ``NetworkSettings.Networks.<net>.IPAddress``, only while running).
  candidate_exits: true -> those containers are created not running, exit code 1 (no IP, as
    docker shows an exited container); an int N -> they run (with their IP) for N
    ``docker inspect`` calls, then exit with code 1 (container key ``exit_in``).
  ``up ... --no-recreate --scale <svc>=N <svc>`` keeps the running containers as they are,
  starts stopped ones (as compose does), then creates new ones ``<project>-<svc>-<k>`` (k after
  the highest number in use) with the override's image until N run. Their host ports: none
  when the override resets the service's ``ports`` (``!reset []``), else the config's
  published ports. Without --no-recreate a --scale up is unsupported (exit 99). ``up`` rc,
  output and wrong_image apply as for a plain ``up``.
  Containers may carry ``ips`` {network: ip} for inspect.

``image inspect`` takes several refs; with ``--format`` containing ``RepoTags`` it prints
``<tags JSON> <id>`` per found image, else the id. Missing refs go to stderr, exit 1.
``image rm <ref>`` untags; it refuses (as docker does) when the ref is the image's last tag and
a container, running or not, uses the image.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import time

GATE_MARK = "ATP_ROUTE_GATE_RESULT="
DEFAULT_CONFIG = {"services": {"backend-aws": {
    "ports": [{"target": 8002, "published": "8002", "mode": "ingress", "protocol": "tcp"}],
    "networks": {"default": None}}}}


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
    if c.get("working_dir"):
        labels["com.docker.compose.project.working_dir"] = c["working_dir"]
    ports = {f"{p}/tcp": [{"HostIp": "0.0.0.0", "HostPort": str(p)}] for p in c.get("ports", [])}
    return {
        "Id": c["id"],
        "Name": "/" + c["name"],
        "Image": c["image_id"],
        "Config": {"Image": c.get("image", ""), "Labels": labels},
        "State": {"Status": c.get("status") or ("running" if c.get("running") else "exited"),
                  "Running": bool(c.get("running")), "ExitCode": c.get("exit_code", 0),
                  **({"Health": {"Status": c["health"]}} if c.get("health") else {})},
        "RestartCount": c.get("restart_count", 0),
        "Path": (c.get("cmd") or ["python3"])[0],
        "Args": (c.get("cmd") or ["python3", "-m", "uvicorn", "app.main:app"])[1:],
        "NetworkSettings": {"Ports": ports if c.get("running") else {},
                            "Networks": {net: {"IPAddress": ip if c.get("running") else ""}
                                         for net, ip in (c.get("ips") or {}).items()}},
    }


def override_doc() -> dict:
    """The override compose_release writes (JSON, but for compose's `!reset []` tag)."""
    with open("docker-compose.deploy.yml", encoding="utf-8") as handle:
        return json.loads(handle.read().replace("!reset []", '"!reset []"'))


def override_image(service: str) -> str:
    return override_doc()["services"][service]["image"]


def compose(state: dict, args: list[str]) -> int:
    project, i = None, 0
    while i < len(args) and args[i] in ("-p", "-f", "--profile"):
        if args[i] == "-p":
            project = args[i + 1]
        i += 2
    rest = args[i:]
    if rest[:1] == ["run"]:
        return compose_run(state, project, rest[1:])
    if rest[:1] == ["up"] and rest[-1] in state.get("services", {}):
        return compose_up_dependency(state, project, rest)
    if rest[:1] == ["config"]:
        config = state.get("config", DEFAULT_CONFIG)
        print(json.dumps({"name": project, **config}))
        return 0
    if rest[:1] == ["up"] and "--scale" in rest:
        return compose_scale(state, project, rest)
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
        if "--no-deps" not in rest:
            for dep in state.get("services", {}):
                for c in state["containers"]:
                    if c.get("service") == dep and c.get("project") == project \
                            and c.get("running"):
                        c["id"] = fake_id("recreated", c["id"])
        mine = [c for c in state["containers"]
                if c.get("project") == project and c.get("service") == service]
        # compose recreates when the service's config changed: another image ref (a release
        # reusing the image of the same code is another ref) or another image.
        if len(mine) == 1 and mine[0]["running"] and mine[0]["image_id"] == image_id \
                and mine[0].get("image", ref) == ref:
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


def compose_scale(state: dict, project: str, rest: list[str]) -> int:
    """``up -d ... --no-recreate --scale <svc>=N <svc>``: keep running containers, start
    stopped ones, create new ones on the override's image until N run."""
    service = rest[-1]
    name, _, count = rest[rest.index("--scale") + 1].partition("=")
    if name != service or "--no-recreate" not in rest:
        print(f"fake docker: unsupported compose command {rest}", file=sys.stderr)
        return 99
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
    for c in mine:
        if not c.get("running"):
            c.update(running=True, status="running", exit_code=0)
    reset = override_doc()["services"][service].get("ports") == "!reset []"
    svc = (state.get("config", DEFAULT_CONFIG).get("services") or {}).get(service) or {}
    host_ports = [] if reset else [int(p["published"]) for p in svc.get("ports") or []
                                   if str(p.get("published") or "").isdigit()]
    numbers = [int(c["name"].rsplit("-", 1)[1]) for c in mine
               if c["name"].rsplit("-", 1)[-1].isdigit()]
    exits = state.get("candidate_exits") is True
    exit_in = state.get("candidate_exits")
    exit_in = exit_in if type(exit_in) is int and exit_in > 0 else None
    for _ in range(len(mine), int(count)):
        number = max(numbers, default=0) + 1
        numbers.append(number)
        cname = f"{project}-{service}-{number}"
        state["containers"].append({
            "id": fake_id("container", ref, cname, str(len(state.get("history", [])))),
            "name": cname, "image": ref, "image_id": image_id, "running": not exits,
            "status": "exited" if exits else "running", "exit_code": 1 if exits else 0,
            "project": project, "service": service, "ports": host_ports,
            "ips": {f"{project}_default": state.get("candidate_ip", "127.0.0.1")},
            **({"exit_in": exit_in} if exit_in and not exits else {})})
        state.setdefault("history", []).append(ref)
    save(state)
    return 0


def compose_up_dependency(state: dict, project: str, rest: list[str]) -> int:
    name = rest[-1]
    spec = state["services"][name]
    if spec.get("up_output"):
        print(spec["up_output"])
    if spec.get("up_rc"):
        return spec["up_rc"]
    mine = [c for c in state["containers"]
            if c.get("project") == project and c.get("service") == name]
    if mine and "--no-recreate" in rest:
        for c in mine:
            if not c.get("running"):
                c.update(running=True, status="running", exit_code=0)
                c.update({k: spec[k] for k in ("health", "health_seq") if k in spec})
                c["started"] = c.get("started", 0) + 1
    else:
        state["containers"] = [c for c in state["containers"] if c not in mine]
        count = len(state.get("history", []))
        state["containers"].append({
            "id": fake_id("container", name, str(count)),
            "name": spec.get("container_name") or f"{project}-{name}-1",
            "image": spec.get("image", name), "image_id": spec.get("image_id", "sha256:" + name),
            "running": True, "project": project, "service": name, "ports": [],
            **{k: spec[k] for k in ("health", "health_seq") if k in spec}})
        state.setdefault("history", []).append(name)
    save(state)
    return 0


def compose_run(state: dict, project: str, args: list[str]) -> int:
    opts, i = {}, 0
    while i < len(args) and args[i].startswith("-"):
        if args[i] in ("--name", "--entrypoint"):
            opts[args[i]] = args[i + 1]
            i += 2
        else:
            opts[args[i]] = True
            i += 1
    service, command = args[i], args[i + 1:]
    name = opts.get("--name") or f"{project}-{service}-run-1"
    spec = state.get("run") or {}
    oneoff = {"id": fake_id("oneoff", name), "name": name, "image": "", "running": True,
              "image_id": "sha256:oneoff", "project": project, "service": service, "ports": [],
              "oneoff": True}
    state["containers"].append(oneoff)
    save(state)
    if spec.get("hang"):
        time.sleep(spec["hang"])
    if "exec_cwd" in spec:
        entry = opts.get("--entrypoint")
        argv = ([sys.executable] if entry in ("python3", "python") else [entry]) + command
        env = {**os.environ, **spec.get("env", {})}
        done = subprocess.run(argv, cwd=spec["exec_cwd"], env=env, capture_output=True,
                              text=True, timeout=60, check=False)
        sys.stdout.write(done.stdout + done.stderr)
        rc = done.returncode
    else:
        default = "\n" + GATE_MARK + json.dumps({"routes": []})
        print(spec.get("output", default))
        rc = spec.get("rc", 0)
    if opts.get("--rm"):
        state = load()
        state["containers"] = [c for c in state["containers"] if c.get("name") != name]
        save(state)
    return rc


def rm(state: dict, args: list[str]) -> int:
    target = args[-1]
    mine = [c for c in state["containers"] if target in (c.get("name"), c.get("id"))]
    if not mine:
        print(f"Error response from daemon: No such container: {target}", file=sys.stderr)
        return 1
    state["containers"] = [c for c in state["containers"] if c not in mine]
    save(state)
    print(target)
    return 0


def stop(state: dict, args: list[str]) -> int:
    """``stop -t N <name|id>...``: the containers stop (exit 0), as docker stop does."""
    names = [a for i, a in enumerate(args) if a != "-t" and (i == 0 or args[i - 1] != "-t")]
    for c in state["containers"]:
        if c["name"] in names or c["id"] in names:
            c["running"] = False
            c["exit_code"] = 0
    save(state)
    return 0


def logs(state: dict, args: list[str]) -> int:
    tail = int(args[args.index("--tail") + 1]) if "--tail" in args else 100000
    lines = state.get("logs", {}).get(args[-1], "").splitlines()
    print("\n".join(lines[-tail:]))
    return 0


def docker_exec(state: dict, args: list[str]) -> int:
    """``exec <name> <shell> -c 'kill -TERM -1 ...'``: the app under a shell PID 1 gets
    SIGTERM; it stops gracefully (``stops_on_term``) and the shell exits with it."""
    for c in state["containers"]:
        if c["name"] == args[0] or c["id"] == args[0]:
            if not c.get("running"):
                print(f"Error response from daemon: container {args[0]} is not running",
                      file=sys.stderr)
                return 1
            if "kill -TERM -1" in " ".join(args) and c.get("stops_on_term"):
                c.update(running=False, status="exited", exit_code=0, termed=True)
                save(state)
            return 0
    print(f"Error: No such container: {args[0]}", file=sys.stderr)
    return 1


def inspect(state: dict, args: list[str]) -> int:
    found = []
    for c in state["containers"]:
        if c["id"] in args or c["name"] in args:
            if c.get("health_seq"):
                c["health"] = c["health_seq"].pop(0)
            found.append(inspect_doc(c))
            if "exit_in" in c:
                c["exit_in"] -= 1
                if c["exit_in"] <= 0:
                    del c["exit_in"]
                    c.update(running=False, status="exited", exit_code=1)
                save(state)
    if any(c.get("health_seq") is not None for c in state["containers"]):
        save(state)
    print(json.dumps(found))
    return 0 if len(found) == len(args) else 1


def ps(state: dict, args: list[str]) -> int:
    filters = [a for i, a in enumerate(args) if i and args[i - 1] == "--filter"]
    labels = {}
    for item in filters:
        if item.startswith("label="):
            key, _, value = item[len("label="):].partition("=")
            labels[key] = value
    names = [f[len("name="):].lstrip("^/").rstrip("$") for f in filters if f.startswith("name=")]
    for c in state["containers"]:
        if "--all" not in args and not c.get("running"):
            continue
        if names and c["name"] not in names:
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


def tag(state: dict, args: list[str]) -> int:
    """``docker tag <image id or ref> <ref>``."""
    source, ref = args
    image_id = source if source.startswith("sha256:") else state["images"].get(source)
    if image_id is None or (source.startswith("sha256:") and
                            image_id not in state["images"].values() and
                            image_id not in [c.get("image_id") for c in state["containers"]]):
        print(f"Error response from daemon: No such image: {source}", file=sys.stderr)
        return 1
    state["images"][ref] = image_id
    save(state)
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
    if argv[:1] == ["tag"]:
        return tag(state, argv[1:])
    if argv[:1] == ["ps"]:
        return ps(state, argv[1:])
    if argv[:1] == ["inspect"]:
        return inspect(state, argv[1:])
    if argv[:1] == ["rm"]:
        return rm(state, argv[1:])
    if argv[:1] == ["exec"]:
        return docker_exec(state, argv[1:])
    if argv[:1] == ["stop"]:
        return stop(state, argv[1:])
    if argv[:1] == ["logs"]:
        return logs(state, argv[1:])
    print(f"fake docker: unsupported {argv}", file=sys.stderr)
    return 99


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
