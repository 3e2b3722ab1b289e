"""atp-portforward: an SSM port-forward to the backend that proves where it leads.

Why: an operator's `aws ssm start-session ... localPortNumber=8002` silently reached a LOCAL
docker container (automated-trading-platform-backend-1) that held 127.0.0.1:8002, because the
session-manager-plugin reports "Waiting for connections" even when it could not bind the port.
This tool refuses a held port (naming the process or container), starts the session exactly as
the AWS CLI does, waits until the tunnel answers, and checks /api/health and
/api/diagnostics/whoami through it before it says "ready".

The package, one concern a module (each module's pure part first, its I/O after):

    common.py     names, exit codes, PortForwardError, redaction, the subprocess helper
    procfs.py     Linux /proc parsing and reading (used only where psutil is not importable)
    processes.py  alive / argv / parent of a pid (psutil; procfs without it)
    docker.py     `docker ps` and docker-proxy: which container publishes the port
    ports.py      sockets on the port and who holds it (psutil, lsof on macOS, ss), the refusal
    identity.py   /api/health and /api/diagnostics/whoami through the tunnel, the verdict
    state.py      the per-port state directory (state.json, plugin.log)
    session.py    StartSession/TerminateSession and the session-manager-plugin process
    cli.py        start, status, stop and main()

Everything callers used from the former single module is re-exported here.
"""

from __future__ import annotations

from .cli import (
    DEFAULT_INSTANCE,
    DEFAULT_PORT,
    DEFAULT_REGION,
    NO_LISTENER_GRACE,
    TIME_WAIT_WAIT,
    build_parser,
    cmd_start,
    cmd_status,
    cmd_stop,
    main,
)
from .common import (
    EXIT_FAIL,
    EXIT_NOT_RUNNING,
    LOOPBACK,
    PROG,
    PortForwardError,
    blocks_bind,
    redact,
    short,
    validate_port,
)
from .docker import (
    DOCKER_PS_FORMAT,
    Container,
    PortBinding,
    docker_containers,
    docker_proxy_target,
    parse_docker_ports,
    parse_docker_ps,
)
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
    Holder,
    PortCheck,
    Socket,
    bind_free,
    candidate_ports,
    check_port,
    command_line,
    describe_holders,
    find_holders,
    format_port_held,
    lingering_on,
    listener_pids,
    listeners_on,
    parse_lsof_listeners,
    parse_ss_listeners,
    suggest_port,
    tcp_sockets,
)
from .processes import ancestry, pid_alive, read_cmdline
from .procfs import (
    TCP_LISTEN,
    TCP_STATES,
    ProcSocket,
    decode_proc_addr,
    fd_links,
    parse_cmdline,
    parse_proc_net_tcp,
    parse_stat,
    pids_holding,
    read_proc_sockets,
    socket_inode,
)
from .session import (
    DOCUMENT,
    PLUGIN,
    READY_TEXT,
    aws_error,
    build_plugin_argv,
    build_start_request,
    end_process,
    is_our_plugin,
    plugin_identity,
    plugin_profile,
    ssm_client,
    stop_recorded,
    terminate_session,
    validate_instance_id,
    wait_gone,
)
from .state import (
    LOG_FILE,
    STATE_ENV,
    STATE_FILE,
    clear_state,
    last_log_line,
    load_state,
    save_state,
    state_dir,
    state_root,
)

__all__ = [
    "DEFAULT_INSTANCE", "DEFAULT_PORT", "DEFAULT_REGION", "DOCKER_PS_FORMAT", "DOCUMENT",
    "EXIT_FAIL", "EXIT_NOT_RUNNING", "HEALTH_PATH", "LOG_FILE", "LOOPBACK", "NO_LISTENER_GRACE",
    "PLUGIN", "PROG", "READY_TEXT", "STATE_ENV", "STATE_FILE", "TCP_LISTEN", "TCP_STATES",
    "TIME_WAIT_WAIT", "WHOAMI_PATH", "Container", "Holder", "Identity", "PortBinding",
    "PortCheck", "PortForwardError", "ProcSocket", "Socket", "ancestry", "aws_error",
    "bind_free", "blocks_bind", "build_parser", "build_plugin_argv", "build_start_request",
    "candidate_ports", "check_health", "check_identity", "check_port", "clear_state",
    "cmd_start", "cmd_status", "cmd_stop", "command_line", "decode_proc_addr",
    "describe_holders", "docker_containers", "docker_proxy_target", "end_process", "fd_links",
    "find_holders", "format_port_held", "format_ready", "http_get", "http_get_until",
    "is_our_plugin", "last_log_line", "lingering_on", "listener_pids", "listeners_on",
    "load_state", "main", "parse_cmdline", "parse_docker_ports", "parse_docker_ps",
    "parse_lsof_listeners", "parse_proc_net_tcp", "parse_ss_listeners", "parse_stat",
    "pid_alive", "pids_holding", "plugin_identity", "plugin_profile", "read_cmdline",
    "read_proc_sockets", "redact", "save_state", "short", "socket_inode", "ssm_client",
    "state_dir", "state_root", "stop_recorded", "suggest_port", "target_text", "tcp_connects",
    "tcp_sockets", "terminate_session", "validate_instance_id", "validate_port", "wait_gone",
]
