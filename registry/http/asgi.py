"""Minimal ASGI request/response primitives: the registry's hot path needs no framework.

A handler takes a :class:`Request` and returns a :class:`Response`; :func:`send_response` writes
it, using the server's ``http.response.pathsend`` extension (zero-copy file responses in granian)
when the response is a whole local file.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs

__all__ = ["STALLED", "Request", "Response", "json_response", "send_response"]

#: Set on an ``http.disconnect`` message that the edge made up because the body stalled
#: (:class:`registry.http.edge.BodyGuard`).
STALLED = "seawall.body_stalled"

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]


class Request:
    __slots__ = (
        "_query",
        "body_done",
        "headers",
        "method",
        "params",
        "path",
        "receive",
        "scope",
        "user",
    )

    def __init__(self, scope: Scope, receive: Receive) -> None:
        self.scope, self.receive = scope, receive
        self.method: str = scope["method"]
        self.path: str = scope["path"]
        self.headers: dict[str, str] = {}
        for k, v in scope["headers"]:
            key = k.decode("latin-1").lower()
            val = v.decode("latin-1")
            self.headers[key] = f"{self.headers[key]}, {val}" if key in self.headers else val
        self._query: dict[str, list[str]] | None = None
        self.params: dict[str, str] = {}
        self.user: str | None = None
        self.body_done = False  # the body was read to its end (or the client went away)

    @property
    def query(self) -> dict[str, list[str]]:
        if self._query is None:
            qs = self.scope.get("query_string", b"").decode("latin-1")
            self._query = parse_qs(qs, keep_blank_values=True)
        return self._query

    def q(self, name: str) -> str | None:
        values = self.query.get(name)
        return values[0] if values else None

    @property
    def base_url(self) -> str:
        """The origin the client used, as the edge settled it (:mod:`registry.http.edge`:
        forwarded headers only from trusted proxies, malformed hosts dropped)."""
        scheme = self.scope.get("scheme", "http")
        host = self.headers.get("host")
        if not host:
            server = self.scope.get("server") or ("127.0.0.1", 80)
            host = f"{server[0]}:{server[1]}"
        return f"{scheme}://{host}"

    @property
    def client_host(self) -> str | None:
        """The client's address (the edge puts the forwarded one here behind a trusted proxy)."""
        client = self.scope.get("client")
        return str(client[0]) if client else None

    @property
    def has_body(self) -> bool:
        """The request announced a body (a ``Content-Length`` above 0, or chunked)."""
        length = self.headers.get("content-length", "0").strip()
        return "transfer-encoding" in self.headers or (length != "0" and length != "")

    async def stream(self) -> AsyncIterator[bytes]:
        while True:
            message = await self.receive()
            if message["type"] == "http.disconnect":
                self.body_done = True
                raise ClientDisconnected(stalled=bool(message.get(STALLED)))
            body = message.get("body", b"")
            if body:
                yield body
            if not message.get("more_body", False):
                self.body_done = True
                return

    async def drain(self, limit_bytes: int) -> bool:
        """Read and drop what is left of a body the answer did not need (a refused upload),
        so the connection stays usable: a server that answers before the body is read must
        close the connection, and a client that reuses it meanwhile loses its next request.
        False when more than ``limit_bytes`` were left (the caller closes the connection)."""
        if self.body_done or not self.has_body:
            return True
        left = limit_bytes
        try:
            async for chunk in self.stream():
                left -= len(chunk)
                if left < 0:
                    return False
        except ClientDisconnected:
            pass
        return True

    async def body(self, limit_bytes: int) -> bytes:
        """The whole body; :raises BodyTooLarge: past ``limit_bytes``."""
        parts: list[bytes] = []
        total = 0
        async for chunk in self.stream():
            total += len(chunk)
            if total > limit_bytes:
                raise BodyTooLarge(limit_bytes)
            parts.append(chunk)
        return b"".join(parts)


class ClientDisconnected(Exception):
    """The body ended before it was whole: the client went away, its chunked framing was
    malformed (the server reports both as a disconnect), or — ``stalled`` — it stopped
    arriving (:class:`registry.http.edge.BodyGuard`)."""

    def __init__(self, *, stalled: bool = False) -> None:
        self.stalled = stalled
        super().__init__("request body stalled" if stalled else "request body ended early")


class BodyTooLarge(Exception):
    def __init__(self, limit_bytes: int) -> None:
        self.limit_bytes = limit_bytes
        super().__init__(f"body larger than {limit_bytes} bytes")


@dataclass(slots=True)
class Response:
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""
    file_path: str | None = None  # a whole local file (pathsend when the server has it)
    stream: AsyncIterator[bytes] | None = None
    head: bool = False  # HEAD: headers as for GET, no body


def json_response(data: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    body = json.dumps(data, separators=(",", ":")).encode()
    h = {"Content-Type": "application/json"}
    if headers:
        h.update(headers)
    return Response(status, h, body)


async def send_response(scope: Scope, send: Send, response: Response) -> None:
    headers = response.headers
    if "Content-Length" not in headers and response.file_path is None and response.stream is None:
        headers["Content-Length"] = str(len(response.body))
    raw = [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in headers.items()]
    await send({"type": "http.response.start", "status": response.status, "headers": raw})
    if response.head or scope["method"] == "HEAD":
        await send({"type": "http.response.body", "body": b""})
        return
    if response.file_path is not None:
        if "http.response.pathsend" in scope.get("extensions", {}):
            await send({"type": "http.response.pathsend", "path": response.file_path})
            return
        response.stream = _read_file(response.file_path)
    if response.stream is not None:
        async for chunk in response.stream:
            await send({"type": "http.response.body", "body": chunk, "more_body": True})
        await send({"type": "http.response.body", "body": b""})
        return
    await send({"type": "http.response.body", "body": response.body})


async def _read_file(path: str) -> AsyncIterator[bytes]:
    import anyio

    async with await anyio.open_file(path, "rb") as f:
        while chunk := await f.read(1 << 20):
            yield chunk
