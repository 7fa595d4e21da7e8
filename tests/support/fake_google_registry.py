"""The data plane of :class:`~tests.support.fake_google.FakeGoogle`: ``/v2/...`` proxied to
the real registry with the backend's login, and Google's own ways on top (see the fake's module
docstring): bearer tokens from the fake's token endpoint checked per scope, the ``tags/list``
``manifest`` map (GCR's ``timeUploadedMs`` a string, Artifact Registry's a number), tag deletes,
``GOOGLE_MANIFEST_DANGLING_TAG``, no mounts, no referrers API where switched off, and (GAR) no
request for a name outside an existing Artifact Registry repository."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

import aiohttp
from aiohttp import web

if TYPE_CHECKING:
    from tests.support.fake_google import FakeGoogle

__all__ = ["Image", "RegistryFront", "registry_error"]

_HOP = {"host", "authorization", "content-length", "transfer-encoding", "connection"}
_HOP |= {"keep-alive", "accept-encoding", "content-encoding"}


@dataclass
class Image:
    """A manifest pushed through the fake: what Google's listings say of it."""

    media_type: str
    size_bytes: int
    uploaded_ms: int
    tags: set[str] = field(default_factory=set)


def registry_error(status: int, code: str, message: str, **headers: str) -> web.Response:
    body = {"errors": [{"code": code, "message": message}]}
    return web.json_response(body, status=status, headers=headers)


def _image_size(data: bytes) -> int:
    """The image's total size (config and layers, or an index's children), as Google's
    ``imageSizeBytes``."""
    try:
        doc = json.loads(data)
        parts = [doc.get("config") or {}, *(doc.get("layers") or []), *(doc.get("manifests") or [])]
        return sum(int(p.get("size") or 0) for p in parts if isinstance(p, dict))
    except (ValueError, AttributeError, TypeError):
        return 0


class RegistryFront:
    """Answers ``/v2/...`` for the fake; owns the HTTP session to the backend."""

    def __init__(self, fake: FakeGoogle, backend_url: str, login: tuple[str, str] | None) -> None:
        self.fake = fake
        self.backend_url = backend_url.rstrip("/")
        self._auth = aiohttp.BasicAuth(*login).encode() if login is not None else None
        self._session: aiohttp.ClientSession | None = None

    async def open(self) -> None:
        self._session = aiohttp.ClientSession(auto_decompress=False)

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()

    @staticmethod
    def _split(path: str) -> tuple[str, str, str]:
        """``(name, kind, rest)`` of ``/v2/<name>/<kind>/<rest>``."""
        body = path[len("/v2/") :]
        for kind in ("/manifests/", "/blobs/", "/tags/", "/referrers/"):
            name, sep, rest = body.rpartition(kind)
            if sep and "/" not in rest.replace("uploads/", "", 1):
                return name, kind.strip("/"), rest
        return "", "", ""

    def _need(self, request: web.Request, route: str, name: str) -> tuple[str, str] | None:
        if route == "ping":
            return None
        if route == "catalog":
            return ("registry:catalog", "*")
        action = {"GET": "pull", "HEAD": "pull", "DELETE": "delete"}.get(request.method, "push")
        return (name, action)

    async def handle(self, request: web.Request, route: str) -> web.StreamResponse:
        """A ``/v2/`` request (``route`` as the fake counts it)."""
        name, _, rest = (
            self._split(request.path) if route not in ("ping", "catalog") else ("", "", "")
        )
        need = self._need(request, route, name)
        bearer = request.headers.get("Authorization", "").removeprefix("Bearer ")
        token = self.fake.registry_tokens.get(bearer)
        granted = (
            token.grants if token is not None and token.expires_at > self.fake.clock() else None
        )
        if granted is None or (need is not None and need not in granted):
            scope = "" if need is None else f"repository:{need[0]}:{need[1]}"
            if route == "catalog":
                scope = "registry:catalog:*"
            return self.fake.challenge(scope)
        if name and self.fake.flavor == "gar" and self._ar_repository(name) is None:
            return registry_error(404, "NAME_UNKNOWN", f"Repository {name!r} not found")
        if route == "tags_list":
            return await self._tags_list(name)
        if route == "referrers" and not self.fake.referrers_api:
            return registry_error(404, "NAME_UNKNOWN", "not found")
        if route == "catalog":
            query = {k: v for k, v in request.query.items() if k in ("n", "last")}
            return await self._forward(request, query=query, accept="application/json")
        if route == "upload" and request.method == "POST":
            query = {k: v for k, v in request.query.items() if k not in ("mount", "from")}
            return await self._forward(request, query=query)
        if route == "manifest":
            return await self._manifest(request, name, rest)
        return await self._forward(request)

    def _ar_repository(self, name: str) -> dict[str, str] | None:
        parts = name.split("/")
        return self.fake.repositories.get((parts[0], parts[1])) if len(parts) >= 3 else None

    async def _manifest(
        self, request: web.Request, name: str, reference: str
    ) -> web.StreamResponse:
        images = self.fake.images.setdefault(name, {})
        is_digest = reference.startswith("sha256:")
        found = images.get(reference) if request.method == "DELETE" and is_digest else None
        if found is not None and found.tags:
            tags = ", ".join(sorted(found.tags))
            message = f"Manifest is still referenced by tag: {tags}"
            return registry_error(400, "GOOGLE_MANIFEST_DANGLING_TAG", message)
        body = await request.read() if request.method == "PUT" else None
        response = await self._forward(request, body=body)
        if request.method == "PUT" and response.status == 201 and body is not None:
            digest = (
                response.headers.get("Docker-Content-Digest")
                or "sha256:" + hashlib.sha256(body).hexdigest()
            )
            media_type = request.headers.get("Content-Type", "")
            image = images.setdefault(
                digest, Image(media_type, _image_size(body), int(self.fake.clock() * 1000))
            )
            if not is_digest:
                for other in images.values():
                    other.tags.discard(reference)
                image.tags.add(reference)
        elif request.method == "DELETE" and response.status in (200, 202):
            if is_digest:
                images.pop(reference, None)
            else:
                for image in images.values():
                    image.tags.discard(reference)
        return response

    async def _tags_list(self, name: str) -> web.Response:
        url = f"{self.backend_url}/v2/{name}/tags/list?n=100000"
        status, _, data = await self._backend("GET", url, {"Accept": "application/json"})
        if status != 200:
            return web.Response(status=status, body=data, content_type="application/json")
        tags = json.loads(data).get("tags") or []
        manifest: dict[str, dict[str, Any]] = {}
        for digest, image in self.fake.images.get(name, {}).items():
            uploaded: int | str = (
                image.uploaded_ms if self.fake.flavor == "gar" else str(image.uploaded_ms)
            )
            manifest[digest] = {
                "imageSizeBytes": str(image.size_bytes),
                "layerId": "",
                "mediaType": image.media_type,
                "tag": sorted(image.tags),
                "timeCreatedMs": str(image.uploaded_ms),
                "timeUploadedMs": uploaded,
            }
        prefix = name + "/"
        children = sorted(
            {n[len(prefix) :].split("/")[0] for n in self.fake.images if n.startswith(prefix)}
        )
        return web.json_response(
            {"child": children, "manifest": manifest, "name": name, "tags": tags}
        )

    async def _backend(
        self, method: str, url: str, headers: dict[str, str], body: bytes | None = None
    ) -> tuple[int, dict[str, str], bytes]:
        assert self._session is not None
        send = {**headers, "Accept-Encoding": "identity"}
        if self._auth is not None:
            send["Authorization"] = self._auth
        async with self._session.request(
            method, url, headers=send, data=body, allow_redirects=False
        ) as r:
            data = await r.read()
            return r.status, dict(r.headers.items()), data

    async def _forward(
        self,
        request: web.Request,
        *,
        query: dict[str, str] | None = None,
        body: bytes | None = None,
        accept: str | None = None,
    ) -> web.Response:
        params = list(request.query.items()) if query is None else list(query.items())
        url = self.backend_url + request.path + ("?" + urlencode(params) if params else "")
        headers = {k: v for k, v in request.headers.items() if k.lower() not in _HOP}
        if accept is not None:
            headers["Accept"] = accept
        if body is None and request.can_read_body:
            body = await request.read()
        status, got, data = await self._backend(request.method, url, headers, body)
        out = {k: v for k, v in got.items() if k.lower() not in _HOP}
        if "Location" in out and out["Location"].startswith(self.backend_url):
            out["Location"] = self.fake.url + out["Location"][len(self.backend_url) :]
        if request.method == "HEAD":
            if "Content-Length" in got:
                out["Content-Length"] = got["Content-Length"]
            return web.Response(status=status, headers=out)
        return web.Response(status=status, headers=out, body=data)
