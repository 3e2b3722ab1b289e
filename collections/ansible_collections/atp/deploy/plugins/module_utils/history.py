# Copyright: atp.deploy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Release history and rollback target selection (pure, stdlib only).

Joins the release directories, the last deploy.log record of each release and the release
images into one list (newest first), and picks the release to roll back to.
"""

from __future__ import annotations

import json

from ansible_collections.atp.deploy.plugins.module_utils.release_plan import is_release_id

GOOD_RESULTS = frozenset({"ok", "rolled_back"})
SHOWN_IDS = 10
INSPECT_BATCH = 50
LIST_HINT = "list them with ansible-playbook playbooks/rollback.yml -e rollback_list=true"


def last_records(log_records: list[dict]) -> dict[str, dict]:
    """release id -> its last deploy.log record (later lines win)."""
    last = {}
    for record in log_records:
        release = record.get("release")
        if isinstance(release, str) and is_release_id(release):
            last[release] = record
    return last


def record_is_good(record: dict | None) -> bool:
    """Did the deploy recorded here leave this release serving?

    ``ok`` does. ``rolled_back`` does when it was a rollback *to* the release (rollback.yml, no
    error); a deploy that failed its checks and was rolled back *away from* the release is also
    recorded as ``rolled_back`` (by deploy.yml, with the error) and does not.
    """
    if not record:
        return False
    result = str(record.get("result") or "").lower()
    if result not in GOOD_RESULTS:
        return False
    return not (result == "rolled_back" and str(record.get("error") or "").strip())


def build_history(releases: list[dict], log_records: list[dict], current: str | None,
                  image_ids: dict[str, str | None], image_repo: str) -> list[dict]:
    """One entry per release directory (partial ones left out), newest first.

    releases: release_plan.describe_release_dir entries; image_ids: image ref -> id or None.
    """
    last = last_records(log_records)
    by_id: dict[str, dict] = {}
    for rel in releases:
        if rel.get("partial"):
            continue
        by_id[rel["id"]] = rel
    history = []
    for rid in sorted(by_id, reverse=True):
        record = last.get(rid) or {}
        ref = f"{image_repo}:{rid}"
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
            "git_sha": record.get("git_sha"),
            "result": record.get("result"),
            "finished": record.get("finished"),
            "operator": record.get("operator"),
            "rollback_target": (complete and not active and image_id is not None
                                and record_is_good(record)),
        })
    return history


def previous_release(history: list[dict]) -> str | None:
    """The newest complete release other than current whose last deploy result is good
    (ok or a rollback to it) and whose image still exists."""
    for entry in history:  # newest first
        if entry["rollback_target"]:
            return entry["id"]
    return None


def _shown_ids(ids: list[str]) -> str:
    if not ids:
        return "none"
    shown = ", ".join(ids[:SHOWN_IDS])
    extra = len(ids) - SHOWN_IDS
    return shown + (f" (+{extra} more)" if extra > 0 else "")


def select_release(history: list[dict], current: str | None,
                   select: str) -> tuple[dict | None, str | None]:
    """Resolve ``select`` ("previous" or a release id) -> (entry, None) or (None, failure)."""
    select = (select or "").strip()
    if select == "previous":
        previous = previous_release(history)
        if previous is None:
            return None, (f"no previous release to roll back to: only {current or 'no release'} "
                          f"is deployed (a rollback target needs a complete release, its image "
                          f"and a deploy that ended ok); {LIST_HINT}")
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


def inspect_argv(refs: list[str], docker: str = "docker") -> list[str]:
    """One ``docker image inspect`` for several tags: one line ``<RepoTags JSON> <Id>`` each."""
    if not refs:
        raise ValueError("inspect_argv needs at least one image ref")
    return [docker, "image", "inspect", "--format", "{{json .RepoTags}} {{.Id}}", *refs]


def batches(refs: list[str], size: int = INSPECT_BATCH) -> list[list[str]]:
    return [refs[i:i + size] for i in range(0, len(refs), size)]


def parse_inspect_tags(stdout: str, wanted: list[str]) -> dict[str, str | None]:
    """inspect_argv output -> wanted ref -> image id (None when the image is missing).

    With several refs docker prints the images it found and exits 1 naming the missing ones,
    so the output is read whatever the exit code.
    """
    found: dict[str, str] = {}
    for line in (stdout or "").splitlines():
        line = line.strip()
        if not line:
            continue
        tags_text, _, image_id = line.rpartition(" ")
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
