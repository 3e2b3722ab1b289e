# Copyright: atp.deploy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Release history and rollback target selection (pure, stdlib only).

Joins the release directories, the last deploy.log record of each release and the release
images into one list (newest first), and picks the release to roll back to. What a release is,
which one was live before the current one and what counts as a good release: release_model.
"""

from __future__ import annotations

import json

from ansible_collections.atp.deploy.plugins.module_utils import release_model

SHOWN_IDS = 10
INSPECT_BATCH = 50
LIST_HINT = "list them with ansible-playbook playbooks/rollback.yml -e rollback_list=true"


def build_history(releases: list[dict], log_records: list[dict], current: str | None,
                  image_ids: dict[str, str | None], image_repo: str) -> list[dict]:
    """One entry per release directory (partial ones left out), newest first.

    releases: release_model.read_releases entries (details for code_hash/env); image_ids:
    image ref -> id or None.
    """
    last = release_model.last_records(log_records)
    by_id: dict[str, dict] = {}
    for rel in releases:
        if rel.get("partial"):
            continue
        by_id[rel["id"]] = rel
    history = []
    for rid in sorted(by_id, reverse=True):
        record = last.get(rid) or {}
        ref = release_model.image_ref(image_repo, rid)
        image_id = image_ids.get(ref)
        complete = bool(by_id[rid].get("complete"))
        active = rid == current
        history.append({
            "id": rid,
            "complete": complete,
            "active": active,
            "image": ref,
            "image_exists": image_id is not None,
            "image_id": image_id,
            "code_hash": by_id[rid].get("code_hash"),
            "env": by_id[rid].get("env"),
            "git_sha": record.get("git_sha"),
            "result": record.get("result"),
            "finished": record.get("finished"),
            "operator": record.get("operator"),
            "rollback_target": (complete and not active and image_id is not None
                                and release_model.is_good(record)),
        })
    return history


def previous_release(history: list[dict], log_records: list[dict],
                     current: str | None) -> str | None:
    """The release live before current (deploy.log order, release_model.previous) that can be
    rolled back to: complete, its image still there, its last deploy good."""
    targets = {e["id"] for e in history if e["rollback_target"]}
    return release_model.previous(log_records, current, lambda rid: rid in targets)


def passed_over(history: list[dict], log_records: list[dict], current: str | None,
                chosen: str) -> list[str]:
    """Releases that were live after `chosen` and before current (deploy.log order) with a
    deploy that ended ok, which "previous" passed over because they cannot be rolled back to:
    ['<id> (why)']. Releases whose last deploy failed are not listed (never a target)."""
    live = release_model.timeline(log_records)
    last = release_model.last_records(log_records)
    end = len(live)
    if current in live:
        end = len(live) - 1 - live[::-1].index(current)
    by_id = {e["id"]: e for e in history}
    out: list[str] = []
    for rid in reversed(live[:end]):
        if rid == chosen:
            break
        if rid == current or not release_model.is_good(last.get(rid)) or any(
                o.startswith(rid + " ") for o in out):
            continue
        entry = by_id.get(rid)
        if entry is None or not entry["complete"]:
            out.append(f"{rid} (no longer on the instance)")
        elif not entry["image_exists"]:
            out.append(f"{rid} (its image {entry['image']} is gone, pruned?)")
    return out


def _shown_ids(ids: list[str]) -> str:
    if not ids:
        return "none"
    shown = ", ".join(ids[:SHOWN_IDS])
    extra = len(ids) - SHOWN_IDS
    return shown + (f" (+{extra} more)" if extra > 0 else "")


def select_release(history: list[dict], log_records: list[dict], current: str | None,
                   select: str) -> tuple[dict | None, str | None]:
    """Resolve ``select`` ("previous" or a release id) -> (entry, None) or (None, failure)."""
    select = (select or "").strip()
    if select == "previous":
        previous = previous_release(history, log_records, current)
        if previous is None:
            return None, (f"no previous release to roll back to: expected a release that was "
                          f"live before {current or 'the current one'} (deploy.log) and is "
                          f"still complete, with its image and a deploy that ended ok, found "
                          f"none; pick one with -e rollback_to=<release id>, {LIST_HINT}")
        return next(e for e in history if e["id"] == previous), None
    entry = next((e for e in history if e["id"] == select), None)
    if entry is None or not entry["complete"]:
        candidates = [e["id"] for e in history if e["complete"] and e["image_exists"]]
        return None, (f"unknown release {select}: expected one of {_shown_ids(candidates)}; "
                      f"{LIST_HINT}")
    if not entry["image_exists"]:
        return None, (f"release {select} has no image {entry['image']} any more (pruned?): "
                      f"pick another release ({LIST_HINT}) or deploy its source again")
    return entry, None


# --------------------------------------------------------------------------- docker


def batches(refs: list[str], size: int = INSPECT_BATCH) -> list[list[str]]:
    return [refs[i:i + size] for i in range(0, len(refs), size)]


def parse_inspect_tags(stdout: str, wanted: list[str]) -> dict[str, str | None]:
    """docker_cmd.image_tags output -> wanted ref -> image id (None when the image is missing).

    With several refs docker prints the images it found and exits 1 naming the missing ones,
    so the output is read whatever the exit code.
    """
    found: dict[str, str] = {}
    for line in (stdout or "").splitlines():
        line = line.strip()
        if not line:
            continue
        tags_text, _sep, image_id = line.rpartition(" ")
        try:
            tags = json.loads(tags_text) if tags_text else []
        except ValueError:
            continue
        for tag in tags or []:
            if isinstance(tag, str) and image_id:
                found[tag] = image_id
    return {ref: found.get(ref) for ref in wanted}


def inspect_problem(stderr: str) -> str | None:
    """The first stderr line that is not a plain "No such image" (docker itself failing)."""
    for line in (stderr or "").splitlines():
        text = line.strip()
        if text and "no such image" not in text.lower():
            return text
    return None
