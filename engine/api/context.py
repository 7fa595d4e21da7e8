"""What the management API's handlers share, and the seams the application wires.

The API declares what it needs from the rest of Seawall as plain callables (the consumer-side
interface): it never imports the adapters or the replication service. ``seawall.app`` wires them.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, TypedDict

import anyio

from engine.regions.report import RegionChecks
from engine.state.secrets import SecretBox
from registry.http.context import RegistryContext
from registry.meta.db import Database

__all__ = [
    "ApiContext",
    "EndpointSpec",
    "PingEndpoint",
    "accept_endpoint",
    "default_adapter_info",
    "default_adapter_types",
]


class EndpointSpec(TypedDict):
    """A registry endpoint as :attr:`ApiContext.ping_endpoint` receives it (secret in clear).

    ``id`` is None when the endpoint is not stored (``POST /registries/ping`` with a new one).
    ``credential_type`` is ``basic`` or ``oauth``; empty ``access_key`` means anonymous.
    """

    id: int | None
    name: str
    type: str
    url: str
    credential_type: str
    access_key: str
    access_secret: str
    insecure: bool
    ca_certificate: str
    options: dict[str, str]  # the adapter's provider settings


def accept_endpoint(spec: EndpointSpec) -> tuple[str, ...]:
    """The default :attr:`ApiContext.check_endpoint`: every endpoint is accepted as given;
    its secrets go to its URL only."""
    return (spec["url"],)


PingEndpoint = Callable[[EndpointSpec], Awaitable[tuple[bool, str]]]
"""Checks an endpoint: ``(True, detail)`` when healthy, else ``(False, what went wrong)``.
It should bound its own time (a few seconds); an exception counts as unhealthy."""


def default_adapter_types() -> list[str]:
    return ["docker-registry", "seawall"]


def default_adapter_info(adapter_type: str) -> dict[str, Any]:
    """Harbor's ``RegistryInfo`` for an adapter type (what ``/registries/{id}/info`` returns)."""
    return {
        "type": adapter_type,
        "description": "",
        "supported_resource_filters": [
            {"type": "name", "style": "input"},
            {"type": "tag", "style": "input"},
        ],
        "supported_triggers": ["manual", "scheduled", "event_based"],
        "supported_copy_by_chunk": True,
    }


@dataclass(frozen=True, slots=True)
class ApiContext:
    """Everything the API needs.

    :param db: the metadata database (replication tables live there too).
    :param registry_ctx: the registry's context; the API checks HTTP Basic with its accounts.
    :param secrets: seals endpoint secrets before they are stored.
    :param wake: tells the replication service that a new execution exists (must not block).
    :param ping_endpoint: checks an endpoint's health (see :data:`PingEndpoint`).
    :param adapter_types: the registry types that endpoints may have.
    :param adapter_info: Harbor's ``RegistryInfo`` dict for a type; may add ``endpoint_pattern``
        and ``credential_pattern`` (returned by ``/replication/adapterinfos``).
    :param run_ended: waits at most the given seconds for a run of this node to end (an
        execution's ``?wait=``); by default it just sleeps.
    :param check_endpoint: refuses an endpoint its adapter cannot work with (URL scheme,
        provider options, credentials), before it is stored or pinged: raises ``ValueError``
        with the message the caller sees (a 400); returns every URL the endpoint's secrets
        may be sent to (a change of any needs the secret again). Blocking (local files): the
        API runs it in a worker thread.
    :param allow_link_local: endpoint and webhook URLs may name link-local addresses (cloud
        metadata services; refused by default, see :mod:`engine.netguard`).
    :param regions: runs the failover checks (``POST /dr/check``) and names this Seawall's
        own region; None: the checks are not wired here (that route answers 412).
    """

    db: Database
    registry_ctx: RegistryContext
    secrets: SecretBox
    wake: Callable[[], None]
    ping_endpoint: PingEndpoint
    adapter_types: Callable[[], list[str]] = default_adapter_types
    adapter_info: Callable[[str], dict[str, Any]] = default_adapter_info
    run_ended: Callable[[float], Awaitable[None]] = anyio.sleep
    check_endpoint: Callable[[EndpointSpec], tuple[str, ...]] = accept_endpoint
    max_body_bytes: int = field(default=1 << 20)
    allow_link_local: bool = False
    regions: RegionChecks | None = None
