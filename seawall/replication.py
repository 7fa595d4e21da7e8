"""Wiring of replication: OCI clients for endpoints (and for this registry), the replication
service, and the management API's seams."""

from __future__ import annotations

import hashlib
import hmac
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio
from sqlalchemy import bindparam, select

from adapters import registry as adapters
from adapters.base import AdapterError, EndpointConfig, RegistryAdapter
from adapters.local import LocalRegistry, ThisRegistryAdapter
from adapters.oci.errors import OciError
from adapters.seawall import SeawallAdapter
from engine.api.context import EndpointSpec, default_adapter_info
from engine.netguard import (
    TargetRefused,
    check_resolved,
    check_url,
    connect_problem,
)
from engine.state.models import RegistryEndpoint, endpoint_options
from engine.state.secrets import SecretBox
from registry.meta.db import Database
from registry.meta.prepared import prepared
from seawall.config import Settings

__all__ = ["REPLICATOR", "EndpointClients", "adapter_info", "replicator_password"]

REPLICATOR = "seawall-replicator"  # internal admin account the engine uses on this registry
E = RegistryEndpoint.__table__  # type: ignore[attr-defined]
_ENDPOINT = prepared(select(E).where(E.c.id == bindparam("rid")))


def replicator_password(token_key: bytes) -> str:
    """Derived from the token key, so every node of a cluster knows it without storing it."""
    return hmac.new(token_key, b"seawall replicator account", hashlib.sha256).hexdigest()


def local_url(settings: Settings) -> str:
    host = settings.host if settings.host not in ("0.0.0.0", "::", "") else "127.0.0.1"
    return f"http://{host}:{settings.port}"


#: An endpoint's client unused this long is closed (its tokens would mostly have expired).
IDLE_SECONDS = 120.0


@dataclass
class _Shared:
    adapter: RegistryAdapter
    users: int = 0
    idle_since: float = field(default_factory=time.monotonic)


class EndpointClients:
    """Opens the adapter (and its one OCI client) for a registry endpoint id (``None`` or 0:
    this registry).

    The engine's clients are shared: runs using one endpoint at once use one client (its
    concurrency and rate limits hold for the endpoint, not per run), and the next run finds
    its tokens and connections ready. A client is kept while its endpoint's type, URL and
    credentials stay the same, and closed once idle for :data:`IDLE_SECONDS` or replaced.
    """

    def __init__(
        self,
        settings: Settings,
        db: Database,
        secrets: SecretBox,
        token_key: bytes,
        registry: LocalRegistry | None = None,
    ) -> None:
        """``registry``: this registry (its ``RegistryContext``), to read manifests,
        referrers and blobs from its database and storage when it is a run's source (see
        :mod:`adapters.local`); None: over HTTP like the rest."""
        self.settings, self.db, self.secrets = settings, db, secrets
        self.allow_link_local = settings.allow_link_local_targets
        self.registry = registry
        self._local_password = replicator_password(token_key)
        self._ca_dir = settings.data_path / "ca"
        self._shared: dict[tuple[int, str, EndpointConfig], _Shared] = {}
        self._current: dict[int, tuple[int, str, EndpointConfig]] = {}

    async def adapter(self, registry_id: int | None) -> RegistryAdapter:
        if registry_id is None or registry_id == 0:
            config = EndpointConfig(
                local_url(self.settings), username=REPLICATOR, password=self._local_password
            )
            if self.registry is not None:
                return ThisRegistryAdapter(config, self.registry)
            return SeawallAdapter(config)
        async with self.db.quick_read() as c:
            row = (await c.execute(_ENDPOINT, {"rid": registry_id})).mappings().first()
        if row is None:
            raise LookupError(f"registry endpoint {registry_id} does not exist")
        sealed = row["access_secret_encrypted"]
        return self._adapter(
            {
                "id": row["id"],
                "name": row["name"],
                "type": row["type"],
                "url": row["url"],
                "credential_type": row["credential_type"],
                "access_key": row["access_key"],
                "access_secret": self.secrets.decrypt(sealed) if sealed else "",
                "insecure": row["insecure"],
                "ca_certificate": row["ca_certificate"],
                "options": endpoint_options(row["options_json"]),
            }
        )

    @asynccontextmanager
    async def __call__(self, registry_id: int | None) -> AsyncIterator[RegistryAdapter]:
        """The engine's adapter factory: the endpoint's shared adapter (and its one client)
        while in the block."""
        adapter = await self.adapter(registry_id)
        key = (registry_id or 0, adapter.type, adapter.config)
        shared = self._shared.get(key)
        if shared is None:
            shared = self._shared[key] = _Shared(adapter)
        self._current[key[0]] = key
        shared.users += 1
        try:
            yield shared.adapter
        finally:
            shared.users -= 1
            shared.idle_since = time.monotonic()
            await self._close_unused()

    async def _close_unused(self) -> None:
        now = time.monotonic()
        for key, shared in list(self._shared.items()):
            replaced = self._current.get(key[0]) != key
            if not shared.users and (replaced or now - shared.idle_since > IDLE_SECONDS):
                if self._shared.get(key) is not shared:
                    continue  # another run closed it while this loop awaited
                del self._shared[key]
                with anyio.CancelScope(shield=True):  # also when the run was cancelled
                    await shared.adapter.close()

    async def aclose(self) -> None:
        """Close every client (the server is stopping)."""
        shared, self._shared = list(self._shared.values()), {}
        with anyio.CancelScope(shield=True):
            for s in shared:
                await s.adapter.close()

    def _ca_file(self, pem: str) -> str | None:
        if not pem:
            return None
        self._ca_dir.mkdir(parents=True, exist_ok=True)
        path = Path(self._ca_dir / f"{hashlib.sha256(pem.encode()).hexdigest()[:16]}.pem")
        if not path.exists():
            path.write_text(pem)
        return str(path)

    def _adapter(self, spec: EndpointSpec) -> RegistryAdapter:
        return adapters.create(spec["type"], self._config(spec))

    def _config(self, spec: EndpointSpec, *, ca_file: bool = True) -> EndpointConfig:
        return EndpointConfig.from_harbor_credential(
            spec["url"],
            credential_type=spec["credential_type"],
            access_key=spec["access_key"],
            access_secret=spec["access_secret"],
            insecure=spec["insecure"],
            ca_file=self._ca_file(spec["ca_certificate"]) if ca_file else None,
            options=spec["options"],
        )

    def check_endpoint(self, spec: EndpointSpec) -> tuple[str, ...]:
        """The management API's check before an endpoint is stored or pinged: the type's
        adapter refuses what cannot work (URL scheme, options, credentials; local file
        checks only, no network). Returns the URLs its secrets may be sent to (its URL and
        url-kind options): see :meth:`RegistryAdapter.secret_targets`.

        :raises ValueError: what is wrong and what to give instead.
        """
        try:
            kind = adapters.get(spec["type"])
            config = self._config(spec, ca_file=False)
            kind.check_config(config)
            return kind.secret_targets(config)
        except AdapterError as e:
            raise ValueError(str(e)) from None

    async def ping(self, spec: EndpointSpec) -> tuple[bool, str]:
        """Health of an endpoint, bounded in time; never raises. Not sent to a link-local
        address unless allowed (:mod:`engine.netguard`); a failure says what failed — the
        status, the OCI error code, what to do — never the body the target answered (a ping
        must not turn Seawall into a reader of other hosts' pages)."""
        try:
            adapter = self._adapter(spec)
        except AdapterError as e:
            return False, str(e)[:300]
        own_check = type(adapter).health is not RegistryAdapter.health  # a provider's API
        async with adapter:
            problem = await self._unreachable(adapter.registry_url(), resolve=not own_check)
            if problem is not None:
                return False, problem
            if own_check:
                healthy, detail = await adapter.health()
                return healthy, detail[:300]
            return await _ping(adapter)

    async def _unreachable(self, url: str, *, resolve: bool) -> str | None:
        """Why a ping must not (link-local) or cannot (no DNS name, no TCP connection) reach
        ``url``; None when it may go ahead. ``resolve``: requests go to this URL, so check
        where its name leads and connect first (the client would retry for seconds)."""
        if not url.startswith(("http://", "https://")):
            return None
        try:
            check_url(url, allow_link_local=self.allow_link_local)
            if resolve:
                await check_resolved(url, allow_link_local=self.allow_link_local)
                problem = await connect_problem(url, CONNECT_SECONDS)
                return problem and f"{problem}; check the host and port"
        except TargetRefused as e:
            return str(e)[:300]
        except OSError as e:
            return f"{url[:200]}: the host name does not resolve ({e.strerror or e})"
        return None


#: How long a ping waits for a TCP connection before calling the endpoint unreachable.
CONNECT_SECONDS = 5.0


async def _ping(adapter: RegistryAdapter) -> tuple[bool, str]:
    url, limit = adapter.config.url, adapter.health_timeout_seconds
    try:
        with anyio.fail_after(limit):
            result = await adapter.client().ping()
    except TimeoutError:
        return False, f"no answer from {url} within {limit:g} s"
    except OciError as e:
        return False, ping_failure(e)
    return True, f"HTTP {result.status}, auth {result.auth_scheme or 'none'}"


def ping_failure(e: OciError) -> str:
    """What failed, without the answer's body: ``GET https://r/v2/: HTTP 401 UNAUTHORIZED;
    check the username…``. Errors with no HTTP answer (refused, TLS, DNS) keep their message,
    which Seawall wrote."""
    where = f"{e.method} {e.url}: " if e.method and e.url else ""
    if e.status is None:
        return str(e)[:300]
    code = f" {e.code}" if e.code and e.code.replace("_", "").isalnum() else ""
    hint = f"; {e.hint}" if e.hint else ""
    return f"{where}HTTP {e.status}{code[:40]}{hint}"[:400]


def adapter_info(adapter_type: str) -> dict[str, Any]:
    """Harbor's RegistryInfo for a type; a stored endpoint whose plugin is gone still answers."""
    try:
        return dict(adapters.info(adapter_type))
    except AdapterError:
        return default_adapter_info(adapter_type)
