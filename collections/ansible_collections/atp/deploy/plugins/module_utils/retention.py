# Copyright: atp.deploy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Which releases (and images) to prune, which partial dirs are stale (pure, stdlib only).

deploy_record does the removing; everything that decides is here, without I/O.
"""

from __future__ import annotations

from ansible_collections.atp.deploy.plugins.module_utils.release_model import (
    PARTIAL_SUFFIX,
    is_env_set,
    is_release_id,
)

MIN_KEEP = 2
PARTIAL_MAX_AGE = 3600  # seconds; an unpack never takes that long, an older .partial is debris


def keep_problem(keep: int | None) -> str | None:
    """None when keep is acceptable (or not given), else the one-line failure."""
    if keep is None or keep >= MIN_KEEP:
        return None
    return (f"deploy_keep_releases must be at least {MIN_KEEP} (the active and the previous "
            f"release), got {keep}; pass -e deploy_keep_releases=5")


def select_prune(releases: list[dict], keep: int, current: str | None = None,
                 protect: tuple[str, ...] | list[str] = ()) -> list[str]:
    """Ids of the complete releases to remove, oldest first.

    Kept: the newest ``keep`` complete releases (by id, which starts with the UTC time they were
    made), the release ``current`` points to, and every id in ``protect`` (the deployed one, the
    one live before current). Incomplete and partial directories are never selected here (see
    stale_partials).
    """
    if keep < MIN_KEEP:
        raise ValueError(keep_problem(keep))
    complete = sorted({r["id"] for r in releases if r.get("complete") and not r.get("partial")})
    kept = set(complete[-keep:]) | {p for p in protect if p}
    if current:
        kept.add(current)
    return [rid for rid in complete if rid not in kept]


def select_env_prune(names: list[str], linked) -> list[str]:
    """Env set names (of shared/env entries) that no remaining release links, sorted.

    linked: the envs the releases kept link (release_model.env_links values); anything that is
    not an env set name (temporary dirs, other files) is never selected here.
    """
    keep = {name for name in linked if name}
    return sorted(name for name in names if is_env_set(name) and name not in keep)


def stale_partials(entries: list[tuple[str, float]], now: float,
                   max_age: float = PARTIAL_MAX_AGE) -> list[str]:
    """Names (``<release_id>.partial``) among (name, mtime) entries older than max_age seconds."""
    stale = []
    for name, mtime in entries:
        if not name.endswith(PARTIAL_SUFFIX):
            continue
        if not is_release_id(name[: -len(PARTIAL_SUFFIX)]):
            continue
        if now - mtime > max_age:
            stale.append(name)
    return sorted(stale)


def classify_image_rm(rc: int, stdout: str, stderr: str) -> str:
    """Outcome of ``docker image rm``: removed, missing, in_use or error."""
    if rc == 0:
        return "removed"
    text = f"{stderr}\n{stdout}".lower()
    if "no such image" in text:
        return "missing"
    if "being used by" in text or "is using its referenced image" in text or \
            "must force" in text or "conflict" in text:
        return "in_use"
    return "error"
