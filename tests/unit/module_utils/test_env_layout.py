"""env_layout: env file paths, links from a release into shared/, the plan, the compose scan."""

from __future__ import annotations

import json
import os

import pytest
from ansible_collections.atp.deploy.plugins.module_utils import dotenv, env_layout
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
    root, release = app
    shared = root / "shared"
    (shared / ".env").write_text("KEEP=1\nA=old\n")
    (shared / ".env").chmod(0o644)
    want = {".env": dotenv.digests({"A": "new"}, "s"), ".env.aws": dotenv.digests({}, "s")}
    plan = env_layout.plan_env(str(shared), str(release), want, [".env", ".env.db"], "s")
    assert plan["files"][".env"] == {"exists": True, "in_sync": False, "set": ["A"],
                                     "kept": ["KEEP"], "dropped": [], "loose_mode": True}
    assert plan["files"][".env.aws"]["exists"] is False
    assert plan["missing"] == [".env.db"]
    assert plan["links_missing"] == [".env", ".env.aws", ".env.db"]
    assert plan["in_sync"] is False
    assert env_layout.plan_lines(plan) == [
        ".env: sets A; kept from the instance: KEEP; mode made 0600",
        ".env.aws: created",
        "created empty (0600): .env.db",
        "linked into the release: .env, .env.aws, .env.db",
    ]


def test_plan_env_in_sync(app):
    root, release = app
    shared = root / "shared"
    (shared / ".env").write_text("A=1\nKEEP=2\n")
    (shared / ".env").chmod(0o600)
    env_layout.make_links(str(release), [".env"], None, None)
    plan = env_layout.plan_env(str(shared), str(release),
                               {".env": dotenv.digests({"A": "1"}, "s")}, [".env"], "s")
    assert plan["in_sync"] is True
    assert env_layout.plan_lines(plan) == [".env: kept from the instance: KEEP"]


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
