# Copyright: (c) 2025, ATP deploy
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Controller-side static checks of an app checkout (files, FastAPI routers, git)."""

from __future__ import annotations

import ast
import os
from collections.abc import Iterator
from dataclasses import dataclass, field

from ansible_collections.atp.deploy.plugins.module_utils.git_util import (
    git_output,
    is_work_tree,
    run_git,
)

Ref = tuple[str, str]
_NO_REFS: frozenset[Ref] = frozenset()
_SKIP_DIRS = frozenset({"__pycache__", ".git", ".venv", "venv", "node_modules"})
_NESTED_FIELDS = ("body", "orelse", "finalbody", "handlers")
_SCOPE_NODES = (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)
_NOT_FOUND = '(an unincluded router answers 404 {"detail":"Not Found"})'


class SourceCheckError(ValueError):
    """One-line, user-facing problem found while checking the source."""


@dataclass(frozen=True)
class RouterDef:
    """A module-level ``APIRouter(...)`` assignment."""

    module: str
    name: str
    file: str
    line: int

    @property
    def ref(self) -> Ref:
        """(module, variable) key used for inclusion checks."""
        return (self.module, self.name)


@dataclass
class RouterCheck:
    """Result of :func:`check_routers`."""

    routers: list[RouterDef] = field(default_factory=list)
    included: set[Ref] = field(default_factory=set)
    problems: list[str] = field(default_factory=list)


# --------------------------------------------------------------------------- files


def missing_files(root: str, required: list[str]) -> list[str]:
    """Return the ``required`` relpaths that are not regular files under ``root``."""
    return [rel for rel in required if not os.path.isfile(os.path.join(root, rel))]


def _python_files(top: str) -> Iterator[str]:
    """Yield ``*.py`` files under ``top`` in a stable order."""
    for dirpath, dirnames, filenames in os.walk(top):
        dirnames[:] = sorted(d for d in dirnames if d not in _SKIP_DIRS and not d.startswith("."))
        for name in sorted(filenames):
            if name.endswith(".py"):
                yield os.path.join(dirpath, name)


def module_name(path: str, import_root: str) -> tuple[str, bool]:
    """Dotted module name of ``path`` relative to ``import_root`` and whether it is a package."""
    rel = os.path.relpath(os.path.splitext(path)[0], import_root)
    parts = [p for p in rel.replace(os.sep, "/").split("/") if p]
    if parts and parts[-1] == "__init__":
        return ".".join(parts[:-1]), True
    return ".".join(parts), False


def _parse(path: str, errors: list[SyntaxError] | None) -> ast.Module | None:
    """Parse a file; record (or raise) syntax errors."""
    try:
        with open(path, "rb") as handle:
            return ast.parse(handle.read(), filename=path)
    except (SyntaxError, ValueError) as exc:
        err = exc if isinstance(exc, SyntaxError) else SyntaxError(str(exc), (path, 1, 0, ""))
        err.filename = path
        if errors is None:
            raise SourceCheckError(format_syntax_error(err, path)) from None
        errors.append(err)
        return None


def format_syntax_error(err: SyntaxError, display: str) -> str:
    """One line describing a syntax error in ``display``."""
    return (
        f"syntax error in {display}:{err.lineno or 1}: {err.msg}: fix the file "
        "(the app cannot import it and its routers cannot be checked)"
    )


# --------------------------------------------------------------------------- routers


def _module_statements(body: list[ast.stmt]) -> Iterator[ast.stmt]:
    """Statements executed at module scope (descends into if/try/with/for, not defs)."""
    for stmt in body:
        yield stmt
        if isinstance(stmt, _SCOPE_NODES):
            continue
        for name in _NESTED_FIELDS:
            for child in getattr(stmt, name, None) or []:
                if isinstance(child, ast.ExceptHandler):
                    yield from _module_statements(child.body)
                elif isinstance(child, ast.stmt):
                    yield from _module_statements([child])


def _router_factories(tree: ast.Module) -> set[str]:
    """Names bound to ``APIRouter`` (including ``from fastapi import APIRouter as R``)."""
    names = {"APIRouter"}
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            names.update(a.asname for a in node.names if a.name == "APIRouter" and a.asname)
    return names


def _is_router_call(node: ast.expr | None, factories: set[str]) -> bool:
    """True for ``APIRouter(...)`` / ``<x>.APIRouter(...)``."""
    if not isinstance(node, ast.Call):
        return False
    func = node.func
    if isinstance(func, ast.Name):
        return func.id in factories
    return isinstance(func, ast.Attribute) and func.attr == "APIRouter"


def _router_assignments(tree: ast.Module) -> list[tuple[str, int]]:
    """(variable, line) of module-level router assignments."""
    factories = _router_factories(tree)
    found = []
    for stmt in _module_statements(tree.body):
        if isinstance(stmt, ast.Assign) and _is_router_call(stmt.value, factories):
            targets = [t for t in stmt.targets if isinstance(t, ast.Name)]
        elif isinstance(stmt, ast.AnnAssign) and _is_router_call(stmt.value, factories):
            targets = [stmt.target] if isinstance(stmt.target, ast.Name) else []
        else:
            continue
        found.extend((t.id, stmt.lineno) for t in targets)
    return found


def find_routers(
    api_dir: str, app_pkg_dir: str | None = None, errors: list[SyntaxError] | None = None
) -> list[RouterDef]:
    """Module-level ``APIRouter`` definitions in every ``*.py`` under ``api_dir``.

    ``app_pkg_dir`` (default: parent of ``api_dir``) is the ``app`` package directory;
    module names are relative to its parent (``app.api.routes_portfolio``). Syntax
    errors are appended to ``errors`` or, when it is None, raised as SourceCheckError.
    """
    app_pkg_dir = app_pkg_dir or os.path.dirname(os.path.normpath(api_dir))
    import_root = os.path.dirname(os.path.normpath(app_pkg_dir))
    routers = []
    for path in _python_files(api_dir):
        tree = _parse(path, errors)
        if tree is None:
            continue
        module = module_name(path, import_root)[0]
        routers.extend(RouterDef(module, n, path, line) for n, line in _router_assignments(tree))
    return routers


# --------------------------------------------------------------------------- includes


@dataclass
class _ModuleScan:
    """Include calls and re-export aliases found in one module."""

    includes: list[tuple[frozenset[Ref], frozenset[Ref]]] = field(default_factory=list)
    aliases: dict[Ref, frozenset[Ref]] = field(default_factory=dict)


class _IncludeScanner:
    """Replays imports/assignments in source order and resolves include_router args."""

    def __init__(self, module: str, is_package: bool, import_root: str) -> None:
        self.module = module
        self.is_package = is_package
        self.import_root = import_root
        self.bindings: dict[str, tuple[str, object]] = {}
        self.scan = _ModuleScan()

    # -- resolution -------------------------------------------------------------

    def lookup_module(self, expr: ast.expr) -> str | None:
        """Dotted module an expression names (``rp`` or ``app.api.routes``), else None."""
        if isinstance(expr, ast.Name):
            kind, value = self.bindings.get(expr.id, ("", None))
            return value if kind == "module" else None
        if isinstance(expr, ast.Attribute):
            base = self.lookup_module(expr.value)
            return f"{base}.{expr.attr}" if base else None
        return None

    def resolve(self, expr: ast.expr | None) -> frozenset[Ref]:
        """Router references an expression may denote."""
        if isinstance(expr, ast.Name):
            kind, value = self.bindings.get(expr.id, ("refs", frozenset({(self.module, expr.id)})))
            return value if kind == "refs" else _NO_REFS
        if isinstance(expr, ast.Attribute):
            base = self.lookup_module(expr.value)
            return frozenset({(base, expr.attr)}) if base else _NO_REFS
        if isinstance(expr, ast.Starred):
            return self.resolve(expr.value)
        if isinstance(expr, (ast.List, ast.Tuple, ast.Set)):
            return frozenset().union(*(self.resolve(e) for e in expr.elts))
        return _NO_REFS

    # -- binding events ---------------------------------------------------------

    def _is_module(self, dotted: str) -> bool:
        """True if ``dotted`` names a module file or package directory."""
        path = os.path.join(self.import_root, *dotted.split("."))
        return os.path.isfile(path + ".py") or os.path.isdir(path)

    def _from_base(self, node: ast.ImportFrom) -> str | None:
        """Absolute module named by a (possibly relative) ``from X import``."""
        if not node.level:
            return node.module
        package = self.module.split(".") if self.is_package else self.module.split(".")[:-1]
        keep = len(package) - (node.level - 1)
        if keep < 0:
            return None
        parts = package[:keep] + (node.module.split(".") if node.module else [])
        return ".".join(parts) or None

    def on_import(self, node: ast.Import) -> None:
        """``import a.b`` binds ``a``; ``import a.b as x`` binds ``x``."""
        for alias in node.names:
            if alias.asname:
                self.bindings[alias.asname] = ("module", alias.name)
            else:
                head = alias.name.split(".")[0]
                self.bindings[head] = ("module", head)

    def on_import_from(self, node: ast.ImportFrom) -> None:
        """``from M import n [as a]``: submodule binding or (M, n) router reference."""
        base = self._from_base(node)
        for alias in node.names:
            if alias.name == "*" or base is None:
                continue
            bound = alias.asname or alias.name
            target = f"{base}.{alias.name}"
            if self._is_module(target):
                self.bindings[bound] = ("module", target)
            else:
                self.bindings[bound] = ("refs", frozenset({(base, alias.name)}))

    def bind(self, target: ast.expr, value: ast.expr | None) -> None:
        """Assignment / for-loop target binding."""
        if not isinstance(target, ast.Name):
            return
        module = self.lookup_module(value) if value is not None else None
        if module:
            self.bindings[target.id] = ("module", module)
            return
        refs = self.resolve(value) if value is not None else _NO_REFS
        self.bindings[target.id] = ("refs", refs or frozenset({(self.module, target.id)}))

    def on_include(self, call: ast.Call) -> None:
        """Record ``<receiver>.include_router(<router>, ...)``."""
        arg = call.args[0] if call.args else None
        if arg is None:
            arg = next((k.value for k in call.keywords if k.arg == "router"), None)
        receiver = self.resolve(call.func.value)  # type: ignore[attr-defined]
        self.scan.includes.append((receiver, self.resolve(arg)))

    def finish(self) -> _ModuleScan:
        """Record final module-level router aliases (re-exports) and return the scan."""
        for name, (kind, refs) in self.bindings.items():
            own = frozenset({(self.module, name)})
            if kind == "refs" and refs and refs != own:
                self.scan.aliases[(self.module, name)] = refs  # type: ignore[assignment]
        return self.scan


def _position(node: ast.AST, end: bool) -> tuple[int, int]:
    """Start or end (line, col) of a node."""
    if end:
        return (node.end_lineno or node.lineno, node.end_col_offset or 0)
    return (node.lineno, node.col_offset)


_Event = tuple[tuple[int, int], int, object]


def _events(tree: ast.Module, scanner: _IncludeScanner) -> list[_Event]:
    """(position, seq, callback) for every binding and include, sorted in source order."""
    events: list[_Event] = []

    def add(pos: tuple[int, int], callback: object) -> None:
        events.append((pos, len(events), callback))

    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            add(_position(node, True), lambda n=node: scanner.on_import(n))
        elif isinstance(node, ast.ImportFrom):
            add(_position(node, True), lambda n=node: scanner.on_import_from(n))
        elif isinstance(node, ast.Assign):
            for target in node.targets:
                add(_position(node, True), lambda t=target, v=node.value: scanner.bind(t, v))
        elif isinstance(node, ast.AnnAssign) and node.value is not None:
            add(_position(node, True), lambda n=node: scanner.bind(n.target, n.value))
        elif isinstance(node, (ast.For, ast.AsyncFor)):
            add(_position(node.iter, True), lambda n=node: scanner.bind(n.target, n.iter))
        elif _is_include_call(node):
            add(_position(node, False), lambda n=node: scanner.on_include(n))
    events.sort(key=lambda item: (item[0], item[1]))
    return events


def _is_include_call(node: ast.AST) -> bool:
    """True for ``<x>.include_router(...)``."""
    return (
        isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and node.func.attr == "include_router"
    )


def _scan_module(path: str, import_root: str, errors: list[SyntaxError] | None) -> _ModuleScan:
    """Scan one file for include_router calls and router aliases."""
    tree = _parse(path, errors)
    if tree is None:
        return _ModuleScan()
    module, is_package = module_name(path, import_root)
    scanner = _IncludeScanner(module, is_package, import_root)
    for _pos, _seq, callback in _events(tree, scanner):
        callback()  # type: ignore[operator]
    return scanner.finish()


def _closure(roots: set[Ref], edges: dict[Ref, set[Ref]]) -> set[Ref]:
    """Everything reachable from ``roots`` through ``edges``."""
    seen = set(roots)
    stack = list(roots)
    while stack:
        for nxt in edges.get(stack.pop(), ()):
            if nxt not in seen:
                seen.add(nxt)
                stack.append(nxt)
    return seen


def _aggregate_edges(
    api_dir: str, import_root: str, errors: list[SyntaxError] | None
) -> dict[Ref, set[Ref]]:
    """router -> routers it includes (and alias -> target) across ``api_dir``."""
    edges: dict[Ref, set[Ref]] = {}
    if not os.path.isdir(api_dir):
        return edges
    for path in _python_files(api_dir):
        scan = _scan_module(path, import_root, errors)
        for receivers, args in scan.includes:
            for receiver in receivers:
                edges.setdefault(receiver, set()).update(args)
        for alias, targets in scan.aliases.items():
            edges.setdefault(alias, set()).update(targets)
    return edges


def included_routers(
    main_file: str,
    app_root_pkg_dir: str,
    api_dir: str | None = None,
    errors: list[SyntaxError] | None = None,
) -> set[Ref]:
    """(module, name) of every router included by ``main_file``, following aggregates.

    Every ``*.include_router(x)`` in main counts, resolved with the import binding in
    force at that line. Routers in ``api_dir`` (default ``<app pkg>/api``) that are
    included by an included router count too (transitively).
    """
    import_root = os.path.dirname(os.path.normpath(app_root_pkg_dir))
    main_errors: list[SyntaxError] = []
    scan = _scan_module(main_file, import_root, main_errors if errors is not None else None)
    if main_errors:
        errors.extend(main_errors)  # type: ignore[union-attr]
        return set()
    roots = {ref for _receivers, args in scan.includes for ref in args}
    api_dir = api_dir or os.path.join(app_root_pkg_dir, "api")
    return _closure(roots, _aggregate_edges(api_dir, import_root, errors))


def _display(path: str, src_root: str) -> str:
    """Path relative to ``src_root`` with ``/`` separators."""
    return os.path.relpath(path, src_root).replace(os.sep, "/")


def _unique_syntax_lines(errors: list[SyntaxError], src_root: str) -> list[str]:
    """One line per distinct syntax error."""
    lines: list[str] = []
    for err in errors:
        line = format_syntax_error(err, _display(err.filename or "?", src_root))
        if line not in lines:
            lines.append(line)
    return lines


def check_routers(
    src_root: str, api_rel: str = "backend/app/api", main_rel: str = "backend/app/main.py"
) -> RouterCheck:
    """Find routers under ``api_rel`` and which ones ``main_rel`` includes."""
    main_path = os.path.join(src_root, main_rel)
    api_dir = os.path.join(src_root, api_rel)
    if not os.path.isfile(main_path):
        missing = (
            f"{main_rel} does not exist: cannot check that the routers in {api_rel} are included"
        )
        return RouterCheck(problems=[missing])
    if not os.path.isdir(api_dir):
        return RouterCheck()
    app_pkg = os.path.dirname(main_path)
    errors: list[SyntaxError] = []
    routers = find_routers(api_dir, app_pkg, errors)
    included = included_routers(main_path, app_pkg, api_dir, errors)
    problems = _unique_syntax_lines(errors, src_root)
    main_abs = os.path.abspath(main_path)
    main_broken = any(os.path.abspath(e.filename or "") == main_abs for e in errors)
    if not main_broken:
        problems.extend(
            _unincluded_line(r, src_root, main_rel) for r in routers if r.ref not in included
        )
    return RouterCheck(routers=routers, included=included, problems=problems)


def _unincluded_line(router: RouterDef, src_root: str, main_rel: str) -> str:
    """The problem line for a router that main never includes."""
    where = f"{_display(router.file, src_root)}:{router.line}"
    return (
        f"router '{router.name}' defined in {where} is never included by {main_rel}: "
        f"add app.include_router(...) for it {_NOT_FOUND}"
    )


def unincluded_routers(
    src_root: str, api_rel: str = "backend/app/api", main_rel: str = "backend/app/main.py"
) -> list[str]:
    """One line per router defined under ``api_rel`` but not included by ``main_rel``."""
    return check_routers(src_root, api_rel, main_rel).problems


# --------------------------------------------------------------------------- git


def _parse_status(data: bytes, prefix: str) -> tuple[list[str], list[str]]:
    """(untracked, modified) from ``status --porcelain=v1 -z``, relative to ``prefix``."""
    untracked: list[str] = []
    modified: list[str] = []
    items = data.split(b"\0")
    index = 0
    while index < len(items):
        entry = items[index]
        index += 1
        if len(entry) < 4:
            continue
        code = entry[:2].decode("ascii", "replace")
        path = os.fsdecode(entry[3:])
        if "R" in code or "C" in code:
            index += 1  # the rename/copy source path follows
        if not path.startswith(prefix):
            continue
        (untracked if code == "??" else modified).append(path[len(prefix):])
    return sorted(untracked), sorted(modified)


def git_state(root: str) -> dict:
    """Git facts about ``root`` (which may be a subdirectory of a bigger repository).

    Returns ``{"is_git", "sha", "dirty", "untracked", "modified"}``; paths are relative to
    ``root``. ``sha`` is ``"unknown"`` outside git or before the first commit.
    """
    state: dict = {
        "is_git": False,
        "sha": "unknown",
        "dirty": False,
        "untracked": [],
        "modified": [],
    }
    if not is_work_tree(root):
        return state
    prefix = os.fsdecode(git_output(root, "rev-parse", "--show-prefix").rstrip(b"\n"))
    head = run_git(root, "rev-parse", "--verify", "--quiet", "HEAD^{commit}")
    status = git_output(root, "status", "--porcelain=v1", "-z", "--untracked-files=all", "--", ".")
    untracked, modified = _parse_status(status, prefix)
    state.update(
        is_git=True,
        sha=head.stdout.decode().strip() if head.returncode == 0 else "unknown",
        dirty=bool(untracked or modified),
        untracked=untracked,
        modified=modified,
    )
    return state
