"""What the migrations bring a database to: the tables of the model modules listed in
:data:`MODEL_MODULES`, without the objects Seawall does not describe in them.

A module of tables joins the list together with the revision that creates them: tables other
modules register on ``SQLModel.metadata`` (one with no revision yet) are neither made by the
schema step nor compared here, and a test fails on any the server registers.

APScheduler keeps its own tables in the same database (``schedules/scheduler.py``), created and
upgraded by its data store: the migrations neither make nor compare them. The PostgreSQL listing
indexes (``registry.meta.db.POSTGRES_INDEXES``) are raw DDL, not in the models: made by the
migrations, left out of the comparison.
"""

from __future__ import annotations

import functools
import importlib
from collections.abc import Mapping
from typing import Any, Literal

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import MetaData, Table
from sqlalchemy.engine import Connection
from sqlmodel import SQLModel
from sqlmodel.sql.sqltypes import AutoString, UTCDateTime

from registry.meta.db import POSTGRES_INDEXES
from seawall.migrations.step import VERSION_TABLE

__all__ = [
    "APSCHEDULER_TABLES",
    "MODEL_MODULES",
    "context_options",
    "differences",
    "include_name",
    "render_item",
    "target_metadata",
]

#: The modules whose tables the revisions build (foreign keys point into the same module or an
#: earlier one)
MODEL_MODULES = (
    "registry.meta.models",
    "engine.state.models",
    "engine.notify.models",
    "engine.regions.models",
    "engine.proxy_cache.models",
)

#: APScheduler 4's SQLAlchemy data store's tables (it has no prefix of its own)
APSCHEDULER_TABLES = frozenset({"metadata", "tasks", "schedules", "jobs", "job_results"})


@functools.cache
def target_metadata() -> MetaData:
    """The tables of :data:`MODEL_MODULES`' SQLModel classes, copied into a metadata of their
    own (with their indexes and constraints)."""
    metadata = MetaData()
    for name in MODEL_MODULES:
        for obj in vars(importlib.import_module(name)).values():
            if isinstance(obj, type) and issubclass(obj, SQLModel) and obj.__module__ == name:
                table = getattr(obj, "__table__", None)
                if isinstance(table, Table):
                    table.to_metadata(metadata)
    return metadata


def include_name(name: str | None, type_: str, parent_names: Mapping[str, Any]) -> bool:
    """Alembic's filter of reflected names: APScheduler's tables and our raw PostgreSQL indexes
    are not the models' business."""
    if type_ == "table":
        return name not in APSCHEDULER_TABLES and name != VERSION_TABLE
    if type_ == "index":
        return name not in POSTGRES_INDEXES
    return True


def render_item(type_: str, obj: Any, autogen_context: Any) -> str | Literal[False]:
    """New revisions name plain SQLAlchemy types, not SQLModel's: ``AutoString`` is a
    ``String``, ``UTCDateTime`` a ``DateTime(timezone=True)`` (the DDL they make)."""
    if type_ == "type" and isinstance(obj, UTCDateTime):
        return "sa.DateTime(timezone=True)"
    if type_ == "type" and isinstance(obj, AutoString):
        return f"sa.String({obj.length})" if obj.length else "sa.String()"
    return False


def context_options(conn: Connection) -> dict[str, Any]:
    """How every migration context is configured (runs, stamps, comparisons, new revisions):
    SQLite changes tables in batch mode (copy and move), as it cannot alter a column."""
    return {
        "target_metadata": target_metadata(),
        "include_name": include_name,
        "compare_type": True,
        "render_as_batch": conn.dialect.name == "sqlite",
        "render_item": render_item,
        "version_table": VERSION_TABLE,
    }


def differences(conn: Connection) -> list[Any]:
    """Alembic's diff between the database and the models (empty: they agree)."""
    context = MigrationContext.configure(conn, opts=context_options(conn))
    return list(compare_metadata(context, target_metadata()))
