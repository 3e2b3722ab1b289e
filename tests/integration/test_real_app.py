"""The realistic fixture app (tests/fixtures/make_atp_app.py) deployed over SSM, starting from a
hand-managed checkout with its db and rows, as the operators of the real app start.

The tests run in order on one instance and build on each other (like an operator's week):
the seed's release is stopped three ways, the first good release adopts the hand-managed stack
without losing its env or its rows, an unchanged redeploy changes nothing, a broken build and a
deploy without credentials leave the good release serving.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

from .conftest import APP, REPO, Events, HealthProbe, instance_read, playbook

sys.path.insert(0, str(REPO / "sandbox"))
sys.path.insert(0, str(REPO / "tests"))
from atp_sandbox.config import container_name, instance_ids
from fixtures.make_atp_app import commit_variant, make_app

INSTANCE = instance_ids(3)[2]
CONTAINER = container_name(INSTANCE)
PROJECT = "automated-trading-platform"
DB_PASSWORD = "hand-set-db-pw-7c1e"  # the operator's, only on the instance
HAND_CREDS = {"EXCHANGE_CUSTOM_API_KEY": "hand-key-51b2",
              "EXCHANGE_CUSTOM_API_SECRET": "hand-secret-a9d0"}


def on_instance(*cmd: str, timeout: int = 120) -> str:
    return instance_read(CONTAINER, *cmd) if timeout <= 60 else subprocess.run(
        ["docker", "exec", CONTAINER, *cmd], capture_output=True, text=True,
        timeout=timeout, check=False).stdout.strip()


def instance_sh(script: str, timeout: int = 600) -> subprocess.CompletedProcess:
    """Set up the hand-managed world directly (what the operator did before this repo)."""
    return subprocess.run(["docker", "exec", "-u", "ubuntu", "-w", "/home/ubuntu", CONTAINER,
                           "bash", "-ec", script], capture_output=True, text=True,
                          timeout=timeout, check=False)


def curl(path: str, method: str = "GET") -> tuple[int, str]:
    out = on_instance("curl", "-s", "-m", "10", "-X", method, "-w", "\n%{http_code}",
                      f"http://127.0.0.1:8002{path}")
    body, _, code = out.rpartition("\n")
    return int(code or 0), body


def current_release() -> str:
    return on_instance("readlink", f"{APP}/current").removeprefix("releases/")


def container_id(service: str) -> str:
    return on_instance("docker", "ps", "-q",
                       "--filter", f"label=com.docker.compose.project={PROJECT}",
                       "--filter", f"label=com.docker.compose.service={service}")


def db_rows() -> int:
    out = on_instance("docker", "exec", db_container(), "sh", "-c",
                      "psql -tA -U \"$POSTGRES_USER\" -d \"$POSTGRES_DB\" -c "
                      "'select count(*) from portfolio_snapshots'")
    return int(out or -1)


def db_container() -> str:
    return on_instance("docker", "ps", "--format", "{{.Names}}", "--filter",
                       "label=com.docker.compose.service=db")


def Probe() -> HealthProbe:
    """GET /api/health on the instance's 127.0.0.1:8002 every 0.1 s (10 Hz), in a thread."""
    return HealthProbe(INSTANCE, interval=0.1)


class Run:
    def __init__(self, proc: subprocess.CompletedProcess, sessions: int, seconds: float):
        self.proc, self.sessions, self.seconds = proc, sessions, seconds
        self.out = proc.stdout + proc.stderr
        self.flat = " ".join(self.out.replace("\\n", "\n").split())

    @property
    def rc(self) -> int:
        return self.proc.returncode

    def recap_changed(self) -> int:
        match = re.search(rf"{INSTANCE}\s*:\s*ok=\d+\s+changed=(\d+)", self.out)
        assert match, self.out[-2000:]
        return int(match.group(1))


def deploy(inventory: Path, src: Path, *extra: str) -> Run:
    events = Events()
    started = time.monotonic()
    proc = playbook("-i", str(inventory), "deploy.yml", "-e", f"backend_src_dir={src}",
                    *extra, timeout=900)
    sessions = sum(1 for e in events.since()
                   if e.get("kind") == "start_session" and e.get("target") == INSTANCE)
    run = Run(proc, sessions, time.monotonic() - started)
    print(f"\ndeploy of {src.name} {' '.join(extra)}: rc={run.rc} sessions={sessions} "
          f"{run.seconds:.1f}s")
    return run


# --------------------------------------------------------------------------- the world


def _clean_instance() -> None:
    instance_sh(f"""
        cd /home/ubuntu
        for d in automated-trading-platform automated-trading-platform.*; do
          [ -e "$d" ] || continue
          [ -f "$d/docker-compose.yml" ] && docker compose -p {PROJECT} -f "$d/docker-compose.yml" \
            --profile aws --profile local down -v --remove-orphans >/dev/null 2>&1 || true
        done
        label=label=com.docker.compose.project={PROJECT}
        docker ps -aq --filter "$label" | xargs -r docker rm -f >/dev/null
        docker volume ls -q --filter "$label" | xargs -r docker volume rm >/dev/null
        sudo rm -rf automated-trading-platform automated-trading-platform.*
    """)


@pytest.fixture(scope="module")
def inventory(tmp_path_factory) -> Path:
    inv = tmp_path_factory.mktemp("real-app-inventory")
    (inv / "hosts.yml").write_text(f"backend:\n  hosts:\n    {INSTANCE}:\n")
    (inv / "group_vars").symlink_to(REPO / "inventory/sandbox/group_vars")
    return inv


@pytest.fixture(scope="module")
def checkout(tmp_path_factory) -> Path:
    """The operator's checkout of the real app, at a good commit."""
    started = time.monotonic()
    repo = make_app(tmp_path_factory.mktemp("atp") / "automated-trading-platform", "good")
    files = subprocess.run(["git", "-C", str(repo), "ls-files"], capture_output=True,
                           text=True, check=True).stdout.splitlines()
    size = sum((repo / f).stat().st_size for f in files)
    print(f"fixture: {len(files)} tracked files, {size / 1e6:.1f} MB, "
          f"made in {time.monotonic() - started:.1f}s")
    return repo


@pytest.fixture(scope="module")
def hand_managed(checkout: Path):
    """The instance as the seed left it: a checkout run by hand with its db, env and rows."""
    _clean_instance()
    # the clone as the operator had it, .git included
    tar = subprocess.run(["tar", "-C", str(checkout), "-c", "."], capture_output=True,
                         check=True).stdout
    subprocess.run(["docker", "exec", "-i", "-u", "ubuntu", CONTAINER, "bash", "-ec",
                    f"mkdir -p {APP} && tar -x -C {APP}"], input=tar, check=True, timeout=120)
    env = {
        # compose interpolates DATABASE_URL and PORTFOLIO_DEBUG from the project dir's .env
        ".env": f"ENVIRONMENT=aws\nPOSTGRES_USER=trader\nPOSTGRES_DB=atp\n"
                f"POSTGRES_PASSWORD={DB_PASSWORD}\nHAND_MANAGED=1\nPORTFOLIO_DEBUG=1\n",
        ".env.aws": "".join(f"{k}={v}\n" for k, v in HAND_CREDS.items()),
        ".env.db": "POSTGRES_INITDB_ARGS=--auth=scram-sha-256\n",
    }
    script = "".join(f"umask 077; cat > {APP}/{name} <<'EOF'\n{body}EOF\n"
                     for name, body in env.items())
    script += (f"cd {APP} && docker compose --profile aws up -d --build "
               f"db backend-aws >/tmp/hand-up.log 2>&1 || (tail -30 /tmp/hand-up.log; exit 1)")
    proc = instance_sh(script, timeout=900)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and curl("/api/health")[0] != 200:
        time.sleep(1)
    assert curl("/api/health")[0] == 200, on_instance("docker", "ps", "-a")
    for _ in range(3):
        code, body = curl("/api/portfolio/refresh", "POST")
        assert code == 200, body
    rows = db_rows()
    assert rows >= 3
    yield {"rows": rows, "db": container_id("db")}
    _clean_instance()


# --------------------------------------------------------------------------- the seed


def test_seed_release_is_stopped_by_the_static_check_with_no_session(inventory, checkout,
                                                                      hand_managed, tmp_path):
    seed = make_app(tmp_path / "seed", "seed")
    before = container_id("backend-aws")
    run = deploy(inventory, seed)
    assert run.rc != 0
    assert run.sessions == 0, "the static check must stop the seed before any SSM session"
    assert "portfolio" in run.flat and "/api/portfolio/snapshot" in run.flat, run.out[-3000:]
    assert container_id("backend-aws") == before


def test_seed_forced_past_the_static_check_is_stopped_by_the_route_gate(inventory, checkout,
                                                                        hand_managed, tmp_path):
    seed = make_app(tmp_path / "seed", "seed")
    before = container_id("backend-aws")
    with Probe() as probe:
        run = deploy(inventory, seed, "-e", "deploy_skip_router_check=true")
    assert run.rc != 0
    gate = [line for line in run.out.splitlines() if "route gate for release" in line]
    assert gate and "GET /api/portfolio/snapshot" in " ".join(gate), run.out[-3000:]
    assert container_id("backend-aws") == before, "the running container must not be touched"
    assert probe.failed == 0
    assert curl("/api/portfolio/snapshot?exchange=CRYPTO_COM")[0] == 200


def test_seed_with_both_checks_skipped_never_receives_traffic(
        inventory, checkout, hand_managed, tmp_path):
    """Zero-downtime: the seed's container is smoke-checked beside the hand-managed one, its
    404 is caught there and it is removed: the hand-managed stack never stopped serving."""
    seed = make_app(tmp_path / "seed", "seed")
    zero = current_release()
    assert zero, "adoption made the hand-managed checkout release zero"
    before = container_id("backend-aws")
    with Probe() as probe:
        run = deploy(inventory, seed, "-e", "deploy_skip_router_check=true",
                     "-e", "deploy_route_gate=false", "-e", "smoke_timeout=60")
    assert run.rc != 0
    assert "/api/portfolio/snapshot" in run.flat, run.out[-3000:]
    assert "never received traffic" in run.flat, run.out[-3000:]
    assert current_release() == zero
    assert container_id("backend-aws") == before
    assert probe.failed == 0
    assert curl("/api/health")[0] == 200
    code, body = curl("/api/portfolio/snapshot?exchange=CRYPTO_COM")
    assert code == 200 and json.loads(body)["ok"] is True
    assert db_rows() >= hand_managed["rows"]


# --------------------------------------------------------------------------- good releases


def test_good_release_keeps_db_rows_and_the_operators_password(inventory, checkout,
                                                               hand_managed):
    zero = current_release()
    with Probe() as probe:
        run = deploy(inventory, checkout)
    assert run.rc == 0, run.out[-4000:]
    assert current_release() != zero
    # The hand-managed backend published 8002 itself: converted to the proxy, one gap, said.
    assert "CONVERTED to the proxy" in run.flat, run.out[-4000:]
    # The hand-run container's PID 1 is `sh -c "sleep 10 && gunicorn ..."`, which ignores
    # docker stop's SIGTERM: its app gets SIGTERM first, so the gap is not stop_timeout (30 s).
    gap = float(re.search(r"CONVERTED to the proxy: one gap of ([0-9.]+) s", run.flat).group(1))
    print(f"conversion of the hand-managed stack: gap {gap} s, {probe.failed} failed probes, "
          f"longest {probe.longest_gap:.1f}s")
    assert gap < 10 and probe.longest_gap < 10, run.out[-4000:]
    # the three dead router modules are warnings, not failures
    assert run.flat.count("never included") >= 3, run.out[-4000:]
    assert container_id("db") == hand_managed["db"], "the db container was recreated"
    assert db_rows() >= hand_managed["rows"]
    code, body = curl("/api/portfolio/latest")
    assert code == 200, body  # the backend reaches the db with the operator's password
    code, body = curl("/api/portfolio/refresh", "POST")
    assert code == 200, body
    snapshot = json.loads(curl("/api/portfolio/snapshot?exchange=CRYPTO_COM")[1])
    assert snapshot["ok"] is True and snapshot["positions"]
    env = on_instance("sh", "-c", f"cat {APP}/current/.env")
    assert f"POSTGRES_PASSWORD={DB_PASSWORD}" in env.replace("'", "")
    for name in (".env", ".env.aws", ".env.db"):
        mode = on_instance("stat", "-L", "-c", "%a", f"{APP}/current/{name}")
        assert mode == "600", (name, mode)
    for secret in (DB_PASSWORD, *HAND_CREDS.values()):
        assert secret not in run.out


def test_unchanged_redeploy_changes_nothing(inventory, checkout, hand_managed):
    before = (current_release(), container_id("backend-aws"), container_id("db"))
    run = deploy(inventory, checkout)
    assert run.rc == 0, run.out[-3000:]
    assert run.recap_changed() == 0
    assert (current_release(), container_id("backend-aws"), container_id("db")) == before
    assert run.sessions <= 3


def test_failed_build_names_the_error_first_and_touches_nothing(inventory, checkout,
                                                               hand_managed, tmp_path):
    broken = make_app(tmp_path / "build-fail", "build-fail")
    before = (current_release(), container_id("backend-aws"))
    with Probe() as probe:
        run = deploy(inventory, broken)
    assert run.rc != 0
    msg = [line for line in run.out.splitlines() if "docker build" in line or "build" in line]
    assert msg, run.out[-3000:]
    assert "CACHED" not in run.out
    assert (current_release(), container_id("backend-aws")) == before
    assert probe.failed == 0


def test_missing_credentials_fail_with_that_reason_and_never_serve(inventory, checkout,
                                                                   hand_managed):
    good = current_release()
    commit_variant(checkout, "good")  # a new commit: a code + env release
    with Probe() as probe:
        run = deploy(inventory, checkout, "-e", '{"deploy_env_aws": {"ENVIRONMENT": "aws"}}',
                     "-e", "deploy_allow_missing_credentials=true",
                     "-e", "deploy_env_replace=true", "-e", "smoke_timeout=60")
    assert run.rc != 0
    assert "Missing API credentials" in run.flat, run.out[-3000:]
    assert "never received traffic" in run.flat, run.out[-3000:]
    assert current_release() == good
    assert probe.failed == 0
    print(f"missing credentials: {probe.failed} failed probes during the deploy")


def test_credentials_the_exchange_refuses_fail_at_once_and_never_serve(inventory, checkout,
                                                                        hand_managed):
    """The app's snapshot says the exchange rejected the key (FAKE_EXCHANGE_MODE=auth_error:
    "Exchange error: ... 40101 UNAUTHORIZED"): the smoke check stops at once with advice on the
    key and its IP allow-list, well before smoke_timeout (90 s), and the release never
    serves."""
    if not current_release():  # run alone: the good release the module deploys earlier
        assert deploy(inventory, checkout).rc == 0
    good = current_release()
    commit_variant(checkout, "good")  # a new commit: a code + env release
    env_aws = {"ENVIRONMENT": "aws", "CRYPTO_COM_API_KEY": "sandbox-fake-key-3f9a",
               "CRYPTO_COM_API_SECRET": "sandbox-fake-secret-c41d",
               "FAKE_EXCHANGE_MODE": "auth_error"}
    with Probe() as probe:
        run = deploy(inventory, checkout, "-e", json.dumps({"deploy_env_aws": env_aws}))
    assert run.rc != 0
    assert "40101 UNAUTHORIZED" in run.flat, run.out[-3000:]
    assert "the exchange refused the app's credentials" in run.flat, run.out[-3000:]
    assert "never received traffic" in run.flat, run.out[-3000:]
    # three identical answers end the checks: the whole deploy takes less than smoke_timeout
    # alone would (an unreachable exchange is waited for that long)
    assert run.seconds < 90, run.out[-3000:]
    assert current_release() == good
    assert probe.failed == 0
    assert "sandbox-fake-secret-c41d" not in run.out
