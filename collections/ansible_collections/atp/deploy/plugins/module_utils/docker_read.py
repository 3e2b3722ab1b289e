# Copyright: atp.deploy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Read-only docker calls shared by the modules (stdlib only).

Runs the docker_cmd builders with proc.run and parses their output with the docker_cmd parsers.
A failed read raises DockerReadError with the bare problem; each module words its own hint.
"""

from __future__ import annotations

from ansible_collections.atp.deploy.plugins.module_utils import docker_cmd, proc, route_gate


class DockerReadError(Exception):
    """A docker read failed. str(): the one-line problem; stage: "ps", "inspect" or "parse"."""

    def __init__(self, msg: str, stage: str):
        super().__init__(msg)
        self.stage = stage


def image_id(docker: str, ref: str, timeout: float) -> str | None:
    """Id of image `ref`, or None when it is missing (or docker cannot say)."""
    rc, out, _err = proc.run(docker_cmd.image_id(ref, docker), timeout=timeout)
    return docker_cmd.parse_image_id(rc, out)


def containers(docker: str, timeout: float, project: str | None = None,
               service: str | None = None, retry_vanished: bool = False) -> list[dict]:
    """`docker ps` then `docker inspect`: all containers, or those of project+service.

    retry_vanished: when inspect fails (a container may vanish between ps and inspect), list and
    inspect once more. Returns docker_cmd.parse_inspect dicts; raises DockerReadError.
    """
    if project is not None and service is not None:
        ps_argv = docker_cmd.ps_service_ids(project, service, docker)
    else:
        ps_argv = docker_cmd.ps_all_ids(docker)
    rc, out, err = proc.run(ps_argv, timeout=timeout)
    if rc != 0:
        raise DockerReadError(
            f"`docker ps` failed (exit {rc}): {docker_cmd.first_line(err or out)}", "ps")
    ids = docker_cmd.parse_ids(out)
    if not ids:
        return []
    rc, out, err = proc.run(docker_cmd.inspect(ids, docker), timeout=timeout)
    if rc != 0 and retry_vanished:
        rc, out, err = proc.run(ps_argv, timeout=timeout)
        ids = docker_cmd.parse_ids(out) if rc == 0 else []
        if not ids:
            return []
        rc, out, err = proc.run(docker_cmd.inspect(ids, docker), timeout=timeout)
    if rc != 0:
        raise DockerReadError(
            f"`docker inspect` failed (exit {rc}): {docker_cmd.first_line(err or out)}",
            "inspect")
    try:
        return docker_cmd.parse_inspect(out)
    except ValueError as exc:
        raise DockerReadError(str(exc), "parse") from exc


def log_tail(docker: str, container: str, lines: int, timeout: float) -> list[str]:
    """The last `lines` lines a container logged (stdout and stderr), passwords in URLs
    masked, long lines shortened; [] when docker cannot say."""
    rc, out, _err = proc.run(docker_cmd.logs_tail(container, lines, docker), timeout=timeout,
                             merge_stderr=True)
    if rc != 0:
        return []
    text = [route_gate.mask_urls(line.rstrip()) for line in out.splitlines() if line.strip()]
    return [docker_cmd.short_line(line) for line in text[-lines:]]
