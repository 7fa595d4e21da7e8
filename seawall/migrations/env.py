"""Alembic's environment for Seawall's schema revisions.

Seawall runs the revisions itself (:mod:`seawall.migrations.runner`) and hands its connection
over in ``config.attributes["connection"]``, inside its schema transaction. Run by the
``alembic`` command instead (a developer's tool: ``python -m seawall.migrations`` makes a new
revision), it connects to ``-x url=…`` or ``$SEAWALL_DATABASE_URL`` through Seawall's own async
engine (aiosqlite or asyncpg) and runs on it with ``run_sync``. Offline (SQL script) mode is not
supported: the first revisions look at the database to make only what is missing.
"""

from __future__ import annotations

import asyncio
import os

from alembic import context
from sqlalchemy.engine import Connection

from registry.meta.db import create_engine
from seawall.migrations import schema


def run_on(connection: Connection) -> None:
    context.configure(connection=connection, **schema.context_options(connection))
    with context.begin_transaction():
        context.run_migrations()


async def run_on_url(url: str) -> None:
    engine = create_engine(url)
    try:
        async with engine.connect() as conn:
            await conn.run_sync(run_on)
            await conn.commit()
    finally:
        await engine.dispose()


def main() -> None:
    if context.is_offline_mode():
        raise SystemExit("seawall migrations: offline (--sql) mode is not supported")
    connection = context.config.attributes.get("connection")
    if connection is not None:
        run_on(connection)
        return
    url = context.get_x_argument(as_dictionary=True).get("url") or os.environ.get(
        "SEAWALL_DATABASE_URL"
    )
    if not url:
        raise SystemExit("seawall migrations: pass -x url=DATABASE_URL or set SEAWALL_DATABASE_URL")
    asyncio.run(run_on_url(url))


main()
