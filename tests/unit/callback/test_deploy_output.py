"""atp.deploy.deploy_output: the default output with a time on each result and quiet
argument validation, run for real through ansible-playbook (local connection)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from ansible_collections.atp.deploy.plugins.callback import deploy_output

REPO = Path(__file__).resolve().parents[3]
PLAYBOOK = Path(sys.executable).with_name("ansible-playbook")


def test_took_formats_seconds_and_minutes():
    assert deploy_output.took(3.94) == "3.9s"
    assert deploy_output.took(0.0) == "0.0s"
    assert deploy_output.took(75.2) == "1m15s"
    assert deploy_output.took(840) == "14m00s"


@pytest.mark.parametrize(("line", "shown"), [
    ("ok: [i-0abc]", "ok: [i-0abc] 3.9s"),
    ("changed: [i-0abc] => \n  msg: x", "changed: [i-0abc] 3.9s => \n  msg: x"),
    ("fatal: [i-0abc]: FAILED! => {}", "fatal: [i-0abc] 3.9s: FAILED! => {}"),
    ("skipping: [h] => (item=1) ", "skipping: [h] 3.9s => (item=1) "),
    ("ok: [h -> localhost]", "ok: [h -> localhost] 3.9s"),
    ("included: r1 for h", "included: r1 for h"),
    ("PLAY RECAP", "PLAY RECAP"),
    ("  ok: [h] quoted later", "  ok: [h] quoted later"),
])
def test_the_time_goes_right_after_the_host(line, shown):
    assert deploy_output.with_time(line, "3.9s") == shown
    assert deploy_output.with_time(line, "") == line


@pytest.fixture(scope="module")
def project(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("cb")
    (root / "roles/r1/meta").mkdir(parents=True)
    (root / "roles/r1/tasks").mkdir(parents=True)
    (root / "roles/r1/meta/argument_specs.yml").write_text(textwrap.dedent("""\
        ---
        argument_specs:
          main:
            short_description: r1
            options:
              r1_n:
                type: int
                required: true
        """))
    (root / "roles/r1/tasks/main.yml").write_text(textwrap.dedent("""\
        ---
        - name: Wait a little
          ansible.builtin.command: sleep 0.4
          changed_when: true
        """))
    (root / "site.yml").write_text(textwrap.dedent("""\
        ---
        - name: Play
          hosts: localhost
          gather_facts: false
          tasks:
            - name: Role with a spec
              ansible.builtin.include_role:
                name: r1
              vars:
                r1_n: "{{ n }}"
            - name: Loop
              ansible.builtin.debug:
                msg: "{{ item }}"
              loop: [1, 2]
        """))
    (root / "ansible.cfg").write_text(textwrap.dedent(f"""\
        [defaults]
        collections_path = {REPO / 'collections'}
        stdout_callback = atp.deploy.deploy_output
        callback_result_format = yaml
        """))
    return root


def play(project: Path, n: str, **env_update: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "ANSIBLE_CONFIG": str(project / "ansible.cfg"),
           "ANSIBLE_NOCOLOR": "1", "ANSIBLE_FORCE_COLOR": "0", **env_update}
    return subprocess.run(
        [str(PLAYBOOK), "-i", "localhost,", "-c", "local", "site.yml", "-e", f"n={n}",
         "-e", f"ansible_python_interpreter={sys.executable}"],
        cwd=project, env=env, capture_output=True, text=True, timeout=120, check=False)


def test_a_passing_run_is_timed_and_shows_no_argument_validation(project):
    proc = play(project, "3")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    out = proc.stdout
    assert "Validating arguments" not in out
    match = re.search(r"^changed: \[localhost\] (\d+\.\d)s", out, re.M)
    assert match, out
    assert float(match.group(1)) >= 0.4  # the task's own sleep
    assert re.search(r"^ok: \[localhost\] \d+\.\ds => \(item=1\)", out, re.M), out
    assert "TASK [r1 : Wait a little]" in out


def test_a_failed_argument_validation_is_shown_in_full(project):
    proc = play(project, "abc")
    assert proc.returncode != 0
    out = proc.stdout
    assert "TASK [r1 : Validating arguments against arg spec 'main' - r1]" in out, out
    assert re.search(r"^fatal: \[localhost\] \d+\.\ds: FAILED! =>", out, re.M), out
    assert "r1_n" in out
    assert "Wait a little" not in out


def test_still_running_says_each_long_task_once_per_interval():
    running = {("i-a", "u1"): (100.0, "compose_release : Build"),
               ("i-b", "u2"): (129.5, "smoke_check : Smoke")}
    said: dict = {}
    assert deploy_output.still_running(running, said, 129.0, 30) == []
    assert deploy_output.still_running(running, said, 130.0, 30) == [
        "... [i-a] still running after 30.0s: compose_release : Build"]
    assert deploy_output.still_running(running, said, 150.0, 30) == []  # said for 30 s
    assert deploy_output.still_running(running, said, 190.2, 30) == [
        "... [i-a] still running after 1m30s: compose_release : Build",  # no backlog
        "... [i-b] still running after 1m00s: smoke_check : Smoke"]
    assert deploy_output.still_running(running, {}, 500.0, 0) == []  # heartbeat off


@pytest.mark.parametrize(("every", "lines"), [("0.2", True), ("0", False)])
def test_a_long_task_says_it_is_still_running_and_a_short_one_does_not(project, every, lines):
    """Printed by the controller while the task runs: with the heartbeat at 0.2 s the 0.4 s
    task gets a line, in order before its result; argument validation (quick) gets none."""
    proc = play(project, "3", ATP_DEPLOY_HEARTBEAT=every)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    out = proc.stdout
    said = re.findall(r"^\.\.\. \[localhost\] still running after (\d+\.\d)s: (.*)$", out, re.M)
    if not lines:
        assert "still running" not in out
        return
    assert said, out
    assert {name for _, name in said} == {"r1 : Wait a little"}, out
    assert float(said[0][0]) >= 0.2
    assert out.index("still running") < out.index("changed: [localhost]")
