"""Tests of the release_unpack module, for real on tmp_path with real tar.gz archives."""

from __future__ import annotations

import grp
import json
import os
import pwd
import tarfile
from pathlib import Path

import pytest
from ansible_collections.atp.deploy.plugins.module_utils import release_model
from ansible_collections.atp.deploy.plugins.module_utils.release_manifest import (
    MANIFEST_NAME,
    verify_tree,
)
from ansible_collections.atp.deploy.plugins.modules import release_unpack

from .module_runner import (
    APP_FILES,
    doc_spec_problems,
    install_env_set,
    install_release,
    make_archive,
    run_module,
    warnings_of,
)

USER = pwd.getpwuid(os.getuid()).pw_name
GROUP = grp.getgrgid(os.getgid()).gr_name


@pytest.fixture
def app_root(tmp_path):
    root = tmp_path / "app"
    (root / "shared").mkdir(parents=True)
    return root


def args(app_root, built, **extra) -> dict:
    """Links into shared/ directly (env_set=shared, the layout before env sets) unless told."""
    return {
        "app_root": str(app_root),
        "archive": str(built["archive"]),
        "archive_sha256": built["sha256"],
        "release_id": built["release_id"],
        "content_hash": built["content_hash"],
        "env_set": "shared",
        "owner": USER,
        "group": GROUP,
        **extra,
    }


def test_documentation_matches_argument_spec():
    assert doc_spec_problems(release_unpack) == []


def test_unpack_fresh_release(tmp_path, app_root):
    built = make_archive(tmp_path)
    result = run_module(release_unpack, args(app_root, built))
    rid = built["release_id"]
    final = app_root / "releases" / rid
    assert result["changed"] is True and result["unpacked"] is True
    assert result["release_id"] == rid and result["release_path"] == str(final)
    assert result["files"] == len(APP_FILES) and result["archive_removed"] is True
    assert verify_tree(str(final), built["manifest"]) == []
    assert (final / MANIFEST_NAME).is_file()
    assert os.readlink(final / ".env") == "../../shared/.env"
    assert os.readlink(final / ".env.aws") == "../../shared/.env.aws"
    assert os.stat(final / "scripts" / "start.sh").st_mode & 0o777 == 0o755
    assert os.lstat(final / "backend" / "app" / "main.py").st_uid == os.getuid()
    assert sorted(os.listdir(app_root / "releases")) == [rid]
    assert not built["archive"].exists()
    assert not (app_root / "current").exists()


def test_env_links_resolve_into_shared(tmp_path, app_root):
    (app_root / "shared" / ".env").write_text("A=1\n")
    built = make_archive(tmp_path)
    run_module(release_unpack, args(app_root, built))
    release = app_root / "releases" / built["release_id"]
    assert (release / ".env").read_text() == "A=1\n"


def test_second_run_is_idempotent(tmp_path, app_root):
    built = make_archive(tmp_path)
    run_module(release_unpack, args(app_root, built))
    result = run_module(release_unpack, args(app_root, built))
    assert result["changed"] is False and result["unpacked"] is False
    assert "failed" not in result


def test_keep_archive_when_asked(tmp_path, app_root):
    built = make_archive(tmp_path)
    result = run_module(release_unpack, args(app_root, built, remove_archive=False))
    assert result["archive_removed"] is False and built["archive"].exists()


def test_corrupt_archive_sha_mismatch(tmp_path, app_root):
    built = make_archive(tmp_path)
    result = run_module(release_unpack, args(app_root, built, archive_sha256="0" * 64))
    assert result["failed"] is True
    assert result["msg"] == (
        f"archive {built['archive']} is corrupt or partial: sha256 {built['sha256']} != expected "
        f"{'0' * 64}; re-run the deploy to upload it again")
    assert "\n" not in result["msg"]
    assert not (app_root / "releases" / built["release_id"]).exists()
    assert built["archive"].exists()


def test_missing_archive(tmp_path, app_root):
    built = make_archive(tmp_path)
    built["archive"].unlink()
    result = run_module(release_unpack, args(app_root, built))
    assert result["failed"] is True and "not found on the instance" in result["msg"]


def evil(name, kind=tarfile.REGTYPE, link=""):
    member = tarfile.TarInfo(name)
    member.type, member.linkname, member.mode = kind, link, 0o644
    return member


@pytest.mark.parametrize(("extra", "fragment"), [
    ((evil("/etc/cron.d/x"), b"x"), "absolute path"),
    ((evil("../../outside"), b"x"), "escapes"),
    ((evil("backend/link", tarfile.SYMTYPE, "/etc/passwd"), None), "link member"),
    ((evil("backend/hard", tarfile.LNKTYPE, "Dockerfile"), None), "link member"),
    ((evil("dev/null", tarfile.CHRTYPE), None), "device"),
    ((evil(".env"), b"SECRET=1\n"), "must not be shipped"),
])
def test_unsafe_archives_are_rejected_and_cleaned(tmp_path, app_root, extra, fragment):
    built = make_archive(tmp_path, extra=[extra])
    result = run_module(release_unpack, args(app_root, built))
    assert result["failed"] is True
    assert fragment in result["msg"] and "rejected" in result["msg"]
    assert "\n" not in result["msg"]
    assert os.listdir(app_root / "releases") == []
    assert not (tmp_path / "outside").exists()


def test_tree_not_matching_manifest_lists_problems(tmp_path, app_root):
    # An extra file not in the manifest: verify_tree reports it; the partial dir is removed.
    built = make_archive(tmp_path, extra=[(evil("backend/extra.py"), b"x = 1\n")])
    result = run_module(release_unpack, args(app_root, built))
    assert result["failed"] is True
    assert "does not match its manifest: extra file: backend/extra.py" in result["msg"]
    assert os.listdir(app_root / "releases") == []


def test_archive_must_hold_the_planned_code(tmp_path, app_root):
    built = make_archive(tmp_path)
    result = run_module(release_unpack, args(app_root, built, content_hash="f" * 64))
    assert result["failed"] is True and "do not belong together" in result["msg"]
    assert "\n" not in result["msg"]
    assert os.listdir(app_root / "releases") == []
    # The id's hash part covers code + env: any id of the model fits the archive.
    other = built["release_id"][:-12] + "ffffffffffff"
    result = run_module(release_unpack, args(app_root, built, release_id=other))
    assert "failed" not in result, result.get("msg")


def test_bad_release_id_and_owner(tmp_path, app_root):
    built = make_archive(tmp_path)
    result = run_module(release_unpack, args(app_root, built, release_id="latest"))
    assert result["failed"] is True and "release_id must look like" in result["msg"]
    result = run_module(release_unpack, args(app_root, built, owner="no-such-user-xyz"))
    assert result["failed"] is True and "user 'no-such-user-xyz' does not exist" in result["msg"]


def test_stale_partial_is_replaced(tmp_path, app_root):
    built = make_archive(tmp_path)
    stale = app_root / "releases" / (built["release_id"] + ".partial")
    stale.mkdir(parents=True)
    (stale / "junk").write_text("old")
    result = run_module(release_unpack, args(app_root, built))
    assert result["changed"] is True
    assert sorted(os.listdir(app_root / "releases")) == [built["release_id"]]
    assert not (app_root / "releases" / built["release_id"] / "junk").exists()


def test_current_and_other_releases_untouched(tmp_path, app_root):
    (app_root / "releases").mkdir()
    old = install_release(app_root, {"docker-compose.yml": "old\n"}, "2026-11-01T00:00:00",
                          current=True)
    before = sorted(os.listdir(app_root / "releases" / old))
    built = make_archive(tmp_path)
    run_module(release_unpack, args(app_root, built))
    assert os.readlink(app_root / "current") == f"releases/{old}"
    assert sorted(os.listdir(app_root / "releases" / old)) == before
    assert sorted(os.listdir(app_root / "releases")) == sorted([old, built["release_id"]])


def test_broken_existing_release_is_replaced(tmp_path, app_root):
    built = make_archive(tmp_path)
    run_module(release_unpack, args(app_root, built, remove_archive=False))
    final = app_root / "releases" / built["release_id"]
    (final / "Dockerfile").write_text("tampered\n")
    result = run_module(release_unpack, args(app_root, built))
    assert result["changed"] is True and result["replaced"] is True
    assert verify_tree(str(final), built["manifest"]) == []
    assert sorted(os.listdir(app_root / "releases")) == [built["release_id"]]
    assert any("fails verification" in w for w in warnings_of(result))


def test_check_mode_changes_nothing(tmp_path, app_root):
    built = make_archive(tmp_path)
    result = run_module(release_unpack, args(app_root, built), check_mode=True)
    assert result["changed"] is True and result["unpacked"] is True
    assert not (app_root / "releases").exists()
    assert built["archive"].exists()


# --------------------------------------------------------------------------- env files


ALL_ENV = [".env", ".env.aws", ".env.db", "config/db.env", "secrets/runtime.env"]


def test_every_env_file_compose_needs_is_linked_or_created_empty(tmp_path, app_root):
    (app_root / "shared" / ".env").write_text("A=1\n")
    built = make_archive(tmp_path, {**APP_FILES, "config/settings.yml": "x: 1\n"})
    result = run_module(release_unpack, args(app_root, built, env_files=ALL_ENV))
    assert "failed" not in result, result.get("msg")
    release = app_root / "releases" / built["release_id"]
    shared = app_root / "shared"
    assert os.readlink(release / ".env.db") == "../../shared/.env.db"
    assert os.readlink(release / "config" / "db.env") == "../../../shared/config/db.env"
    assert os.readlink(release / "secrets") == "../../shared/secrets"
    assert sorted(result["env_created"]) == sorted([".env.aws", ".env.db", "config/db.env",
                                                    "secrets/runtime.env"])
    for rel in result["env_created"]:
        st = os.stat(shared / rel)
        assert st.st_size == 0 and st.st_mode & 0o777 == 0o600 and st.st_uid == os.getuid()
    assert os.stat(shared / "secrets").st_mode & 0o777 == 0o700
    assert (shared / ".env").read_text() == "A=1\n"  # an existing one is never touched
    for rel in ALL_ENV:  # compose finds every file through the release
        assert (release / rel).is_file(), rel
    assert release_unpack.verify_existing(str(release)) == []
    again = run_module(release_unpack, args(app_root, built, env_files=ALL_ENV))
    assert again["changed"] is False and again["env_linked"] == [] and again["env_created"] == []


def test_existing_release_gets_the_links_of_env_files_added_later(tmp_path, app_root):
    built = make_archive(tmp_path)
    run_module(release_unpack, args(app_root, built, remove_archive=False))
    release = app_root / "releases" / built["release_id"]
    assert not os.path.lexists(release / ".env.db")
    check = run_module(release_unpack, args(app_root, built, env_files=[".env.db"]),
                       check_mode=True)
    assert check["changed"] is True and check["env_linked"] == [".env.db"]
    assert not os.path.lexists(release / ".env.db")
    result = run_module(release_unpack, args(app_root, built, env_files=[".env.db"]))
    assert result["changed"] is True and result["unpacked"] is False
    assert result["env_linked"] == [".env.db"] and result["env_created"] == [".env.db"]
    assert os.readlink(release / ".env.db") == "../../shared/.env.db"


def test_env_file_shipped_by_the_archive_stays_release_content(tmp_path, app_root):
    built = make_archive(tmp_path, {**APP_FILES, "config/app.env": "DEFAULTS=1\n"})
    result = run_module(release_unpack, args(app_root, built,
                                             env_files=[".env", "config/app.env"]))
    release = app_root / "releases" / built["release_id"]
    assert result["env_shipped"] == ["config/app.env"]
    assert not os.path.islink(release / "config" / "app.env")
    assert (release / "config" / "app.env").read_text() == "DEFAULTS=1\n"
    assert not (app_root / "shared" / "config").exists()


def test_env_paths_outside_the_app_are_skipped_with_a_warning(tmp_path, app_root):
    built = make_archive(tmp_path)
    result = run_module(release_unpack, args(app_root, built,
                                             env_files=["/etc/atp.env", "../up.env"]))
    assert "failed" not in result
    warnings = warnings_of(result)
    assert any("/etc/atp.env is an absolute path" in w for w in warnings)
    assert any("../up.env is outside the app dir" in w for w in warnings)


def test_a_real_file_where_an_env_link_goes_fails_and_cleans_up(tmp_path, app_root):
    built = make_archive(tmp_path)
    run_module(release_unpack, args(app_root, built, remove_archive=False))
    release = app_root / "releases" / built["release_id"]
    (release / "local.env").mkdir()
    result = run_module(release_unpack, args(app_root, built, env_files=["local.env"]))
    assert result["failed"] is True and "\n" not in result["msg"]
    assert "linking the env files" in result["msg"] and "move the file away" in result["msg"]


# --------------------------------------------------------------------------- adoption

HAND_COMPOSE = """services:
  db:
    image: postgres
    container_name: postgres_hardened
    env_file:
      - .env
      - .env.aws
      - path: ./.env.db
        required: true
  backend-aws:
    build: {context: ., dockerfile: backend/Dockerfile.aws}
    env_file: [.env, .env.aws]
  frontend-aws:
    env_file: config/frontend.env
"""
HAND_SHA = "0123456789abcdef0123456789abcdef01234567"


@pytest.fixture
def checkout(tmp_path):
    """A hand-managed checkout: a git clone run by hand, with the operator's env files."""
    root = tmp_path / "hand" / "automated-trading-platform"
    (root / ".git" / "refs" / "heads").mkdir(parents=True)
    (root / ".git" / "HEAD").write_text("ref: refs/heads/main\n")
    (root / ".git" / "refs" / "heads" / "main").write_text(HAND_SHA + "\n")
    (root / "docker-compose.yml").write_text(HAND_COMPOSE)
    (root / "backend" / "app").mkdir(parents=True)
    (root / "backend" / "app" / "main.py").write_text("app = 1\n")
    (root / "backend" / "app" / "__pycache__").mkdir()
    (root / "backend" / "app" / "__pycache__" / "main.cpython-311.pyc").write_bytes(b"\0")
    (root / "scripts").mkdir()
    (root / "scripts" / "run.sh").write_text("#!/bin/sh\n")
    (root / "scripts" / "run.sh").chmod(0o755)
    (root / "config").mkdir()
    (root / "config" / "frontend.env").write_text("NEXT_PUBLIC_API=/api\n")
    (root / ".env").write_text("POSTGRES_PASSWORD=hand-pw\nHAND_MANAGED=1\n")
    (root / ".env").chmod(0o644)
    (root / ".env.aws").write_text("EXCHANGE_CUSTOM_API_KEY=hand-key\n")
    (root / ".env.aws").chmod(0o640)
    (root / ".env.db").write_text("POSTGRES_INITDB_ARGS=--auth=scram-sha-256\n")
    (root / ".env.bak").write_text("OLD_SECRET=x\n")
    (root / ".env.example").write_text("POSTGRES_PASSWORD=\n")
    (root / "secrets" / "sub").mkdir(parents=True)
    (root / "secrets" / "exchange.pem").write_text("-----BEGIN FAKE-----\n")
    (root / "secrets" / "exchange.pem").chmod(0o600)
    (root / "secrets" / "sub" / "x").write_text("x")
    (root / "secrets").chmod(0o700)
    root.chmod(0o750)
    (root / ".deploy.lock").write_text('{"token": "tok-mine"}')
    return root


def tree_snapshot(root: Path) -> dict:
    """relpath -> (mode, content or link target) of everything under root."""
    snap = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            path = Path(dirpath) / name
            rel = str(path.relative_to(root))
            st = os.lstat(path)
            if path.is_symlink():
                snap[rel] = ("link", os.readlink(path))
            elif path.is_dir():
                snap[rel] = (st.st_mode, None)
            else:
                snap[rel] = (st.st_mode, path.read_bytes())
    return snap


def hand_stack(docker) -> None:
    """The backend the operator started by hand (compose project = the dir's name)."""
    docker.add_container(id="hand1", image="automated-trading-platform-backend-aws",
                         image_id="sha256:hand")


def test_hand_managed_checkout_becomes_release_zero(tmp_path, checkout, docker):
    hand_stack(docker)
    built = make_archive(tmp_path)
    result = run_module(release_unpack, args(checkout, built, env_files=[".env", ".env.aws",
                                                                         ".env.db"]))
    assert "failed" not in result, result.get("msg")
    zero = result["release_zero"]
    zid = zero["release_id"]
    aside = result["adopted_from"]
    assert aside.startswith(f"{checkout}.pre-ansible-") and aside.endswith("Z")
    # release zero sorts before the release being deployed
    assert zid < built["release_id"] and release_unpack.release_model.is_release_id(zid)
    assert sorted(os.listdir(checkout)) == [".deploy.lock", "current", "deploy.log",
                                            "releases", "shared"]
    assert os.readlink(checkout / "current") == f"releases/{zid}"
    assert sorted(os.listdir(checkout / "releases")) == sorted([zid, built["release_id"]])
    assert os.stat(checkout).st_mode & 0o777 == 0o750
    # release zero: the checkout's files (no .git, caches, env files, secrets), a manifest
    rz = checkout / "releases" / zid
    assert (rz / "docker-compose.yml").read_text() == HAND_COMPOSE
    assert (rz / "backend" / "app" / "main.py").is_file()
    assert os.stat(rz / "scripts" / "run.sh").st_mode & 0o777 == 0o755
    assert (rz / ".env.example").is_file()
    for absent in (".git", ".env.bak", "backend/app/__pycache__", ".deploy.lock"):
        assert not os.path.lexists(rz / absent), absent
    manifest = json.loads((rz / MANIFEST_NAME).read_text())
    assert release_unpack.content_hash(manifest)[:12] == zid[-12:]
    assert release_unpack.verify_existing(str(rz)) == []
    assert zero["files"] == len(manifest["files"])
    # every env file of the checkout (compose's env_file entries too) now lives in shared/
    assert sorted(zero["env_files"]) == [".env", ".env.aws", ".env.db", "config/frontend.env"]
    shared = checkout / "shared"
    assert (shared / ".env").read_text() == "POSTGRES_PASSWORD=hand-pw\nHAND_MANAGED=1\n"
    for rel in zero["env_files"]:
        assert os.stat(shared / rel).st_mode & 0o777 == 0o600, rel
        assert os.readlink(rz / rel) == "../" * (2 + rel.count("/")) + "shared/" + rel
        assert (rz / rel).read_text() == (Path(aside) / rel).read_text()
    assert os.readlink(rz / "secrets") == "../../shared/secrets"
    assert (shared / "secrets" / "exchange.pem").read_text() == "-----BEGIN FAKE-----\n"
    assert os.stat(shared / "secrets" / "exchange.pem").st_mode & 0o777 == 0o600
    assert os.stat(shared / "secrets").st_mode & 0o777 == 0o700
    assert (shared / "secrets" / "sub" / "x").is_file()
    # the running backend's image is release zero's: re-activating it needs no build
    ref = f"automated-trading-platform-backend-aws:{zid}"
    assert zero["image"] == ref and zero["image_id"] == "sha256:hand"
    assert docker.load()["images"][ref] == "sha256:hand"
    assert ["tag", "sha256:hand", ref] in docker.argvs
    # deploy.log knows release zero as a good release (rollback can select it)
    record = json.loads((checkout / "deploy.log").read_text().splitlines()[0])
    assert record["release"] == zid and record["result"] == "ok"
    assert record["event"] == "adopted" and record["git_sha"] == HAND_SHA
    assert record["image_id"] == "sha256:hand" and record["adopted_from"] == aside
    # nothing deleted: the checkout is whole aside (minus our lock, which moved along)
    kept = set(os.listdir(aside))
    assert {".git", "docker-compose.yml", ".env", ".env.aws", ".env.db", ".env.bak",
            "secrets", "backend"} <= kept
    assert ".deploy.lock" not in kept
    assert (checkout / ".deploy.lock").read_text() == '{"token": "tok-mine"}'
    # the new release is unpacked in the new layout and reaches the same env files
    release = checkout / "releases" / built["release_id"]
    assert (release / ".env.db").read_text().startswith("POSTGRES_INITDB_ARGS")
    assert (release / "secrets" / "exchange.pem").is_file()
    assert result["unpacked"] is True and result["secrets_linked"] is True
    assert release_unpack.verify_existing(str(release)) == []
    warning = [w for w in warnings_of(result) if w.startswith("adopted the hand-managed")]
    assert warning == [f"adopted the hand-managed checkout as release {zid} (current points at "
                       f"it; its env files {', '.join(zero['env_files'])} and secrets/ are in "
                       f"shared/); the checkout is kept whole at {aside}"]
    assert "hand-pw" not in json.dumps(result)


def test_release_zero_without_a_running_backend_has_no_image(tmp_path, checkout, docker):
    built = make_archive(tmp_path)
    result = run_module(release_unpack, args(checkout, built))
    assert "failed" not in result, result.get("msg")
    assert result["release_zero"]["image"] is None
    assert not any(a[0] == "tag" for a in docker.argvs)
    assert any("release zero has no image" in w for w in warnings_of(result))


def test_failed_tag_fails_the_adoption_and_changes_nothing(tmp_path, checkout, docker,
                                                          monkeypatch):
    hand_stack(docker)
    real_run = release_unpack.proc.run

    def run(argv, **kw):
        if argv[1:2] == ["tag"]:
            return 1, "", "Error response from daemon: no space left on device\nmore"
        return real_run(argv, **kw)

    monkeypatch.setattr(release_unpack.proc, "run", run)
    before = tree_snapshot(checkout)
    built = make_archive(tmp_path)
    result = run_module(release_unpack, args(checkout, built))
    assert result["failed"] is True and "\n" not in result["msg"]
    assert "`docker tag sha256:hand" in result["msg"]
    assert "no space left on device; check the docker engine" in result["msg"]
    assert tree_snapshot(checkout) == before
    assert os.listdir(checkout.parent) == [checkout.name]


@pytest.mark.parametrize("step", ["staging", "release", "shared", "links", "image", "swap"])
def test_adoption_is_atomic_a_failure_at_any_step_leaves_the_checkout_as_it_was(
        tmp_path, checkout, docker, monkeypatch, step):
    hand_stack(docker)

    def boom(at):
        if at == step:
            raise OSError(28, "No space left on device")

    real = release_unpack.adoption.Adopter

    class Failing(real):
        def __init__(self, *a, **kw):
            super().__init__(*a, hook=boom, **kw)

    monkeypatch.setattr(release_unpack.adoption, "Adopter", Failing)
    before = tree_snapshot(checkout)
    built = make_archive(tmp_path)
    result = run_module(release_unpack, args(checkout, built, env_files=ALL_ENV))
    assert result["failed"] is True and "\n" not in result["msg"]
    assert result["msg"].startswith(f"adopting the hand-managed checkout {checkout} as release "
                                    "zero failed: No space left on device; ")
    assert "is as it was" in result["msg"]
    assert tree_snapshot(checkout) == before
    assert os.listdir(checkout.parent) == [checkout.name]  # no staging, no aside dir
    assert built["archive"].exists()


def test_failed_second_rename_puts_the_checkout_back(tmp_path, checkout, docker, monkeypatch):
    hand_stack(docker)
    real_rename = os.rename
    calls = []

    def rename(src, dst):
        calls.append((str(src), str(dst)))
        if str(dst) == str(checkout) and ".adopting-" in str(src):
            raise OSError(16, "Device or resource busy")
        return real_rename(src, dst)

    real = release_unpack.adoption.Adopter

    class NoExchange(real):
        def __init__(self, *a, **kw):
            super().__init__(*a, exchange=None, **kw)

    monkeypatch.setattr(release_unpack.adoption, "Adopter", NoExchange)
    monkeypatch.setattr(release_unpack.adoption.os, "rename", rename)
    before = tree_snapshot(checkout)
    built = make_archive(tmp_path)
    result = run_module(release_unpack, args(checkout, built))
    assert result["failed"] is True and "Device or resource busy" in result["msg"]
    assert tree_snapshot(checkout) == before
    assert os.listdir(checkout.parent) == [checkout.name]
    assert any(".pre-ansible-" in dst for _src, dst in calls)  # it had moved, and came back


def test_two_rename_fallback_adopts_too(tmp_path, checkout, docker, monkeypatch):
    hand_stack(docker)
    real = release_unpack.adoption.Adopter

    class NoExchange(real):
        def __init__(self, *a, **kw):
            super().__init__(*a, exchange=None, **kw)

    monkeypatch.setattr(release_unpack.adoption, "Adopter", NoExchange)
    built = make_archive(tmp_path)
    result = run_module(release_unpack, args(checkout, built))
    assert "failed" not in result, result.get("msg")
    assert os.readlink(checkout / "current") == f"releases/{result['release_zero']['release_id']}"
    assert ".pre-ansible-" in result["adopted_from"]


def test_second_run_after_adoption_changes_nothing(tmp_path, checkout, docker):
    hand_stack(docker)
    built = make_archive(tmp_path)
    run_module(release_unpack, args(checkout, built, remove_archive=False))
    result = run_module(release_unpack, args(checkout, built))
    assert result["changed"] is False and result["adopted_from"] is None
    assert len([p for p in os.listdir(checkout.parent) if ".pre-ansible-" in p]) == 1


def test_check_mode_reports_would_adopt_and_moves_nothing(tmp_path, checkout, docker):
    built = make_archive(tmp_path)
    before = tree_snapshot(checkout)
    result = run_module(release_unpack, args(checkout, built, env_files=[".env.db"]),
                        check_mode=True)
    assert result["would_adopt"] is True and result["adopted_from"] is None
    assert result["changed"] is True
    assert sorted(result["release_zero"]["env_files"]) == [".env", ".env.aws", ".env.db",
                                                           "config/frontend.env"]
    assert tree_snapshot(checkout) == before
    assert os.listdir(checkout.parent) == [checkout.name]
    assert docker.argvs == []


def test_adopt_false_unpacks_into_the_checkout(tmp_path, checkout):
    built = make_archive(tmp_path)
    result = run_module(release_unpack, args(checkout, built, adopt=False))
    assert result["adopted_from"] is None and result["unpacked"] is True
    assert result["release_zero"] is None
    assert (checkout / "docker-compose.yml").is_file()
    assert (checkout / "releases" / built["release_id"]).is_dir()
    assert any("adopt is false" in w for w in warnings_of(result))


def test_no_adoption_without_checkout_markers(tmp_path, app_root):
    (app_root / "notes.txt").write_text("x")
    built = make_archive(tmp_path)
    result = run_module(release_unpack, args(app_root, built), check_mode=True)
    assert result["would_adopt"] is False
    result = run_module(release_unpack, args(app_root, built))
    assert result["adopted_from"] is None
    assert not [p for p in os.listdir(app_root.parent) if ".pre-ansible-" in p]


def test_bad_archive_fails_before_adopting(tmp_path, checkout):
    built = make_archive(tmp_path)
    result = run_module(release_unpack, args(checkout, built, archive_sha256="0" * 64))
    assert result["failed"] is True and "corrupt or partial" in result["msg"]
    assert (checkout / "docker-compose.yml").is_file()
    assert os.listdir(checkout.parent) == [checkout.name]


def test_archive_inside_the_checkout_is_read_from_the_aside_dir(tmp_path, checkout, docker):
    built = make_archive(tmp_path)
    inside = checkout / "incoming" / "release.tar.gz"
    inside.parent.mkdir()
    built["archive"].rename(inside)
    built["archive"] = inside
    result = run_module(release_unpack, args(checkout, built))
    assert "failed" not in result, result.get("msg")
    assert result["unpacked"] is True and result["archive_removed"] is True
    assert not os.path.exists(os.path.join(result["adopted_from"], "incoming", "release.tar.gz"))


# --------------------------------------------------------------------------- secrets


def test_new_release_gets_secrets_link_when_shared_secrets_exists(tmp_path, app_root):
    built = make_archive(tmp_path)
    result = run_module(release_unpack, args(app_root, built))
    assert result["secrets_linked"] is False
    assert not os.path.lexists(app_root / "releases" / built["release_id"] / "secrets")
    (app_root / "shared" / "secrets").mkdir()
    # An existing, verified release lacking the link gets it (check mode: would).
    result = run_module(release_unpack, args(app_root, built), check_mode=True)
    assert result["changed"] is True and result["secrets_linked"] is True
    assert not os.path.lexists(app_root / "releases" / built["release_id"] / "secrets")
    result = run_module(release_unpack, args(app_root, built))
    assert result["changed"] is True and result["secrets_linked"] is True
    assert result["unpacked"] is False
    link = app_root / "releases" / built["release_id"] / "secrets"
    assert os.readlink(link) == "../../shared/secrets"
    result = run_module(release_unpack, args(app_root, built))
    assert result["changed"] is False and result["secrets_linked"] is False


def test_fresh_unpack_with_shared_secrets_links_them(tmp_path, app_root):
    (app_root / "shared" / "secrets").mkdir()
    built = make_archive(tmp_path)
    result = run_module(release_unpack, args(app_root, built))
    release = app_root / "releases" / built["release_id"]
    assert result["secrets_linked"] is True
    assert os.readlink(release / "secrets") == "../../shared/secrets"
    assert release_unpack.verify_existing(str(release)) == []


def test_compose_override_does_not_break_verification(tmp_path, app_root):
    built = make_archive(tmp_path)
    run_module(release_unpack, args(app_root, built, remove_archive=False))
    release = app_root / "releases" / built["release_id"]
    (release / "docker-compose.deploy.yml").write_text("{}\n")
    result = run_module(release_unpack, args(app_root, built))
    assert result["changed"] is False


def test_archive_shipping_secrets_is_rejected(tmp_path, app_root):
    built = make_archive(tmp_path, extra=[(evil("secrets/key.pem"), b"k")])
    result = run_module(release_unpack, args(app_root, built))
    assert result["failed"] is True and "must not be shipped" in result["msg"]


# --------------------------------------------------------------------------- env sets


def test_release_is_linked_into_its_env_set(tmp_path, app_root):
    name = install_env_set(app_root, {".env": "A=1\n", ".env.aws": "", ".env.db": "",
                                      "config/db.env": ""})
    built = make_archive(tmp_path)
    result = run_module(release_unpack, args(app_root, built, env_set=name, env_files=ALL_ENV))
    assert "failed" not in result, result.get("msg")
    release = app_root / "releases" / built["release_id"]
    assert result["env_set"] == name and result["env_created"] == []
    assert os.readlink(release / ".env") == f"../../shared/env/{name}/.env"
    assert os.readlink(release / "config" / "db.env") == \
        f"../../../shared/env/{name}/config/db.env"
    assert os.readlink(release / "secrets") == "../../shared/secrets"
    assert (release / ".env").read_text() == "A=1\n"
    assert release_model.release_env(str(release)) == name
    assert release_unpack.verify_existing(str(release)) == []
    assert not (app_root / "shared" / ".env").exists()  # nothing written outside the set


def test_an_env_set_lacking_a_file_or_missing_fails_before_unpacking(tmp_path, app_root):
    name = install_env_set(app_root, {".env": "A=1\n"})
    built = make_archive(tmp_path)
    result = run_module(release_unpack, args(app_root, built, env_set=name))
    assert result["failed"] is True and f"env set {name} lacks .env.aws" in result["msg"]
    result = run_module(release_unpack, args(app_root, built, env_set="aaaaaaaaaaaa"))
    assert result["failed"] is True and "env set aaaaaaaaaaaa is missing" in result["msg"]
    result = run_module(release_unpack, args(app_root, built, env_set="../x"))
    assert result["failed"] is True and "env_set must name an env set" in result["msg"]
    assert not (app_root / "releases").exists()


def test_without_env_set_no_link_is_made(tmp_path, app_root):
    built = make_archive(tmp_path)
    result = run_module(release_unpack, args(app_root, built, env_set=""))
    assert "failed" not in result, result.get("msg")
    release = app_root / "releases" / built["release_id"]
    assert result["env_linked"] == [] and result["env_set"] is None
    assert not os.path.lexists(release / ".env")
    assert os.listdir(app_root / "shared") == []
