"""Replication state written straight into a real database (SQLite or PostgreSQL), as the
registry, the outbox consumer and the runner would leave it: the lag and the metrics are
computed from these rows, at a clock the test chooses."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import insert
from sqlalchemy.ext.asyncio import AsyncEngine

import engine.state.models  # noqa: F401 - the replication tables
from engine.scope import Scope
from engine.state.models import Execution, OutboxCursor, Policy, RegistryEndpoint, Task
from registry.meta.db import Database, create_engine, init_schema
from registry.meta.models import Event

__all__ = ["T0", "TK", "State", "X", "at", "digest", "open_state", "scope"]

E = Event.__table__  # type: ignore[attr-defined]
P = Policy.__table__  # type: ignore[attr-defined]
X = Execution.__table__  # type: ignore[attr-defined]
TK = Task.__table__  # type: ignore[attr-defined]
C = OutboxCursor.__table__  # type: ignore[attr-defined]
EP = RegistryEndpoint.__table__  # type: ignore[attr-defined]

#: The tests' epoch: every time is T0 plus seconds.
T0 = datetime(2026, 3, 1, 12, 0, 0, tzinfo=UTC)


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def digest(name: str) -> str:
    return "sha256:" + (name.encode().hex() + "0" * 64)[:64]


def scope(*changes: tuple[str, str | None, str | None], whole: Sequence[str] = ()) -> str:
    """A run's scope JSON: (repository, digest, tag) per change, and whole repositories."""
    s = Scope()
    for repo, d, tag in changes:
        s.add(repo, d, tag)
    for repo in whole:
        s.add(repo, whole=True)
    return s.to_json()


@dataclass
class State:
    engine: AsyncEngine
    db: Database

    async def _insert(self, table: Any, **values: Any) -> int:
        async with self.db.write() as c:
            res = await c.execute(insert(table).values(**values))
            key = res.inserted_primary_key
            return int(key[0]) if key and key[0] is not None else 0

    async def endpoint(self, name: str) -> int:
        return await self._insert(EP, name=name, type="docker-registry", url=f"http://{name}")

    async def policy(
        self,
        name: str,
        *,
        dest: int | None = None,
        src: int | None = None,
        trigger: str = "event_based",
        filters: list[dict[str, str]] | None = None,
        deletion: bool = False,
        enabled: bool = True,
        created: float = -3600.0,
    ) -> int:
        return await self._insert(
            P,
            name=name,
            src_registry_id=src,
            dest_registry_id=dest,
            trigger_type=trigger,
            filters_json=json.dumps(filters or []),
            deletion=deletion,
            enabled=enabled,
            creation_time=at(created),
            update_time=at(created),
        )

    async def event(
        self, when: float, action: str, repo: str, d: str | None = None, tag: str | None = None
    ) -> int:
        return await self._insert(
            E, created_at=at(when), action=action, repository=repo, digest=d, tag=tag
        )

    async def events(self, rows: Sequence[tuple[float, str, str, str | None, str | None]]) -> None:
        """Many events in one statement: (when, action, repository, digest, tag) each."""
        async with self.db.write() as c:
            await c.execute(
                insert(E),
                [
                    {"created_at": at(w), "action": a, "repository": r, "digest": d, "tag": t}
                    for w, a, r, d, t in rows
                ],
            )

    async def cursor(self, position: int) -> None:
        async with self.db.write() as c:
            await c.execute(C.delete())
            await c.execute(insert(C).values(name="replication", position=position, updated_at=T0))

    async def run(
        self,
        policy_id: int,
        status: str,
        start: float,
        end: float | None,
        scope_json: str = "",
        *,
        dry_run: bool = False,
        trigger: str = "event_based",
        bytes_copied: int = 0,
    ) -> int:
        return await self._insert(
            X,
            policy_id=policy_id,
            status=status,
            trigger=trigger,
            dry_run=dry_run,
            scope_json=scope_json,
            start_time=at(start),
            end_time=None if end is None else at(end),
            bytes_copied=bytes_copied,
        )

    async def task(
        self,
        execution_id: int,
        repo: str,
        d: str,
        tags: Sequence[str],
        *,
        status: str = "Succeed",
        outcome: str = "copied",
        operation: str = "copy",
        bytes_copied: int = 0,
        end: float | None = 0.0,
    ) -> int:
        return await self._insert(
            TK,
            execution_id=execution_id,
            status=status,
            operation=operation,
            src_repository=repo,
            dst_repository=repo,
            digest=d,
            tags_json=json.dumps(list(tags)),
            outcome=outcome,
            bytes_copied=bytes_copied,
            end_time=None if end is None else at(end),
        )

    async def close(self) -> None:
        await self.engine.dispose()


async def open_state(url: str) -> State:
    engine = create_engine(url)
    await init_schema(engine)
    return State(engine, Database(engine))
