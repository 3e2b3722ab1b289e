# Copyright: (c) 2025, ATP deploy
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Controller-side static checks of an app checkout (files, FastAPI routers, git).

The router check reads ``main.py`` and the router modules of the ``app`` package with
:mod:`ast` (nothing is imported or executed) and only FAILS where the answer is certain:

(a) a router ``main.py`` imports (binds to a name) but never includes -- the seed incident:
    the import is there, the ``include_router`` line is gone or the name is shadowed;
(b) a router that serves one of the expected routes (``"GET /api/portfolio/snapshot"``)
    while no included router does.

Every other router that is never included is a warning (dead code is normal in a
long-lived app). The authoritative check is the route gate run inside the built image.
"""

from __future__ import annotations

import ast
import os
import re
import sys
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

from ansible_collections.atp.deploy.plugins.module_utils import routes
from ansible_collections.atp.deploy.plugins.module_utils.git_util import (
    git_output,
    is_work_tree,
    run_git,
)

Ref = tuple[str, str]
_NO_REFS: frozenset[Ref] = frozenset()
_SKIP_DIRS = frozenset({"__pycache__", ".git", ".venv", "venv", "node_modules"})
_SCOPE_NODES = (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)
_NESTED_FIELDS = ("body", "orelse", "finalbody", "handlers")
HTTP_METHODS = routes.HTTP_METHODS
_ANY_METHOD = "*"
_PARAM_RE = re.compile(r"\{[^}/]*\}")
_MAX_VISITS = 20000
_MATCH = getattr(ast, "Match", ())  # python >= 3.10
_TRY = (ast.Try, *([ast.TryStar] if hasattr(ast, "TryStar") else []))  # TryStar: >= 3.11
_NOT_ESCAPING = frozenset({
    "debug", "info", "warning", "warn", "error", "exception", "critical", "log", "print",
    "len", "str", "repr", "id", "type", "isinstance", "hasattr", "getattr", "bool", "format",
})
_ROUTE_LIST_LIMIT = 4


class SourceCheckError(ValueError):
    """One-line, user-facing problem found while checking the source."""


@dataclass(frozen=True)
class Route:
    """One route declared on a router (``@router.get("/x")``); path relative to the router."""

    method: str
    path: str | None  # None: not a string literal


@dataclass(frozen=True)
class RouterDef:
    """A module-level ``APIRouter(...)`` assignment."""

    module: str
    name: str
    file: str
    line: int
    prefix: str | None = ""  # APIRouter(prefix=...); None when not a literal
    routes: tuple[Route, ...] = ()

    @property
    def ref(self) -> Ref:
        """(module, variable) key used for inclusion checks."""
        return (self.module, self.name)

    @property
    def short(self) -> str:
        """``routes_portfolio.router``."""
        return f"{self.module.rsplit('.', 1)[-1]}.{self.name}"


@dataclass
class RouterCheck:
    """Result of :func:`check_routers`.

    ``problems`` stop the deploy (one line each); ``warnings`` do not. ``served`` maps each
    expected route found statically to the router that serves it.
    """

    routers: list[RouterDef] = field(default_factory=list)
    included: set[Ref] = field(default_factory=set)
    problems: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    served: dict[str, str] = field(default_factory=dict)


# --------------------------------------------------------------------------- files


def missing_files(root: str, required: list[str]) -> list[str]:
    """Return the ``required`` relpaths that are not regular files under ``root``."""
    return [rel for rel in required if not os.path.isfile(os.path.join(root, rel))]


def _python_files(top: str) -> Iterator[str]:
    """Importable ``*.py`` files under ``top`` in a stable order.

    Stray copies are not modules and are skipped: ``x.py.bak``/``.new``/``.current``
    do not end in ``.py``; ``x.old.py`` or ``x-copy.py`` (and directories such as
    ``api-old``) cannot be imported under their name.
    """
    for dirpath, dirnames, filenames in os.walk(top):
        dirnames[:] = sorted(
            d for d in dirnames if d not in _SKIP_DIRS and d.isidentifier()
        )
        for name in sorted(filenames):
            if name.endswith(".py") and name[:-3].isidentifier():
                yield os.path.join(dirpath, name)


def module_name(path: str, import_root: str) -> tuple[str, bool]:
    """Dotted module name of ``path`` relative to ``import_root`` and whether it is a package."""
    rel = os.path.relpath(os.path.splitext(path)[0], import_root)
    parts = [p for p in rel.replace(os.sep, "/").split("/") if p]
    if parts and parts[-1] == "__init__":
        return ".".join(parts[:-1]), True
    return ".".join(parts), False


def _parse_source(data: bytes, path: str, errors: list[SyntaxError] | None) -> ast.Module | None:
    """Parse source bytes; record (or raise) syntax errors."""
    try:
        return ast.parse(data, filename=path)
    except (SyntaxError, ValueError) as exc:
        err = exc if isinstance(exc, SyntaxError) else SyntaxError(str(exc), (path, 1, 0, ""))
        err.filename = path
        if errors is None:
            raise SourceCheckError(format_syntax_error(err, path)) from None
        errors.append(err)
        return None


def _parse(path: str, errors: list[SyntaxError] | None) -> ast.Module | None:
    """Parse a file; record (or raise) syntax errors."""
    with open(path, "rb") as handle:
        return _parse_source(handle.read(), path, errors)


def _python() -> str:
    """``python 3.11`` (the controller's parser decides what is a syntax error)."""
    return "python " + ".".join(str(v) for v in sys.version_info[:2])


def format_syntax_error(err: SyntaxError, display: str) -> str:
    """One line describing a syntax error in ``display``."""
    return (
        f"syntax error in {display}:{err.lineno or 1}: {err.msg} ({_python()} on the "
        "controller): fix the file (the app cannot import it and its routers cannot be checked)"
    )


# --------------------------------------------------------------------------- expected routes


def parse_expected_routes(items: Iterable[object]) -> list[tuple[str, str]]:
    """``["GET /api/health", ...]`` as ``[("GET", "/api/health"), ...]`` (routes.parse, in
    order, without duplicates); SourceCheckError (one line, naming the item) otherwise."""
    parsed: list[tuple[str, str]] = []
    for item in items or []:
        try:
            route = routes.parse(item)
        except routes.RouteError as exc:
            raise SourceCheckError(str(exc)) from None
        if route not in parsed:
            parsed.append(route)
    return parsed


def _route_text(route: tuple[str, str]) -> str:
    """``GET /api/health``."""
    return f"{route[0]} {route[1]}"


def _norm_path(path: str) -> str:
    """Compare form of a path: single slashes, no trailing slash, ``{param}`` -> ``{}``."""
    path = re.sub("/+", "/", _PARAM_RE.sub("{}", path))
    return path.rstrip("/") or "/"


def _path_matches(tail: str, exact: bool, expected: str) -> bool:
    """``exact``: the full path is ``tail``; else ``tail`` is a segment-aligned suffix."""
    want = _norm_path(expected)
    got = _norm_path(tail if tail.startswith("/") else "/" + tail)
    if exact:
        return got == want
    return got != "/" and (want == got or want.endswith(got))


# --------------------------------------------------------------------------- literals


def _literal(expr: ast.expr | None, consts: dict[str, str]) -> str | None:
    """The string an expression surely evaluates to, else None."""
    if isinstance(expr, ast.Constant) and isinstance(expr.value, str):
        return expr.value
    if isinstance(expr, ast.Name):
        return consts.get(expr.id)
    if isinstance(expr, ast.BinOp) and isinstance(expr.op, ast.Add):
        left, right = _literal(expr.left, consts), _literal(expr.right, consts)
        return left + right if left is not None and right is not None else None
    if isinstance(expr, ast.JoinedStr):
        parts = []
        for value in expr.values:
            text = _literal(value.value if isinstance(value, ast.FormattedValue) and
                            value.format_spec is None and value.conversion == -1
                            else value, consts)
            if text is None:
                return None
            parts.append(text)
        return "".join(parts)
    return None


def _module_constants(tree: ast.Module) -> dict[str, str]:
    """Module-level ``NAME = "literal"`` assignments (last one wins)."""
    consts: dict[str, str] = {}
    for stmt in tree.body:
        if isinstance(stmt, ast.Assign) and len(stmt.targets) == 1:
            target = stmt.targets[0]
        elif isinstance(stmt, ast.AnnAssign) and stmt.value is not None:
            target = stmt.target
        else:
            continue
        if isinstance(target, ast.Name):
            value = _literal(stmt.value, consts)
            if value is None:
                consts.pop(target.id, None)
            else:
                consts[target.id] = value
    return consts


def _keyword(call: ast.Call, name: str) -> ast.expr | None:
    """Value of keyword ``name`` in a call."""
    return next((k.value for k in call.keywords if k.arg == name), None)


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
    for node in _module_statements(tree.body):
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


def _router_assignments(tree: ast.Module) -> list[tuple[str, int, ast.Call]]:
    """(variable, line, call) of module-level router assignments."""
    factories = _router_factories(tree)
    found = []
    for stmt in _module_statements(tree.body):
        if isinstance(stmt, ast.Assign) and _is_router_call(stmt.value, factories):
            targets = [t for t in stmt.targets if isinstance(t, ast.Name)]
        elif isinstance(stmt, ast.AnnAssign) and _is_router_call(stmt.value, factories):
            targets = [stmt.target] if isinstance(stmt.target, ast.Name) else []
        else:
            continue
        found.extend((t.id, stmt.lineno, stmt.value) for t in targets)  # type: ignore[misc]
    return found


def _methods(call: ast.Call) -> list[str]:
    """``methods=[...]`` of api_route/add_api_route (default GET; ``*`` when not literal)."""
    value = _keyword(call, "methods")
    if value is None:
        return ["GET"]
    if isinstance(value, (ast.List, ast.Tuple, ast.Set)) and all(
        isinstance(e, ast.Constant) and isinstance(e.value, str) for e in value.elts
    ):
        return [e.value.upper() for e in value.elts]  # type: ignore[attr-defined]
    return [_ANY_METHOD]


def _route_calls(tree: ast.Module, consts: dict[str, str]) -> list[tuple[str, Route]]:
    """(receiver name, route) for ``@x.get(path)``, ``@x.api_route(path)`` and
    ``x.add_api_route(path, ...)`` at module level (also inside if/try/with blocks)."""
    found: list[tuple[str, Route]] = []

    def add(call: ast.Call, methods: list[str]) -> None:
        receiver = call.func.value  # type: ignore[attr-defined]
        if not isinstance(receiver, ast.Name):
            return
        path = _literal(call.args[0] if call.args else _keyword(call, "path"), consts)
        found.extend((receiver.id, Route(m, path)) for m in methods)

    for stmt in _module_statements(tree.body):
        if isinstance(stmt, ast.Expr):
            node: ast.AST = stmt.value
        else:
            node = stmt
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            for dec in node.decorator_list:
                if not (isinstance(dec, ast.Call) and isinstance(dec.func, ast.Attribute)):
                    continue
                attr = dec.func.attr
                if attr.upper() in HTTP_METHODS and attr.islower():
                    add(dec, [attr.upper()])
                elif attr == "api_route":
                    add(dec, _methods(dec))
        elif (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr == "add_api_route"
        ):
            add(node, _methods(node))
    return found


def _routers_in_tree(tree: ast.Module, module: str, path: str) -> list[RouterDef]:
    """Router definitions of one parsed module, with their prefix and routes."""
    consts = _module_constants(tree)
    assignments = _router_assignments(tree)
    if not assignments:
        return []
    calls = _route_calls(tree, consts)
    routers = []
    for name, line, call in assignments:
        prefix_expr = _keyword(call, "prefix")
        prefix = "" if prefix_expr is None else _literal(prefix_expr, consts)
        routes = tuple(route for receiver, route in calls if receiver == name)
        routers.append(RouterDef(module, name, path, line, prefix, routes))
    return routers


def find_routers(
    api_dir: str, app_pkg_dir: str | None = None, errors: list[SyntaxError] | None = None
) -> list[RouterDef]:
    """Module-level ``APIRouter`` definitions in every importable ``*.py`` under ``api_dir``.

    ``app_pkg_dir`` (default: parent of ``api_dir``) is the ``app`` package directory;
    module names are relative to its parent (``app.api.routes_portfolio``). Syntax
    errors are appended to ``errors`` or, when it is None, raised as SourceCheckError.
    """
    app_pkg_dir = app_pkg_dir or os.path.dirname(os.path.normpath(api_dir))
    import_root = os.path.dirname(os.path.normpath(app_pkg_dir))
    routers = []
    for path in _python_files(api_dir):
        tree = _parse(path, errors)
        if tree is not None:
            routers.extend(_routers_in_tree(tree, module_name(path, import_root)[0], path))
    return routers


# --------------------------------------------------------------------------- bindings


Branch = tuple[tuple[int, int], ...]


@dataclass(frozen=True)
class _Binding:
    """One binding of a name: a module (dotted) or the router refs it may denote."""

    branch: Branch
    kind: str  # "module" | "refs"
    value: object


class _Scope:
    """Names bound in one scope (module, function, class, comprehension)."""

    def __init__(self, parent: _Scope | None) -> None:
        self.parent = parent
        self.names: dict[str, list[_Binding]] = {}

    def lookup(self, name: str) -> list[_Binding] | None:
        """Bindings of ``name`` here or in an enclosing scope."""
        scope: _Scope | None = self
        while scope is not None:
            if name in scope.names:
                return scope.names[name]
            scope = scope.parent
        return None


def _dominates(new: Branch, old: Branch) -> bool:
    """True when a binding at ``new`` surely replaces one at ``old`` (``new`` is on every
    path through ``old``'s position: a prefix of it). Bindings in alternative or merely
    conditional branches are kept side by side (``try: import x / except: x = None``)."""
    return old[: len(new)] == new


@dataclass
class _Include:
    """One ``<receiver>.include_router(<router>, prefix=...)`` call."""

    receivers: frozenset[Ref]
    args: frozenset[Ref]
    prefix: str | None
    line: int
    arg_text: str
    receiver_text: str


@dataclass
class _ModuleScan:
    """What one module binds, imports, references and includes."""

    module: str = ""
    includes: list[_Include] = field(default_factory=list)
    aliases: dict[Ref, frozenset[Ref]] = field(default_factory=dict)
    history: list[tuple[str, int, frozenset[Ref]]] = field(default_factory=list)
    referenced: dict[Ref, tuple[str, int]] = field(default_factory=dict)
    imports: list[tuple[str, int, bool]] = field(default_factory=list)  # (module, line, guarded)
    escaped: dict[Ref, tuple[str, int]] = field(default_factory=dict)  # ref -> (call, line)


class _Scanner:
    """Replays imports/assignments in source order, scope- and branch-aware, and resolves
    the arguments of every ``include_router`` call."""

    def __init__(
        self, module: str, is_package: bool, import_root: str, shallow: bool = False
    ) -> None:
        self.module = module
        self.is_package = is_package
        self.shallow = shallow  # module-level bindings only (a module without include_router)
        self.import_root = import_root
        self.root = _Scope(None)
        self.scan = _ModuleScan(module=module)
        self.consts: dict[str, str] = {}

    # -- resolution -------------------------------------------------------------

    def lookup_module(self, expr: ast.expr, scope: _Scope) -> str | None:
        """Dotted module an expression names (``rp`` or ``app.api.routes``), else None."""
        if isinstance(expr, ast.Name):
            modules = [b.value for b in scope.lookup(expr.id) or [] if b.kind == "module"]
            return modules[-1] if modules else None  # type: ignore[return-value]
        if isinstance(expr, ast.Attribute):
            base = self.lookup_module(expr.value, scope)
            return f"{base}.{expr.attr}" if base else None
        return None

    def resolve(self, expr: ast.expr | None, scope: _Scope) -> frozenset[Ref]:
        """Router references an expression may denote (a union over alternatives)."""
        if isinstance(expr, ast.Name):
            bindings = scope.lookup(expr.id)
            if bindings is None:
                return frozenset({(self.module, expr.id)})
            refs = [b.value for b in bindings if b.kind == "refs"]
            return frozenset().union(*refs)  # type: ignore[arg-type]
        if isinstance(expr, ast.Attribute):
            base = self.lookup_module(expr.value, scope)
            return frozenset({(base, expr.attr)}) if base else _NO_REFS
        if isinstance(expr, (ast.Starred, ast.Subscript)):
            return self.resolve(expr.value, scope)
        if isinstance(expr, (ast.List, ast.Tuple, ast.Set)):
            return frozenset().union(*(self.resolve(e, scope) for e in expr.elts))
        if isinstance(expr, ast.Dict):
            return frozenset().union(*(self.resolve(v, scope) for v in expr.values))
        if isinstance(expr, ast.IfExp):
            return self.resolve(expr.body, scope) | self.resolve(expr.orelse, scope)
        if isinstance(expr, ast.BoolOp):
            return frozenset().union(*(self.resolve(v, scope) for v in expr.values))
        if isinstance(expr, ast.Call) and isinstance(expr.func, ast.Attribute) and (
            expr.func.attr in ("items", "values", "copy")
        ):
            return self.resolve(expr.func.value, scope)
        return _NO_REFS

    # -- binding ----------------------------------------------------------------

    def _set(self, scope: _Scope, name: str, binding: _Binding, line: int) -> None:
        """Bind ``name``: replace what this binding dominates, keep alternatives."""
        kept = [b for b in scope.names.get(name, []) if not _dominates(binding.branch, b.branch)]
        scope.names[name] = [*kept, binding]
        if binding.kind != "refs" or scope is not self.root:
            return  # only module-level names count as "main.py imports it"
        self.scan.history.append((name, line, binding.value))  # type: ignore[arg-type]
        for ref in binding.value:  # type: ignore[attr-defined]
            if ref[0] != self.module:
                self.scan.referenced.setdefault(ref, (name, line))

    def bind_refs(self, scope: _Scope, name: str, refs: frozenset[Ref], branch: Branch,
                  line: int) -> None:
        """Bind ``name`` to router refs (its own ref when nothing is known)."""
        refs = refs or frozenset({(self.module, name)})
        self._set(scope, name, _Binding(branch, "refs", refs), line)

    def bind_target(self, target: ast.expr, value: ast.expr | None, scope: _Scope,
                    branch: Branch) -> None:
        """Assignment / loop target binding (tuples bound pairwise or to the union)."""
        if isinstance(target, ast.Name):
            module = self.lookup_module(value, scope) if value is not None else None
            if module:
                self._set(scope, target.id, _Binding(branch, "module", module), target.lineno)
            else:
                refs = self.resolve(value, scope) if value is not None else _NO_REFS
                self.bind_refs(scope, target.id, refs, branch, target.lineno)
        elif isinstance(target, (ast.Tuple, ast.List)):
            pairwise = isinstance(value, (ast.Tuple, ast.List)) and len(value.elts) == len(
                target.elts
            )
            for index, element in enumerate(target.elts):
                self.bind_target(
                    element, value.elts[index] if pairwise else value, scope, branch  # type: ignore[union-attr]
                )
        elif isinstance(target, ast.Starred):
            self.bind_target(target.value, value, scope, branch)

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

    def on_import(self, node: ast.Import, scope: _Scope, branch: Branch) -> None:
        """``import a.b`` binds ``a``; ``import a.b as x`` binds ``x``."""
        guarded = bool(branch) or scope is not self.root
        for alias in node.names:
            self.scan.imports.append((alias.name, node.lineno, guarded))
            if alias.asname:
                binding = _Binding(branch, "module", alias.name)
                self._set(scope, alias.asname, binding, node.lineno)
            else:
                head = alias.name.split(".")[0]
                self._set(scope, head, _Binding(branch, "module", head), node.lineno)

    def on_import_from(self, node: ast.ImportFrom, scope: _Scope, branch: Branch) -> None:
        """``from M import n [as a]``: submodule binding or (M, n) router reference."""
        base = self._from_base(node)
        if base is None:
            return
        self.scan.imports.append((base, node.lineno, bool(branch) or scope is not self.root))
        for alias in node.names:
            if alias.name == "*":
                continue
            bound = alias.asname or alias.name
            target = f"{base}.{alias.name}"
            if self._is_module(target):
                self.scan.imports.append((target, node.lineno, True))
                self._set(scope, bound, _Binding(branch, "module", target), node.lineno)
            else:
                refs = frozenset({(base, alias.name)})
                self._set(scope, bound, _Binding(branch, "refs", refs), node.lineno)

    def on_include(self, call: ast.Call, scope: _Scope) -> None:
        """Record ``<receiver>.include_router(<router>, ...)``."""
        arg = call.args[0] if call.args else _keyword(call, "router")
        prefix_expr = _keyword(call, "prefix")
        receiver = call.func.value  # type: ignore[attr-defined]
        self.scan.includes.append(
            _Include(
                receivers=self.resolve(receiver, scope),
                args=self.resolve(arg, scope),
                prefix="" if prefix_expr is None else _literal(prefix_expr, self.consts),
                line=call.lineno,
                arg_text=ast.unparse(arg) if arg is not None else "",
                receiver_text=ast.unparse(receiver),
            )
        )

    def on_call(self, call: ast.Call, scope: _Scope) -> None:
        """A router passed as such to another call (``register(app, r)``) escapes: whether
        it ends up included cannot be seen statically. Logging/printing does not count."""
        func = call.func
        name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
        if name in _NOT_ESCAPING:
            return
        for arg in [*call.args, *(k.value for k in call.keywords)]:
            if isinstance(arg, (ast.Name, ast.Attribute, ast.Starred, ast.List, ast.Tuple)):
                for ref in self.resolve(arg, scope):
                    if ref[0] != self.module:
                        self.scan.escaped.setdefault(ref, (ast.unparse(func), call.lineno))

    # -- walking ----------------------------------------------------------------

    def run(self, tree: ast.Module) -> _ModuleScan:
        """Scan a module and return what it binds, references and includes."""
        self.consts = _module_constants(tree)
        self.body(tree.body, self.root, ())
        for name, bindings in self.root.names.items():
            refs = frozenset().union(*(b.value for b in bindings if b.kind == "refs"))
            own = frozenset({(self.module, name)})
            if refs and refs != own:
                self.scan.aliases[(self.module, name)] = refs  # type: ignore[assignment]
        return self.scan

    def body(self, stmts: list[ast.stmt], scope: _Scope, branch: Branch) -> None:
        """Visit statements in order."""
        for stmt in stmts:
            self.node(stmt, scope, branch)

    def node(self, node: ast.AST, scope: _Scope, branch: Branch) -> None:
        """Visit one node: bindings in evaluation order, includes, module attributes."""
        if isinstance(node, ast.Import):
            self.on_import(node, scope, branch)
        elif isinstance(node, ast.ImportFrom):
            self.on_import_from(node, scope, branch)
        elif isinstance(node, ast.Assign):
            self.node(node.value, scope, branch)
            for target in node.targets:
                self.bind_target(target, node.value, scope, branch)
        elif isinstance(node, (ast.AnnAssign, ast.NamedExpr)):
            if node.value is not None:
                self.node(node.value, scope, branch)
                self.bind_target(node.target, node.value, scope, branch)
        elif isinstance(node, (ast.For, ast.AsyncFor)):
            self.node(node.iter, scope, branch)
            here = (id(node), 0)
            self.bind_target(node.target, node.iter, scope, (*branch, here))
            self.body(node.body, scope, (*branch, here))
            self.body(node.orelse, scope, (*branch, (id(node), 1)))
        elif isinstance(node, (ast.If, ast.While)):
            self.node(node.test, scope, branch)
            self.body(node.body, scope, (*branch, (id(node), 0)))
            self.body(node.orelse, scope, (*branch, (id(node), 1)))
        elif isinstance(node, _TRY):
            self.body(node.body, scope, (*branch, (id(node), 0)))
            for index, handler in enumerate(node.handlers, start=1):
                if handler.type is not None:
                    self.node(handler.type, scope, branch)
                self.body(handler.body, scope, (*branch, (id(node), index)))
            self.body(node.orelse, scope, (*branch, (id(node), 0)))
            self.body(node.finalbody, scope, branch)
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            self.definition(node, scope, branch)
        elif isinstance(node, ast.Lambda):
            self.node(node.body, _Scope(scope), ())
        elif isinstance(node, (ast.ListComp, ast.SetComp, ast.GeneratorExp, ast.DictComp)):
            inner = _Scope(scope)
            for gen in node.generators:
                self.node(gen.iter, inner, ())
                self.bind_target(gen.target, gen.iter, inner, ())
                for cond in gen.ifs:
                    self.node(cond, inner, ())
            for part in ("elt", "key", "value"):
                if getattr(node, part, None) is not None:
                    self.node(getattr(node, part), inner, ())
        elif isinstance(node, _MATCH):
            self.node(node.subject, scope, branch)
            for index, case in enumerate(node.cases):
                self.body(case.body, scope, (*branch, (id(node), index)))
        elif self.shallow and isinstance(node, ast.expr):
            return
        else:
            if _is_include_call(node):
                self.on_include(node, scope)  # type: ignore[arg-type]
            elif isinstance(node, ast.Call):
                self.on_call(node, scope)
            elif isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Load) and (
                scope is self.root
            ):
                base = self.lookup_module(node.value, scope)
                if base:
                    self.scan.referenced.setdefault((base, node.attr), (ast.unparse(node),
                                                                        node.lineno))
            for child in ast.iter_child_nodes(node):
                self.node(child, scope, branch)

    def definition(self, node: ast.AST, scope: _Scope, branch: Branch) -> None:
        """def/class: decorators and defaults here, the body in its own scope."""
        if self.shallow:
            self.bind_refs(scope, node.name, _NO_REFS, branch, node.lineno)  # type: ignore[attr-defined]
            return
        for dec in node.decorator_list:  # type: ignore[attr-defined]
            self.node(dec, scope, branch)
        if isinstance(node, ast.ClassDef):
            for base in [*node.bases, *(k.value for k in node.keywords)]:
                self.node(base, scope, branch)
        else:
            for default in [*node.args.defaults, *node.args.kw_defaults]:  # type: ignore[attr-defined]
                if default is not None:
                    self.node(default, scope, branch)
        self.bind_refs(scope, node.name, _NO_REFS, branch, node.lineno)  # type: ignore[attr-defined]
        self.body(node.body, _Scope(scope), ())  # type: ignore[attr-defined]


def _is_include_call(node: ast.AST) -> bool:
    """True for ``<x>.include_router(...)``."""
    return (
        isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and node.func.attr == "include_router"
    )


def _scan_tree(
    tree: ast.Module, path: str, import_root: str, shallow: bool = False
) -> _ModuleScan:
    """Scan one parsed module (a pathological nesting depth yields an empty scan)."""
    module, is_package = module_name(path, import_root)
    try:
        return _Scanner(module, is_package, import_root, shallow).run(tree)
    except RecursionError:
        return _ModuleScan(module=module)


# --------------------------------------------------------------------------- the app


@dataclass
class _App:
    """Everything the router check learned about the ``app`` package."""

    main_rel: str
    main_module: str = ""
    main: _ModuleScan = field(default_factory=_ModuleScan)
    main_routes: list[tuple[str, Route]] = field(default_factory=list)
    routers: dict[Ref, RouterDef] = field(default_factory=dict)
    scans: dict[str, _ModuleScan] = field(default_factory=dict)
    errors: list[tuple[SyntaxError, str]] = field(default_factory=list)  # (error, module)
    import_root: str = ""

    # -- graph ------------------------------------------------------------------

    def aliases(self) -> dict[Ref, frozenset[Ref]]:
        """Re-export edges of every scanned module."""
        edges: dict[Ref, frozenset[Ref]] = {}
        for scan in self.scans.values():
            edges.update(scan.aliases)
        return edges

    def canonical(self, refs: Iterable[Ref], aliases: dict[Ref, frozenset[Ref]]) -> set[Ref]:
        """Router definitions ``refs`` denote, following re-exports (bounded)."""
        seen: set[Ref] = set()
        stack = list(refs)
        while stack and len(seen) < _MAX_VISITS:
            ref = stack.pop()
            if ref in seen:
                continue
            seen.add(ref)
            stack.extend(aliases.get(ref, ()))
        return {ref for ref in seen if ref in self.routers}


def _imported_modules(scan: _ModuleScan) -> set[str]:
    """Every dotted module a scan imports (and their parent packages)."""
    modules: set[str] = set()
    for dotted, _line, _guarded in scan.imports:
        parts = dotted.split(".")
        modules.update(".".join(parts[:i]) for i in range(1, len(parts) + 1))
    return modules


def _load_app(src_root: str, main_rel: str) -> _App:
    """Parse main.py and the router-related modules of its package (one read each)."""
    main_path = os.path.join(src_root, main_rel)
    app_pkg = os.path.dirname(main_path)
    import_root = os.path.dirname(os.path.normpath(app_pkg))
    app = _App(main_rel=main_rel, import_root=import_root)
    app.main_module = module_name(main_path, import_root)[0]
    errors: list[SyntaxError] = []
    main_tree = _parse(main_path, errors)
    if main_tree is None:
        app.errors.append((errors[0], app.main_module))
        return app
    app.main = _scan_tree(main_tree, main_path, import_root)
    app.scans[app.main_module] = app.main
    consts = _module_constants(main_tree)
    app.main_routes = _route_calls(main_tree, consts)
    for router in _routers_in_tree(main_tree, app.main_module, main_path):
        app.routers[router.ref] = router
    wanted = _imported_modules(app.main)
    for path in _python_files(app_pkg):
        if os.path.abspath(path) == os.path.abspath(main_path):
            continue
        module = module_name(path, import_root)[0]
        with open(path, "rb") as handle:
            data = handle.read()
        if b"APIRouter" not in data and b"include_router" not in data and module not in wanted:
            continue
        errors = []
        tree = _parse_source(data, path, errors)
        if tree is None:
            app.errors.append((errors[0], module))
            continue
        for router in _routers_in_tree(tree, module, path):
            app.routers[router.ref] = router
        app.scans[module] = _scan_tree(
            tree, path, import_root, shallow=b"include_router" not in data
        )
    return app


@dataclass
class _Served:
    """A route the running app would serve (full path, or a suffix when not exact)."""

    method: str
    tail: str
    exact: bool
    by: str


def _join(prefix: tuple[str, bool], part: str | None) -> tuple[str, bool]:
    """Append a path part; an unknown part makes the result a suffix only."""
    if part is None:
        return ("", False)
    return (prefix[0] + part, prefix[1])


class _Graph:
    """Which routers the app includes and which full paths it serves."""

    def __init__(self, app: _App) -> None:
        self.app = app
        self.alias = app.aliases()
        self.edges: dict[Ref, list[tuple[Ref, str | None]]] = {}
        self.roots: list[tuple[Ref, str | None]] = []
        main_imports = _imported_modules(app.main)
        for module, scan in app.scans.items():
            is_main = module == app.main_module
            for inc in scan.includes:
                receivers = app.canonical(inc.receivers, self.alias)
                targets = inc.args
                if receivers:
                    for receiver in receivers:
                        self.edges.setdefault(receiver, []).extend((t, inc.prefix) for t in targets)
                elif is_main or module in main_imports:
                    self.roots.extend((t, inc.prefix) for t in targets)
        self.included: set[Ref] = set()
        self.served: list[_Served] = []
        self._walk()
        self._prefixes = self._main_prefixes()

    def _walk(self) -> None:
        """Depth-first from main's includes, accumulating prefixes (bounded)."""
        stack: list[tuple[Ref, tuple[str, bool]]] = [
            (ref, _join(("", True), prefix)) for ref, prefix in self.roots
        ]
        seen: set[tuple[Ref, tuple[str, bool]]] = set()
        while stack and len(seen) < _MAX_VISITS:
            ref, prefix = stack.pop()
            if (ref, prefix) in seen:
                continue
            seen.add((ref, prefix))
            stack.extend((target, prefix) for target in self.alias.get(ref, ()))
            router = self.app.routers.get(ref)
            if router is None:
                continue
            self.included.add(ref)
            inner = _join(prefix, router.prefix)
            for route in router.routes:
                if route.path is not None:
                    tail, exact = _join(inner, route.path)
                    self.served.append(_Served(route.method, tail, exact, router.short))
            for target, inc_prefix in self.edges.get(ref, ()):
                stack.append((target, _join(inner, inc_prefix)))
        main_name = os.path.basename(self.app.main_rel)
        for receiver, route in self.app.main_routes:
            if (self.app.main_module, receiver) not in self.app.routers and route.path:
                self.served.append(_Served(route.method, route.path, True, main_name))

    def server(self, expected: tuple[str, str]) -> str | None:
        """Who serves an expected route among the included routers (None: nobody)."""
        method, path = expected
        for served in self.served:
            if served.method in (method, _ANY_METHOD) and _path_matches(
                served.tail, served.exact, path
            ):
                return served.by
        return None

    def _main_prefixes(self) -> tuple[list[str], bool]:
        """Literal prefixes main.py includes routers with ('' always) and whether some
        prefix is not a literal."""
        prefixes = [p for _ref, p in self.roots]
        ordered = [p for p, _n in Counter(p for p in prefixes if p is not None).most_common()]
        if "" not in ordered:
            ordered.append("")
        return ordered, None in prefixes

    def would_serve(self, router: RouterDef, expected: tuple[str, str]) -> bool:
        """Would ``router``, included like main.py includes the others, serve ``expected``?"""
        method, path = expected
        prefixes, unknown = self._prefixes
        for route in router.routes:
            if route.path is None or route.method not in (method, _ANY_METHOD):
                continue
            tail = (router.prefix or "") + route.path
            # By suffix when main.py's prefix is unknown, or when the router's own path is
            # specific enough (two segments or more: "/portfolio/snapshot", not "/state").
            specific = _norm_path(tail).count("/") >= 2
            if (router.prefix is None or unknown or specific) and _path_matches(
                tail, False, path
            ):
                return True
            if router.prefix is not None and any(
                _path_matches(p + router.prefix + route.path, True, path) for p in prefixes
            ):
                return True
        return False

    def full_routes(self, router: RouterDef) -> list[str]:
        """The router's routes with the prefix main.py uses most (for messages)."""
        prefix = self._prefixes[0][0]
        return [
            f"{r.method} {_norm_path(prefix + (router.prefix or '') + r.path)}"
            for r in router.routes
            if r.path is not None
        ]

    def include_hint(self, name: str) -> str:
        """``app.include_router(name, prefix="/api")`` as main.py does it."""
        receivers = Counter(
            inc.receiver_text
            for inc in self.app.main.includes
            if not self.app.canonical(inc.receivers, self.alias)
        )
        receiver = receivers.most_common(1)[0][0] if receivers else "app"
        prefix = self._prefixes[0][0]
        return f'{receiver}.include_router({name}, prefix="{prefix}")' if prefix else (
            f"{receiver}.include_router({name})"
        )


# --------------------------------------------------------------------------- the check


def _display(path: str, src_root: str) -> str:
    """Path relative to ``src_root`` with ``/`` separators."""
    return os.path.relpath(path, src_root).replace(os.sep, "/")


def _route_list(routes: list[str]) -> str:
    """``GET /a, GET /b`` (limited)."""
    text = ", ".join(routes[:_ROUTE_LIST_LIMIT])
    extra = len(routes) - _ROUTE_LIST_LIMIT
    return text + (f" (+{extra} more)" if extra > 0 else "")


def _suggested_name(router: RouterDef) -> str:
    """``portfolio_router`` for ``app.api.routes_portfolio.router``."""
    stem = router.module.rsplit(".", 1)[-1].removeprefix("routes_").removeprefix("route_")
    return f"{stem}_router" if router.name == "router" else router.name


class _Checker:
    """Turns the parsed app into failure and warning lines."""

    def __init__(self, src_root: str, main_rel: str, expected: list[tuple[str, str]]) -> None:
        self.src_root = src_root
        self.main_rel = main_rel
        self.main_name = os.path.basename(main_rel)
        self.expected = expected
        self.app = _load_app(src_root, main_rel)
        self.result = RouterCheck(routers=sorted(
            self.app.routers.values(), key=lambda r: (r.file, r.line, r.name)
        ))

    def run(self) -> RouterCheck:
        """All rules, failures first in file order."""
        result = self.result
        if any(module == self.app.main_module for _err, module in self.app.errors):
            err = self.app.errors[0][0]
            result.problems.append(format_syntax_error(err, self.main_rel))
            return result
        graph = _Graph(self.app)
        result.included = graph.included
        self._syntax_errors()
        self._missing_imports()
        uncovered = []
        for expected in self.expected:
            server = graph.server(expected)
            if server:
                result.served[_route_text(expected)] = server
            else:
                uncovered.append(expected)
        escaped = self._escaped(graph)
        imported = {
            ref: where for ref, where in self._imported_not_included(graph).items()
            if ref not in escaped
        }
        owner: dict[tuple[str, str], str] = {
            e: result.served[_route_text(e)] for e in self.expected if e not in uncovered
        }
        for router in result.routers:  # rule (a)
            if router.ref in imported:
                breaks = [e for e in uncovered if graph.would_serve(router, e)]
                owner.update((e, router.short) for e in breaks)
                result.problems.append(self._imported_line(graph, router, imported[router.ref],
                                                           breaks))
        rest = [r for r in result.routers if r.ref not in graph.included | set(imported)]
        candidates = [r for r in rest if r.ref not in escaped]
        failing = self._serving_failures(graph, candidates, uncovered, owner)
        for router in rest:  # rule (b), else a warning
            if router.ref in escaped:
                call, line = escaped[router.ref]
                result.warnings.append(
                    f"{router.short} is passed to {call}() at {self.main_name}:{line}, not to "
                    "include_router: whether it is included cannot be seen statically; the "
                    "route gate in the built image decides"
                )
            elif router.ref in failing:
                result.problems.append(failing[router.ref])
            else:
                result.warnings.append(self._dead_line(graph, router, owner))
        served_somewhere = {
            e for e in uncovered for r in rest if graph.would_serve(r, e)
        }
        for expected in uncovered:
            if expected not in served_somewhere and expected not in owner:
                result.warnings.append(
                    f"{_route_text(expected)} (deploy_expected_routes) is served by no router "
                    f"found statically under {os.path.dirname(self.main_rel)}: the route gate "
                    "in the built image decides"
                )
        return result

    # -- rules ------------------------------------------------------------------

    def _syntax_errors(self) -> None:
        """Syntax error in a module main.py imports: failure; elsewhere: warning."""
        imported = _imported_modules(self.app.main)
        for err, module in self.app.errors:
            display = _display(err.filename or "?", self.src_root)
            if module in imported:
                self.result.problems.append(format_syntax_error(err, display))
            else:
                self.result.warnings.append(
                    f"syntax error in {display}:{err.lineno or 1}: {err.msg} ({_python()} on the "
                    f"controller): {self.main_name} does not import it, deploying anyway"
                )

    def _missing_imports(self) -> None:
        """An unconditional top-level import of an app module that is not in the checkout."""
        package = self.app.main_module.split(".", maxsplit=1)[0]
        seen: set[str] = set()
        for dotted, line, guarded in self.app.main.imports:
            if guarded or dotted.split(".")[0] != package or dotted in seen:
                continue
            seen.add(dotted)
            path = os.path.join(self.app.import_root, *dotted.split("."))
            if os.path.isfile(path + ".py") or os.path.isdir(path):
                continue
            parent = os.path.dirname(path)
            stem = os.path.basename(path) + "."
            if os.path.isdir(parent) and any(n.startswith(stem) and n.endswith((".so", ".pyd"))
                                             for n in os.listdir(parent)):
                continue
            rel = _display(path + ".py", self.src_root)
            self.result.problems.append(
                f"{self.main_rel}:{line} imports {dotted}, but {rel} is not in the checkout: "
                "the app cannot start; add (and commit) the file or fix the import"
            )

    def _imported_not_included(self, graph: _Graph) -> dict[Ref, tuple[str, int]]:
        """Routers main.py names (import or ``module.router``) but never includes."""
        found: dict[Ref, tuple[str, int]] = {}
        for ref, (local, line) in sorted(self.app.main.referenced.items(), key=lambda i: i[1][1]):
            for router in self.app.canonical([ref], graph.alias):
                if router not in graph.included and router[0] != self.app.main_module:
                    found.setdefault(router, (local, line))
        return found

    def _escaped(self, graph: _Graph) -> dict[Ref, tuple[str, int]]:
        """Routers main.py hands to another call (maybe included there)."""
        found: dict[Ref, tuple[str, int]] = {}
        for ref, where in self.app.main.escaped.items():
            for router in self.app.canonical([ref], graph.alias):
                if router not in graph.included:
                    found.setdefault(router, where)
        return found

    def _shadowing(self, graph: _Graph, router: RouterDef, local: str) -> str:
        """`` (main.py:12 rebinds x before the include_router at line 40)`` or ''."""
        for inc in self.app.main.includes:
            if inc.arg_text != local or router.ref in self.app.canonical(inc.args, graph.alias):
                continue
            rebinds = [
                line for name, line, refs in self.app.main.history
                if name == local and line < inc.line
                and router.ref not in self.app.canonical(refs, graph.alias)
            ]
            if rebinds:
                return (f" ({self.main_name}:{rebinds[-1]} rebinds {local} before the "
                        f"include_router at line {inc.line})")
        return ""

    def _imported_line(self, graph: _Graph, router: RouterDef, where: tuple[str, int],
                       breaks: list[tuple[str, str]]) -> str:
        """Rule (a): imported but never included."""
        local, _line = where
        why = self._shadowing(graph, router, local)
        if breaks:
            routes = _route_list([_route_text(e) for e in breaks])
        else:
            own = graph.full_routes(router)
            routes = f"its routes {_route_list(own)}" if own else "its routes"
        unique = f"{router.module.rsplit('.', 1)[-1]}_{router.name}"
        fix = (
            f"import it as {unique} (a name nothing rebinds) and add "
            f"{graph.include_hint(unique)}"
            if why else f"add {graph.include_hint(local)}"
        )
        where = f"{_display(router.file, self.src_root)}:{router.line}"
        return (
            f"{router.short} ({where}) is imported by {self.main_name} as {local} but never "
            f"included{why}: {routes} would answer 404; {fix} in {self.main_rel}"
        )

    def _serving_failures(
        self,
        graph: _Graph,
        candidates: list[RouterDef],
        uncovered: list[tuple[str, str]],
        owner: dict[tuple[str, str], str],
    ) -> dict[Ref, str]:
        """Rule (b): expected routes only never-included routers serve. When several serve
        the same routes (a "fixed" copy), the one serving most is named, the others noted."""
        serving = {
            r.ref: [e for e in uncovered if e not in owner and graph.would_serve(r, e)]
            for r in candidates
        }
        order = sorted(candidates, key=lambda r: (-len(serving[r.ref]), len(r.module), r.file))
        failing: dict[Ref, str] = {}
        for router in order:
            breaks = [e for e in serving[router.ref] if e not in owner]
            if not breaks:
                continue
            owner.update((e, router.short) for e in breaks)
            others = [
                o.short for o in candidates
                if o is not router and set(serving[o.ref]) & set(breaks)
            ]
            failing[router.ref] = self._serving_line(graph, router, breaks, others)
        return failing

    def _serving_line(self, graph: _Graph, router: RouterDef,
                      breaks: list[tuple[str, str]], others: list[str]) -> str:
        """Rule (b): serves expected routes nobody else serves, never included."""
        name = _suggested_name(router)
        where = f"{_display(router.file, self.src_root)}:{router.line}"
        also = f" (also never included: {', '.join(others)})" if others else ""
        return (
            f"{router.short} ({where}) serves {_route_list([_route_text(e) for e in breaks])} "
            f"but {self.main_name} never includes it{also}: those routes would answer 404; "
            f"add 'from {router.module} import {router.name} as {name}' and "
            f"{graph.include_hint(name)} to {self.main_rel}"
        )

    def _dead_line(self, graph: _Graph, router: RouterDef,
                   owner: dict[tuple[str, str], str]) -> str:
        """A router nobody includes and nothing expected depends on."""
        where = f"{_display(router.file, self.src_root)}:{router.line}"
        by_owner: dict[str, list[str]] = {}
        for expected in self.expected:
            if expected in owner and graph.would_serve(router, expected):
                by_owner.setdefault(owner[expected], []).append(_route_text(expected))
        also = "".join(
            f"; its {_route_list(routes)} duplicate{'s' if len(routes) == 1 else ''} "
            f"routes of {name}"
            for name, routes in by_owner.items()
        )
        count = len(router.routes)
        return (
            f"{router.short} ({where}, {count} route{'s' if count != 1 else ''}) is never "
            f"included by {self.main_name} and no expected route depends on it{also}: "
            "dead code, deploying anyway"
        )


def check_routers(
    src_root: str,
    main_rel: str = "backend/app/main.py",
    expected_routes: Iterable[object] = (),
) -> RouterCheck:
    """Static router check of the app whose entry point is ``main_rel`` (see module doc).

    Scans every importable module of main.py's package (``backend/app``): ``api/``,
    ``routers/`` and anywhere else. Raises SourceCheckError for a malformed expected route.
    """
    expected = parse_expected_routes(expected_routes)
    if not os.path.isfile(os.path.join(src_root, main_rel)):
        return RouterCheck(problems=[
            f"{main_rel} does not exist: expected the FastAPI entry point that includes the "
            "app's routers; fix backend_src_dir or add the file"
        ])
    return _Checker(src_root, main_rel, expected).run()


def included_routers(main_file: str, app_root_pkg_dir: str | None = None) -> set[Ref]:
    """(module, name) of every router ``main_file`` includes, following aggregates."""
    app_pkg = app_root_pkg_dir or os.path.dirname(main_file)
    src_root = os.path.dirname(os.path.dirname(os.path.normpath(app_pkg)))
    main_rel = os.path.relpath(main_file, src_root)
    app = _load_app(src_root, main_rel)
    return _Graph(app).included if app.main.module else set()


def unincluded_routers(
    src_root: str, main_rel: str = "backend/app/main.py", expected_routes: Iterable[object] = ()
) -> list[str]:
    """The failure lines of :func:`check_routers`."""
    return check_routers(src_root, main_rel, expected_routes).problems


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
