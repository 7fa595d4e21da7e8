"""The Docker Hub fake's way to the real registry behind it: the ACR fake's
:class:`~tests.support.fake_acr_upstream.Upstream` (requests sent on with the fake's own
Basic login, ``Location``/``Link`` rewritten), plus what Hub's answers need: headers chosen by
the upstream's status (the pull limit's), the catalog for the Hub API's listings, deletes."""

from __future__ import annotations

from collections.abc import Callable, Mapping

from aiohttp import web

from tests.support.fake_acr_upstream import Upstream

__all__ = ["HubUpstream"]

_DROP = frozenset({"host", "authorization", "content-length", "accept-encoding", "connection"})
_PAGE = 1000


class HubUpstream(Upstream):
    """:class:`Upstream` with status-dependent extra headers; Seawall's own headers dropped."""

    async def forward_with(
        self,
        request: web.Request,
        extra: Callable[[int], Mapping[str, str]],
        accept: str | None = None,
    ) -> web.StreamResponse:
        """Send ``request`` on and stream the answer back with ``extra(status)`` headers;
        ``accept`` replaces the client's ``Accept``."""
        assert self.http is not None
        headers = {k: v for k, v in request.headers.items() if k.lower() not in _DROP}
        if accept is not None:
            headers = {k: v for k, v in headers.items() if k.lower() != "accept"}
            headers["Accept"] = accept
        if self._auth:
            headers["Authorization"] = self._auth
        body = await request.read()
        async with self.http.request(
            request.method,
            self.url + request.path_qs,
            headers=headers,
            data=body or None,
            allow_redirects=False,
        ) as up:
            out_headers = {
                k: v for k, v in self._rewrite(up.headers).items() if not k.startswith("Seawall-")
            }
            out = web.StreamResponse(status=up.status, headers=out_headers | dict(extra(up.status)))
            if (length := up.headers.get("Content-Length")) is not None:
                out.content_length = int(length)
            await out.prepare(request)
            if request.method != "HEAD":
                async for chunk in up.content.iter_chunked(256 * 1024):
                    await out.write(chunk)
            await out.write_eof()
            return out

    async def repositories(self) -> list[str]:
        """Every repository of the real registry (its catalog, all pages)."""
        names: list[str] = []
        params: dict[str, str | int] = {"n": _PAGE}
        while True:
            status, doc, _ = await self.json("/v2/_catalog", params, "application/json")
            page = list(doc.get("repositories") or []) if status == 200 and doc else []
            names.extend(page)
            if len(page) < _PAGE:
                return names
            params = {"n": _PAGE, "last": page[-1]}

    async def delete(self, path: str) -> int:
        assert self.http is not None
        headers = self._headers("application/json")
        async with self.http.delete(self.url + path, headers=headers) as up:
            return up.status
