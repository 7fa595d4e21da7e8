"""The GitLab REST API (v4), as much of it as replication needs: projects, container
repositories of a group or a project, their tags (with digests), tag deletion, and what the
access token itself is.

    GET    {gitlab}/api/v4/personal_access_tokens/self
    GET    {gitlab}/api/v4/projects/:id
    GET    {gitlab}/api/v4/groups/:id/registry/repositories?per_page=100&page=N
    GET    {gitlab}/api/v4/projects/:id/registry/repositories?per_page=100&page=N
    GET    {gitlab}/api/v4/projects/:id/registry/repositories/:repository_id/tags
    GET    {gitlab}/api/v4/projects/:id/registry/repositories/:repository_id/tags/:tag_name
    DELETE {gitlab}/api/v4/projects/:id/registry/repositories/:repository_id/tags/:tag_name

``:id`` is a number or the URL-encoded full path. Listings are paged (``page``/``per_page``)
and the next page is named by the ``X-Next-Page`` header (empty on the last). The token goes
in ``PRIVATE-TOKEN`` (personal, project and group access tokens). Requests run through the
OCI client's session (retries of GETs, ``429``/``Retry-After``, 5xx); GitLab's error bodies
(``{"message": ...}`` or OAuth's ``{"error", "error_description"}``) become
:mod:`adapters.oci.errors` with GitLab's words, here and only here.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from urllib.parse import quote, urlencode

from adapters.oci.auth import Credentials, RegistryAuth
from adapters.oci.errors import (
    Denied,
    NotFound,
    OciError,
    ProtocolError,
    RateLimited,
    RequestRejected,
    ServerError,
    Unauthorized,
)
from adapters.oci.limits import RetryPolicy
from adapters.oci.session import RegistrySession
from adapters.oci.transport import AiohttpTransport, Request, Transport
from adapters.oci.urls import is_digest

__all__ = [
    "PER_PAGE",
    "AccessToken",
    "ContainerRepository",
    "GitLabApi",
    "GitLabProject",
]

PER_PAGE = 100  # GitLab's maximum page size
_MAX_PAGES = 10_000
_MAX_BODY_BYTES = 32 << 20
_EXPECTED = (200, 201, 202, 204, 400, 401, 403, 404, 409)


@dataclass(frozen=True, slots=True)
class AccessToken:
    """``GET /personal_access_tokens/self``: the token's name, scopes and last day."""

    name: str
    scopes: frozenset[str]
    active: bool
    expires_at_seconds: float | None  # the end of its ``expires_at`` day (UTC); None: never


@dataclass(frozen=True, slots=True)
class GitLabProject:
    id: int
    full_path: str  # path_with_namespace


@dataclass(frozen=True, slots=True)
class ContainerRepository:
    """One container repository: ``path`` is its registry path (lower case)."""

    id: int
    project_id: int
    path: str


class GitLabApi:
    """A client of one GitLab instance's REST API.

    :param base_url: the instance (``https://gitlab.com``); ``/api/v4`` is appended.
    :param token: the access token sent as ``PRIVATE-TOKEN``; None: anonymous (public
        projects only).
    """

    def __init__(
        self,
        base_url: str,
        *,
        token: str | None,
        insecure: bool = False,
        ca_file: str | None = None,
        retries: int = 5,
        backoff_base_seconds: float = 0.5,
        transport: Transport | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self._token = token
        self._transport = transport or AiohttpTransport(insecure=insecure, ca_file=ca_file)
        self.session = RegistrySession(
            self._transport,
            RegistryAuth(Credentials()),
            max_in_flight=8,
            policy=RetryPolicy(retries=retries, backoff_base_seconds=backoff_base_seconds),
        )
        self.requests = 0  # sent so far (for tests and stats)

    async def close(self) -> None:
        await self._transport.aclose()

    def url(self, path: str, **query: str | int) -> str:
        suffix = "?" + urlencode(query) if query else ""
        return f"{self.base_url}/api/v4/{path}{suffix}"

    async def call(self, method: str, url: str) -> tuple[object, dict[str, str]]:
        """GitLab's JSON answer and headers; its errors as ours, with GitLab's message."""
        headers = {"Accept": "application/json"}
        if self._token:
            headers["PRIVATE-TOKEN"] = self._token
        request = Request(method, url, headers=headers, retry=method == "GET")
        self.requests += 1
        async with self.session.request(request, expect=_EXPECTED) as response:
            status, data = response.status, await response.read(_MAX_BODY_BYTES)
            got = {k: v for k, v in response.headers.items() if k.lower().startswith("x-")}
        try:
            doc = json.loads(data) if data else None
        except ValueError:
            doc = None
        if 200 <= status < 300:
            return doc, got
        raise _error(status, doc, data, method, url)

    async def pages(self, path: str) -> AsyncIterator[object]:
        """Every item of a paged listing, following ``X-Next-Page``."""
        page = "1"
        for _ in range(_MAX_PAGES):
            url = self.url(path, per_page=PER_PAGE, page=page)
            doc, headers = await self.call("GET", url)
            if not isinstance(doc, list):
                raise ProtocolError("GitLab answered a listing without a JSON array", url=url)
            for item in doc:
                yield item
            page = _header(headers, "X-Next-Page")
            if not page:
                return
        raise ProtocolError(f"more than {_MAX_PAGES} pages of {path}", url=self.url(path))

    # -- what the API offers ---------------------------------------------------------------

    async def access_token(self) -> AccessToken | None:
        """The token's own record; None where GitLab has no such endpoint (before 15.5)."""
        try:
            doc, _ = await self.call("GET", self.url("personal_access_tokens/self"))
        except NotFound:
            return None
        if not isinstance(doc, dict):
            raise ProtocolError("GitLab described the access token without JSON")
        scopes = doc.get("scopes")
        return AccessToken(
            name=str(doc.get("name") or ""),
            scopes=frozenset(str(s) for s in scopes) if isinstance(scopes, list) else frozenset(),
            active=bool(doc.get("active", True)) and not doc.get("revoked", False),
            expires_at_seconds=_end_of_day(doc.get("expires_at")),
        )

    async def project(self, full_path: str) -> GitLabProject | None:
        """The project at ``full_path``, or None if there is none (or it is not visible)."""
        try:
            doc, _ = await self.call("GET", self.url(f"projects/{_id(full_path)}"))
        except NotFound:
            return None
        if not isinstance(doc, dict) or not isinstance(doc.get("id"), int):
            raise ProtocolError(f"GitLab described project {full_path!r} without an id")
        return GitLabProject(doc["id"], str(doc.get("path_with_namespace") or full_path))

    async def group_repositories(self, group: str) -> list[ContainerRepository]:
        """Every container repository of the group's projects, subgroups included."""
        path = f"groups/{_id(group)}/registry/repositories"
        return [r async for doc in self.pages(path) if (r := _repository(doc)) is not None]

    async def project_repositories(self, project: str | int) -> list[ContainerRepository]:
        path = f"projects/{_id(project)}/registry/repositories"
        return [r async for doc in self.pages(path) if (r := _repository(doc)) is not None]

    async def tags(self, repository: ContainerRepository) -> list[str]:
        """The repository's tag names (GitLab's listing says nothing more useful)."""
        path = f"projects/{repository.project_id}/registry/repositories/{repository.id}/tags"
        out = []
        async for doc in self.pages(path):
            if isinstance(doc, dict) and isinstance(doc.get("name"), str):
                out.append(doc["name"])
        return out

    async def tag_digest(self, repository: ContainerRepository, tag: str) -> str | None:
        """The digest the tag names (its details' ``digest``); None if the tag is gone."""
        try:
            doc, _ = await self.call("GET", self.url(_tag_path(repository, tag)))
        except NotFound:
            return None
        digest = doc.get("digest") if isinstance(doc, dict) else None
        return digest if isinstance(digest, str) and is_digest(digest) else None

    async def delete_tag(self, repository: ContainerRepository, tag: str) -> None:
        """Delete one tag (the manifest stays while other tags or digests name it)."""
        await self.call("DELETE", self.url(_tag_path(repository, tag)))


def _id(project: str | int) -> str:
    return str(project) if isinstance(project, int) else quote(project.strip("/"), safe="")


def _tag_path(repository: ContainerRepository, tag: str) -> str:
    base = f"projects/{repository.project_id}/registry/repositories/{repository.id}"
    return f"{base}/tags/{quote(tag, safe='')}"


def _header(headers: dict[str, str], name: str) -> str:
    for key, value in headers.items():
        if key.lower() == name.lower():
            return value.strip()
    return ""


def _repository(doc: object) -> ContainerRepository | None:
    if not isinstance(doc, dict):
        return None
    rid, pid, path = doc.get("id"), doc.get("project_id"), doc.get("path")
    if not isinstance(rid, int) or not isinstance(pid, int) or not isinstance(path, str):
        return None
    return ContainerRepository(rid, pid, path)


def _end_of_day(value: object) -> float | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        day = date.fromisoformat(value[:10])
    except ValueError:
        return None
    return (datetime.combine(day, time(), UTC) + timedelta(days=1)).timestamp()


def _error(status: int, doc: object, data: bytes, method: str, url: str) -> OciError:
    """GitLab's ``{"message": ...}`` or ``{"error", "error_description"}`` as our error."""
    message = ""
    code = None
    if isinstance(doc, dict):
        if "message" in doc:
            raw = doc["message"]
            message = raw if isinstance(raw, str) else json.dumps(raw)
        elif isinstance(doc.get("error"), str):
            code = doc["error"]
            message = str(doc.get("error_description") or doc["error"])
    if not message:
        message = data[:200].decode("utf-8", "replace").strip() or f"HTTP {status}"
    kind: type[OciError] = {
        401: Unauthorized,
        403: Denied,
        404: NotFound,
        429: RateLimited,
    }.get(status, ServerError if status >= 500 else RequestRejected)
    return kind(f"GitLab: {message[:500]}", status=status, code=code, method=method, url=url)
