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
        return self.root / "env"


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
