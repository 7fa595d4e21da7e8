"""An exception nothing expected, raised inside one task (issue 11), fails that task with its
class and message (bounded), never the run: the run's other artifacts are copied and the run
ends Failed (Harbor's roll-up). The same per-task code (``engine.taskrun``) serves both the
service's runner — here in-process, over a real run store on SQLite — and ``seawall sync``;
both are run against real registries (CNCF distribution as source and destination).

The exception is injected where no real registry can raise one any more (the copier itself):
what a bug, or input nothing validated, would raise.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest
from sqlalchemy import insert, select

import engine.state.models  # noqa: F401 - registers the tables
from adapters.base import EndpointConfig, RegistryAdapter
from adapters.generic import DockerRegistryAdapter
from adapters.oci.errors import RateLimited
from engine.copier import Copier
from engine.oneshot import SyncSide, sync_once
from engine.runner import Runner
from engine.state.models import Policy, RegistryEndpoint, Task
from engine.state.runs import RunStore
from engine.taskrun import MAX_REASON_CHARS
from registry.meta.db import Database, create_engine, init_schema
from tests.support.client import client, push_image
from tests.support.distribution import DistributionProcess

P = Policy.__table__  # type: ignore[attr-defined]
E = RegistryEndpoint.__table__  # type: ignore[attr-defined]
T = Task.__table__  # type: ignore[attr-defined]
TAGS = ("1", "2", "3")
VICTIM = "2"  # the tag whose copy raises


@pytest.fixture
def registry(tmp_path: Path) -> Iterator[tuple[DistributionProcess, dict[str, str]]]:
    """A distribution with ``team/app:1..3``; the pushed digests by tag."""
    with DistributionProcess(tmp_path / "dist") as dist, client(dist.url, None) as c:
        yield dist, {tag: push_image(c, "team/app", tag, seed=tag)[0] for tag in TAGS}


@pytest.fixture
def broken_copy(
    registry: tuple[DistributionProcess, dict[str, str]], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The copy of :data:`VICTIM` raises a ``KeyError`` with a long message."""
    copy = Copier.copy
    victim = registry[1][VICTIM]

    async def copy_or_raise(self: Copier, *args: Any) -> Any:
        if args[2] == victim:
            raise KeyError("x" * 5000)
        return await copy(self, *args)

    monkeypatch.setattr(Copier, "copy", copy_or_raise)


def _check(tasks: list[dict[str, Any]], dist: DistributionProcess, pushed: dict[str, str]) -> None:
    by_digest = {t["digest"]: t for t in tasks}
    failed = by_digest[pushed[VICTIM]]
    assert failed["status"] == "Failed" and failed["outcome"] == "failed", failed
    assert failed["reason"].startswith("unexpected error: KeyError: 'xxx"), failed["reason"]
    assert len(failed["reason"]) <= MAX_REASON_CHARS
    assert failed["reason"] in failed["log"]  # the task's log says it too
    with httpx.Client(base_url=dist.url) as d:
        for tag, digest in pushed.items():
            accept = {"Accept": "application/vnd.oci.image.manifest.v1+json"}
            r = d.head(f"/v2/mirror/app/manifests/{tag}", headers=accept)
            if tag == VICTIM:
                assert r.status_code == 404
                continue
            assert by_digest[digest]["status"] == "Succeed", by_digest[digest]
            assert by_digest[digest]["outcome"] == "copied"
            assert r.headers["Docker-Content-Digest"] == digest


@pytest.mark.usefixtures("broken_copy")
def test_seawall_sync(registry: tuple[DistributionProcess, dict[str, str]], tmp_path: Path) -> None:
    dist, pushed = registry
    state = tmp_path / "state"
    state.mkdir()
    src, dst = SyncSide(f"{dist.url}/team"), SyncSide(f"{dist.url}/mirror")
    result = anyio.run(lambda: sync_once(src, dst, state))
    assert result.status == "Failed"
    assert result.counts == {"copied": 2, "failed": 1}, result.counts
    _check(result.tasks, dist, pushed)


class Heard:
    """A run observer that keeps the tasks it heard of."""

    def __init__(self) -> None:
        self.tasks: list[dict[str, Any]] = []

    async def run_started(self, execution: dict[str, Any], policy: dict[str, Any]) -> None:
        pass

    async def task_finished(
        self, execution: dict[str, Any], policy: dict[str, Any], task: dict[str, Any]
    ) -> None:
        self.tasks.append(task)

    async def run_finished(
        self, execution: dict[str, Any], policy: dict[str, Any], status: str
    ) -> None:
        pass


@pytest.mark.usefixtures("broken_copy")
def test_runner(registry: tuple[DistributionProcess, dict[str, str]], tmp_path: Path) -> None:
    dist, pushed = registry
    heard = Heard()

    @asynccontextmanager
    async def adapters(registry_id: int | None) -> AsyncIterator[RegistryAdapter]:
        adapter = DockerRegistryAdapter(EndpointConfig(dist.url, insecure=True))
        try:
            yield adapter
        finally:
            await adapter.close()

    async def main() -> tuple[str, list[dict[str, Any]]]:
        engine = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'runs.db'}")
        await init_schema(engine)
        db = Database(engine)
        try:
            async with db.write() as c:
                await c.execute(
                    insert(E).values(id=1, name="d", type="docker-registry", url=dist.url)
                )
                await c.execute(
                    insert(P).values(
                        id=1,
                        name="mirror",
                        src_registry_id=1,
                        dest_registry_id=1,
                        filters_json='[{"type": "name", "value": "team/**"}]',
                        dest_namespace="mirror",
                        dest_namespace_replace_count=1,
                    )
                )
            store = RunStore(db, "node-a")
            eid = await store.create_execution(1, "manual")
            assert await store.claim_execution() == eid
            with anyio.fail_after(60):  # the old runner crashed (or hung) here
                status = await Runner(store, adapters, observers=[heard]).run(eid)
            async with db.read() as c:
                rows = (await c.execute(select(T).where(T.c.execution_id == eid))).mappings()
                return status, [dict(r) for r in rows]
        finally:
            await db.dispose()

    status, tasks = anyio.run(main)
    assert status == "Failed"
    _check(tasks, dist, pushed)
    # observers (outgoing webhooks) hear of the failed task with its reason, and of the others
    assert sorted((t["digest"], t["status"]) for t in heard.tasks) == sorted(
        (digest, "Failed" if tag == VICTIM else "Succeed") for tag, digest in pushed.items()
    )


def test_a_wait_of_hours_fails_the_task_at_once(
    registry: tuple[DistributionProcess, dict[str, str]],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A registry that says "retry in an hour" (Docker Hub's spent pull budget) fails the task
    on its first attempt: no retries seconds apart that cannot succeed."""
    dist, pushed = registry
    copy, victim = Copier.copy, pushed[VICTIM]

    async def copy_or_limited(self: Copier, *args: Any) -> Any:
        if args[2] == victim:
            raise RateLimited("pull budget spent", status=429, retry_after_seconds=3600.0)
        return await copy(self, *args)

    monkeypatch.setattr(Copier, "copy", copy_or_limited)
    state = tmp_path / "state"
    state.mkdir()
    src, dst = SyncSide(f"{dist.url}/team"), SyncSide(f"{dist.url}/mirror")
    result = anyio.run(lambda: sync_once(src, dst, state))
    assert result.counts == {"copied": 2, "failed": 1}, result.counts
    failed = next(t for t in result.tasks if t["digest"] == victim)
    assert "pull budget spent" in failed["reason"], failed
    assert failed["log"].count("error:") == 1, failed["log"]  # one attempt
