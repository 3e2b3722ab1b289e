"""Fixtures of the controller-side AWS action tests (moto on a free loopback port)."""

from .moto_local import aws_env, moto_endpoint  # noqa: F401
