"""The three apps of the benchmark, each as two source trees (v1, and v2 = v1 plus a one-file
change), with what each playbook needs to deploy them (test infrastructure).

- sample: files/sample-backend (about 20 files);
- fixture: the realistic app (tests/fixtures/make_atp_app.py, a git checkout of ~1,950 files
  with a postgres db built from docker/postgres);
- tree500: the sample plus 500 generated files under backend/app/generated/ (deterministic:
  the same names and bytes on every run).
"""

from __future__ import annotations

import json
import os
import random
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
SAMPLE = REPO / "files" / "sample-backend"
APPS = ("sample", "fixture", "tree500")
GENERATED_FILES = 500
GENERATED_SEED = "atp-bench-tree500-v1"
CHANGED_FILE = "backend/app/__init__.py"
CHANGE_LINE = "# benchmark: one-file change (tests/bench/bench_apps.py)\n"
# The realistic app's db needs a password for a new volume; fake values, sandbox only.
FIXTURE_ENV = {"ENVIRONMENT": "aws", "POSTGRES_USER": "trader", "POSTGRES_DB": "atp",
               "POSTGRES_PASSWORD": "bench-fake-db-password-5d1c"}


class AppUnavailable(RuntimeError):
    """The app cannot be made on this checkout (one line: why, what to do)."""


@dataclass
class App:
    name: str
    v1: Path
    v2: Path
    files: int
    # extra variables (JSON-able) for each playbook
    deploy_vars: dict = field(default_factory=dict)
    naive_vars: dict = field(default_factory=dict)


def count_files(root: Path) -> int:
    """Files of a tree, .git left out."""
    total = 0
    for _base, dirs, files in os.walk(root):
        dirs[:] = [d for d in dirs if d != ".git"]
        total += len(files)
    return total


def one_file_change(tree: Path) -> None:
    with open(tree / CHANGED_FILE, "a", encoding="utf-8") as handle:
        handle.write(CHANGE_LINE)


def generate_tree500(dest: Path, count: int = GENERATED_FILES, seed: str = GENERATED_SEED) -> int:
    """Write ``count`` files (Python, JSON, Markdown; 0.2-4 KB) under backend/app/generated/,
    in 10 packages. Same names and bytes for the same seed. Returns the number written."""
    rng = random.Random(seed)
    words = ["price", "order", "fill", "ledger", "margin", "spread", "ticker", "candle",
             "signal", "alert", "risk", "limit", "wallet", "asset", "quote", "venue"]
    base = dest / "backend" / "app" / "generated"
    written = 0
    for index in range(count):
        package = base / f"pkg_{index % 10:02d}"
        package.mkdir(parents=True, exist_ok=True)
        kind = ("py", "json", "md")[index % 3]
        size = rng.randint(200, 4000)
        text = " ".join(rng.choice(words) for _ in range(size // 6))
        if kind == "py":
            body = f'"""Generated module {index} (benchmark tree)."""\n\nTEXT = {text[:size]!r}\n'
        elif kind == "json":
            body = json.dumps({"index": index, "words": text[:size]}) + "\n"
        else:
            body = f"# Generated note {index}\n\n{text[:size]}\n"
        (package / f"item_{index:03d}.{kind}").write_text(body, encoding="utf-8")
        written += 1
    return written


def _git(repo: Path, *args: str) -> None:
    env = dict(os.environ, GIT_AUTHOR_NAME="ATP Bench", GIT_AUTHOR_EMAIL="bench@atp.invalid",
               GIT_COMMITTER_NAME="ATP Bench", GIT_COMMITTER_EMAIL="bench@atp.invalid",
               GIT_AUTHOR_DATE="@1736200000 +0000", GIT_COMMITTER_DATE="@1736200000 +0000",
               GIT_CONFIG_NOSYSTEM="1", GIT_CONFIG_GLOBAL=os.devnull)
    subprocess.run(["git", "-C", str(repo), "-c", "commit.gpgsign=false", *args], env=env,
                   check=True, capture_output=True, timeout=120)


def make(name: str, workdir: Path) -> App:
    """Both trees of app ``name`` under ``workdir``."""
    workdir.mkdir(parents=True, exist_ok=True)
    v1, v2 = workdir / f"{name}-v1", workdir / f"{name}-v2"
    if name in ("sample", "tree500"):
        shutil.copytree(SAMPLE, v1)
        if name == "tree500":
            generate_tree500(v1)
        shutil.copytree(v1, v2)
        one_file_change(v2)
        return App(name, v1, v2, count_files(v1))
    if name == "fixture":
        sys.path.insert(0, str(REPO / "tests"))
        try:
            from fixtures.make_atp_app import make_app
        except ImportError as exc:
            raise AppUnavailable(f"the realistic fixture (tests/fixtures/make_atp_app.py) "
                                 f"cannot be imported: {exc}; skip it with --apps") from exc
        v1 = make_app(v1, "good")
        shutil.copytree(v1, v2, symlinks=True)
        one_file_change(v2)
        _git(v2, "commit", "-q", "--no-verify", "-am", "benchmark: one-file change")
        return App(name, v1, v2, count_files(v1),
                   deploy_vars={"deploy_env": FIXTURE_ENV},
                   naive_vars={"deploy_env": FIXTURE_ENV,
                               "naive_paths": ["backend", "docker", "docker-compose.yml"],
                               "naive_env_extra": {".env.db": {}}})
    raise AppUnavailable(f"expected an app among {', '.join(APPS)}, got {name!r}")
