"""Helpers for the atp.deploy module tests: run a module's main(), install the fake docker."""

from __future__ import annotations

import contextlib
import http.server
import io
import json
import os
import sys
import threading
from pathlib import Path

import pytest
from ansible.module_utils.testing import patch_module_args

FAKE_DOCKER = Path(__file__).with_name("fake_docker.py")


def run_module(module, args: dict, check_mode: bool = False) -> dict:
    """Run module.main() with args; return the JSON it printed (exit_json or fail_json)."""
    if check_mode:
        args = {**args, "_ansible_check_mode": True}
    buf = io.StringIO()
    with patch_module_args(args), contextlib.redirect_stdout(buf), \
            pytest.raises(SystemExit):
        module.main()
    return json.loads(buf.getvalue())


def default_state() -> dict:
    return {
        "info": {"rc": 0, "version": "26.1.5"},
        "compose": {"rc": 0, "version": "2.26.1"},
        "images": {},
        "containers": [],
        "build": {"rc": 0, "output": "#1 building\n#2 done"},
        "up": {"rc": 0, "output": "Container started"},
    }


class FakeDocker:
    """A fake docker CLI first on PATH; .state is read/written as JSON, .calls are the argvs."""

    def __init__(self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
        bindir = tmp_path / "fakebin"
        bindir.mkdir()
        script = bindir / "docker"
        script.write_text(f"#!{sys.executable}\n" + FAKE_DOCKER.read_text())
        script.chmod(0o755)
        self.state_file = tmp_path / "docker-state.json"
        self.log_file = tmp_path / "docker-calls.jsonl"
        self.log_file.write_text("")
        self.state = default_state()
        monkeypatch.setenv("PATH", f"{bindir}{os.pathsep}{os.environ.get('PATH', '')}")
        monkeypatch.setenv("FAKE_DOCKER_STATE", str(self.state_file))
        monkeypatch.setenv("FAKE_DOCKER_LOG", str(self.log_file))
        self.save()

    def save(self) -> None:
        self.state_file.write_text(json.dumps(self.state))

    def load(self) -> dict:
        self.state = json.loads(self.state_file.read_text())
        return self.state

    @property
    def calls(self) -> list[dict]:
        lines = self.log_file.read_text().splitlines()
        return [json.loads(line) for line in lines if line.strip()]

    @property
    def argvs(self) -> list[list[str]]:
        return [c["argv"] for c in self.calls]

    def add_container(self, **kwargs) -> dict:
        container = {
            "id": kwargs.get("id", "c0ffee"),
            "name": kwargs.get("name", "automated-trading-platform-backend-aws-1"),
            "image": kwargs.get("image", ""),
            "image_id": kwargs.get("image_id", "sha256:old"),
            "running": kwargs.get("running", True),
            "project": kwargs.get("project", "automated-trading-platform"),
            "service": kwargs.get("service", "backend-aws"),
            "ports": kwargs.get("ports", [8002]),
        }
        if kwargs.get("working_dir"):
            container["working_dir"] = kwargs["working_dir"]  # compose's project working dir
        self.state["containers"].append(container)
        self.save()
        return container


@contextlib.contextmanager
def serve_http(handler: type[http.server.BaseHTTPRequestHandler]):
    """A real HTTP server on 127.0.0.1 (a free port) answering with `handler`: its port."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


@contextlib.contextmanager
def chdir(path: Path):
    old = os.getcwd()
    os.chdir(path)
    try:
        yield
    finally:
        os.chdir(old)


def _compare_options(doc_options: dict, spec: dict, where: str) -> list[str]:
    problems = []
    for name in sorted(set(doc_options) | set(spec)):
        if name not in spec:
            problems.append(f"{where}{name}: documented but not in the argument spec")
            continue
        if name not in doc_options:
            problems.append(f"{where}{name}: in the argument spec but not documented")
            continue
        doc, arg = doc_options[name], spec[name]
        for key, fallback in (("type", "str"), ("default", None), ("required", False),
                              ("choices", None), ("elements", None)):
            if doc.get(key, fallback) != arg.get(key, fallback):
                problems.append(f"{where}{name}.{key}: doc {doc.get(key, fallback)!r} != "
                                f"spec {arg.get(key, fallback)!r}")
        if "options" in arg or "suboptions" in doc:
            problems += _compare_options(doc.get("suboptions") or {}, arg.get("options") or {},
                                         f"{where}{name}.")
    return problems


def doc_spec_problems(module) -> list[str]:
    """Differences between a module's DOCUMENTATION options and its ARGUMENT_SPEC."""
    import yaml

    doc = yaml.safe_load(module.DOCUMENTATION)
    for text in (module.EXAMPLES, module.RETURN):
        yaml.safe_load(text)
    options = dict(doc.get("options") or {})
    for name in doc.get("extends_documentation_fragment") or []:
        options.update(_fragment_options(name))
    return _compare_options(options, module.ARGUMENT_SPEC, "")


def _fragment_options(name: str) -> dict:
    """Options of a collection doc fragment, ``atp.deploy.<file>[.<SECTION>]`` (as ansible-doc
    merges them into the module's)."""
    import importlib

    import yaml

    parts = name.split(".")
    assert parts[:2] == ["atp", "deploy"] and len(parts) in (3, 4), name
    fragment = importlib.import_module(
        f"ansible_collections.atp.deploy.plugins.doc_fragments.{parts[2]}").ModuleDocFragment
    text = getattr(fragment, parts[3].upper() if len(parts) == 4 else "DOCUMENTATION")
    return yaml.safe_load(text).get("options") or {}


# --------------------------------------------------------------------------- releases

APP_FILES = {
    "docker-compose.yml": "services:\n  backend-aws:\n    build: .\n    profiles: [aws]\n",
    "Dockerfile": "FROM python:3.11-slim\n",
    "backend/app/main.py": "app = None\n",
    "scripts/start.sh": "#!/bin/sh\nexec uvicorn app.main:app\n",
}


def write_tree(root: Path, files: dict[str, str]) -> list[str]:
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        path.chmod(0o755 if rel.endswith(".sh") else 0o644)
    return sorted(files)


def make_archive(tmp_path: Path, files: dict[str, str] | None = None,
                 when: str = "2026-11-24T10:15:00", extra=()) -> dict:
    """A real release archive: manifest first, then the files (+ extra (TarInfo, bytes))."""
    import hashlib
    import tarfile
    from datetime import datetime

    from ansible_collections.atp.deploy.plugins.module_utils.release_manifest import (
        MANIFEST_NAME,
        build_manifest,
        content_hash,
    )
    from ansible_collections.atp.deploy.plugins.module_utils.release_model import make_id

    src = tmp_path / "src"
    rels = write_tree(src, files or APP_FILES)
    manifest = build_manifest(str(src), rels)
    chash = content_hash(manifest)
    archive = tmp_path / "incoming" / "release.tar.gz"
    archive.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(archive, "w:gz") as tar:
        data = json.dumps(manifest, sort_keys=True).encode()
        info = tarfile.TarInfo(MANIFEST_NAME)
        info.size, info.mode = len(data), 0o644
        tar.addfile(info, io.BytesIO(data))
        for rel in rels:
            tar.add(str(src / rel), arcname=rel, recursive=False)
        for member, payload in extra:
            if payload is not None:
                member.size = len(payload)
                tar.addfile(member, io.BytesIO(payload))
            else:
                tar.addfile(member)
    return {
        "archive": archive,
        "sha256": hashlib.sha256(archive.read_bytes()).hexdigest(),
        "manifest": manifest,
        "content_hash": chash,
        "release_id": make_id(chash, None, datetime.fromisoformat(when)),
    }


# release id -> code hash of every release install_release made (tests name a release's code).
CODE_HASHES: dict[str, str] = {}


def install_release(app_root: Path, files: dict[str, str] | None = None,
                    when: str = "2026-11-24T10:15:00", current: bool = False,
                    env: str | None = None, env_files=(".env", ".env.aws")) -> str:
    """An unpacked release dir (tree + manifest) as release_unpack leaves it; returns its id.

    env: link env_files into this env (an env set name, or "shared" for the layout before env
    sets); None makes no env link (and the id's hash part is the code hash alone).
    """
    from datetime import datetime

    from ansible_collections.atp.deploy.plugins.module_utils.release_manifest import (
        MANIFEST_NAME,
        build_manifest,
        content_hash,
    )
    from ansible_collections.atp.deploy.plugins.module_utils.release_model import make_id

    files = files or APP_FILES
    staging = app_root / "releases" / ".staging"
    rels = write_tree(staging, files)
    manifest = build_manifest(str(staging), rels)
    rid = make_id(content_hash(manifest), env, datetime.fromisoformat(when))
    CODE_HASHES[rid] = content_hash(manifest)
    (staging / MANIFEST_NAME).write_text(json.dumps(manifest))
    staging.rename(app_root / "releases" / rid)
    if env:
        from ansible_collections.atp.deploy.plugins.module_utils.release_model import (
            env_link_target,
        )

        for rel in env_files:
            link = app_root / "releases" / rid / rel
            link.parent.mkdir(parents=True, exist_ok=True)
            link.symlink_to(env_link_target(rel, env))
    if current:
        link = app_root / "current"
        if link.is_symlink():
            link.unlink()
        link.symlink_to(f"releases/{rid}")
    return rid


def install_env_set(app_root: Path, files: dict[str, str]) -> str:
    """An env set under shared/env/ as env_files writes it (0700/0600); returns its name."""
    from ansible_collections.atp.deploy.plugins.module_utils import env_layout

    name, _written = env_layout.write_set(
        str(app_root), {rel: text.encode() for rel, text in files.items()}, None, None)
    return name


def release_code_hash(app_root: Path, rid: str) -> str:
    """The code hash of an installed release (its manifest's content hash)."""
    from ansible_collections.atp.deploy.plugins.module_utils.release_model import code_hash

    return code_hash(str(app_root / "releases" / rid))


def warnings_of(result: dict) -> list[str]:
    """Warning texts of a module result (ansible-core 2.19 returns structured summaries)."""
    texts = []
    for item in result.get("warnings", []):
        if isinstance(item, dict):
            item = (item.get("event") or {}).get("msg") or item.get("msg") or str(item)
        texts.append(str(item))
    return texts
