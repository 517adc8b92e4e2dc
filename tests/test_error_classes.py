"""Every error class of the project derives from its package's base (`app.errors.AppError`, `db.errors.DbError`,
`rise.errors.RiseError`), checked on the source with `ast`, so an error class added later is covered without editing
this test."""

from __future__ import annotations

import ast
import builtins
from dataclasses import dataclass

from tests.test_layering import PACKAGES, ROOT, project_sources

BASES = {"app": "AppError", "db": "DbError", "rise": "RiseError"}
BUILTIN_EXCEPTIONS = {
    name for name, value in vars(builtins).items() if isinstance(value, type) and issubclass(value, BaseException)
}


@dataclass(frozen=True)
class ClassInfo:
    package: str
    where: str
    bases: tuple[
        str, ...
    ]  # the last part of each base's name: `job_service.ActiveJobExistsError` is ActiveJobExistsError


def project_classes(sources: dict[str, str]) -> dict[str, list[ClassInfo]]:
    """Class name -> every module-level class of that name, from {relative path: source}."""
    found: dict[str, list[ClassInfo]] = {}
    for path, source in sources.items():
        for node in ast.parse(source).body:
            if isinstance(node, ast.ClassDef):
                bases = tuple(
                    base.attr if isinstance(base, ast.Attribute) else getattr(base, "id", "") for base in node.bases
                )
                info = ClassInfo(path.split("/")[0], f"{path}:{node.lineno}", bases)
                found.setdefault(node.name, []).append(info)
    return found


def error_classes_without_their_base(sources: dict[str, str]) -> list[str]:
    """`path:line: Name` for every exception class that does not derive from its package's base."""
    classes = project_classes(sources)

    def derives(name: str, target: str, seen: frozenset[str] = frozenset()) -> bool:
        if name == target:
            return True
        if name in seen or name not in classes:
            return False
        return any(derives(base, target, seen | {name}) for info in classes[name] for base in info.bases)

    def is_exception(name: str) -> bool:
        return any(derives(name, builtin) for builtin in BUILTIN_EXCEPTIONS)

    missing = []
    for name, infos in classes.items():
        for info in infos:
            base = BASES.get(info.package)
            if base is None or name == base or not is_exception(name):
                continue
            if not any(derives(parent, base) for parent in info.bases):
                missing.append(f"{info.where}: {name} does not derive from {base}")
    return sorted(missing)


def test_the_checker_finds_an_error_class_without_its_base():
    sources = {
        "app/errors.py": "class AppError(Exception):\n    pass\n",
        "app/services/a.py": "class GoodError(AppError, ValueError):\n    pass\nclass Child(GoodError):\n    pass\n",
        "app/services/b.py": "class BadError(ValueError):\n    pass\nclass AlsoBad(BadError):\n    pass\n",
        "app/services/c.py": "class Plain:\n    pass\nclass Record(Plain):\n    pass\n",  # not errors at all
        "db/errors.py": "class DbError(Exception):\n    pass\n",
        "db/crud/x.py": "class WrongLayerError(AppError):\n    pass\nclass Fine(errors.DbError):\n    pass\n",
    }
    assert error_classes_without_their_base(sources) == [
        "app/services/b.py:1: BadError does not derive from AppError",
        "app/services/b.py:3: AlsoBad does not derive from AppError",
        "db/crud/x.py:1: WrongLayerError does not derive from DbError",
    ]


def test_every_error_class_of_the_project_derives_from_its_package_base():
    sources = {
        path.relative_to(ROOT).as_posix(): path.read_text()
        for path in project_sources()
        if path.relative_to(ROOT).parts[0] in PACKAGES
    }
    classes = project_classes(sources)
    # Guards against a vacuous pass: each base exists where it should, and the project's error classes were found.
    assert {name: [info.where.split(":")[0] for info in classes.get(name, [])] for name in BASES.values()} == {
        "AppError": ["app/errors.py"],
        "DbError": ["db/errors.py"],
        "RiseError": ["rise/errors.py"],
    }
    assert sum(1 for name in classes if name.endswith("Error")) >= 20

    assert error_classes_without_their_base(sources) == []
