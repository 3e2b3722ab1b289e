#!/usr/bin/env python3
"""Benchmark deploy.yml against a naive playbook in the sandbox, with real-SSM-like latency.

For three apps (the sample, the realistic fixture, the sample plus 500 generated files) and
four cases (first deploy, unchanged redeploy, one-file change, rollback), each playbook
(deploy.yml + playbooks/rollback.yml, and tests/bench/naive_deploy.yml) runs on the
benchmark's own sandbox instance with the stand-ins' modeled latency set
(bench_report.LATENCY_MS). Measured per run: SSM sessions, remote commands, S3 requests and
bytes (stand-ins' event log), wall time, builds and restarts on the instance, failed health
probes (10 Hz on 8002 from inside the instance) and the longest gap. Prints a table and the
targets (PASS / MISS) and writes docs/benchmarks.{md,json,png}.

  make bench              # everything, ~70 min (most of it the naive playbook copying the
                          # 500-file tree file by file)
  make bench-short        # CI: the sample, one-file change + rollback, ~2.5 min; exits 1 on a
                          # failed probe (--short --fail-on-probe)
  tests/bench/bench_deploy.py --apps sample --cases changed --playbooks deploy   # a dev run
  tests/bench/bench_deploy.py --apps fixture     # one app (the sandbox is free in between),
  tests/bench/bench_deploy.py --assemble .artifacts/bench/result-*.json   # then the docs
  tests/bench/bench_deploy.py --apps fixture --playbooks deploy --latency STARTSESSION=4000
                          # the same cases at another modeled latency (an experiment: no docs)
  tests/bench/bench_deploy.py --assemble docs/benchmarks.json --sensitivity RESULT_JSON
                          # the docs, with that experiment as their sensitivity section

Run it as root (the probe opens sockets in the instance's network namespace), with the
sandbox up (`make sandbox-up SANDBOX_INSTANCES=4`), alone on the sandbox.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
for path in (HERE, REPO / "tests", REPO / "sandbox"):
    if str(path) not in sys.path:
        sys.path.insert(0, str(path))

import bench_apps  # noqa: E402
import bench_report  # noqa: E402
from atp_sandbox.config import Paths, container_name, instance_ids, load_state  # noqa: E402
from bench_probe import BuildWatch, HealthProbe, event_figures, probe_once  # noqa: E402
from integration.conftest import APP, Events, playbook  # noqa: E402

BENCH_INSTANCE = instance_ids(4)[3]  # no other test uses it (tests/bench/inventory)
PROJECT = "automated-trading-platform"
NAIVE = HERE / "naive_deploy.yml"
CALIBRATION = HERE / "session_cost.yml"
LOGS = REPO / ".artifacts" / "bench"
PLAYBOOK_TIMEOUT_S = 3600


def log(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", flush=True)


# ----------------------------------------------------------------------------- the instance


def instance_sh(container: str, script: str, timeout: int = 600) -> subprocess.CompletedProcess:
    """Test infrastructure on the instance (cleaning, reading), not part of any measurement."""
    return subprocess.run(["docker", "exec", container, "bash", "-c", script],
                          capture_output=True, text=True, timeout=timeout, check=False)


def clean_instance(container: str) -> None:
    """No app dir, no compose project (containers, volumes, networks), none of its images and
    no build cache: every playbook's first deploy starts from the same empty instance (the
    base images the apps build FROM stay: they come with the instance, as on EC2)."""
    proc = instance_sh(container, f"""
        set -u
        docker ps -aq --filter label=com.docker.compose.project={PROJECT} | xargs -r docker rm -f
        docker volume ls -q --filter label=com.docker.compose.project={PROJECT} \
          | xargs -r docker volume rm -f
        docker network ls -q --filter label=com.docker.compose.project={PROJECT} \
          | xargs -r docker network rm
        docker images --format '{{{{.Repository}}}}:{{{{.Tag}}}}' | grep '^{PROJECT}' \
          | xargs -r docker rmi -f
        docker builder prune -af
        rm -rf {APP} {APP}.*
    """)
    if proc.returncode != 0:
        raise SystemExit(f"cleaning {container} failed (exit {proc.returncode}): "
                         f"{(proc.stderr or proc.stdout).strip()[-300:]}; check the instance")


def containers(container: str) -> dict[str, tuple[str, str]]:
    """service -> (container id, started at) of the project's running app containers."""
    proc = instance_sh(container, (
        f"ids=$(docker ps -q --filter label=com.docker.compose.project={PROJECT}); "
        "[ -z \"$ids\" ] || docker inspect --format "
        "'{{index .Config.Labels \"com.docker.compose.service\"}} "
        "{{index .Config.Labels \"com.docker.compose.oneoff\"}} {{.Id}} {{.State.StartedAt}}' "
        "$ids"), timeout=60)
    found = {}
    for line in proc.stdout.splitlines():
        parts = line.split()
        if len(parts) == 4 and parts[1] != "True":
            found[parts[0]] = (parts[2], parts[3])
    return found


def restarted(before: dict, after: dict) -> list[str]:
    return sorted(name for name, ident in after.items() if before.get(name) != ident)


# ----------------------------------------------------------------------------- latency


@contextlib.contextmanager
def modeled_latency(values: dict[str, int] | None) -> Iterator[None]:
    """Write the stand-ins' latency.json for the run; put back what was there after."""
    path = Paths().root / "latency.json"
    before = path.read_text() if path.exists() else None
    if values is not None:
        path.write_text(json.dumps(values, indent=1) + "\n")
    try:
        yield
    finally:
        if values is not None:
            if before is None:
                path.unlink(missing_ok=True)
            else:
                path.write_text(before)


# ----------------------------------------------------------------------------- running


class Bench:
    def __init__(self, instance: str, inventory: Path) -> None:
        self.instance = instance
        self.container = container_name(instance)
        info = load_state()["instances"].get(instance)
        if not info or not info.get("pid"):
            known = ", ".join(sorted(load_state()["instances"])) or "none"
            raise SystemExit(f"expected sandbox instance {instance} to be up, found {known}: "
                             "run make sandbox-up SANDBOX_INSTANCES=4 (or pass --instance)")
        self.pid = int(info["pid"])
        self.inventory = inventory
        self.runs: list[dict] = []
        self.session_cost = 0.0
        LOGS.mkdir(parents=True, exist_ok=True)

    def _ansible(self, label: str, *args: str) -> tuple[subprocess.CompletedProcess, float]:
        started = time.monotonic()
        proc = playbook("-i", str(self.inventory), *args, timeout=PLAYBOOK_TIMEOUT_S)
        wall = time.monotonic() - started
        (LOGS / f"{label}.log").write_text(proc.stdout + "\n--- stderr\n" + proc.stderr)
        return proc, wall

    def calibrate(self) -> float:
        """Seconds one more task costs: the mean interval between the sessions of five
        ansible.builtin.ping tasks (modeled latency included)."""
        events = Events()
        proc, _wall = self._ansible("calibration", str(CALIBRATION))
        starts = sorted(e["ts"] for e in events.since()
                        if e.get("kind") == "start_session" and e.get("target") == self.instance)
        if proc.returncode != 0 or len(starts) < 3:
            raise SystemExit(f"session cost calibration failed (rc={proc.returncode}, "
                             f"{len(starts)} sessions): see {LOGS / 'calibration.log'}")
        self.session_cost = round((starts[-1] - starts[0]) / (len(starts) - 1), 2)
        return self.session_cost

    def run(self, app: bench_apps.App, pb: str, case: str, record: bool = True) -> dict:
        if pb == "deploy":
            args = ["playbooks/rollback.yml"] if case == "rollback" else ["deploy.yml"]
            extra = {} if case == "rollback" else app.deploy_vars
        else:
            args, extra = [str(NAIVE)], app.naive_vars
        if case != "rollback" or pb == "naive":
            src = app.v2 if case == "changed" else app.v1
            extra = dict(extra, backend_src_dir=str(src))
        if extra:
            args += ["-e", json.dumps(extra)]
        label = f"{app.name}-{pb}-{case}"
        before = containers(self.container)
        events = Events()
        with HealthProbe(self.pid, expect_serving=case != "first") as probe, \
                BuildWatch(self.pid) as builds:
            proc, wall = self._ansible(label, *args)
        after = containers(self.container)
        figures = event_figures(events.since(), self.instance)
        tracker = probe.tracker
        result = {
            "app": app.name, "playbook": pb, "case": case, "rc": proc.returncode,
            "wall_s": round(wall, 2), **figures,
            "builds": builds.builds, "build_s": round(builds.seconds, 2),
            "startup_s": bench_report.startup_seconds(proc.stdout),
            "restarts": len(restarted(before, after)), "restarted": restarted(before, after),
            "probes_ok": tracker.ok, "probes_failed": tracker.failed,
            "probes_not_yet_serving": tracker.not_yet_serving,
            "longest_gap_s": round(tracker.longest_gap, 2),
            "serving_after": probe_once(self.pid),
            "session_cost_s": self.session_cost,
        }
        status = "ok" if proc.returncode == 0 else f"FAILED rc={proc.returncode} (see {label}.log)"
        log(f"{label}: {status} sessions={result['sessions']} wall={wall:.1f}s "
            f"builds={result['builds']} restarts={result['restarts']} "
            f"failed_probes={tracker.failed} gap={tracker.longest_gap:.1f}s")
        if proc.returncode != 0:
            print(proc.stdout[-2500:], flush=True)
        if record:
            self.runs.append(result)
        return result

    def app_cycle(self, app: bench_apps.App, pb: str, cases: list[str]) -> None:
        """The cases in order on a cleaned instance; first and changed run as setup when a
        later selected case needs them."""
        clean_instance(self.container)
        self.run(app, pb, "first", record="first" in cases)
        if "unchanged" in cases:
            self.run(app, pb, "unchanged")
        if "changed" in cases or "rollback" in cases:
            self.run(app, pb, "changed", record="changed" in cases)
        if "rollback" in cases:
            self.run(app, pb, "rollback")


def machine(container: str) -> dict:
    def read(path: str) -> str:
        try:
            return Path(path).read_text()
        except OSError:
            return ""

    cpu = next((line.split(":", 1)[1].strip() for line in read("/proc/cpuinfo").splitlines()
                if line.startswith("model name")), "unknown CPU")
    mem_kb = next((int(line.split()[1]) for line in read("/proc/meminfo").splitlines()
                   if line.startswith("MemTotal:")), 0)
    osname = next((line.split("=", 1)[1].strip('"') for line in
                   read("/etc/os-release").splitlines() if line.startswith("PRETTY_NAME=")),
                  platform.system())

    def version(dist: str) -> str:
        try:
            return metadata.version(dist)
        except metadata.PackageNotFoundError:
            return "unknown"

    amazon = "unknown"
    with contextlib.suppress(OSError, ValueError, StopIteration):
        import ansible_collections.amazon.aws as amazon_aws

        manifest = Path(amazon_aws.__path__[0]) / "MANIFEST.json"
        amazon = json.loads(manifest.read_text())["collection_info"]["version"]
    docker = instance_sh(container, "docker version --format '{{.Server.Version}}'",
                         timeout=60).stdout.strip() or "unknown"
    return {"cpus": os.cpu_count(), "cpu_model": cpu, "ram_gb": mem_kb / 1024 / 1024,
            "kernel": platform.release(), "os": osname, "python": platform.python_version(),
            "ansible_core": version("ansible-core"), "amazon_aws": amazon,
            "instance_docker": docker}


def notes(result: dict) -> list[str]:
    """What the figures say where a target is missed (written into docs/benchmarks.md)."""
    out = ["## Notes", ""]
    status = {t["target"]: t for t in result["targets"]}
    probes = next((t for name, t in status.items() if name.startswith("0 failed")), None)
    if probes and probes["status"] == "MISS":
        out.append("- Failed probes: deploy.yml ran with zero-downtime activation (the new "
                   "container starts beside the serving one, is checked, then the proxy on "
                   "8002 moves to it), so a failed probe is a defect, not the design: "
                   f"{probes['detail']}. The CI's bench-short fails on one.")
    elif probes:
        out.append("- Failed probes: none. deploy.yml activates with zero downtime (default "
                   "`deploy_zero_downtime: true`): the release's container starts beside the "
                   "serving one without a host port, is checked on its own address (health, "
                   "the smoke contract), then `backend-aws-proxy` on 8002 forwards new "
                   "connections to it and the old container drains and stops. The naive "
                   "baseline recreates the container (`up -d`), hence its failed probes on "
                   "every case that changes the running release.")
    fixture = next((t for name, t in status.items()
                    if name.startswith("fixture: changed deploy without")), None)
    run = bench_report.find(result["runs"], "fixture", "deploy", "changed")
    if fixture and fixture["status"] == "MISS" and run:
        spans = run.get("session_s", [])
        outside = run["wall_s"] - sum(spans)
        startup = float(run.get("startup_s") or 0)
        out.append(
            f"- Fixture, changed deploy ({run['wall_s']:.0f} s): its {run['sessions']} sessions "
            f"lasted {' + '.join(f'{x:.0f}' for x in spans)} s and {outside:.0f} s passed "
            "outside them (the modeled StartSession and TerminateSession of each, ansible's "
            "start, the source preflight and archive of the "
            "checkout on the controller, about 0.2 s of ansible's own cost for each of some 25 "
            "controller-side tasks). The third session holds the build "
            f"({run['build_s']:.0f} s) and starts the new container beside the serving one; "
            "its start-up goes on while the smoke session opens, which then waits for it "
            + (f"({startup:.0f} s from start until it answered health: the app's "
               if startup else "(the app's ")
            + "`sleep 10` + gunicorn, a wait the model of round trips does not count). The "
            "old container stops at once (its app processes get SIGTERM first; before that "
            "fix the fixture's `sh -c` PID 1 ignored it and every switch waited out "
            "`docker stop -t 30`: 116 s, 4.7x).")
        other = result.get("sensitivity") or {}
        again = next((t for t in other.get("targets", [])
                      if t["target"].startswith("fixture: changed deploy without")), None)
        if again:
            out.append(
                f"- The same target at {bench_report.latency_change(other)} (one more task "
                f"{other['session_cost_s']:.2f} s"
                + (", inside the 3-10 s per task users report" if 3 <= other["session_cost_s"]
                   <= 10 else "")
                + f"): "
                f"{again['status']}, {again['detail']}. A longer session hides more of the "
                "app's start-up behind the next session's opening, so the factor falls as "
                "the session cost rises; see the sensitivity section.")
    tree = next((t for name, t in status.items() if name.startswith("tree500:")), None)
    if tree:
        out.append("- tree500: the naive playbook's `ansible.builtin.copy` of a directory "
                   "checks every file with a remote `stat` (one module run, three S3 requests "
                   "each) and ships each changed file through S3; deploy.yml ships one archive.")
    out.append("")
    return out


def _interrupt(_signum: int, _frame: object) -> None:
    raise KeyboardInterrupt


LATENCY_MAX_MS = 60000


def parse_latency(values: list[str] | None) -> dict[str, int]:
    """--latency NAME=MS overrides of bench_report.LATENCY_MS; ValueError saying what is
    wrong in one line."""
    out: dict[str, int] = {}
    names = ", ".join(bench_report.LATENCY_MS)
    for value in values or []:
        name, sep, ms = value.partition("=")
        if not sep or name not in bench_report.LATENCY_MS or not ms.isdigit() \
                or int(ms) > LATENCY_MAX_MS:
            raise ValueError(f"expected --latency NAME=MS with NAME one of {names} and MS "
                             f"whole milliseconds 0-{LATENCY_MAX_MS}, got {value!r}; e.g. "
                             "--latency STARTSESSION=4000")
        out[name] = int(ms)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--apps", default=",".join(bench_apps.APPS),
                        help=f"comma-separated among {','.join(bench_apps.APPS)}")
    parser.add_argument("--cases", default=",".join(bench_report.CASES),
                        help=f"comma-separated among {','.join(bench_report.CASES)}")
    parser.add_argument("--playbooks", default=",".join(bench_report.PLAYBOOKS),
                        help="deploy, naive or both")
    parser.add_argument("--short", action="store_true",
                        help="CI form: the sample, deploy.yml, one-file change + rollback")
    parser.add_argument("--fail-on-probe", action="store_true",
                        help="exit 1 when a probe fails during a changed deploy or a rollback")
    parser.add_argument("--instance", default=BENCH_INSTANCE,
                        help=f"sandbox instance to use (default {BENCH_INSTANCE})")
    parser.add_argument("--no-latency", action="store_true",
                        help="leave the stand-ins' modeled latency as it is")
    parser.add_argument("--latency", action="append", metavar="NAME=MS",
                        help="model this call's latency instead of the documented value "
                             "(repeatable; an experiment: writes no docs unless --docs)")
    parser.add_argument("--sensitivity-run", action="store_true",
                        help="after the cases, measure deploy.yml for the fixture again at "
                             f"{bench_report.SENSITIVITY_TEXT} (the docs' sensitivity "
                             "section; on for a full run)")
    parser.add_argument("--docs", type=Path, default=None,
                        help="write benchmarks.{md,json,png} into this directory (default: "
                             "docs/ for a full run, nowhere otherwise)")
    parser.add_argument("--assemble", type=Path, nargs="+", metavar="RESULT_JSON",
                        help="run nothing: assemble saved results (.artifacts/bench/result-*"
                             ".json, e.g. one run per app) into the table, targets and docs "
                             "(--docs, default docs/)")
    parser.add_argument("--sensitivity", type=Path, nargs="+", metavar="RESULT_JSON",
                        help="with --assemble: results of the same cases at another modeled "
                             "latency (--latency), shown as the docs' sensitivity section")
    args = parser.parse_args(argv)
    try:
        overrides = parse_latency(args.latency)
    except ValueError as exc:
        parser.error(str(exc))
    if overrides and args.no_latency:
        parser.error("expected --latency or --no-latency, got both; --no-latency leaves the "
                     "stand-ins' latency as it is, drop one of them")
    if args.sensitivity_run and (overrides or args.no_latency):
        parser.error("expected --sensitivity-run at the documented latency, got --latency or "
                     "--no-latency with it; drop one of them")
    if args.sensitivity and not args.assemble:
        parser.error("expected --sensitivity with --assemble (it adds saved results to the "
                     "docs), got it alone; run the experiment with --latency first")
    if args.assemble:
        result = assemble(args.assemble)
        if args.sensitivity:
            result["sensitivity"] = sensitivity(args.sensitivity, result["latency_ms"])
        return finish(result, args.docs or REPO / "docs", args.fail_on_probe)
    if args.short:
        args.apps, args.cases, args.playbooks = "sample", "changed,rollback", "deploy"
    apps = [a for a in args.apps.split(",") if a]
    cases = [c for c in args.cases.split(",") if c]
    playbooks = [p for p in args.playbooks.split(",") if p]
    for chosen, allowed, what in ((apps, bench_apps.APPS, "app"),
                                  (cases, bench_report.CASES, "case"),
                                  (playbooks, bench_report.PLAYBOOKS, "playbook")):
        wrong = [c for c in chosen if c not in allowed]
        if wrong or not chosen:
            parser.error(f"expected {what}s among {', '.join(allowed)}, got {wrong or 'none'}")
    full = (set(apps), set(cases), set(playbooks)) == (
        set(bench_apps.APPS), set(bench_report.CASES), set(bench_report.PLAYBOOKS))
    docs = args.docs if args.docs is not None else (
        REPO / "docs" if full and not overrides else None)
    again = args.sensitivity_run or (full and not overrides and not args.no_latency)
    if os.geteuid() != 0:
        parser.error("run as root: the probe opens sockets in the instance's network namespace")

    # a SIGTERM/SIGHUP (a killed make, a closed terminal) unwinds like Ctrl-C: the modeled
    # latency is taken away from the shared sandbox and the figures so far are saved
    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, _interrupt)
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="atp-bench-") as tmp:
        inventory = HERE / "inventory"
        if args.instance != BENCH_INSTANCE:
            inventory = Path(tmp) / "inventory"
            inventory.mkdir()
            (inventory / "hosts.yml").write_text(f"backend:\n  hosts:\n    {args.instance}:\n")
            (inventory / "group_vars").symlink_to(REPO / "inventory/sandbox/group_vars")
        bench = Bench(args.instance, inventory)
        latency = None if args.no_latency else {**bench_report.LATENCY_MS, **overrides}
        described = []
        with modeled_latency(latency):
            log(f"instance {args.instance}; modeled latency "
                f"{'unchanged' if latency is None else latency}")
            session_cost = bench.calibrate()
            log(f"one more task costs {session_cost:.2f}s")
            try:
                measure(bench, apps, playbooks, cases, Path(tmp), described)
            except KeyboardInterrupt:
                save_partial(bench.runs, latency, session_cost)
                raise
        other = None
        if again and latency is not None:
            other_latency = {**latency, **bench_report.SENSITIVITY_LATENCY}
            slower = Bench(args.instance, inventory)
            with modeled_latency(other_latency):
                log(f"sensitivity: deploy.yml for the fixture at "
                    f"{bench_report.SENSITIVITY_TEXT}")
                try:
                    other_cost = slower.calibrate()
                    log(f"one more task costs {other_cost:.2f}s")
                    # its own trees: the first pass's fixture-v1/-v2 are still in tmp/apps
                    measure(slower, ["fixture"], ["deploy"], cases, Path(tmp) / "sensitivity",
                            [])
                except KeyboardInterrupt:
                    save_partial(bench.runs, latency, session_cost)
                    raise
            other = {"date": datetime.now(UTC).isoformat(timespec="seconds"),
                     "latency_ms": other_latency, "session_cost_s": other_cost,
                     "runs": slower.runs}
    return report(args, bench, latency, session_cost, apps, described, cases, playbooks,
                  docs, started, other)


def save_partial(runs: list[dict], latency: dict | None, session_cost: float) -> None:
    """An interrupted run: the figures so far, to look at or assemble by hand."""
    partial = LOGS / f"partial-{time.strftime('%Y%m%dT%H%M%S')}.json"
    bench_report.write_json({"runs": runs, "latency_ms": latency or {},
                             "session_cost_s": session_cost}, partial)
    log(f"interrupted: figures so far in {partial.relative_to(REPO)}")


def measure(bench: Bench, apps: list[str], playbooks: list[str], cases: list[str], tmp: Path,
            described: list[str]) -> None:
    for name in apps:
        try:
            app = bench_apps.make(name, Path(tmp) / "apps")
        except bench_apps.AppUnavailable as exc:
            log(f"SKIP app {name}: {exc}")
            continue
        described.append(f"{name} ({app.files} files)")
        for pb in playbooks:
            log(f"{name} with {bench_report.PLAYBOOK_TITLES[pb]}: {', '.join(cases)}")
            bench.app_cycle(app, pb, cases)
        clean_instance(bench.container)


def report(args: argparse.Namespace, bench: Bench, latency: dict | None, session_cost: float,
           apps: list[str], described: list[str], cases: list[str], playbooks: list[str],
           docs: Path | None, started: float, other: dict | None = None) -> int:
    runtime = time.monotonic() - started
    result = {"date": datetime.now(UTC).isoformat(timespec="seconds"),
              "machine": machine(bench.container), "instance": args.instance,
              "latency_ms": latency or {}, "latency_sources": bench_report.SOURCES,
              "session_cost_s": session_cost, "runtime_s": round(runtime, 1),
              "apps": apps, "apps_described": described, "cases": cases,
              "playbooks": playbooks, "runs": bench.runs}
    if other and other["runs"]:
        result["sensitivity"] = sensitivity_of(other, latency)
    saved = LOGS / f"result-{time.strftime('%Y%m%dT%H%M%S')}.json"
    bench_report.write_json(result, saved)
    print(f"figures saved to {saved.relative_to(REPO)}")
    return finish(result, docs if latency is not None else None, args.fail_on_probe)


def assemble(paths: list[Path]) -> dict:
    """One result from several (e.g. one run per app, to share the sandbox in between):
    later files win for the same app/playbook/case; the modeled latency must be the same."""
    loaded = [json.loads(path.read_text()) for path in paths]
    latencies = {json.dumps(r["latency_ms"], sort_keys=True) for r in loaded}
    if len(latencies) != 1:
        raise SystemExit(f"expected one modeled latency in {', '.join(map(str, paths))}, "
                         f"found {len(latencies)}: re-run the apps with the same values")
    runs: dict[tuple, dict] = {}
    for item in loaded:
        for run in item["runs"]:
            runs[(run["app"], run["playbook"], run["case"])] = dict(
                run, measured=run.get("measured") or measured_date(item, run["app"]))
    order = {name: i for i, name in enumerate(bench_apps.APPS)}
    apps = sorted({a for r in loaded for a in r["apps"]}, key=lambda a: order.get(a, 99))
    described = {d.split(" ")[0]: d for r in loaded for d in r["apps_described"]}
    last = dict(loaded[-1])
    if (last.get("sensitivity") or {}).get("latency_ms") == last["latency_ms"]:
        del last["sensitivity"]  # not another latency than the rows': not a sensitivity
    return dict(last, apps=apps, apps_described=[described[a] for a in apps if a in described],
                cases=sorted({c for r in loaded for c in r["cases"]},
                             key=bench_report.CASES.index),
                playbooks=sorted({p for r in loaded for p in r["playbooks"]},
                                 key=bench_report.PLAYBOOKS.index),
                runs=sorted(runs.values(), key=lambda r: (
                    order.get(r["app"], 99), bench_report.PLAYBOOKS.index(r["playbook"]),
                    bench_report.CASES.index(r["case"]))),
                session_cost_s=round(sum(r["session_cost_s"] for r in loaded) / len(loaded), 2),
                runtime_s=round(sum(r["runtime_s"] for r in loaded), 1),
                assembled_from=sources(runs.values()))


def sensitivity(paths: list[Path], latency_ms: dict) -> dict:
    """The sensitivity section's figures from saved results (--sensitivity)."""
    where = ", ".join(map(str, paths))
    other = assemble(paths)
    if other["latency_ms"] == latency_ms or not other["latency_ms"]:
        raise SystemExit(f"expected --sensitivity results measured at another modeled latency "
                         f"than the docs' {latency_ms}, got {other['latency_ms'] or 'none'} in "
                         f"{where}; measure them with --latency NAME=MS")
    if not any(r["playbook"] == "deploy" for r in other["runs"]):
        raise SystemExit(f"expected deploy.yml runs in {where}, found none; measure them with "
                         "--playbooks deploy")
    return sensitivity_of(other, latency_ms)


def sensitivity_of(other: dict, latency_ms: dict) -> dict:
    """deploy.yml's rows and targets from a result measured at another modeled latency than
    the docs' own (latency_ms): {latency_ms, changed, session_cost_s, dates, runs, targets}."""
    runs = [dict(r, measured=r.get("measured") or other["date"]) for r in other["runs"]
            if r["playbook"] == "deploy"]
    apps = list(dict.fromkeys(r["app"] for r in runs))
    changed = {name: [latency_ms.get(name), ms] for name, ms in other["latency_ms"].items()
               if latency_ms.get(name) != ms}
    return {"latency_ms": other["latency_ms"], "changed": changed,
            "session_cost_s": other["session_cost_s"],
            "dates": sorted({r["measured"] for r in runs}), "runs": runs,
            "targets": [t for t in bench_report.evaluate_targets(runs, other["session_cost_s"],
                                                                 apps)
                        if not t["target"].startswith("tree500: changed deploy wall")]}


def measured_date(item: dict, app: str) -> str:
    """When a run of `app` in a saved result was measured: the result's date, or for a result
    that was itself assembled, the date of the last of its sources that had the app."""
    dates = [a["date"] for a in item.get("assembled_from") or [] if app in a.get("apps", [])]
    return dates[-1] if dates else item["date"]


def sources(runs) -> list[dict]:
    """[{date, playbook, apps}]: which runs came from which measurement."""
    groups: dict[tuple, list[str]] = {}
    for run in runs:
        apps = groups.setdefault((run["measured"], run["playbook"]), [])
        if run["app"] not in apps:
            apps.append(run["app"])
    return [{"date": d, "playbook": pb, "apps": apps}
            for (d, pb), apps in sorted(groups.items(), key=lambda kv: (
                bench_report.PLAYBOOKS.index(kv[0][1]), kv[0][0]))]


def finish(result: dict, docs: Path | None, fail_on_probe: bool) -> int:
    """Table, targets, docs; the exit code."""
    runs = result["runs"]
    result["targets"] = bench_report.evaluate_targets(runs, result["session_cost_s"],
                                                      result["apps"])
    print()
    print(bench_report.text_table(runs))
    print()
    for line in bench_report.target_lines(result["targets"]):
        print(line)
    if result.get("sensitivity"):
        other = result["sensitivity"]
        print(f"\nat {bench_report.latency_change(other)} (one more task "
              f"{other['session_cost_s']:.2f}s):")
        for line in bench_report.target_lines(other["targets"]):
            print(line)
    print(f"\nruntime {result['runtime_s'] / 60:.1f} min, one more task "
          f"{result['session_cost_s']:.2f}s (modeled latency "
          f"{'on' if result['latency_ms'] else 'off'})")
    if docs is not None:
        result["notes"] = notes(result)
        docs.mkdir(parents=True, exist_ok=True)
        bench_report.write_json({k: v for k, v in result.items() if k != "notes"},
                                docs / "benchmarks.json")
        (docs / "benchmarks.md").write_text(bench_report.markdown(result), encoding="utf-8")
        bench_report.write_chart(result, docs / "benchmarks.png")
        print(f"wrote {docs / 'benchmarks.md'}, benchmarks.json, benchmarks.png")

    failed_runs = [f"{r['app']}/{r['playbook']}/{r['case']} rc={r['rc']}"
                   for r in [*runs, *(result.get("sensitivity") or {}).get("runs", [])]
                   if r["rc"] != 0 or not r["serving_after"]]
    if failed_runs:
        print(f"FAILED runs (not serving or rc != 0): {', '.join(failed_runs)}")
        return 2
    if fail_on_probe:
        bad = bench_report.probe_failures(runs)
        if bad:
            print(f"FAIL: failed health probes during a changed deploy or a rollback: "
                  f"{'; '.join(bad)}")
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
