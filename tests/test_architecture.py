"""The code's shape: layers import only downward, no import hides in a function, one API.

Layers, bottom to top (README, "How the code is laid out"): core -> db and files (the
export's Parquet files) -> models and the service -> operations -> reporting ->
interfaces (admin, views, urls, checks, commands, apps, api). A module may import its own
layer or a lower one, never a higher one, and the graph of module imports has no cycle.
"""

from __future__ import annotations

import ast
import importlib
import re
from pathlib import Path

import pytest

import activity_grades
from activity_grades import api
from activity_grades.core import exceptions

APP = Path(activity_grades.__file__).parent
LAYERS = {
    "core": 0,
    "db": 1,
    "files": 1,
    "models": 2,
    "replicas": 2,  # which database serves a read: core and db only
    "service": 2,
    "placement": 2,  # which server holds a class: core and db only
    "partitions": 2,  # a partition made where its class lives (the service's on-demand path)
    "operations": 3,
    "reporting": 4,
    "admin": 5,
    "views": 5,
    "routers": 5,
    "middleware": 5,
    "urls": 5,
    "checks": 5,
    "management": 5,
    "apps": 5,
    "api": 5,
    "signals": 5,
    "tasks": 5,
    "__init__": 5,
}


def _modules() -> dict[str, Path]:
    out = {}
    for path in APP.rglob("*.py"):
        rel = path.relative_to(APP).with_suffix("")
        if rel.parts[0] in ("migrations", "sql"):
            continue  # frozen text: migrations import only the SQL loader
        out[".".join(("activity_grades", *rel.parts)).removesuffix(".__init__")] = path
    return out


def _layer(module: str) -> int:
    parts = module.split(".")
    return LAYERS[parts[1] if len(parts) > 1 else "__init__"]


def _resolve(module: str, path: Path, node: ast.ImportFrom) -> list[str]:
    """Absolute names of the app's modules an ``import from`` statement loads."""
    if node.level:
        package = module if path.name == "__init__.py" else module.rpartition(".")[0]
        for _ in range(node.level - 1):
            package = package.rpartition(".")[0]
        base = f"{package}.{node.module}" if node.module else package
    else:
        base = node.module or ""
    if not base.startswith("activity_grades"):
        return []
    # "from . import archive" names submodules; "from .db import registry" also loads
    # the package activity_grades.db.
    return ([base] if node.module else []) + [f"{base}.{alias.name}" for alias in node.names]


def _imports(module: str, path: Path) -> list[tuple[str, ast.stmt, bool]]:
    """(imported app module, statement, inside a function) of one module."""
    tree = ast.parse(path.read_text())
    in_function = {
        id(child)
        for fn in ast.walk(tree)
        if isinstance(fn, ast.FunctionDef | ast.AsyncFunctionDef)
        for child in ast.walk(fn)
    }
    known = _modules()
    out = []
    for node in ast.walk(tree):
        names: list[str] = []
        if isinstance(node, ast.ImportFrom):
            names = _resolve(module, path, node)
        elif isinstance(node, ast.Import):
            names = [a.name for a in node.names if a.name.startswith("activity_grades")]
        for name in names:
            if name in known and name != module:
                out.append((name, node, id(node) in in_function))
    return out


def test_every_module_is_in_a_layer():
    assert {m.split(".")[1] if "." in m else "__init__" for m in _modules()} <= set(LAYERS)


def test_layers_import_only_downward():
    upward = [
        f"{module} (layer {_layer(module)}) imports {target} (layer {_layer(target)})"
        for module, path in _modules().items()
        for target, _node, in_function in _imports(module, path)
        if not in_function and _layer(target) > _layer(module)
    ]
    assert upward == []


def test_no_import_of_the_app_inside_a_function():
    # The one exception is Django's own idiom: AppConfig.ready() imports the checks module
    # so that its @register decorators run once the app registry is ready.
    hidden = [
        f"{module}:{node.lineno} imports {target}"
        for module, path in _modules().items()
        for target, node, in_function in _imports(module, path)
        if in_function and (module, target) != ("activity_grades.apps", "activity_grades.checks")
    ]
    assert hidden == []


def test_module_imports_have_no_cycle():
    graph = {
        module: {t for t, _n, inside in _imports(module, path) if not inside}
        for module, path in _modules().items()
    }
    # Importing a submodule imports its package first: that edge is not a cycle.
    for module in graph:
        graph[module] = {t for t in graph[module] if not module.startswith(t + ".")}
    state: dict[str, int] = {}
    cycle: list[str] = []

    def visit(node: str, stack: list[str]) -> bool:
        state[node] = 1
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                cycle.extend(
                    stack[stack.index(nxt) :] + [node, nxt] if nxt in stack else [node, nxt]
                )
                return True
            if state.get(nxt) is None and visit(nxt, [*stack, node]):
                return True
        state[node] = 2
        return False

    assert not any(visit(m, []) for m in sorted(graph) if m not in state), cycle


def test_every_module_declares_its_public_names():
    missing = []
    for module, path in _modules().items():
        tree = ast.parse(path.read_text())
        defines = any(
            isinstance(n, ast.Assign) and any(getattr(t, "id", "") == "__all__" for t in n.targets)
            for n in tree.body
        )
        public = [
            n.name
            for n in tree.body
            if isinstance(n, ast.FunctionDef | ast.ClassDef) and not n.name.startswith("_")
        ]
        # Commands, migrations-like glue and Django entry points define no API of their own.
        glue = ".management." in module or module.endswith((".apps", ".urls"))
        if public and not defines and not glue:
            missing.append(module)
    assert missing == []


def test_the_declared_api_resolves_from_the_package():
    assert len(api.__all__) == len(set(api.__all__))
    for name in api.__all__:
        assert getattr(activity_grades, name) is getattr(api, name), name
    assert set(api.__all__) <= set(dir(activity_grades))
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        activity_grades.nope  # noqa: B018


def test_one_plan_apply_vocabulary():
    for name in (
        *("create", "archive", "restore", "retention", "repair", "maintenance", "convert"),
        "regranulate",
    ):
        operation = importlib.import_module(f"activity_grades.operations.{name}")
        assert callable(operation.plan), name
    for plan_type in (
        api.CreatePlan,
        api.ArchivePlan,
        api.RestorePlan,
        api.RetentionPlan,
        api.RepairPlan,
        api.MaintenancePlan,
        api.ConversionPlan,
        api.RegranulatePlan,
    ):
        assert issubclass(plan_type, api.Plan) and "apply" in vars(plan_type), plan_type


def test_every_error_the_app_raises_on_purpose_has_one_root():
    errors = [getattr(exceptions, n) for n in exceptions.__all__]
    assert all(issubclass(e, exceptions.ActivityGradesError) for e in errors)
    # Each public error is exported by the API.
    assert {e.__name__ for e in errors} <= set(api.__all__)
    raised: list[str] = []
    for module, path in _modules().items():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Raise) and isinstance(node.exc, ast.Call):
                func = node.exc.func
                name = getattr(func, "id", getattr(func, "attr", ""))
                if name in {"ValueError", "TypeError", "IntegrityError", "RuntimeError"}:
                    raised.append(f"{module}:{node.lineno} raises {name}")
    # Programming errors inside the database layer's own helpers (a bad literal from the
    # app's code, never from a user) stay plain ValueError.
    assert all(r.startswith(("activity_grades.db.", "activity_grades.admin.")) for r in raised), (
        raised
    )


def test_only_the_database_layer_writes_sql():
    statement = re.compile(r"^\s*(SELECT|INSERT|UPDATE|DELETE|CREATE|ALTER|DROP|COPY|LOCK)\b")
    found = []
    for module, path in _modules().items():
        if module.startswith("activity_grades.db."):
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Attribute) and node.attr in ("execute", "executemany"):
                found.append(f"{module}:{node.lineno} calls .{node.attr}()")
            elif isinstance(node, ast.Attribute) and node.attr in ("SQL", "Identifier"):
                found.append(f"{module}:{node.lineno} builds sql.{node.attr}")
            elif isinstance(node, ast.Call) and getattr(node.func, "id", "") == "RawSQL":
                # An ORM expression whose text comes from the database layer is fine.
                text = node.args[0] if node.args else None
                if not (
                    isinstance(text, ast.Attribute) and getattr(text.value, "id", "") == "catalog"
                ):
                    found.append(f"{module}:{node.lineno} writes RawSQL")
            elif isinstance(node, ast.Constant) and isinstance(node.value, str):
                # Hints that show a statement to type are text, not SQL the app runs.
                if statement.match(node.value) and "%s" in node.value:
                    found.append(f"{module}:{node.lineno} holds SQL text")
    assert found == []
