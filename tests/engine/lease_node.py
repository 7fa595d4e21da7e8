"""One replication node for ``test_multinode_leases``: the real replication service (claims,
runner, heartbeats, notifier, outbox consumer, schedules) on a shared database, with this
node's clock set ``--skew-seconds`` away from the true time — the way a node whose NTP broke
sees time. Endpoints are read from the database (no credentials: test registries).

    python -m tests.engine.lease_node DATABASE_URL --skew-seconds S --lease-seconds L \
        --max-parallel-runs N

Prints its node id (the ``lease_owner`` it writes) as the first line of stdout once started,
then runs until it is killed.
"""

from __future__ import annotations

import argparse
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime, timedelta

import anyio
from sqlalchemy import select

import engine.notify.models  # noqa: F401 - registers the tables
from adapters import registry as adapters
from adapters.base import EndpointConfig, RegistryAdapter
from engine.state.models import RegistryEndpoint
from registry.meta.db import Database, create_engine
from registry.meta.models import utcnow
from seawall.service import ReplicationService

E = RegistryEndpoint.__table__  # type: ignore[attr-defined]


class Endpoints:
    """The engine's adapter factory: a fresh adapter per use, for the endpoint row's URL."""

    def __init__(self, db: Database) -> None:
        self.db = db

    @asynccontextmanager
    async def __call__(self, registry_id: int | None) -> AsyncIterator[RegistryAdapter]:
        async with self.db.read() as c:
            kind, url = (
                await c.execute(select(E.c.type, E.c.url).where(E.c.id == registry_id))
            ).one()
        adapter = adapters.create(kind, EndpointConfig(url, insecure=True))
        try:
            yield adapter
        finally:
            with anyio.CancelScope(shield=True):
                await adapter.close()


async def serve(url: str, skew: timedelta, lease_seconds: float, max_parallel_runs: int) -> None:
    def clock() -> datetime:
        return utcnow() + skew

    db = Database(create_engine(url))
    service = ReplicationService(
        db,
        Endpoints(db),
        max_parallel_runs=max_parallel_runs,
        poll_seconds=0.2,
        lease_seconds=lease_seconds,
        reconcile_seconds=0,
        clock=clock,
    )
    async with anyio.create_task_group() as tg:
        await service.start(tg)
        print(service.store.node_id, flush=True)  # started: the test may start the next node


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("database_url")
    parser.add_argument("--skew-seconds", type=float, default=0.0)
    parser.add_argument("--lease-seconds", type=float, default=3.0)
    parser.add_argument("--max-parallel-runs", type=int, default=4)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)
    skew = timedelta(seconds=args.skew_seconds)
    anyio.run(serve, args.database_url, skew, args.lease_seconds, args.max_parallel_runs)


if __name__ == "__main__":
    main()
