# Copyright: atp.deploy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Read releases/ and deploy.log of an app_root on the instance (stdlib only).

Only reads; what the entries mean is decided in release_plan and history.
"""

from __future__ import annotations

import os

from ansible_collections.atp.deploy.plugins.module_utils import release_plan
from ansible_collections.atp.deploy.plugins.module_utils.release_manifest import MANIFEST_NAME


def release_entries(releases_dir: str) -> list[tuple[os.DirEntry, dict]]:
    """(directory entry, release_plan.describe_release_dir dict) of each release directory.

    Entries that are not directories or not named like a release are skipped; a missing
    releases_dir (or one that is not a directory) has none.
    """
    try:
        entries = list(os.scandir(releases_dir))
    except (FileNotFoundError, NotADirectoryError):
        return []
    found = []
    for entry in entries:
        if not entry.is_dir(follow_symlinks=False):
            continue
        has_manifest = os.path.isfile(os.path.join(entry.path, MANIFEST_NAME))
        described = release_plan.describe_release_dir(entry.name, has_manifest)
        if described:
            found.append((entry, described))
    return found


def read_releases(app_root: str) -> list[dict]:
    """The releases under app_root/releases, sorted by id (a .partial one after its complete)."""
    found = [described for _entry, described in
             release_entries(os.path.join(app_root, "releases"))]
    return sorted(found, key=lambda r: (r["id"], r["partial"]))


def read_deploy_log(path: str) -> list[dict]:
    """The records of deploy.log at path; none when it cannot be read."""
    try:
        with open(path, encoding="utf-8", errors="replace") as handle:
            return release_plan.parse_deploy_log(handle.read())
    except OSError:
        return []
