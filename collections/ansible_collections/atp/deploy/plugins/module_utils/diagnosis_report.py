# Copyright: atp.deploy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""diagnose: the plain-words summary and the Markdown report (stdlib only).

Both read the facts the module collected (already masked) and the findings of
:mod:`diagnosis_rules`; neither decides anything.
"""

from __future__ import annotations

import json

from ansible_collections.atp.deploy.plugins.module_utils.diagnosis_rules import (
    DRIFT,
    names_of,
    short_id,
)


def _deployed_words(record: dict | None) -> str:
    if not record:
        return "not in deploy.log"
    parts = []
    if record.get("finished") or record.get("started"):
        parts.append(f"deployed {record.get('finished') or record.get('started')}")
    operator = str(record.get("operator") or "").strip(" ,")
    if operator:
        parts.append(f"by {operator}")
    if record.get("result"):
        parts.append(f"result {record['result']}")
    return ", ".join(parts) or "in deploy.log"


def summary_lines(facts: dict, found: list[dict]) -> list[str]:
    """The plain-words answer, one line per question, findings last."""
    drift = [f for f in found if f["severity"] == DRIFT]
    warnings = [f for f in found if f["severity"] != DRIFT]
    lines = [f"{len(drift)} drift finding(s), {len(warnings)} warning(s)" if found
             else "no drift: the backend runs the active release with every expected route"]
    release = facts.get("active_release")
    if release:
        sha = facts.get("git_sha")
        sha_words = (f"git {sha} (from {facts.get('git_sha_source')})" if sha
                     else "git SHA unknown")
        lines.append(f"active release: {release}, {sha_words}; "
                     f"{_deployed_words(facts.get('deploy_record'))}")
    else:
        lines.append("active release: none")
    image = facts.get("release_image") or {}
    if image.get("ref"):
        lines.append(f"release image: {image['ref']} = {short_id(image.get('id'))}"
                     if image.get("id") else f"release image: {image['ref']} is missing")
    containers = facts.get("containers") or []
    if facts.get("docker_error"):
        lines.append(f"backend container: unknown, docker failed ({facts['docker_error']})")
    elif not containers:
        lines.append(f"backend container: none for {facts.get('project_name')}/"
                     f"{facts.get('service')}")
    for c in containers:
        if not c.get("running"):
            lines.append(f"backend container: {c.get('name')} is {c.get('state')} "
                         f"(image {c.get('image')})")
            continue
        if image.get("id"):
            same = c.get("image_id") == image.get("id")
            verdict = ("the active release's image" if same
                       else "NOT the active release's image")
        else:
            verdict = "no release image to compare with"
        ports = ", ".join(str(p) for p in c.get("host_ports") or []) or "none"
        lines.append(f"backend container: {c.get('name')} running {c.get('image')} "
                     f"({short_id(c.get('image_id'))}) = {verdict}; host ports {ports}")
    publishers = facts.get("port_publishers") or []
    lines.append(f"port {facts.get('port')}: "
                 + (f"published by {names_of(publishers)}" if publishers else "not published"))
    proxy = facts.get("proxy") or {}
    if proxy.get("names"):
        lines.append(f"zero-downtime proxy: {', '.join(proxy['names'])} -> "
                     f"{proxy.get('upstream') or 'nothing'}")
    expected = facts.get("expected_routes") or []
    for name, probe in (facts.get("routes") or {}).items():
        if probe.get("error"):
            lines.append(f"routes in {name}: unreadable ({probe['error']})")
        elif probe.get("missing"):
            lines.append(f"routes in {name}: MISSING {', '.join(probe['missing'])} "
                         f"({len(expected) - len(probe['missing'])} of {len(expected)} expected "
                         f"present, {len(probe.get('registered') or [])} registered)")
        else:
            lines.append(f"routes in {name}: all {len(expected)} expected routes registered "
                         f"({len(probe.get('registered') or [])} in total)")
    for fname, info in sorted((facts.get("env_files") or {}).items()):
        if info.get("exists"):
            names = ", ".join(info.get("names") or []) or "no variables"
            empty = info.get("empty") or []
            lines.append(f"env names in shared/{fname}: {names}"
                         + (f" (empty: {', '.join(empty)})" if empty else ""))
        else:
            lines.append(f"env names in shared/{fname}: file missing")
    creds = facts.get("credentials") or {}
    if creds.get("alias"):
        lines.append(f"credentials: {'/'.join(creds['pair'])} resolves (alias {creds['alias']})")
    elif facts.get("env_files"):
        lines.append("credentials: none resolve"
                     + (f" ({'; '.join(creds['partial'])})" if creds.get("partial") else ""))
    disk = facts.get("disk") or {}
    if disk:
        lines.append(f"disk: {disk.get('used_percent')}% used, {disk.get('free_mb')} MiB free of "
                     f"{disk.get('total_mb')} MiB on the filesystem of {disk.get('path')}")
    for name, log in (facts.get("logs") or {}).items():
        lines.append(f"log of {name}: last {len(log)} line(s) in the report")
    records = facts.get("deploy_log") or []
    lines.append(f"deploy log: last {len(records)} record(s)"
                 + (": " + "; ".join(_record_words(r) for r in records) if records else ""))
    lines.extend(f"{f['severity'].upper()}: {f['message']}" for f in found)
    return lines


def _record_words(record: dict) -> str:
    if "raw" in record and len(record) == 1:
        return f"(unparsed) {str(record['raw'])[:80]}"
    operator = str(record.get("operator") or "").strip(" ,") or "?"
    return (f"{record.get('release', '?')} {record.get('result', '?')} "
            f"git {str(record.get('git_sha') or '?')[:12]} by {operator} "
            f"at {record.get('finished') or record.get('started') or '?'}")


def markdown(facts: dict, found: list[dict]) -> str:
    """The Markdown report body (no title: the caller adds host and time)."""
    md = ["## Verdict", ""]
    if found:
        md += [f"- **{f['severity'].upper()}** `{f['code']}`: {f['message']}" for f in found]
    else:
        md.append("No drift: the backend runs the active release with every expected route.")
    md += ["", "## Summary", ""]
    md += [f"- {line}" for line in summary_lines(facts, [])[1:]]
    md += ["", "## Backend containers", ""]
    containers = facts.get("containers") or []
    if containers:
        md += ["| name | state | image | image id | host ports |", "|---|---|---|---|---|"]
        md += [f"| {c.get('name')} | {c.get('state')} | {c.get('image')} | "
               f"{short_id(c.get('image_id'))} | "
               f"{', '.join(str(p) for p in c.get('host_ports') or []) or '-'} |"
               for c in containers]
    else:
        md.append("None.")
    md += ["", "## Routes", ""]
    for name, probe in (facts.get("routes") or {}).items():
        md.append(f"### {name}")
        md.append("")
        if probe.get("error"):
            md.append(f"Unreadable: {probe['error']}")
        else:
            missing = set(probe.get("missing") or [])
            md += [f"- {'MISSING' if r in missing else 'ok'}: `{r}`"
                   for r in facts.get("expected_routes") or []]
            md.append(f"- registered in total: {len(probe.get('registered') or [])}")
        md.append("")
    if not facts.get("routes"):
        md += ["No running backend container to ask.", ""]
    md += ["## Logs", ""]
    for name, log in (facts.get("logs") or {}).items():
        md += [f"### {name} (last {len(log)} lines, env values masked)", "", "```"]
        md += [line.replace("```", "'''") for line in log]
        md += ["```", ""]
    if not facts.get("logs"):
        md += ["No backend container.", ""]
    md += ["## Deploy log (newest last)", "", "```"]
    md += [json.dumps(r, sort_keys=True) for r in facts.get("deploy_log") or []]
    md += ["```", ""]
    return "\n".join(md)
