"""`python -m atp_sandbox up|down|status|fleet|run|events|serve`: the local SSM sandbox.

TEST INFRASTRUCTURE: stands in for AWS so the real aws_ssm plugin can be exercised.
Nothing here writes shell exports: `ansible-playbook` finds the sandbox through its inventory
(inventory/sandbox), other tools through `atp_sandbox run -- <command>`.
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

from . import ec2, engine, instances
from .config import (
    ACCESS_KEY_ID,
    BUCKET,
    PLUGIN_STANDIN,
    REGION,
    REPO,
    S3_PORT,
    SECRET_ACCESS_KEY,
    Paths,
    apply_env,
    aws_env,
    endpoints,
    load_state,
    save_state,
)
from .events import read_events

PROFILE = "atp-sandbox"


def write_aws_profile(paths: Paths) -> None:
    """The `atp-sandbox` AWS profile (endpoints = the stand-ins) for tools that take --profile.

    Only `atp_sandbox run` and the tests point AWS_CONFIG_FILE at it, for one process each.
    """
    urls = endpoints()
    paths.aws_config.parent.mkdir(parents=True, exist_ok=True)
    paths.aws_config.write_text(
        f"[profile {PROFILE}]\nregion = {REGION}\nendpoint_url = {urls['default']}\n"
        f"services = {PROFILE}\n\n"
        f"[services {PROFILE}]\nssm =\n  endpoint_url = {urls['ssm']}\n"
        f"s3 =\n  endpoint_url = {urls['s3']}\nec2 =\n  endpoint_url = {urls['default']}\n")
    paths.aws_credentials.write_text(
        f"[{PROFILE}]\naws_access_key_id = {ACCESS_KEY_ID}\n"
        f"aws_secret_access_key = {SECRET_ACCESS_KEY}\n")
    os.chmod(paths.aws_credentials, 0o600)
    paths.env_file.unlink(missing_ok=True)  # shell exports of earlier versions: never needed


def run_env(base: dict[str, str] | None = None, paths: Paths | None = None) -> dict[str, str]:
    """``base`` (default: os.environ) pointed at the sandbox: aws_env() and the
    session-manager-plugin stand-in first on PATH. For one child process, never a shell."""
    env = apply_env(dict(os.environ if base is None else base), aws_env(paths))
    env["PATH"] = f"{PLUGIN_STANDIN.parent}:{env.get('PATH', os.defpath)}"
    return env


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
    env = apply_env(dict(os.environ, PYTHONPATH=str(REPO / "sandbox")), aws_env(paths))
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


def set_fleet(paths: Paths, fleet: int | None) -> dict:
    """Record how many instances (the first N) carry the production backend tags."""
    state = load_state(paths)
    if fleet is not None:
        if fleet < 0:
            raise engine.SandboxError(f"expected a fleet size >= 0, got {fleet}")
        state["fleet"] = fleet
    state.setdefault("fleet", 1)
    save_state(state, paths)
    return state


def print_ec2(paths: Paths, found: dict[str, dict]) -> None:
    state = load_state(paths)
    for instance_id, info in sorted(found.items()):
        role = "sandbox instance" if instance_id in state["instances"] else "decoy"
        print(f"ec2 {instance_id}: {info['state']:<8} {role:<16} tags {info['tags']}")


def cmd_up(args: argparse.Namespace, paths: Paths) -> int:
    how = engine.ensure_engine(paths)
    print(f"docker engine: {how}")
    state = instances.up(args.instances, paths)
    state = set_fleet(paths, args.fleet)
    write_aws_profile(paths)
    start_standin(paths)
    wait_relays(state)
    found = ec2.wait_registered(paths)
    for info in state["instances"].values():
        print(f"instance {info['id']}: container {info['container']} ({state['isolation']})")
    print_ec2(paths, found)
    urls = endpoints()
    print(f"ssm {urls['ssm']}, s3 {urls['s3']}, ec2/moto {urls['default']}; "
          f"{state['fleet']} instance(s) tagged as backends. No exports needed: "
          "`ansible-playbook deploy.yml` reaches the sandbox through inventory/sandbox")
    return 0


def cmd_fleet(args: argparse.Namespace, paths: Paths) -> int:
    """Tag the first N sandbox instances as backends (the rest as spares) and wait for moto."""
    set_fleet(paths, args.size)
    if not standin_running(paths):
        print("fleet size recorded; applied when the stand-ins start (`atp_sandbox up`)")
        return 0
    print_ec2(paths, ec2.wait_registered(paths))
    return 0


def cmd_run(args: argparse.Namespace, paths: Paths) -> int:
    """Run ONE command against the sandbox's AWS (e.g. bin/atp-portforward --profile
    atp-sandbox); the caller's shell keeps its own environment."""
    command = args.command_args[1:] if args.command_args[:1] == ["--"] else args.command_args
    if not command:
        raise engine.SandboxError("expected a command after `run --`, got none")
    try:
        os.execvpe(command[0], command, run_env(paths=paths))
    except OSError as exc:
        raise engine.SandboxError(f"could not run {command[0]!r}: {exc}") from exc
    return 1


def cmd_down(_args: argparse.Namespace, paths: Paths) -> int:
    stop_standin(paths)
    if engine.engine_reachable() or shutil.which("dockerd"):
        engine.ensure_engine(paths)  # containers of an earlier run must go too
        instances.down(paths)
    print("sandbox down")
    return 0


def cmd_status(_args: argparse.Namespace, paths: Paths) -> int:
    state = instances.refresh_pids(paths) if engine.engine_reachable() else load_state(paths)
    report = {"standin": standin_running(paths), **state}
    if report["standin"]:
        try:
            report["ec2"] = ec2.describe()
        except Exception as exc:  # report, don't fail: status is for looking
            report["ec2"] = f"unreadable: {exc}"
    print(json.dumps(report, indent=1, sort_keys=True))
    return 0


def cmd_stop_instance(args: argparse.Namespace, paths: Paths) -> int:
    """Stop (not remove) an instance, as an EC2 stop would: SSM then reports TargetNotConnected
    and the inventory no longer lists it (moto marks it stopped)."""
    engine.docker("stop", "-t", "5", load_state(paths)["instances"][args.id]["container"])
    if standin_running(paths):
        ec2.wait_registered(paths)
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
    up.add_argument("--fleet", type=int,
                    default=int(os.environ["SANDBOX_FLEET"]) if os.environ.get("SANDBOX_FLEET")
                    else None,
                    help="how many instances (the first N) carry the backend tags "
                         "(default: as before, 1 at first)")
    sub.add_parser("down", help="remove instances and stop the stand-ins")
    sub.add_parser("status", help="print the sandbox state")
    sub.add_parser("events", help="print the JSON-lines log of sessions and transfers")
    sub.add_parser("serve", help="run the SSM/S3 stand-ins in the foreground")
    stop = sub.add_parser("stop-instance", help="stop one instance (EC2 stop)")
    stop.add_argument("id")
    fleet = sub.add_parser("fleet", help="tag the first N instances as backends, the rest spares")
    fleet.add_argument("size", type=int)
    run = sub.add_parser("run", help="run one command against the sandbox's AWS endpoints")
    run.add_argument("command_args", nargs=argparse.REMAINDER, metavar="-- command ...")
    args = parser.parse_args(argv)
    paths = Paths()
    paths.root.mkdir(parents=True, exist_ok=True)
    handler = globals()[f"cmd_{args.command.replace('-', '_')}"]
    try:
        return handler(args, paths)
    except engine.SandboxError as exc:
        print(f"sandbox: {exc}", file=sys.stderr)
        return 1
