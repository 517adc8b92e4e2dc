"""The import rules between the three packages, checked on the source with `ast`.

    app   may import db and rise
    db    never imports rise or app (nor UI or ML libraries)
    rise  never imports db or app, nor database or UI libraries: it takes plain records
    app   is imported by nothing but itself (and the tests and benchmarks, which drive it from outside)

Every import counts: inside functions, under `if TYPE_CHECKING:`, relative ones, and `importlib.import_module("…")`
or `__import__("…")` with a literal name.
"""

from __future__ import annotations

import ast
import os
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
