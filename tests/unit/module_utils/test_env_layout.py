"""env_layout: env file paths, links from a release into shared/, the plan, the compose scan."""

from __future__ import annotations

import json
import os

import pytest
from ansible_collections.atp.deploy.plugins.module_utils import dotenv, env_layout, release_model
from ansible_collections.atp.deploy.plugins.module_utils.release_manifest import MANIFEST_NAME


@pytest.mark.parametrize(("path", "norm"), [
    (".env", ".env"), ("./.env.db", ".env.db"), ("config//db.env", "config/db.env"),
    ("config/../.env", ".env"), ("secrets/runtime.env", "secrets/runtime.env"),
])
def test_norm_env_path(path, norm):
    assert env_layout.norm_env_path(path) == norm


@pytest.mark.parametrize(("path", "fragment"), [
    ("/etc/atp.env", "is an absolute path"), ("../x.env", "is outside the app dir"),
    ("a/../../x", "is outside the app dir"), ("", "is empty"), (".", "is outside"),
])
def test_norm_env_path_rejects(path, fragment):
    with pytest.raises(env_layout.EnvPathError, match=fragment):
        env_layout.norm_env_path(path)


def test_split_env_paths_dedups_in_order_and_reports_the_rest():
    good, problems = env_layout.split_env_paths([".env", "./.env", ".env.db", "/abs", ".env"])
    assert good == [".env", ".env.db"]
    assert problems == ["env file /abs is an absolute path (compose reads it where it is)"]


@pytest.mark.parametrize(("rel", "target"), [
    (".env", "../../shared/.env"),
    ("config/db.env", "../../../shared/config/db.env"),
    ("a/b/c.env", "../../../../shared/a/b/c.env"),
])
def test_link_target(rel, target):
    assert env_layout.link_target(rel) == target


@pytest.fixture
def app(tmp_path):
    root = tmp_path / "app"
    release = root / "releases" / "20261124T101500Z-0123456789ab"
    (release / "config").mkdir(parents=True)
    (root / "shared").mkdir()
    (release / MANIFEST_NAME).write_text(json.dumps({"format": 1, "files": {
        "config/app.env": {}}}))
    return root, release


def test_links_and_empty_files_resolve_through_the_release(app):
    root, release = app
    shared = root / "shared"
    rels = [".env", "config/db.env", "deep/er/x.env", "secrets/runtime.env"]
    created = env_layout.create_missing(str(shared), rels, os.getuid(), os.getgid())
    assert created == rels
    for rel in rels:
        assert os.stat(shared / rel).st_mode & 0o777 == 0o600
    assert os.stat(shared / "secrets").st_mode & 0o777 == 0o700
    assert os.stat(shared / "deep").st_mode & 0o777 == 0o750
    assert env_layout.create_missing(str(shared), rels, None, None) == []
    assert env_layout.missing_links(str(release), rels) == rels
    made = env_layout.make_links(str(release), rels, os.getuid(), os.getgid())
    assert made == [".env", "config/db.env", "deep/er/x.env", "secrets"]
    for rel in rels:
        assert (release / rel).is_file(), rel
    assert env_layout.missing_links(str(release), rels) == []
    assert env_layout.make_links(str(release), rels, None, None) == []
    assert env_layout.shared_links(str(release)) == [".env", "config/db.env", "deep/er/x.env",
                                                     "secrets"]


def test_a_shipped_env_file_is_never_linked(app):
    _root, release = app
    assert env_layout.shipped_files(str(release)) == {"config/app.env"}
    shipped = env_layout.shipped_files(str(release))
    assert env_layout.missing_links(str(release), ["config/app.env"], shipped) == []
    assert env_layout.make_links(str(release), ["config/app.env"], None, None, shipped) == []


def test_a_real_file_in_the_way_is_never_replaced(app):
    _root, release = app
    (release / ".env").write_text("mine")
    with pytest.raises(FileExistsError):
        env_layout.make_links(str(release), [".env"], None, None)
    assert (release / ".env").read_text() == "mine"


def test_a_wrong_link_is_fixed(app):
    _root, release = app
    (release / ".env").symlink_to("/tmp/elsewhere")
    assert env_layout.make_links(str(release), [".env"], None, None) == [".env"]
    assert os.readlink(release / ".env") == "../../shared/.env"


def test_a_directory_where_an_env_file_goes_fails(app):
    root, _release = app
    (root / "shared" / ".env").mkdir()
    with pytest.raises(IsADirectoryError):
        env_layout.create_missing(str(root / "shared"), [".env"], None, None)


def test_ignored_names_for_verification(app):
    _root, release = app
    (release / "x").symlink_to("../../shared/x")
    (release / "y").symlink_to("../../elsewhere/y")
    assert env_layout.shared_links(str(release)) == ["x"]


# --------------------------------------------------------------------------- plan


def test_plan_env_and_its_lines(app):
    root, _release = app
    shared = root / "shared"
    (shared / ".env").write_text("KEEP=1\nA=old\n")
    (shared / ".env").chmod(0o644)
    want = {".env": dotenv.digests({"A": "new"}, "s"), ".env.aws": dotenv.digests({}, "s")}
    plan = env_layout.plan_env(str(shared), want, [".env", ".env.db", "secrets/x.env"], "s")
    assert plan["files"][".env"] == {"exists": True, "in_sync": False, "set": ["A"],
                                     "kept": ["KEEP"], "dropped": [], "loose_mode": True}
    assert plan["files"][".env.aws"]["exists"] is False
    assert plan["missing"] == [".env.db"]
    assert plan["values_in_sync"] is False and plan["content"] is None
    plan["links_missing"] = [".env"]
    assert env_layout.plan_lines(plan) == [
        ".env: sets A; kept from the instance: KEEP",
        ".env.aws: created",
        "created empty (0600): .env.db",
        "linked into the release: .env",
    ]


def test_plan_env_in_sync_gives_the_content_of_the_set(app):
    root, _release = app
    shared = root / "shared"
    (shared / ".env").write_text("A=1\nKEEP=2\n")
    (shared / ".env").chmod(0o600)
    plan = env_layout.plan_env(str(shared), {".env": dotenv.digests({"A": "1"}, "s")},
                               [".env", ".env.db", "secrets/runtime.env"], "s")
    assert plan["values_in_sync"] is True
    # secrets/ is not part of an env set; a missing file is in it, empty.
    assert plan["content"] == {".env": b"A=1\nKEEP=2\n", ".env.db": b""}
    assert env_layout.plan_lines(plan) == [".env: kept from the instance: KEEP",
                                           "created empty (0600): .env.db"]


def test_plan_env_replace_drops_are_a_change(app):
    root, _release = app
    (root / "shared" / ".env").write_text("A=1\nKEEP=2\n")
    plan = env_layout.plan_env(str(root / "shared"), {".env": dotenv.digests({"A": "1"}, "s")},
                               [".env"], "s", replace=True)
    assert plan["values_in_sync"] is False and plan["files"][".env"]["dropped"] == ["KEEP"]


# --------------------------------------------------------------------------- env sets

SET_FILES = {".env": b"A=1\n", ".env.aws": b"K='v'\n", "config/db.env": b""}


def modes(path):
    return {str(p.relative_to(path)): oct(p.stat().st_mode & 0o777)
            for p in sorted(path.rglob("*"))}


def test_write_set_is_content_addressed_0700_0600_and_reused(tmp_path):
    root = tmp_path / "app"
    name, written = env_layout.write_set(str(root), SET_FILES, os.getuid(), os.getgid())
    assert written is True and name == release_model.env_set_hash(SET_FILES)
    path = root / "shared" / "env" / name
    assert oct((root / "shared" / "env").stat().st_mode & 0o777) == "0o700"
    assert modes(path) == {".env": "0o600", ".env.aws": "0o600", "config": "0o700",
                           "config/db.env": "0o600"}
    assert oct(path.stat().st_mode & 0o777) == "0o700"
    assert env_layout.read_set(str(path)) == SET_FILES
    assert env_layout.find_set(str(root), SET_FILES) == name
    assert env_layout.find_set(str(root), {".env": b"other"}) is None
    # Same content again: the same set, nothing written; a loose mode is made right.
    (path / ".env").chmod(0o644)
    assert env_layout.set_modes_ok(str(path)) is False
    assert env_layout.write_set(str(root), SET_FILES, None, None) == (name, False)
    assert env_layout.set_modes_ok(str(path)) is True
    assert [n for n, _ in env_layout.list_sets(str(root))] == [name]


def test_write_set_never_changes_a_set_edited_by_hand(tmp_path):
    root = tmp_path / "app"
    name, _ = env_layout.write_set(str(root), SET_FILES, None, None)
    edited = root / "shared" / "env" / name / ".env"
    edited.write_text("A=edited\n")
    again, written = env_layout.write_set(str(root), SET_FILES, None, None)
    assert written is True and again == f"{name}-2"
    assert edited.read_text() == "A=edited\n"
    assert env_layout.find_set(str(root), SET_FILES) == f"{name}-2"


def test_write_set_leaves_no_half_set_behind(tmp_path, monkeypatch):
    root = tmp_path / "app"
    calls = []

    def boom(path, data, *args, **kwargs):
        calls.append(path)
        if len(calls) == 2:
            raise OSError(28, "No space left on device", path)
        return real(path, data, *args, **kwargs)

    real = env_layout.fsutil.atomic_write
    monkeypatch.setattr(env_layout.fsutil, "atomic_write", boom)
    with pytest.raises(OSError, match="No space"):
        env_layout.write_set(str(root), SET_FILES, None, None)
    assert os.listdir(root / "shared" / "env") == []


def test_read_set_refuses_links_and_missing_dirs(tmp_path):
    assert env_layout.read_set(str(tmp_path / "none")) is None
    (tmp_path / "s").mkdir()
    (tmp_path / "s" / ".env").symlink_to("/etc/passwd")
    assert env_layout.read_set(str(tmp_path / "s")) is None


def test_remove_and_stale_partial_sets(tmp_path):
    root = tmp_path / "app"
    name, _ = env_layout.write_set(str(root), SET_FILES, None, None)
    env_layout.remove_set(str(root), name)
    assert env_layout.list_sets(str(root)) == []
    with pytest.raises(ValueError):
        env_layout.remove_set(str(root), "../shared")
    now = 1_000_000.0
    entries = [(".aaaaaaaaaaaa.partial-7", now - 4000), (".bbbbbbbbbbbb.partial-8", now - 10),
               ("cccccccccccc", now - 99999)]
    assert env_layout.stale_partial_sets(entries, now) == [".aaaaaaaaaaaa.partial-7"]


def test_links_into_a_set_and_the_base_env(tmp_path):
    root = tmp_path / "app"
    rid = "20261124T101500Z-0123456789ab"
    release = root / "releases" / rid
    release.mkdir(parents=True)
    (root / "shared" / "secrets").mkdir(parents=True)
    assert env_layout.base_env(str(root)) == env_layout.LEGACY_ENV
    name, _ = env_layout.write_set(str(root), SET_FILES, None, None)
    rels = env_layout.release_link_rels(str(root), [".env", "config/db.env"])
    assert rels == [".env", "config/db.env", "secrets"]
    assert env_layout.missing_links(str(release), rels, env=name) == rels
    made = env_layout.make_links(str(release), rels, None, None, env=name)
    assert made == [".env", "config/db.env", "secrets"]
    assert os.readlink(release / "config" / "db.env") == \
        f"../../../shared/env/{name}/config/db.env"
    assert (release / ".env").read_bytes() == b"A=1\n"
    assert env_layout.shared_links(str(release)) == [".env", "config/db.env", "secrets"]
    assert env_layout.missing_links(str(release), rels, env=name) == []
    assert env_layout.missing_links(str(release), [".env"]) == [".env"]  # not into shared/
    (root / "current").symlink_to(f"releases/{rid}")
    assert env_layout.base_env(str(root)) == name


def test_new_set_files_merges_carries_and_creates():
    base = {".env": b"A=1\n", ".env.db": b"PG=1\n", ".env.aws": None, "x.env": None}
    files = env_layout.new_set_files(base, {".env.aws": "K='v'\n"},
                                     [".env", ".env.aws", ".env.db", "x.env", "secrets/s"])
    assert files == {".env": b"A=1\n", ".env.aws": b"K='v'\n", ".env.db": b"PG=1\n",
                     "x.env": b""}


# --------------------------------------------------------------------------- compose scan

COMPOSE = """
services:
  db:
    env_file:
      - .env
      - ./.env.db   # the db's own
      - path: config/db.env
        required: false
      - {path: "extra.env", required: false}
    image: postgres
  backend-aws:
    env_file: [.env, ".env.aws"]
  worker:
    env_file: worker.env # comment
  frontend:
    env_file:
    - front.env
    ports:
    - "3000:3000"
  nothing:
    environment:
      - env_file=not-this
"""


def test_scan_compose_env_files_reads_every_form():
    assert env_layout.scan_compose_env_files(COMPOSE) == [
        ".env", "./.env.db", "config/db.env", "extra.env", ".env", ".env.aws", "worker.env",
        "front.env"]


def test_scan_compose_env_files_empty():
    assert env_layout.scan_compose_env_files("") == []
    assert env_layout.scan_compose_env_files("services:\n  a:\n    image: x\n") == []


def test_the_proxys_files_in_shared_are_never_kept_as_env(tmp_path):
    """Release zero's env is shared/ itself (the layout before env sets); a zero-downtime
    deploy adds shared/proxy/ (its program, upstream, status): a later env set must not take
    those for env files and link them into every release."""
    from ansible_collections.atp.deploy.plugins.module_utils import zero_downtime

    shared = tmp_path / "shared"
    for rel in (".env", ".env.aws", ".env.db", "secrets/key.pem", "env/abc/.env",
                "proxy/tcp_proxy.py", "proxy/upstream", "proxy/status.json"):
        (shared / rel).parent.mkdir(parents=True, exist_ok=True)
        (shared / rel).write_text("x\n")
    assert zero_downtime.proxy_dir(str(tmp_path)) == str(shared / env_layout.PROXY_DIR)
    assert env_layout.kept_rels(str(shared), legacy=True) == [".env", ".env.aws", ".env.db"]
