"""ansible-doc renders every module and filter of atp.deploy, and the docs match the code.

Modules: the documented options (doc fragments included) are the ARGUMENT_SPEC's, with the same
aliases; a module taking the deploy lock options documents them through the shared
``atp.deploy.deploy_lock`` fragment. Filters: every filter of every ``FilterModule`` has docs
(``plugins/filter/<name>.yml``) whose options match the filter's signature.

ansible-doc runs a few times in all (one call renders many plugins), with the repo's
``collections/`` as ANSIBLE_COLLECTIONS_PATH and no ansible.cfg.
"""

from __future__ import annotations

import ast
import importlib
import inspect
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[3]
COLLECTIONS = REPO / "collections"
COLLECTION = COLLECTIONS / "ansible_collections" / "atp" / "deploy"
PLUGINS = COLLECTION / "plugins"
PACKAGE = "ansible_collections.atp.deploy.plugins"
LOCK_OPTIONS = ("lock_token", "lock_file")
LOCK_FRAGMENT = "atp.deploy.deploy_lock"


def _stems(kind: str) -> list[str]:
    return sorted(p.stem for p in (PLUGINS / kind).glob("*.py") if p.name != "__init__.py")


MODULES = _stems("modules")
FRAGMENT_FILES = _stems("doc_fragments")


def _filters() -> dict[str, object]:
    """Filter name -> callable, from every FilterModule of plugins/filter."""
    found = {}
    for stem in _stems("filter"):
        module = importlib.import_module(f"{PACKAGE}.filter.{stem}")
        found.update(module.FilterModule().filters())
    return dict(sorted(found.items()))


FILTERS = _filters()


def _ansible_doc(tmp: Path, *args: str) -> subprocess.CompletedProcess:
    home = tmp / "home"
    home.mkdir(exist_ok=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith("ANSIBLE_")}
    env.update(HOME=str(home), ANSIBLE_COLLECTIONS_PATH=str(COLLECTIONS),
               ANSIBLE_LOCAL_TEMP=str(tmp / "ansible-tmp"), ANSIBLE_NOCOLOR="1",
               ANSIBLE_DEPRECATION_WARNINGS="1", PAGER="cat")
    # cwd without an ansible.cfg: the repo's (inventory plugins, callbacks) stays out of it
    return subprocess.run([sys.executable, "-m", "ansible.cli.doc", *args], cwd=tmp, env=env,
                          capture_output=True, text=True, timeout=120, check=False)


def _assert_clean(result: subprocess.CompletedProcess, what: str) -> None:
    assert result.returncode == 0, f"ansible-doc {what}: rc {result.returncode}\n{result.stderr}"
    for word in ("WARNING", "ERROR"):
        assert word not in result.stderr, f"ansible-doc {what} printed {word}:\n{result.stderr}"


def _fqcn(names) -> list[str]:
    return [f"atp.deploy.{name}" for name in names]


@pytest.fixture(scope="module")
def doc_tmp(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("ansible-doc")


@pytest.fixture(scope="module")
def module_docs(doc_tmp: Path) -> dict:
    result = _ansible_doc(doc_tmp, "--json", "-t", "module", *_fqcn(MODULES))
    _assert_clean(result, "--json -t module")
    return json.loads(result.stdout)


@pytest.fixture(scope="module")
def filter_docs(doc_tmp: Path) -> dict:
    result = _ansible_doc(doc_tmp, "--json", "-t", "filter", *_fqcn(FILTERS))
    _assert_clean(result, "--json -t filter")
    return json.loads(result.stdout)


def test_the_collection_has_modules_filters_and_fragments():
    assert len(MODULES) >= 10
    assert len(FILTERS) >= 3
    assert {"deploy_lock", "backend"} <= set(FRAGMENT_FILES)


@pytest.mark.parametrize("kind", ["module", "filter"])
def test_ansible_doc_renders_every_plugin_as_text(doc_tmp, kind):
    names = MODULES if kind == "module" else list(FILTERS)
    result = _ansible_doc(doc_tmp, "-t", kind, *_fqcn(names))
    _assert_clean(result, f"-t {kind}")
    for name in _fqcn(names):
        assert name in result.stdout, f"ansible-doc -t {kind} did not render {name}"


def test_ansible_doc_lists_every_filter_documented(doc_tmp):
    result = _ansible_doc(doc_tmp, "-l", "atp.deploy", "-t", "filter")
    _assert_clean(result, "-l atp.deploy -t filter")
    listed = {line.split()[0]: line for line in result.stdout.splitlines() if line.strip()}
    for name in _fqcn(FILTERS):
        assert name in listed, f"{name} is not listed by ansible-doc -l"
        assert "UNDOCUMENTED" not in listed[name], f"{name} has no documentation"


# --------------------------------------------------------------------------- modules


def _module_source(name: str) -> str:
    return (PLUGINS / "modules" / f"{name}.py").read_text()


def _raw_documentation(name: str) -> dict:
    """The module's own DOCUMENTATION (fragments not applied)."""
    for node in ast.parse(_module_source(name)).body:
        if (isinstance(node, ast.Assign) and isinstance(node.targets[0], ast.Name)
                and node.targets[0].id == "DOCUMENTATION"):
            return yaml.safe_load(ast.literal_eval(node.value))
    raise AssertionError(f"plugins/modules/{name}.py has no DOCUMENTATION")


def argument_spec(name: str) -> dict:
    """The module's argument_spec: its ARGUMENT_SPEC, else what main() passes to AnsibleModule."""
    module = importlib.import_module(f"{PACKAGE}.modules.{name}")
    spec = getattr(module, "ARGUMENT_SPEC", None)
    if isinstance(spec, dict):
        return spec
    for node in ast.walk(ast.parse(_module_source(name))):
        if not (isinstance(node, ast.Call) and getattr(node.func, "id", "") == "AnsibleModule"):
            continue
        for keyword in node.keywords:
            if keyword.arg != "argument_spec":
                continue
            if isinstance(keyword.value, ast.Name):
                return getattr(module, keyword.value.id)
            # an inline dict: only its keys and literal option specs are needed here
            return {ast.literal_eval(k): _literal_or_empty(v)
                    for k, v in zip(keyword.value.keys, keyword.value.values, strict=True)}
    raise AssertionError(f"plugins/modules/{name}.py: no argument_spec found")


def _literal_or_empty(node: ast.AST) -> dict:
    try:
        value = ast.literal_eval(node)
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


@pytest.mark.parametrize("name", MODULES)
def test_module_docs_match_its_argument_spec(module_docs, name):
    doc = module_docs[f"atp.deploy.{name}"]["doc"]
    documented = doc.get("options") or {}
    spec = argument_spec(name)
    assert set(documented) == set(spec), (
        f"{name}: documented but not in the argument_spec: {sorted(set(documented) - set(spec))}; "
        f"in the argument_spec but not documented: {sorted(set(spec) - set(documented))}")
    for option, option_spec in spec.items():
        assert sorted(documented[option].get("aliases") or []) == sorted(
            option_spec.get("aliases") or []), f"{name}: aliases of {option} differ"


LOCK_MODULES = [name for name in MODULES if set(LOCK_OPTIONS) & set(argument_spec(name))]


def test_some_modules_take_the_lock_options():
    assert len(LOCK_MODULES) >= 3


@pytest.mark.parametrize("name", LOCK_MODULES)
def test_module_lock_options_come_from_the_fragment(module_docs, name):
    taken = [option for option in LOCK_OPTIONS if option in argument_spec(name)]
    documented = module_docs[f"atp.deploy.{name}"]["doc"]["options"]
    for option in taken:
        assert option in documented, f"{name}: {option} is in ARGUMENT_SPEC but not documented"
    fragments = _raw_documentation(name).get("extends_documentation_fragment") or []
    assert any(f == LOCK_FRAGMENT or f.startswith(LOCK_FRAGMENT + ".") for f in fragments), (
        f"{name}: document {', '.join(taken)} with extends_documentation_fragment "
        f"{LOCK_FRAGMENT}, not a copy")
    own = _raw_documentation(name).get("options") or {}
    assert not set(taken) & set(own), f"{name}: {taken} are repeated in its own DOCUMENTATION"


def _fragment_sections() -> list[tuple[str, str]]:
    """(fragment file, attribute) of every documentation section of every doc fragment."""
    sections = []
    for stem in FRAGMENT_FILES:
        fragment = importlib.import_module(f"{PACKAGE}.doc_fragments.{stem}").ModuleDocFragment
        sections.extend((stem, attr) for attr in sorted(vars(fragment)) if attr.isupper())
    return sections


@pytest.mark.parametrize(("stem", "attr"), _fragment_sections(),
                         ids=[f"{s}.{a}" for s, a in _fragment_sections()])
def test_every_fragment_section_is_valid_and_used(stem, attr):
    fragment = importlib.import_module(f"{PACKAGE}.doc_fragments.{stem}").ModuleDocFragment
    options = yaml.safe_load(getattr(fragment, attr))["options"]
    assert options, f"{stem}.{attr} documents no option"
    for option, spec in options.items():
        assert spec.get("description") and spec.get("type"), f"{stem}.{attr}: {option}"
    slug = f"atp.deploy.{stem}" + ("" if attr == "DOCUMENTATION" else f".{attr.lower()}")
    users = [name for name in MODULES
             if slug in (_raw_documentation(name).get("extends_documentation_fragment") or [])]
    assert users, f"no module uses the doc fragment {slug}"


@pytest.mark.parametrize("stem", FRAGMENT_FILES)
def test_an_option_reads_the_same_in_every_section_of_its_fragment(stem):
    fragment = importlib.import_module(f"{PACKAGE}.doc_fragments.{stem}").ModuleDocFragment
    seen: dict[str, tuple[str, dict]] = {}
    for attr in sorted(a for a in vars(fragment) if a.isupper()):
        for option, spec in yaml.safe_load(getattr(fragment, attr))["options"].items():
            first = seen.setdefault(option, (attr, spec))
            assert spec == first[1], f"{stem}: {option} differs between {first[0]} and {attr}"


# --------------------------------------------------------------------------- filters


@pytest.mark.parametrize("name", list(FILTERS))
def test_filter_docs_match_its_signature(filter_docs, name):
    entry = filter_docs[f"atp.deploy.{name}"]
    doc = entry["doc"]
    assert doc["name"] == name
    assert doc.get("short_description"), f"{name}: no short_description"
    assert entry.get("examples") and f"atp.deploy.{name}" in entry["examples"], (
        f"{name}: EXAMPLES do not use atp.deploy.{name}")
    assert "_value" in (entry.get("return") or {}), f"{name}: RETURN has no _value"
    params = list(inspect.signature(FILTERS[name]).parameters.values())
    expected = {"_input"} | {p.name for p in params[1:] if p.kind != p.VAR_POSITIONAL}
    documented = set(doc.get("options") or {})
    extra = documented - expected
    if any(p.kind == p.VAR_POSITIONAL for p in params):
        assert len(extra) == 1 and next(iter(extra)).startswith("_"), (
            f"{name}: document its *args as one option named _<something>, got {sorted(extra)}")
        documented -= extra
    assert documented == expected, (
        f"{name}: documented {sorted(documented)}, takes {sorted(expected)}")
