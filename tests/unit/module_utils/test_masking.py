"""Tests of module_utils/masking.py: env values never leave a module in command output."""

from __future__ import annotations

import json
import os

import pytest
from ansible_collections.atp.deploy.plugins.module_utils import dotenv, masking

SECRET = "sk-live-9f8e7d6c"
PASSWORD = "pa$$'w\"ord"


@pytest.mark.parametrize(("name", "value", "masked"), [
    ("EXCHANGE_CUSTOM_API_SECRET", SECRET, True),
    ("DB_PASSWORD", "abc", True),
    ("DB_PASSWORD", "ab", False),
    ("API_TOKEN", "true", False),
    ("DATABASE_URL", "postgresql://u:p@db/x", True),
    ("ENVIRONMENT", "aws", False),
    ("PORT", "8002", False),
    ("LOG_LEVEL", "INFO", False),
    ("APP_NAME", "automated-trading-platform", False),
    ("ENVIRONMENT", "production", False),
    ("LIMIT", "1500", False),
    ("ACCOUNT_ID", "123456789012", True),
    ("EXCHANGE_URL", "https://api.example.com/v1", True),
    ("SOME_VALUE", "Tr4d1ng-Pw", True),
    ("ANY", "   ", False),
    ("ANY", None, False),
])
def test_should_mask(name, value, masked):
    assert masking.should_mask(name, value) is masked


def test_every_form_of_a_value_is_masked():
    m = masking.Masker([PASSWORD, "line-one\nline-two"])
    outputs = [
        f"value {PASSWORD} here",
        "config: " + PASSWORD.replace("$", "$$"),
        "json: " + json.dumps({"v": PASSWORD}),
        "dotenv: P=" + dotenv.quote_value(PASSWORD),
        "first line only: line-one",
        "escaped: " + json.dumps("line-one\nline-two"),
    ]
    for text in outputs:
        out = m.text(text)
        assert "pa$" not in out and "line-one" not in out, out
        assert masking.MASK in out


def test_longest_value_first_and_structures():
    m = masking.Masker(["secret", "secret-long"])
    assert m.text("x secret-long y secret") == f"x {masking.MASK} y {masking.MASK}"
    data = {"msg": "has secret", "list": ["secret", 3, None], "secret": True}
    assert m.data(data) == {"msg": f"has {masking.MASK}", "list": [masking.MASK, 3, None],
                            masking.MASK: True}
    assert masking.Masker().text("nothing") == "nothing"


def test_compose_env_errors_lose_the_quoted_text_whatever_it_is():
    text = ('failed to read /app/releases/r/.env.aws: line 3: unexpected character "\\\\" in '
            'variable name "nextvalue-xyz\'"\nother line stays')
    out = masking.Masker().text(text)
    assert "nextvalue-xyz" not in out
    assert out.startswith("failed to read /app/releases/r/.env.aws: line 3: unexpected "
                          "character (env file text hidden)")
    assert out.endswith("\nother line stays")
    out = masking.Masker().text("unterminated quoted value 'abc-secret\nnext")
    assert out == "unterminated quoted value (env file text hidden)\nnext"
    out = masking.Masker().text('line 2: unexpected character "\'" in variable name "n-secret\'"')
    assert out == "line 2: unexpected character (env file text hidden)"
    out = masking.Masker().text("line 3: unterminated quoted value 'abc-secret")
    assert out == "line 3: unterminated quoted value (env file text hidden)"


def test_file_pairs_of_a_good_and_a_broken_file():
    assert masking.file_pairs("A='x y'\n# c\nB=2\n") == [("A", "x y"), ("B", "2")]
    broken = "A='abc\\'\nB='s3cret-xyz'\n"
    pairs = masking.file_pairs(broken)
    m = masking.Masker().add_pairs(pairs)
    assert "s3cret-xyz" not in m.text("near \"B='s3cret-xyz'\" and s3cret-xyz")


def test_release_env_files_cover_shared_sets_release_and_checkout(tmp_path):
    app = tmp_path / "app"
    (app / "shared" / "env" / "abc123").mkdir(parents=True)
    (app / "shared" / "env" / "abc123" / ".env.aws").write_text(f"S='{SECRET}'\n")
    (app / "shared" / ".env").write_text("OLD_SECRET_KEY='old-value-1'\n")
    (app / "shared" / "secrets").mkdir()
    (app / "shared" / "secrets" / ".env.x").write_text("NOT='read-me-not'\n")
    rel = app / "releases" / "r1"
    rel.mkdir(parents=True)
    (rel / ".env.db").write_text("POSTGRES_PASSWORD='db-pass-77'\n")
    (rel / ".env").symlink_to(app / "shared" / ".env")
    (app / ".env.local").write_text("LOCAL_TOKEN='tok-local-5'\n")
    files = masking.release_env_files(str(app), str(rel))
    assert len(files) == len({os.path.realpath(f) for f in files}) == 4
    m = masking.for_release(str(app), str(rel))
    out = m.text(f"{SECRET} old-value-1 db-pass-77 tok-local-5 read-me-not")
    assert out.split() == [masking.MASK] * 4 + ["read-me-not"]
    assert len(masking.for_release(None)) == 0


def test_protect_masks_what_a_module_returns():
    seen = {}

    class Module:
        def fail_json(self, msg, **kw):
            seen["fail"] = (msg, kw)

        def exit_json(self, **kw):
            seen["exit"] = kw

        def warn(self, warning):
            seen["warn"] = warning

    module = Module()
    masking.protect(module, masking.Masker([SECRET]))
    module.fail_json(msg=f"build failed: {SECRET}", output=[SECRET], rc=1)
    module.exit_json(changed=False, body={"k": SECRET})
    module.warn(f"w {SECRET}")
    assert SECRET not in repr(seen)
    assert seen["fail"] == (f"build failed: {masking.MASK}", {"output": [masking.MASK], "rc": 1})
