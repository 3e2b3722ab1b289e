"""The collection README names every plugin and filter; galaxy.yml's version is the changelog's."""

from __future__ import annotations

import importlib
import re
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[3]
COLLECTION = REPO / "collections" / "ansible_collections" / "atp" / "deploy"
README = (COLLECTION / "README.md").read_text()
PLUGIN_TYPES = ("modules", "action", "callback", "module_utils")


def plugin_files() -> list[tuple[str, str]]:
    return [(kind, path.stem)
            for kind in PLUGIN_TYPES
            for path in sorted((COLLECTION / "plugins" / kind).glob("*.py"))
            if path.name != "__init__.py"]


def filter_names() -> list[tuple[str, str]]:
    found = []
    for path in sorted((COLLECTION / "plugins" / "filter").glob("*.py")):
        if path.name == "__init__.py":
            continue
        module = importlib.import_module(
            f"ansible_collections.atp.deploy.plugins.filter.{path.stem}")
        found.extend((path.stem, name) for name in sorted(module.FilterModule().filters()))
    return found


PLUGINS = plugin_files()
FILTERS = filter_names()


def test_the_collection_has_plugins_and_filters():
    kinds = {kind for kind, _ in PLUGINS}
    assert kinds == set(PLUGIN_TYPES)
    assert len(FILTERS) >= 3


@pytest.mark.parametrize(("kind", "name"), PLUGINS, ids=[f"{k}/{n}" for k, n in PLUGINS])
def test_readme_names_every_plugin_file(kind, name):
    assert f"`{name}`" in README, f"plugins/{kind}/{name}.py is not named in README.md as `{name}`"


@pytest.mark.parametrize(("module", "name"), FILTERS, ids=[f"{m}/{n}" for m, n in FILTERS])
def test_readme_names_every_filter(module, name):
    assert f"`{name}`" in README, (
        f"filter {name} (plugins/filter/{module}.py) is not named in README.md as `{name}`")


def test_galaxy_version_is_the_newest_changelog_version():
    galaxy = yaml.safe_load((COLLECTION / "galaxy.yml").read_text())
    headings = re.findall(r"^##\s+v?(\d+\.\d+\.\d+)\b", (COLLECTION / "CHANGELOG.md").read_text(),
                          re.M)
    assert headings, "CHANGELOG.md has no '## <version>' heading"
    newest = max(headings, key=lambda v: tuple(int(part) for part in v.split(".")))
    assert str(galaxy["version"]) == newest, (
        f"galaxy.yml version {galaxy['version']} != newest CHANGELOG.md heading {newest}")
