"""Tests of the atp.deploy.rescue_plan filter (plugins/filter/rescue.py).

The decision table itself is release_plan.rescue_plan (tests/unit/module_utils/
test_release_plan.py); here: what the filter accepts from a playbook (any registered result,
undefined, a non-str release id) and the zero-downtime results deploy.yml's rescue sees.
"""

from __future__ import annotations

import jinja2
import pytest
from ansible_collections.atp.deploy.plugins.filter import rescue

RID = "20261124T101500Z-0123456789ab"
OLD = "20261123T090000Z-ba9876543210"
NOT_TOUCHED = {"rollback_to": "", "note": "-- the running backend was not touched"}


def compose_result(**kw) -> dict:
    """compose_release's result as the module starts it (compose_release.py), then updated."""
    result = {"changed": False, "release_id": RID, "previous_release": OLD, "image_ref": "",
              "image_id": None, "container_id": None, "container_name": None, "built": False,
              "recreated": False, "switched": False, "tagged_from": None,
              "route_gate": {"checked": False, "routes": 0, "missing": []},
              "dependencies": [], "candidate": None, "old_containers": [], "topology": None}
    result.update(kw)
    return result


CANDIDATE = {"id": "c0ffee", "name": "atp-backend-aws-candidate", "url": "http://172.18.0.5:8002",
             "upstream": "atp-backend-aws-candidate:8002"}


@pytest.fixture
def rescue_plan():
    """The filter as Ansible finds it: by name, from FilterModule().filters()."""
    return rescue.FilterModule().filters()["rescue_plan"]


def test_filter_module_registers_the_function() -> None:
    assert rescue.FilterModule().filters() == {"rescue_plan": rescue.rescue_plan}


# --------------------------------------------------------------------------- zero-downtime


def test_candidate_never_received_traffic(rescue_plan) -> None:
    # compose_release started the candidate (exit_json, current not switched), then smoke
    # failed on it: nothing to roll back, the old release still serves.
    result = compose_result(changed=True, built=True, recreated=True, candidate=CANDIDATE,
                            container_id="c0ffee", container_name=CANDIDATE["name"],
                            old_containers=["atp-backend-aws-1"])
    assert rescue_plan(result, RID) == {
        "rollback_to": "",
        "note": "-- the new container never received traffic (zero-downtime) and was removed; "
                f"{OLD} still serves"}


@pytest.mark.parametrize("previous", [None, ""])
def test_candidate_on_a_fresh_instance(rescue_plan, previous) -> None:
    result = compose_result(previous_release=previous, recreated=True, candidate=CANDIDATE)
    assert rescue_plan(result, RID) == {
        "rollback_to": "",
        "note": "-- the new container never received traffic (zero-downtime) and was removed; "
                "the release before still serves"}


def test_candidate_of_a_redeployed_release_is_still_the_candidate_case(rescue_plan) -> None:
    # current already pointed at RID and the candidate was recreated: the candidate wins over
    # "nothing to switch back".
    result = compose_result(previous_release=RID, changed=True, recreated=True,
                            candidate=CANDIDATE)
    assert rescue_plan(result, RID)["note"].startswith("-- the new container never received")


@pytest.mark.parametrize("candidate", [None, "", [], "atp-backend-aws-candidate"])
def test_only_a_candidate_mapping_counts(rescue_plan, candidate) -> None:
    result = compose_result(failed=True, built=True, changed=True, candidate=candidate)
    assert rescue_plan(result, RID) == NOT_TOUCHED


# --------------------------------------------------------------------------- switched


def test_switched_rolls_back_to_the_previous_release(rescue_plan) -> None:
    result = compose_result(failed=True, changed=True, built=True, switched=True,
                            msg="docker compose up for release ... failed (exit 1)")
    assert rescue_plan(result, RID) == {"rollback_to": OLD, "note": f"-- rolled back to {OLD}"}


def test_switched_wins_over_a_candidate(rescue_plan) -> None:
    result = compose_result(switched=True, candidate=CANDIDATE)
    assert rescue_plan(result, RID)["rollback_to"] == OLD


def test_switched_onto_the_same_release_rolls_nothing_back(rescue_plan) -> None:
    result = compose_result(previous_release=RID, switched=True, changed=True)
    assert rescue_plan(result, RID) == {
        "rollback_to": "",
        "note": f"-- no previous release to roll back to; left {RID} for diagnosis "
                "(ansible-playbook playbooks/diagnose.yml)"}


def test_release_id_is_compared_as_a_string(rescue_plan) -> None:
    # a release id Jinja typed as a number must still match previous_release
    result = compose_result(previous_release="20261124", switched=True)
    assert rescue_plan(result, 20261124)["rollback_to"] == ""
    assert rescue_plan(result, 20261125)["rollback_to"] == "20261124"


@pytest.mark.parametrize("release_id", ["", None, 0])
def test_without_a_release_id_the_note_says_the_release(rescue_plan, release_id) -> None:
    result = compose_result(previous_release=None, switched=True)
    assert rescue_plan(result, release_id)["note"] == (
        "-- no previous release to roll back to; left the release for diagnosis "
        "(ansible-playbook playbooks/diagnose.yml)")
    assert rescue_plan(compose_result(switched=True), release_id)["rollback_to"] == OLD


def test_release_id_defaults_to_none(rescue_plan) -> None:
    assert rescue_plan(compose_result(switched=True, previous_release=None))["note"] == (
        "-- no previous release to roll back to; left the release for diagnosis "
        "(ansible-playbook playbooks/diagnose.yml)")


# --------------------------------------------------------------------------- not a result


@pytest.mark.parametrize("value", [
    None, jinja2.Undefined(name="compose_release_result"), "undefined", "", 0,
    ["switched"], ("switched", True),
])
def test_anything_but_a_dict_means_not_touched(rescue_plan, value) -> None:
    assert rescue_plan(value, RID) == NOT_TOUCHED


def test_skipped_compose_release(rescue_plan) -> None:
    skipped = {"changed": False, "skipped": True, "skip_reason": "Conditional result was False",
               "false_condition": "deploy_plan.build"}
    assert rescue_plan(skipped, RID) == NOT_TOUCHED


def test_in_a_template_on_an_undefined_result() -> None:
    env = jinja2.Environment(undefined=jinja2.Undefined)
    env.filters.update(rescue.FilterModule().filters())
    template = env.from_string("{{ (result | rescue_plan(rid)).rollback_to }}|"
                               "{{ (result | rescue_plan(rid)).note }}")
    assert template.render(rid=RID) == "|-- the running backend was not touched"
    assert template.render(rid=RID, result=compose_result(switched=True)) == \
        f"{OLD}|-- rolled back to {OLD}"


def test_a_switch_that_went_through_is_never_called_untouched():
    """traffic_switch moved the port, then failed (e.g. current could not be switched): the
    note says the new release serves, no rollback and no 'never received traffic'."""
    plan = rescue.rescue_plan({"candidate": {"name": "b-2"}, "previous_release": "r1"}, "r2",
                       {"switched": True, "failed": True})
    assert plan["rollback_to"] == ""
    assert "the port already serves r2" in plan["note"]
    assert "never received traffic" not in plan["note"]
    assert rescue.rescue_plan({"candidate": {"name": "b-2"}}, "r2", {"switched": False})["note"] \
        .startswith("-- the new container never received traffic")
