"""Dependencies point one way: ``registry`` ← ``adapters`` ← ``engine`` ← ``schedules`` ←
``seawall`` (docs/architecture.md). Every import in the five packages is read (module level and
inside functions); one that reaches a package to its right fails this test."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
ORDER = ["registry", "adapters", "engine", "schedules", "seawall"]


def upward_imports(root: Path = ROOT) -> list[str]:
    found = []
    for package in ORDER:
        for path in sorted((root / package).rglob("*.py")):
            for node in ast.walk(ast.parse(path.read_text(), str(path))):
                if isinstance(node, ast.Import):
                    names = [alias.name for alias in node.names]
                elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                    names = [node.module]
                else:
                    continue
                for name in names:
                    top = name.split(".")[0]
                    if top in ORDER and ORDER.index(top) > ORDER.index(package):
                        found.append(f"{path.relative_to(root)}: imports {name}")
    return found


def test_no_package_imports_one_to_its_right() -> None:
    assert upward_imports() == []


def test_the_check_sees_an_upward_edge(tmp_path: Path) -> None:
    for package in ORDER:
        (tmp_path / package).mkdir()
    (tmp_path / "engine" / "bad.py").write_text("def f():\n    from seawall import cli\n")
    (tmp_path / "registry" / "ok.py").write_text("import json\n")
    assert upward_imports(tmp_path) == ["engine/bad.py: imports seawall"]
