"""What the registry's handlers share: stores, auth services and options."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

from registry.auth.passwords import VerifiedCache
from registry.auth.tokens import TokenIssuer
from registry.meta.accounts import AccountStore
from registry.meta.content import ContentStore
from registry.storage.blobs import BlobStore

if TYPE_CHECKING:
    from registry.http.proxy_cache import ProxyCache
    from registry.http.read_through import ReadThrough

__all__ = ["EventListener", "RegistryContext", "RegistryOptions"]


class EventListener(Protocol):
    """Told (best effort, after commit) that the outbox has new rows; the app wires this to the
    replication engine. The outbox itself is the durable record."""

    def outbox_changed(self) -> None: ...


@dataclass(frozen=True, slots=True)
class RegistryOptions:
    max_manifest_bytes: int = 4 * 1024 * 1024
    anonymous_pull: bool = False
    token_service: str = "seawall"
    token_realm: str | None = None  # default: <request base URL>/service/token
    basic_on_registry: bool = True  # False: /v2/ takes bearer tokens only (Basic → challenge)
    redirect_blobs: bool = False  # blob GETs answer 307 to the storage's pre-signed URL
    redirect_seconds: int = 1200  # lifetime of that URL


@dataclass
class RegistryContext:
    content: ContentStore
    blobs: BlobStore
    accounts: AccountStore
    tokens: TokenIssuer
    passwords: VerifiedCache
    options: RegistryOptions = RegistryOptions()
    secret: bytes = b""  # signs upload session ids (stable across restarts and workers)
    listeners: list[EventListener] = field(default_factory=list)
    read_through: ReadThrough | None = None  # what this registry lacks, from an upstream
    proxy_cache: ProxyCache | None = None  # proxy-cache namespaces (pull through, read-only)

    def notify(self) -> None:
        for listener in self.listeners:
            listener.outbox_changed()
