"""A moto server on a free loopback port for the controller-side AWS actions (no AWS reached)."""

from __future__ import annotations

import boto3
import pytest

REGION = "ap-southeast-1"


@pytest.fixture(scope="module")
def moto_endpoint():
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


@pytest.fixture
def aws_env(monkeypatch):
    """Fake credentials; no profile, no metadata lookups."""
    for name in ("AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_CONFIG_FILE",
                 "AWS_SHARED_CREDENTIALS_FILE", "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIAUNITTEST0000000")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "unit-test-not-a-secret")
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.setenv("AWS_CONFIG_FILE", "/dev/null")


def client(service: str, endpoint: str):
    return boto3.session.Session(region_name=REGION).client(service, endpoint_url=endpoint)
