"""docs/architecture.md's package map names every module and subpackage of the five packages:
a module added without its line in the map fails here (the map and the code agree, package by
package)."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("registry", "adapters", "engine", "schedules", "seawall")
#: A map row: | `package/path` | what it holds |
ROW = re.compile(r"^\| `([a-z_/]+)` \| (.*) \|$", re.M)


def _named(text: str, stem: str) -> bool:
    """``stem`` appears as a word in ``text``; or the row uses the shorthand of a family
    (`` `aws_ecr*` `` or `` `family` … `_part` ``) that covers it."""
    if re.search(rf"(?<!\w){re.escape(stem)}(?!\w)", text):
        return True
    return any(
        stem[i] == "_" and f"`{stem[i:]}`" in text and stem[:i] in text for i in range(1, len(stem))
    )


def _row_for(rows: dict[str, str], rel: str) -> str | None:
    key = rel
    while key not in rows and "/" in key:
        key = key.rsplit("/", 1)[0]
    return rows.get(key)


def _unnamed(doc: str) -> list[str]:
    """The modules and folders of the packages that ``doc``'s map does not name."""
    rows = dict(ROW.findall(doc))
    missing = []
    for top in PACKAGES:
        base = ROOT / top
        for folder in sorted([base, *(p for p in base.rglob("*") if p.is_dir())]):
            if {"__pycache__", "versions"} & set(folder.parts):
                continue
            rel = folder.relative_to(ROOT).as_posix()
            text = _row_for(rows, rel)
            if text is None:
                if not any(k.startswith(rel + "/") for k in rows):
                    missing.append(f"{rel}: no row")
                continue
            for path in sorted(folder.iterdir()):
                if path.name.startswith("__") or not (path.suffix == ".py" or path.is_dir()):
                    continue
                if path.is_dir() and f"{rel}/{path.name}" in rows:
                    continue
                if not _named(text, path.stem):
                    missing.append(f"{rel}/{path.name} (row `{_key(rows, rel)}`)")
    return missing


def _key(rows: dict[str, str], rel: str) -> str:
    while rel not in rows and "/" in rel:
        rel = rel.rsplit("/", 1)[0]
    return rel


def test_every_module_is_on_the_map() -> None:
    assert _unnamed((ROOT / "docs/architecture.md").read_text()) == []


def test_a_module_missing_from_the_map_is_found() -> None:
    doc = (ROOT / "docs/architecture.md").read_text()
    assert "`taskrun`" in doc
    missing = _unnamed(doc.replace("`taskrun`", "`task_thing`"))
    assert any(m.startswith("engine/taskrun.py") for m in missing), missing
