"""Tests of module_utils/safe_tar.py (safe extraction of release archives)."""

from __future__ import annotations

import io
import json
import os
import tarfile
from pathlib import Path

import pytest
from ansible_collections.atp.deploy.plugins.module_utils import safe_tar
from ansible_collections.atp.deploy.plugins.module_utils.release_manifest import (
    MANIFEST_NAME,
    build_manifest,
    verify_tree,
)


def info(name: str, kind: bytes = tarfile.REGTYPE, size: int = 0,
         link: str = "") -> tarfile.TarInfo:
    member = tarfile.TarInfo(name)
    member.type = kind
    member.size = size
    member.linkname = link
    member.mode = 0o644
    return member


def make_tree(root: Path) -> list[str]:
    (root / "app").mkdir(parents=True)
    (root / "app" / "main.py").write_text("print('hi')\n")
    (root / "run.sh").write_text("#!/bin/sh\n")
    (root / "run.sh").chmod(0o755)
    (root / "docker-compose.yml").write_text("services: {}\n")
    return ["app/main.py", "run.sh", "docker-compose.yml"]


def write_archive(path: Path, members: list[tuple[tarfile.TarInfo, bytes | None]]) -> Path:
    with tarfile.open(path, "w:gz") as tar:
        for member, data in members:
            if data is not None:
                member.size = len(data)
                tar.addfile(member, io.BytesIO(data))
            else:
                tar.addfile(member)
    return path


def release_archive(tmp_path: Path, extra=(), manifest_first: bool = True) -> tuple[Path, dict]:
    src = tmp_path / "src"
    rels = make_tree(src)
    manifest = build_manifest(str(src), rels)
    manifest_bytes = json.dumps(manifest).encode()
    members = [(info(MANIFEST_NAME), manifest_bytes)]
    for rel in rels:
        data = (src / rel).read_bytes()
        member = info(rel)
        member.mode = os.stat(src / rel).st_mode & 0o777
        members.append((member, data))
    members += list(extra)
    if not manifest_first:
        members.append(members.pop(0))
    return write_archive(tmp_path / "release.tar.gz", members), manifest


@pytest.mark.parametrize(("member", "fragment"), [
    (info("/etc/passwd"), "absolute path"),
    (info("../escape"), "escapes"),
    (info("app/../../escape"), "escapes"),
    (info("link", tarfile.SYMTYPE, link="/etc"), "link member"),
    (info("hard", tarfile.LNKTYPE, link="app/main.py"), "link member"),
    (info("dev", tarfile.CHRTYPE), "device"),
    (info("blk", tarfile.BLKTYPE), "device"),
    (info("fifo", tarfile.FIFOTYPE), "fifo"),
    (info("C:\\x"), "absolute path"),
    (info("a\\b"), "unsafe characters"),
    (info("a//b"), "non-canonical"),
])
def test_member_problem_rejects(member, fragment):
    assert fragment in safe_tar.member_problem(member)


@pytest.mark.parametrize("name", ["app/main.py", "./app/main.py", ".env.example", "a/b/c"])
def test_member_problem_accepts_plain_files(name):
    assert safe_tar.member_problem(info(name)) is None


def test_member_problem_accepts_dirs():
    assert safe_tar.member_problem(info("app/", tarfile.DIRTYPE)) is None
    assert safe_tar.member_problem(info(".", tarfile.DIRTYPE)) is None


def test_normalize_name():
    assert safe_tar.normalize_name("./././a/b/") == "a/b"


def test_extract_release_roundtrip_verifies(tmp_path):
    archive, manifest = release_archive(tmp_path)
    dest = tmp_path / "out"
    dest.mkdir()
    got = safe_tar.extract_release(str(archive), str(dest))
    assert got == manifest
    assert verify_tree(str(dest), manifest) == []
    assert (dest / MANIFEST_NAME).is_file()
    assert os.stat(dest / "run.sh").st_mode & 0o777 == 0o755


@pytest.mark.parametrize(("extra", "fragment"), [
    ((info("evil", tarfile.SYMTYPE, link="/etc/passwd"), None), "link member"),
    ((info("../../outside"), b"x"), "escapes"),
    ((info("/tmp/abs"), b"x"), "absolute path"),
    ((info("dev", tarfile.CHRTYPE), None), "device"),
    ((info(".env"), b"SECRET=1\n"), "must not be shipped"),
    ((info("app/main.py"), b"dup"), "duplicate member"),
    ((info(MANIFEST_NAME), b"{}"), "second"),
])
def test_extract_release_rejects(tmp_path, extra, fragment):
    archive, _ = release_archive(tmp_path, extra=[extra])
    dest = tmp_path / "out"
    dest.mkdir()
    with pytest.raises(safe_tar.UnsafeArchive, match=fragment):
        safe_tar.extract_release(str(archive), str(dest), forbidden=(".env", ".env.aws"))
    assert not (tmp_path / "outside").exists()


def test_extract_release_manifest_must_be_first(tmp_path):
    archive, _ = release_archive(tmp_path, manifest_first=False)
    dest = tmp_path / "out"
    dest.mkdir()
    with pytest.raises(safe_tar.UnsafeArchive, match="first member"):
        safe_tar.extract_release(str(archive), str(dest))


def test_extract_release_bad_manifest_and_bad_gzip(tmp_path):
    archive = write_archive(tmp_path / "a.tar.gz", [(info(MANIFEST_NAME), b"not json")])
    dest = tmp_path / "out"
    dest.mkdir()
    with pytest.raises(safe_tar.UnsafeArchive, match="not valid JSON"):
        safe_tar.extract_release(str(archive), str(dest))
    unsafe = json.dumps({"format": 1, "files": {"../x": {}}}).encode()
    archive = write_archive(tmp_path / "b.tar.gz", [(info(MANIFEST_NAME), unsafe)])
    with pytest.raises(safe_tar.UnsafeArchive, match="unsafe path"):
        safe_tar.extract_release(str(archive), str(tmp_path / "out2"))
    junk = tmp_path / "junk.tar.gz"
    junk.write_bytes(b"this is not gzip")
    with pytest.raises(safe_tar.UnsafeArchive, match=r"not a readable tar\.gz"):
        safe_tar.extract_release(str(junk), str(dest))
    empty = write_archive(tmp_path / "empty.tar.gz", [])
    with pytest.raises(safe_tar.UnsafeArchive, match="empty"):
        safe_tar.extract_release(str(empty), str(dest))
