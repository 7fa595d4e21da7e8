"""Wiring: settings → stores, drivers and auth services → the ASGI application.

This is the one place that knows every part; ``registry`` never imports ``engine``.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncEngine

from registry.auth.passwords import VerifiedCache, generate_secret, hash_password, verify_password
from registry.auth.tokens import TokenIssuer, load_or_create_key
from registry.http.app import RegistryApp
from registry.http.asgi import Receive, Scope, Send
from registry.http.context import RegistryContext, RegistryOptions
from registry.meta.accounts import AccountStore
from registry.meta.content import ContentStore
from registry.meta.db import Database, create_engine, init_schema
from registry.meta.sql import SqlBackend, SqliteBackend, sqlite_path
from registry.storage.base import StorageDriver
from registry.storage.blobs import BlobStore
from registry.storage.drivers.filesystem import FilesystemDriver
from seawall.config import Settings

__all__ = ["Services", "bootstrap", "build_app", "build_services"]

log = logging.getLogger("seawall")


@dataclass
class Services:
    settings: Settings
    engine: AsyncEngine
    sql: SqlBackend
    driver: StorageDriver
    context: RegistryContext

    async def close(self) -> None:
        await self.driver.close()
        await self.engine.dispose()
        self.sql.close()


def build_driver(settings: Settings) -> StorageDriver:
    settings.storage_root.mkdir(parents=True, exist_ok=True)
    return FilesystemDriver(settings.storage_root)


def build_services(settings: Settings) -> Services:
    settings.data_path.mkdir(parents=True, exist_ok=True)
    url = settings.resolved_database_url
    path = sqlite_path(url)
    if path is None:
        raise SystemExit(
            f"seawall: database_url {url!r} is not SQLite; PostgreSQL support (for several "
            "nodes) is not in this version yet. Use the default SQLite database."
        )
    sql = SqliteBackend(path)
    engine = create_engine(url)
    db = Database(engine, write_lock=sql.write_lock)
    driver = build_driver(settings)
    key = (
        settings.auth.token_key.encode()
        if settings.auth.token_key
        else load_or_create_key(settings.data_path / "token.key")
    )
    ttl = settings.cache_ttl_seconds
    context = RegistryContext(
        content=ContentStore(sql, cache_ttl_seconds=ttl),
        blobs=BlobStore(driver),
        accounts=AccountStore(db, cache_ttl_seconds=ttl),
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
        ),
        secret=hmac.new(key, b"seawall upload ids", hashlib.sha256).digest(),
    )
    return Services(settings, engine, sql, driver, context)


async def bootstrap(settings: Settings) -> str | None:
    """Create the schema and the admin account; return a generated admin password to print once
    (None when the password came from configuration or the admin already existed)."""
    services = build_services(settings)
    try:
        await init_schema(services.engine)
        accounts = services.context.accounts
        admin = await accounts.get("admin")
        wanted = settings.admin_password
        if admin is None:
            password = wanted or generate_secret()
            await accounts.create(
                "admin", "admin", hash_password(password), [], description="built-in administrator"
            )
            return None if wanted else password
        if wanted and not verify_password(wanted, admin.password_hash):
            await accounts.set_password("admin", hash_password(wanted))
        return None
    finally:
        await services.close()


def build_app(settings: Settings) -> RegistryApp:
    services = build_services(settings)

    async def lifespan(scope: Scope, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await init_schema(services.engine)
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await services.close()
                await send({"type": "lifespan.shutdown.complete"})
                return

    return RegistryApp(services.context, lifespan=lifespan)
