"""Sandbox EC2 instances: one container each, running its own Docker engine."""

from __future__ import annotations

import json
import subprocess
import time

from . import images
from .config import LABEL, Paths, container_name, instance_ids, load_state, save_state
from .engine import CAPSET_FLAGS, SandboxError, docker, privileged_works


def _pid(name: str) -> int:
    out = docker("inspect", "-f", "{{.State.Pid}}", name).stdout.decode().strip()
    return int(out)


def _wait_inner_engine(name: str, wait_s: int = 90) -> None:
    deadline = time.monotonic() + wait_s
    while time.monotonic() < deadline:
        if docker("exec", name, "docker", "info", check=False, timeout=30).returncode == 0:
            return
        time.sleep(1)
    log = docker("exec", name, "tail", "-5", "/var/log/dockerd.log", check=False)
    raise SandboxError(f"inner dockerd of {name} did not start within {wait_s}s: "
                       f"{log.stdout.decode().strip()[-300:]}")


def _load_image(name: str, tag: str) -> None:
    inner = docker("exec", name, "docker", "image", "inspect", "-f", "{{.Id}}", tag, check=False)
    outer = docker("image", "inspect", "-f", "{{.Id}}", tag).stdout
    if inner.returncode == 0 and inner.stdout == outer:
        return
    save = subprocess.Popen(["docker", "save", tag], stdout=subprocess.PIPE)
    load = subprocess.run(["docker", "exec", "-i", name, "docker", "load", "-q"],
                          stdin=save.stdout, capture_output=True)
    save.stdout.close()
    if save.wait() != 0 or load.returncode != 0:
        raise SandboxError(f"loading {tag} into {name} failed: {load.stderr.decode()[-300:]}")


def start(instance_id: str, image: str, isolation: list[str]) -> dict:
    name = container_name(instance_id)
    if docker("inspect", name, check=False).returncode != 0:
        docker("run", "-d", "--name", name, "--hostname", instance_id.replace("i-", "ip-"),
               "--label", f"{LABEL}={instance_id}", *isolation, "--cgroupns=host",
               "-v", "/sys/fs/cgroup:/sys/fs/cgroup:rw",
               "-v", f"{name}-docker:/var/lib/docker", image)
    else:
        docker("start", name)
    _wait_inner_engine(name)
    for tag in images.INSTANCE_BASE_TAGS:  # what the deployed apps build FROM (no registry)
        _load_image(name, tag)
    return {"id": instance_id, "container": name, "pid": _pid(name), "image": image}


def up(count: int, paths: Paths | None = None) -> dict:
    paths = paths or Paths()
    image = images.instance_image()
    images.base_images()
    isolation = ["--privileged"] if privileged_works(image) else list(CAPSET_FLAGS)
    state = load_state(paths)
    # Instances started earlier stay up (and get their new pids): fewer now means "at least".
    wanted = instance_ids(count)
    wanted += [known for known in state["instances"] if known not in wanted]
    for instance_id in wanted:
        state["instances"][instance_id] = start(instance_id, image, isolation)
        state["isolation"] = "privileged" if "--privileged" in isolation else "capset"
        save_state(state, paths)
    return state


def down(paths: Paths | None = None, volumes: bool = True) -> None:
    paths = paths or Paths()
    proc = docker("ps", "-aq", "--filter", f"label={LABEL}")
    ids = proc.stdout.decode().split()
    if ids:
        names = json.loads(docker("inspect", *ids).stdout)
        docker("rm", "-f", *ids)
        if volumes:
            for item in names:
                docker("volume", "rm", "-f", item["Name"].lstrip("/") + "-docker", check=False)
    state = load_state(paths)
    state["instances"] = {}
    save_state(state, paths)


def refresh_pids(paths: Paths | None = None) -> dict:
    """Current pid/running of every known instance (the stand-ins use this)."""
    state = load_state(paths)
    for _instance_id, info in state["instances"].items():
        proc = docker("inspect", "-f", "{{.State.Running}} {{.State.Pid}}", info["container"],
                      check=False)
        running, _, pid = proc.stdout.decode().strip().partition(" ")
        info["running"] = running == "true"
        info["pid"] = int(pid or 0)
    return state
