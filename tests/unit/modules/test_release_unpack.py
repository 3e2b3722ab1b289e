"""Tests of the release_unpack module, for real on tmp_path with real tar.gz archives."""

from __future__ import annotations

import grp
import os
import pwd
import tarfile

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
