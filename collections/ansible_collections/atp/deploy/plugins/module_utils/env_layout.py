# Copyright: atp.deploy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Where env files live on the instance: ``<app_root>/shared/<path>``, linked into each release.

Every env file compose needs (``.env``, ``.env.aws``, ``.env.db``, ``secrets/runtime.env``...)
is a symlink from the release into shared/ (``releases/<id>/.env -> ../../shared/.env``,
``releases/<id>/config/db.env -> ../../../shared/config/db.env``); paths under ``secrets/`` are
reached through the ``secrets -> ../../shared/secrets`` link. A missing one is created empty
(0600, owner of the app) so compose never refuses a release. Stdlib only (runs on the instance).
"""

from __future__ import annotations

import json
import os
import posixpath
import re

from ansible_collections.atp.deploy.plugins.module_utils import dotenv, fsutil
from ansible_collections.atp.deploy.plugins.module_utils.release_manifest import MANIFEST_NAME

SECRETS_NAME = "secrets"
SECRETS_LINK = "../../shared/secrets"
DEFAULT_ENV_FILES = (".env", ".env.aws")
ENV_MODE = 0o600
SHARED_DIR_MODE = 0o750


class EnvPathError(ValueError):
    """An env file path that cannot live in shared/ (absolute, outside the app, ...)."""


def norm_env_path(path: str) -> str:
    """A compose env_file path (relative to the compose file's dir) -> normalised relpath.

    Raises EnvPathError for an absolute path, one leaving the app dir, or an empty one.
    """
    text = str(path or "").strip()
    if not text:
        raise EnvPathError("an env file path is empty")
    if text.startswith("/"):
        raise EnvPathError(f"env file {text} is an absolute path (compose reads it where it is)")
    norm = posixpath.normpath(text)
    if norm in (".", "") or norm == ".." or norm.startswith("../"):
        raise EnvPathError(f"env file {text} is outside the app dir")
    return norm


def split_env_paths(paths) -> tuple[list[str], list[str]]:
    """(normalised relpaths in order without duplicates, one-line problems of the others)."""
    seen, good, problems = set(), [], []
    for path in paths or ():
        try:
            norm = norm_env_path(path)
        except EnvPathError as exc:
            problems.append(str(exc))
            continue
        if norm not in seen:
            seen.add(norm)
            good.append(norm)
    return good, problems


def under_secrets(rel: str) -> bool:
    """The path is reached through the release's secrets -> ../../shared/secrets link."""
    return rel == SECRETS_NAME or rel.startswith(SECRETS_NAME + "/")


def link_target(rel: str) -> str:
    """Relative target of the link releases/<id>/<rel> -> <app_root>/shared/<rel>."""
    depth = rel.count("/")
    return "../" * (2 + depth) + "shared/" + rel


def shipped_files(release_dir: str) -> set[str]:
    """Files the release's manifest lists (an env file among them stays release content)."""
    try:
        with open(os.path.join(release_dir, MANIFEST_NAME), encoding="utf-8") as handle:
            files = (json.load(handle) or {}).get("files") or {}
    except (OSError, ValueError, AttributeError):
        return set()
    return set(files) if isinstance(files, dict) else set()


def link_problem(release_dir: str, rel: str, shipped: frozenset | set = frozenset()) -> str | None:
    """None when the release reaches shared/<rel> at rel (or ships rel itself), else why not."""
    if rel in shipped:
        return None
    if under_secrets(rel):
        target = fsutil.read_link_target(os.path.join(release_dir, SECRETS_NAME))
        return None if target == SECRETS_LINK else f"{SECRETS_NAME} is not linked to shared/"
    target = fsutil.read_link_target(os.path.join(release_dir, rel))
    if target == link_target(rel):
        return None
    return f"{rel} is not linked to shared/{rel}"


def missing_links(release_dir: str, rels: list[str],
                  shipped: frozenset | set = frozenset()) -> list[str]:
    """The relpaths (of rels) the release does not reach in shared/ yet."""
    return [rel for rel in rels if link_problem(release_dir, rel, shipped)]


def _make_parents(root: str, rel: str, mode: int, uid: int | None, gid: int | None) -> None:
    parent = posixpath.dirname(rel)
    if not parent:
        return
    directory = os.path.join(root, *parent.split("/"))
    if uid is None or gid is None:
        os.makedirs(directory, mode, exist_ok=True)
    else:
        fsutil.makedirs_owned(directory, mode, uid, gid, parent_mode=mode)


def create_missing(shared: str, rels: list[str], uid: int | None, gid: int | None) -> list[str]:
    """Create every shared/<rel> that is missing as an empty file (0600, uid:gid).

    Returns the relpaths created. A directory in the way raises OSError.
    """
    created = []
    for rel in rels:
        path = os.path.join(shared, *rel.split("/"))
        if os.path.lexists(path):
            if os.path.isdir(path):
                raise IsADirectoryError(21, "expected an env file, found a directory", path)
            continue
        dir_mode = 0o700 if under_secrets(rel) else SHARED_DIR_MODE
        _make_parents(shared, rel, dir_mode, uid, gid)
        fsutil.atomic_write(path, b"", ENV_MODE, uid, gid)
        created.append(rel)
    return created


def make_links(release_dir: str, rels: list[str], uid: int | None, gid: int | None,
               shipped: frozenset | set = frozenset()) -> list[str]:
    """Link every rel (not shipped by the archive) from the release into shared/.

    Paths under secrets/ get the one ``secrets`` link. Returns the links created or fixed.
    A real file or directory in the way of a link raises OSError (never replaced).
    """
    made = []
    for rel in rels:
        if rel in shipped or not link_problem(release_dir, rel, shipped):
            continue
        name = SECRETS_NAME if under_secrets(rel) else rel
        target = SECRETS_LINK if under_secrets(rel) else link_target(rel)
        link = os.path.join(release_dir, *name.split("/"))
        if os.path.lexists(link) and not os.path.islink(link):
            raise FileExistsError(17, "the release holds a real file or directory where the "
                                  "env link goes", link)
        _make_parents(release_dir, name, 0o755, uid, gid)
        if os.path.islink(link):
            os.unlink(link)
        os.symlink(target, link)
        if uid is not None and gid is not None:
            os.lchown(link, uid, gid)
        made.append(name)
    return made


def shared_links(release_dir: str) -> list[str]:
    """Relpaths of the symlinks in a release that point into shared/ (env links, secrets)."""
    found = []
    for dirpath, dirnames, filenames in os.walk(release_dir, followlinks=False):
        for name in dirnames + filenames:
            path = os.path.join(dirpath, name)
            target = fsutil.read_link_target(path)
            if target and target.startswith("../") and "/shared/" in "/" + target:
                rel = os.path.relpath(path, release_dir).replace(os.sep, "/")
                expected = SECRETS_LINK if rel == SECRETS_NAME else link_target(rel)
                if target == expected:
                    found.append(rel)
    return sorted(found)


def read_text(path: str) -> str | None:
    """The file's text (undecodable bytes kept as surrogates), None when it does not exist."""
    if not os.path.lexists(path):
        return None
    with open(path, "rb") as handle:
        return handle.read().decode("utf-8", "surrogateescape")


def plan_env(base: str, release: str | None, files: dict, required: list[str], salt: str,
             replace: bool = False, supersedes: dict | None = None) -> dict:
    """Compare the env files under base (shared/, or the checkout to adopt) with the deploy's.

    files: relpath -> {KEY: digest} (dotenv.key_digest under salt) of the files the deploy
    renders; required: every env file compose needs. release: an existing release whose links
    are checked (None: no release yet). Returns {files: relpath -> dotenv.plan_file report plus
    loose_mode (readable by group/others), missing: required files absent, links_missing,
    in_sync}. Raises dotenv.DotenvError for a file compose could not read.
    """
    reports = {}
    for rel, want in sorted(files.items()):
        path = os.path.join(base, *rel.split("/"))
        text = read_text(path) if not os.path.isdir(path) else None
        report = dotenv.plan_file(text, want or {}, salt, replace, supersedes, where=path)
        loose = text is not None and bool(os.stat(path).st_mode & 0o077)
        report["loose_mode"] = loose
        report["in_sync"] = report["in_sync"] and not loose
        reports[rel] = report
    missing = [rel for rel in required if rel not in files
               and not os.path.lexists(os.path.join(base, *rel.split("/")))]
    links = []
    if release and os.path.isdir(release):
        shipped = shipped_files(release)
        rels = [rel for rel in sorted(set(required) | set(files)) if rel not in shipped]
        if os.path.isdir(os.path.join(base, SECRETS_NAME)) and SECRETS_NAME not in rels:
            rels.append(SECRETS_NAME)
        links = missing_links(release, rels, shipped)
    in_sync = all(r["in_sync"] for r in reports.values()) and not missing and not links
    return {"files": reports, "missing": missing, "links_missing": links, "in_sync": in_sync}


def plan_lines(env: dict) -> list[str]:
    """One line per env file with something to say (names only, never values)."""
    lines = []
    for rel, report in sorted((env.get("files") or {}).items()):
        parts = []
        if not report.get("exists"):
            parts.append("created")
        if report.get("set"):
            parts.append("sets " + ", ".join(report["set"]))
        if report.get("kept"):
            parts.append("kept from the instance: " + ", ".join(report["kept"]))
        if report.get("dropped"):
            parts.append("dropped: " + ", ".join(report["dropped"]))
        if report.get("loose_mode"):
            parts.append("mode made 0600")
        if parts:
            lines.append(f"{rel}: " + "; ".join(parts))
    if env.get("missing"):
        lines.append("created empty (0600): " + ", ".join(env["missing"]))
    if env.get("links_missing"):
        lines.append("linked into the release: " + ", ".join(env["links_missing"]))
    return lines


# --------------------------------------------------------------------------- compose scan

_ENV_FILE_RE = re.compile(r"^(\s*)env_file\s*:\s*(.*)$")
_ITEM_RE = re.compile(r"^(\s*)-\s*(.*)$")
_PATH_RE = re.compile(r"^path\s*:\s*(.*)$")


def _scalar(text: str) -> str:
    text = text.strip()
    if text[:1] in ("'", '"'):
        end = text.find(text[0], 1)
        return text[1:end] if end > 0 else text[1:]
    cut = text.find(" #")
    return (text[:cut] if cut >= 0 else text).strip()


def scan_compose_env_files(text: str) -> list[str]:
    """env_file entries of every service of a compose file, without a YAML parser.

    Understands ``env_file: x``, ``env_file: [a, b]`` and block lists of paths or of
    ``{path: x, required: false}`` items: the forms compose files use. Used on the instance to
    find the env files of a hand-managed checkout (the controller parses its own compose file).
    """
    found = []
    lines = (text or "").splitlines()
    i = 0
    while i < len(lines):
        match = _ENV_FILE_RE.match(lines[i])
        i += 1
        if not match:
            continue
        indent, value = len(match.group(1)), match.group(2).strip()
        if value.startswith("["):
            inner = value[1:value.find("]")] if "]" in value else value[1:]
            found.extend(_scalar(part) for part in inner.split(",") if part.strip())
            continue
        if value and not value.startswith("#"):
            found.append(_scalar(value))
            continue
        while i < len(lines):
            line = lines[i]
            if not line.strip() or line.strip().startswith("#"):
                i += 1
                continue
            if len(line) - len(line.lstrip()) <= indent and not line.lstrip().startswith("-"):
                break
            item = _ITEM_RE.match(line)
            if item and len(item.group(1)) < indent:
                break
            if item:
                body = item.group(2).strip()
                path = _PATH_RE.match(body)
                if path:
                    found.append(_scalar(path.group(1)))
                elif body and not body.startswith("{"):
                    found.append(_scalar(body))
                elif body.startswith("{"):
                    inner = re.search(r"path\s*:\s*([^,}]+)", body)
                    if inner:
                        found.append(_scalar(inner.group(1)))
            i += 1
    return [f for f in found if f]
