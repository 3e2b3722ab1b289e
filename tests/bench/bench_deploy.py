#!/usr/bin/env python3
"""Benchmark a deploy over the sandbox: SSM sessions, remote commands, S3 bytes, wall time.

Runs three deploys of the sample backend to the first sandbox instance: a changed one (a
scratch copy with one edited file), the same again (unchanged), and --check. Prints figures;
asserts nothing (targets are in the README: <= 10 sessions changed, <= 3 unchanged).
The last column models real AWS, where every session costs about 3 s (SANDBOX-NOTES).
"""

from __future__ import annotations

import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from integration.conftest import SAMPLE, Events, playbook

AWS_SECONDS_PER_SESSION = 3.0


def run(label: str, *args: str) -> None:
    events = Events()
    started = time.monotonic()
    proc = playbook("deploy.yml", *args)
    wall = time.monotonic() - started
    seen = events.since()
    sessions = sum(1 for e in seen if e["kind"] == "start_session")
    commands = sum(1 for e in seen if e["kind"] == "command")
    s3_up = sum(e.get("bytes_in", 0) for e in seen if e["kind"] == "s3")
    status = "ok" if proc.returncode == 0 else f"FAILED rc={proc.returncode}"
    modeled = sessions * AWS_SECONDS_PER_SESSION
    print(f"{label:<22} {status:<8} sessions={sessions:<3} commands={commands:<4} "
          f"s3_bytes={s3_up:<9} wall={wall:6.1f}s  aws_model~{modeled:.0f}s+build")
    if proc.returncode != 0:
        print(proc.stdout[-3000:])


def main() -> int:
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / "backend"
        shutil.copytree(SAMPLE, src)
        with open(src / "backend/app/__init__.py", "a", encoding="utf-8") as handle:
            handle.write(f"# bench {time.time()}\n")
        run("changed deploy", "-e", f"backend_src_dir={src}")
        run("unchanged deploy", "-e", f"backend_src_dir={src}")
        run("check mode", "--check", "-e", f"backend_src_dir={src}")
    run("back to the sample", )
    return 0


if __name__ == "__main__":
    sys.exit(main())
