"""The SSM session and its session-manager-plugin process: StartSession exactly as the AWS
CLI does, the plugin started and ended, TerminateSession."""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
import time
from collections.abc import Mapping
from pathlib import Path

from .common import PortForwardError, short
from .processes import pid_alive, read_cmdline

DOCUMENT = "AWS-StartPortForwardingSessionToRemoteHost"
PLUGIN = "session-manager-plugin"
READY_TEXT = "Waiting for connections"

_INSTANCE_ID = re.compile(r"^(?:i|mi)-[0-9a-f]{8,17}$")


# =========================================================================== pure


def validate_instance_id(instance_id: str) -> None:
    if not _INSTANCE_ID.match(instance_id):
        raise PortForwardError(
            f"expected an instance id like i-08726dc37133b2454, got {instance_id!r}: "
            "pass --instance-id with the EC2 (or mi-) id")


def build_start_request(instance_id: str, remote_host: str, remote_port: int,
                        local_port: int) -> dict:
    """ssm.start_session(**request) for a port-forward to remote_host:remote_port."""
    return {"Target": instance_id, "DocumentName": DOCUMENT,
            "Parameters": {"host": [remote_host], "portNumber": [str(remote_port)],
                           "localPortNumber": [str(local_port)]}}


def build_plugin_argv(plugin: str, response: Mapping, region: str, profile: str | None,
                      request: Mapping, endpoint_url: str) -> list[str]:
    """The session-manager-plugin command line, exactly as `aws ssm start-session` builds it."""
    return [plugin, json.dumps(response), region, "StartSession", profile or "",
            json.dumps(request), endpoint_url]


def aws_error(exc: Exception) -> str:
    response = getattr(exc, "response", None)
    if isinstance(response, dict) and "Error" in response:
        err = response["Error"]
        return short(f"{err.get('Code', '?')}: {err.get('Message', '')}", 140)
    return short(f"{type(exc).__name__}: {exc}", 140)


def plugin_profile(profile: str | None) -> str:
    return profile or os.environ.get("AWS_PROFILE") or os.environ.get("AWS_DEFAULT_PROFILE") or ""


# =========================================================================== I/O: AWS


def ssm_client(region: str, profile: str | None):
    import boto3
    from botocore.config import Config
    from botocore.exceptions import BotoCoreError

    config = Config(connect_timeout=10, read_timeout=30,
                    retries={"max_attempts": 3, "mode": "standard"})
    try:
        return boto3.Session(profile_name=profile or None, region_name=region).client(
            "ssm", config=config)
    except BotoCoreError as exc:
        raise PortForwardError(
            f"expected an SSM client for region {region} (profile {profile or '(default)'}), "
            f"saw {aws_error(exc)}: check --profile/--region and your AWS config") from exc


def start_session(ssm, request: dict, instance_id: str, region: str) -> dict:
    """ssm:StartSession; its response (SessionId, TokenValue, StreamUrl) for the plugin."""
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        return ssm.start_session(**request)
    except (BotoCoreError, ClientError) as exc:
        raise PortForwardError(
            f"expected ssm:StartSession to {instance_id} in {region} to succeed, saw "
            f"{aws_error(exc)}: check the instance is Online in SSM, --region and "
            "--profile/credentials") from exc


def terminate_session(state: dict, ssm=None) -> str | None:
    """ssm:TerminateSession for the recorded session; None on success, else the error."""
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        client = ssm or ssm_client(state["region"], state.get("profile"))
        client.terminate_session(SessionId=state["session_id"])
    except (BotoCoreError, ClientError, PortForwardError) as exc:
        return aws_error(exc) if not isinstance(exc, PortForwardError) else str(exc)
    return None


# =========================================================================== I/O: the plugin


def spawn_plugin(plugin: str, argv: list[str], log: Path) -> subprocess.Popen:
    """The plugin in its own session (process group), its output to ``log``."""
    with open(log, "wb") as out:
        try:
            return subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out,
                                    stderr=subprocess.STDOUT, start_new_session=True,
                                    close_fds=True)
        except OSError as exc:
            raise PortForwardError(
                f"expected to run {plugin}, saw {short(exc)}: check the plugin "
                "installation") from exc


def plugin_identity(pid: int | None, session_id: str) -> str:
    """"ours" (runs, and is the plugin of ``session_id``), "gone", or "other" (recycled pid)."""
    if not pid_alive(pid):
        return "gone"
    argv = read_cmdline(pid)
    if argv == []:
        return "gone"  # exiting (its memory is released) or a kernel thread
    if argv is None or any(session_id in arg for arg in argv):
        return "ours"
    return "other"


def is_our_plugin(pid: int | None, session_id: str) -> bool:
    return plugin_identity(pid, session_id) == "ours"


def wait_gone(pid: int, timeout: float, proc: subprocess.Popen | None = None) -> bool:
    """Bounded wait until ``pid`` has exited (reaped, zombie, or releasing its memory)."""
    deadline = time.monotonic() + timeout
    while True:
        if proc is not None and proc.poll() is not None:
            return True
        if not pid_alive(pid) or read_cmdline(pid) == []:
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.05)


def end_process(pid: int, session_id: str, proc: subprocess.Popen | None = None,
                grace: float = 5.0, settle: float = 0.0) -> str:
    """Give the plugin ``settle`` s to end by itself (it does after TerminateSession), then
    SIGTERM its process group, bounded wait, then SIGKILL. Returns what happened."""
    if pid and settle:
        wait_gone(pid, settle, proc)
    if proc is not None and proc.poll() is not None:
        return f"plugin pid {pid} ended"
    who = plugin_identity(pid, session_id)
    if who == "gone":
        return f"plugin pid {pid} was not running"
    if who == "other":
        return f"pid {pid} is now another process (not killed)"
    for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, 2.0)):
        try:
            if os.getpgid(pid) == pid:
                os.killpg(pid, sig)
            else:
                os.kill(pid, sig)
        except ProcessLookupError:
            return f"plugin pid {pid} ended"
        except PermissionError:
            return f"no permission to signal pid {pid}"
        if wait_gone(pid, wait, proc):
            if proc is not None:
                with contextlib.suppress(subprocess.TimeoutExpired):
                    proc.wait(timeout=1)
            return f"plugin pid {pid} " + ("ended" if sig == signal.SIGTERM else "killed")
    return f"pid {pid} survived SIGKILL"


def stop_recorded(state: dict, ssm=None, proc: subprocess.Popen | None = None) -> tuple[
        str | None, str]:
    """TerminateSession, then end the plugin. Returns (terminate error, process outcome)."""
    pid = int(state.get("pid") or 0)
    was_running = (proc is not None and proc.poll() is None) or is_our_plugin(
        pid, state["session_id"])
    error = terminate_session(state, ssm)
    outcome = end_process(pid, state["session_id"], proc, settle=2.0 if not error else 0.0)
    if was_running and outcome.endswith("was not running"):
        outcome = f"plugin pid {pid} ended"  # TerminateSession ended it
    return error, outcome
