# Copyright: atp.deploy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Mask env values in command output before it leaves a module (stdlib only, runs anywhere).

Compose parse errors quote env file text, build and container output can print env values, a
smoke body can echo them: every module that returns, prints or logs such output masks it with
the values of the env files the release uses (read on the instance, :func:`env_file_values`),
and the controller masks failure messages with the values it rendered (filter
``atp.deploy.mask_env``).

Which values are masked (:func:`should_mask`):
- a value under a secret-looking name (KEY, SECRET, TOKEN, PASS, PWD, CREDENTIAL, AUTH,
  PRIVATE, SIGN, SALT, DSN, COOKIE, SESSION) of 3 characters or more;
- any other value of 6 characters or more (a DATABASE_URL holds a password whatever its name),
  unless it is plain words (letters joined by ``-_.`` or spaces: ``production``,
  ``automated-trading-platform``) or a number shorter than 8 digits;
- never blank values and never the words true/false/yes/no/on/off/none/null: masking ``aws``,
  ``8002`` or the project name everywhere would make the output unreadable and hide nothing.
Each value is masked as written and in the forms output quotes it in: compose's ``$$``
escaping, JSON / Go ``%q`` escaping, the env file's double-quoted encoding, and each line of a
multi-line value.

On top, compose's env file errors (``line N: unexpected character ... "<file text>"``,
``line N: unterminated quoted value <file text>``, with or without ``failed to read <file>:``
before them) lose the file text whatever it is: a broken file may quote a fragment that is no
whole value.
"""

from __future__ import annotations

import json
import os
import re

from ansible_collections.atp.deploy.plugins.module_utils import dotenv

MASK = "********"
MIN_SECRET_NAME_LEN = 3
MIN_ANY_LEN = 6
SECRET_NAME_RE = re.compile(
    r"KEY|SECRET|TOKEN|PASS|PWD|CREDENTIAL|AUTH|PRIVATE|SIGN|SALT|DSN|COOKIE|SESSION", re.I)
BENIGN = frozenset({"true", "false", "yes", "no", "on", "off", "none", "null"})
_PLAIN_WORDS_RE = re.compile(r"[A-Za-z]+(?:[-_. ][A-Za-z]+)*")
_SHORT_NUMBER_RE = re.compile(r"\d{1,7}(?:\.\d+)?")
HIDDEN_ENV_TEXT = "(env file text hidden)"
# compose's dotenv errors (``[failed to read <file>: ]line N: unexpected character "X" in
# variable name "<file text>"``, ``line N: unterminated quoted value <file text>``): keep the
# file and the line, drop the quoted text.
_ENV_ERROR_RE = re.compile(r"(line \d+: unexpected character)[^\n]*")
_UNTERMINATED_RE = re.compile(r"(unterminated quoted value)[^\n]*")
# Reading the instance's env files: bounded in count, size and depth.
MAX_FILES = 200
MAX_FILE_BYTES = 1 << 20
MAX_DEPTH = 4


def should_mask(name: str, value: object) -> bool:
    """Whether an env value must never appear in output (see the module docstring)."""
    if value is None:
        return False
    text = str(value)
    if not text.strip() or text.strip().lower() in BENIGN:
        return False
    if SECRET_NAME_RE.search(str(name or "")):
        return len(text) >= MIN_SECRET_NAME_LEN
    if _PLAIN_WORDS_RE.fullmatch(text) or _SHORT_NUMBER_RE.fullmatch(text):
        return False
    return len(text) >= MIN_ANY_LEN


def forms(value: str) -> set[str]:
    """The ways output may quote value: as is, $$-escaped, JSON/Go-escaped, dotenv-encoded,
    and each line of a multi-line value (lines shorter than MIN_SECRET_NAME_LEN excepted)."""
    out = {value, value.replace("$", "$$")}
    for ascii_only in (True, False):
        out.add(json.dumps(value, ensure_ascii=ascii_only)[1:-1])
    quoted = dotenv.quote_value(value) if not dotenv.value_problem("V", value) else None
    if quoted:
        out.add(quoted[1:-1])
    for line in re.split(r"[\r\n]+", value):
        if len(line.strip()) >= MIN_SECRET_NAME_LEN:
            out.add(line)
    return {f for f in out if f}


class Masker:
    """Replace every known secret (all its forms, longest first) by MASK."""

    def __init__(self, values=()):
        self.values: set[str] = set()
        self._re = None
        self.add(values)

    def add(self, values) -> Masker:
        for value in values or ():
            if value:
                self.values |= forms(str(value))
        ordered = sorted(self.values, key=lambda v: (-len(v), v))
        self._re = re.compile("|".join(re.escape(v) for v in ordered)) if ordered else None
        return self

    def add_pairs(self, pairs) -> Masker:
        """Add the values of (name, value) pairs that should_mask."""
        return self.add(str(v) for n, v in pairs if should_mask(n, v))

    def text(self, text: object) -> object:
        """text with every secret masked and compose's env file errors cut; non-str as is."""
        if not isinstance(text, str):
            return text
        out = self._re.sub(MASK, text) if self._re is not None else text
        return redact_env_errors(out)

    def data(self, value: object) -> object:
        """text() applied to every string of a JSON-like structure (keys included)."""
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, dict):
            return {self.text(k) if isinstance(k, str) else k: self.data(v)
                    for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return [self.data(v) for v in value]
        return value

    def __len__(self) -> int:
        return len(self.values)


def redact_env_errors(text: str) -> str:
    """compose's env file parse errors without the env file text they quote."""
    if "unexpected character" not in text and "unterminated quoted value" not in text:
        return text
    text = _ENV_ERROR_RE.sub(lambda m: f"{m.group(1)} {HIDDEN_ENV_TEXT}", text)
    return _UNTERMINATED_RE.sub(lambda m: f"{m.group(1)} {HIDDEN_ENV_TEXT}", text)


def file_pairs(text: str) -> list[tuple[str, str]]:
    """(name, value) of every definition of an env file; a file compose cannot parse still
    gives what each line holds after its '=' (quotes stripped) and the whole line."""
    try:
        return [(e.key, e.value) for e in dotenv.parse(text) if e.key and e.value is not None]
    except dotenv.DotenvError:
        pass
    pairs = []
    for line in text.splitlines():
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        name, sep, value = stripped.partition("=")
        if not sep:
            name, sep, value = stripped.partition(":")
        value = value.strip()
        pairs.append((name.strip(), value))
        if len(value) >= 2 and value[0] in "'\"":
            pairs.append((name.strip(), value.strip(value[0])))
        pairs.append(("SECRET_LINE", stripped))
    return pairs


def _env_name(name: str) -> bool:
    return name.startswith(".env")


def env_files_under(root: str, depth: int = MAX_DEPTH) -> list[str]:
    """Env files (names starting with .env) under root, symlinks followed, bounded."""
    found: list[str] = []

    def walk(path: str, level: int) -> None:
        if len(found) >= MAX_FILES:
            return
        try:
            entries = sorted(os.scandir(path), key=lambda e: e.name)
        except OSError:
            return
        for entry in entries:
            if len(found) >= MAX_FILES:
                return
            try:
                if entry.is_file() and _env_name(entry.name):
                    found.append(entry.path)
                elif (entry.is_dir(follow_symlinks=False) and level < depth
                      and entry.name not in ("releases", "secrets", ".git", "node_modules")):
                    walk(entry.path, level + 1)
            except OSError:
                continue

    if os.path.isdir(root):
        walk(root, 0)
    return found


def env_file_values(paths) -> list[tuple[str, str]]:
    """(name, value) pairs of the env files at paths (unreadable ones skipped)."""
    pairs: list[tuple[str, str]] = []
    for path in list(paths)[:MAX_FILES]:
        try:
            with open(path, "rb") as handle:
                raw = handle.read(MAX_FILE_BYTES)
        except OSError:
            continue
        pairs += file_pairs(raw.decode("utf-8", "replace"))
    return pairs


def release_env_files(app_root: str, release_dir: str | None = None) -> list[str]:
    """The env files a release may use: <app_root>/shared (every env set), the release dir's
    own (symlinks followed), a hand-managed checkout's at app_root."""
    paths = env_files_under(os.path.join(app_root, "shared"))
    for top in (release_dir, app_root):
        if not top or not os.path.isdir(top):
            continue
        try:
            entries = sorted(os.scandir(top), key=lambda e: e.name)
        except OSError:
            continue
        for entry in entries:
            try:
                if _env_name(entry.name) and entry.is_file():
                    paths.append(entry.path)
            except OSError:
                continue
    seen, out = set(), []
    for path in paths:
        real = os.path.realpath(path)
        if real not in seen:
            seen.add(real)
            out.append(path)
    return out


def for_release(app_root: str | None, release_dir: str | None = None,
                extra_pairs=()) -> Masker:
    """A Masker of every value of the env files a release may use (see release_env_files)."""
    masker = Masker()
    pairs = list(extra_pairs)
    if app_root:
        pairs += env_file_values(release_env_files(app_root, release_dir))
    return masker.add_pairs(pairs)


def protect(module, masker: Masker) -> Masker:
    """Mask every string a module returns: msg, result fields, warnings.

    Wraps module.fail_json / exit_json / warn / deprecate in place (one line per module).
    """
    fail_json, exit_json, warn = module.fail_json, module.exit_json, module.warn
    # Second line: Ansible scrubs these from everything it returns, the echoed module
    # arguments (invocation) included.
    no_log = getattr(module, "no_log_values", None)
    if isinstance(no_log, set):
        no_log.update(masker.values)

    def masked(kwargs: dict) -> dict:
        return {k: masker.data(v) for k, v in kwargs.items()}

    module.fail_json = lambda msg=None, **kw: fail_json(msg=masker.text(msg), **masked(kw))
    module.exit_json = lambda **kw: exit_json(**masked(kw))
    module.warn = lambda warning: warn(masker.text(warning))
    return masker
