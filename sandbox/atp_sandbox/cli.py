"""`python -m atp_sandbox up|down|status|serve|events`: the local SSM sandbox.

TEST INFRASTRUCTURE: stands in for AWS so the real aws_ssm plugin can be exercised.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

from . import engine, instances
from .config import BUCKET, REGION, REPO, S3_PORT, SSM_PORT, Paths, load_state
from .events import read_events

PROFILE = "atp-sandbox"


def write_aws_profile(paths: Paths) -> None:
    """An AWS profile whose ssm and s3 endpoints are the stand-ins (botocore `services`)."""
    paths.aws_config.parent.mkdir(parents=True, exist_ok=True)
    paths.aws_config.write_text(
        f"[profile {PROFILE}]\nregion = {REGION}\nservices = {PROFILE}\n\n"
        f"[services {PROFILE}]\nssm =\n  endpoint_url = http://127.0.0.1:{SSM_PORT}\n"
        f"s3 =\n  endpoint_url = http://127.0.0.1:{S3_PORT}\n")
    paths.aws_credentials.write_text(
        f"[{PROFILE}]\naws_access_key_id = AKIASANDBOXSTANDIN00\n"
        "aws_secret_access_key = sandbox-not-a-secret\n")
    os.chmod(paths.aws_credentials, 0o600)
    paths.env_file.write_text(
        f"export AWS_CONFIG_FILE={paths.aws_config}\n"
        f"export AWS_SHARED_CREDENTIALS_FILE={paths.aws_credentials}\n"
        "export AWS_EC2_METADATA_DISABLED=true\n"
        f"export PATH={REPO / 'sandbox' / 'bin'}:$PATH\n")


def _pidfile(paths: Paths) -> Path:
    return paths.root / "standin.pid"


def standin_running(paths: Paths) -> bool:
    try:
        pid = int(_pidfile(paths).read_text())
        os.kill(pid, 0)
        return True
    except (FileNotFoundError, ValueError, ProcessLookupError):
        return False


def start_standin(paths: Paths, wait_s: int = 60) -> None:
    if standin_running(paths):
        return
    log = open(paths.root / "standin.log", "ab")  # noqa: SIM115 - handed to the daemon
    env = dict(os.environ, PYTHONPATH=str(REPO / "sandbox"))
    proc = subprocess.Popen([sys.executable, "-m", "atp_sandbox", "serve"], stdout=log,
                            stderr=log, env=env, start_new_session=True, cwd=REPO)
    _pidfile(paths).write_text(str(proc.pid))
    deadline = time.monotonic() + wait_s
    while time.monotonic() < deadline:
        if b"stand-ins ready" in (paths.root / "standin.log").read_bytes():
            return
        if proc.poll() is not None:
            break
        time.sleep(0.3)
    raise engine.SandboxError(f"SSM stand-ins did not start: see {paths.root}/standin.log")


def stop_standin(paths: Paths) -> None:
    if standin_running(paths):
        pid = int(_pidfile(paths).read_text())
        os.kill(pid, signal.SIGTERM)
        for _ in range(50):
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                break
            time.sleep(0.1)
    _pidfile(paths).unlink(missing_ok=True)


def wait_relays(state: dict, wait_s: int = 30) -> None:
    """Every instance reaches S3 at the controller's URL before anyone relies on it."""
    for info in state["instances"].values():
        deadline = time.monotonic() + wait_s
        while True:
            probe = engine.docker("exec", info["container"], "curl", "-s", "-o", "/dev/null",
                                  "-w", "%{http_code}", f"http://127.0.0.1:{S3_PORT}/{BUCKET}",
                                  check=False)
            if probe.stdout.decode().strip() not in ("", "000"):
                break
            if time.monotonic() > deadline:
                raise engine.SandboxError(f"{info['id']} cannot reach S3 at 127.0.0.1:{S3_PORT}")
            time.sleep(0.5)


def cmd_up(args: argparse.Namespace, paths: Paths) -> int:
    how = engine.ensure_engine(paths)
    print(f"docker engine: {how}")
    state = instances.up(args.instances, paths)
    write_aws_profile(paths)
    start_standin(paths)
    wait_relays(state)
    for info in state["instances"].values():
        print(f"instance {info['id']}: container {info['container']} ({state['isolation']})")
    print(f"ssm endpoint http://127.0.0.1:{SSM_PORT}, s3 http://127.0.0.1:{S3_PORT}, "
          f"profile {PROFILE} in {paths.aws_config}")
    return 0


def cmd_down(_args: argparse.Namespace, paths: Paths) -> int:
    stop_standin(paths)
    if engine.engine_reachable() or shutil.which("dockerd"):
        engine.ensure_engine(paths)  # containers of an earlier run must go too
        instances.down(paths)
    print("sandbox down")
    return 0


def cmd_status(_args: argparse.Namespace, paths: Paths) -> int:
    state = instances.refresh_pids(paths) if engine.engine_reachable() else load_state(paths)
    print(json.dumps({"standin": standin_running(paths), **state}, indent=1, sort_keys=True))
    return 0


def cmd_stop_instance(args: argparse.Namespace, paths: Paths) -> int:
    """Stop (not remove) an instance, as an EC2 stop would: SSM then reports TargetNotConnected."""
    engine.docker("stop", "-t", "5", load_state(paths)["instances"][args.id]["container"])
    return 0


def cmd_events(_args: argparse.Namespace, paths: Paths) -> int:
    for event in read_events(paths):
        print(json.dumps(event, sort_keys=True))
    return 0


def cmd_serve(_args: argparse.Namespace, _paths: Paths) -> int:
    from .standin import serve

    serve()
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="atp_sandbox", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    up = sub.add_parser("up", help="engine, images, instances and SSM stand-ins")
    up.add_argument("--instances", type=int,
                    default=int(os.environ.get("SANDBOX_INSTANCES", "1")))
    sub.add_parser("down", help="remove instances and stop the stand-ins")
    sub.add_parser("status", help="print the sandbox state")
    sub.add_parser("events", help="print the JSON-lines log of sessions and transfers")
    sub.add_parser("serve", help="run the SSM/S3 stand-ins in the foreground")
    stop = sub.add_parser("stop-instance", help="stop one instance (EC2 stop)")
    stop.add_argument("id")
    args = parser.parse_args(argv)
    paths = Paths()
    paths.root.mkdir(parents=True, exist_ok=True)
    handler = globals()[f"cmd_{args.command.replace('-', '_')}"]
    try:
        return handler(args, paths)
    except engine.SandboxError as exc:
        print(f"sandbox: {exc}", file=sys.stderr)
        return 1
