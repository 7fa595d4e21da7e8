"""Idempotent schema steps for the revisions that describe schemas made *before* versioned
migrations (``0001`` and ``0002``).

A database made by an earlier Seawall was built by ``create_all`` plus a step that added missing
columns, so its tables may hold any subset of what a revision describes. These helpers make
what is missing and touch nothing else: a missing table is created (with its indexes), a
missing column is added (``NOT NULL`` with its literal default, else nullable, as the earlier
step did), a missing index is created. A revision written after migrations existed knows the
schema it starts from and uses plain ``alembic.op`` calls instead.

Each helper also answers "is it all there" (:func:`missing`): the runner stamps an un-versioned
database at the newest such revision whose objects are all present.
"""

from __future__ import annotations

from collections.abc import Iterable

import sqlalchemy as sa
from alembic import op
from sqlalchemy.engine import Connection

__all__ = ["ensure_columns", "ensure_indexes", "ensure_tables", "missing"]


def ensure_tables(tables: Iterable[sa.Table]) -> None:
    """Each table created where missing; where it exists, its missing columns and indexes
    added. Tables are taken in the order given (parents before children)."""
    for table in tables:
        if not sa.inspect(op.get_bind()).has_table(table.name):
            table.create(op.get_bind())
            continue
        ensure_columns(table.name, table.columns)
        ensure_indexes(table.indexes)


def ensure_columns(table_name: str, columns: Iterable[sa.Column[object]]) -> None:
    """Each column added to the existing ``table_name`` unless it is there."""
    present = {c["name"] for c in sa.inspect(op.get_bind()).get_columns(table_name)}
    for column in columns:
        if column.name not in present:
            op.add_column(table_name, _addable(column))


def ensure_indexes(indexes: Iterable[sa.Index]) -> None:
    """Each index created unless one of its name is there."""
    for index in indexes:
        assert index.table is not None and index.name is not None
        columns = [c.name for c in index.columns]
        op.create_index(str(index.name), index.table.name, columns, if_not_exists=True)


def missing(
    conn: Connection,
    tables: Iterable[sa.Table] = (),
    columns: Iterable[sa.Column[object]] = (),
    indexes: Iterable[sa.Index] = (),
) -> list[str]:
    """What of these objects the database lacks, as ``table``, ``table.column`` or
    ``table(index)``; empty when all is there. A table counts with its columns and indexes."""
    inspector = sa.inspect(conn)
    tables = list(tables)
    out: list[str] = []
    known: dict[str, tuple[set[str], set[str]]] = {}

    def names(table: str) -> tuple[set[str], set[str]] | None:
        if table not in known:
            if not inspector.has_table(table):
                return None
            cols = {c["name"] for c in inspector.get_columns(table)}
            idx = {str(i["name"]) for i in inspector.get_indexes(table)}
            known[table] = (cols, idx)
        return known[table]

    for table in tables:
        if names(table.name) is None:
            out.append(table.name)
    all_columns = [c for t in tables for c in t.columns] + list(columns)
    all_indexes = [i for t in tables for i in t.indexes] + list(indexes)
    for column in all_columns:
        found = names(column.table.name)
        if found is not None and column.name not in found[0]:
            out.append(f"{column.table.name}.{column.name}")
    for index in all_indexes:
        assert index.table is not None
        found = names(index.table.name)
        if found is not None and index.name not in found[1]:
            out.append(f"{index.table.name}({index.name})")
    return out


def _addable(column: sa.Column[object]) -> sa.Column[object]:
    """A copy of ``column`` that ``ALTER TABLE … ADD COLUMN`` can add to a table with rows:
    ``NOT NULL`` only with a literal default (made the server default), else nullable."""
    default = getattr(column.default, "arg", None)
    if default is None or callable(default) or column.nullable:
        return sa.Column(column.name, column.type, nullable=True)
    server_default: str | sa.ColumnElement[bool]
    if isinstance(default, bool):
        server_default = sa.true() if default else sa.false()
    else:
        server_default = str(default)
    return sa.Column(column.name, column.type, nullable=False, server_default=server_default)
