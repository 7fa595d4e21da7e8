"""Where Seawall may send requests it is asked to make: not to link-local addresses.

``169.254.0.0/16`` and ``fe80::/10`` hold cloud metadata services (``169.254.169.254`` hands
out a machine's cloud credentials), so a registry ping or a webhook that an API caller aims
there would turn Seawall into a way to read them. They are refused unless the operator opts in
(``SEAWALL_ALLOW_LINK_LOCAL_TARGETS=true``). Private ranges (10/8, 172.16/12, 192.168/16, fc00::/7)
and loopback stay allowed: registries and receivers live there.

Two checks, one rule: :func:`check_url` on a URL as given (an IP literal is refused before
anything is stored), :func:`check_resolved` on the addresses its host resolves to, just before
a request is sent (a name can point anywhere).
"""

from __future__ import annotations

import ipaddress
import socket
from urllib.parse import urlsplit

import anyio

__all__ = [
    "ALLOW_ENV",
    "TargetRefused",
    "check_resolved",
    "check_url",
    "connect_problem",
    "is_link_local",
]

ALLOW_ENV = "SEAWALL_ALLOW_LINK_LOCAL_TARGETS"
_HOW = f"set {ALLOW_ENV}=true on the server to allow it"


class TargetRefused(ValueError):
    """A request would go to a link-local address; the message says which and how to allow it."""


def is_link_local(address: str) -> bool:
    """Whether ``address`` (an IP literal, with or without brackets or a zone) is link-local,
    IPv4-mapped and NAT64-style IPv6 forms of ``169.254.x.x`` included."""
    try:
        ip = ipaddress.ip_address(address.strip("[]").split("%", 1)[0])
    except ValueError:
        return False
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip.is_link_local


def check_url(url: str, *, allow_link_local: bool) -> None:
    """Refuse a URL whose host is a link-local IP literal. :raises TargetRefused:"""
    if allow_link_local:
        return
    host = urlsplit(url).hostname or ""
    if is_link_local(host):
        raise TargetRefused(f"{host} is a link-local address (cloud metadata services); {_HOW}")


async def check_resolved(url: str, *, allow_link_local: bool) -> None:
    """Refuse a URL whose host resolves to a link-local address (any of them).
    :raises TargetRefused: and OSError when the name does not resolve."""
    check_url(url, allow_link_local=allow_link_local)
    if allow_link_local:
        return
    parts = urlsplit(url)
    host = parts.hostname or ""
    if not host or host.startswith("/"):
        return
    infos = await anyio.getaddrinfo(host, parts.port or 443, type=socket.SOCK_STREAM)
    for info in infos:
        address = str(info[4][0])
        if is_link_local(address):
            raise TargetRefused(f"{host} resolves to {address}, a link-local address; {_HOW}")


async def connect_problem(url: str, seconds: float) -> str | None:
    """Why no TCP connection to ``url``'s host and port opens within ``seconds``, or None when
    one does — or when ``url`` is not HTTP(S) (nothing to connect to). A dead host costs a
    refused connection here, not an HTTP client's whole timeout of retries."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https"):
        return None
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        with anyio.fail_after(seconds):
            stream = await anyio.connect_tcp(parts.hostname or "", port)
    except TimeoutError:
        return f"{url}: no TCP connection within {seconds:g} s"
    except OSError as e:
        return f"{url}: cannot connect ({e.strerror or e})"
    await stream.aclose()
    return None
