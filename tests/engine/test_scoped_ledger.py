"""An event run reads the ledger of what its scope names, not of everything its policy
replicated (on SQLite and PostgreSQL): the repositories the scope lists whole, the tags it
names in the others, and the size of the whole ledger for the deletion guard — also when the
scope names more tags than one query takes."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import insert

import engine.state.models  # noqa: F401 - registers the tables
from engine.plan import PolicySpec
from engine.planning import scope_ledger_keys
from engine.scope import Scope
from engine.state.models import Replicated
from engine.state.runs import LEDGER_KEYS_PER_QUERY, RunStore
from registry.meta.db import Database

pytestmark = pytest.mark.anyio
L = Replicated.__table__  # type: ignore[attr-defined]
MANY = LEDGER_KEYS_PER_QUERY * 2 + 7  # tags of repository "big": three queries' worth


@pytest.fixture
async def db(db: Database) -> Database:
    """The engine tests' database (tests/engine/conftest.py) with ledgers for policies 1 and 2."""
    rows = [
        *({"dst_repository": "m/a", "tag": f"a{i}"} for i in range(3)),
        *({"dst_repository": "m/b", "tag": f"b{i}"} for i in range(3)),
        *({"dst_repository": "m/big", "tag": f"t{i}"} for i in range(MANY)),
    ]
    async with db.write() as c:
        await c.execute(insert(L), [{"policy_id": 1, "digest": "sha256:1", **r} for r in rows])
        await c.execute(
            insert(L), {"policy_id": 2, "dst_repository": "m/a", "tag": "x", "digest": "d"}
        )
    return db


async def test_a_scope_reads_its_repositories_and_tags_and_the_whole_size(db: Database) -> None:
    store = RunStore(db, "n", timedelta(seconds=30))
    ledger, size = await store.scoped_ledger(1, {"m/a"}, {"m/b": {"b1", "nope"}, "m/a": {"a0"}})
    assert ledger == {
        "m/a": {"a0": "sha256:1", "a1": "sha256:1", "a2": "sha256:1"},
        "m/b": {"b1": "sha256:1"},
    }
    assert size == 6 + MANY
    assert await store.scoped_ledger(1, set(), {}) == ({}, 6 + MANY)
    assert await store.scoped_ledger(2, {"m/a"}, {}) == ({"m/a": {"x": "d"}}, 1)
    assert await store.scoped_ledger(2, {"m/a"}, {}, count=False) == ({"m/a": {"x": "d"}}, None)


async def test_more_tags_than_one_query_takes(db: Database) -> None:
    store = RunStore(db, "n", timedelta(seconds=30))
    named = {f"t{i}" for i in range(MANY)} | {"gone"}
    ledger, _ = await store.scoped_ledger(1, set(), {"m/big": named, "m/b": {"b2"}})
    assert ledger["m/big"] == {f"t{i}": "sha256:1" for i in range(MANY)}
    assert ledger["m/b"] == {"b2": "sha256:1"}
    whole, _ = await store.scoped_ledger(1, {"m/big"}, {})
    assert len(whole["m/big"]) == MANY


def test_the_keys_are_the_destinations_names() -> None:
    spec = PolicySpec(policy_id=1, dest_namespace="m", dest_namespace_replace_count=1)
    scope = Scope(
        digests={"x/c": {"sha256:2"}},
        tags={"x/a": {"1"}, "x/b": {"2", "3"}},
        whole={"x/a"},
    )
    assert scope_ledger_keys(spec, scope) == ({"m/a"}, {"m/b": {"2", "3"}})
