"""The ACR fake's way to the real registry behind it: requests sent on, answers streamed back.

Credentials for the upstream are the fake's own (``Basic``); ``Location`` and ``Link`` headers
naming the upstream are rewritten to the fake's URL.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlencode

import aiohttp
from aiohttp import web

__all__ = ["Upstream"]

HOP_HEADERS = frozenset(
    {
        "connection",
        "keep-alive",
        "transfer-encoding",
        "te",
        "trailer",
        "upgrade",
        "proxy-authorization",
        "proxy-authenticate",
        "host",
        "authorization",
        "content-length",
        "accept-encoding",
        "server",
        "date",
    }
)


class Upstream:
    """The upstream registry at ``url``; :meth:`open` in the fake's event loop first."""

    def __init__(self, url: str, public_url: str, username: str | None, password: str | None):
        self.url = url.rstrip("/")
        self.public_url = public_url
        self._auth = None
        if username is not None:
            raw = f"{username}:{password or ''}".encode()
            self._auth = "Basic " + base64.b64encode(raw).decode()
        self.http: aiohttp.ClientSession | None = None

    async def open(self) -> None:
        self.http = aiohttp.ClientSession(auto_decompress=False)

    async def close(self) -> None:
        if self.http is not None:
            await self.http.close()

    def _headers(self, accept: str) -> dict[str, str]:
        headers = {"Accept": accept}
        if self._auth:
            headers["Authorization"] = self._auth
        return headers

    async def forward(
        self,
        request: web.Request,
        method: str,
        path_qs: str,
        body: bytes | None,
        accept: str | None = None,
    ) -> web.StreamResponse:
        """Send the request on to the upstream registry and stream its answer back;
        ``accept`` replaces the client's ``Accept``."""
        assert self.http is not None
        headers = {k: v for k, v in request.headers.items() if k.lower() not in HOP_HEADERS}
        if accept is not None:
            headers = {k: v for k, v in headers.items() if k.lower() != "accept"}
            headers["Accept"] = accept
        if self._auth:
            headers["Authorization"] = self._auth
        async with self.http.request(
            method,
            self.url + path_qs,
            headers=headers,
            data=body or None,
            allow_redirects=False,
        ) as up:
            out = web.StreamResponse(status=up.status, headers=self._rewrite(up.headers))
            length = up.headers.get("Content-Length")
            if length is not None:
                out.content_length = int(length)
            await out.prepare(request)
            if method != "HEAD":
                async for chunk in up.content.iter_chunked(256 * 1024):
                    await out.write(chunk)
            await out.write_eof()
            return out

    def _rewrite(self, headers: Mapping[str, str]) -> dict[str, str]:
        out: dict[str, str] = {}
        for key, value in headers.items():
            if key.lower() in HOP_HEADERS:
                continue
            if key.lower() in ("location", "link"):
                value = value.replace(self.url, self.public_url)
            out[key] = value if key not in out else f"{out[key]}, {value}"
        return out

    async def json(
        self, path: str, params: Mapping[str, Any], accept: str
    ) -> tuple[int, Any, Mapping[str, str]]:
        """GET an upstream listing: ``(status, JSON body or None, headers)``."""
        assert self.http is not None
        headers = self._headers(accept)
        url = f"{self.url}{path}" + (f"?{urlencode(params)}" if params else "")
        async with self.http.get(url, headers=headers) as up:
            data = await up.read()
            try:
                doc = json.loads(data) if up.status == 200 else None
            except ValueError:
                doc = None
            return up.status, doc, dict(up.headers)

    async def head(self, path: str, accept: str) -> Mapping[str, str] | None:
        assert self.http is not None
        headers = self._headers(accept)
        async with self.http.head(self.url + path, headers=headers) as up:
            return dict(up.headers) if up.status == 200 else None
