"""The Artifact Registry REST API (v1), as much of it as replication needs: list a project's
repositories in a location, get or create one, list a repository's Docker images with their
digests and tags.

    GET  {api}/v1/projects/P/locations/L/repositories?pageSize=1000[&pageToken=T]
    GET  {api}/v1/projects/P/locations/L/repositories/R
    POST {api}/v1/projects/P/locations/L/repositories?repositoryId=R   -> a long-running Operation
    GET  {api}/v1/projects/P/locations/L/repositories/R/dockerImages?pageSize=1000[&pageToken=T]

A ``DockerImage`` is one manifest: ``uri`` (``L-docker.pkg.dev/P/R/IMAGE@sha256:…``), ``tags``,
``mediaType``, ``imageSizeBytes`` (the image's total size, not the manifest's). Requests go
through the OCI client's session: a bearer access token (refreshed before expiry and once per
401), ``429``/``Retry-After`` and 5xx retries, per-host pacing. Google's error bodies
(``{"error": {"code", "message", "status"}}``) become :mod:`adapters.oci.errors` with
Google's message.
"""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlencode

import anyio

from adapters.oci.auth import Credentials, RegistryAuth
from adapters.oci.credentials import CredentialProvider, RefreshingCredentials
from adapters.oci.errors import (
    Denied,
    NotFound,
    OciError,
    ProtocolError,
    RequestRejected,
    ServerError,
    Unauthorized,
)
from adapters.oci.limits import RetryPolicy
from adapters.oci.session import RegistrySession
from adapters.oci.transport import AiohttpTransport, Request, Transport

__all__ = ["ArRepository", "ArtifactRegistryApi", "DockerImage", "parse_docker_image"]

PAGE_SIZE = 1000  # the API's maximum for both listings
_MAX_PAGES = 10_000
_MAX_BODY_BYTES = 64 << 20
_EXPECTED = (200, 400, 401, 403, 404, 409)


@dataclass(frozen=True, slots=True)
class ArRepository:
    """An Artifact Registry repository: ``projects/P/locations/L/repositories/R``."""

    project: str
    location: str
    repository_id: str
    format: str  # "DOCKER", "MAVEN", ...
    mode: str  # "STANDARD_REPOSITORY", "REMOTE_REPOSITORY", "VIRTUAL_REPOSITORY"


@dataclass(frozen=True, slots=True)
class DockerImage:
    """One manifest of a Docker repository: ``name`` is the OCI repository name
    (``P/R/IMAGE[/...]``), ``size_bytes`` the image's total (layers and config)."""

    name: str
    digest: str
    tags: tuple[str, ...]
    media_type: str
    size_bytes: int | None


def parse_docker_image(doc: object) -> DockerImage | None:
    """A ``DockerImage`` resource, or None if it is not one (left out of a listing)."""
    if not isinstance(doc, dict) or not isinstance(doc.get("uri"), str):
        return None
    path, _, digest = doc["uri"].partition("/")[2].partition("@")
    if not path or not digest.startswith("sha256:"):
        return None
    raw_tags = doc.get("tags")
    tags = raw_tags if isinstance(raw_tags, list) else []
    raw_size = doc.get("imageSizeBytes")  # int64 travels as a string
    size = int(raw_size) if isinstance(raw_size, str | int) and str(raw_size).isdigit() else None
    media_type = doc.get("mediaType")
    return DockerImage(
        path,
        digest,
        tuple(str(t) for t in tags),
        media_type if isinstance(media_type, str) else "",
        size,
    )


def _repository(doc: object) -> ArRepository | None:
    if not isinstance(doc, dict) or not isinstance(doc.get("name"), str):
        return None
    parts = doc["name"].split("/")
    if len(parts) != 6 or parts[0::2] != ["projects", "locations", "repositories"]:
        return None
    fmt, mode = doc.get("format"), doc.get("mode")
    return ArRepository(
        parts[1],
        parts[3],
        parts[5],
        fmt if isinstance(fmt, str) else "",
        mode if isinstance(mode, str) else "STANDARD_REPOSITORY",
    )


class ArtifactRegistryApi:
    """A client of the Artifact Registry API for one endpoint.

    :param endpoint: the API's base URL (``https://artifactregistry.googleapis.com``).
    :param credential_provider: issues ``Credentials(token=<access token>)``; or
    :param access_token: a static access token.
    :param ca_file: the CA bundle a stand-in API's certificate is verified against (there is
        no way to turn verification off: the access token goes to this endpoint).
    :param clock: for the provider's expiry (tests inject one).
    :param operation_poll_seconds: pause between polls of a long-running operation.
    """

    def __init__(
        self,
        endpoint: str,
        *,
        credential_provider: CredentialProvider | None = None,
        access_token: str | None = None,
        ca_file: str | None = None,
        retries: int = 5,
        backoff_base_seconds: float = 0.5,
        max_retry_after_seconds: float = 300.0,
        transport: Transport | None = None,
        clock: Callable[[], float] | None = None,
        operation_poll_seconds: float = 1.0,
        operation_polls: int = 60,
    ) -> None:
        self.endpoint = endpoint.rstrip("/")
        self.credentials = (
            RefreshingCredentials(credential_provider, clock=clock or time.time)
            if credential_provider is not None
            else None
        )
        # TLS is verified always: the access token travels on these connections
        self._transport = transport or AiohttpTransport(insecure=False, ca_file=ca_file)
        self.session = RegistrySession(
            self._transport,
            RegistryAuth(Credentials(token=access_token)),
            max_in_flight=8,
            policy=RetryPolicy(
                retries=retries,
                backoff_base_seconds=backoff_base_seconds,
                max_retry_after_seconds=max_retry_after_seconds,
            ),
            credentials=self.credentials,
        )
        self._poll_seconds = operation_poll_seconds
        self._polls = operation_polls

    async def close(self) -> None:
        await self._transport.aclose()

    def _url(self, path: str, **query: str | int) -> str:
        suffix = "?" + urlencode(query) if query else ""
        return f"{self.endpoint}/v1/{quote(path, safe='/')}{suffix}"

    async def _call(self, method: str, url: str, body: dict[str, Any] | None = None) -> Any:
        """Google's JSON answer to one request; its errors as ours, with Google's message."""
        headers = {"Accept": "application/json"}
        content = None
        if body is not None:
            headers["Content-Type"] = "application/json"
            content = json.dumps(body).encode()
        request = Request(method, url, headers=headers, content=content, retry=method == "GET")
        async with self.session.request(request, expect=_EXPECTED) as response:
            status, data = response.status, await response.read(_MAX_BODY_BYTES)
        try:
            doc = json.loads(data) if data else {}
        except ValueError:
            doc = None
        if status == 200 and isinstance(doc, dict):
            return doc
        if status == 200:
            raise ProtocolError("the Artifact Registry API answered without JSON", url=url)
        raise _error(status, doc, data, method, url)

    async def _pages(self, path: str, key: str) -> AsyncIterator[Any]:
        """Every item of a paged listing, following ``nextPageToken``."""
        token = ""
        for _ in range(_MAX_PAGES):
            query: dict[str, str | int] = {"pageSize": PAGE_SIZE}
            if token:
                query["pageToken"] = token
            doc = await self._call("GET", self._url(path, **query))
            for item in doc.get(key) or []:
                yield item
            token = doc.get("nextPageToken") or ""
            if not isinstance(token, str) or not token:
                return
        raise ProtocolError(f"more than {_MAX_PAGES} pages of {path}", url=self._url(path))

    async def list_repositories(self, project: str, location: str) -> list[ArRepository]:
        """The project's repositories in ``location`` (every format)."""
        path = f"projects/{project}/locations/{location}/repositories"
        out = [r async for doc in self._pages(path, "repositories") if (r := _repository(doc))]
        return out

    async def get_repository(
        self, project: str, location: str, repository_id: str
    ) -> ArRepository | None:
        """The repository, or None if it does not exist."""
        path = f"projects/{project}/locations/{location}/repositories/{repository_id}"
        try:
            return _repository(await self._call("GET", self._url(path)))
        except NotFound:
            return None

    async def create_repository(self, project: str, location: str, repository_id: str) -> None:
        """Create a standard Docker repository and wait for the operation; one that exists
        already (created meanwhile) is fine."""
        path = f"projects/{project}/locations/{location}/repositories"
        url = self._url(path, repositoryId=repository_id)
        body = {"format": "DOCKER", "description": "created by Seawall replication"}
        try:
            operation = await self._call("POST", url, body)
        except RequestRejected as e:
            if e.status == 409:
                return
            raise
        await self._wait(operation, url)

    async def _wait(self, operation: dict[str, Any], url: str) -> None:
        for _ in range(self._polls):
            if operation.get("done"):
                error = operation.get("error")
                if isinstance(error, dict):
                    if error.get("code") == 6:  # ALREADY_EXISTS
                        return
                    raise RequestRejected(str(error.get("message") or error)[:500], url=url)
                return
            name = operation.get("name")
            if not isinstance(name, str) or not name:
                raise ProtocolError("a long-running operation without a name", url=url)
            await anyio.sleep(self._poll_seconds)
            operation = await self._call("GET", self._url(name))
        raise ServerError(f"the operation did not finish after {self._polls} polls", url=url)

    async def list_docker_images(
        self, project: str, location: str, repository_id: str
    ) -> list[DockerImage]:
        """Every manifest of the repository with its tags (one request per 1000)."""
        path = f"projects/{project}/locations/{location}/repositories/{repository_id}/dockerImages"
        return [
            i async for doc in self._pages(path, "dockerImages") if (i := parse_docker_image(doc))
        ]


def _error(status: int, doc: object, data: bytes, method: str, url: str) -> OciError:
    """Google's ``{"error": {"code", "message", "status"}}`` as one of our errors."""
    error = doc.get("error") if isinstance(doc, dict) else None
    if isinstance(error, dict):
        message = str(error.get("message") or "")[:500]
        code = str(error.get("status") or "") or None
    else:
        message, code = data[:200].decode("utf-8", "replace").strip(), None
    kind: type[OciError] = {401: Unauthorized, 403: Denied, 404: NotFound}.get(
        status, RequestRejected
    )
    return kind(message or f"HTTP {status}", status=status, code=code, method=method, url=url)
