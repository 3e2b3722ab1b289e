"""The commands (start, status, stop) and the command line of bin/atp-portforward."""

from __future__ import annotations

import argparse
import contextlib
import http.client
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

from .common import (
    EXIT_FAIL,
    EXIT_NOT_RUNNING,
    LOOPBACK,
    PROG,
    PortForwardError,
    short,
    validate_port,
)
from .docker import docker_containers, docker_stop
from .identity import (
    HEALTH_PATH,
    WHOAMI_PATH,
    Identity,
    check_health,
    check_identity,
    format_ready,
    http_get,
    http_get_until,
    target_text,
    tcp_connects,
)
from .ports import (
    PortCheck,
    bind_free,
    check_port,
    describe_holders,
    format_port_held,
    holder,
    lingering_on,
    listener_pids,
    listeners_on,
    port_lingering,
    port_listened,
    suggest_port,
    tcp_sockets,
)
from .processes import ancestry
from .session import (
    PLUGIN,
    READY_TEXT,
    build_plugin_argv,
    build_start_request,
    is_our_plugin,
    plugin_profile,
    spawn_plugin,
    ssm_client,
    start_session,
    stop_recorded,
    terminate_session,
    validate_instance_id,
)
from .state import LOG_FILE, clear_state, last_log_line, load_state, save_state, state_dir

DEFAULT_INSTANCE = "i-08726dc37133b2454"
DEFAULT_REGION = "ap-southeast-1"
DEFAULT_PORT = 8002
TIME_WAIT_WAIT = 65.0  # Linux keeps TIME_WAIT for 60 s
NO_LISTENER_GRACE = 2.0  # after "Waiting for connections", the plugin must listen within this


def _say(message: str) -> None:
    print(message, flush=True)


def _warn(message: str) -> None:
    print(f"{PROG}: warning: {message}", file=sys.stderr, flush=True)


def _alternative(port: int) -> int | None:
    return suggest_port(port, lambda p: bind_free(p, reuse=False) and not port_listened(p))


def _wait_port_free(port: int, timeout: float, bindable: bool = True,
                    strict: bool = False) -> bool:
    """Bounded wait until nothing listens on the port (and, if ``bindable``, it can be bound;
    ``strict``: even without SO_REUSEADDR)."""
    deadline = time.monotonic() + timeout
    while True:
        if not port_listened(port) and (not bindable or bind_free(port, reuse=not strict)):
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.2)


def _ensure_port_free(args: argparse.Namespace) -> None:
    port = args.local_port
    check = check_port(port)
    if not check.held:
        return
    if not (args.stop_container and check.containers):
        raise PortForwardError(format_port_held(port, args.instance_id, check,
                                                _alternative(port), args.stop_container))
    for container in check.containers:
        done = docker_stop(container.name)
        if done is None or done.returncode != 0:
            seen = short(done.stderr or done.stdout, 100) if done else "no answer within 60 s"
            raise PortForwardError(
                f"expected `docker stop {container.name}` to free local port {port}, it failed "
                f"({seen}): stop it yourself or re-run with --local-port {_alternative(port)}")
        _warn(f"stopped docker container {container.name} (it held local port {port})")
    if not _wait_port_free(port, timeout=15):
        raise PortForwardError(format_port_held(port, args.instance_id, check_port(port),
                                                _alternative(port)))
    # Connections the container's docker-proxy closed first stay in TIME_WAIT on the port for
    # up to 60 s; a plugin binding without SO_REUSEADDR would fail on them (and then never
    # accept). Wait them out rather than start a session that cannot work.
    if not bind_free(port, reuse=False):
        lingering = port_lingering(port)
        _warn(f"waiting up to {TIME_WAIT_WAIT:g} s for the kernel to release 127.0.0.1:{port} "
              f"({len(lingering)} connection(s) of the stopped container in "
              f"{'/'.join(sorted(set(lingering))) or 'TIME_WAIT'})")
        if not _wait_port_free(port, timeout=TIME_WAIT_WAIT, strict=True):
            check = PortCheck(True, lingering=port_lingering(port))
            raise PortForwardError(format_port_held(port, args.instance_id, check,
                                                    _alternative(port)))


def _check_existing(args: argparse.Namespace) -> None:
    state = load_state(args.local_port)
    if not state:
        return
    if is_our_plugin(state.get("pid"), state.get("session_id", "")):
        raise PortForwardError(
            f"local port {args.local_port} already has an {PROG} session to "
            f"{state.get('instance_id')} (session {state.get('session_id')}, pid "
            f"{state.get('pid')}): run `{PROG} stop --local-port {args.local_port}` first or "
            f"re-run with --local-port {_alternative(args.local_port)}")
    error = terminate_session(state)
    clear_state(args.local_port)
    _warn(f"removed stale state of session {state.get('session_id')} (plugin pid "
          f"{state.get('pid')} was not running)" + (f"; TerminateSession: {error}" if error
                                                    else ""))


def _wait_ready(proc: subprocess.Popen, log: Path, port: int, deadline: float,
                timeout: float) -> None:
    announced = False
    announced_at = 0.0
    while time.monotonic() < deadline:
        code = proc.poll()
        if code is not None:
            raise PortForwardError(
                f"expected {PLUGIN} to keep running and forward 127.0.0.1:{port}, it exited "
                f"with {code} ({last_log_line(log)}): see {log}")
        if not announced:
            with contextlib.suppress(OSError):
                announced = READY_TEXT in log.read_text(errors="replace")
                announced_at = time.monotonic()
        if announced and tcp_connects(port, timeout=1.0):
            return
        if announced and time.monotonic() - announced_at > NO_LISTENER_GRACE:
            sockets = tcp_sockets(port)
            if not listeners_on(sockets, port):
                # the plugin's busy-port behaviour: it says it waits, but could not bind the port
                check = PortCheck(True, lingering=lingering_on(sockets, port))
                why = (describe_holders(port, check) if check.lingering
                       else "something not visible here")
                raise PortForwardError(
                    f"expected {PLUGIN} to listen on 127.0.0.1:{port} after it reported "
                    f"'{READY_TEXT}', nothing listens: it could not bind the port (held by "
                    f"{why}); the port-forward was stopped: wait a minute or re-run with "
                    f"--local-port {_alternative(port)}")
        time.sleep(0.1)
    if not announced:
        raise PortForwardError(
            f"expected {PLUGIN} to print '{READY_TEXT}' within {timeout:g} s, it did not (last: "
            f"{last_log_line(log)}): raise --timeout or see {log}")
    raise PortForwardError(
        f"expected 127.0.0.1:{port} to accept within {timeout:g} s after {PLUGIN} reported "
        f"'{READY_TEXT}', it did not: the plugin could not bind the port (held by something "
        f"not visible here?); re-run with another --local-port")


def _check_listener_owner(port: int, plugin_pid: int) -> None:
    """The socket on 127.0.0.1:port must be the plugin's, or the tunnel is not in the path."""
    _listening, owners = listener_pids(port)
    if not owners or any(plugin_pid in ancestry(pid) for pid in owners):
        return
    check = PortCheck(True, [holder(pid) for pid in owners], docker_containers(port))
    raise PortForwardError(
        f"expected {PLUGIN} (pid {plugin_pid}) to own 127.0.0.1:{port}, but "
        f"{describe_holders(port, check)} does, so the tunnel is not in the path; the "
        f"port-forward was stopped: free the port or re-run with --local-port "
        f"{_alternative(port)}")


def _verify_target(args: argparse.Namespace, deadline: float) -> Identity:
    port = args.local_port
    where = target_text(args.instance_id, args.remote_host, args.remote_port)
    try:
        status, body = http_get_until(port, HEALTH_PATH, deadline)
    except ConnectionError as exc:
        raise PortForwardError(
            f"expected GET {HEALTH_PATH} through 127.0.0.1:{port} to answer 200 "
            f'{{"status":"ok"}} from {where}, saw no HTTP answer ({exc}): is the backend '
            f"running on the instance at {args.remote_host}:{args.remote_port}?") from exc
    problem = check_health(status, body)
    if problem:
        raise PortForwardError(
            f"expected GET {HEALTH_PATH} through 127.0.0.1:{port} to answer 200 "
            f'{{"status":"ok"}} from {where}, saw {problem}: check the backend on the instance '
            f"or --remote-port")
    try:
        status, body = http_get_until(port, WHOAMI_PATH, max(deadline, time.monotonic() + 5))
    except ConnectionError as exc:
        return Identity("unverified", f"identity not verified: GET {WHOAMI_PATH} gave no HTTP "
                                      f"answer ({exc}); assuming {args.instance_id}")
    identity = check_identity(status, body, args.instance_id, args.expect_environment, port)
    if identity.verdict == "mismatch":
        raise PortForwardError(identity.message + "; the port-forward was stopped")
    return identity


def cmd_start(args: argparse.Namespace) -> int:
    validate_instance_id(args.instance_id)
    for name in ("local_port", "remote_port"):
        validate_port("--" + name.replace("_", "-"), getattr(args, name))
    if args.timeout <= 0:
        raise PortForwardError(f"expected --timeout > 0, got {args.timeout:g}: fix --timeout")
    _check_existing(args)
    _ensure_port_free(args)
    plugin = shutil.which(PLUGIN)
    if not plugin:
        raise PortForwardError(
            f"expected {PLUGIN} on PATH, found none: install the Session Manager plugin "
            "(https://docs.aws.amazon.com/systems-manager/latest/userguide/"
            "session-manager-working-with-install-plugin.html)")

    began = time.monotonic()  # --timeout bounds the session start up to "ready"
    ssm = ssm_client(args.region, args.profile)
    request = build_start_request(args.instance_id, args.remote_host, args.remote_port,
                                  args.local_port)
    response = start_session(ssm, request, args.instance_id, args.region)
    session_id = response["SessionId"]
    region = ssm.meta.region_name or args.region
    argv = build_plugin_argv(plugin, response, region, plugin_profile(args.profile), request,
                             ssm.meta.endpoint_url)
    directory = state_dir(args.local_port)
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    log = directory / LOG_FILE
    state = {"session_id": session_id, "instance_id": args.instance_id, "region": region,
             "profile": args.profile or "", "local_port": args.local_port,
             "remote_host": args.remote_host, "remote_port": args.remote_port,
             "endpoint_url": ssm.meta.endpoint_url, "log": str(log), "pid": None,
             "started_at": time.time()}
    proc = None
    try:
        proc = spawn_plugin(plugin, argv, log)
        state["pid"] = proc.pid
        save_state(args.local_port, state)
        deadline = began + args.timeout
        _wait_ready(proc, log, args.local_port, deadline, args.timeout)
        _check_listener_owner(args.local_port, proc.pid)
        identity = _verify_target(args, deadline)
    except BaseException as exc:  # whatever went wrong: no session or plugin left behind
        error, outcome = stop_recorded(state, ssm, proc)
        clear_state(args.local_port, keep_log=True)
        if error:
            _warn(f"TerminateSession {session_id} failed ({error}); {outcome}")
        if isinstance(exc, KeyboardInterrupt):
            raise PortForwardError(f"interrupted: session {session_id} stopped ({outcome})",
                                   130) from None
        if isinstance(exc, PortForwardError) and "was stopped" not in str(exc):
            raise PortForwardError(f"{exc}; session {session_id} was stopped",
                                   exc.code) from None
        raise
    if identity.verdict == "unverified":
        _warn(identity.message)
    state.update(identity=identity.verdict, ready_seconds=round(time.monotonic() - began, 2))
    save_state(args.local_port, state)
    _say(format_ready(args.local_port, args.instance_id, args.remote_host, args.remote_port,
                      session_id, proc.pid))
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    port = args.local_port
    state = load_state(port)
    if not state:
        check = check_port(port)
        held = f"; the port is held by {describe_holders(port, check)}" if check.held else ""
        _say(f"no {PROG} session recorded for local port {port}{held}")
        return EXIT_NOT_RUNNING
    pid, session_id = state.get("pid"), state.get("session_id", "")
    alive = is_our_plugin(pid, session_id)
    target = target_text(state.get("instance_id", "?"), state.get("remote_host", LOOPBACK),
                         state.get("remote_port", 0))
    _say(f"session {session_id}: 127.0.0.1:{port} -> {target} (region {state.get('region')}, "
         f"profile {state.get('profile') or '(default)'}, identity {state.get('identity', '?')})")
    _say(f"plugin pid {pid}: {'alive' if alive else 'NOT running'}")
    _listening, owners = listener_pids(port)
    open_ = tcp_connects(port)
    owner = ""
    if owners:
        ours = bool(pid) and any(pid in ancestry(o) for o in owners)
        if ours:
            owner = " (listener: the plugin)"
        else:
            others = describe_holders(port, PortCheck(True, [holder(o) for o in owners]))
            owner = f" (listener: {others}, NOT the plugin)"
        alive = alive and ours
    _say(f"127.0.0.1:{port}: {'open' if open_ else 'closed'}{owner}")
    healthy = False
    if open_:
        try:
            status, body = http_get(port, HEALTH_PATH, timeout=5)
        except (OSError, http.client.HTTPException) as exc:
            _say(f"GET {HEALTH_PATH}: no answer ({short(exc, 80)})")
        else:
            problem = check_health(status, body)
            healthy = problem is None
            _say(f"GET {HEALTH_PATH}: {short(f'{status} {body}', 120) if healthy else problem}")
    if alive and open_ and healthy:
        return 0
    print(f"{PROG}: expected a live plugin owning an open port and a healthy backend on local "
          f"port {port}, see above: `{PROG} stop --local-port {port}`, then start again",
          file=sys.stderr)
    return EXIT_FAIL


def cmd_stop(args: argparse.Namespace) -> int:
    port = args.local_port
    state = load_state(port)
    if not state:
        _say(f"no {PROG} session recorded for local port {port}: nothing to stop")
        return 0
    error, outcome = stop_recorded(state)
    if error:
        raise PortForwardError(
            f"expected ssm:TerminateSession of {state['session_id']} to succeed, saw {error} "
            f"({outcome}): re-run `{PROG} stop --local-port {port}` once credentials work "
            "(AWS also ends the session after its idle timeout)")
    if "survived" in outcome or "permission" in outcome:
        raise PortForwardError(f"expected the plugin (pid {state.get('pid')}) to end, but "
                               f"{outcome}: kill it yourself, then re-run `{PROG} stop`")
    clear_state(port)
    closed = _wait_port_free(port, timeout=5, bindable=False)
    _say(f"port-forward stopped: session {state['session_id']} to {state.get('instance_id')} "
         f"terminated, {outcome}; 127.0.0.1:{port} {'closed' if closed else 'STILL OPEN'}")
    if not closed:
        raise PortForwardError(
            f"expected 127.0.0.1:{port} to close with the session, it is still held by "
            f"{describe_holders(port, check_port(port))}: stop that before using the port")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG, description="SSM port-forward to the backend, with the target proven.")
    sub = parser.add_subparsers(dest="command", required=True)
    start = sub.add_parser("start", help="start a port-forward and verify where it leads")
    start.add_argument("--instance-id", default=DEFAULT_INSTANCE)
    start.add_argument("--region", default=DEFAULT_REGION)
    start.add_argument("--profile", default=None)
    start.add_argument("--local-port", type=int, default=DEFAULT_PORT)
    start.add_argument("--remote-port", type=int, default=DEFAULT_PORT)
    start.add_argument("--remote-host", default=LOOPBACK)
    start.add_argument("--expect-environment", default=None,
                       help="also require whoami's environment (e.g. aws)")
    start.add_argument("--stop-container", action="store_true",
                       help="docker stop a container that publishes the local port")
    start.add_argument("--timeout", type=float, default=30.0,
                       help="seconds until the tunnel must answer (default 30)")
    for name, helptext in (("status", "show the recorded session"),
                           ("stop", "terminate the session and the plugin")):
        cmd = sub.add_parser(name, help=helptext)
        cmd.add_argument("--local-port", type=int, default=DEFAULT_PORT)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    handler = {"start": cmd_start, "status": cmd_status, "stop": cmd_stop}[args.command]
    try:
        return handler(args)
    except PortForwardError as exc:
        print(f"{PROG}: {exc}", file=sys.stderr, flush=True)
        return exc.code
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:
        if os.environ.get("ATP_PORTFORWARD_DEBUG") == "1":
            raise
        print(f"{PROG}: expected no internal error, saw {type(exc).__name__}: {short(exc)}: "
              "re-run with ATP_PORTFORWARD_DEBUG=1 for a traceback and report it",
              file=sys.stderr, flush=True)
        return EXIT_FAIL
