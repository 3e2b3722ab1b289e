"""Env values that could break compose's dotenv parser: encoded so they read back exactly, or
refused naming the key (module_utils/dotenv.py value_problem / quote_value / render_line).

The same table is proven against the REAL `docker compose config` on the instance image in
tests/integration/test_lock_and_secrets.py::test_real_compose_reads_every_encoded_value.
"""

from __future__ import annotations

import pytest
from ansible_collections.atp.deploy.plugins.module_utils import dotenv

# name -> value: every case the writer must encode so compose reads the value back unchanged.
NASTY_VALUES = {
    "PLAIN": "plain-value-123",
    "SINGLE_QUOTE": "it's-a-secret",
    "DOUBLE_QUOTES": 'say "hi" now',
    "DOUBLE_QUOTE_EDGES": '"quoted"',
    "BOTH_QUOTES": "mix'\"ed'",
    "DOLLARS": "pa$$word$HOME${X}$",
    "DOLLAR_AND_QUOTE": "it's $HOME and ${PATH}",
    "BACKSLASHES": "back\\slash\\\\two",
    "BACKSLASH_QUOTE": "a\\'b",
    "BACKSLASH_DOUBLE_QUOTE": "x'\\\"y",
    "ESCAPES_AS_TEXT": "\\n\\t\\$\\a",
    "ESCAPES_AND_QUOTE": "'\\n'",
    "HASH": "a #not-a-comment",
    "HASH_START": "#start",
    "SPACES": "  padded  ",
    "NEWLINE": "line1\nline2",
    "PEM": "-----BEGIN KEY-----\nMIIabc+/=\n-----END KEY-----\n",
    "CRLF": "a\r\nb",
    "TAB": "a\tb",
    "JINJA_TEXT": "{#x#}{{y}}{%z%}",
    "UNICODE": "é€😀",
    "EQUALS_COLON": "a=b:c",
    "SHELL": "`cmd` !x $(y)",
    "EMPTY": "",
}
# name -> (value, words of the refusal)
REFUSED = {
    "TRAILING_BACKSLASH": ("secret-xyz\\", "ends with a backslash"),
    "TRAILING_BACKSLASH_QUOTE": ("it's-secret-xyz\\", "ends with a backslash"),
    "NUL": ("secret-xyz\0more", "NUL character"),
    "SURROGATE": ("secret-xyz\udc80", "not valid UTF-8"),
}


@pytest.mark.parametrize("name", sorted(NASTY_VALUES))
def test_every_value_reads_back_exactly_and_literally(name):
    value = NASTY_VALUES[name]
    line = dotenv.render_line(name, value)
    assert line.endswith("\n") and line.count("\n") == 1, "one physical line per key"
    entries = [e for e in dotenv.parse(line + "NEXT='after-secret'\n") if e.key]
    assert [e.key for e in entries] == [name, "NEXT"]
    assert entries[0].value == value and entries[0].literal
    assert dotenv.literal_value(entries[0]) == value
    assert entries[1].value == "after-secret"


def test_simple_values_stay_single_quoted_others_double_quoted():
    assert dotenv.quote_value("a $b \"c\" \\d #e") == "'a $b \"c\" \\d #e'"
    assert dotenv.quote_value("it's") == '"it\'s"'
    assert dotenv.quote_value("a'$\\\"\n\r") == '"a\'\\$\\\\\\"\\n\\r"'


@pytest.mark.parametrize("name", sorted(REFUSED))
def test_refused_values_name_the_key_never_the_value(name):
    value, words = REFUSED[name]
    problem = dotenv.value_problem(name, value)
    assert problem and words in problem and name in problem
    assert "secret-xyz" not in problem and "\n" not in problem
    with pytest.raises(dotenv.DotenvError) as info:
        dotenv.render_line(name, value)
    assert "secret-xyz" not in str(info.value)
    with pytest.raises(dotenv.DotenvError):
        dotenv.merge("A='1'\n", {name: value})


def test_merge_rewrites_a_key_and_reads_back(tmp_path):
    text, report = dotenv.merge("KEEP='1'\nA='old'\n", NASTY_VALUES)
    assert report["changed"] and "KEEP" in report["kept"]
    assert dotenv.values(text) == {"KEEP": "1", "A": "old", **NASTY_VALUES}
    again, report = dotenv.merge(text, NASTY_VALUES)
    assert again == text and not report["changed"]
    salt = "s"
    plan = dotenv.plan_file(text, dotenv.digests(NASTY_VALUES, salt), salt)
    assert plan["in_sync"] and plan["set"] == []


@pytest.mark.parametrize(("text", "value", "literal"), [
    ('A="a\\$HOME"\n', "a$HOME", True),
    ('A="a$HOME"\n', "a$HOME", False),
    ('A="a\\\\$HOME"\n', "a\\$HOME", False),
    ('A="x\\qy\\x41"\n', "x\\qy\\x41", True),
    ('A="t\\tb\\ab"\n', "t\tb\ab", True),
    ('A="ab\\\\"\nB=1\n', "ab\\", True),
    ("A='a\\\\'\nB=1\n", "a\\\\", True),
    ("A='a\\'b'\n", "a'b", True),
])
def test_parser_reads_escapes_as_compose_does(text, value, literal):
    entry = dotenv.effective(dotenv.parse(text))["A"]
    assert (entry.value, entry.literal) == (value, literal)


def test_a_trailing_backslash_in_single_quotes_swallows_the_next_line_like_compose():
    # What the old writer produced: compose failed here and quoted the next value.
    with pytest.raises(dotenv.DotenvError) as info:
        dotenv.parse("A='abc\\'\nB='secret-xyz'\n")
    assert "secret-xyz" not in str(info.value)
