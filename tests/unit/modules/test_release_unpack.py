"""Tests of the release_unpack module, for real on tmp_path with real tar.gz archives."""

from __future__ import annotations

import grp
import os
import pwd
import tarfile
from pathlib import Path

import pytest
from ansible_collections.atp.deploy.plugins.module_utils.release_manifest import (
    MANIFEST_NAME,
    verify_tree,
)
from ansible_collections.atp.deploy.plugins.modules import release_unpack

from .module_runner import (
    APP_FILES,
    doc_spec_problems,
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
    return {
        "app_root": str(app_root),
        "archive": str(built["archive"]),
        "archive_sha256": built["sha256"],
        "release_id": built["release_id"],
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


def test_release_id_must_match_archive_content(tmp_path, app_root):
    built = make_archive(tmp_path)
    wrong = built["release_id"][:-12] + "ffffffffffff"
    result = run_module(release_unpack, args(app_root, built, release_id=wrong))
    assert result["failed"] is True and "do not belong together" in result["msg"]
    assert os.listdir(app_root / "releases") == []


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


# --------------------------------------------------------------------------- adoption + secrets


@pytest.fixture
def checkout(tmp_path):
    """A hand-managed checkout: a git clone with the operator's .env, .env.aws and secrets/."""
    root = tmp_path / "hand" / "automated-trading-platform"
    (root / ".git").mkdir(parents=True)
    (root / ".git" / "HEAD").write_text("ref: refs/heads/main\n")
    (root / "docker-compose.yml").write_text("services: {}\n")
    (root / ".env").write_text("HAND_MANAGED=1\n")
    (root / ".env").chmod(0o600)
    (root / ".env.aws").write_text("CRYPTOCOM_API_KEY=hand-key\n")
    (root / ".env.aws").chmod(0o640)
    (root / "secrets" / "sub").mkdir(parents=True)
    (root / "secrets" / "exchange.pem").write_text("-----BEGIN FAKE-----\n")
    (root / "secrets" / "exchange.pem").chmod(0o600)
    (root / "secrets" / "sub" / "x").write_text("x")
    (root / "secrets").chmod(0o700)
    root.chmod(0o750)
    (root / ".deploy.lock").write_text('{"token": "tok-mine"}')
    return root


def test_hand_managed_checkout_is_adopted(tmp_path, checkout):
    built = make_archive(tmp_path)
    result = run_module(release_unpack, args(checkout, built))
    assert "failed" not in result, result.get("msg")
    aside = result["adopted_from"]
    assert aside.startswith(f"{checkout}.pre-ansible-") and aside[-1] == "Z"
    assert any(w == f"adopted the hand-managed checkout: kept it aside at {aside} (its .env, "
               ".env.aws, secrets/ copied to shared/)" for w in warnings_of(result))
    # Nothing deleted: the old checkout is whole in the aside dir.
    kept = os.listdir(aside)
    assert {".git", "docker-compose.yml", ".env", ".env.aws", "secrets"} <= set(kept)
    assert Path(aside, ".env").read_text() == "HAND_MANAGED=1\n"
    # A fresh managed app_root, same mode and owner as the old one.
    assert os.stat(checkout).st_mode & 0o777 == 0o750
    assert sorted(os.listdir(checkout)) == [".deploy.lock", "releases", "shared"]
    shared = checkout / "shared"
    assert os.stat(shared).st_mode & 0o777 == 0o750
    assert (shared / ".env").read_text() == "HAND_MANAGED=1\n"
    assert os.stat(shared / ".env").st_mode & 0o777 == 0o600
    assert os.stat(shared / ".env.aws").st_mode & 0o777 == 0o640
    assert (shared / "secrets" / "exchange.pem").read_text() == "-----BEGIN FAKE-----\n"
    assert os.stat(shared / "secrets" / "exchange.pem").st_mode & 0o777 == 0o600
    assert os.stat(shared / "secrets").st_mode & 0o777 == 0o700
    assert (shared / "secrets" / "sub" / "x").is_file()
    # The release is unpacked in the new layout and sees the secrets through its link.
    release = checkout / "releases" / built["release_id"]
    assert os.readlink(release / "secrets") == "../../shared/secrets"
    assert (release / "secrets" / "exchange.pem").is_file()
    assert (release / ".env").read_text() == "HAND_MANAGED=1\n"
    assert result["secrets_linked"] is True and result["unpacked"] is True
    assert verify_tree(str(release), built["manifest"],
                       (*release_unpack.DEFAULT_VERIFY_IGNORE, "secrets")) == []
    # Our deploy lock moved along with the run.
    assert (checkout / ".deploy.lock").read_text() == '{"token": "tok-mine"}'


def test_second_run_after_adoption_changes_nothing(tmp_path, checkout):
    built = make_archive(tmp_path)
    run_module(release_unpack, args(checkout, built, remove_archive=False))
    result = run_module(release_unpack, args(checkout, built))
    assert result["changed"] is False and result["adopted_from"] is None
    assert len([p for p in os.listdir(checkout.parent) if ".pre-ansible-" in p]) == 1


def test_check_mode_reports_would_adopt_and_moves_nothing(tmp_path, checkout):
    built = make_archive(tmp_path)
    before = sorted(os.listdir(checkout))
    result = run_module(release_unpack, args(checkout, built), check_mode=True)
    assert result["would_adopt"] is True and result["adopted_from"] is None
    assert result["changed"] is True
    assert sorted(os.listdir(checkout)) == before
    assert os.listdir(checkout.parent) == [checkout.name]


def test_adopt_false_unpacks_into_the_checkout(tmp_path, checkout):
    built = make_archive(tmp_path)
    result = run_module(release_unpack, args(checkout, built, adopt=False))
    assert result["adopted_from"] is None and result["unpacked"] is True
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


def test_archive_inside_the_checkout_is_read_from_the_aside_dir(tmp_path, checkout):
    built = make_archive(tmp_path)
    inside = checkout / "incoming" / "release.tar.gz"
    inside.parent.mkdir()
    built["archive"].rename(inside)
    built["archive"] = inside
    result = run_module(release_unpack, args(checkout, built))
    assert "failed" not in result, result.get("msg")
    assert result["unpacked"] is True and result["archive_removed"] is True
    assert not os.path.exists(os.path.join(result["adopted_from"], "incoming", "release.tar.gz"))


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


def test_failed_adoption_deletes_nothing(tmp_path, checkout, monkeypatch):
    def no_space(*_args, **_kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(release_unpack.shutil, "copytree", no_space)
    built = make_archive(tmp_path)
    result = run_module(release_unpack, args(checkout, built))
    assert result["failed"] is True and "\n" not in result["msg"]
    assert result["msg"].startswith(f"adopting the hand-managed checkout {checkout} failed: "
                                    "No space left on device; ")
    assert "nothing was deleted" in result["msg"]
    aside = [p for p in os.listdir(checkout.parent) if ".pre-ansible-" in p]
    assert len(aside) == 1
    kept = checkout.parent / aside[0]
    assert (kept / "secrets" / "exchange.pem").is_file() and (kept / ".env").is_file()
    assert built["archive"].exists()
