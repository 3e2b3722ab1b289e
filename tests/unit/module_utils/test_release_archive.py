"""Tests for release_archive: file selection and deterministic archives."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import tarfile
from pathlib import Path

import pytest
from ansible_collections.atp.deploy.plugins.module_utils import release_archive as ra
from ansible_collections.atp.deploy.plugins.module_utils import release_manifest as rm

from .tree_files import write_file


@pytest.fixture
def src(tmp_path: Path) -> Path:
    root = tmp_path / "src"
    write_file(root, "docker-compose.yml", b"services: {}\n")
    write_file(root, "backend/app/main.py", b"app = None\n")
    write_file(root, "backend/app/api/routes_portfolio.py", b"router = None\n")
    write_file(root, "backend/run.sh", b"#!/bin/sh\nexec uvicorn\n", 0o755)
    write_file(root, ".env.example", b"EXCHANGE_CUSTOM_API_KEY=\n")
    write_file(root, ".env", b"EXCHANGE_CUSTOM_API_KEY=secret\n")
    write_file(root, ".env.prod", b"X=1\n")
    write_file(root, "backend/app/__pycache__/main.cpython-311.pyc", b"\0")
    write_file(root, "backend/app/api/old.pyc", b"\0")
    write_file(root, "backend/.venv/bin/python", b"")
    write_file(root, "frontend/node_modules/x/index.js", b"")
    write_file(root, "secrets/key.pem", b"KEY")
    write_file(root, "backend/.main.py.swp", b"")
    write_file(root, ".DS_Store", b"")
    return root


SHIPPED = [
    ".env.example",
    "backend/app/api/routes_portfolio.py",
    "backend/app/main.py",
    "backend/run.sh",
    "docker-compose.yml",
]


@pytest.mark.parametrize(
    ("rel", "excluded"),
    [
        (".env", True),
        (".env.aws", True),
        ("backend/.env.local", True),
        (".env.example", False),
        ("backend/.env.production.example", False),
        ("a/__pycache__/b.py", True),
        ("a/b.pyc", True),
        ("secrets/x", True),
        ("app/secrets.py", False),
        (".git/config", True),
        ("x.swp", True),
        ("venv/lib/x.py", True),
        ("backend/app/main.py", False),
    ],
)
def test_is_excluded(rel: str, excluded: bool) -> None:
    assert ra.is_excluded(rel) is excluded


def test_example_kept_unless_pattern_targets_it() -> None:
    assert ra.is_excluded("x.example", ("*.example",))
    assert ra.is_excluded(".env.example", (".env.example",))


def test_select_files_walk(src: Path) -> None:
    assert ra.select_files(str(src)) == SHIPPED


def test_select_files_custom_excludes(src: Path) -> None:
    selected = ra.select_files(str(src), excludes=["*.pyc", "__pycache__"])
    assert "backend/app/api/old.pyc" not in selected
    assert "backend/.venv/bin/python" in selected  # noise only when excluded
    # secrets are left out whatever the excludes say
    assert not {".env", ".env.prod", "secrets/key.pem"} & set(selected)


def test_select_files_git(src: Path, git) -> None:
    git(src, "init", "-q")
    (src / ".gitignore").write_text("ignored.txt\nbuild/\n")
    write_file(src, "ignored.txt")
    write_file(src, "build/out.py")
    write_file(src, "backend/app/gone.py")
    git(src, "add", ".gitignore", "docker-compose.yml", "backend/app/main.py")
    git(src, "add", "backend/app/gone.py")
    git(src, "add", "-f", ".env")  # tracked by mistake: still never shipped
    git(src, "commit", "-qm", "init")
    (src / "backend/app/gone.py").unlink()  # tracked, deleted in the work tree
    selected = ra.select_files(str(src))
    assert selected == sorted([*SHIPPED, ".gitignore"])


def test_select_files_git_subdir_root(tmp_path: Path, git) -> None:
    repo = tmp_path / "repo"
    write_file(repo, "outside.txt")
    write_file(repo, "app/docker-compose.yml")
    write_file(repo, "app/backend/app/main.py")
    git(repo, "init", "-q")
    git(repo, "add", ".")
    git(repo, "commit", "-qm", "init")
    write_file(repo, "app/backend/new.py")
    assert ra.select_files(str(repo / "app")) == [
        "backend/app/main.py",
        "backend/new.py",
        "docker-compose.yml",
    ]


def test_select_files_nested_repo(tmp_path: Path, git) -> None:
    outer = tmp_path / "outer"
    write_file(outer, "docker-compose.yml")
    git(outer, "init", "-q")
    inner = outer / "backend"
    write_file(inner, "app/main.py")
    write_file(inner, "ignored.log")
    (inner / ".gitignore").write_text("*.log\n")
    git(inner, "init", "-q")
    assert ra.select_files(str(outer)) == [
        "backend/.gitignore",
        "backend/app/main.py",
        "docker-compose.yml",
    ]


def test_symlink_outside_refused(src: Path, tmp_path: Path) -> None:
    write_file(tmp_path, "elsewhere.py")
    (src / "backend/app/linked.py").symlink_to(tmp_path / "elsewhere.py")
    with pytest.raises(ra.ReleaseArchiveError, match=r"symlink backend/app/linked\.py points "
                       r"outside the source tree"):
        ra.select_files(str(src))


def test_symlink_dotdot_escape_refused(src: Path, tmp_path: Path) -> None:
    write_file(tmp_path, "elsewhere.py")
    (src / "backend/esc.py").symlink_to("../../elsewhere.py")
    with pytest.raises(ra.ReleaseArchiveError, match=r"backend/esc\.py"):
        ra.select_files(str(src))


def test_symlink_inside_archived_as_regular_file(src: Path, tmp_path: Path) -> None:
    (src / "backend/app/alias.py").symlink_to("main.py")
    selected = ra.select_files(str(src))
    assert "backend/app/alias.py" in selected
    out = ra.build_archive(str(src), selected, str(tmp_path / "out" / "a.tar.gz"))
    with tarfile.open(out["path"]) as tar:
        member = tar.getmember("backend/app/alias.py")
        assert member.isreg()
        assert tar.extractfile(member).read() == b"app = None\n"


@pytest.mark.parametrize(
    ("target", "message"),
    [("backend/app", "points to a directory"), ("nowhere", "is broken"),
     (".env", "points to excluded file .env")],
)
def test_symlink_refusals(src: Path, target: str, message: str) -> None:
    (src / "link").symlink_to(src / target)
    with pytest.raises(ra.ReleaseArchiveError, match=message) as info:
        ra.select_files(str(src))
    assert "symlink link " in str(info.value)


def test_select_files_missing_root(tmp_path: Path) -> None:
    with pytest.raises(ra.ReleaseArchiveError, match="does not exist"):
        ra.select_files(str(tmp_path / "missing"))


def test_stale_manifest_in_source_is_not_shipped(src: Path) -> None:
    write_file(src, rm.MANIFEST_NAME, b"{}")
    assert rm.MANIFEST_NAME not in ra.select_files(str(src))


# --------------------------------------------------------------------------- archive


def _build(src: Path, dest: Path) -> dict:
    return ra.build_archive(str(src), ra.select_files(str(src)), str(dest))


def test_archive_deterministic(src: Path, tmp_path: Path) -> None:
    first = _build(src, tmp_path / "a" / "x.tar.gz")
    for path in src.rglob("*"):
        os.utime(path, (1_700_000_000, 1_700_000_000))
    second = _build(src, tmp_path / "b" / "x.tar.gz")
    assert Path(first["path"]).read_bytes() == Path(second["path"]).read_bytes()
    assert first["sha256"] == second["sha256"]
    assert first["content_hash"] == second["content_hash"]


def test_archive_changes_with_content(src: Path, tmp_path: Path) -> None:
    first = _build(src, tmp_path / "a.tar.gz")
    (src / "docker-compose.yml").write_bytes(b"services: {api: {}}\n")
    second = _build(src, tmp_path / "b.tar.gz")
    assert first["sha256"] != second["sha256"]
    assert first["content_hash"] != second["content_hash"]


def test_archive_layout(src: Path, tmp_path: Path) -> None:
    result = _build(src, tmp_path / "out.tar.gz")
    data = Path(result["path"]).read_bytes()
    assert result["sha256"] == hashlib.sha256(data).hexdigest()
    assert result["size"] == len(data)
    assert result["file_count"] == len(SHIPPED)
    assert result["reused"] is False
    assert data[3] & 0x08 == 0  # gzip FNAME flag unset
    assert data[4:8] == b"\0\0\0\0"  # gzip mtime 0
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        members = tar.getmembers()
        assert [m.name for m in members] == [rm.MANIFEST_NAME, *SHIPPED]
        for member in members:
            assert member.isreg()
            assert (member.mtime, member.uid, member.gid) == (946684800, 0, 0)
            assert (member.uname, member.gname) == ("root", "root")
        assert tar.getmember("backend/run.sh").mode == 0o755
        assert tar.getmember("docker-compose.yml").mode == 0o644
        raw_manifest = tar.extractfile(rm.MANIFEST_NAME).read()
    manifest = json.loads(raw_manifest)
    assert raw_manifest == (json.dumps(manifest, sort_keys=True, indent=1) + "\n").encode()
    assert manifest == rm.build_manifest(str(src), SHIPPED)
    assert rm.content_hash(manifest) == result["content_hash"]


def test_archive_extracts_and_verifies(src: Path, tmp_path: Path) -> None:
    result = _build(src, tmp_path / "out.tar.gz")
    dest = tmp_path / "release"
    with tarfile.open(result["path"]) as tar:
        tar.extractall(dest, filter="data")
    manifest = json.loads((dest / rm.MANIFEST_NAME).read_text())
    assert rm.verify_tree(str(dest), manifest) == []


def test_archive_reused_and_no_temp_left(src: Path, tmp_path: Path) -> None:
    dest = tmp_path / "cache" / "x.tar.gz"
    first = _build(src, dest)
    inode = dest.stat().st_ino
    second = _build(src, dest)
    assert second["reused"] is True
    assert dest.stat().st_ino == inode
    assert first["sha256"] == second["sha256"]
    assert sorted(p.name for p in dest.parent.iterdir()) == ["x.tar.gz"]


def test_archive_replaces_corrupt_cache(src: Path, tmp_path: Path) -> None:
    dest = tmp_path / "x.tar.gz"
    dest.write_bytes(b"garbage")
    result = _build(src, dest)
    assert result["reused"] is False
    assert hashlib.sha256(dest.read_bytes()).hexdigest() == result["sha256"]


def test_archive_detects_change_after_manifest(src: Path, tmp_path: Path) -> None:
    files = ra.select_files(str(src))
    manifest = rm.build_manifest(str(src), files)
    (src / "docker-compose.yml").write_bytes(b"services: {}\r")  # same size, new content
    with pytest.raises(ra.ReleaseArchiveError, match=r"docker-compose\.yml changed"):
        ra.build_archive(str(src), files, str(tmp_path / "x.tar.gz"), manifest=manifest)
    assert list(tmp_path.glob("*.tar.gz")) == []


@pytest.mark.parametrize("bad", ["../etc/passwd", "/etc/passwd", "a/./b", rm.MANIFEST_NAME])
def test_archive_rejects_unsafe_paths(src: Path, tmp_path: Path, bad: str) -> None:
    with pytest.raises(ra.ReleaseArchiveError):
        ra.build_archive(str(src), [bad], str(tmp_path / "x.tar.gz"))


def test_archive_rejects_missing_file(src: Path, tmp_path: Path) -> None:
    with pytest.raises(ra.ReleaseArchiveError, match=r"nope\.py does not exist"):
        ra.build_archive(str(src), ["nope.py"], str(tmp_path / "x.tar.gz"))


def test_gzip_stream_is_plain(src: Path, tmp_path: Path) -> None:
    result = _build(src, tmp_path / "out.tar.gz")
    with gzip.open(result["path"]) as handle:
        assert handle.read(512)[:len(rm.MANIFEST_NAME)] == rm.MANIFEST_NAME.encode()


# --------------------------------------------------------------------------- secret files

SECRET_PATHS = [
    ".env", ".env.aws", ".env.bak", ".env.bak.20250101", ".env.local.bak2", "backend/.env.db",
    ".envrc", "deploy/.envrc.local",
    ".aws/credentials", ".aws/config", "ops/.ssh/config", ".ssh/known_hosts", ".gnupg/x",
    "secrets/db_password.txt", "backend/.secrets/token",
    "id_rsa", "keys/id_ed25519", "id_ecdsa", "id_dsa", "id_rsa.bak", "deploy/id_ed25519_deploy",
    "id_rsa-old",
    "server.pem", "certs/tls.key", "client.p12", "client.pfx", "app.jks", "release.keystore",
    "putty.ppk", "passwords.kdbx",
    ".netrc", "_netrc", ".git-credentials", "frontend/.npmrc", ".pypirc", ".pgpass",
    "nginx/.htpasswd", ".dockercfg",
    "credentials.json", "config/credentials.json", "client_secret_123.apps.json",
    "service-account.json", "service-account-prod.json", "gcp-service-account.json",
    "gcp_service_account.json", "infra/terraform.tfstate", "infra/terraform.tfstate.backup",
    # case does not hide a secret
    "ID_RSA", "Server.PEM", ".ENV", "Credentials.json",
    # docker client credentials, backup copies of keys
    ".docker/config.json", "ci/.docker/config.json", ".docker/config.json.bak",
    ".dockercfg.old", ".DOCKER/Config.json",
    "server.pem.bak", "certs/tls.key.old", "certs/tls.key.20250101", "tls.key~", "server.pem~",
    "id_rsa.old", "id_ed25519.bak", "id_rsa~", "keys/id_ecdsa.orig",
    ".pgpass", "deploy/.pgpass", ".env.production.local", "backend/.env.aws.bak",
]
NOT_SECRETS = [
    ".env.example", ".env.aws.example", "backend/.env.local.example", "id_rsa.pub",
    "keys/id_ed25519.pub", "deploy/id_ed25519_deploy.pub", "app/secrets.py", "app/api/keys.py",
    "app/api/routes_key.py", "keyboard.py", "docs/ssh.md", "certs/ca.crt", "credentials.py",
    "app/services/credential_resolver.py", "environment.py", "envs/prod.yml", "tls/README",
    "monkey.json", "service.json", "app/.environment", "frontend/public/keys.svg",
    # a .docker/ directory of build files is shipped, only the client config is a secret
    ".docker/Dockerfile", ".docker/nginx/default.conf", "docker/config.json", "config.json",
    "app/.docker.py", "tls.key.pub", "server.pem.pub", "server.pem.example", "tls.key.example",
    "id_rsa.old.pub", "keys.json", "keyring.py", "docs/pem.md",
    # a name with .key./.pem. in it is code or docs unless the suffix is a backup's
    "i18n.key.json", "app/cache.key.py", "certs/tls.pem.md",
]


@pytest.mark.parametrize("rel", SECRET_PATHS)
def test_secret_paths(rel: str) -> None:
    assert ra.is_secret(rel)
    assert ra.is_excluded(rel, ())  # whatever the excludes


@pytest.mark.parametrize("rel", NOT_SECRETS)
def test_not_secret_paths(rel: str) -> None:
    assert not ra.is_secret(rel)


def _secret_tree(root: Path) -> None:
    for rel in [*SECRET_PATHS[:20], "infra/terraform.tfstate", "id_rsa.pub"]:
        write_file(root, rel, b"SECRET-CONTENT")


def test_secrets_left_out_and_named_outside_git(src: Path) -> None:
    _secret_tree(src)
    selection = ra.select_release(str(src), excludes=())
    assert not set(selection.files) & set(SECRET_PATHS)
    assert "id_rsa.pub" in selection.files
    assert {".aws/credentials", ".aws/config", "ops/.ssh/config", "secrets/key.pem",
            ".env", ".envrc", "infra/terraform.tfstate"} <= set(selection.secrets)
    assert selection.secrets == sorted(selection.secrets)


def test_docker_client_config_and_key_backups_left_out(src: Path) -> None:
    for rel in (".docker/config.json", ".docker/Dockerfile", "certs/tls.key.bak",
                "certs/tls.key.pub", "id_rsa~"):
        write_file(src, rel, b"CONTENT")
    selection = ra.select_release(str(src))
    assert {".docker/config.json", "certs/tls.key.bak", "id_rsa~"} <= set(selection.secrets)
    assert {".docker/Dockerfile", "certs/tls.key.pub"} <= set(selection.files)
    assert not {".docker/config.json", "certs/tls.key.bak", "id_rsa~"} & set(selection.files)


def test_secrets_left_out_and_named_in_git(src: Path, git) -> None:
    _secret_tree(src)
    git(src, "init", "-q")
    (src / ".gitignore").write_text(".envrc\n")  # ignored: never a candidate, never named
    git(src, "add", "-f", ".env.bak", "id_rsa")  # tracked by mistake
    git(src, "commit", "-qm", "init")
    selection = ra.select_release(str(src))
    assert ".env.bak" in selection.secrets and "id_rsa" in selection.secrets
    assert ".aws/credentials" in selection.secrets  # untracked, not ignored
    assert ".envrc" not in selection.secrets and ".envrc" not in selection.files
    assert not set(selection.files) & set(SECRET_PATHS)


def test_secrets_warning_names_paths_never_content() -> None:
    assert ra.secrets_warning([]) is None
    line = ra.secrets_warning([".aws/credentials", ".env", ".env.bak", "a.pem", "b.key",
                               "id_rsa", "z.kdbx"])
    assert line.startswith("7 secret file(s) in the checkout left out of the release archive")
    assert ".aws/credentials, .env, .env.bak, a.pem, b.key and 2 more;" in line
    assert "id_rsa" not in line and "\n" not in line


def test_archive_never_holds_a_secret_even_when_asked(src: Path, tmp_path: Path) -> None:
    write_file(src, "certs/server.key", b"KEY")
    with pytest.raises(ra.ReleaseArchiveError, match=r"certs/server\.key is a secret file"):
        ra.build_archive(str(src), ["certs/server.key"], str(tmp_path / "x.tar.gz"))


def test_symlink_to_a_secret_is_refused(src: Path) -> None:
    write_file(src, ".aws/credentials", b"[default]\n")
    (src / "backend/app/settings.ini").symlink_to("../../.aws/credentials")
    with pytest.raises(ra.ReleaseArchiveError, match=r"symlink backend/app/settings\.ini points "
                       r"to excluded file \.aws/credentials"):
        ra.select_files(str(src))


def test_tracked_secrets_do_not_count_as_uncommitted_work(src: Path) -> None:
    """source_preflight's clean-git check drops excluded paths: secrets are among them."""
    assert ra.is_excluded(".envrc") and ra.is_excluded(".aws/credentials")


# --------------------------------------------------------------------------- symlinks


def test_gitignored_directory_link_leaving_the_checkout_is_refused(tmp_path: Path, git) -> None:
    """A tracked lib/x.py whose lib/ became a (gitignored) link outside: never followed."""
    repo = tmp_path / "repo"
    write_file(repo, "docker-compose.yml")
    write_file(repo, "lib/sub.py", b"x = 1\n")
    git(repo, "init", "-q")
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "init")
    outside = tmp_path / "outside"
    write_file(outside, "sub.py", b"SECRET = 'from outside'\n")
    for path in (repo / "lib").iterdir():
        path.unlink()
    (repo / "lib").rmdir()
    (repo / "lib").symlink_to(outside)
    (repo / ".gitignore").write_text("lib\n")
    with pytest.raises(ra.ReleaseArchiveError) as info:
        ra.select_files(str(repo))
    message = str(info.value)
    assert message.startswith("lib/sub.py is reached through the symlinked directory lib (")
    assert str(outside) in message and "OUTSIDE the checkout" in message
    assert "git rm -r --cached lib" in message


def test_untracked_link_leaving_the_checkout_names_its_target(src: Path, tmp_path: Path) -> None:
    write_file(tmp_path, "elsewhere.py")
    (src / "backend/app/linked.py").symlink_to(tmp_path / "elsewhere.py")
    with pytest.raises(ra.ReleaseArchiveError) as info:
        ra.select_release(str(src))
    assert str(tmp_path / "elsewhere.py") in str(info.value)
    assert "\n" not in str(info.value)


def test_links_in_noise_are_not_read(src: Path, tmp_path: Path) -> None:
    """A virtualenv linking outside is excluded noise: neither refused nor shipped."""
    (src / "backend/.venv/lib").symlink_to(tmp_path)
    assert ra.select_files(str(src)) == SHIPPED


# --------------------------------------------------------------------------- size caps


def test_within_caps(src: Path) -> None:
    selection = ra.select_release(str(src), max_total_bytes=ra.MIB, max_file_bytes=ra.MIB)
    assert selection.files == SHIPPED
    assert selection.total_bytes == sum((src / rel).stat().st_size for rel in SHIPPED)


def test_file_over_its_cap_is_named_with_its_size(src: Path) -> None:
    write_file(src, "db/dump.sql", b"x" * (3 * ra.MIB))
    write_file(src, "data/big.bin", b"x" * (2 * ra.MIB + ra.MIB // 2))
    with pytest.raises(ra.ReleaseArchiveError) as info:
        ra.select_release(str(src), max_total_bytes=100 * ra.MIB, max_file_bytes=ra.MIB)
    assert str(info.value) == (
        "2 file(s) larger than deploy_archive_max_file_mb (1.0 MiB): db/dump.sql (3.0 MiB), "
        "data/big.bin (2.5 MiB): a release holds the app, not its data; remove them from the "
        "checkout (or from git: git rm --cached <file>, then add it to .gitignore), or raise "
        "-e deploy_archive_max_file_mb=<MiB>")


def test_release_over_its_cap_names_the_largest_files(src: Path) -> None:
    for index in range(7):
        write_file(src, f"assets/img_{index}.png", b"x" * ((index + 1) * 100_000))
    with pytest.raises(ra.ReleaseArchiveError) as info:
        ra.select_release(str(src), max_total_bytes=2 * ra.MIB, max_file_bytes=ra.MIB)
    message = str(info.value)
    assert message.startswith("the release would ship 2.7 MiB in 12 files, more than "
                              "deploy_archive_max_mb (2.0 MiB); largest: assets/img_6.png "
                              "(0.7 MiB), assets/img_5.png (0.6 MiB),")
    assert message.count("assets/img_") == 5
    assert message.endswith("or raise -e deploy_archive_max_mb=<MiB>")


def test_secret_and_noise_sizes_do_not_count(src: Path) -> None:
    write_file(src, ".env.dump", b"x" * (2 * ra.MIB))
    write_file(src, "frontend/node_modules/huge.js", b"x" * (2 * ra.MIB))
    ra.select_release(str(src), max_total_bytes=ra.MIB, max_file_bytes=ra.MIB)


def test_size_problem_is_pure() -> None:
    assert ra.size_problem({"a": 10}, None, None) is None
    assert ra.size_problem({"a": 10}, 10, 10) is None
    assert ra.size_problem({"a": 11}, 100, 10).startswith("1 file(s) larger")
    assert ra.size_problem({"a": 6, "b": 6}, 11, 10).startswith("the release would ship")


# --------------------------------------------------------------------------- the fixture app


def test_realistic_fixture_packs_within_the_default_caps_without_its_env_backups(
        tmp_path: Path) -> None:
    import importlib.util

    path = Path(__file__).resolve().parents[2] / "fixtures" / "make_atp_app.py"
    spec = importlib.util.spec_from_file_location("make_atp_app_for_archive", path)
    maker = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(maker)  # type: ignore[union-attr]
    repo = maker.make_app(tmp_path / "automated-trading-platform")
    selection = ra.select_release(str(repo), max_total_bytes=200 * ra.MIB,
                                  max_file_bytes=50 * ra.MIB)
    assert len(selection.files) > 1800
    backups = [rel for rel in selection.secrets if rel.startswith(".env.bak")
               or rel.startswith(".env.local.bak")]
    assert len(backups) >= 3, selection.secrets
    assert not [rel for rel in selection.files if ra.is_secret(rel)]
    assert ".env.example" in selection.files
    out = ra.build_archive(str(repo), selection.files, str(tmp_path / "out.tar.gz"))
    with tarfile.open(out["path"]) as tar:
        names = tar.getnames()
    assert not [name for name in names if name.startswith(".env.bak")]
