"""What the engine's store tests share: a fresh database of each kind with the schema and three
policies (ids 1–3) for runs to belong to."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from sqlalchemy import insert

import engine.state.models  # noqa: F401 - registers the tables
from engine.state.models import Policy
from registry.meta.db import Database, create_engine, init_schema


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
async def db(database_url: str) -> AsyncIterator[Database]:
    database = Database(create_engine(database_url))
    await init_schema(database.engine)
    async with database.write() as c:
        await c.execute(insert(Policy.__table__), [{"id": i, "name": f"p{i}"} for i in (1, 2, 3)])  # type: ignore[attr-defined]
    yield database
    await database.dispose()
