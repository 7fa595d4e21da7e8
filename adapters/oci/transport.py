"""The seam to the network: one request in, one response out, our exceptions only.

:class:`Transport` is the whole contract (httpx's ``handle_async_request`` shape): it sends one
HTTP exchange and never interprets the status, never retries and never authenticates; that is
the session's job (``session.py``). :class:`AiohttpTransport` is the real one; a test double
only has to implement ``send`` and ``aclose``.

aiohttp's and asyncio's exceptions are translated here, in :func:`map_exceptions`, and nowhere
else, both while sending and while reading a response body.
"""

from __future__ import annotations

import ssl
from collections.abc import AsyncIterable, Awaitable, Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from typing import Protocol

import aiohttp
from multidict import CIMultiDict, CIMultiDictProxy
from yarl import URL

from adapters.oci.errors import (
    ConnectionFailed,
    OciError,
    ProtocolError,
    TimedOut,
    TlsError,
)

__all__ = [
    "AiohttpTransport",
    "BodyFactory",
    "Request",
    "Response",
    "Transport",
    "map_exceptions",
]

#: A request body that can be produced again for each attempt (uploads resume from offsets).
BodyFactory = Callable[[], AsyncIterable[bytes]]


@dataclass(frozen=True, slots=True)
class Request:
    """One HTTP exchange to make. ``url`` is absolute and already percent-encoded.

    ``scope`` is the Docker token scope the request needs (``repository:a/b:pull``); the auth
    flow uses it as its cache key. ``buffered`` responses are read whole before the session
    returns them (token answers). ``retry`` is False where the caller resumes by itself
    (upload chunks, whose bodies cannot simply be sent again).
    """

    method: str
    url: str
    headers: Mapping[str, str] = field(default_factory=dict)
    content: bytes | BodyFactory | None = None
    scope: str = ""
    buffered: bool = False
    retry: bool = True

    @property
    def replayable(self) -> bool:
        """Whether the very same request can be sent again (no streamed body)."""
        return self.content is None or isinstance(self.content, bytes)

    def with_header(self, name: str, value: str | None) -> Request:
        lowered = name.lower()
        headers = {k: v for k, v in self.headers.items() if k.lower() != lowered}
        if value is None and len(headers) == len(self.headers):
            return self  # nothing to remove (the common case: no credentials to send)
        if value is not None:
            headers[name] = value
        return replace(self, headers=headers)


class Response:
    """A response whose body is read on demand; ``close`` must be called (the session does)."""

    def __init__(
        self,
        status: int,
        headers: CIMultiDictProxy[str],
        url: str,
        read: Callable[[int], Awaitable[bytes]],
        close: Callable[[], None],
    ) -> None:
        self.status = status
        self.headers = headers
        self.url = url
        self.body: bytes | None = None  # set once read whole (buffered or error answers)
        self._read = read
        self._close = [close]
        self._on_bytes: Callable[[int], None] | None = None

    def on_close(self, callback: Callable[[], None]) -> None:
        self._close.append(callback)

    def count_bytes(self, callback: Callable[[int], None]) -> None:
        self._on_bytes = callback

    async def read_chunk(self, max_bytes: int) -> bytes:
        """Up to ``max_bytes`` of the body as they arrive; ``b""`` at its end."""
        data = await self._read(max_bytes)
        if self._on_bytes is not None and data:
            self._on_bytes(len(data))
        return data

    async def read(self, limit_bytes: int = 4 * 1024 * 1024) -> bytes:
        """The whole body (at most ``limit_bytes``: a larger one is a ProtocolError)."""
        if self.body is not None:
            return self.body
        parts: list[bytes] = []
        total = 0
        while chunk := await self.read_chunk(1024 * 1024):
            total += len(chunk)
            if total > limit_bytes:
                raise ProtocolError(f"response body larger than {limit_bytes} bytes", url=self.url)
            parts.append(chunk)
        self.body = b"".join(parts)
        return self.body

    def close(self) -> None:
        callbacks, self._close = self._close, []
        for callback in callbacks:
            callback()


class Transport(Protocol):
    async def send(self, request: Request) -> Response:
        """Make one exchange. Raises only :class:`OciError` (network failures); any status is
        returned as a response."""
        ...

    async def aclose(self) -> None: ...


#: aiohttp/asyncio/OS exception -> (our error, what to say); first match wins.
_EXCEPTIONS: tuple[
    tuple[type[BaseException] | tuple[type[BaseException], ...], type[OciError], str], ...
] = (
    (
        (aiohttp.ClientConnectorCertificateError, aiohttp.ClientSSLError, ssl.SSLError),
        TlsError,
        "TLS failed",
    ),
    ((aiohttp.ServerTimeoutError, TimeoutError), TimedOut, "timed out"),
    (aiohttp.ClientPayloadError, ConnectionFailed, "response body cut short"),
    (aiohttp.TooManyRedirects, ProtocolError, "too many redirects"),
    (aiohttp.InvalidURL, OciError, "invalid URL"),
    (
        (aiohttp.ClientConnectionError, aiohttp.UploadAbortedError, OSError),
        ConnectionFailed,
        "connection failed",
    ),
    (aiohttp.ClientResponseError, ProtocolError, "malformed response"),
    (aiohttp.ClientError, ConnectionFailed, "HTTP client error"),
)


@contextmanager
def map_exceptions(method: str, url: str) -> Iterator[None]:
    """Translate aiohttp/asyncio/OS exceptions into our tree (the only place that does)."""
    try:
        yield
    except OciError:
        raise
    except (aiohttp.ClientError, OSError, TimeoutError) as e:
        for kinds, ours, what in _EXCEPTIONS:
            if isinstance(e, kinds):
                raise ours(f"{what}: {e or type(e).__name__}", method=method, url=url) from e
        raise


def ssl_context(*, insecure: bool, ca_file: str | None) -> ssl.SSLContext | bool:
    """False (no verification) when insecure; True (aiohttp's verifying context on the system
    store, made once when aiohttp is imported: ~50 ms a client saved) without ``ca_file``; else
    the system store plus ``ca_file``."""
    if insecure:
        return False
    if ca_file is None:
        return True
    try:
        return ssl.create_default_context(cafile=ca_file)
    except (OSError, ssl.SSLError) as e:
        raise TlsError(f"cannot load CA file {ca_file!r}: {e}") from e


class AiohttpTransport:
    """One aiohttp ``ClientSession`` (created on first use, inside the event loop).

    Timeouts bound connecting and each read, never a whole transfer: a 10 GiB blob at a slow
    but steady pace is fine; a stalled socket is not.
    """

    def __init__(
        self,
        *,
        insecure: bool = False,
        ca_file: str | None = None,
        max_connections: int = 16,
        timeout_connect_seconds: float = 30.0,
        timeout_read_seconds: float = 300.0,
        user_agent: str = "seawall/0.1",
        read_buffer_bytes: int = 1024 * 1024,
    ) -> None:
        self._ssl = ssl_context(insecure=insecure, ca_file=ca_file)
        self._max_connections = max_connections
        self._timeout = aiohttp.ClientTimeout(
            total=None, sock_connect=timeout_connect_seconds, sock_read=timeout_read_seconds
        )
        self._user_agent = user_agent
        self._read_buffer_bytes = read_buffer_bytes
        self._session: aiohttp.ClientSession | None = None

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            connector = aiohttp.TCPConnector(
                limit=self._max_connections, ssl=self._ssl, ttl_dns_cache=300
            )
            self._session = aiohttp.ClientSession(
                connector=connector,
                timeout=self._timeout,
                auto_decompress=False,  # blob bytes are hashed as stored
                headers={"User-Agent": self._user_agent},
                read_bufsize=self._read_buffer_bytes,
                trust_env=False,
            )
        return self._session

    async def send(self, request: Request) -> Response:
        content = request.content
        data = content() if callable(content) else content
        redirects = request.method in ("GET", "HEAD")
        with map_exceptions(request.method, request.url):
            raw = await self._client().request(
                request.method,
                URL(request.url, encoded=True),
                headers=dict(request.headers),
                data=data,
                allow_redirects=redirects,
            )
        method, url = request.method, str(raw.url)

        async def read(max_bytes: int) -> bytes:
            with map_exceptions(method, url):
                return await raw.content.read(max_bytes)

        headers = raw.headers if isinstance(raw.headers, CIMultiDictProxy) else _proxy(raw.headers)
        return Response(raw.status, headers, url, read, raw.release)

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None


def _proxy(headers: Mapping[str, str]) -> CIMultiDictProxy[str]:
    return CIMultiDictProxy(CIMultiDict(headers))
