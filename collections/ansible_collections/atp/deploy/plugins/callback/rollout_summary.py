# Copyright: (c) 2025, ATP deploy
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Callback atp.deploy.rollout_summary: the deploy's output ends with one line per host.

Before those lines, a short block per host (release, commit, what changed, smoke lines,
duration, SSM sessions, the rollback command), and the same facts as one JSON line per host
appended to reports/deploys.jsonl (playbooks/history.yml prints them).
"""

from __future__ import annotations

DOCUMENTATION = r"""
---
name: rollout_summary
type: aggregate
author: atp.deploy contributors (!UNKNOWN)
short_description: Closing summary per host of a deploy or rollback, and the deploy history
description:
  - "After the play recap, prints C(<host>: <outcome>) for every host the deploy targeted, in
    inventory order, where the outcome is what the deploy recorded with
    C(ansible.builtin.set_stats) (C(deploy_outcome), per host), e.g. C(new release <id>) or
    C(rolled back to <id>). These lines are always the last lines of the output."
  - A host the rollout never reached (it stopped at an earlier failure) prints C(untouched); a
    host that failed before recording an outcome prints C(failed before any change ...).
  - "Before those lines, a block per host the run reached: release, git SHA, operator, start
    time and duration, SSM sessions used, what changed (code, env, image built or reused,
    container recreated or kept), the smoke lines and, when a new release went live, the
    command that rolls it back. The facts come from the deploy's C(deploy_summary) stats
    (per host), from the results of C(atp.deploy.smoke_check), C(atp.deploy.compose_release)
    and C(atp.deploy.deploy_record), and for rollback.yml from those results alone."
  - "SSM sessions: tasks that ran for the host over an C(aws_ssm) connection, not delegated and
    not a controller-only action (set_fact, debug, assert, argument validation, the
    collection's action plugins that never send a module). A remote task is one session."
  - "Appends one JSON line per host (time, operator, host, playbook, result, release, git_sha,
    duration_s, smoke, error, ...) to C(reports/deploys.jsonl) of the repository the playbook
    belongs to (the directory holding ansible.cfg next to or above the playbook), mode 0600,
    its directory created 0700. The environment variable C(ATP_DEPLOY_HISTORY) names another
    file. Only what the run recorded is written: never env values; the error is the deploy's
    own masked text, cut to 300 characters. A file that cannot be written is one warning."
  - Silent for playbooks other than deploy.yml (C(deploy_rollout_hosts) stats) and rollback.yml
    (a listing with C(rollback_list) writes nothing).
  - Enabled in ansible.cfg (C(callbacks_enabled = atp.deploy.rollout_summary)).
requirements:
  - enabled in ansible.cfg
"""

import contextlib  # noqa: E402
import datetime  # noqa: E402
import getpass  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import shlex  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

from ansible import constants, context  # noqa: E402
from ansible.plugins.callback import CallbackBase  # noqa: E402

HOSTS_KEY = "deploy_rollout_hosts"
OUTCOME_KEY = "deploy_outcome"
SUMMARY_KEY = "deploy_summary"
HISTORY_ENV = "ATP_DEPLOY_HISTORY"
HISTORY_FILE = Path("reports") / "deploys.jsonl"
ERROR_CHARS = 300
ROLLBACK_PLAYBOOK = "rollback.yml"

# Actions that never open a session to the host: they run in the controller's process.
LOCAL_ACTIONS = {
    f"ansible.builtin.{name}" for name in (
        "set_fact", "set_stats", "debug", "assert", "fail", "meta", "include_tasks",
        "import_tasks", "include_role", "import_role", "include_vars", "include",
        "add_host", "group_by", "pause", "validate_argument_spec", "end_play", "end_host")
}
_ACTION_DIR = Path(__file__).resolve().parent.parent / "action"


def _controller_actions() -> set[str]:
    """The collection's action plugins that never send a module to the host."""
    found = set()
    with contextlib.suppress(OSError):
        for path in _ACTION_DIR.glob("*.py"):
            if "_execute_module" not in path.read_text(encoding="utf-8", errors="replace"):
                found.add(f"atp.deploy.{path.stem}")
    return found


CONTROLLER_ACTIONS = LOCAL_ACTIONS | _controller_actions()


# --------------------------------------------------------------------------- the closing lines


def summary_lines(custom: dict, failed: set[str]) -> list[str]:
    """The closing lines from ``stats.custom`` and the names of failed/unreachable hosts."""
    hosts = (custom.get("_run") or {}).get(HOSTS_KEY) or []
    lines = []
    for host in hosts:
        outcome = (custom.get(host) or {}).get(OUTCOME_KEY)
        if not outcome:
            outcome = ("failed before any change to its release (see the error above)"
                       if host in failed else "untouched")
        lines.append(f"{host}: {outcome}")
    return lines


# --------------------------------------------------------------------------- what a run saw


class Trail:
    """What the callback saw of one host during the run (its own hooks, no variables)."""

    def __init__(self, now: float) -> None:
        self.first_seen = now
        self.last_seen = now
        self.sessions = 0
        self.ssm: bool | None = None  # the host's connection is aws_ssm (None: unknown)
        self.ssm_checked = False
        self.compose_runs = 0
        # smoke lines of each smoke_check run, with the compose_release runs before it
        self.smoke: list[tuple[int, list[str]]] = []
        self.compose: dict = {}
        self.record: dict = {}
        self.facts: dict = {}
        self.failed_task = ""


def _text(value: object) -> str:
    return "" if value is None else str(value)


def _flag(value: object) -> bool:
    """A boolean from set_stats data (native, or a string from an older ansible-core)."""
    if isinstance(value, str):
        return value.strip().lower() in {"true", "yes", "1"}
    return bool(value)


def _lines(value: object) -> list[str]:
    if isinstance(value, str):
        return [value] if value else []
    if isinstance(value, list | tuple):
        return [str(item) for item in value if item not in (None, "")]
    return []


def _cut(text: object, limit: int = ERROR_CHARS) -> str:
    text = " ".join(_text(text).split())
    return text if len(text) <= limit else text[:limit - 3] + "..."


def _parse_time(value: object) -> float | None:
    """Seconds since the epoch from an ISO time (naive = UTC, as now(utc=true) gives it)."""
    if not value:
        return None
    try:
        moment = datetime.datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=datetime.UTC)
    return moment.timestamp()


def _iso(seconds: float) -> str:
    return datetime.datetime.fromtimestamp(seconds, datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _duration(seconds: int | None) -> str:
    if seconds is None:
        return ""
    minutes, secs = divmod(max(int(seconds), 0), 60)
    hours, minutes = divmod(minutes, 60)
    if hours:
        return f"{hours}h {minutes}m {secs}s"
    return f"{minutes}m {secs}s" if minutes else f"{secs}s"


def _operator() -> str:
    """Who runs this, the way the playbooks name deploy_operator ($USER, $LOGNAME, id -un)."""
    name = os.environ.get("USER") or os.environ.get("LOGNAME")
    if not name:
        try:
            name = getpass.getuser()
        except (KeyError, OSError):
            name = ""
    return name


def _result_of_outcome(outcome: str) -> str:
    for prefix, result in (("check mode", "check mode"), ("new release", "new release"),
                           ("rolled back", "rolled back"), ("rollback to", "rollback failed"),
                           ("unchanged", "unchanged"), ("failed", "failed")):
        if outcome.startswith(prefix):
            return result
    return "re-activated" if "re-activated" in outcome else outcome.split(",")[0]


def _changes(summary: dict) -> list[str]:
    """What the deploy changed, only from what its summary says."""
    changes = []
    if _flag(summary.get("code_uploaded")):
        files = summary.get("code_files")
        changes.append(f"code uploaded ({files} files)" if files else "code uploaded")
    elif summary.get("code_from"):
        changes.append(f"code from release {summary['code_from']}")
    else:
        changes.append("code already on the instance")
    env_set = _text(summary.get("env_set"))
    if _flag(summary.get("env_written")):
        files = ", ".join(_lines(summary.get("env_files_changed")))
        changes.append(f"env set {env_set} written" + (f" ({files} changed)" if files else ""))
    elif env_set:
        changes.append(f"env set {env_set} reused")
    else:
        changes.append("env unchanged")
    if _flag(summary.get("image_built")):
        changes.append("image built")
    elif summary.get("image_from"):
        changes.append(f"image reused ({summary['image_from']})")
    elif _flag(summary.get("activated")):
        changes.append("image reused")
    else:
        changes.append("image kept")
    switch = summary.get("switch") if isinstance(summary.get("switch"), dict) else {}
    if switch.get("upstream"):
        # Zero-downtime: a new container beside the old one, then the port moved to it.
        line = f"traffic moved to {switch['upstream']} without a gap"
        if float(switch.get("gap_seconds") or 0) > 0:
            line = (f"traffic moved to {switch['upstream']}; the port was CONVERTED to the "
                    f"proxy with one gap of {switch['gap_seconds']} s")
        stopped = ", ".join(_lines(switch.get("stopped")))
        changes.append(line + (f", old container {stopped} drained in "
                               f"{(switch.get('drained') or {}).get('seconds', 0)} s and stopped"
                               if stopped else ""))
    else:
        changes.append("container recreated" if _flag(summary.get("recreated"))
                       else "container kept")
    return changes


# compose_release's timings, in the order a deploy runs them, as the summary names them.
WAIT_LABELS = {"build": "build", "route_gate": "route gate", "dependencies": "dependencies",
               "candidate": "new container up",
               "candidate_failed": "new container, never answered", "up": "recreate"}


def _waits(timings) -> dict[str, float]:
    """The steps of compose_release that took a second or more (what a slow deploy waited
    for), in deploy order; anything that is not a number is left out."""
    if not isinstance(timings, dict):
        return {}
    waits = {}
    for step in [*WAIT_LABELS, *sorted(set(timings) - set(WAIT_LABELS))]:
        try:
            seconds = float(timings[step])
        except (KeyError, TypeError, ValueError):
            continue
        if seconds >= 1:
            waits[str(step)] = round(seconds, 1)
    return waits


def _record(host: str, trail: Trail | None, base: dict) -> dict:
    """One history entry: ``base`` (what the playbook said) + what the callback saw."""
    started = _text(base.get("started"))
    start = _parse_time(started)
    end = trail.last_seen if trail else time.time()
    if start is None and trail:
        start = trail.first_seen  # the first result the callback saw for the host
    duration = round(end - start) if start is not None and end >= start else None
    return {
        "time": _iso(end),
        "operator": _text(base.get("operator")) or _operator(),
        "host": host,
        "playbook": base.get("playbook", ""),
        "result": base.get("result", ""),
        "outcome": _cut(base.get("outcome", ""), 2 * ERROR_CHARS),
        "release": _text(base.get("release")),
        "git_sha": _text(base.get("git_sha")),
        "previous_release": _text(base.get("previous_release")),
        "rollback_to": _text(base.get("rollback_to")),
        "started": started,
        "duration_s": duration,
        "sessions": trail.sessions if trail and trail.ssm else None,
        "changes": base.get("changes", []),
        "waits": _waits(base.get("waits")),
        "smoke": base.get("smoke", []),
        "smoke_after_rollback": base.get("smoke_after_rollback", []),
        "error": _cut(base.get("error", "")),
    }


def _smoke_runs(trail: Trail | None, fallback: list[str]) -> tuple[list[str], list[str]]:
    """The deploy's own smoke lines and those of the health check after a rollback: a smoke run
    after a second compose_release run belongs to the rollback."""
    if not trail or not trail.smoke:
        return fallback, []
    own = [lines for compose_runs, lines in trail.smoke if compose_runs <= 1]
    after = [lines for compose_runs, lines in trail.smoke if compose_runs > 1]
    return (own[-1] if own else []), (after[-1] if after else [])


def deploy_records(custom: dict, failed: set[str], trails: dict[str, Trail]) -> list[dict]:
    """One entry per host of a deploy.yml rollout (silent for other playbooks)."""
    hosts = (custom.get("_run") or {}).get(HOSTS_KEY) or []
    records = []
    for host in hosts:
        stats = custom.get(host) or {}
        summary = stats.get(SUMMARY_KEY) if isinstance(stats.get(SUMMARY_KEY), dict) else {}
        outcome = _text(stats.get(OUTCOME_KEY))
        trail = trails.get(host)
        if summary.get("result"):
            result = _text(summary["result"])
        elif outcome:
            result = _result_of_outcome(outcome)
        else:
            result = "failed" if host in failed else "untouched"
        base = dict(summary, playbook="deploy", result=result, outcome=outcome or result)
        base["changes"] = (_changes(summary) if summary and result in {
            "new release", "re-activated", "unchanged"} else [])
        base["smoke"], base["smoke_after_rollback"] = _smoke_runs(
            trail, _lines(summary.get("smoke")))
        if result == "failed" and not summary and trail and trail.failed_task:
            # the playbook's own error text is masked; a task's message is not: name the task
            base["error"] = f"failed at: {trail.failed_task}"
        if result != "new release":
            base["previous_release"] = ""
        records.append(_record(host, trail, base))
    return records


def rollback_records(trails: dict[str, Trail], failed: set[str], requested: str) -> list[dict]:
    """One entry per host a rollback.yml run recorded (deploy_record) or that failed."""
    records = []
    for host, trail in trails.items():
        record = trail.record
        if not record and host not in failed:
            continue
        ok = record.get("result") == "rolled_back" and host not in failed
        release = (_text(record.get("release")) or _text(trail.facts.get("deploy_release_id"))
                   or requested)
        if release == "none":
            release = requested
        base = {
            "playbook": "rollback",
            "result": "rolled back" if ok else "failed",
            "outcome": (f"rolled back to {release}" if ok
                        else f"rollback to {release or 'the previous release'} failed"),
            "release": release,
            "git_sha": _text(record.get("git_sha")) or _text(trail.facts.get("git_sha")),
            "operator": _text(record.get("operator")),
            "started": _text(record.get("started")) or _text(trail.facts.get("deploy_started")),
            "previous_release": _text(trail.compose.get("previous_release")),
            "error": (_text(record.get("error")) if record
                      else f"failed at: {trail.failed_task}" if trail.failed_task else ""),
        }
        if trail.compose:
            base["changes"] = ["container recreated" if trail.compose.get("recreated")
                               else "container kept"]
        base["smoke"] = trail.smoke[-1][1] if trail.smoke else []
        records.append(_record(host, trail, base))
    return records


# --------------------------------------------------------------------------- output


def rollback_command(host: str, cli: dict | None = None, cwd: str | None = None,
                     playbook: str | None = None) -> str:
    """The command that puts the previous release back on ``host``, with this run's inventory
    (when not the configured default) and vault options."""
    cli = cli or {}
    cwd = cwd or os.getcwd()

    def shown(path: str) -> str:
        if "," in path or not os.path.isabs(path):
            return path
        relative = os.path.relpath(path, cwd)
        return path if relative.startswith("..") else relative

    argv = ["ansible-playbook"]
    inventory = list(cli.get("inventory") or [])
    if inventory and inventory != list(cli.get("default_inventory") or []):
        for source in inventory:
            argv += ["-i", shown(str(source))]
    argv.append(shown(playbook) if playbook else "playbooks/rollback.yml")
    argv += ["-l", host]
    for vault_id in cli.get("vault_ids") or []:
        argv += ["--vault-id", str(vault_id)]
    for password_file in cli.get("vault_password_files") or []:
        argv += ["--vault-password-file", shown(str(password_file))]
    if cli.get("ask_vault_pass"):
        argv.append("--ask-vault-pass")
    return shlex.join(argv)


def detail_lines(records: list[dict], undo: dict[str, str] | None = None) -> list[str]:
    """The block per host printed before the closing lines (untouched hosts: none)."""
    undo = undo or {}
    lines: list[str] = []
    for entry in records:
        if entry["result"] == "untouched":
            continue
        lines.append(f"{entry['host']} ({entry['result']})")
        release = entry["release"] or "-"
        if entry["previous_release"]:
            release += f" (was {entry['previous_release']})"
        if entry["rollback_to"] and entry["result"] == "rolled back":
            release += f", rolled back to {entry['rollback_to']}"
        elif entry["rollback_to"] and entry["result"] == "rollback failed":
            release += f", the rollback to {entry['rollback_to']} FAILED"
        lines.append(f"  release  {release}")
        if entry["git_sha"]:
            lines.append(f"  commit   {entry['git_sha']}")
        when = [entry["operator"] or "?"]
        if entry["started"]:
            start = _parse_time(entry["started"])
            when.append(f"started {_iso(start)}" if start is not None else entry["started"])
        if entry["duration_s"] is not None:
            when.append(f"took {_duration(entry['duration_s'])}")
        if entry["sessions"] is not None:
            when.append(f"{entry['sessions']} SSM session{'s' if entry['sessions'] != 1 else ''}")
        lines.append("  by       " + ", ".join(when))
        if entry["changes"]:
            lines.append("  changed  " + ", ".join(entry["changes"]))
        if entry.get("waits"):
            lines.append("  waited   " + ", ".join(
                f"{WAIT_LABELS.get(step, step)} {seconds:.1f} s"
                for step, seconds in entry["waits"].items()))
        # the smoke lines of the deploy, then those of the health check after its rollback
        for label, smoke in (("smoke", entry["smoke"]),
                             ("rollback", entry["smoke_after_rollback"])):
            lines += [(f"  {label:<8} " if index == 0 else " " * 11) + line
                      for index, line in enumerate(smoke)]
        if entry["error"]:
            lines.append(f"  error    {entry['error']}")
        if entry["host"] in undo:
            lines.append(f"  undo     {undo[entry['host']]}")
    return lines


# --------------------------------------------------------------------------- the history file


def repo_root(playbook_dir: str | None) -> Path:
    """The repository of the playbook: the nearest of its dir and the parent holding
    ansible.cfg; else the parent of a playbooks/ dir; else the dir itself (cwd without one)."""
    base = Path(playbook_dir or os.getcwd()).resolve()
    for candidate in (base, base.parent):
        if (candidate / "ansible.cfg").is_file():
            return candidate
    return base.parent if base.name == "playbooks" else base


def history_path(playbook_dir: str | None, environ: dict | None = None) -> Path:
    """reports/deploys.jsonl of the repository, or $ATP_DEPLOY_HISTORY."""
    environ = os.environ if environ is None else environ
    override = environ.get(HISTORY_ENV, "").strip()
    if override:
        return Path(override).expanduser()
    return repo_root(playbook_dir) / HISTORY_FILE


def append_history(path: Path, records: list[dict]) -> None:
    """Append one JSON line per entry; the file 0600, a new directory 0700. Raises OSError."""
    if not records:
        return
    directory = path.parent
    if not directory.is_dir():
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        os.chmod(directory, 0o700)
    data = "".join(json.dumps(entry, ensure_ascii=False, default=str) + "\n"
                   for entry in records).encode("utf-8")
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    try:
        with contextlib.suppress(OSError):
            os.fchmod(fd, 0o600)
        os.write(fd, data)  # one write: a concurrent run never interleaves within a line
    finally:
        os.close(fd)


# --------------------------------------------------------------------------- the plugin


class CallbackModule(CallbackBase):
    """Prints the per-host summary and rollout lines at the very end of the run."""

    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = "aggregate"
    CALLBACK_NAME = "atp.deploy.rollout_summary"
    CALLBACK_NEEDS_ENABLED = True

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._trails: dict[str, Trail] = {}
        self._playbook_dir: str | None = None
        self._playbook_name = ""
        self._play = None
        self._extra_vars: dict = {}

    # ----------------------------------------------------------- what the run does

    def v2_playbook_on_start(self, playbook) -> None:
        """Which playbook runs, and where (the history file belongs to its repository)."""
        with contextlib.suppress(Exception):
            self._playbook_dir = getattr(playbook, "_basedir", None)
            self._playbook_name = os.path.basename(getattr(playbook, "_file_name", "") or "")

    def v2_playbook_on_play_start(self, play) -> None:
        """The play's variables: each host's connection, -e rollback_list/rollback_to."""
        self._play = play
        with contextlib.suppress(Exception):
            manager = getattr(play, "_variable_manager", None)
            self._extra_vars = dict(getattr(manager, "extra_vars", None) or {})

    def v2_runner_on_ok(self, result) -> None:
        self._saw(result, failed=False)

    def v2_runner_on_failed(self, result, ignore_errors: bool = False) -> None:
        self._saw(result, failed=not ignore_errors)

    def v2_runner_on_unreachable(self, result) -> None:
        self._saw(result, failed=True)

    def _connection_is_ssm(self, host) -> bool | None:
        manager = getattr(self._play, "_variable_manager", None)
        if manager is None:
            return None
        try:
            hostvars = manager.get_vars(play=self._play, host=host, include_hostvars=False)
        except Exception:  # a count is a courtesy, never a reason to fail
            return None
        return "aws_ssm" in _text(hostvars.get("ansible_connection"))

    def _saw(self, result, failed: bool) -> None:
        with contextlib.suppress(Exception):  # the summary never breaks a deploy
            self._note(result, failed)

    def _note(self, result, failed: bool) -> None:
        host = result._host
        name = host.get_name()
        now = time.time()
        trail = self._trails.get(name)
        if trail is None:
            trail = self._trails[name] = Trail(now)
        trail.last_seen = now
        task = result._task
        data = result._result if isinstance(result._result, dict) else {}
        action = ""
        with contextlib.suppress(Exception):
            action = task.resolved_action or ""
        action = action or _text(getattr(task, "action", ""))
        if action.startswith("ansible.legacy.") or "." not in action:
            action = "ansible.builtin." + action.rsplit(".", 1)[-1]
        if failed:
            trail.failed_task = _text(task.get_name()).strip()
        delegated = bool(data.get("_ansible_delegated_vars")) or bool(
            getattr(task, "delegate_to", None))
        if not delegated and action not in CONTROLLER_ACTIONS:
            if not trail.ssm_checked:
                trail.ssm_checked = True
                trail.ssm = self._connection_is_ssm(host)
            trail.sessions += 1
        if action == "atp.deploy.compose_release":
            trail.compose_runs += 1
            trail.compose = {key: data.get(key) for key in
                             ("release_id", "previous_release", "built", "recreated", "switched")}
        elif action == "atp.deploy.smoke_check":
            trail.smoke.append((trail.compose_runs, _lines(data.get("summary"))))
        elif action == "atp.deploy.deploy_record" and data.get("line"):
            with contextlib.suppress(ValueError, TypeError):
                record = json.loads(data["line"])
                if isinstance(record, dict):
                    trail.record = record
        facts = data.get("ansible_facts")
        if isinstance(facts, dict):
            for key in ("deploy_started", "deploy_release_id"):
                if facts.get(key):
                    trail.facts[key] = _text(facts[key])
            source = facts.get("source_preflight_result")
            if isinstance(source, dict) and source.get("git_sha"):
                trail.facts["git_sha"] = _text(source["git_sha"])

    # ----------------------------------------------------------- the end

    def _records(self, custom: dict, failed: set[str]) -> list[dict]:
        if (custom.get("_run") or {}).get(HOSTS_KEY):
            return deploy_records(custom, failed, self._trails)
        if self._playbook_name == ROLLBACK_PLAYBOOK and not _flag(
                self._extra_vars.get("rollback_list", False)):
            return rollback_records(self._trails, failed,
                                    _text(self._extra_vars.get("rollback_to")))
        return []

    def _undo(self, records: list[dict]) -> dict[str, str]:
        cli: dict = {}
        with contextlib.suppress(Exception):
            args = context.CLIARGS
            keys = ("inventory", "vault_ids", "vault_password_files", "ask_vault_pass")
            cli = {key: args.get(key) for key in keys}
            cli["default_inventory"] = constants.DEFAULT_HOST_LIST
        playbook = repo_root(self._playbook_dir) / "playbooks" / ROLLBACK_PLAYBOOK
        shown = str(playbook) if playbook.is_file() else None
        return {entry["host"]: rollback_command(entry["host"], cli, playbook=shown)
                for entry in records if entry["result"] == "new release"}

    def v2_playbook_on_stats(self, stats) -> None:
        """Runs after the stdout callback's PLAY RECAP."""
        failed = {host for host, count in {**stats.failures, **stats.dark}.items() if count}
        custom = getattr(stats, "custom", {}) or {}
        lines = summary_lines(custom, failed)
        try:
            records = self._records(custom, failed)
            details = detail_lines(records, self._undo(records))
        except Exception as exc:  # the closing lines below still print
            records, details = [], []
            self._display.warning(f"rollout summary: could not build the summary: {exc}")
        if details:
            title = f"{records[0]['playbook'].upper()} SUMMARY "
            self._display.display(title + "*" * (80 - len(title)))
            for line in details:
                self._display.display(line)
        if records:
            path = history_path(self._playbook_dir)
            try:
                append_history(path, records)
            except (OSError, ValueError, TypeError) as exc:
                self._display.warning(f"deploy history not written to {path}: {exc}")
        if lines:
            self._display.display("ROLLOUT " + "*" * 72)
            for line in lines:
                self._display.display(line)
