# Copyright: atp.deploy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Filter: atp.deploy.rescue_plan -- what a failed deploy must undo (release_plan.rescue_plan)."""

from __future__ import annotations

from ansible_collections.atp.deploy.plugins.module_utils import release_plan


def rescue_plan(compose_result: object, release_id: object = None,
                switch_result: object = None) -> dict:
    """compose_release's registered result (failed, skipped or undefined), and traffic_switch's
    (zero-downtime) -> {rollback_to, note}."""
    result = compose_result if isinstance(compose_result, dict) else {}
    switch = switch_result if isinstance(switch_result, dict) else None
    return release_plan.rescue_plan(result, str(release_id) if release_id else None, switch)


class FilterModule:
    """atp.deploy rescue filter."""

    def filters(self) -> dict:
        """Filter name -> callable."""
        return {"rescue_plan": rescue_plan}
