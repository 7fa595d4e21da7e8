"""The schema step every command that opens the database runs (``serve`` and each of its
workers, the account commands, ``gc``, ``seawall db upgrade``), under the schema lock of
:func:`registry.meta.db.init_schema`.

A database stamped at :data:`~seawall.migrations.HEAD` — nearly every start — costs one
catalog lookup and one ``SELECT``, without importing Alembic; anything else goes to
:func:`seawall.migrations.runner.upgrade`.
"""

from __future__ import annotations

import logging

import sqlalchemy as sa
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncEngine

from registry.meta.db import init_schema
from seawall.migrations.errors import SchemaError
from seawall.migrations.state import SchemaState, State, Upgrade

__all__ = ["HEAD", "VERSION_TABLE", "schema_step", "upgrade_database", "upgrade_on_start"]

log = logging.getLogger("seawall.migrations")

#: The newest revision in ``versions/`` (a test checks they agree: bump it with a new revision)
HEAD = "0006"
#: Where Alembic keeps a database's revision
VERSION_TABLE = "alembic_version"


def schema_step(conn: Connection) -> Upgrade:
    """The database on ``conn`` at :data:`HEAD` (a :data:`registry.meta.db.SchemaStep`; see
    :mod:`seawall.migrations.runner` for what it does to each kind of database).
    :raises SchemaTooNew: a newer Seawall's database (nothing is changed)."""
    if sa.inspect(conn).has_table(VERSION_TABLE):
        stamped = conn.execute(sa.text(f"SELECT version_num FROM {VERSION_TABLE}")).scalars()
        if list(stamped) == [HEAD]:
            return Upgrade(SchemaState(State.CURRENT, HEAD, HEAD), HEAD)
    from seawall.migrations.runner import upgrade

    return upgrade(conn)


async def upgrade_database(engine: AsyncEngine) -> Upgrade:
    """:func:`schema_step` in the schema transaction, under the schema lock; logged when it
    changed something. :raises SchemaError: (one line) a database this Seawall must not
    change."""
    from schedules.scheduler import create_scheduler_tables

    done: list[Upgrade] = []

    def step(conn: Connection) -> None:
        done.append(schema_step(conn))
        create_scheduler_tables(conn)  # APScheduler's own, under the same lock

    await init_schema(engine, step)
    if done[0].changed:
        log.info("%s", done[0].describe())
    return done[0]


async def upgrade_on_start(engine: AsyncEngine) -> Upgrade:
    """:func:`upgrade_database` for the commands that open the database: a refusal exits with
    its one line (``seawall: …``), no traceback."""
    try:
        return await upgrade_database(engine)
    except SchemaError as e:
        raise SystemExit(f"seawall: {e}") from None
