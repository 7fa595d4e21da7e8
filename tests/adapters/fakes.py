"""A small in-memory registry (aiohttp server on 127.0.0.1) that misbehaves on request.

It speaks just enough of the protocol for the client's fault paths — tags with pagination,
manifests, blobs with Range, uploads with status, a token endpoint — and records what it saw
(``hits``, bytes received, concurrency). Faults are plain attributes the test sets:
``faults[(method, path_suffix)]`` is a list of canned answers consumed one per matching request
(``Fault(status, headers)``, or ``RESET`` to drop the connection), and ``patch_reset_after``
cuts the n-th PATCH after some bytes, ``patch_status`` answers it with a status unread.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import ssl
import uuid
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

from aiohttp import web
from aiohttp.typedefs import Handler

__all__ = ["RESET", "FakeRegistry", "Fault", "serve"]


@dataclass(frozen=True)
class Fault:
    status: int
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b'{"errors":[{"code":"UNAVAILABLE","message":"injected"}]}'


RESET = Fault(0)  # abort the connection instead of answering


@asynccontextmanager
async def serve(
    app: web.Application, ssl_context: ssl.SSLContext | None = None
) -> AsyncIterator[str]:
    runner = web.AppRunner(app, handle_signals=False, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=ssl_context)
    await site.start()
    host, port = runner.addresses[0][:2]
    try:
        yield f"{'https' if ssl_context else 'http'}://{host}:{port}"
    finally:
        await runner.cleanup()


class FakeRegistry:
    def __init__(self) -> None:
        self.tags: dict[str, list[str]] = {}
        self.manifests: dict[str, tuple[bytes, str]] = {}  # reference -> (data, media type)
        self.digest_header: dict[str, str] = {}  # reference -> a (possibly lying) digest
        self.blobs: dict[str, bytes] = {}
        self.uploads: dict[str, bytearray] = {}
        self.faults: dict[tuple[str, str], list[Fault]] = {}
        self.hits: Counter[tuple[str, str]] = Counter()
        self.patch_reset_after: dict[int, int] = {}  # n-th PATCH (1-based) -> bytes kept
        self.patch_status: dict[int, int] = {}  # n-th PATCH -> status, body left unread
        self.patches = 0
        self.expire_sessions_on_status = False
        self.bytes_received = 0
        self.ignore_range = False
        self.cut_blob_after: list[int] = []  # drop GET blob connections after these bytes
        self.token_requests: list[dict[str, str]] = []
        self.token_seconds = 300
        self.token_get_status = 200  # e.g. 405: only the OAuth2 POST form works
        self.revoked_tokens: set[str] = set()
        self.revoke_tokens_after_patch: int | None = None  # all tokens so far stop working
        self.require_token = False
        self.in_flight = self.max_in_flight = 0
        self.delay_seconds = 0.0

    def app(self) -> web.Application:
        app = web.Application(middlewares=[self._middleware], client_max_size=1024**3)
        r = app.router
        r.add_route("*", "/token", self._token)
        r.add_get("/v2/", self._base)
        r.add_get("/v2/{name:.+}/tags/list", self._tags)
        r.add_route("*", "/v2/{name:.+}/manifests/{ref}", self._manifest)
        r.add_route("*", "/v2/{name:.+}/blobs/uploads/{id:.*}", self._upload)
        r.add_route("*", "/v2/{name:.+}/blobs/{digest}", self._blob)
        return app

    @web.middleware
    async def _middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        key = next(
            (k for k in self.faults if k[0] == request.method and request.path.endswith(k[1])),
            None,
        )
        self.hits[(request.method, request.path)] += 1
        if key is not None and self.faults[key]:
            fault = self.faults[key].pop(0)
            if fault is RESET:
                assert request.transport is not None
                request.transport.abort()
                raise asyncio.CancelledError
            return web.Response(status=fault.status, headers=fault.headers, body=fault.body)
        if self.require_token and request.path.startswith("/v2/"):
            auth = request.headers.get("Authorization", "")
            if not auth.startswith("Bearer tok-") or auth[7:] in self.revoked_tokens:
                realm = f"http://{request.host}/token"
                return web.Response(
                    status=401,
                    headers={"WWW-Authenticate": f'Bearer realm="{realm}",service="fake"'},
                )
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            if self.delay_seconds:
                await asyncio.sleep(self.delay_seconds)
            return await handler(request)
        finally:
            self.in_flight -= 1

    async def _base(self, request: web.Request) -> web.Response:
        return web.json_response({}, headers={"Docker-Distribution-API-Version": "registry/2.0"})

    async def _token(self, request: web.Request) -> web.Response:
        if request.method == "GET" and self.token_get_status != 200:
            return web.Response(status=self.token_get_status)
        query = dict(await request.post()) if request.method == "POST" else dict(request.query)
        if "Authorization" in request.headers:
            query["authorization"] = request.headers["Authorization"]
        self.token_requests.append({k: str(v) for k, v in query.items()})
        token = f"tok-{len(self.token_requests)}"
        return web.json_response({"token": token, "expires_in": self.token_seconds})

    async def _tags(self, request: web.Request) -> web.Response:
        name = request.match_info["name"]
        tags = sorted(self.tags.get(name, []))
        n = int(request.query.get("n", "1000"))
        last = request.query.get("last")
        rest = [t for t in tags if last is None or t > last]
        page, more = rest[:n], len(rest) > n
        headers = {}
        if more:
            headers["Link"] = f'</v2/{name}/tags/list?n={n}&last={page[-1]}>; rel="next"'
        return web.json_response({"name": name, "tags": page}, headers=headers)

    async def _manifest(self, request: web.Request) -> web.Response:
        ref = request.match_info["ref"]
        if ref not in self.manifests:
            return web.json_response({"errors": [{"code": "MANIFEST_UNKNOWN"}]}, status=404)
        data, media_type = self.manifests[ref]
        digest = self.digest_header.get(ref, "sha256:" + hashlib.sha256(data).hexdigest())
        headers = {"Docker-Content-Digest": digest, "Content-Type": media_type}
        if request.method == "HEAD":
            headers["Content-Length"] = str(len(data))
            return web.Response(headers=headers)
        return web.Response(body=data, headers=headers)

    async def _blob(self, request: web.Request) -> web.StreamResponse:
        data = self.blobs.get(request.match_info["digest"])
        if data is None:
            return web.json_response({"errors": [{"code": "BLOB_UNKNOWN"}]}, status=404)
        start = 0
        rng = request.headers.get("Range")
        if rng and not self.ignore_range:
            start = int(rng.removeprefix("bytes=").split("-")[0])
        response = web.StreamResponse(status=206 if start else 200)
        response.content_length = len(data) - start
        if start:
            response.headers["Content-Range"] = f"bytes {start}-{len(data) - 1}/{len(data)}"
        await response.prepare(request)
        if request.method == "HEAD":
            return response
        cut = self.cut_blob_after.pop(0) if self.cut_blob_after else None
        end = len(data) if cut is None else min(len(data), start + cut)
        await response.write(data[start:end])
        if cut is not None:
            await response.drain()
            assert request.transport is not None
            request.transport.abort()
            return response
        await response.write_eof()
        return response

    async def _upload(self, request: web.Request) -> web.StreamResponse:
        name, upload_id = request.match_info["name"], request.match_info["id"]
        if request.method == "GET" and self.expire_sessions_on_status:
            self.uploads.clear()
        if request.method == "POST":
            upload_id = uuid.uuid4().hex
            self.uploads[upload_id] = bytearray()
            return self._progress(name, upload_id, 202)
        if upload_id not in self.uploads:
            return web.json_response({"errors": [{"code": "BLOB_UPLOAD_UNKNOWN"}]}, status=404)
        if request.method == "DELETE":
            del self.uploads[upload_id]
            return web.Response(status=204)
        if request.method == "GET":
            return self._progress(name, upload_id, 204)
        if request.method == "PATCH":
            return await self._patch(request, name, upload_id)
        return await self._put(request, name, upload_id)

    async def _patch(self, request: web.Request, name: str, upload_id: str) -> web.Response:
        self.patches += 1
        if self.patches in self.patch_status:
            return web.Response(status=self.patch_status[self.patches])
        buf = self.uploads[upload_id]
        start = int(request.headers["Content-Range"].split("-")[0])
        if start != len(buf):
            return self._progress(name, upload_id, 416)
        keep = self.patch_reset_after.get(self.patches)
        async for chunk in request.content.iter_any():
            self.bytes_received += len(chunk)
            if keep is not None and len(buf) + len(chunk) >= start + keep:
                buf += chunk[: start + keep - len(buf)]
                assert request.transport is not None
                request.transport.abort()  # the registry kept `keep` bytes of this chunk
                raise asyncio.CancelledError
            buf += chunk
        if self.patches == self.revoke_tokens_after_patch:
            self.revoked_tokens |= {f"tok-{i + 1}" for i in range(len(self.token_requests))}
        return self._progress(name, upload_id, 202)

    async def _put(self, request: web.Request, name: str, upload_id: str) -> web.Response:
        buf = self.uploads[upload_id]
        async for chunk in request.content.iter_any():
            self.bytes_received += len(chunk)
            buf += chunk
        digest = request.query["digest"]
        if "sha256:" + hashlib.sha256(buf).hexdigest() != digest:
            body = json.dumps({"errors": [{"code": "DIGEST_INVALID", "message": "mismatch"}]})
            return web.Response(status=400, text=body, content_type="application/json")
        self.blobs[digest] = bytes(buf)
        del self.uploads[upload_id]
        return web.Response(status=201, headers={"Docker-Content-Digest": digest})

    def _progress(self, name: str, upload_id: str, status: int) -> web.Response:
        size = len(self.uploads[upload_id])
        return web.Response(
            status=status,
            headers={
                "Location": f"/v2/{name}/blobs/uploads/{upload_id}",
                "Range": f"0-{max(size - 1, 0)}",
            },
        )
