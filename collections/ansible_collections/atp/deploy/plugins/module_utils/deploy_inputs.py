# Copyright: (c) 2025, ATP deploy
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Controller side: every variable an operator can pass, checked before the first SSM session.

``RULES`` is the table (variable -> what it must be, and what to do when it is not);
:func:`check_inputs` applies it to the variables that are set and returns one line per
problem, ``<name>: expected <what>, saw <value>: <what to do>``. Values of secret variables
(``deploy_env``, ``deploy_env_aws``) are never shown: their lines name the key and its type.
Pure (no Ansible, no I/O); the ``atp.deploy.deploy_inputs`` action feeds it each host's
variables. The roles' ``meta/argument_specs.yml`` accept everything accepted here (a unit test
compares them); this check runs first so an operator sees these lines, not a type error.
"""

from __future__ import annotations

import math
import posixpath
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from ansible_collections.atp.deploy.plugins.module_utils.deploy_lock import (
    DEFAULT_TTL,
    MIN_TTL,
)
from ansible_collections.atp.deploy.plugins.module_utils.env_parameters import (
    ParameterError,
    normalise_prefix,
)
from ansible_collections.atp.deploy.plugins.module_utils.source_check import (
    SourceCheckError,
    parse_expected_routes,
)

# The strings Ansible's own bool conversion accepts (ansible.module_utils.parsing.convert_bool).
TRUE_STRINGS = frozenset({"y", "yes", "on", "1", "true", "t"})
FALSE_STRINGS = frozenset({"n", "no", "off", "0", "false", "f"})
# amazon.aws.aws_ssm's default for ansible_aws_ssm_timeout (seconds).
SSM_DEFAULT_TIMEOUT = 60
SSM_CONNECTIONS = frozenset({"amazon.aws.aws_ssm", "community.aws.aws_ssm", "aws_ssm"})

_INT_RE = re.compile(r"^[+-]?[0-9]+$")
_SERVICE_RE = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9._-]*$")
_PROJECT_RE = re.compile(r"^[a-z0-9][a-z0-9_-]*$")
_PROFILE_RE = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9._-]*$")
_USER_RE = re.compile(r"^[a-z_][a-z0-9_-]{0,31}$")
_ENV_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_ENV_FILE_RE = re.compile(r"^\.env(\.[A-Za-z0-9_-]+)*$")
_IDENT = r"[A-Za-z_][A-Za-z0-9_]*"
_IMPORT_RE = re.compile(rf"^{_IDENT}(\.{_IDENT})*:{_IDENT}$")
_PATH_CHARS_RE = re.compile(r"^[A-Za-z0-9._+@/-]+$")
_SERIAL_PERCENT_RE = re.compile(r"^([0-9]{1,3})%$")
_BUCKET_RE = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
# docker reference grammar (distribution/reference): registry host, then lowercase path parts.
_LABEL = r"[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?"
_DOMAIN_RE = re.compile(rf"^{_LABEL}(?:\.{_LABEL})*(?::[0-9]+)?$")
_COMPONENT_RE = re.compile(r"^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*$")
_SYSTEM_DIRS = frozenset({
    "/", "/bin", "/boot", "/dev", "/etc", "/home", "/lib", "/lib64", "/media", "/mnt", "/opt",
    "/proc", "/root", "/run", "/sbin", "/srv", "/sys", "/tmp", "/usr", "/var",
    "/home/ubuntu", "/var/lib", "/var/lib/docker", "/usr/local",
})
_SHOW_MAX = 60


class Bad(ValueError):
    """A check refused a value: what was expected, optionally what was seen (no secrets)."""

    def __init__(self, expected: str, seen: str | None = None, fix: str | None = None) -> None:
        super().__init__(expected)
        self.expected = expected
        self.seen = seen
        self.fix = fix


@dataclass(frozen=True)
class Rule:
    """One variable: its check (returns the normalised value or raises Bad) and the fix."""

    name: str
    check: Callable[[object], object]
    fix: str
    secret: bool = False
    ssm_only: bool = False  # checked (and required) only for hosts reached over aws_ssm


# --------------------------------------------------------------------------- shapes


def show(value: object) -> str:
    """A short, one-line picture of a (non-secret) value, with its type when not obvious."""
    if isinstance(value, bool):
        return f"{value} (a boolean)"
    if isinstance(value, str):
        text = repr(value)
        return text if len(text) <= _SHOW_MAX else text[:_SHOW_MAX - 4] + "...'"
    if isinstance(value, (int, float)):
        return repr(value)
    if value is None:
        return "nothing (null)"
    text = repr(value).replace("\n", " ")
    text = text if len(text) <= _SHOW_MAX else text[:_SHOW_MAX - 3] + "..."
    return f"{text} (a {_type_name(value)})"


def _type_name(value: object) -> str:
    """Plain words for a YAML/JSON type."""
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, str):
        return "string"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, Mapping):
        return "mapping"
    if isinstance(value, (list, tuple)):
        return "list"
    if value is None:
        return "null"
    return type(value).__name__


def _plain_str(value: object) -> str | None:
    """``value`` as str when it is one (vault-encrypted strings included), else None."""
    if isinstance(value, str):
        return str(value)
    if type(value).__name__ in ("EncryptedString", "AnsibleVaultEncryptedUnicode"):
        return str(value)
    return None


def to_int(value: object) -> int:
    """An integer from an int, an integral float or a decimal string (``-e x=5``); Bad else."""
    if isinstance(value, bool):
        raise Bad("a whole number")
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    text = _plain_str(value)
    if text is not None and _INT_RE.match(text.strip()):
        return int(text.strip())
    raise Bad("a whole number")


def integer(minimum: int | None = None, maximum: int | None = None,
            unit: str = "") -> Callable[[object], int]:
    """Whole number within [minimum, maximum]."""
    words = f"a whole number{' of ' + unit if unit else ''}"
    if minimum is not None and maximum is not None:
        words += f" {minimum}-{maximum}"
    elif minimum is not None:
        words += f" >= {minimum}"

    def check(value: object) -> int:
        try:
            number = to_int(value)
        except Bad:
            raise Bad(words) from None
        too_low = minimum is not None and number < minimum
        too_high = maximum is not None and number > maximum
        if too_low or too_high:
            raise Bad(words)
        return number
    return check


def number(minimum: float, exclusive: bool = False, unit: str = "") -> Callable[[object], float]:
    """A number (int, float or numeric string) above ``minimum``."""
    words = f"a number{' of ' + unit if unit else ''} {'>' if exclusive else '>='} {minimum:g}"

    def check(value: object) -> float:
        if isinstance(value, bool):
            raise Bad(words)
        try:
            result = float(value if isinstance(value, (int, float)) else _plain_str(value) or "x")
        except ValueError:
            raise Bad(words) from None
        if math.isnan(result) or math.isinf(result):
            raise Bad(words)
        if result < minimum or (exclusive and result == minimum):
            raise Bad(words)
        return result
    return check


def boolean(value: object) -> bool:
    """true/false, or a string Ansible reads as one (yes/no, on/off, 1/0, t/f, y/n)."""
    words = "true or false (also yes/no, on/off, 1/0)"
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    text = _plain_str(value)
    if text is not None:
        lowered = text.strip().lower()
        if lowered in TRUE_STRINGS:
            return True
        if lowered in FALSE_STRINGS:
            return False
    raise Bad(words)


def matching(regex: re.Pattern, words: str, max_len: int = 255) -> Callable[[object], str]:
    """A string matching ``regex``."""
    def check(value: object) -> str:
        text = _plain_str(value)
        if text is None or len(text) > max_len or not regex.match(text):
            raise Bad(words)
        return text
    return check


def non_empty_line(words: str) -> Callable[[object], str]:
    """A non-empty, single-line string."""
    def check(value: object) -> str:
        text = _plain_str(value)
        if text is None or not text.strip() or any(c in text for c in "\n\r\0"):
            raise Bad(words)
        return text
    return check


def compose_service(value: object) -> str:
    """A compose service name that can never read as a flag."""
    words = ("a compose service name: letters, digits, '.', '_', '-', starting with a letter "
             "or digit (never '-')")
    return matching(_SERVICE_RE, words, 128)(value)


def compose_project(value: object) -> str:
    """Compose project name rules (docker compose -p)."""
    words = ("a compose project name: lowercase letters, digits, '-' and '_', starting with a "
             "letter or digit")
    return matching(_PROJECT_RE, words, 128)(value)


def compose_profiles(value: object) -> str:
    """One profile name, several comma-separated, or '' for none."""
    words = "a compose profile name (letters, digits, '.', '_', '-'), comma-separated, or ''"
    text = _plain_str(value)
    if text is None:
        raise Bad(words)
    names = [p.strip() for p in text.split(",")] if text.strip() else []
    if any(not _PROFILE_RE.match(name) for name in names):
        raise Bad(words)
    return text


def image_repo(value: object) -> str:
    """A docker repository reference without tag or digest, lowercase path."""
    words = ("a docker image repository, lowercase, without tag (e.g. "
             "automated-trading-platform-backend-aws or registry.example.com:5000/atp/backend)")
    text = _plain_str(value)
    if text is None:
        raise Bad(words)
    parts = text.split("/")
    if "@" in text or ":" in parts[-1]:
        raise Bad(words, fix="drop the tag or digest (each release image is tagged with its "
                  "release id)")
    # The first part is a registry only when it looks like one (docker's own rule).
    if len(parts) > 1 and ("." in parts[0] or ":" in parts[0] or parts[0] == "localhost"):
        if not _DOMAIN_RE.match(parts[0]):
            raise Bad(words)
        parts = parts[1:]
    if len(text) > 255 or not all(_COMPONENT_RE.match(part) for part in parts):
        raise Bad(words)
    return text


def app_root(value: object) -> str:
    """Absolute, normalised, plain characters, not / nor a system directory."""
    words = ("an absolute, normalised path of letters, digits and . _ + @ - (not / nor a "
             "system directory), e.g. /home/ubuntu/automated-trading-platform")
    text = _plain_str(value)
    if (text is None or not text.startswith("/") or posixpath.normpath(text) != text
            or text.startswith("//") or not _PATH_CHARS_RE.match(text)
            or text in _SYSTEM_DIRS):
        raise Bad(words)
    return text


def unix_user(value: object) -> str:
    """A login name (the account itself is checked on the instance)."""
    words = ("a user name: lowercase letters, digits, '_', '-', starting with a letter or '_', "
             "at most 32 characters")
    return matching(_USER_RE, words, 32)(value)


def app_import(value: object) -> str:
    """``package.module:attribute``."""
    return matching(_IMPORT_RE, "package.module:attribute, e.g. app.main:app")(value)


def expected_routes(value: object) -> list:
    """A LIST of 'METHOD /path' strings (a string would be split on commas by Ansible)."""
    words = "a list of 'METHOD /path' items, e.g. ['GET /api/health']"
    if _plain_str(value) is not None:
        raise Bad(words, fix="pass a list, e.g. -e '{\"deploy_expected_routes\": "
                  "[\"GET /api/health\", \"GET /api/portfolio/snapshot\"]}'")
    if not isinstance(value, (list, tuple)):
        raise Bad(words)
    try:
        parse_expected_routes(value)
    except SourceCheckError:
        bad = next(item for item in value if not _route_ok(item))
        raise Bad(words + " (METHOD one of GET|POST|PUT|PATCH|DELETE|HEAD|OPTIONS, the path "
                  "starting with /, no query string)", seen=f"the item {show(bad)}") from None
    return list(value)


def _route_ok(item: object) -> bool:
    """parse_expected_routes accepts this one item."""
    try:
        parse_expected_routes([item])
    except SourceCheckError:
        return False
    return True


def relative_paths(value: object) -> list:
    """A list of paths relative to the checkout, staying inside it."""
    words = "a list of paths relative to backend_src_dir (no leading /, no ..)"
    if not isinstance(value, (list, tuple)):
        raise Bad(words)
    for item in value:
        text = _plain_str(item)
        if (text is None or not text or text.startswith("/")
                or ".." in text.split("/") or "\0" in text):
            raise Bad(words, seen=f"the item {show(item)}")
    return list(value)


def list_of_mappings(value: object) -> list:
    """A list of mappings (their keys are checked by the role's argument spec)."""
    if not isinstance(value, (list, tuple)) or not all(isinstance(i, Mapping) for i in value):
        raise Bad("a list of mappings (see roles/smoke_check/meta/argument_specs.yml)")
    return list(value)


def serial(value: object) -> object:
    """Hosts per batch: a whole number >= 1 or a percentage 1%-100%."""
    words = "a whole number of hosts >= 1 or a percentage 1%-100%"
    text = _plain_str(value)
    match = _SERIAL_PERCENT_RE.match(text.strip()) if text is not None else None
    if match:
        if not 1 <= int(match.group(1)) <= 100:
            raise Bad(words)
        return text.strip()
    try:
        return integer(1)(value)
    except Bad:
        raise Bad(words) from None


def env_map(value: object) -> dict:
    """Env file contents: NAME -> string/number/boolean. Never shows a value."""
    words = "a mapping of env variable names to strings or numbers"
    if not isinstance(value, Mapping):
        raise Bad(words, seen=f"a {_type_name(value)}")
    for key in sorted(value, key=str):
        if not isinstance(key, str) or not _ENV_NAME_RE.match(key):
            raise Bad(words + " (names: letters, digits and _, not starting with a digit)",
                      seen=f"the name {str(key)!r}",
                      fix="rename it (compose and the shell cannot read it)")
        item = value[key]
        if item is None:
            raise Bad(words, seen=f"{key} without a value (null)",
                      fix=f"give {key} a value, '' for an empty one, or remove it")
        if _plain_str(item) is None and not isinstance(item, (int, float)):
            raise Bad(words, seen=f"{key} holding a {_type_name(item)}",
                      fix=f"give {key} one plain value (quote it as a string)")
    return dict(value)


def env_parameter_prefix(value: object) -> str:
    """'' (no Parameter Store) or a Parameter Store path."""
    text = _plain_str(value)
    if text is None:
        raise Bad("a Parameter Store path like /atp/prod/backend/, or '' for none")
    if not text.strip():
        return ""
    try:
        return normalise_prefix(text)
    except ParameterError:
        raise Bad("a Parameter Store path like /atp/prod/backend/ (letters, digits, _ . - "
                  "between slashes, not under /aws or /ssm), or '' for none") from None


def env_parameters(value: object) -> dict:
    """Env file -> list of variable names read from Parameter Store (names, never values)."""
    words = ("a mapping of env files (.env, .env.aws, ...) to lists of variable names, e.g. "
             "{'.env.aws': [EXCHANGE_CUSTOM_API_KEY]}")
    if not isinstance(value, Mapping):
        raise Bad(words)
    for env_file, names in value.items():
        if not isinstance(env_file, str) or not _ENV_FILE_RE.match(env_file):
            raise Bad(words, seen=f"the key {show(env_file)}")
        if _plain_str(names) is not None or not isinstance(names, (list, tuple)):
            raise Bad(words, seen=f"{show(names)} for {env_file}")
        for name in names:
            if not isinstance(name, str) or not _ENV_NAME_RE.match(name):
                raise Bad(words, seen=f"the name {show(name)} for {env_file}")
        if len(set(names)) != len(names):
            raise Bad(words + ", each name once", seen=f"a name listed twice for {env_file}")
    return dict(value)


def s3_bucket(value: object) -> str:
    """The aws_ssm transfer bucket: an S3 bucket name (every module and file moves through it)."""
    words = ("the S3 bucket the aws_ssm plugin moves files through: 3-63 lowercase letters, "
             "digits, '.' and '-'")
    text = _plain_str(value)
    if text is None or not _BUCKET_RE.match(text) or ".." in text:
        raise Bad(words)
    return text


def _example(name: str, value: str) -> str:
    """The usual fix: pass a good value."""
    return f"pass e.g. -e {name}={value} (or leave it unset for the default)"


# Seconds the smoke task can run past its timeouts: its last health try (5 s), a last request
# (smoke_check_request_timeout, 10 s), the docker reads of its container and error log.
SMOKE_STEP_MARGIN = 20
HEALTH_PATH_RE = re.compile(r"^/[!-~]*$")
IMAGE_REF_RE = re.compile(r"^(?:[A-Za-z0-9][A-Za-z0-9._/:@-]*)?$")

BOOLEANS = (
    "deploy_require_clean_git", "deploy_skip_router_check", "deploy_allow_missing_credentials",
    "deploy_env_replace", "deploy_route_gate", "deploy_allow_exchange_unreachable",
    "deploy_break_lock", "deploy_transfer_require_kms", "deploy_rename_project",
    "smoke_check_health_only", "diagnose_fail_on_drift", "rollback_list",
    "deploy_zero_downtime",
)

RULES: tuple[Rule, ...] = (
    Rule("backend_src_dir", non_empty_line("the path of the app checkout"),
         "pass -e backend_src_dir=/path/to/automated-trading-platform"),
    Rule("deploy_required_files", relative_paths,
         "list paths relative to the checkout, e.g. backend/app/main.py"),
    Rule("deploy_service", compose_service, _example("deploy_service", "backend-aws")),
    Rule("deploy_compose_project", compose_project,
         "keep the project the instance already runs (its db volume carries the name), "
         "e.g. -e deploy_compose_project=automated-trading-platform"),
    Rule("deploy_compose_profile", compose_profiles, _example("deploy_compose_profile", "aws")),
    Rule("deploy_image_repo", image_repo,
         _example("deploy_image_repo", "automated-trading-platform-backend-aws")),
    Rule("deploy_app_root", app_root,
         _example("deploy_app_root", "/home/ubuntu/automated-trading-platform")),
    Rule("deploy_app_owner", unix_user, _example("deploy_app_owner", "ubuntu")),
    Rule("deploy_operator", non_empty_line("a non-empty, single-line name"),
         "pass e.g. -e deploy_operator=alice"),
    Rule("deploy_port", integer(1, 65535, "a TCP port"), _example("deploy_port", "8002")),
    Rule("deploy_build_timeout", integer(30, None, "seconds"),
         _example("deploy_build_timeout", "840")),
    Rule("deploy_build_log_lines", integer(3, 1000, "lines"),
         _example("deploy_build_log_lines", "15")),
    Rule("deploy_route_gate_timeout", integer(1, None, "seconds"),
         _example("deploy_route_gate_timeout", "120")),
    Rule("deploy_dependency_timeout", integer(1, None, "seconds"),
         _example("deploy_dependency_timeout", "180")),
    Rule("deploy_app_import", app_import, _example("deploy_app_import", "app.main:app")),
    # zero-downtime: the new container's start, the switch, the old container's drain and stop
    Rule("deploy_candidate_timeout", integer(1, None, "seconds"),
         _example("deploy_candidate_timeout", "180")),
    Rule("deploy_switch_timeout", integer(1, None, "seconds"),
         _example("deploy_switch_timeout", "20")),
    Rule("deploy_drain_timeout", integer(0, None, "seconds"),
         _example("deploy_drain_timeout", "30")),
    Rule("deploy_stop_timeout", integer(0, None, "seconds"),
         _example("deploy_stop_timeout", "30")),
    Rule("deploy_health_path", matching(HEALTH_PATH_RE, "a URL path starting with /"),
         _example("deploy_health_path", "/api/health")),
    Rule("deploy_proxy_image", matching(IMAGE_REF_RE, "an image reference (no spaces) or "
                                        "empty for the release image"),
         "pass e.g. -e deploy_proxy_image=haproxy:2.8, or leave it unset"),
    Rule("diagnose_app_import", app_import, _example("diagnose_app_import", "app.main:app")),
    Rule("deploy_expected_routes", expected_routes,
         "fix the item, e.g. 'GET /api/portfolio/snapshot'; pass a list with -e '{...}'"),
    Rule("deploy_keep_releases", integer(2, None, "releases"),
         "pass e.g. -e deploy_keep_releases=5 (the active release and the one to roll back "
         "to, at least)"),
    Rule("deploy_lock_wait", integer(0, None, "seconds"), _example("deploy_lock_wait", "0")),
    # The instance refuses the same (deploy_lock.ttl_problem): one minimum, MIN_TTL.
    Rule("deploy_lock_ttl", integer(MIN_TTL, None, "seconds"),
         f"pass e.g. -e deploy_lock_ttl={DEFAULT_TTL} (longer than the slowest single step)"),
    Rule("deploy_min_free_mb", integer(0, None, "MiB"), _example("deploy_min_free_mb", "1024")),
    Rule("deploy_serial", serial, _example("deploy_serial", "1")),
    Rule("deploy_transfer_cleanup_min_age", integer(0, None, "seconds"),
         _example("deploy_transfer_cleanup_min_age", "60")),
    Rule("deploy_artifact_dir", non_empty_line("a controller directory"),
         "pass e.g. -e deploy_artifact_dir=~/.cache/atp-deploy/releases"),
    Rule("deploy_archive_max_mb", integer(1, None, "MB"),
         _example("deploy_archive_max_mb", "200")),
    Rule("deploy_archive_max_file_mb", integer(1, None, "MB"),
         _example("deploy_archive_max_file_mb", "50")),
    Rule("smoke_timeout", integer(1, None, "seconds"), _example("smoke_timeout", "90")),
    Rule("smoke_check_interval", number(0, exclusive=True, unit="seconds"),
         _example("smoke_check_interval", "2")),
    Rule("smoke_check_request_timeout", number(0, exclusive=True, unit="seconds"),
         _example("smoke_check_request_timeout", "10")),
    Rule("smoke_check_identical_failures", integer(1, None, "answers"),
         _example("smoke_check_identical_failures", "3")),
    Rule("smoke_check_max_body_bytes", integer(1, None, "bytes"),
         _example("smoke_check_max_body_bytes", "33554432")),
    Rule("smoke_check_max_error_rate", number(0, unit="lines a minute"),
         _example("smoke_check_max_error_rate", "0")),
    Rule("smoke_check_checks", list_of_mappings,
         "give one mapping per check (name, path, expect_status, ...)"),
    Rule("diagnose_log_lines", integer(0, 1000, "lines"), _example("diagnose_log_lines", "20")),
    Rule("diagnose_deploy_log_lines", integer(0, 1000, "records"),
         _example("diagnose_deploy_log_lines", "5")),
    Rule("diagnose_command_timeout", integer(1, 600, "seconds"),
         _example("diagnose_command_timeout", "30")),
    Rule("diagnose_disk_warn_percent", integer(1, 100, "percent"),
         _example("diagnose_disk_warn_percent", "90")),
    Rule("deploy_env", env_map, "fix it in group_vars or the vault file", secret=True),
    Rule("deploy_env_aws", env_map, "fix it in group_vars or the vault file", secret=True),
    Rule("deploy_env_parameter_prefix", env_parameter_prefix,
         "pass e.g. -e deploy_env_parameter_prefix=/atp/prod/backend/"),
    Rule("deploy_env_parameters", env_parameters,
         "list variable names per env file, e.g. {'.env.aws': [EXCHANGE_CUSTOM_API_KEY]}"),
    Rule("ansible_aws_ssm_timeout", integer(1, None, "seconds"),
         "set e.g. ansible_aws_ssm_timeout: 900 in group_vars/backend/connection.yml"),
    Rule("ansible_aws_ssm_bucket_name", s3_bucket,
         "set it in group_vars/backend/transfer.yml (or -e ansible_aws_ssm_bucket_name=<bucket>) "
         "to a bucket in the instance's region", ssm_only=True),
    *(Rule(name, boolean, f"pass -e {name}=true or -e {name}=false") for name in BOOLEANS),
)
RULES_BY_NAME: dict[str, Rule] = {rule.name: rule for rule in RULES}


# --------------------------------------------------------------------------- checking


def problem_line(rule: Rule, value: object, bad: Bad) -> str:
    """``<name>: expected <what>, saw <what>: <what to do>`` (never a secret value)."""
    if bad.seen is not None:
        seen = bad.seen
    elif rule.secret:
        seen = f"a {_type_name(value)}"
    else:
        seen = show(value)
    return f"{rule.name}: expected {bad.expected}, saw {seen}: {bad.fix or rule.fix}"


def unevaluated_line(name: str, error: str) -> str:
    """A variable whose template failed; the error text is left out for secret variables."""
    rule = RULES_BY_NAME.get(name)
    if rule is not None and rule.secret:
        detail = "a template error (the value is not shown)"
    else:
        detail = (error.strip().splitlines() or ["a template error"])[0][:200]
    return (f"{name}: expected a value Ansible can evaluate, saw {detail}: fix the variable "
            "where it is set (group_vars, vault file or -e)")


def check_inputs(values: Mapping[str, object], ssm: bool = False) -> list[str]:
    """One line per problem of the variables in ``values`` (unset variables are skipped).

    ``ssm``: the host is reached over amazon.aws.aws_ssm: its transfer bucket must be set, and
    its ansible_aws_ssm_timeout caps one whole remote call, so deploy_build_timeout must stay
    below it.
    """
    problems: list[str] = []
    good: dict[str, object] = {}
    for rule in RULES:
        if rule.ssm_only and not ssm:
            continue
        if rule.name not in values and not rule.ssm_only:
            continue
        value = values.get(rule.name)
        try:
            good[rule.name] = rule.check(value)
        except Bad as bad:
            problems.append(problem_line(rule, value, bad))
    problems.extend(_cross_problems(good, ssm))
    return problems


def _cross_problems(good: Mapping[str, object], ssm: bool) -> list[str]:
    """Rules between variables (only between values that passed their own rule)."""
    problems = []
    build = good.get("deploy_build_timeout")
    ssm_timeout = good.get("ansible_aws_ssm_timeout", SSM_DEFAULT_TIMEOUT)
    if ssm and isinstance(build, int) and isinstance(ssm_timeout, int) and build >= ssm_timeout:
        problems.append(
            f"deploy_build_timeout: expected fewer seconds than ansible_aws_ssm_timeout "
            f"({ssm_timeout}, which caps the whole build-and-activate call), saw {build}: pass "
            f"-e deploy_build_timeout={max(30, ssm_timeout - 60)} or raise "
            "ansible_aws_ssm_timeout in group_vars/backend/connection.yml")
    smoke = _smoke_step(good)
    if (ssm and smoke and isinstance(ssm_timeout, int)
            and smoke[0] + SMOKE_STEP_MARGIN >= ssm_timeout):
        problems.append(
            f"smoke_timeout: expected the smoke step ({smoke[1]}, + {SMOKE_STEP_MARGIN} for its "
            f"last requests and log reads) to take fewer seconds than ansible_aws_ssm_timeout "
            f"({ssm_timeout}, which caps one remote call), saw {smoke[0] + SMOKE_STEP_MARGIN}: "
            "lower smoke_timeout or deploy_candidate_timeout, or raise ansible_aws_ssm_timeout "
            "in group_vars/backend/connection.yml")
    problems.extend(_lock_ttl_problems(good))
    total = good.get("deploy_archive_max_mb")
    per_file = good.get("deploy_archive_max_file_mb")
    if isinstance(total, int) and isinstance(per_file, int) and per_file > total:
        problems.append(
            f"deploy_archive_max_file_mb: expected at most deploy_archive_max_mb ({total}), saw "
            f"{per_file}: lower deploy_archive_max_file_mb or raise deploy_archive_max_mb")
    return problems


def _lock_ttl_problems(good: Mapping[str, object]) -> list[str]:
    """deploy_lock_ttl must outlive the longest stretch a step goes without renewing the lock.

    compose_release renews before and after the build, then runs the route gate, the
    dependency wait and up (each bounded by its timeout; up by deploy_build_timeout) without a
    renewal; smoke_check renews once, then waits for the new container (zero-downtime, up to
    deploy_candidate_timeout) and checks for up to smoke_timeout. A ttl not above
    that lets the next deploy take the lock over from a run that is still working. Only the
    variables that are set (and passed their own rule) count; ttl unset: nothing to compare.
    """
    ttl = good.get("deploy_lock_ttl")
    if not isinstance(ttl, int):
        return []
    parts = [name for name in ("deploy_build_timeout", "deploy_route_gate_timeout",
                               "deploy_dependency_timeout")
             if isinstance(good.get(name), int)
             and (name != "deploy_route_gate_timeout" or good.get("deploy_route_gate", True))]
    steps = []
    if parts:
        steps.append((sum(good[name] for name in parts), " + ".join(
            f"{name} {good[name]}" for name in parts), "compose_release"))
    smoke = _smoke_step(good)
    if smoke:
        steps.append((*smoke, "smoke_check"))
    if not steps:
        return []
    slowest, words, step = max(steps, key=lambda item: item[0])
    if ttl > slowest:
        return []
    return [f"deploy_lock_ttl: expected more seconds than the slowest single step ({step}: "
            f"{words}), saw {ttl}: pass -e deploy_lock_ttl={max(DEFAULT_TTL, slowest + 300)} "
            "or lower those timeouts"]


def _smoke_step(good: Mapping[str, object]) -> tuple[int, str] | None:
    """(seconds, words) the smoke task may take after it renewed the lock: with zero-downtime
    it first waits for the new container (deploy_candidate_timeout), then checks for up to
    smoke_timeout. Only the timeouts that are set count; None when neither is."""
    parts = [name for name in ("deploy_candidate_timeout", "smoke_timeout")
             if isinstance(good.get(name), int)
             and (name != "deploy_candidate_timeout" or good.get("deploy_zero_downtime", True))]
    if not parts:
        return None
    return sum(good[name] for name in parts), " + ".join(f"{name} {good[name]}" for name in parts)


def is_ssm(connection: object) -> bool:
    """The connection plugin is amazon.aws.aws_ssm (or one of its names)."""
    return isinstance(connection, str) and connection in SSM_CONNECTIONS
