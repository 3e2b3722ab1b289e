"""Base images built without a registry: mmdebstrap | docker import, cached by recipe hash."""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
from pathlib import Path

from .engine import SandboxError, docker

IMAGES_DIR = Path(__file__).resolve().parents[1] / "images"

INSTANCE_PACKAGES = [
    "bash", "ca-certificates", "curl", "docker-cli", "docker-compose", "docker.io", "iproute2",
    "iptables", "mount", "procps", "python3", "sudo", "tini", "util-linux",
]
# What the backends build FROM (offline): the sample needs fastapi/uvicorn; the realistic
# fixture app (tests/fixtures/atp_app) also runs gunicorn with uvicorn workers and talks to
# Postgres through psycopg2.
BACKEND_BASE_PACKAGES = [
    "ca-certificates", "passwd", "python3", "python3-fastapi", "python3-gunicorn",
    "python3-psycopg2", "python3-uvicorn",
]
# The fixture app's `db` service builds FROM this: Debian's PostgreSQL 15, no cluster made at
# install time (the image's entrypoint runs initdb on the named volume at first start).
POSTGRES_BASE_PACKAGES = ["ca-certificates", "postgresql-15"]
POSTGRES_BASE_HOOKS = [
    "--essential-hook=mkdir -p \"$1/etc/postgresql-common/createcluster.d\" && "
    "echo 'create_main_cluster = false' "
    "> \"$1/etc/postgresql-common/createcluster.d/atp-no-main.conf\"",
    # The JIT's libraries (LLVM, z3: ~130 MB of the ~440 MB) are left out: run with jit=off.
    "--dpkgopt=path-exclude=/usr/lib/*/libLLVM-*",
    "--dpkgopt=path-exclude=/usr/lib/*/libz3.so*",
    "--dpkgopt=path-exclude=/usr/lib/postgresql/*/lib/bitcode/*",
]
INSTANCE_SUITE = "trixie"
BACKEND_SUITE = "bookworm"
POSTGRES_SUITE = "bookworm"
BACKEND_BASE_TAG = "atp-backend-base:bookworm"
POSTGRES_BASE_TAG = "atp-postgres-base:15"
# Loaded into every sandbox instance: what the apps deployed there build FROM.
INSTANCE_BASE_TAGS = (BACKEND_BASE_TAG, POSTGRES_BASE_TAG)


def debian_mirror() -> str:
    """The Debian mirror this host already uses (never hard-coded)."""
    sources = [Path("/etc/apt/sources.list")]
    sources += sorted(Path("/etc/apt/sources.list.d").glob("*.sources"))
    sources += sorted(Path("/etc/apt/sources.list.d").glob("*.list"))
    for src in sources:
        if not src.is_file():
            continue
        for line in src.read_text().splitlines():
            line = line.strip()
            match = re.match(r"^(?:URIs:|deb)\s+(?:\[[^]]*\]\s+)?(\S+)", line)
            if match and not match.group(1).rstrip("/").endswith("-security"):
                return match.group(1)
    raise SandboxError("no Debian mirror found in /etc/apt/sources.list*: "
                       "expected a 'deb' or 'URIs:' line; configure apt first")


def _recipe_hash(*parts: str) -> str:
    digest = hashlib.sha256()
    for part in parts:
        digest.update(part.encode())
        digest.update(b"\0")
    return digest.hexdigest()[:12]


def _image_exists(tag: str) -> bool:
    return docker("image", "inspect", tag, check=False).returncode == 0


def _mmdebstrap_import(suite: str, packages: list[str], tag: str,
                       hooks: list[str] | None = None) -> None:
    if not shutil.which("mmdebstrap"):
        if os.geteuid() != 0:
            raise SandboxError("mmdebstrap missing: apt-get install mmdebstrap (needs root)")
        env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
        subprocess.run(["apt-get", "update", "-qq"], check=True, env=env)
        subprocess.run(["apt-get", "install", "-y", "-qq", "mmdebstrap"], check=True, env=env,
                       stdout=subprocess.DEVNULL)
    mirror = debian_mirror()
    cmd = ["mmdebstrap", "--quiet", "--variant=apt", "--include=" + ",".join(packages),
           "--dpkgopt=path-exclude=/usr/share/{doc,man,locale}/*", *(hooks or []),
           suite, "-", mirror]
    strap = subprocess.Popen(cmd, stdout=subprocess.PIPE)
    imp = subprocess.run(["docker", "import", "-", tag], stdin=strap.stdout, capture_output=True)
    strap.stdout.close()
    if strap.wait() != 0 or imp.returncode != 0:
        raise SandboxError(f"building {tag} failed: mmdebstrap exit {strap.returncode}, "
                           f"docker import: {imp.stderr.decode().strip()[-300:]}")


def backend_base_image() -> str:
    """Debian bookworm + python3 + FastAPI/uvicorn/gunicorn/psycopg2 from Debian: what the sample
    and the fixture app build FROM."""
    recipe = _recipe_hash(BACKEND_SUITE, *BACKEND_BASE_PACKAGES)
    tag = f"atp-sandbox/backend-base:{recipe}"
    if not _image_exists(tag):
        _mmdebstrap_import(BACKEND_SUITE, BACKEND_BASE_PACKAGES, tag)
    docker("tag", tag, BACKEND_BASE_TAG)
    return BACKEND_BASE_TAG


def postgres_base_image() -> str:
    """Debian bookworm + postgresql-15 (no cluster): what the fixture app's db builds FROM."""
    recipe = _recipe_hash(POSTGRES_SUITE, *POSTGRES_BASE_PACKAGES, *POSTGRES_BASE_HOOKS)
    tag = f"atp-sandbox/postgres-base:{recipe}"
    if not _image_exists(tag):
        _mmdebstrap_import(POSTGRES_SUITE, POSTGRES_BASE_PACKAGES, tag, POSTGRES_BASE_HOOKS)
    docker("tag", tag, POSTGRES_BASE_TAG)
    return POSTGRES_BASE_TAG


def base_images() -> list[str]:
    """Build (or reuse by recipe) every base image the instances get; return their tags."""
    return [backend_base_image(), postgres_base_image()]


def instance_image() -> str:
    """Debian trixie with Docker 26 + Compose v2, users ubuntu and ssm-user, like an EC2 box."""
    context = IMAGES_DIR / "instance"
    files = sorted(p for p in context.iterdir() if p.is_file())
    recipe = _recipe_hash(INSTANCE_SUITE, *INSTANCE_PACKAGES,
                          *(p.name + p.read_text() for p in files))
    tag = f"atp-sandbox/instance:{recipe}"
    if _image_exists(tag):
        return tag
    rootfs = f"atp-sandbox/instance-rootfs:{recipe}"
    if not _image_exists(rootfs):
        _mmdebstrap_import(INSTANCE_SUITE, INSTANCE_PACKAGES, rootfs)
    proc = subprocess.run(["docker", "build", "-q", "--build-arg", f"ROOTFS={rootfs}",
                           "-t", tag, str(context)], capture_output=True)
    if proc.returncode != 0:
        raise SandboxError(f"docker build of {tag} failed: {proc.stderr.decode()[-400:]}")
    return tag
