"""adoption: the hand-managed checkout as release zero, built beside app_root and swapped in."""

from __future__ import annotations

import errno
import json
import os
from datetime import datetime, timezone

import pytest
from ansible_collections.atp.deploy.plugins.module_utils import adoption, docker_cmd, release_plan
from ansible_collections.atp.deploy.plugins.module_utils.release_manifest import (
    MANIFEST_NAME,
    content_hash,
    verify_tree,
)

SHA = "89abcdef0123456789abcdef0123456789abcdef"
NOW = datetime(2026, 11, 24, 10, 15, 0, tzinfo=timezone.utc)  # noqa: UP017
NEXT = "20261124T101400Z-0123456789ab"


@pytest.fixture
def checkout(tmp_path):
    root = tmp_path / "hand" / "automated-trading-platform"
    files = {
        "docker-compose.yml": "services:\n  db:\n    env_file: [.env, .env.db]\n",
        "backend/app/main.py": "app = 1\n",
        "backend/app/__pycache__/x.pyc": "",
        "frontend/node_modules/dep/index.js": "",
        ".git/HEAD": "ref: refs/heads/main\n",
        ".git/packed-refs": f"# pack-refs\n{SHA} refs/heads/main\n",
        ".env": "A=1\n", ".env.db": "P=2\n", ".env.bak": "OLD=1\n", ".env.example": "A=\n",
        "secrets/key.pem": "k", "notes.swp": "", ".deploy.lock": "{}",
    }
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    (root / "link-to-main").symlink_to("backend/app/main.py")
    return root


def test_select_files_leaves_out_git_caches_env_files_secrets_and_the_lock(checkout):
    files, links, dirs = adoption.select_files(str(checkout), {".env.db"})
    assert files == [".env.example", "backend/app/main.py", "docker-compose.yml"]
    assert links == ["link-to-main"]
    assert sorted(dirs) == ["backend", "backend/app", "frontend"]
    assert dirs.index("backend") < dirs.index("backend/app")  # parents are made first


def test_carried_env_files_come_from_defaults_the_controller_and_the_checkouts_compose(checkout):
    (checkout / "config").mkdir()
    (checkout / "config" / "x.env").write_text("")
    carried = adoption.carried_env_files(str(checkout), ["config/x.env", "missing.env",
                                                         "/abs.env", "secrets/y.env"])
    assert carried == [".env", "config/x.env", ".env.db"]


def test_read_git_sha_loose_packed_detached_and_none(checkout, tmp_path):
    assert adoption.read_git_sha(str(checkout)) == SHA
    (checkout / ".git" / "refs" / "heads").mkdir(parents=True)
    other = "f" * 40
    (checkout / ".git" / "refs" / "heads" / "main").write_text(other + "\n")
    assert adoption.read_git_sha(str(checkout)) == other
    (checkout / ".git" / "HEAD").write_text(SHA + "\n")
    assert adoption.read_git_sha(str(checkout)) == SHA
    assert adoption.read_git_sha(str(tmp_path / "nowhere")) is None


def test_release_zero_tag_command():
    ref = "repo:20261124T101459Z-0123456789ab"
    assert docker_cmd.tag("sha256:abc", ref, "/usr/bin/docker") == [
        "/usr/bin/docker", "tag", "sha256:abc", ref]


def test_release_zero_sorts_before_the_release_being_deployed():
    assert release_plan.release_zero_stamp(NOW, NEXT) == "20261124T101359Z"
    assert release_plan.release_zero_stamp(NOW, "20261125T000000Z-0123456789ab") == \
        "20261124T101500Z"
    assert release_plan.release_zero_stamp(NOW.replace(tzinfo=None)) == "20261124T101500Z"


def test_zero_record_is_a_good_release():
    record = adoption.zero_record("Z", "c" * 64, None, None, "/aside", "t")
    assert record["result"] == "ok" and record["event"] == "adopted"
    assert record["git_sha"] == "unknown" and record["image_id"] == "unknown"


# --------------------------------------------------------------------------- swap


@pytest.fixture
def dirs(tmp_path):
    staging, root = tmp_path / "app.adopting-x", tmp_path / "app"
    staging.mkdir()
    root.mkdir()
    (staging / "new").write_text("")
    (root / "old").write_text("")
    return staging, root, tmp_path / "app.pre-ansible-x"


def test_swap_with_the_atomic_exchange(dirs):
    staging, root, aside = dirs
    assert adoption.swap_in(str(staging), str(root), str(aside)) == str(aside)
    assert os.listdir(root) == ["new"] and os.listdir(aside) == ["old"]
    assert not staging.exists()


def test_swap_falls_back_to_two_renames_when_the_exchange_is_unsupported(dirs):
    staging, root, aside = dirs

    def unsupported(_src, _dst):
        raise OSError(errno.EINVAL, "Invalid argument")

    assert adoption.swap_in(str(staging), str(root), str(aside), unsupported) == str(aside)
    assert os.listdir(root) == ["new"] and os.listdir(aside) == ["old"]


def test_swap_fallback_puts_the_checkout_back_when_the_second_rename_fails(dirs, monkeypatch):
    staging, root, aside = dirs
    real = os.rename

    def rename(src, dst):
        if str(src) == str(staging):
            raise OSError(errno.EBUSY, "busy")
        return real(src, dst)

    monkeypatch.setattr(adoption.os, "rename", rename)
    with pytest.raises(OSError, match="busy"):
        adoption.swap_in(str(staging), str(root), str(aside), None)
    assert os.listdir(root) == ["old"] and not aside.exists()


def test_swap_exchange_failing_for_another_reason_moves_nothing(dirs):
    staging, root, aside = dirs

    def denied(_src, _dst):
        raise OSError(errno.EACCES, "Permission denied")

    with pytest.raises(OSError, match="Permission denied"):
        adoption.swap_in(str(staging), str(root), str(aside), denied)
    assert os.listdir(root) == ["old"] and os.listdir(staging) == ["new"]


# --------------------------------------------------------------------------- Adopter


def adopter(checkout, tagger=lambda _ref: "sha256:hand", **kw):
    return adoption.Adopter(str(checkout), os.getuid(), os.getgid(), [".env.aws"], "repo",
                            tagger, next_release_id=NEXT, now=NOW, **kw)


def test_adopter_builds_release_zero(checkout):
    tags = []
    result = adopter(checkout, tagger=lambda ref: tags.append(ref) or "sha256:hand").run()
    zid = result["release_id"]
    assert zid.startswith("20261124T101359Z-") and result["adopted_from"].endswith(
        ".pre-ansible-20261124T101500Z")
    assert tags == [f"repo:{zid}"] and result["image"] == f"repo:{zid}"
    zero = checkout / "releases" / zid
    manifest = json.loads((zero / MANIFEST_NAME).read_text())
    assert content_hash(manifest)[:12] == zid[-12:]
    assert verify_tree(str(zero), manifest, (MANIFEST_NAME, ".env", ".env.aws", ".env.db",
                                             "secrets", "link-to-main")) == []
    assert result["env_files"] == [".env", ".env.db"] and result["env_created"] == [".env.aws"]
    assert os.readlink(zero / ".env.aws") == "../../shared/.env.aws"
    assert (zero / "secrets" / "key.pem").read_text() == "k"
    assert result["git_sha"] == SHA and result["secrets"] is True


def test_a_stale_staging_dir_of_a_dead_run_is_removed_first(checkout):
    stale = checkout.parent / (checkout.name + ".adopting-20261124T101500Z")
    stale.mkdir()
    (stale / "junk").write_text("")
    adopter(checkout).run()
    assert not stale.exists() or not (stale / "junk").exists()
    assert (checkout / "current").is_symlink()


def test_not_enough_disk_fails_before_anything(checkout, monkeypatch):
    monkeypatch.setattr(adoption.fsutil, "free_mb", lambda _p: 1)
    with pytest.raises(adoption.AdoptionError, match="release zero needs about"):
        adopter(checkout).run()
    assert sorted(os.listdir(checkout.parent)) == [checkout.name]
