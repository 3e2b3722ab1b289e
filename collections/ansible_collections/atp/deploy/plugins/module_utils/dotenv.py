# Copyright: atp.deploy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Env files (dotenv) as docker compose reads them, and the merge of a deploy's values onto them.

Pure functions, stdlib only: they run on the instance (release_state plans, env_files writes)
and on the controller (the digests the plan compares). Errors name a file line and a variable,
never a value.

Parsing follows compose's dotenv reader: ``KEY=value`` (or ``KEY: value``), an optional
``export`` prefix, ``#`` comment lines, blank lines; a value in single quotes is literal but for
``\\'`` (may span lines), in double quotes it knows compose's escapes (``\\n \\r \\t \\\\ \\" \\$``
...; an unescaped ``$`` interpolates) and may span lines; a quote after an odd number of
backslashes does not close the value; unquoted
it runs to the end of the line, cut at `` #`` and right-trimmed; the last definition of a key
wins; a line holding only a key takes the value from the environment.

Merging keeps the file as the operator wrote it: keys the deploy passes get their value (the
first definition is rewritten as ``KEY='value'`` or ``KEY="escaped"``, see quote_value, later
duplicates removed, a key not there is
appended); every other line -- comments, other keys -- stays byte for byte, unless
``replace`` drops the keys the deploy does not pass. ``supersedes`` maps a key the deploy passes
to old aliases of it that are dropped whenever that key is passed (credential aliases).
"""

from __future__ import annotations

import hashlib
import hmac

HEADER = ("# Managed by atp.deploy: keys the deploy passes are set here, every other key is "
          "kept (deploy_env_replace=true drops them).")
# The header older versions wrote (they replaced the whole file); rewritten to HEADER.
OLD_HEADERS = ("# Managed by Ansible (atp.deploy). Local edits are overwritten.",)
_SPACES = " \t\v\f\r"
_KEY_EXTRA = "_.-[]"


class DotenvError(ValueError):
    """An env file compose could not read either: names the line, never a value."""


class Entry:
    """One block of an env file: a definition (key set) or a comment/blank line (key None).

    raw: the exact text of the block (one line, or several for a multi-line quoted value),
    including its newline. value: the parsed value (None for a key-only line).
    literal: the value is taken as written (compose does no ${VAR} interpolation on it).
    """

    __slots__ = ("key", "line", "literal", "raw", "value")

    def __init__(self, key: str | None, value: str | None, literal: bool, raw: str, line: int):
        self.key, self.value, self.literal, self.raw, self.line = key, value, literal, raw, line

    def __repr__(self) -> str:  # never the value
        return f"Entry(key={self.key!r}, line={self.line})"


def key_char(char: str) -> bool:
    return char.isalnum() or char in _KEY_EXTRA


# compose's escapes inside double quotes (compose v2.26, proven in
# tests/integration/test_lock_and_secrets.py); any other \X stays as written.
_DOUBLE_ESCAPES = {"a": "\a", "b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t",
                   "v": "\v", "\\": "\\", '"': '"', "$": "$"}


def _unescape_double(text: str) -> tuple[str, bool]:
    """Inside double quotes -> (value, literal): compose's escapes; literal is False when an
    unescaped ``$`` makes compose interpolate (\\$ is a literal dollar)."""
    out, i, literal = [], 0, True
    while i < len(text):
        char = text[i]
        if char == "\\" and i + 1 < len(text) and text[i + 1] in _DOUBLE_ESCAPES:
            out.append(_DOUBLE_ESCAPES[text[i + 1]])
            i += 2
            continue
        if char == "$":
            literal = False
        out.append(char)
        i += 1
    return "".join(out), literal


def _escaped(text: str, pos: int) -> bool:
    """The character at pos follows an odd number of backslashes."""
    count = 0
    while pos - count - 1 >= 0 and text[pos - count - 1] == "\\":
        count += 1
    return count % 2 == 1


def _line_end(text: str, pos: int) -> int:
    """Index just after the newline ending the line at pos (or len(text))."""
    eol = text.find("\n", pos)
    return len(text) if eol < 0 else eol + 1


def _statement(text: str, start: int, line_no: int, where: str) -> tuple[Entry, int]:
    """Parse the definition starting at line offset start -> (entry, offset of the next block)."""
    end = _line_end(text, start)
    line = text[start:end]
    body = line.lstrip(_SPACES)
    offset = start + len(line) - len(body)
    if body.startswith("export") and body[6:7] in (" ", "\t"):
        rest = body[6:].lstrip(_SPACES)
        offset += len(body) - len(rest)
        body = rest
    i = 0
    while i < len(body) and body[i] not in "=:\n":
        if not (key_char(body[i]) or body[i] in _SPACES):
            raise DotenvError(f"{where} line {line_no}: unexpected character {body[i]!r} in a "
                              "variable name")
        i += 1
    key = body[:i].strip(_SPACES)
    if not key or any(c in _SPACES for c in key):
        raise DotenvError(f"{where} line {line_no}: expected KEY=value, found no valid "
                          "variable name")
    if i >= len(body) or body[i] == "\n":
        return Entry(key, None, True, line, line_no), end
    pos = offset + i + 1
    while pos < len(text) and text[pos] in _SPACES:
        pos += 1
    quote = text[pos] if pos < len(text) else ""
    if quote in ("'", '"'):
        close = pos + 1
        while True:
            close = text.find(quote, close)
            if close < 0:
                raise DotenvError(f"{where} line {line_no}: the quoted value of {key} is never "
                                  "closed; close the quote")
            if not _escaped(text, close):
                break
            close += 1
        inner = text[pos + 1:close]
        block_end = _line_end(text, close)
        trailing = text[close + 1:block_end].strip()
        if trailing and not trailing.startswith("#"):
            raise DotenvError(f"{where} line {line_no}: unexpected text after the quoted value "
                              f"of {key}; put one KEY=value per line")
        if quote == "'":
            value, literal = inner.replace("\\'", "'"), True
        else:
            value, literal = _unescape_double(inner)
        return Entry(key, value, literal, text[start:block_end], line_no), block_end
    raw_value = text[pos:end].rstrip("\n")
    cut = raw_value.find(" #")
    if cut >= 0:
        raw_value = raw_value[:cut]
    value = raw_value.rstrip()
    return Entry(key, value, "$" not in value, line, line_no), end


def parse(text: str, where: str = "env file") -> list[Entry]:
    """Split text into blocks (definitions, comments, blank lines) covering all of it."""
    entries, pos, line_no = [], 0, 1
    while pos < len(text):
        end = _line_end(text, pos)
        stripped = text[pos:end].strip()
        if not stripped or stripped.startswith("#"):
            entries.append(Entry(None, None, True, text[pos:end], line_no))
            nxt = end
        else:
            entry, nxt = _statement(text, pos, line_no, where)
            entries.append(entry)
        line_no += text.count("\n", pos, nxt)
        pos = nxt
    return entries


def effective(entries: list[Entry]) -> dict[str, Entry]:
    """key -> the definition compose uses (the last one)."""
    return {e.key: e for e in entries if e.key is not None}


def values(text: str, where: str = "env file") -> dict[str, str | None]:
    """key -> value as written (None for a key-only line); the last definition wins."""
    return {key: e.value for key, e in effective(parse(text, where)).items()}


def literal_value(entry: Entry | None) -> str | None:
    """The value when compose takes it as written, else None (never equal to a passed value)."""
    if entry is None or entry.value is None or not entry.literal:
        return None
    return entry.value


def key_digest(salt: str, key: str, value: str | None) -> str:
    """HMAC-SHA256 of key and value under a per-run salt ('' for None: matches nothing)."""
    if value is None:
        return ""
    message = f"{key}\0{value}".encode("utf-8", "surrogateescape")
    return hmac.new(salt.encode("utf-8"), message, hashlib.sha256).hexdigest()


def digests(env: dict, salt: str) -> dict[str, str]:
    """key -> key_digest for every key of a rendered env (values already strings)."""
    return {key: key_digest(salt, key, str(value)) for key, value in env.items()}


def _dropped(key: str, wanted: set, replace: bool, supersedes: dict) -> bool:
    if key in wanted:
        return False
    if replace:
        return True
    return any(key in (supersedes.get(w) or ()) for w in wanted)


def _report(existing: dict[str, Entry], wanted: set, differs, replace: bool,
            supersedes: dict, exists: bool) -> dict:
    changed = sorted(k for k in wanted if differs(k))
    others = sorted(k for k in existing if k not in wanted)
    dropped = [k for k in others if _dropped(k, wanted, replace, supersedes)]
    kept = [k for k in others if k not in dropped]
    return {"exists": exists, "set": changed, "kept": kept, "dropped": dropped,
            "in_sync": exists and not changed and not dropped}


def plan_file(text: str | None, want: dict[str, str], salt: str, replace: bool = False,
              supersedes: dict | None = None, where: str = "env file") -> dict:
    """Compare an instance file with the deploy's per-key digests (values never needed).

    Returns {exists, set, kept, dropped, in_sync}: keys the deploy sets (new or different),
    keys only on the instance that stay, keys that go (replace, or a superseded alias).
    """
    existing = effective(parse(text, where)) if text is not None else {}
    supersedes = supersedes or {}

    def differs(key: str) -> bool:
        value = literal_value(existing.get(key))
        return key_digest(salt, key, value) != str(want[key]).lower()

    return _report(existing, set(want), differs, replace, supersedes, text is not None)


def value_problem(key: str, value: str) -> str | None:
    """Why value cannot be written to an env file for key (one line, never the value), or
    None. Refused: a NUL (no environment variable can hold one), a trailing backslash
    (compose reads ``\\'`` as an escaped quote and swallows the next line: the failure that
    printed a secret; shells and other dotenv readers disagree on it too), text that is not
    valid UTF-8. Everything else is written (quote_value)."""
    if "\0" in value:
        return (f"the value of {key} contains a NUL character, which no environment variable "
                "can hold; remove it")
    if value.endswith("\\"):
        return (f"the value of {key} ends with a backslash, which compose's env file parser "
                "reads as escaping the closing quote (it then swallows the next line); remove "
                "the trailing backslash")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return f"the value of {key} is not valid UTF-8 text; fix the value"
    return None


def quote_value(value: str) -> str:
    """The value as compose's dotenv parser reads it back exactly (value_problem() is None).

    Single quotes (taken literally: ``$``, ``#``, ``"``, backslashes inside stay as written)
    unless the value holds a single quote, a newline or a carriage return; then double quotes
    with the only escapes compose knows there: ``\\\\ \\" \\$ \\n \\r``.
    """
    if "'" not in value and "\n" not in value and "\r" not in value:
        return f"'{value}'"
    escaped = (value.replace("\\", "\\\\").replace('"', '\\"').replace("$", "\\$")
               .replace("\n", "\\n").replace("\r", "\\r"))
    return f'"{escaped}"'


def render_line(key: str, value: str) -> str:
    """``KEY='value'`` or ``KEY="escaped value"`` (quote_value); DotenvError (naming the key,
    never the value) for a value no env file line can hold (value_problem)."""
    problem = value_problem(key, value)
    if problem:
        raise DotenvError(problem)
    return f"{key}={quote_value(value)}\n"


def merge(text: str | None, want: dict[str, str], replace: bool = False,
          supersedes: dict | None = None, where: str = "env file") -> tuple[str, dict]:
    """Merge the deploy's values onto an existing env file (None: no file yet).

    Returns (new text, report): report as plan_file plus ``changed`` (text differs).
    """
    supersedes = supersedes or {}
    want = {key: str(value) for key, value in want.items()}
    if text is None:
        lines = [HEADER + "\n"] + [render_line(k, want[k]) for k in sorted(want)]
        report = _report({}, set(want), lambda _k: True, replace, supersedes, False)
        return "".join(lines), {**report, "changed": True}
    entries = parse(text, where)
    existing = effective(entries)

    def differs(key: str) -> bool:
        return literal_value(existing.get(key)) != want[key]

    report = _report(existing, set(want), differs, replace, supersedes, True)
    rewrite, drop = set(report["set"]), set(report["dropped"])
    out, written = [], set()
    for entry in entries:
        key = entry.key
        if key is None:
            out.append(entry.raw)
        elif key in drop:
            continue
        elif key in rewrite:
            if key not in written:
                out.append(render_line(key, want[key]))
                written.add(key)
        else:
            out.append(entry.raw)
    appended = [k for k in sorted(rewrite) if k not in written]
    if appended and out and not out[-1].endswith("\n"):
        out[-1] += "\n"
    out.extend(render_line(k, want[k]) for k in appended)
    new_text = "".join(out)
    if new_text != text:
        for old in OLD_HEADERS:
            if new_text.startswith(old + "\n"):
                new_text = HEADER + new_text[len(old):]
    return new_text, {**report, "changed": new_text != text}
