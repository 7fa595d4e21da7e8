"""The Artifact Registry API of :class:`~tests.support.fake_google.FakeGoogle` (v1, JSON):
repositories listed, got and created (a long-running operation, done after
``create_operation_polls`` polls), and a repository's ``dockerImages`` with tags, media types
and sizes from the manifests pushed through the fake; ``pageSize`` (capped at
``api_max_page_size``) and ``pageToken``/``nextPageToken`` paging; a valid OAuth access token
required (else 401 ``UNAUTHENTICATED``)."""

from __future__ import annotations

import base64
import secrets
import time
from typing import TYPE_CHECKING, Any

from aiohttp import web

if TYPE_CHECKING:
    from tests.support.fake_google import FakeGoogle

__all__ = ["ApiFake", "api_error"]


def api_error(status: int, state: str, message: str, **headers: str) -> web.Response:
    """Google's error body: ``{"error": {"code", "message", "status"}}``."""
    body = {"error": {"code": status, "message": message, "status": state}}
    return web.json_response(body, status=status, headers=headers)


class ApiFake:
    """Answers ``/v1/projects/P/locations/L/...`` for the fake."""

    def __init__(self, fake: FakeGoogle) -> None:
        self.fake = fake
        self._operations: dict[str, list[int]] = {}  # operation name -> [polls left]

    async def handle(self, request: web.Request, route: str) -> web.Response:
        """A ``/v1/`` request (``route`` as the fake counts it)."""
        token = request.headers.get("Authorization", "").removeprefix("Bearer ")
        if not self.fake.valid_access_token(token):
            return api_error(
                401,
                "UNAUTHENTICATED",
                "Request had invalid authentication credentials. Expected OAuth 2 access token",
                **{"WWW-Authenticate": 'Bearer realm="https://accounts.google.com/"'},
            )
        parts = request.path.removeprefix("/v1/").split("/")
        if len(parts) < 4 or parts[0] != "projects" or parts[2] != "locations":
            return api_error(404, "NOT_FOUND", "Requested entity was not found.")
        project, location = parts[1], parts[3]
        if location != self.fake.location:
            return api_error(400, "INVALID_ARGUMENT", f"location {location} is not served here")
        if route == "api_operation":
            return self._operation(request.path.removeprefix("/v1/"))
        if route == "api_repositories":
            docs = [d for (p, _), d in sorted(self.fake.repositories.items()) if p == project]
            return self._page(request, "repositories", docs)
        if route == "api_create_repository":
            return await self._create(request, project)
        repo = self.fake.repositories.get((project, parts[5] if len(parts) > 5 else ""))
        if repo is None:
            return api_error(404, "NOT_FOUND", f"Repository {'/'.join(parts[:6])!r} not found")
        if route == "api_repository":
            return web.json_response(repo)
        return self._page(request, "dockerImages", self._docker_images(project, parts[5]))

    def _page(self, request: web.Request, key: str, items: list[dict[str, Any]]) -> web.Response:
        try:
            size = min(int(request.query.get("pageSize") or 100), self.fake.api_max_page_size)
            start = int(base64.urlsafe_b64decode(request.query.get("pageToken") or "MA==") or 0)
        except ValueError:
            return api_error(400, "INVALID_ARGUMENT", "bad pageSize or pageToken")
        doc: dict[str, Any] = {key: items[start : start + size]}
        if start + size < len(items):
            doc["nextPageToken"] = base64.urlsafe_b64encode(str(start + size).encode()).decode()
        return web.json_response(doc)

    def _docker_images(self, project: str, repository_id: str) -> list[dict[str, Any]]:
        base = f"{project}/{repository_id}/"
        out = []
        for name, images in sorted(self.fake.images.items()):
            if not name.startswith(base):
                continue
            path = name[len(base) :]
            for digest, image in sorted(images.items()):
                when = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(image.uploaded_ms / 1000))
                out.append(
                    {
                        "name": f"projects/{project}/locations/{self.fake.location}/repositories/"
                        f"{repository_id}/dockerImages/{path.replace('/', '%2F')}@{digest}",
                        "uri": f"{self.fake.location}-docker.pkg.dev/{name}@{digest}",
                        "tags": sorted(image.tags),
                        "imageSizeBytes": str(image.size_bytes),
                        "uploadTime": when,
                        "mediaType": image.media_type,
                        "updateTime": when,
                    }
                )
        return out

    async def _create(self, request: web.Request, project: str) -> web.Response:
        repository_id = request.query.get("repositoryId", "")
        body = await request.json() if request.can_read_body else {}
        if not repository_id or body.get("format") != "DOCKER":
            return api_error(400, "INVALID_ARGUMENT", "repositoryId and format DOCKER required")
        if (project, repository_id) in self.fake.repositories:
            return api_error(409, "ALREADY_EXISTS", "the repository already exists")
        self.fake.create_repository(project, repository_id)
        name = (
            f"projects/{project}/locations/{self.fake.location}/operations/{secrets.token_hex(8)}"
        )
        self._operations[name] = [self.fake.create_operation_polls]
        return self._operation(name, count=False)

    def _operation(self, name: str, *, count: bool = True) -> web.Response:
        left = self._operations.get(name)
        if left is None:
            return api_error(404, "NOT_FOUND", "no such operation")
        if count and left[0] > 0:
            left[0] -= 1
        return web.json_response(
            {"name": name, "done": left[0] == 0} | ({} if left[0] else {"response": {}})
        )
