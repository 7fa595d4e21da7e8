"""What is settled at the edge, before any handler (registry or management API) sees a request.

- **Origin and client.** ``X-Forwarded-Proto``, ``-Host`` and ``-For`` are believed only when
  the connection comes from a configured trusted proxy (``trusted_proxies``: addresses or CIDR
  networks); from anyone else they are dropped. A host that is not ``name[:port]`` or
  ``[ipv6][:port]`` — forwarded or in ``Host`` itself — is dropped too, so nothing a client
  sends can put a quote into ``WWW-Authenticate`` or a URL we hand out.
- **Bodies.** A request body must keep arriving: :class:`BodyGuard` ends it after
  ``body_idle_timeout_seconds`` without a byte, and a trickle below
  ``body_min_bytes_per_second`` runs out of time the same way (each chunk buys
  ``len / min rate`` seconds, never more than the idle timeout ahead).

What handlers then read — ``scope["scheme"]``, the ``host`` header, ``scope["client"]`` — is
already decided; nothing downstream looks at ``X-Forwarded-*``.
"""

from __future__ import annotations

import ipaddress
import re
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import anyio

from registry.http.asgi import STALLED, Receive, Scope

__all__ = ["BodyGuard", "Edge", "EdgeOptions", "is_valid_host", "parse_networks"]

_FORWARDED = (b"x-forwarded-proto", b"x-forwarded-host", b"x-forwarded-for")
_HOST_RE = re.compile(r"^(?:[A-Za-z0-9_.-]{1,253}|\[[0-9A-Fa-f:.]{2,45}\])(?::(\d{1,5}))?$")

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def is_valid_host(host: str) -> bool:
    """Whether ``host`` is ``name[:port]`` or ``[ipv6][:port]`` with a port up to 65535."""
    m = _HOST_RE.match(host)
    return m is not None and (m.group(1) is None or int(m.group(1)) <= 65535)


@dataclass(frozen=True, slots=True)
class EdgeOptions:
    trusted_proxies: tuple[str, ...] = ()  # addresses or CIDR networks, e.g. 10.0.0.0/8
    body_idle_timeout_seconds: float = 30.0
    body_min_bytes_per_second: int = 1024


def parse_networks(entries: Iterable[str]) -> tuple[Network, ...]:
    """:raises ValueError: naming the entry that is not an address or network."""
    out = []
    for entry in entries:
        try:
            out.append(ipaddress.ip_network(entry.strip(), strict=False))
        except ValueError:
            raise ValueError(
                f"trusted proxy {entry!r} is not an IP address or network; write e.g. "
                "10.0.0.5 or 10.0.0.0/8 (several separated by commas)"
            ) from None
    return tuple(out)


class Edge:
    """Applies :class:`EdgeOptions` to each request: :meth:`admit` returns the scope and the
    ``receive`` every handler is given."""

    def __init__(self, options: EdgeOptions) -> None:
        self.options = options
        self._networks = parse_networks(options.trusted_proxies)

    def trusts(self, address: str) -> bool:
        try:
            ip = ipaddress.ip_address(address)
        except ValueError:
            return False
        return any(ip in network for network in self._networks)

    def admit(self, scope: Scope, receive: Receive) -> tuple[Scope, Receive]:
        guard = BodyGuard(
            receive,
            self.options.body_idle_timeout_seconds,
            self.options.body_min_bytes_per_second,
        )
        forwarded: dict[bytes, str] = {}
        headers: list[tuple[bytes, bytes]] = []
        has_host = False
        for key, value in scope["headers"]:
            if key in _FORWARDED:
                forwarded[key] = value.decode("latin-1")  # the last one: the nearest proxy's
            elif key != b"host":
                headers.append((key, value))
            elif not has_host and is_valid_host(value.decode("latin-1")):
                headers.append((key, value))  # one valid Host, never a list of them
                has_host = True
        if len(headers) == len(scope["headers"]):
            return scope, guard  # nothing forwarded, nothing invalid: the scope as it came
        scope = {**scope, "headers": headers}
        client = scope.get("client")
        if forwarded and client and self.trusts(client[0]):
            self._apply_forwarded(scope, forwarded)
        return scope, guard

    def _apply_forwarded(self, scope: dict[str, Any], forwarded: dict[bytes, str]) -> None:
        proto = forwarded.get(b"x-forwarded-proto", "").split(",")[-1].strip().lower()
        if proto in ("http", "https"):
            scope["scheme"] = proto
        host = forwarded.get(b"x-forwarded-host", "").split(",")[-1].strip()
        if is_valid_host(host):
            others = [(k, v) for k, v in scope["headers"] if k != b"host"]
            scope["headers"] = [*others, (b"host", host.encode("latin-1"))]
        hops = [h.strip() for h in forwarded.get(b"x-forwarded-for", "").split(",") if h.strip()]
        for hop in reversed(hops):  # the nearest hop that is not one of our proxies
            if not self.trusts(hop):
                if _is_ip(hop):
                    scope["client"] = (hop, 0)
                break


def _is_ip(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


class BodyGuard:
    """``receive`` with a deadline on the body (see the module doc). When the deadline passes,
    the guard answers ``http.disconnect`` marked :data:`STALLED`, as if the client had gone —
    every reader already handles that. Once the body is complete, messages pass unguarded."""

    __slots__ = ("_clock", "_deadline", "_done", "_idle", "_rate", "_receive")

    def __init__(
        self,
        receive: Receive,
        idle_seconds: float,
        min_bytes_per_second: int,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._receive, self._idle, self._rate, self._clock = (
            receive,
            idle_seconds,
            min_bytes_per_second,
            clock,
        )
        self._deadline: float | None = None
        self._done = False

    async def __call__(self) -> dict[str, Any]:
        if self._done:
            return await self._receive()
        now = self._clock()
        if self._deadline is None:
            self._deadline = now + self._idle
        message: dict[str, Any] | None = None
        if self._deadline > now:
            with anyio.move_on_after(self._deadline - now):
                message = await self._receive()
        if message is None:
            self._done = True
            return {"type": "http.disconnect", STALLED: True}
        body = message.get("body", b"")
        if body:
            credit = self._deadline + len(body) / self._rate
            self._deadline = min(self._clock() + self._idle, credit)
        if message["type"] != "http.request" or not message.get("more_body", False):
            self._done = True
        return message
