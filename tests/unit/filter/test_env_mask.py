"""Tests of the atp.deploy.mask_env filter (controller-side masking of failure messages)."""

from __future__ import annotations

from ansible_collections.atp.deploy.plugins.filter.env import mask_env

SECRET = "sk-live-1234abcd"


def test_masks_values_of_rendered_env_files_and_flat_envs():
    files = {".env": {"ENVIRONMENT": "aws"}, ".env.aws": {"EXCHANGE_CUSTOM_API_SECRET": SECRET}}
    text = f"compose failed: {SECRET} in aws mode"
    assert mask_env(text, files) == "compose failed: ******** in aws mode"
    assert mask_env(text, {"X_TOKEN": SECRET}) == "compose failed: ******** in aws mode"
    assert mask_env(text, None, {}) == text


def test_cuts_compose_env_errors_and_keeps_other_types():
    text = 'failed to read /a/.env: line 1: unexpected character "x" in variable name "zzz"'
    assert mask_env(text, {}) == ("failed to read /a/.env: line 1: unexpected character "
                                  "(env file text hidden)")
    assert mask_env(None, {"A": SECRET}) is None
    assert mask_env(["a", SECRET], {"A_KEY": SECRET}) == ["a", "********"]
