# Copyright: atp.deploy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Deciding logic of a deploy (pure functions, stdlib only).

Given what release_state read on the instance, decide what the deploy has to do: which release
serves (an existing one, or a new id made by release_model), whether its code must be uploaded
or is already on the instance (an env-only change), whether its env set must be written,
whether its image must be built or can be reused, whether it must be activated. No I/O here.
"""

from __future__ import annotations

import hashlib
import json
import os
from datetime import datetime, timedelta

from ansible_collections.atp.deploy.plugins.module_utils import release_model

# A directory holding one of these (and no releases/) is a hand-managed checkout to adopt.
ADOPTION_MARKERS = ("docker-compose.yml", ".git")
ASIDE_INFIX = ".pre-ansible-"
# The new layout is built beside app_root under this name, then swapped in.
STAGING_INFIX = ".adopting-"
ENV_REASON = "the env of the release must be written: a new env set"


def env_change_token(base: str | None, env_plan: dict) -> str:
    """The env identity of a release whose env set is not known before it is written (the
    deploy changes values the instance only knows as salted digests): the base env and the
    change, hashed. Unique per run (the digests are salted per run)."""
    text = json.dumps({"base": base, "change": env_plan}, sort_keys=True, default=str)
    return "change:" + hashlib.sha256(text.encode("utf-8")).hexdigest()


def _release_by_id(releases: list[dict], rid: str | None) -> dict:
    return next((r for r in releases if r.get("id") == rid and not r.get("partial")), {})


def _image(rid: str, own: str | None, siblings: list[str], image_of, image_repo: str,
           reasons: list[str]) -> tuple[str | None, str | None, bool]:
    """(image id the release will run, ref of an image to reuse, build?)."""
    if own is not None:
        return own, None, False
    for sibling in siblings:
        if sibling == rid:
            continue
        image_id = image_of(sibling)
        if image_id is not None:
            ref = release_model.image_ref(image_repo, sibling)
            reasons.append(f"the image of {sibling} (same code) is reused for {rid}: no build")
            return image_id, ref, False
    reasons.append("the release image is missing: build it")
    return None, None, True


def _activation(rid: str, current: str | None, image_id: str | None, backend: list[dict],
                reasons: list[str]) -> bool:
    activate = False
    if current != rid:
        activate = True
        reasons.append(f"current is {current or 'unset'}, not {rid}")
    running = [c for c in backend if c.get("running")]
    if not running:
        activate = True
        reasons.append("no running backend container")
    elif image_id is None or any(c.get("image_id") != image_id for c in running):
        activate = True
        reasons.append("the running backend container does not run the release image")
    return activate


def plan_release(code: str | None, releases: list[dict], current: str | None, env: dict,
                 image_of, backend: list[dict], image_repo: str, now: datetime | None = None,
                 links_missing=None, named: str | None = None) -> tuple[dict, list[str]]:
    """Decide the deploy. Returns (plan, reasons).

    code: the full code hash of the deploy's source (None with named).
    releases: release_model.read_releases(details=True). current: the active release.
    env: {target: the env (set name or LEGACY_ENV) the release runs with when it exists already,
    else None (a new set is written); token: the env identity for a new id
    (release_model.release_hash); write: env_files must write or fix the set; any: the env is
    not managed by this deploy -- any release of this code serves, a new one links target}.
    image_of(rid) -> image id or None. backend: the containers of project+service.
    links_missing(rid, env) -> env links an existing release lacks.
    named: plan the activation of this existing release (a rollback) instead.

    The plan: release_id (always set), new (a new release dir), upload (its code is on no
    release), clone_from (a release with the same code the new dir is made from), env (env_files
    runs: a new set, a clone, links to fix), env_set (the env the release links when known),
    build, image_from (ref of an image of the same code to tag instead of building), activate.
    """
    reasons: list[str] = []
    links_missing = links_missing or (lambda _rid, _env: [])
    target = env.get("target")
    if named:
        entry = _release_by_id(releases, named)
        rid, new, upload, clone_from = named, False, False, None
        target = entry.get("env")
        code = entry.get("code_hash")
        env_run = False
    else:
        siblings = release_model.same_code(releases, code, current)
        if env.get("any"):
            existing = siblings[0] if siblings else None
        else:
            existing = (release_model.find_release(releases, code, target, current)
                        if target else None)
        if existing:
            rid, new, upload, clone_from = existing, False, False, None
            if env.get("any"):
                target = _release_by_id(releases, existing).get("env")
            missing = links_missing(existing, target) if target else []
            env_run = bool(env.get("write")) or bool(missing)
            if missing:
                reasons.append(f"{existing} lacks env links: " + ", ".join(missing))
        else:
            rid = release_model.make_id(code, env.get("token"), now)
            new = True
            upload = not siblings
            clone_from = None if upload else siblings[0]
            env_run = bool(env.get("write")) or target is None or clone_from is not None
            if upload:
                reasons.append("no release on the instance holds this code: upload it")
            else:
                reasons.append(f"the code is on the instance ({clone_from}): new release {rid} "
                               "made from it, with its own env")
            if env.get("write") or target is None:
                reasons.append(ENV_REASON)
    siblings = release_model.same_code(releases, code, current) if code else []
    own = None if new else image_of(rid)
    image_id, image_from, build = _image(rid, own, siblings, image_of, image_repo, reasons)
    activate = True if new else _activation(rid, current, image_id, backend, reasons)
    if new:
        reasons.append(f"new release {rid}: activate it")
    if env_run and not activate and not named:
        activate = True
    plan = {"release_id": rid, "new": new, "upload": upload, "clone_from": clone_from,
            "env": env_run, "env_set": target, "build": build, "image_from": image_from,
            "activate": activate}
    return plan, reasons


def needs_adoption(entries: list[str] | set[str] | None) -> bool:
    """app_root entries (None when app_root does not exist) -> is it a hand-managed checkout?

    It is when it has no ``releases/`` but has a compose file or a git checkout.
    """
    if entries is None:
        return False
    names = set(entries)
    return "releases" not in names and any(m in names for m in ADOPTION_MARKERS)


def aside_path(app_root: str, stamp: str, taken: set[str] | frozenset[str] = frozenset()) -> str:
    """``<app_root>.pre-ansible-<stamp>`` (stamp: UTC %Y%m%dT%H%M%SZ); -2, -3... when taken."""
    base = os.path.normpath(app_root) + ASIDE_INFIX + stamp
    candidate, n = base, 1
    while candidate in taken:
        n += 1
        candidate = f"{base}-{n}"
    return candidate


def release_zero_stamp(now: datetime, next_release_id: str | None = None) -> str:
    """UTC stamp of release zero (the adopted hand-managed checkout).

    The adoption time, but always before the release being deployed (its id was made a few
    seconds earlier by release_state), so release zero sorts as the older one.
    """
    # Whole seconds, naive UTC (release_model.stamp reads a naive time as UTC).
    when = datetime.strptime(release_model.stamp(now), release_model.STAMP_FORMAT)
    if next_release_id and release_model.is_release_id(next_release_id):
        before = release_model.built_at(next_release_id).replace(tzinfo=None)
        when = min(when, before - timedelta(seconds=1))
    return release_model.stamp(when)


def staging_path(app_root: str, stamp: str) -> str:
    """``<app_root>.adopting-<stamp>``: where adoption builds the new layout."""
    return os.path.normpath(app_root) + STAGING_INFIX + stamp


NOT_TOUCHED = "-- the running backend was not touched"


def rescue_plan(compose_result: dict | None, release_id: str | None,
                switch_result: dict | None = None) -> dict:
    """What a failed deploy must undo, from compose_release's (possibly failed) result.

    Roll back only when compose_release switched ``current``: to the release ``current``
    pointed at when it switched (``previous_release``, also returned on failure; on the first
    deploy after adoption that is release zero). Returns {rollback_to, note}: rollback_to is ''
    when there is nothing to undo, note is the tail of the failure message.
    """
    result = compose_result if isinstance(compose_result, dict) else {}
    previous = result.get("previous_release") or ""
    release = release_id or "the release"
    if result.get("switched"):
        if previous and previous != release_id:
            return {"rollback_to": previous, "note": f"-- rolled back to {previous}"}
        return {"rollback_to": "",
                "note": f"-- no previous release to roll back to; left {release} for diagnosis "
                        "(ansible-playbook playbooks/diagnose.yml)"}
    switch = switch_result if isinstance(switch_result, dict) else {}
    if switch.get("switched"):
        # Zero-downtime: the port already moved to the new release, a later step failed.
        return {"rollback_to": "",
                "note": f"-- the port already serves {release} (the zero-downtime switch went "
                        "through, a later step failed); check it with "
                        "ansible-playbook playbooks/diagnose.yml, roll back with "
                        "playbooks/rollback.yml"}
    if isinstance(result.get("candidate"), dict):
        return {"rollback_to": "",
                "note": f"-- the new container never received traffic (zero-downtime) and was "
                        f"removed; {previous or 'the release before'} still serves"}
    touched = result.get("recreated") or (result.get("changed") and not result.get("built"))
    if release_id and previous == release_id and touched and not result.get("skipped"):
        return {"rollback_to": "",
                "note": f"-- current already pointed at {release} before this deploy and its "
                        "container was recreated, nothing to switch back; see "
                        "ansible-playbook playbooks/diagnose.yml or roll back with "
                        "playbooks/rollback.yml"}
    return {"rollback_to": "", "note": NOT_TOUCHED}
