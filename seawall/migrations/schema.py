"""What the migrations bring a database to: the tables of every package's models (the registry's,
the engine's, its notifier's), without the objects Seawall does not describe in them.

APScheduler keeps its own tables in the same database (``schedules/scheduler.py``), created and
upgraded by its data store: the migrations neither make nor compare them. The PostgreSQL listing
indexes (``registry.meta.db.POSTGRES_INDEXES``) are raw DDL, not in the models: made by the
migrations, left out of the comparison.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import MetaData
from sqlalchemy.engine import Connection
from sqlmodel import SQLModel

# the models of every package, registered on SQLModel.metadata by being imported
from engine.notify import models as _notify_models  # noqa: F401
from engine.state import models as _state_models  # noqa: F401
from registry.meta import models as _registry_models  # noqa: F401
from registry.meta.db import POSTGRES_INDEXES
from seawall.migrations.step import VERSION_TABLE

__all__ = [
    "APSCHEDULER_TABLES",
    "context_options",
    "differences",
    "include_name",
    "target_metadata",
]

#: APScheduler 4's SQLAlchemy data store's tables (it has no prefix of its own)
APSCHEDULER_TABLES = frozenset({"metadata", "tasks", "schedules", "jobs", "job_results"})


def target_metadata() -> MetaData:
    """Every table Seawall's models declare (registered by the imports above)."""
    return SQLModel.metadata


def include_name(name: str | None, type_: str, parent_names: Mapping[str, Any]) -> bool:
    """Alembic's filter of reflected names: APScheduler's tables and our raw PostgreSQL indexes
    are not the models' business."""
    if type_ == "table":
        return name not in APSCHEDULER_TABLES and name != VERSION_TABLE
    if type_ == "index":
        return name not in POSTGRES_INDEXES
    return True


def context_options(conn: Connection) -> dict[str, Any]:
    """How every migration context is configured (runs, stamps, comparisons, new revisions):
    SQLite changes tables in batch mode (copy and move), as it cannot alter a column."""
    return {
        "target_metadata": target_metadata(),
        "include_name": include_name,
        "compare_type": True,
        "render_as_batch": conn.dialect.name == "sqlite",
        "version_table": VERSION_TABLE,
    }


def differences(conn: Connection) -> list[Any]:
    """Alembic's diff between the database and the models (empty: they agree)."""
    context = MigrationContext.configure(conn, opts=context_options(conn))
    return list(compare_metadata(context, target_metadata()))
