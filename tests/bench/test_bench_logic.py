"""The benchmark's pure logic (no sandbox): pytest -q tests/bench/test_bench_logic.py"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

import bench_apps
import bench_deploy
import bench_report
from bench_probe import GapTracker, event_figures, is_build_argv, merged_seconds


def feed(tracker: GapTracker, results: str, step: float = 0.1) -> GapTracker:
    for index, char in enumerate(results):
        tracker.add(index * step, char == "1")
    tracker.finish(len(results) * step)
    return tracker


def test_gap_counts_failures_between_successes():
    t = feed(GapTracker(expect_serving=True, started=0.0), "1110000111")
    assert (t.ok, t.failed, t.not_yet_serving) == (6, 4, 0)
    assert abs(t.longest_gap - 0.5) < 1e-9  # last ok at 0.2, next ok at 0.7


def test_first_deploy_does_not_count_probes_before_the_backend_first_answers():
    t = feed(GapTracker(expect_serving=False, started=0.0), "000011011")
    assert (t.not_yet_serving, t.failed) == (4, 1)
    assert abs(t.longest_gap - 0.2) < 1e-9


def test_failing_at_the_end_is_a_gap_to_the_end_and_at_the_start_a_gap_from_the_start():
    t = feed(GapTracker(expect_serving=True, started=0.0), "11000")
    assert t.failed == 3 and abs(t.longest_gap - 0.4) < 1e-9
    t = feed(GapTracker(expect_serving=True, started=0.0), "0011")
    assert t.failed == 2 and abs(t.longest_gap - 0.2) < 1e-9


def test_no_failure_no_gap():
    assert feed(GapTracker(expect_serving=True, started=0.0), "1111").longest_gap == 0.0


def test_merged_seconds_unions_overlaps():
    assert merged_seconds([(0, 2), (1, 3), (5, 6)]) == 4
    assert merged_seconds([]) == 0


def test_build_processes():
    assert is_build_argv(["docker", "compose", "-p", "x", "-f", "a.yml", "build", "backend-aws"])
    assert is_build_argv(["/usr/bin/docker", "compose", "up", "-d", "--build"])
    assert is_build_argv(["docker", "build", "."])
    assert is_build_argv(["docker", "buildx", "build", "."])
    assert not is_build_argv(["docker", "compose", "up", "-d", "--no-build", "backend-aws"])
    assert not is_build_argv(["/usr/libexec/docker/cli-plugins/docker-compose", "compose",
                              "build"])
    assert not is_build_argv(["python3", "build"])


def test_event_figures():
    events = [
        {"ts": 1.0, "kind": "start_session", "session": "s1", "target": "i-a"},
        {"ts": 1.1, "kind": "command", "session": "s1"},
        {"ts": 1.2, "kind": "s3_start", "method": "PUT", "key": "/b/i-a/AnsiballZ_x.py"},
        {"ts": 1.4, "kind": "s3", "method": "PUT", "key": "/b/i-a/AnsiballZ_x.py",
         "bytes_in": 100, "bytes_out": 0},
        {"ts": 2.0, "kind": "s3_start", "method": "PUT", "key": "/b/i-a/release.tar.gz"},
        {"ts": 2.5, "kind": "s3", "method": "PUT", "key": "/b/i-a/release.tar.gz",
         "bytes_in": 1000, "bytes_out": 0},
        {"ts": 2.6, "kind": "s3_start", "method": "GET", "key": "/b/i-a/release.tar.gz"},
        {"ts": 2.7, "kind": "s3", "method": "GET", "key": "/b/i-a/release.tar.gz",
         "bytes_in": 0, "bytes_out": 1000},
        {"ts": 3.0, "kind": "start_session", "session": "s2", "target": "i-other"},
        {"ts": 3.1, "kind": "command", "session": "s2"},
    ]
    got = event_figures(events, "i-a")
    assert got["sessions"] == 1 and got["commands"] == 1
    assert got["s3_requests"] == 3 and got["s3_data_requests"] == 2
    assert (got["s3_bytes_up"], got["s3_bytes_down"]) == (1100, 1000)
    assert abs(got["transfer_s"] - 0.6) < 1e-9
    assert got["session_s"] == [0.1]


def run(app, pb, case, **kw):
    base = {"app": app, "playbook": pb, "case": case, "rc": 0, "sessions": 4, "commands": 9,
            "s3_requests": 12, "s3_bytes_up": 10, "s3_bytes_down": 10, "transfer_s": 1.0,
            "builds": 1, "build_s": 5.0, "restarts": 1, "restarted": ["backend-aws"],
            "wall_s": 20.0, "probes_failed": 0, "longest_gap_s": 0.0}
    return dict(base, **kw)


def test_targets_pass_and_miss():
    runs = [
        run("sample", "deploy", "changed", sessions=5),
        run("sample", "deploy", "unchanged", sessions=2, builds=0, restarts=0, restarted=[]),
        run("sample", "deploy", "rollback", probes_failed=3, longest_gap_s=1.2),
        run("tree500", "deploy", "changed", wall_s=20.0),
        run("tree500", "naive", "changed", wall_s=200.0),
        run("fixture", "deploy", "changed", sessions=5, wall_s=30.0, build_s=10.0,
            transfer_s=2.0),
    ]
    targets = bench_report.evaluate_targets(runs, 3.0, ["sample", "tree500", "fixture"])

    def status(prefix: str) -> str:
        (found,) = [t["status"] for t in targets if t["target"].startswith(prefix)]
        return found

    assert status("sample: changed deploy <= 6") == "PASS"
    assert status("sample: unchanged redeploy <= 2") == "PASS"
    assert status("sample: unchanged redeploy: 0 builds") == "PASS"
    assert status("tree500: changed deploy wall") == "PASS"  # 0.1x
    assert status("fixture: changed deploy without") == "PASS"  # 20 s vs 17 s
    probes = next(t for t in targets if t["target"].startswith("0 failed"))
    assert probes["status"] == "MISS" and "sample/rollback: 3 failed" in probes["detail"]
    assert bench_report.probe_failures(runs) == [
        "sample/rollback: 3 failed probes, longest gap 1.2s"]
    fixture = next(t for t in targets if t["target"].startswith("fixture: changed deploy without"))
    assert "start-up" not in fixture["detail"]  # not measured: not claimed
    runs[-1].update(wall_s=60.0, startup_s=12.0)
    again = bench_report.evaluate_targets(runs, 3.0, ["fixture"])
    fixture = next(t for t in again if t["target"].startswith("fixture: changed deploy without"))
    # the verdict counts the app's start-up; the detail also shows the factor without it
    assert fixture["status"] == "MISS" and fixture["detail"].endswith(
        "(without the app's own start-up, new container up 12.0s: 2.24x)")
    runs[0]["sessions"] = 7
    again = bench_report.evaluate_targets(runs, 3.0, ["sample"])
    assert again[0]["status"] == "MISS"


def test_tables_have_a_row_per_run():
    runs = [run("sample", "deploy", "first"), run("sample", "naive", "first")]
    assert len(bench_report.text_table(runs).splitlines()) == 4
    assert bench_report.markdown_table(runs).count("\n") == 3


def test_tree500_is_deterministic(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    assert bench_apps.generate_tree500(a) == bench_apps.GENERATED_FILES
    bench_apps.generate_tree500(b)
    files_a = sorted(p.relative_to(a) for p in a.rglob("*") if p.is_file())
    files_b = sorted(p.relative_to(b) for p in b.rglob("*") if p.is_file())
    assert files_a == files_b and len(files_a) == bench_apps.GENERATED_FILES
    assert all((a / f).read_bytes() == (b / f).read_bytes() for f in files_a)


def test_docs_render(tmp_path):
    runs = [run("sample", pb, case) for pb in bench_report.PLAYBOOKS
            for case in bench_report.CASES]
    result = {"date": "2026-01-01T00:00:00+00:00", "instance": "i-x", "runtime_s": 60.0,
              "machine": {"cpus": 2, "cpu_model": "cpu", "ram_gb": 4.0, "kernel": "6.1",
                          "os": "Debian", "python": "3.11", "ansible_core": "2.19",
                          "amazon_aws": "10.1.2", "instance_docker": "26.1.5"},
              "latency_ms": bench_report.LATENCY_MS, "session_cost_s": 4.0,
              "apps": ["sample"], "apps_described": ["sample (18 files)"], "runs": runs,
              "assembled_from": [{"file": "a.json", "date": "d", "apps": ["sample"]}]}
    result["targets"] = bench_report.evaluate_targets(runs, 4.0, ["sample"])
    text = bench_report.markdown(result)
    assert "community.aws#2209" in text and "amazon.aws#2643" in text
    assert "| sample | naive baseline | rollback |" in text and "assembled from" in text
    bench_report.write_chart(result, tmp_path / "chart.png")
    assert (tmp_path / "chart.png").read_bytes()[:4] == b"\x89PNG"


def test_the_startup_is_read_from_the_deploy_summary():
    out = ("  changed  code uploaded (3 files), image built\n"
           "  waited   build 41.2 s, route gate 1.1 s, new container up 11.2 s\n")
    assert bench_report.startup_seconds(out) == 11.2
    assert bench_report.startup_seconds("  waited   build 3.0 s\n") == 0.0
    assert bench_report.startup_seconds("") == 0.0


def test_the_startup_label_is_the_one_the_summary_prints():
    """The summary callback's label for the new container's start-up (WAIT_LABELS), read from
    its source: renaming it there must fail here, not silently drop the bench's figure."""
    import ast

    source = (Path(__file__).resolve().parents[2] / "collections/ansible_collections/atp/deploy"
              / "plugins/callback/rollout_summary.py").read_text()
    labels = next(ast.literal_eval(node.value) for node in ast.parse(source).body
                  if isinstance(node, ast.Assign)
                  and getattr(node.targets[0], "id", None) == "WAIT_LABELS")
    line = f"  waited   {labels['build']} 2.0 s, {labels['candidate']} 10.6 s\n"
    assert bench_report.startup_seconds(line) == 10.6


def test_an_assembly_of_assemblies_says_when_each_row_was_measured(tmp_path):
    """docs/benchmarks.json (itself assembled) + a newer deploy.yml run: each row keeps the
    date it was measured, and the header names both and warns about cross-run targets."""
    def row(app, pb):
        return run(app, pb, "changed", session_cost_s=3.0)

    base = {"latency_ms": bench_report.LATENCY_MS, "session_cost_s": 4.0, "runtime_s": 60.0,
            "cases": ["changed"], "playbooks": ["deploy", "naive"]}
    old = dict(base, date="T1", apps=["sample", "fixture"],
               apps_described=["sample (18 files)", "fixture (1908 files)"],
               runs=[row("sample", "deploy"), row("sample", "naive"), row("fixture", "deploy"),
                     row("fixture", "naive")],
               assembled_from=[{"file": "a.json", "date": "T0", "apps": ["sample", "fixture"]},
                               {"file": "b.json", "date": "T1", "apps": ["fixture"]}])
    new = dict(base, date="T2", apps=["sample", "fixture"], playbooks=["deploy"],
               apps_described=["sample (18 files)", "fixture (1908 files)"],
               runs=[row("sample", "deploy"), row("fixture", "deploy")])
    paths = [tmp_path / "old.json", tmp_path / "new.json"]
    for path, item in zip(paths, (old, new), strict=True):
        path.write_text(json.dumps(item))
    result = bench_deploy.assemble(paths)
    measured = {(r["app"], r["playbook"]): r["measured"] for r in result["runs"]}
    assert measured == {("sample", "deploy"): "T2", ("fixture", "deploy"): "T2",
                        ("sample", "naive"): "T0", ("fixture", "naive"): "T1"}
    assert result["assembled_from"] == [
        {"date": "T2", "playbook": "deploy", "apps": ["sample", "fixture"]},
        {"date": "T0", "playbook": "naive", "apps": ["sample"]},
        {"date": "T1", "playbook": "naive", "apps": ["fixture"]}]
    header = [line for line in bench_report.markdown(dict(
        result, instance="i-x", machine={"cpus": 2, "cpu_model": "c", "ram_gb": 4.0,
                                          "kernel": "k", "os": "o", "python": "3.11",
                                          "ansible_core": "2.19", "amazon_aws": "10",
                                          "instance_docker": "26"},
        targets=[])).splitlines() if line.startswith("- ")]
    assert ("- assembled from runs of different times (same modeled latency; the machine and "
            "its speed may differ; each row's figures come from its own run): deploy.yml: "
            "sample, fixture at T2; naive baseline: sample at T0, fixture at T1") in header
    assert any(line.startswith("- a target comparing the two playbooks compares runs of "
                               "different times") for line in header)



@pytest.mark.parametrize("value", ["STARTSESSION", "STARTSESSION=", "STARTSESSION=-1",
                                   "STARTSESSION=4s", "STARTSESSION=60001", "startsession=4000",
                                   "S3_LIST=10"])
def test_a_latency_override_says_what_it_expected(value):
    with pytest.raises(ValueError) as err:
        bench_deploy.parse_latency([value])
    assert str(err.value) == (
        "expected --latency NAME=MS with NAME one of STARTSESSION, TERMINATESESSION, S3_PUT, "
        f"S3_DELETE, S3_GET and MS whole milliseconds 0-60000, got {value!r}; e.g. "
        "--latency STARTSESSION=4000")


def test_latency_overrides_replace_only_the_named_calls():
    assert bench_deploy.parse_latency(["STARTSESSION=4000", "S3_GET=0"]) == {
        "STARTSESSION": 4000, "S3_GET": 0}
    assert bench_deploy.parse_latency(None) == {}


@pytest.mark.parametrize(("argv", "said"), [
    (["--latency", "STARTSESSION=4000", "--no-latency"], "expected --latency or --no-latency"),
    (["--sensitivity", "x.json"], "expected --sensitivity with --assemble"),
    (["--latency", "STARTSESSION=4s"], "expected --latency NAME=MS"),
])
def test_conflicting_latency_arguments_stop_before_the_sandbox(argv, said, capsys):
    with pytest.raises(SystemExit) as stop:
        bench_deploy.main(argv)
    assert stop.value.code == 2
    assert said in capsys.readouterr().err


MACHINE = {"cpus": 2, "cpu_model": "c", "ram_gb": 4.0, "kernel": "k", "os": "o",
           "python": "3.11", "ansible_core": "2.19", "amazon_aws": "10", "instance_docker": "26"}


def saved_result(path, latency, date, wall_s, session_cost_s):
    """A result file as a run saves it: the fixture's one-file change with deploy.yml."""
    runs = [run("fixture", "deploy", "changed", sessions=6, wall_s=wall_s, build_s=1.0,
                transfer_s=0.6, session_cost_s=session_cost_s, startup_s=10.6,
                serving_after=True)]
    path.write_text(json.dumps({
        "date": date, "machine": MACHINE, "instance": "i-x", "latency_ms": latency,
        "latency_sources": bench_report.SOURCES, "session_cost_s": session_cost_s,
        "runtime_s": 60.0, "apps": ["fixture"], "apps_described": ["fixture (1908 files)"],
        "cases": ["changed"], "playbooks": ["deploy"], "runs": runs}))
    return path


def test_the_docs_show_the_same_cases_at_another_latency_beside_the_verdict(tmp_path, capsys):
    """The docs' rows and verdict stay at the documented latency; a run at another one is its
    own section (rows, targets, the command that reproduces it) and a note on the miss."""
    main = saved_result(tmp_path / "main.json", bench_report.LATENCY_MS, "T1", 38.0, 3.3)
    other = saved_result(tmp_path / "other.json",
                         dict(bench_report.LATENCY_MS, STARTSESSION=4000), "T2", 48.2, 5.3)
    docs = tmp_path / "docs"
    rc = bench_deploy.main(["--assemble", str(main), "--sensitivity", str(other),
                            "--docs", str(docs)])
    assert rc == 0
    printed = capsys.readouterr().out
    assert ("MISS  fixture: changed deploy without its build <= 1.5 x (sessions x session cost "
            "+ transfer time): 38.0s - build 1.0s = 37.0s vs 6 x 3.30s + 0.6s = 20.4s: 1.81x"
            in printed)
    assert "at STARTSESSION 4000 ms (docs: 2000 ms) (one more task 5.30s):" in printed
    assert ("PASS  fixture: changed deploy without its build <= 1.5 x (sessions x session cost "
            "+ transfer time): 48.2s - build 1.0s = 47.2s vs 6 x 5.30s + 0.6s = 32.4s: 1.46x"
            in printed)
    text = (docs / "benchmarks.md").read_text()
    section = text.split("## Sensitivity: another modeled latency", 1)[1].split("## Notes")[0]
    assert "STARTSESSION 4000 ms (docs: 2000 ms)" in section and "**5.30 s**" in section
    assert ("`tests/bench/bench_deploy.py --apps fixture --playbooks deploy --cases changed "
            "--latency STARTSESSION=4000`") in section
    assert "| fixture | deploy.yml | one-file change | 0 | 6 |" in section
    assert "PASS  fixture: changed deploy without its build" in section
    # the verdict above the section is still the documented latency's
    targets = text.split("## Targets", 1)[1].split("## Sensitivity")[0]
    assert "MISS  fixture: changed deploy without its build" in targets
    notes = text.split("## Notes", 1)[1]
    assert "- The same target at STARTSESSION 4000 ms (docs: 2000 ms) (one more task 5.30 s" \
        in notes and "PASS, 48.2s - build 1.0s" in notes
    saved = json.loads((docs / "benchmarks.json").read_text())
    assert saved["sensitivity"]["changed"] == {"STARTSESSION": [2000, 4000]}
    # the docs' json assembled again keeps the section; results at the docs' own latency
    # are not a sensitivity
    again = bench_deploy.assemble([docs / "benchmarks.json"])
    assert again["sensitivity"]["latency_ms"]["STARTSESSION"] == 4000
    with pytest.raises(SystemExit) as stop:
        bench_deploy.sensitivity([main], bench_report.LATENCY_MS)
    assert str(stop.value).startswith(
        "expected --sensitivity results measured at another modeled latency than the docs'")
