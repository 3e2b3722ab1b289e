"""Sandbox instances as EC2 knows them (TEST INFRASTRUCTURE).

The stand-ins' moto holds one EC2 instance per sandbox instance so that the sandbox inventory
(the production `amazon.aws.aws_ec2` source with the sandbox's endpoints) selects hosts the way
production does:
- the instance id is the sandbox's id (moto would pick a random one: the sandbox's own
  RunInstances calls name theirs, see install_id_hook), so the SSM and plugin stand-ins map it
  to its container through .sandbox/state.json as before;
- the tags are the ones the production source filters on (read from
  inventory/production/aws_ec2.yml, the one place they are set). The first `fleet` instances
  (default 1) carry them; the others carry Role=sandbox-spare, so every test file keeps its own
  instance out of the default inventory until `atp_sandbox fleet N` tags it as a backend;
- the state follows the container: `docker stop` (atp_sandbox stop-instance) -> stopped;
- decoys the inventory must never list: a STOPPED instance with the backend tags and a
  RUNNING instance without any tag.
"""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

from .config import (
    ACCESS_KEY_ID,
    PRODUCTION_EC2_SOURCE,
    REGION,
    SECRET_ACCESS_KEY,
    Paths,
    container_name,
    endpoints,
    load_state,
)
from .engine import SandboxError

SPARE_ROLE = "sandbox-spare"
DECOY_STOPPED = "atp-sandbox-decoy-stopped"
AMI = "ami-0a1b2c3d4e5f60718"  # any id: moto validates AMIs only when asked to
INSTANCE_TYPE = "t3.small"

_next_ids: list[str] = []
_id_lock = threading.Lock()
_run_lock = threading.Lock()


# --------------------------------------------------------------------------- what to register


def selection_tags(source: Path = PRODUCTION_EC2_SOURCE) -> dict[str, str]:
    """The `tag:<Key>: <value>` filters of an aws_ec2 inventory source, as {Key: value}."""
    import yaml

    try:
        data = yaml.safe_load(source.read_text()) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise SandboxError(f"expected a readable aws_ec2 inventory source at {source}, "
                           f"saw {exc.__class__.__name__}: {exc}") from exc
    tags = {}
    for key, value in (data.get("filters") or {}).items():
        if str(key).startswith("tag:"):
            tags[str(key)[4:]] = str(value[0] if isinstance(value, list) else value)
    if not tags:
        raise SandboxError(f"expected tag:<Key> filters in {source}, found none: the sandbox "
                           "registers its instances with the tags production selects on")
    return tags


def role_key(tags: dict[str, str]) -> str:
    """The tag a spare instance changes: Role when the selection uses it, else the last one."""
    return "Role" if "Role" in tags else list(tags)[-1]


def instance_tags(selection: dict[str, str], instance_id: str, member: bool) -> dict[str, str]:
    tags = dict(selection)
    if not member:
        tags[role_key(tags)] = SPARE_ROLE
    tags["Name"] = container_name(instance_id)
    return tags


def expected(state: dict, selection: dict[str, str]) -> dict[str, dict]:
    """{instance id: {"tags": ..., "running": bool}} for every sandbox instance in ``state``."""
    fleet = int(state.get("fleet", 1))
    wanted = {}
    for index, instance_id in enumerate(sorted(state.get("instances", {}))):
        info = state["instances"][instance_id]
        wanted[instance_id] = {"tags": instance_tags(selection, instance_id, index < fleet),
                               "running": pid_alive(info.get("pid"))}
    return wanted


def pid_alive(pid: object) -> bool:
    return isinstance(pid, int) and pid > 0 and os.path.exists(f"/proc/{pid}")


# --------------------------------------------------------------------------- moto EC2 API


def client():
    """An EC2 client on the stand-ins' moto (the sandbox's keys, never the caller's)."""
    import boto3

    return boto3.client("ec2", endpoint_url=endpoints()["default"], region_name=REGION,
                        aws_access_key_id=ACCESS_KEY_ID,
                        aws_secret_access_key=SECRET_ACCESS_KEY)


def install_id_hook() -> None:
    """Let the sandbox name the id of the instance its next RunInstances creates.

    moto draws EC2 instance ids at random and has no custom-id hook for them (its
    `_custom_id_` tag covers other resources). Called once in the stand-in process, which
    runs moto in-process; other RunInstances calls keep getting random ids.
    """
    from moto.ec2.models import instances as moto_instances

    original = moto_instances.random_instance_id
    if getattr(original, "atp_sandbox_hook", False):
        return

    def next_instance_id() -> str:
        with _id_lock:
            if _next_ids:
                return _next_ids.pop(0)
        return original()

    next_instance_id.atp_sandbox_hook = True  # type: ignore[attr-defined]
    moto_instances.random_instance_id = next_instance_id


def _tag_list(tags: dict[str, str]) -> list[dict[str, str]]:
    return [{"Key": key, "Value": value} for key, value in tags.items()]


def run_instance(ec2, tags: dict[str, str], instance_id: str | None = None) -> str:
    """RunInstances on moto (through its API); with ``instance_id`` the new one gets that id."""
    request = {"ImageId": AMI, "MinCount": 1, "MaxCount": 1, "InstanceType": INSTANCE_TYPE}
    if tags:
        request["TagSpecifications"] = [{"ResourceType": "instance", "Tags": _tag_list(tags)}]
    with _run_lock:
        with _id_lock:
            _next_ids[:] = [instance_id] if instance_id else []
        try:
            got = ec2.run_instances(**request)["Instances"][0]["InstanceId"]
        finally:
            with _id_lock:
                _next_ids.clear()
    if instance_id and got != instance_id:
        ec2.terminate_instances(InstanceIds=[got])
        raise SandboxError(f"expected moto to register {instance_id}, it made {got}: the "
                           "instance-id hook is not installed in this moto")
    return got


def describe(ec2=None) -> dict[str, dict]:
    """Every instance moto knows: {id: {"state": name, "tags": {...}}}."""
    ec2 = ec2 or client()
    found = {}
    for page in ec2.get_paginator("describe_instances").paginate():
        for reservation in page["Reservations"]:
            for item in reservation["Instances"]:
                found[item["InstanceId"]] = {
                    "state": item["State"]["Name"],
                    "tags": {t["Key"]: t["Value"] for t in item.get("Tags", [])}}
    return found


def mismatches(state: dict, found: dict[str, dict],
               selection: dict[str, str] | None = None) -> list[str]:
    """What moto still lacks compared with ``state`` (one line each; empty = in sync)."""
    problems = []
    for instance_id, want in expected(state, selection or selection_tags()).items():
        have = found.get(instance_id)
        state_name = "running" if want["running"] else "stopped"
        if have is None:
            problems.append(f"{instance_id} not registered")
        elif have["state"] != state_name:
            problems.append(f"{instance_id} is {have['state']}, expected {state_name}")
        elif any(have["tags"].get(k) != v for k, v in want["tags"].items()):
            problems.append(f"{instance_id} has tags {have['tags']}, expected {want['tags']}")
    if not any(i["state"] == "stopped" and i["tags"].get("Name") == DECOY_STOPPED
               for i in found.values()):
        problems.append("stopped decoy not registered")
    if not any(i["state"] == "running" and not i["tags"] for i in found.values()):
        problems.append("untagged decoy not registered")
    return problems


def wait_registered(paths: Paths | None = None, wait_s: float = 30) -> dict[str, dict]:
    """Block until moto reflects .sandbox/state.json (instances, tags, running/stopped)."""
    deadline = time.monotonic() + wait_s
    ec2 = client()
    selection = selection_tags()
    while True:
        try:
            found = describe(ec2)
            problems = mismatches(load_state(paths), found, selection)
        except Exception as exc:  # moto not answering yet
            problems = [f"moto EC2 at {endpoints()['default']}: {exc}"]
        if not problems:
            return found
        if time.monotonic() > deadline:
            raise SandboxError(f"expected moto EC2 to list the sandbox instances within "
                               f"{wait_s:.0f}s, saw: {'; '.join(problems)[:400]} (stand-ins "
                               "from an older checkout? `make sandbox-down sandbox-up`)")
        time.sleep(0.3)


# --------------------------------------------------------------------------- in the stand-in


class Registry(threading.Thread):
    """Keeps moto's EC2 in step with .sandbox/state.json (runs inside the stand-in process)."""

    def __init__(self, paths: Paths | None = None, interval: float = 0.5) -> None:
        super().__init__(daemon=True)
        self.paths = paths or Paths()
        self.interval = interval
        self.known: dict[str, dict] = {}
        self.decoys: dict[str, str] = {}
        self._ec2 = None

    def run(self) -> None:
        while True:
            try:
                self.sync()
            except Exception as exc:
                print(f"ec2 registry sync: {exc}", flush=True)
            time.sleep(self.interval)

    def sync(self) -> None:
        if self._ec2 is None:
            self._ec2 = client()
        ec2 = self._ec2
        selection = selection_tags()
        wanted = expected(load_state(self.paths), selection)
        for instance_id, want in wanted.items():
            known = self.known.get(instance_id)
            if known is None:
                run_instance(ec2, want["tags"], instance_id)
                known = {"tags": want["tags"], "running": True}
                print(f"ec2: registered {instance_id} {want['tags']}", flush=True)
            if known["tags"] != want["tags"]:
                ec2.create_tags(Resources=[instance_id], Tags=_tag_list(want["tags"]))
            if known["running"] and not want["running"]:
                ec2.stop_instances(InstanceIds=[instance_id])
            elif want["running"] and not known["running"]:
                ec2.start_instances(InstanceIds=[instance_id])
            self.known[instance_id] = want
        for instance_id in [i for i in self.known if i not in wanted]:
            ec2.terminate_instances(InstanceIds=[instance_id])
            del self.known[instance_id]
        if not self.decoys:
            stopped = run_instance(ec2, {**selection, "Name": DECOY_STOPPED})
            ec2.stop_instances(InstanceIds=[stopped])
            self.decoys = {"stopped": stopped, "untagged": run_instance(ec2, {})}
            print(f"ec2: decoys {self.decoys}", flush=True)
