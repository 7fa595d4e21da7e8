"""The management API in-process, for tests: a temporary SQLite database, two accounts, fakes for
the seams the application wires (wake, ping), and a *sync* httpx transport into the ASGI app.

The app and its database live on one event loop, run by an anyio blocking portal in a thread;
:class:`PortalTransport` carries each request there, so sync clients (the CLI's ``httpx.Client``
among them) and async ones (``harborapi``, via :meth:`InProcessApi.call`) share one server.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar, cast

import httpx
from anyio.from_thread import BlockingPortal
from sqlalchemy import insert, update

import engine.state.models  # noqa: F401 - registers the replication tables
from engine.api import ApiContext, EndpointSpec, create_api
from engine.state.models import Execution, Policy, Task
from engine.state.runs import RunStore
from engine.state.secrets import SecretBox
from registry.auth.passwords import VerifiedCache, hash_password
from registry.auth.tokens import TokenIssuer
from registry.http.context import RegistryContext
from registry.meta.accounts import AccountStore
from registry.meta.db import Database, create_engine, init_schema

__all__ = ["ADMIN_PASSWORD", "READER_PASSWORD", "Fakes", "InProcessApi", "PortalTransport"]

ADMIN_PASSWORD = "admin-secret-1"
READER_PASSWORD = "reader-secret-1"
BASE_URL = "http://seawall.test"
T = TypeVar("T")
X = Execution.__table__  # type: ignore[attr-defined]
TK = Task.__table__  # type: ignore[attr-defined]
P = Policy.__table__  # type: ignore[attr-defined]


class PortalTransport(httpx.BaseTransport):
    """A sync transport that runs an ASGI app on a blocking portal's event loop."""

    def __init__(self, portal: BlockingPortal, app: Any) -> None:
        self.portal = portal
        self.inner = httpx.ASGITransport(app=app)

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        body = request.read()

        async def call() -> tuple[int, httpx.Headers, bytes]:
            forwarded = httpx.Request(
                request.method, request.url, headers=request.headers, content=body
            )
            response = await self.inner.handle_async_request(forwarded)
            return response.status_code, response.headers, await response.aread()

        status, headers, content = self.portal.call(call)
        return httpx.Response(status, headers=headers, content=content, request=request)


@dataclass
class Fakes:
    """Stand-ins for what ``seawall.app`` wires: counts wakes, answers pings by URL, and (when
    ``plan`` is set) runs each woken execution like the engine would: claims it, writes ``plan``
    as its finished tasks, and rolls it up."""

    wakes: int = 0
    pinged: list[EndpointSpec] = field(default_factory=list)
    unhealthy: dict[str, str] = field(default_factory=dict)  # url -> reason
    plan: list[dict[str, Any]] | None = None
    db: Database | None = None
    _running: set[asyncio.Task[None]] = field(default_factory=set)

    def wake(self) -> None:
        self.wakes += 1
        if self.plan is not None:
            task = asyncio.get_running_loop().create_task(self._run(list(self.plan)))
            self._running.add(task)
            task.add_done_callback(self._running.discard)

    async def _run(self, plan: list[dict[str, Any]]) -> None:
        assert self.db is not None
        store = RunStore(self.db, "fake-engine")
        execution_id = await store.claim_execution()
        if execution_id is not None:
            await asyncio.sleep(0.3)  # long enough for a follower to see it running
            await store.add_tasks(execution_id, plan)
            await store.finalize(execution_id)

    async def ping(self, spec: EndpointSpec) -> tuple[bool, str]:
        self.pinged.append(spec)
        if spec["url"] in self.unhealthy:
            return False, self.unhealthy[spec["url"]]
        return True, "ok"


@dataclass
class InProcessApi:
    portal: BlockingPortal
    ctx: ApiContext
    app: Any
    fakes: Fakes
    url: str = BASE_URL
    admin_password: str = ADMIN_PASSWORD

    def transport(self) -> httpx.BaseTransport:
        return PortalTransport(self.portal, self.app)

    def client(self, user: str | None = "admin", password: str | None = None) -> httpx.Client:
        auth = (user, password if password is not None else ADMIN_PASSWORD) if user else None
        return httpx.Client(base_url=f"{self.url}/api/v2.0", transport=self.transport(), auth=auth)

    def call(self, fn: Callable[..., Awaitable[T]], *args: Any) -> T:
        return self.portal.call(fn, *args)

    # ---- direct database edits: states the engine would produce
    def add_tasks(self, execution_id: int, rows: list[dict[str, Any]]) -> None:
        async def go() -> None:
            async with self.ctx.db.write() as c:
                for row in rows:
                    await c.execute(insert(TK).values(execution_id=execution_id, **row))

        self.call(go)

    def set_execution(self, execution_id: int, **values: Any) -> None:
        async def go() -> None:
            async with self.ctx.db.write() as c:
                await c.execute(update(X).where(X.c.id == execution_id).values(**values))

        self.call(go)


async def build(data: Path, fakes: Fakes) -> tuple[ApiContext, Any]:
    engine = create_engine(f"sqlite+aiosqlite:///{data / 'api.db'}")
    await init_schema(engine)
    db = Database(engine)
    fakes.db = db
    accounts = AccountStore(db, cache_ttl_seconds=0.0)
    await accounts.create("admin", "admin", hash_password(ADMIN_PASSWORD), [])
    await accounts.create("reader", "user", hash_password(READER_PASSWORD), [])
    registry_ctx = RegistryContext(
        content=cast(Any, None),
        blobs=cast(Any, None),
        accounts=accounts,
        tokens=TokenIssuer(b"k" * 32),
        passwords=VerifiedCache(ttl_seconds=60.0),
    )
    ctx = ApiContext(
        db=db,
        registry_ctx=registry_ctx,
        secrets=SecretBox(b"s" * 32),
        wake=fakes.wake,
        ping_endpoint=fakes.ping,
    )
    return ctx, create_api(ctx)
