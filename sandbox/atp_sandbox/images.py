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
BACKEND_BASE_PACKAGES = [
    "ca-certificates", "passwd", "python3", "python3-fastapi", "python3-uvicorn",
]
INSTANCE_SUITE = "trixie"
BACKEND_SUITE = "bookworm"
BACKEND_BASE_TAG = "atp-backend-base:bookworm"


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


def _mmdebstrap_import(suite: str, packages: list[str], tag: str) -> None:
    if not shutil.which("mmdebstrap"):
        if os.geteuid() != 0:
            raise SandboxError("mmdebstrap missing: apt-get install mmdebstrap (needs root)")
        env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
        subprocess.run(["apt-get", "update", "-qq"], check=True, env=env)
        subprocess.run(["apt-get", "install", "-y", "-qq", "mmdebstrap"], check=True, env=env,
                       stdout=subprocess.DEVNULL)
    mirror = debian_mirror()
    cmd = ["mmdebstrap", "--quiet", "--variant=apt", "--include=" + ",".join(packages),
           "--dpkgopt=path-exclude=/usr/share/{doc,man,locale}/*",
           suite, "-", mirror]
    strap = subprocess.Popen(cmd, stdout=subprocess.PIPE)
    imp = subprocess.run(["docker", "import", "-", tag], stdin=strap.stdout, capture_output=True)
    strap.stdout.close()
    if strap.wait() != 0 or imp.returncode != 0:
        raise SandboxError(f"building {tag} failed: mmdebstrap exit {strap.returncode}, "
                           f"docker import: {imp.stderr.decode().strip()[-300:]}")


def backend_base_image() -> str:
    """Debian bookworm + python3 + FastAPI/uvicorn from Debian: what the sample app builds FROM."""
    recipe = _recipe_hash(BACKEND_SUITE, *BACKEND_BASE_PACKAGES)
    tag = f"atp-sandbox/backend-base:{recipe}"
    if not _image_exists(tag):
        _mmdebstrap_import(BACKEND_SUITE, BACKEND_BASE_PACKAGES, tag)
    docker("tag", tag, BACKEND_BASE_TAG)
    return BACKEND_BASE_TAG


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
