"""diagnose's plain-words summary and Markdown report (module_utils/diagnosis_report.py)."""

from __future__ import annotations

from ansible_collections.atp.deploy.plugins.module_utils import diagnosis_report as rep
from ansible_collections.atp.deploy.plugins.module_utils import diagnosis_rules as rules

from .test_diagnosis_rules import NAME, REF, RID, container, healthy_facts


def test_healthy_summary():
    lines = rep.summary_lines(healthy_facts(), [])
    assert lines[0].startswith("no drift")
    text = "\n".join(lines)
    assert f"active release: {RID}, git d1c92e3e50bb" in text
    assert "deployed 2026-11-24T10:16:00+00:00, by ops, result ok" in text
    assert "the active release's image" in text
    assert "all 5 expected routes registered" in text
    assert "EXCHANGE_CUSTOM_API_KEY/EXCHANGE_CUSTOM_API_SECRET resolves" in text
    assert "24% used" in text and "deploy log: last 1 record(s)" in text


def test_missing_routes_in_the_summary():
    facts = healthy_facts(routes={NAME: {
        "registered": ["GET /api/health"],
        "missing": ["GET /api/portfolio/snapshot", "POST /api/portfolio/refresh"]}})
    found = rules.findings(facts)
    lines = rep.summary_lines(facts, found)
    assert lines[0] == "1 drift finding(s), 0 warning(s)"
    assert (f"routes in {NAME}: MISSING GET /api/portfolio/snapshot, POST "
            "/api/portfolio/refresh (3 of 5 expected present, 1 registered)") in lines
    assert lines[-1].startswith("DRIFT: ") and "include_router" in lines[-1]


def test_stale_and_stopped_containers_in_the_summary():
    facts = healthy_facts()
    facts["containers"][0].update(image="atp-backend-base:bookworm", image_id="sha256:base")
    assert "NOT the active release's image" in "\n".join(
        rep.summary_lines(facts, rules.findings(facts)))
    facts = healthy_facts(containers=[container("c1", NAME, running=False)], routes={})
    assert f"backend container: {NAME} is exited (image {REF})" in rep.summary_lines(facts, [])


def test_warnings_summary_line():
    facts = healthy_facts(disk={"path": "/", "used_percent": 99, "free_mb": 1, "total_mb": 2})
    found = rules.findings(facts)
    assert rep.summary_lines(facts, found)[0] == "0 drift finding(s), 1 warning(s)"


def test_markdown_report():
    facts = healthy_facts()
    facts["routes"][NAME]["missing"] = ["GET /api/portfolio/latest"]
    md = rep.markdown(facts, rules.findings(facts))
    assert "## Verdict" in md and "**DRIFT** `missing_routes`" in md
    assert "- MISSING: `GET /api/portfolio/latest`" in md and "- ok: `GET /api/health`" in md
    assert f"| {NAME} | running |" in md
    assert "key=***" in md and RID in md
    assert "No drift" in rep.markdown(healthy_facts(), [])


def test_markdown_without_containers_or_logs():
    facts = healthy_facts(containers=[], routes={}, logs={}, deploy_log=[])
    md = rep.markdown(facts, [])
    assert "No running backend container to ask." in md and "No backend container." in md
