"""Paths, ports and names shared by the sandbox pieces (all overridable by environment)."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
STATE_DIR = Path(os.environ.get("ATP_SANDBOX_DIR", REPO / ".sandbox"))
REGION = "ap-southeast-1"
FIRST_INSTANCE_ID = "i-08726dc37133b2454"
BUCKET = "atp-sandbox-ssm-transfer"
CONTAINER_PREFIX = "atp-sandbox-"
LABEL = "io.atp.sandbox.instance"
# where the real session-manager-plugin would be: the stand-in (sandbox/atp_sandbox/smp.py)
PLUGIN_STANDIN = REPO / "sandbox" / "bin" / "session-manager-plugin"
# the production inventory source: the sandbox registers its instances with its tags
PRODUCTION_EC2_SOURCE = REPO / "inventory" / "production" / "aws_ec2.yml"


def _port(name: str, default: int) -> int:
    return int(os.environ.get(name, default))


SSM_PORT = _port("ATP_SANDBOX_SSM_PORT", 4580)
S3_PORT = _port("ATP_SANDBOX_S3_PORT", 4581)
MOTO_PORT = _port("ATP_SANDBOX_MOTO_PORT", 4582)


def instance_ids(count: int) -> list[str]:
    """EC2-looking ids; the first is the seed's instance."""
    ids = [FIRST_INSTANCE_ID]
    for n in range(1, count):
        ids.append(f"i-{0x08726dc37133b2454 + n * 0x1111:017x}")
    return ids


def container_name(instance_id: str) -> str:
    return CONTAINER_PREFIX + instance_id


@dataclass
class Paths:
    root: Path = STATE_DIR

    @property
    def state(self) -> Path:
        return self.root / "state.json"

    @property
    def events(self) -> Path:
        return self.root / "events.jsonl"

    @property
    def sessions(self) -> Path:
        return self.root / "sessions"

    @property
    def aws_config(self) -> Path:
        return self.root / "aws" / "config"

    @property
    def aws_credentials(self) -> Path:
        return self.root / "aws" / "credentials"

    @property
    def env_file(self) -> Path:
        """Where earlier versions wrote shell exports; removed by `up` (nothing sources it)."""
        return self.root / "env"


# The sandbox's AWS identity: fake keys, accepted by moto and the stand-ins, rejected by AWS.
ACCESS_KEY_ID = "AKIASANDBOXSTANDIN00"
SECRET_ACCESS_KEY = "sandbox-not-a-secret"


def endpoints() -> dict[str, str]:
    """Where the sandbox's AWS services answer: SSM (stand-in), S3 (logging proxy), the rest
    (EC2, Parameter Store behind the SSM stand-in, KMS, STS...) moto itself."""
    return {"ssm": f"http://127.0.0.1:{SSM_PORT}", "s3": f"http://127.0.0.1:{S3_PORT}",
            "default": f"http://127.0.0.1:{MOTO_PORT}"}


def aws_env(paths: Paths | None = None) -> dict[str, str | None]:
    """Environment that points ONE process (and its children) at the sandbox's AWS.

    Values of None mean "unset". Every AWS endpoint is local and the credentials are the
    sandbox's fake keys, so nothing started with this environment can reach AWS, whatever the
    caller's shell holds (a production AWS_PROFILE, keys, an endpoint override). Used by the
    sandbox inventory (sandbox/ansible_plugins), the tests and `atp_sandbox run`; never
    written to a file an operator's shell would source.
    """
    paths = paths or Paths()
    urls = endpoints()
    return {
        "AWS_ENDPOINT_URL": urls["default"],
        "AWS_ENDPOINT_URL_SSM": urls["ssm"],
        "AWS_ENDPOINT_URL_S3": urls["s3"],
        "AWS_ACCESS_KEY_ID": ACCESS_KEY_ID,
        "AWS_SECRET_ACCESS_KEY": SECRET_ACCESS_KEY,
        "AWS_REGION": REGION,
        "AWS_DEFAULT_REGION": REGION,
        "AWS_EC2_METADATA_DISABLED": "true",
        "AWS_SESSION_TOKEN": None,
        "AWS_SECURITY_TOKEN": None,
        "AWS_PROFILE": None,
        "AWS_DEFAULT_PROFILE": None,
        "AWS_IGNORE_CONFIGURED_ENDPOINT_URLS": None,
        "AWS_URL": None,
        "EC2_URL": None,
        # the caller's ~/.aws is out of the picture; the sandbox's own files hold only the
        # `atp-sandbox` profile (for tools that take --profile, e.g. bin/atp-portforward)
        "AWS_CONFIG_FILE": str(paths.aws_config),
        "AWS_SHARED_CREDENTIALS_FILE": str(paths.aws_credentials),
    }


def apply_env(env: dict[str, str], changes: dict[str, str | None]) -> dict[str, str]:
    """``env`` with ``changes`` applied in place (None removes the name); returns ``env``."""
    for name, value in changes.items():
        if value is None:
            env.pop(name, None)
        else:
            env[name] = value
    return env


def load_state(paths: Paths | None = None) -> dict:
    paths = paths or Paths()
    try:
        return json.loads(paths.state.read_text())
    except FileNotFoundError:
        return {"instances": {}}


def save_state(state: dict, paths: Paths | None = None) -> None:
    paths = paths or Paths()
    paths.root.mkdir(parents=True, exist_ok=True)
    tmp = paths.state.with_suffix(".tmp")
    tmp.write_text(json.dumps(state, indent=1, sort_keys=True) + "\n")
    os.replace(tmp, paths.state)
