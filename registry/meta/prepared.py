"""Prepared statements: SQLAlchemy Core statements built once, run on SQLite without
SQLAlchemy's per-call machinery.

A statement passed through :func:`prepared` is a module constant whose values come in as bound
parameters. On the async engine (PostgreSQL, or SQLite outside the quick path) it runs as any
other statement. On the inline SQLite connection (:mod:`registry.meta.inline`) it is compiled
once per set of parameter names into SQL text, its binds' order and its types' converters,
and then runs straight on the ``sqlite3`` connection. Measured here for a one-row ``SELECT`` of
an execution by id: ~210 µs built and run through SQLAlchemy per call, ~110 µs prebuilt
through SQLAlchemy, ~12 µs prepared — at 25 pushes/s fanned out to two Seawalls the engine
runs ~40 such statements per push on the registry's event loop.

A statement this path cannot run as SQLAlchemy would — an ``IN`` list expanded at execution,
a literal rendered at execution, a Python-side column default — is left to SQLAlchemy (decided
once, when it is first compiled). Errors are raised as SQLAlchemy's (``IntegrityError``, …).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from sqlalchemy import exc, or_
from sqlalchemy.engine import Dialect
from sqlalchemy.sql import Executable
from sqlalchemy.sql.compiler import SQLCompiler

__all__ = ["PreparedResult", "one_of", "prepared", "run_prepared"]

S = TypeVar("S", bound=Executable)

#: prepared statements by id (held here, so an id is never reused by another object)
_PREPARED: dict[int, Executable] = {}
#: (statement id, parameter names) → its plan, or None: left to SQLAlchemy
_PLANS: dict[tuple[int, tuple[str, ...]], _Plan | None] = {}

Converter = Callable[[Any], Any] | None


def prepared(statement: S) -> S:
    """Mark ``statement`` (built once, reused with bound parameters) for the inline SQLite
    path; returns it, to be used as any statement. For module constants only: each statement
    marked is kept for the life of the process, so one built per call must not be."""
    _PREPARED[id(statement)] = statement
    return statement


@dataclass(frozen=True, slots=True)
class _Plan:
    sql: str
    binds: tuple[str, ...]  # bound parameter names in positional order
    compiled: SQLCompiler
    defaults: tuple[tuple[str, Any], ...]  # bind name → a column's constant default
    converters: tuple[tuple[str, Callable[[Any], Any]], ...]  # bind name → DB value
    keys: tuple[str, ...]  # result columns
    results: tuple[Converter, ...]  # DB value → Python, per result column
    is_insert: bool

    def values(self, parameters: Mapping[str, Any]) -> list[Any]:
        bound = self.compiled.construct_params(parameters, _check=False)
        bound.update(self.defaults)
        for name, convert in self.converters:
            if bound[name] is not None:
                bound[name] = convert(bound[name])
        return [bound[name] for name in self.binds]


def _plan(statement: Executable, names: tuple[str, ...], dialect: Dialect) -> _Plan | None:
    compiled = statement.compile(dialect=dialect, column_keys=list(names))
    if not isinstance(compiled, SQLCompiler) or not compiled.positional:
        return None
    if compiled.post_compile_params or compiled.literal_execute_params:
        return None  # expanded at execution: SQLAlchemy's to do
    defaults = []
    for column in (*compiled.insert_prefetch, *compiled.update_prefetch):
        default = column.default if column in compiled.insert_prefetch else column.onupdate
        if default is None or not default.is_scalar:
            return None  # computed at execution (a callable, a sequence): SQLAlchemy's
        defaults.append((compiled._within_exec_param_key_getter(column), default.arg))
    if compiled.positiontup is None:
        return None
    processors = compiled._bind_processors
    converters = tuple(
        (name, fn) for name in dict.fromkeys(compiled.positiontup) if (fn := processors.get(name))
    )
    columns = compiled._result_columns
    return _Plan(
        sql=compiled.string,
        binds=tuple(compiled.positiontup),
        compiled=compiled,
        defaults=tuple(defaults),
        converters=converters,
        keys=tuple(c.keyname for c in columns),
        results=tuple(c.type._cached_result_processor(dialect, None) for c in columns),
        is_insert=bool(compiled.isinsert),
    )


def run_prepared(
    raw: sqlite3.Connection,
    dialect: Dialect,
    statement: Executable,
    parameters: Mapping[str, Any] | Sequence[Mapping[str, Any]] | None,
) -> PreparedResult | None:
    """Run ``statement`` on ``raw`` if it is prepared and this path can; None: it is not (run
    it through SQLAlchemy)."""
    if _PREPARED.get(id(statement)) is not statement:
        return None
    rows: Sequence[Mapping[str, Any]] = (
        parameters if isinstance(parameters, Sequence) else [parameters or {}]
    )
    many = isinstance(parameters, Sequence)
    first = rows[0] if rows else {}
    names = tuple(sorted(first))
    if many and any(len(p) != len(names) or set(p) != set(names) for p in rows):
        return None  # rows of different columns: SQLAlchemy says what is wrong
    key = (id(statement), names)
    if key not in _PLANS:
        _PLANS[key] = _plan(statement, names, dialect)
    plan = _PLANS[key]
    if plan is None:
        return None
    try:
        if many:
            cursor = raw.executemany(plan.sql, [plan.values(p) for p in rows])
        else:
            cursor = raw.execute(plan.sql, plan.values(first))
        fetched = cursor.fetchall() if plan.keys else []
    except sqlite3.Error as e:
        raise exc.DBAPIError.instance(plan.sql, None, e, sqlite3.Error) from e
    if any(plan.results):
        fetched = [
            tuple(
                v if f is None or v is None else f(v)
                for f, v in zip(plan.results, row, strict=True)
            )
            for row in fetched
        ]
    lastrowid = cursor.lastrowid if plan.is_insert and not many else None
    return PreparedResult(plan.keys, fetched, cursor.rowcount, lastrowid)


class PreparedResult:
    """What the engine reads of a ``CursorResult``: rows as tuples, or as mappings by column
    name; the scalar of the first row; ``rowcount``; an insert's ``inserted_primary_key``."""

    def __init__(
        self,
        keys: tuple[str, ...],
        rows: list[tuple[Any, ...]],
        rowcount: int,
        lastrowid: int | None,
    ) -> None:
        self._keys, self._rows, self.rowcount, self._lastrowid = keys, rows, rowcount, lastrowid

    @property
    def inserted_primary_key(self) -> tuple[Any, ...]:
        if self._lastrowid is None:
            raise exc.InvalidRequestError("not a single-row insert")
        return (self._lastrowid,)

    def __iter__(self) -> Iterator[tuple[Any, ...]]:
        return iter(self._rows)

    def all(self) -> list[tuple[Any, ...]]:
        return list(self._rows)

    fetchall = all

    def first(self) -> tuple[Any, ...] | None:
        return self._rows[0] if self._rows else None

    fetchone = first

    def one(self) -> tuple[Any, ...]:
        if len(self._rows) != 1:
            raise exc.NoResultFound() if not self._rows else exc.MultipleResultsFound()
        return self._rows[0]

    def scalar(self) -> Any:
        return self._rows[0][0] if self._rows else None

    def scalar_one(self) -> Any:
        return self.one()[0]

    def scalars(self) -> _Rows:
        return _Rows([r[0] for r in self._rows])

    def mappings(self) -> _Rows:
        return _Rows([dict(zip(self._keys, r, strict=True)) for r in self._rows])


class _Rows:
    """A result's rows as mappings, or its first column's values."""

    def __init__(self, rows: list[Any]) -> None:
        self._rows = rows

    def __iter__(self) -> Iterator[Any]:
        return iter(self._rows)

    def all(self) -> list[Any]:
        return list(self._rows)

    def first(self) -> Any:
        return self._rows[0] if self._rows else None

    def one(self) -> Any:
        if len(self._rows) != 1:
            raise exc.NoResultFound() if not self._rows else exc.MultipleResultsFound()
        return self._rows[0]


def one_of(column: Any, values: Sequence[Any]) -> Any:
    """``column IN values`` for a few constants, written as ``OR``s: SQLAlchemy expands an
    ``IN`` list at every execution, which a prepared statement cannot have."""
    return or_(*(column == v for v in values))
