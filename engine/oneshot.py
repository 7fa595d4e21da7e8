"""One-shot sync between two registries, without a server: ``seawall sync SRC DST``.

It runs the very same planner, runner and copier as a policy in ``seawall serve``, on a small
state database of its own (``--state-dir``), which keeps the ledger of what it replicated: a
later run with ``--deletion`` deletes only what an earlier run put there.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from sqlalchemy import insert, select, update

import engine.state.models  # noqa: F401 - registers the tables
from adapters.oci.client import OciClient
from engine.runner import Runner
from engine.state.models import Policy, RegistryEndpoint
from engine.state.runs import RunStore
from registry.meta.db import Database, create_engine, init_schema

__all__ = ["SyncResult", "SyncSide", "sync_once"]

P = Policy.__table__  # type: ignore[attr-defined]
E = RegistryEndpoint.__table__  # type: ignore[attr-defined]


@dataclass(frozen=True)
class SyncSide:
    """``http[s]://host[:port]/optional/prefix`` plus credentials."""

    url: str
    username: str | None = None
    password: str | None = None
    insecure: bool = False

    @property
    def base(self) -> str:
        parts = urlsplit(self.url)
        return f"{parts.scheme}://{parts.netloc}"

    @property
    def prefix(self) -> str:
        return urlsplit(self.url).path.strip("/")

    def client(self) -> OciClient:
        return OciClient(
            self.base, username=self.username, password=self.password, insecure=self.insecure
        )


@dataclass(frozen=True)
class SyncResult:
    status: str
    status_text: str
    counts: dict[str, int]
    bytes_copied: int
    seconds: float
    tasks: list[dict[str, object]]


async def sync_once(
    src: SyncSide,
    dst: SyncSide,
    state_dir: Path,
    *,
    dry_run: bool = False,
    deletion: bool = False,
    override: bool = True,
    filters: list[dict[str, object]] | None = None,
    artifact_concurrency: int = 8,
    blob_concurrency: int = 8,
    verify: bool = False,
) -> SyncResult:
    """Run once; ``state_dir`` (an existing folder) keeps the state database. ``verify`` checks
    every destination tag instead of trusting what earlier runs recorded."""
    started = time.perf_counter()
    db = Database(create_engine(f"sqlite+aiosqlite:///{state_dir / 'sync.db'}"))
    try:
        await init_schema(db.engine)
        policy_id = await _policy(db, src, dst, deletion, override, filters or [])
        store = RunStore(db, "oneshot")
        eid = await store.create_execution(policy_id, "manual", dry_run)
        claimed = await store.claim_execution()
        if claimed != eid:
            raise RuntimeError(f"the state in {state_dir} has another run in progress")

        async def clients(registry_id: int | None) -> OciClient:
            return src.client() if registry_id == 1 else dst.client()

        runner = Runner(
            store,
            clients,
            artifact_concurrency=artifact_concurrency,
            blob_concurrency=blob_concurrency,
            verify=verify,
        )
        status = await runner.run(eid)
        execution = await store.execution(eid) or {}
        tasks = await store.tasks(eid)
    finally:
        await db.dispose()
    counts: dict[str, int] = {}
    for t in tasks:
        key = str(t.get("outcome") or t.get("status"))
        counts[key] = counts.get(key, 0) + 1
    return SyncResult(
        status,
        str(execution.get("status_text") or ""),
        counts,
        int(execution.get("bytes_copied") or 0),
        time.perf_counter() - started,
        tasks,
    )


async def _policy(
    db: Database,
    src: SyncSide,
    dst: SyncSide,
    deletion: bool,
    override: bool,
    filters: list[dict[str, object]],
) -> int:
    """Endpoint rows 1 (source) and 2 (destination) and the one policy of this state dir."""
    prefix = src.prefix
    name_filters: list[dict[str, object]] = (
        [{"type": "name", "value": f"{prefix}/**"}] if prefix else []
    )
    values = {
        "name": "sync",
        "src_registry_id": 1,
        "dest_registry_id": 2,
        "dest_namespace": dst.prefix,
        "dest_namespace_replace_count": len(prefix.split("/")) if prefix else 0,
        "filters_json": json.dumps(name_filters + filters),
        "deletion": deletion,
        "override": override,
        "trigger_type": "manual",
    }
    async with db.write() as c:
        for rid, side in ((1, src), (2, dst)):
            row = {"url": side.base, "insecure": side.insecure}
            if (await c.execute(update(E).where(E.c.id == rid).values(**row))).rowcount == 0:
                await c.execute(
                    insert(E).values(id=rid, name=f"side-{rid}", type="docker-registry", **row)
                )
        existing = (await c.execute(select(P.c.id).where(P.c.name == "sync"))).scalar()
        if existing is None:
            res = await c.execute(insert(P).values(**values))
            return int(res.inserted_primary_key[0])  # type: ignore[index]
        await c.execute(update(P).where(P.c.id == existing).values(**values))
        return int(existing)
