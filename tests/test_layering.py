"""The import rules between the three packages, checked on the source with `ast`.

    app   may import db and rise
    db    never imports rise or app (nor UI or ML libraries)
    rise  never imports db or app, nor database or UI libraries: it takes plain records
    app   is imported by nothing but itself (and the tests and benchmarks, which drive it from outside)

Every import counts: inside functions, under `if TYPE_CHECKING:`, relative ones, and `importlib.import_module("…")`
or `__import__("…")` with a literal name.

No import cycles among the project's modules either, counted the same way: an import inside a function only moves a
cycle to run time. A module depends on the modules it imports and on the packages that hold it or them, since Python
runs a package's `__init__` first. The one exception to the second rule is a package whose `__init__` only re-exports
its modules' names (a docstring, imports, literals such as `__all__`): it does no work of its own, so a module of it
may import a sibling while the package imports that module.
"""

from __future__ import annotations

import ast
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("app", "db", "rise")
FORBIDDEN: dict[str, frozenset[str]] = {
    "db": frozenset({"app", "rise", "gradio", "gradio_image_annotation", "torch", "transformers", "trl", "peft"}),
    "rise": frozenset({"app", "db", "sqlalchemy", "alembic", "psycopg", "gradio", "gradio_image_annotation"}),
}
# Folders that hold no project source. Top level: the tests and benchmarks (entry points that drive the app from
# outside, so they may import anything), data and build output; anywhere: hidden folders (virtual environments,
# caches) and bytecode.
SKIPPED_TOP_DIRS = {"tests", "bench", "data", "build", "dist"}
SKIPPED_DIRS = {"__pycache__", "node_modules"}


@dataclass(frozen=True)
class Violation:
    path: str
    line: int
    imported: str
    rule: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: imports {self.imported} ({self.rule})"


def module_name(relative_path: Path) -> str:
    parts = list(relative_path.with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def resolve_relative(module: str, is_package: bool, level: int, target: str | None) -> str:
    """The absolute name of `from <level dots><target> import …` written in `module`."""
    package = module.split(".") if is_package else module.split(".")[:-1]
    base = package[: len(package) - (level - 1)] if level > 1 else package
    return ".".join([*base, target] if target else base)


def imported_modules(source: str, module: str, is_package: bool = False) -> list[tuple[int, str]]:
    """(line, absolute module name) for every import in `source`, wherever it appears."""
    found: list[tuple[int, str]] = []
    for node in ast.walk(ast.parse(source, filename=module)):
        if isinstance(node, ast.Import):
            found.extend((node.lineno, alias.name) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                found.append((node.lineno, resolve_relative(module, is_package, node.level, node.module)))
            elif node.module:
                found.append((node.lineno, node.module))
        elif isinstance(node, ast.Call) and _is_dynamic_import(node.func):
            first = node.args[0] if node.args else None
            if isinstance(first, ast.Constant) and isinstance(first.value, str):
                found.append((node.lineno, first.value))
    return found


def _is_dynamic_import(func: ast.expr) -> bool:
    if isinstance(func, ast.Name):
        return func.id in {"__import__", "import_module"}
    return isinstance(func, ast.Attribute) and func.attr == "import_module"


def check_source(source: str, relative_path: Path) -> list[Violation]:
    """The layering violations in one file, given its path relative to the repository root."""
    module = module_name(relative_path)
    owner = module.split(".")[0]
    violations = []
    for line, imported in imported_modules(source, module, relative_path.name == "__init__.py"):
        top = imported.split(".")[0]
        if top in FORBIDDEN.get(owner, ()):
            violations.append(Violation(str(relative_path), line, imported, f"{owner} must not import {top}"))
        elif top == "app" and owner != "app":
            violations.append(Violation(str(relative_path), line, imported, "nothing imports app"))
    return violations


def project_modules(root: Path = ROOT) -> dict[str, tuple[str, bool]]:
    """Every project module's name -> (its source, whether it is a package's `__init__`)."""
    modules = {}
    for path in project_sources(root):
        relative = path.relative_to(root)
        modules[module_name(relative)] = (path.read_text(), relative.name == "__init__.py")
    return modules


def imported_project_modules(source: str, module: str, is_package: bool, known: set[str]) -> set[str]:
    """The project modules `source` imports, wherever the import appears: for `from package import name`, the module
    `package.name` when there is one, else `package`; for other imports, the longest known prefix of the name."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(source, filename=module)):
        if isinstance(node, ast.ImportFrom):
            base = resolve_relative(module, is_package, node.level, node.module) if node.level else node.module
            for alias in node.names:
                target = _longest_known_prefix(f"{base}.{alias.name}", known)
                if target is not None:
                    found.add(target)
        else:
            names: list[str] = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.Call) and _is_dynamic_import(node.func):
                first = node.args[0] if node.args else None
                if isinstance(first, ast.Constant) and isinstance(first.value, str):
                    names = [first.value]
            found.update(target for name in names if (target := _longest_known_prefix(name, known)) is not None)
    return found


def _longest_known_prefix(name: str, known: set[str]) -> str | None:
    parts = name.split(".")
    while parts and ".".join(parts) not in known:
        parts.pop()
    return ".".join(parts) or None


def _only_reexports(source: str) -> bool:
    """Whether a package `__init__` holds nothing but a docstring, imports and names bound to literals (`__all__`)."""
    for statement in ast.parse(source).body:
        if isinstance(statement, ast.Import | ast.ImportFrom):
            continue
        if isinstance(statement, ast.Expr | ast.Assign | ast.AnnAssign) and _is_literal(statement.value):
            continue
        return False
    return True


def _is_literal(node: ast.expr | None) -> bool:
    try:
        ast.literal_eval(node)  # type: ignore[arg-type]
    except (ValueError, TypeError, SyntaxError):
        return False
    return True


def import_graph(modules: Mapping[str, tuple[str, bool]]) -> dict[str, set[str]]:
    """Module -> the project modules loading it loads first (see the module docstring)."""
    known = set(modules)
    working_packages = {
        name for name, (source, is_package) in modules.items() if is_package and not _only_reexports(source)
    }

    def holders(name: str) -> set[str]:
        parts = name.split(".")
        return {".".join(parts[:end]) for end in range(1, len(parts))} & working_packages

    graph = {}
    for name, (source, is_package) in modules.items():
        imported = imported_project_modules(source, name, is_package, known)
        needed = imported | holders(name) | {holder for module in imported for holder in holders(module)}
        graph[name] = needed - {name}
    return graph


def import_cycles(graph: Mapping[str, set[str]]) -> list[list[str]]:
    """One cycle through each group of modules that import each other, as the path `[a, b, ..., a]`."""
    # Tarjan's strongly connected components; the graph is small enough for recursion.
    index: dict[str, int] = {}
    lowlink: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[set[str]] = []

    def visit(module: str) -> None:
        index[module] = lowlink[module] = len(index)
        stack.append(module)
        on_stack.add(module)
        for target in sorted(graph.get(module, ())):
            if target not in index:
                visit(target)
                lowlink[module] = min(lowlink[module], lowlink[target])
            elif target in on_stack:
                lowlink[module] = min(lowlink[module], index[target])
        if lowlink[module] == index[module]:
            component = set()
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.add(member)
                if member == module:
                    break
            if len(component) > 1:
                components.append(component)

    for module in sorted(graph):
        if module not in index:
            visit(module)
    return [_cycle_within(component, graph) for component in components]


def _cycle_within(component: set[str], graph: Mapping[str, set[str]]) -> list[str]:
    """A shortest path from the component's first module back to itself, staying inside the component."""
    start = min(component)
    paths = {start: [start]}
    frontier = [start]
    while frontier:
        next_frontier = []
        for module in frontier:
            for target in sorted(graph[module] & component):
                if target == start:
                    return [*paths[module], start]
                if target not in paths:
                    paths[target] = [*paths[module], target]
                    next_frontier.append(target)
        frontier = next_frontier
    raise AssertionError(f"{sorted(component)} holds no cycle")


def project_sources(root: Path = ROOT) -> list[Path]:
    found = []
    for folder, subfolders, files in os.walk(root):
        # Prune in place so os.walk never descends into a virtual environment or a data folder.
        skipped = SKIPPED_DIRS | (SKIPPED_TOP_DIRS if Path(folder) == root else set())
        subfolders[:] = [name for name in subfolders if not name.startswith(".") and name not in skipped]
        found.extend(Path(folder, name) for name in files if name.endswith(".py"))
    return sorted(found)


class TestChecker:
    """The checker itself, on synthetic sources, so the repository test below cannot pass by finding nothing."""

    def test_forbidden_imports_in_rise_are_all_reported(self):
        source = """
import json
import sqlalchemy.orm
from db.models import Item
from app import cli
from typing import TYPE_CHECKING
if TYPE_CHECKING:
    from gradio import Blocks
def later():
    import importlib
    return importlib.import_module("db.session"), __import__("alembic")
from .parsing import parse_completion
"""
        violations = check_source(source, Path("rise/annotate.py"))

        assert [(v.line, v.imported) for v in violations] == [
            (3, "sqlalchemy.orm"),
            (4, "db.models"),
            (5, "app"),
            (8, "gradio"),
            (11, "db.session"),
            (11, "alembic"),
        ]
        assert str(violations[0]) == "rise/annotate.py:3: imports sqlalchemy.orm (rise must not import sqlalchemy)"

    def test_db_must_not_import_rise_or_app(self):
        source = "from rise.tasks import TaskSpec\nimport app.runtime\nfrom sqlalchemy import select\n"
        assert [v.imported for v in check_source(source, Path("db/crud/items.py"))] == ["rise.tasks", "app.runtime"]

    def test_app_may_import_db_and_rise_but_others_may_not_import_app(self):
        source = (
            "from db.models import Item\nfrom rise.tasks import TaskSpec\nfrom app.settings import load_settings\n"
        )
        assert check_source(source, Path("app/services/reviews.py")) == []
        assert [v.rule for v in check_source(source, Path("scripts/tool.py"))] == ["nothing imports app"]

    @pytest.mark.parametrize(
        ("module", "is_package", "level", "target", "expected"),
        [
            ("rise.annotate", False, 1, "parsing", "rise.parsing"),
            ("rise.rewards.iou", False, 2, "boxes", "rise.boxes"),
            ("rise.rewards", True, 1, "iou", "rise.rewards.iou"),
            ("db.crud.items", False, 2, None, "db"),
        ],
    )
    def test_relative_imports_resolve_to_absolute_names(self, module, is_package, level, target, expected):
        assert resolve_relative(module, is_package, level, target) == expected

    def test_skipped_folders_are_not_scanned(self, tmp_path):
        files = [
            "rise/a.py",
            ".venv/lib/x.py",
            "tests/test_x.py",
            "rise/__pycache__/a.py",
            "db/b.py",
            "rise/data/c.py",
        ]
        for relative in files:
            (tmp_path / relative).parent.mkdir(parents=True, exist_ok=True)
            (tmp_path / relative).write_text("")
        assert [p.relative_to(tmp_path).as_posix() for p in project_sources(tmp_path)] == [
            "db/b.py",
            "rise/a.py",
            "rise/data/c.py",
        ]


def test_the_repository_follows_the_layering_rules():
    sources = project_sources()
    scanned = {package: [p for p in sources if p.relative_to(ROOT).parts[0] == package] for package in PACKAGES}
    # Guards against a vacuous pass: each package's modules were found and read.
    assert all(len(files) >= 2 for files in scanned.values()), {k: len(v) for k, v in scanned.items()}

    violations = [v for path in sources for v in check_source(path.read_text(), path.relative_to(ROOT))]

    assert violations == [], "\n".join(map(str, violations))


class TestCycleChecker:
    """The cycle check on synthetic modules: what counts as a cycle and what does not."""

    @staticmethod
    def cycles(modules: dict[str, tuple[str, bool]]) -> list[list[str]]:
        return import_cycles(import_graph(modules))

    def test_an_import_inside_a_function_still_closes_a_cycle(self):
        modules = {
            "rise": ("", True),
            "rise.tasks": ("def check():\n    from rise.prompts import render\n", False),
            "rise.prompts": ("from rise.tasks import TaskSpec\n", False),
        }
        assert self.cycles(modules) == [["rise.prompts", "rise.tasks", "rise.prompts"]]

    def test_a_package_that_does_work_and_imports_its_module_is_a_cycle(self):
        # The package builds something from `review`; loading `render` runs the package first, which loads `review`.
        modules = {
            "app": ("", True),
            "app.ui": ("from app.ui import review\ndef build():\n    return review.tab()\n", True),
            "app.ui.review": ("from app.ui import render\ndef tab():\n    return render\n", False),
            "app.ui.render": ("import html\n", False),
        }
        assert self.cycles(modules) == [["app.ui", "app.ui.review", "app.ui"]]

    def test_a_package_that_only_reexports_may_hold_modules_importing_each_other(self):
        modules = {
            "rise": ("", True),
            "rise.rewards": ('"""Rewards."""\nfrom rise.rewards.task import reward\n__all__ = ["reward"]\n', True),
            "rise.rewards.task": ("from rise.rewards.scores import iou\nreward = iou\n", False),
            "rise.rewards.scores": ("def iou():\n    return 1.0\n", False),
        }
        assert self.cycles(modules) == []

    def test_a_module_importing_a_name_from_its_reexporting_package_is_a_cycle(self):
        # The package is still loading `task` when `task` asks it for a name: the name is not there yet.
        modules = {
            "rise": ("", True),
            "rise.rewards": ("from rise.rewards.task import reward\nfrom rise.rewards.scores import iou\n", True),
            "rise.rewards.task": ("from rise.rewards import iou\nreward = iou\n", False),
            "rise.rewards.scores": ("def iou():\n    return 1.0\n", False),
        }
        assert self.cycles(modules) == [["rise.rewards", "rise.rewards.task", "rise.rewards"]]

    def test_relative_dynamic_and_type_checking_imports_count(self):
        modules = {
            "db": ("", True),
            "db.a": ("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from .b import B\n", False),
            "db.b": ("import importlib\nc = importlib.import_module('db.c')\n", False),
            "db.c": ("from . import a\n", False),
        }
        assert self.cycles(modules) == [["db.a", "db.b", "db.c", "db.a"]]


def test_the_project_has_no_import_cycles():
    modules = project_modules()
    graph = import_graph(modules)
    # Guards against a vacuous pass: the modules were read, and their imports of each other found.
    assert len(modules) > 100 and sum(map(len, graph.values())) > len(modules), (len(modules), len(graph))

    cycles = import_cycles(graph)

    assert cycles == [], "\n".join(" -> ".join(cycle) for cycle in cycles)
