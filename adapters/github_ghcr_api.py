"""The GitHub Packages REST API, as much of it as replication to and from GHCR needs.

GHCR's ``/v2/_catalog`` lists nothing and its manifest ``DELETE`` is not supported: packages
are found, and versions deleted, through GitHub's REST API (``X-GitHub-Api-Version:
2022-11-28``), with ``Authorization: Bearer <personal access token>``::

    GET    {api}/users/{owner}              -> {"type": "Organization" or "User"}
    GET    {api}/{orgs|users}/{owner}/packages?package_type=container&per_page=100&page=N
    GET    {api}/{orgs|users}/{owner}/packages/container/{package}/versions?per_page=100&page=N
    GET    {api}/{orgs|users}/{owner}/packages/container/{package}/versions/{id}
    DELETE {api}/{orgs|users}/{owner}/packages/container/{package}/versions/{id}   -> 204
    GET    {api}/{orgs|users}/{owner}/packages/container/{package}
    DELETE {api}/{orgs|users}/{owner}/packages/container/{package}                 -> 204

``{package}`` is URL-encoded whole (``team/app`` is ``team%2Fapp``). Listings are paged with
``page`` and ``Link: <…>; rel="next"``. A version is one manifest: ``name`` is its digest,
``metadata.container.tags`` its tags. Classic tokens need ``read:packages`` to list,
``delete:packages`` (with ``read:packages``) to delete.

GitHub's errors (``{"message", "documentation_url"}``) become :mod:`adapters.oci.errors` here
and nowhere else, with GitHub's message and, for a ``403``, the scopes the token has
(``X-OAuth-Scopes``) and those the request needs (``X-Accepted-OAuth-Scopes``).
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlencode

from adapters.oci.auth import Credentials, RegistryAuth
from adapters.oci.errors import (
    Denied,
    NotFound,
    OciError,
    ProtocolError,
    RateLimited,
    RequestRejected,
    Unauthorized,
)
from adapters.oci.limits import RetryPolicy
from adapters.oci.session import RegistrySession
from adapters.oci.transport import AiohttpTransport, Request, Response, Transport
from adapters.oci.urls import next_link

__all__ = ["API_VERSION", "PAGE_SIZE", "PackageVersion", "PackagesApi", "parse_version"]

API_VERSION = "2022-11-28"
PAGE_SIZE = 100  # the API's largest per_page
_MAX_PAGES = 10_000
_MAX_BODY_BYTES = 64 << 20
_EXPECTED = (200, 204, 400, 401, 403, 404, 409, 422)


@dataclass(frozen=True, slots=True)
class PackageVersion:
    """One version of a container package: one manifest, its digest and its tags."""

    id: int
    digest: str
    tags: tuple[str, ...]


def parse_version(doc: object) -> PackageVersion | None:
    """A package version from the API's JSON, or None if it is not a container version."""
    if not isinstance(doc, dict) or not isinstance(doc.get("id"), int):
        return None
    name = doc.get("name")
    if not isinstance(name, str) or not name.startswith("sha256:"):
        return None
    metadata = doc.get("metadata")
    container = metadata.get("container") if isinstance(metadata, dict) else None
    raw = container.get("tags") if isinstance(container, dict) else None
    tags = tuple(str(t) for t in raw) if isinstance(raw, list) else ()
    return PackageVersion(doc["id"], name, tags)


class PackagesApi:
    """A client of the Packages API for one endpoint (its token, its owners' kinds).

    :param api_url: the REST API's base URL (``https://api.github.com``).
    :param pat: the personal access token sent as ``Bearer``.
    :param owner_type: ``org``, ``user``, or ``auto`` (asked once per owner with
        ``GET /users/{owner}``).
    :param ca_file: the CA bundle a stand-in API's certificate is verified against (TLS is
        always verified: the token travels on these connections).
    """

    def __init__(
        self,
        api_url: str,
        pat: str,
        *,
        owner_type: str = "auto",
        ca_file: str | None = None,
        retries: int = 5,
        backoff_base_seconds: float = 0.5,
        max_retry_after_seconds: float = 300.0,
        transport: Transport | None = None,
    ) -> None:
        self.api_url = api_url.rstrip("/")
        self._owner_type = owner_type
        self._kinds: dict[str, str] = {}  # owner -> "orgs" | "users"
        self._transport = transport or AiohttpTransport(insecure=False, ca_file=ca_file)
        self.session = RegistrySession(
            self._transport,
            RegistryAuth(Credentials(token=pat)),
            max_in_flight=8,
            policy=RetryPolicy(
                retries=retries,
                backoff_base_seconds=backoff_base_seconds,
                max_retry_after_seconds=max_retry_after_seconds,
            ),
        )

    async def close(self) -> None:
        await self._transport.aclose()

    # -- owners and packages ------------------------------------------------------------------

    async def owner_path(self, owner: str) -> str:
        """``orgs/{owner}`` or ``users/{owner}``, as the option says or GitHub answers."""
        if self._owner_type != "auto":
            return f"{'orgs' if self._owner_type == 'org' else 'users'}/{owner}"
        kind = self._kinds.get(owner)
        if kind is None:
            url = self._url(f"users/{quote(owner, safe='')}")
            try:
                doc, _ = await self._call("GET", url)
            except NotFound:
                raise NotFound(
                    f"GitHub has no user or organization {owner!r}: check the repository's "
                    "first path component or the endpoint's --owners",
                    status=404,
                    method="GET",
                    url=url,
                ) from None
            kind = "orgs" if doc.get("type") == "Organization" else "users"
            self._kinds[owner] = kind
        return f"{kind}/{owner}"

    async def list_packages(self, owner: str) -> list[str]:
        """The names of ``owner``'s container packages (``team/app``) the token may see."""
        base = await self.owner_path(owner)
        url = self._url(f"{base}/packages", package_type="container", per_page=PAGE_SIZE)
        try:
            return [str(doc["name"]) async for doc in self._pages(url) if isinstance(doc, dict)]
        except NotFound:
            what = "organization" if base.startswith("orgs/") else "user"
            raise NotFound(
                f"GitHub has no {what} {owner!r} whose packages this token may list (is "
                "--owner-type right?)",
                status=404,
                method="GET",
                url=url,
            ) from None

    async def list_versions(self, owner: str, package: str) -> list[PackageVersion]:
        """Every version of ``owner``'s package (tagged or not).

        :raises NotFound: no such package (or the token may not see it).
        """
        url = self._url(await self._package_path(owner, package) + "/versions", per_page=PAGE_SIZE)
        return [v async for doc in self._pages(url) if (v := parse_version(doc)) is not None]

    async def get_version(self, owner: str, package: str, version_id: int) -> PackageVersion | None:
        """The version, or None if it is gone (the package with it, or just the version)."""
        path = await self._package_path(owner, package) + f"/versions/{version_id}"
        try:
            doc, _ = await self._call("GET", self._url(path))
        except NotFound:
            return None
        return parse_version(doc)

    async def package_exists(self, owner: str, package: str) -> bool:
        try:
            await self._call("GET", self._url(await self._package_path(owner, package)))
        except NotFound:
            return False
        return True

    async def delete_version(self, owner: str, package: str, version_id: int) -> None:
        """``DELETE …/versions/{id}`` (204). Needs ``delete:packages``."""
        path = await self._package_path(owner, package) + f"/versions/{version_id}"
        await self._call("DELETE", self._url(path))

    async def delete_package(self, owner: str, package: str) -> None:
        """``DELETE …/packages/container/{package}`` (204): the package and every version."""
        await self._call("DELETE", self._url(await self._package_path(owner, package)))

    # -- requests ----------------------------------------------------------------------------

    async def _package_path(self, owner: str, package: str) -> str:
        return f"{await self.owner_path(owner)}/packages/container/{quote(package, safe='')}"

    def _url(self, path: str, **query: str | int) -> str:
        suffix = "?" + urlencode(query) if query else ""
        return f"{self.api_url}/{path}{suffix}"

    async def _pages(self, url: str) -> AsyncIterator[Any]:
        """Every item of a paged listing, following ``Link: rel="next"``."""
        next_url: str | None = url
        for _ in range(_MAX_PAGES):
            if next_url is None:
                return
            doc, response_headers = await self._call("GET", next_url, listing=True)
            for item in doc:
                yield item
            next_url = next_link(response_headers, next_url)
        raise ProtocolError(f"more than {_MAX_PAGES} pages", url=url)

    async def _call(self, method: str, url: str, *, listing: bool = False) -> tuple[Any, list[str]]:
        """GitHub's JSON answer and the ``Link`` headers; its errors as ours."""
        headers = {
            "Accept": "application/vnd.github+json",
            "X-GitHub-Api-Version": API_VERSION,
        }
        request = Request(method, url, headers=headers, retry=method == "GET")
        async with self.session.request(request, expect=_EXPECTED) as response:
            data = await response.read(_MAX_BODY_BYTES)
            if response.status >= 400:
                raise _error(response, data, method, url)
            links = response.headers.getall("Link", [])
        if method == "DELETE" or not data:
            return {}, links
        try:
            doc = json.loads(data)
        except ValueError:
            doc = None
        if (listing and isinstance(doc, list)) or (not listing and isinstance(doc, dict)):
            return doc, links
        raise ProtocolError("the GitHub API answered without the expected JSON", url=url)


def _error(response: Response, data: bytes, method: str, url: str) -> OciError:
    """GitHub's ``{"message", "documentation_url"}`` as one of our errors."""
    status, headers = response.status, response.headers
    try:
        doc = json.loads(data)
    except ValueError:
        doc = None
    message = str(doc.get("message") or "") if isinstance(doc, dict) else ""
    message = message[:500] or data[:200].decode("utf-8", "replace").strip() or f"HTTP {status}"
    if status == 403 and headers.get("X-RateLimit-Remaining") == "0":
        return RateLimited(f"GitHub API rate limit: {message}", status=status, url=url)
    if status == 403:
        needs = headers.get("X-Accepted-OAuth-Scopes")
        has = headers.get("X-OAuth-Scopes")
        if needs is not None or has is not None:
            message += f" (the token's scopes: {has or 'none'}; this request needs: {needs or '?'})"
    kind: type[OciError] = {401: Unauthorized, 403: Denied, 404: NotFound}.get(
        status, RequestRejected
    )
    return kind(f"GitHub API: {message}", status=status, method=method, url=url)
