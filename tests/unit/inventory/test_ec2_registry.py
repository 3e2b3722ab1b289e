"""The sandbox's EC2 registration (sandbox/atp_sandbox/ec2.py) against moto: sandbox ids, the
production source's tags, state that follows the container, decoys."""

from __future__ import annotations

import re

import pytest
from atp_sandbox import config, ec2
from atp_sandbox.engine import SandboxError

from .conftest import alive_pid, dead_pid

EC2_ID = re.compile(r"^i-[0-9a-f]{17}$")
BACKEND = {"Project": "automated-trading-platform", "Role": "backend"}


def save(paths: config.Paths, pids: dict[str, int], fleet: int) -> None:
    config.save_state({"instances": {i: {"id": i, "pid": pid} for i, pid in pids.items()},
                       "fleet": fleet}, paths)


def decoys(found: dict[str, dict], ids: list[str]) -> dict[str, dict]:
    return {i: info for i, info in found.items() if i not in ids}


def test_selection_tags_come_from_the_production_source():
    assert ec2.selection_tags() == BACKEND
    assert ec2.selection_tags(config.PRODUCTION_EC2_SOURCE) == BACKEND


def test_a_source_without_tag_filters_is_an_actionable_error(tmp_path):
    source = tmp_path / "aws_ec2.yml"
    source.write_text("plugin: amazon.aws.aws_ec2\nfilters:\n  instance-state-name: running\n")
    with pytest.raises(SandboxError, match=r"expected tag:<Key> filters in .*aws_ec2.yml"):
        ec2.selection_tags(source)
    with pytest.raises(SandboxError, match="expected a readable aws_ec2 inventory source"):
        ec2.selection_tags(tmp_path / "missing.yml")


def test_spares_change_only_the_role():
    assert ec2.instance_tags(BACKEND, "i-1", True) == {**BACKEND, "Name": "atp-sandbox-i-1"}
    assert ec2.instance_tags(BACKEND, "i-1", False) == {
        "Project": "automated-trading-platform", "Role": "sandbox-spare",
        "Name": "atp-sandbox-i-1"}
    assert ec2.role_key({"Project": "p", "Tier": "api"}) == "Tier"


def test_registry_registers_the_sandbox_ids_with_the_production_tags(sandbox_moto, tmp_path):
    paths = config.Paths(root=tmp_path)
    ids = config.instance_ids(3)
    save(paths, {ids[0]: alive_pid(), ids[1]: dead_pid(), ids[2]: alive_pid()}, fleet=2)

    ec2.Registry(paths).sync()
    found = ec2.describe()

    for instance_id, state in ((ids[0], "running"), (ids[1], "stopped")):
        assert found[instance_id] == {
            "state": state, "tags": {**BACKEND, "Name": f"atp-sandbox-{instance_id}"}}
    assert found[ids[2]]["state"] == "running"
    assert found[ids[2]]["tags"]["Role"] == "sandbox-spare"
    others = decoys(found, ids)
    assert sorted((i["state"], i["tags"].get("Name")) for i in others.values()) == [
        ("running", None), ("stopped", "atp-sandbox-decoy-stopped")]
    stopped = next(i for i in others.values() if i["state"] == "stopped")
    assert stopped["tags"] == {**BACKEND, "Name": "atp-sandbox-decoy-stopped"}
    untagged = next(i for i in others.values() if i["state"] == "running")
    assert untagged["tags"] == {}
    assert all(EC2_ID.match(i) for i in others)  # moto's own random ids
    assert ec2.mismatches(config.load_state(paths), found) == []


def test_registry_follows_container_state_fleet_and_removal(sandbox_moto, tmp_path):
    paths = config.Paths(root=tmp_path)
    ids = config.instance_ids(3)
    registry = ec2.Registry(paths)
    save(paths, {i: alive_pid() for i in ids}, fleet=1)
    registry.sync()
    assert [ec2.describe()[i]["tags"]["Role"] for i in ids] == [
        "backend", "sandbox-spare", "sandbox-spare"]

    # docker stop of the first, a bigger fleet, the third gone from the sandbox
    save(paths, {ids[0]: dead_pid(), ids[1]: alive_pid()}, fleet=3)
    registry.sync()
    found = ec2.describe()
    assert found[ids[0]]["state"] == "stopped"
    assert (found[ids[1]]["state"], found[ids[1]]["tags"]["Role"]) == ("running", "backend")
    assert found[ids[2]]["state"] == "terminated"
    assert len(decoys(found, ids)) == 2  # registered once, not per sync

    save(paths, {ids[0]: alive_pid(), ids[1]: alive_pid()}, fleet=3)  # `docker start`
    registry.sync()
    assert ec2.describe()[ids[0]]["state"] == "running"


def test_other_run_instances_keep_moto_random_ids(sandbox_moto):
    client = ec2.client()
    first = ec2.run_instance(client, {"Name": "someone-else"})
    second = ec2.run_instance(client, {})
    assert EC2_ID.match(first) and EC2_ID.match(second) and first != second
    assert not set(config.instance_ids(16)) & {first, second}
    named = ec2.run_instance(client, {"Name": "named"}, "i-0123456789abcdef0")
    assert named == "i-0123456789abcdef0"


def test_wait_registered_names_what_is_missing(sandbox_moto, tmp_path):
    paths = config.Paths(root=tmp_path)
    save(paths, {config.FIRST_INSTANCE_ID: alive_pid()}, fleet=1)
    with pytest.raises(SandboxError, match=rf"{config.FIRST_INSTANCE_ID} not registered.*"
                                           "stopped decoy not registered"):
        ec2.wait_registered(paths, wait_s=0.5)
    ec2.Registry(paths).sync()
    assert config.FIRST_INSTANCE_ID in ec2.wait_registered(paths, wait_s=5)
