"""The closing per-host lines of a rolling deploy."""

from __future__ import annotations

from types import SimpleNamespace
from unittest import mock

from ansible_collections.atp.deploy.plugins.callback.rollout_summary import (
    CallbackModule,
    summary_lines,
)

HOSTS = ["i-a", "i-b", "i-c"]


def test_one_line_per_host_in_rollout_order():
    custom = {"_run": {"deploy_rollout_hosts": HOSTS},
              "i-a": {"deploy_outcome": "new release 20261130T120000Z-0123456789ab"},
              "i-b": {"deploy_outcome": "rolled back to 20261129T100000Z-ba9876543210"}}
    assert summary_lines(custom, {"i-b"}) == [
        "i-a: new release 20261130T120000Z-0123456789ab",
        "i-b: rolled back to 20261129T100000Z-ba9876543210",
        "i-c: untouched",
    ]


def test_failed_without_an_outcome_says_so():
    custom = {"_run": {"deploy_rollout_hosts": ["i-a"]}}
    assert summary_lines(custom, {"i-a"})[0].startswith("i-a: failed before any change")


def test_silent_for_other_playbooks():
    assert summary_lines({}, set()) == []
    assert summary_lines({"i-a": {"x": 1}}, {"i-a"}) == []


def test_printed_after_the_recap():
    callback = CallbackModule()
    callback._display = mock.MagicMock()
    stats = SimpleNamespace(failures={"i-b": 1}, dark={}, custom={
        "_run": {"deploy_rollout_hosts": ["i-a", "i-b"]},
        "i-a": {"deploy_outcome": "new release r1"}})
    callback.v2_playbook_on_stats(stats)
    printed = [call.args[0] for call in callback._display.display.call_args_list]
    assert printed[-2:] == ["i-a: new release r1",
                            "i-b: failed before any change to its release (see the error above)"]


def test_documentation_parses():
    import yaml
    from ansible_collections.atp.deploy.plugins.callback import rollout_summary

    doc = yaml.safe_load(rollout_summary.DOCUMENTATION)
    assert doc["name"] == "rollout_summary" and doc["type"] == "aggregate"


def test_the_action_stubs_document_themselves():
    import re
    from pathlib import Path

    import yaml

    modules = (Path(__file__).resolve().parents[3]
               / "collections/ansible_collections/atp/deploy/plugins/modules")
    for name in ("env_parameters", "transfer_bucket"):
        text = (modules / f"{name}.py").read_text()
        for part in ("DOCUMENTATION", "EXAMPLES", "RETURN"):
            block = re.search(part + r' = r"""(.*?)"""', text, re.S).group(1)
            assert yaml.safe_load(block), (name, part)
