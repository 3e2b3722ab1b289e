"""dotenv: parse env files as compose does, merge a deploy's values onto them, plan by digests."""

from __future__ import annotations

import pytest
from ansible_collections.atp.deploy.plugins.module_utils import dotenv

# --------------------------------------------------------------------------- parsing


@pytest.mark.parametrize(("text", "expected"), [
    ("A=1\n", {"A": "1"}),
    ("A = 1\n", {"A": "1"}),
    ("export A=1\n", {"A": "1"}),
    ("export\tA=1\n", {"A": "1"}),
    ("exported=1\n", {"exported": "1"}),
    ("A: 1\n", {"A": "1"}),
    ("A=\n", {"A": ""}),
    ("A=1 # comment\n", {"A": "1"}),
    ("A=a#b\n", {"A": "a#b"}),
    ("A=  padded  \n", {"A": "padded"}),
    ("A=1\r\n", {"A": "1"}),
    ("A='it is $HOME'\n", {"A": "it is $HOME"}),
    ("A=\"line\\nnext \\\"q\\\" \\\\ end\"\n", {"A": "line\nnext \"q\" \\ end"}),
    ("A='multi\nline'\nB=2\n", {"A": "multi\nline", "B": "2"}),
    ("A=\"multi\nline\" # c\nB=2\n", {"A": "multi\nline", "B": "2"}),
    ("# only a comment\n\n   \n", {}),
    ("  # indented comment\nA=1", {"A": "1"}),
    ("A=1\nA=2\n", {"A": "2"}),
    ("ONLY_KEY\nB=2\n", {"ONLY_KEY": None, "B": "2"}),
    ("dotted.key-name=1\n", {"dotted.key-name": "1"}),
    ("A='x' # trailing comment\n", {"A": "x"}),
    ("", {}),
])
def test_values_as_compose_reads_them(text, expected):
    assert dotenv.values(text) == expected


def test_blocks_cover_the_whole_text_byte_for_byte():
    text = "# c\nexport A='x\ny'\n\nB=2 # two\nC"
    entries = dotenv.parse(text)
    assert "".join(e.raw for e in entries) == text
    assert [(e.key, e.line) for e in entries] == [(None, 1), ("A", 2), (None, 4), ("B", 5),
                                                  ("C", 6)]


@pytest.mark.parametrize(("text", "literal"), [
    ("A=plain\n", True),
    ("A=${HOME}/x\n", False),
    ("A='${HOME}'\n", True),
    ("A=\"${HOME}\"\n", False),
    ("A=\"no dollar\"\n", True),
])
def test_literal_only_when_compose_does_not_interpolate(text, literal):
    entry = dotenv.effective(dotenv.parse(text))["A"]
    assert entry.literal is literal
    assert (dotenv.literal_value(entry) is not None) is literal


@pytest.mark.parametrize(("text", "fragment"), [
    ("A=1\nB='never closed secret-xyz\n", "line 2: the quoted value of B is never closed"),
    ("A=\"x\ny", "line 1: the quoted value of A is never closed"),
    ("BAD KEY=1\n", "line 1: expected KEY=value"),
    ("A$B=1\n", "line 1: unexpected character '$' in a variable name"),
    ("A='x' B=secret-xyz\n", "line 1: unexpected text after the quoted value of A"),
    ("=value-xyz\n", "line 1: expected KEY=value"),
])
def test_unreadable_files_name_the_line_never_the_value(text, fragment):
    with pytest.raises(dotenv.DotenvError) as info:
        dotenv.parse(text, "shared/.env")
    message = str(info.value)
    assert message.startswith("shared/.env line ") and fragment in message
    assert "secret-xyz" not in message and "\n" not in message


def test_entry_repr_never_shows_the_value():
    entry = dotenv.parse("A=secret-xyz\n")[0]
    assert "secret-xyz" not in repr(entry)


# --------------------------------------------------------------------------- merging

OPERATOR = ("# the operator's file\n"
            "export POSTGRES_PASSWORD=\"hand-pw\"\n"
            "ENVIRONMENT=aws  # inline\n"
            "\n"
            "DUP=1\n"
            "DUP=2\n"
            "CRYPTOCOM_API_KEY=old\n")


def test_new_file_has_the_header_and_sorted_keys():
    text, report = dotenv.merge(None, {"B": "2", "A": "x y"})
    assert text == dotenv.HEADER + "\nA='x y'\nB='2'\n"
    assert report == {"exists": False, "set": ["A", "B"], "kept": [], "dropped": [],
                      "in_sync": False, "changed": True}
    assert dotenv.values(text) == {"A": "x y", "B": "2"}


def test_instance_keys_are_kept_lines_untouched_new_keys_appended():
    text, report = dotenv.merge(OPERATOR, {"ENVIRONMENT": "aws", "NEW": "1"})
    assert text == OPERATOR + "NEW='1'\n"
    assert report["set"] == ["NEW"] and report["dropped"] == []
    assert report["kept"] == ["CRYPTOCOM_API_KEY", "DUP", "POSTGRES_PASSWORD"]
    assert report["changed"] is True and report["in_sync"] is False


def test_a_passed_key_wins_first_definition_rewritten_duplicates_removed():
    text, report = dotenv.merge(OPERATOR, {"DUP": "3", "POSTGRES_PASSWORD": "new"})
    assert report["set"] == ["DUP", "POSTGRES_PASSWORD"]
    assert text == ("# the operator's file\nPOSTGRES_PASSWORD='new'\n"
                    "ENVIRONMENT=aws  # inline\n\nDUP='3'\nCRYPTOCOM_API_KEY=old\n")
    assert dotenv.values(text)["DUP"] == "3"


def test_unchanged_values_leave_the_text_alone():
    text, report = dotenv.merge(OPERATOR, {"DUP": "2", "POSTGRES_PASSWORD": "hand-pw"})
    assert text == OPERATOR and report["changed"] is False and report["in_sync"] is True
    assert report["set"] == []


def test_replace_drops_and_names_every_key_not_passed():
    text, report = dotenv.merge(OPERATOR, {"ENVIRONMENT": "aws"}, replace=True)
    assert report["dropped"] == ["CRYPTOCOM_API_KEY", "DUP", "POSTGRES_PASSWORD"]
    assert report["kept"] == []
    assert text == "# the operator's file\nENVIRONMENT=aws  # inline\n\n"


def test_superseded_aliases_go_only_when_their_canonical_key_is_passed():
    supersedes = {"EXCHANGE_CUSTOM_API_KEY": ["CRYPTOCOM_API_KEY", "CRYPTO_COM_API_KEY"]}
    _text, report = dotenv.merge(OPERATOR, {"A": "1"}, supersedes=supersedes)
    assert "CRYPTOCOM_API_KEY" in report["kept"]
    text, report = dotenv.merge(OPERATOR, {"EXCHANGE_CUSTOM_API_KEY": "k"},
                                supersedes=supersedes)
    assert report["dropped"] == ["CRYPTOCOM_API_KEY"]
    assert "CRYPTOCOM_API_KEY" not in dotenv.values(text)


def test_a_file_without_final_newline_gets_one_before_appending():
    text, _report = dotenv.merge("A=1", {"B": "2"})
    assert text == "A=1\nB='2'\n"


def test_interpolated_instance_value_is_rewritten_as_a_literal():
    text, report = dotenv.merge("A=${B}\n", {"A": "${B}"})
    assert report["set"] == ["A"] and text == "A='${B}'\n"
    again, report = dotenv.merge(text, {"A": "${B}"})
    assert again == text and report["changed"] is False


def test_a_key_only_line_is_rewritten_when_passed():
    text, report = dotenv.merge("A\n", {"A": "1"})
    assert text == "A='1'\n" and report["set"] == ["A"]


def test_old_managed_header_is_updated_when_the_file_changes():
    old = dotenv.OLD_HEADERS[0] + "\nA='1'\n"
    text, _report = dotenv.merge(old, {"A": "1"})
    assert text == old
    text, _report = dotenv.merge(old, {"A": "2"})
    assert text == dotenv.HEADER + "\nA='2'\n"


def test_a_value_an_env_line_cannot_hold_is_refused_without_the_value():
    with pytest.raises(dotenv.DotenvError) as info:
        dotenv.merge(None, {"A": "secret-xyz\\"})
    assert "A" in str(info.value) and "secret-xyz" not in str(info.value)


def test_merge_is_idempotent():
    once, _ = dotenv.merge(OPERATOR, {"NEW": "1", "DUP": "9"}, replace=False)
    twice, report = dotenv.merge(once, {"NEW": "1", "DUP": "9"}, replace=False)
    assert twice == once and report["changed"] is False


# --------------------------------------------------------------------------- planning by digests


def test_key_digest_depends_on_salt_key_and_value():
    base = dotenv.key_digest("s1", "A", "1")
    assert len(base) == 64
    assert base != dotenv.key_digest("s2", "A", "1")
    assert base != dotenv.key_digest("s1", "B", "1")
    assert base != dotenv.key_digest("s1", "A", "2")
    assert dotenv.key_digest("s1", "A", None) == ""


@pytest.mark.parametrize(("text", "want", "replace"), [
    (None, {"A": "1"}, False),
    (OPERATOR, {"ENVIRONMENT": "aws"}, False),
    (OPERATOR, {"ENVIRONMENT": "gcp", "NEW": "x"}, False),
    (OPERATOR, {"DUP": "2"}, True),
    ("A=${B}\n", {"A": "${B}"}, False),
    ("A\n", {"A": ""}, False),
    ("", {}, False),
])
def test_plan_by_digests_agrees_with_the_merge(text, want, replace):
    supersedes = {"EXCHANGE_CUSTOM_API_KEY": ["CRYPTOCOM_API_KEY"]}
    planned = dotenv.plan_file(text, dotenv.digests(want, "salt"), "salt", replace, supersedes)
    _new, merged = dotenv.merge(text, want, replace, supersedes)
    for key in ("exists", "set", "kept", "dropped"):
        assert planned[key] == merged[key], key
    assert planned["in_sync"] is (not merged["changed"])
