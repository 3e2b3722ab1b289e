"""Offline stand-in for ansible-test's pip bootstrap script (get-pip.py).

`ansible-test sanity` creates its virtual environments without pip, then bootstraps pip in
them with a script it downloads from ci-files.testing.ansible.com and caches as
~/.ansible/test/cache/get_pip_<version>.py. That host is not a package registry: on a machine
that reaches only PyPI the download fails and so does `make sanity`.

    python scripts/sanity_get_pip.py --install-cache   # make sanity runs this first

puts this file at that cache path when nothing is cached there (a real cached script is left
as it is). ansible-test then runs it, through its quiet_pip.py, with the new venv's python and
get-pip's arguments (pip options and pins such as pip==24.2); it does the same with what is
reachable: ensurepip (the pip wheel bundled with Python), then `pip install` of the pins from
the package index.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import types
from pathlib import Path

NOT_PIP_ARGS = {"--no-setuptools", "--no-wheel"}
MARKER = '"""Offline stand-in for ansible-test\'s pip bootstrap script'


def cache_path() -> Path:
    """Where ansible-test looks for the script of the pip version it bootstraps."""
    from ansible_test._internal.python_requirements import get_venv_packages

    python = types.SimpleNamespace(version=f"{sys.version_info[0]}.{sys.version_info[1]}")
    version = get_venv_packages(python)["pip"]
    return Path.home() / ".ansible" / "test" / "cache" / f"get_pip_{version.replace('.', '_')}.py"


def install_cache() -> int:
    try:
        path = cache_path()
    except (ImportError, KeyError, TypeError, AttributeError) as exc:
        print(f"sanity_get_pip: expected ansible-test's get_venv_packages() to name the pip "
              f"version, got {exc!r}; update scripts/sanity_get_pip.py for this ansible-test",
              file=sys.stderr)
        return 1
    mine = Path(__file__).read_text()
    if path.exists():
        cached = path.read_text(errors="replace")
        if not cached.startswith(MARKER) or cached == mine:
            print(f"sanity_get_pip: {path} is cached, kept")
            return 0
        # an older copy of this stand-in: refreshed, so edits here reach ansible-test
    path.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(__file__, path)
    print(f"sanity_get_pip: {path} <- {__file__} (offline pip bootstrap)")
    return 0


def bootstrap(args: list[str]) -> int:
    """What get-pip.py does: pip (and the pinned packages) into this interpreter."""
    pins = [a for a in args if a not in NOT_PIP_ARGS]
    if subprocess.call([sys.executable, "-m", "ensurepip", "--default-pip"],
                       stdout=subprocess.DEVNULL) != 0:
        print(f"sanity_get_pip: expected {sys.executable} to have ensurepip (the pip wheel "
              "bundled with Python), it has not: install python3-venv (Debian) or use a "
              "Python built with ensurepip", file=sys.stderr)
        return 1
    subprocess.check_call([sys.executable, "-m", "pip", "install", "--quiet", *pins])
    if "--no-setuptools" in args:  # ensurepip of Python < 3.12 also installs setuptools
        subprocess.call([sys.executable, "-m", "pip", "uninstall", "--quiet", "--yes",
                         "setuptools"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return 0


if __name__ == "__main__":
    if sys.argv[1:] == ["--install-cache"]:
        sys.exit(install_cache())
    sys.exit(bootstrap(sys.argv[1:]))
