"""A reverse proxy in front of a registry for tests: counts the manifest and blob requests that
pass (what an upstream was asked), and can flip one byte of every manifest and blob body it
forwards (an upstream serving corrupt bytes); in front of nothing it answers ``502`` (a region
whose backend is down). Runs on 127.0.0.1 in its own thread and loop.

The ``Host`` header is forwarded as the client sent it, so a Seawall behind it announces a
token realm on the proxy and token requests pass through it too (they are not counted).
"""

from __future__ import annotations

import collections
import re
import threading

import aiohttp
from aiohttp import web
from multidict import CIMultiDict

from tests.support.server import free_port
from tests.support.threaded_app import ThreadedApp

__all__ = ["CountingProxy"]

_HOP = {"connection", "keep-alive", "transfer-encoding", "te", "trailer", "upgrade"}
_ROUTE = re.compile(r"^/v2/(?P<name>.+)/(?P<kind>manifests|blobs)/(?P<ref>[^/]+)$")


class CountingProxy(ThreadedApp):
    def __init__(self, target: str) -> None:
        self.target = target.rstrip("/")
        self.port = free_port()
        #: flip the first byte of every manifest and blob body forwarded
        self.corrupt = False
        self._counts: collections.Counter[tuple[str, str, str, str, int]] = collections.Counter()
        self._lock = threading.Lock()
        self._session: aiohttp.ClientSession | None = None

    def counts(self, repo: str | None = None) -> dict[tuple[str, str, str], int]:
        """``{(method, "manifests" | "blobs", reference): requests}`` answered so far (of
        ``repo`` only, when given), not counting ``401`` challenges (the token flow's first
        try)."""
        out: collections.Counter[tuple[str, str, str]] = collections.Counter()
        with self._lock:
            for (method, name, kind, ref, status), n in self._counts.items():
                if status != 401 and (repo is None or name == repo):
                    out[(method, kind, ref)] += n
        return dict(out)

    def total(self) -> int:
        return sum(self.counts().values())

    def reset(self) -> None:
        with self._lock:
            self._counts.clear()

    async def _open(self) -> None:
        self._session = aiohttp.ClientSession(auto_decompress=False)

    async def _close(self) -> None:
        if self._session is not None:
            await self._session.close()

    def _count(self, method: str, m: re.Match[str] | None, status: int) -> None:
        if m is not None:
            with self._lock:
                self._counts[(method, m["name"], m["kind"], m["ref"], status)] += 1

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        m = _ROUTE.match(request.path)
        # a multidict: a header sent several times (distribution's one Accept per media type)
        # goes on as it came
        headers = CIMultiDict((k, v) for k, v in request.headers.items() if k.lower() not in _HOP)
        body = await request.read() if request.can_read_body else None
        assert self._session is not None
        try:
            upstream = await self._session.request(
                request.method,
                self.target + request.rel_url.raw_path_qs,
                headers=headers,
                data=body,
                allow_redirects=False,
            )
        except aiohttp.ClientError:  # nothing there: a gateway's answer
            self._count(request.method, m, 502)
            return web.Response(status=502, text="upstream unreachable")
        try:
            self._count(request.method, m, upstream.status)
            out_headers = CIMultiDict(
                (k, v) for k, v in upstream.headers.items() if k.lower() not in _HOP
            )
            response = web.StreamResponse(status=upstream.status, headers=out_headers)
            await response.prepare(request)
            flip = self.corrupt and m is not None and request.method == "GET"
            async for chunk in upstream.content.iter_chunked(1 << 16):
                if flip and chunk:
                    chunk = bytes([chunk[0] ^ 0x01]) + chunk[1:]
                    flip = False
                await response.write(chunk)
            await response.write_eof()
            return response
        finally:
            upstream.release()
