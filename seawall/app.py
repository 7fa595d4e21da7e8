"""Wiring: settings → stores, drivers and auth services → the ASGI application.

This is the one place that knows every part; ``registry`` never imports ``engine``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import hmac
import logging
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import anyio
from sqlalchemy.ext.asyncio import AsyncEngine

import engine.regions.models  # registers the region tables for create_all
import engine.state.models  # noqa: F401 - registers the replication tables for create_all
from adapters import registry as adapters
from engine.api.app import create_api
from engine.api.context import ApiContext
from engine.observers import RunEnded
from engine.regions.checks import CheckSettings, DrChecker
from engine.state.secrets import SecretBox, load_or_create_secret_key
from registry.auth.passwords import VerifiedCache, generate_secret, hash_password, verify_password
from registry.auth.tokens import TokenIssuer, load_or_create_key
from registry.http.app import RegistryApp
from registry.http.asgi import Receive, Scope, Send
from registry.http.context import RegistryContext, RegistryOptions
from registry.http.edge import EdgeOptions
from registry.meta.accounts import AccountStore
from registry.meta.content import ContentStore
from registry.meta.db import Database, create_engine
from registry.meta.sql import PostgresBackend, SqlBackend, SqliteBackend, postgres_dsn, sqlite_path
from registry.storage import factory as storage_drivers
from registry.storage.base import DriverUnavailable, StorageDriver
from registry.storage.blobs import BlobStore
from seawall.config import Settings
from seawall.metrics import build_metrics
from seawall.migrations import upgrade_on_start
from seawall.proxy_cache import build_proxy_cache
from seawall.read_through import build_read_through
from seawall.replication import REPLICATOR, EndpointClients, adapter_info, replicator_password
from seawall.service import ReplicationService

__all__ = ["Services", "bootstrap", "build_app", "build_services", "edge_options"]

log = logging.getLogger("seawall")


@dataclass
class Services:
    settings: Settings
    engine: AsyncEngine
    db: Database
    sql: SqlBackend
    driver: StorageDriver
    context: RegistryContext
    token_key: bytes

    async def close(self) -> None:
        await self.driver.close()
        await self.engine.dispose()
        await self.sql.aclose()


def edge_options(settings: Settings) -> EdgeOptions:
    """The registry's edge: which peers' ``X-Forwarded-*`` to believe and how long a request
    body may send nothing (settings ``trusted_proxies``, ``body_idle_timeout_seconds``)."""
    return EdgeOptions(
        trusted_proxies=tuple(settings.trusted_proxies),
        body_idle_timeout_seconds=settings.body_idle_timeout_seconds,
    )


def build_driver(settings: Settings) -> StorageDriver:
    """The configured storage driver (found by name, wrapped in the checking wrapper)."""
    storage = settings.storage
    config = storage_drivers.DriverConfig(
        driver=storage.driver,
        root=str(settings.storage_root),
        bucket=storage.bucket,
        container=storage.container,
        prefix=storage.prefix,
    )
    try:
        return storage_drivers.create(config)
    except DriverUnavailable as e:
        raise SystemExit(f"seawall: {e}") from None


def private_database(path: Path) -> None:
    """The SQLite database (accounts' password hashes, sealed secrets, everything) readable by
    its owner only: created 0600 before SQLite opens it — SQLite gives its ``-wal`` and ``-shm``
    files the database's mode — and an existing one (from an earlier version) made so."""
    if str(path) in ("", ":memory:"):
        return
    for p in (path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")):
        with contextlib.suppress(FileNotFoundError):
            os.chmod(p, 0o600)
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        os.close(os.open(path, os.O_CREAT | os.O_WRONLY, 0o600))


def build_services(settings: Settings) -> Services:
    settings.data_path.mkdir(parents=True, exist_ok=True)
    url = settings.resolved_database_url
    sql: SqlBackend
    if (path := sqlite_path(url)) is not None:
        private_database(Path(path))
        sqlite = SqliteBackend(path)
        sql, engine = sqlite, create_engine(url)
        # one in-process write lock for both executors: SQLite has one writer
        db = Database(engine, sqlite)
    elif (dsn := postgres_dsn(url)) is not None:
        sql, engine = PostgresBackend(dsn), create_engine(url)
        db = Database(engine)  # PostgreSQL writes run concurrently: no lock
    else:
        raise SystemExit(
            f"seawall: database_url {url!r} is neither SQLite (sqlite:///PATH) nor PostgreSQL "
            "(postgresql://USER:PASSWORD@HOST:PORT/DATABASE)"
        )
    driver = build_driver(settings)
    key = (
        settings.auth.token_key.encode()
        if settings.auth.token_key
        else load_or_create_key(settings.data_path / "token.key")
    )
    ttl = settings.cache_ttl_seconds
    content = ContentStore(  # this region is the origin of what clients push and delete here
        sql,
        cache_ttl_seconds=ttl,
        region_name=settings.dr.region_name,
        tombstone_retention_seconds=settings.dr.tombstone_retention_seconds,
    )
    context = RegistryContext(
        content=content,
        blobs=BlobStore(driver, fence=content.fence),  # garbage collection's fence
        accounts=AccountStore(db, cache_ttl_seconds=ttl, invalidator=sql.invalidator),
        tokens=TokenIssuer(
            key,
            service=settings.auth.service,
            ttl_seconds=settings.auth.token_ttl_seconds,
        ),
        passwords=VerifiedCache(ttl_seconds=60.0),
        options=RegistryOptions(
            max_manifest_bytes=settings.max_manifest_bytes,
            anonymous_pull=settings.auth.anonymous_pull,
            token_service=settings.auth.service,
            token_realm=settings.auth.realm,
            basic_on_registry=settings.auth.basic_on_registry,
            redirect_blobs=settings.storage.redirect,
            redirect_seconds=settings.storage.redirect_seconds,
        ),
        secret=hmac.new(key, b"seawall upload ids", hashlib.sha256).digest(),
    )
    return Services(settings, engine, db, sql, driver, context, key)


async def bootstrap(settings: Settings) -> str | None:
    """Create the schema, the admin account and the engine's internal account; return a
    generated admin password to print once (None when the password came from configuration or
    the admin already existed)."""
    services = build_services(settings)
    try:
        upgraded = await upgrade_on_start(services.engine)  # under the schema lock
        if upgraded.changed:
            print(upgraded.describe(), flush=True)
        accounts = services.context.accounts
        await _ensure_admin(
            accounts,
            REPLICATOR,
            replicator_password(services.token_key),
            "internal: the replication engine",
        )
        wanted = settings.admin_password
        password = wanted or generate_secret()
        created = await _ensure_admin(
            accounts, "admin", password, "built-in administrator", reset=bool(wanted)
        )
        return password if created and not wanted else None
    finally:
        await services.close()


async def _ensure_admin(
    accounts: AccountStore, name: str, password: str, description: str, *, reset: bool = True
) -> bool:
    """An admin account ``name`` with ``password`` (an existing one gets the password only with
    ``reset``); True when this call created it."""
    account = await accounts.get(name)
    if account is None:
        try:
            await accounts.create(
                name, "admin", hash_password(password), [], description=description
            )
            return True
        except ValueError:  # another node sharing the database created it just now
            account = await accounts.get(name)
            assert account is not None
    if reset and not verify_password(password, account.password_hash):
        await accounts.set_password(name, hash_password(password))
    return False


def build_app(settings: Settings, *, on_started: Callable[[], None] | None = None) -> RegistryApp:
    """The ASGI app of one worker: registry, management API and the replication service.
    ``on_started`` runs once startup is done, before the first request."""
    services = build_services(settings)
    secrets = SecretBox(load_or_create_secret_key(settings.data_path / "secrets.key"))
    clients = EndpointClients(
        settings, services.db, secrets, services.token_key, registry=services.context
    )
    run_ended = RunEnded()  # ?wait= on an execution returns when a run of this node ends
    replication = ReplicationService(
        services.db,
        clients,
        observers=[run_ended],
        lease_seconds=settings.engine_lease_seconds,
        max_parallel_runs=settings.engine_max_parallel_runs,
        reconcile_seconds=settings.reconcile_seconds,
        secrets=secrets,
    )
    notifier = replication.notifier
    notifier.settings = dataclasses.replace(
        notifier.settings, allow_link_local=settings.allow_link_local_targets
    )
    services.context.listeners.append(replication)
    regions = DrChecker(  # the failover checks: on demand (API) and every dr.check_interval
        services.db,
        clients,
        CheckSettings(
            self_name=settings.dr.region_name,
            timeout_seconds=settings.dr.check_timeout_seconds,
            lag_alert_seconds=settings.dr.lag_alert_seconds,
            canary=settings.dr.canary,
            allow_link_local=settings.allow_link_local_targets,
        ),
        wake_notifier=notifier.wake,
    )
    replication.schedules.check_regions_every(settings.dr.check_interval_seconds, regions.run)
    ctx = services.context  # reads through from other regions what it does not hold yet
    ctx.read_through = build_read_through(settings, ctx, clients, services.db)
    ctx.proxy_cache = build_proxy_cache(settings, ctx, clients, services.db)  # pull-through
    api = create_api(
        ApiContext(
            db=services.db,
            registry_ctx=services.context,
            secrets=secrets,
            wake=replication.wake,
            ping_endpoint=clients.ping,
            check_endpoint=clients.check_endpoint,
            adapter_types=adapters.types,
            adapter_info=adapter_info,
            run_ended=run_ended.wait,
            allow_link_local=settings.allow_link_local_targets,
            regions=regions,
        )
    )

    metrics = build_metrics(settings, services.db)  # /metrics; the request path counts
    shown = metrics.metrics
    if ctx.proxy_cache is not None:  # its counters too (this worker's)
        shown = dataclasses.replace(shown, sources=(*shown.sources, ctx.proxy_cache))

    async def lifespan(scope: Scope, receive: Receive, send: Send) -> None:
        message = await receive()
        if message["type"] != "lifespan.startup":
            return
        await upgrade_on_start(services.engine)  # up to date already after bootstrap: a check
        async with anyio.create_task_group() as tg:
            if isinstance(services.sql, PostgresBackend):
                # other nodes' changes reach this node's caches (see registry.meta.cache)
                tg.start_soon(services.sql.run_listener)
            if settings.engine_enabled:
                await replication.start(tg)
            await metrics.start(tg)
            if settings.gc.interval_seconds > 0:
                from seawall.gc_cli import run_periodic

                tg.start_soon(run_periodic, services, name="seawall-gc")
            if on_started is not None:
                on_started()
            await send({"type": "lifespan.startup.complete"})
            while (await receive())["type"] != "lifespan.shutdown":
                pass
            tg.cancel_scope.cancel()
        await clients.aclose()
        await services.close()
        await send({"type": "lifespan.shutdown.complete"})

    return RegistryApp(
        services.context,
        fallback=api,
        lifespan=lifespan,
        edge=edge_options(settings),
        metrics=shown,
    )
