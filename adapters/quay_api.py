"""Quay's REST API (``/api/v1`` on the registry's host), as much of it as replication needs.

    GET    /api/v1/user/                                      -> {username, organizations:[{name}]}
    GET    /api/v1/repository?namespace=NS[&next_page=T]      -> {repositories:[{namespace, name,
                                                                  kind}], next_page}
    GET    /api/v1/repository/NS/NAME?includeTags=false       -> 200 or 404
    POST   /api/v1/repository {namespace, repository, visibility, description, repo_kind}
    GET    /api/v1/repository/NS/NAME/tag/?onlyActiveTags=true&limit=100&page=N
                                                              -> {tags:[{name, manifest_digest}],
                                                                  page, has_additional}
    DELETE /api/v1/repository/NS/NAME/tag/TAG                 -> 204

Requests carry the OAuth application token as ``Authorization: Bearer`` and go through a
:class:`~adapters.oci.session.RegistrySession` on the registry client's transport (its
connections and TLS settings: one host), with its retries, ``429``/``Retry-After`` and pacing.
Quay's error bodies (``{"error_message", "error_type", "detail", "status", ...}``) become
:mod:`adapters.oci.errors` carrying Quay's message, once, here.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Mapping
from typing import Any
from urllib.parse import quote, urlencode

from adapters.oci.auth import Credentials, RegistryAuth
from adapters.oci.errors import (
    Denied,
    NotFound,
    OciError,
    ProtocolError,
    RequestRejected,
    Unauthorized,
)
from adapters.oci.limits import RetryPolicy
from adapters.oci.session import RegistrySession
from adapters.oci.transport import Request, Transport
from adapters.oci.types import UNKNOWN_SIZE, ManifestRef
from adapters.oci.urls import is_digest

__all__ = ["TAG_PAGE_SIZE", "QuayApi", "quay_error"]

TAG_PAGE_SIZE = 100  # the tag listing's maximum ``limit``
_MAX_PAGES = 100_000  # pages followed at most: a paging loop must end
_MAX_BODY_BYTES = 32 << 20
_EXPECTED = (200, 201, 204, 400, 401, 403, 404, 409)
_HINTS = {
    401: "the API token is missing, expired or revoked: give a valid OAuth application token",
    403: "the OAuth token lacks the scope (repo:read, repo:write, repo:create) or the "
    "namespace permission",
}


class QuayApi:
    """A client of one Quay's REST API.

    :param base_url: the Quay host (``https://quay.io``).
    :param token: the OAuth application token (``Bearer``).
    :param transport: the registry client's transport (shared connections, TLS settings).
    """

    def __init__(
        self,
        base_url: str,
        token: str,
        transport: Transport,
        *,
        policy: RetryPolicy | None = None,
        max_in_flight: int = 8,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.session = RegistrySession(
            transport,
            RegistryAuth(Credentials(token=token)),
            max_in_flight=max_in_flight,
            policy=policy,
        )

    def __repr__(self) -> str:
        return f"QuayApi({self.base_url!r})"

    def _url(self, path: str, **query: str | int) -> str:
        suffix = "?" + urlencode(query) if query else ""
        return f"{self.base_url}/api/v1/{quote(path, safe='/')}{suffix}"

    async def _call(
        self, method: str, url: str, body: Mapping[str, str] | None = None
    ) -> tuple[int, dict[str, Any]]:
        """``(status, JSON object)`` of a 2xx answer; Quay's error as ours otherwise."""
        headers = {"Accept": "application/json"}
        content = None
        if body is not None:
            headers["Content-Type"] = "application/json"
            content = json.dumps(dict(body)).encode()
        request = Request(method, url, headers=headers, content=content, retry=method == "GET")
        async with self.session.request(request, expect=_EXPECTED) as response:
            status, data = response.status, await response.read(_MAX_BODY_BYTES)
        try:
            doc = json.loads(data) if data else {}
        except ValueError:
            doc = None
        if status < 300:
            if not isinstance(doc, dict):
                raise ProtocolError("Quay's API answered without a JSON object", url=url)
            return status, doc
        raise quay_error(status, doc, data, method, url)

    # -- namespaces and repositories ---------------------------------------------------------

    async def user_namespaces(self) -> list[str]:
        """The token's user and the organizations it belongs to (``GET /api/v1/user/``)."""
        _, doc = await self._call("GET", self._url("user/"))
        names = [doc.get("username")]
        names += [o.get("name") for o in doc.get("organizations") or [] if isinstance(o, dict)]
        return [n for n in names if isinstance(n, str) and n]

    async def repositories(self, namespace: str) -> AsyncIterator[str]:
        """``NAMESPACE/NAME`` of every image repository in ``namespace`` the token sees,
        following ``next_page``."""
        token = ""
        for _ in range(_MAX_PAGES):
            query: dict[str, str | int] = {"namespace": namespace}
            if token:
                query["next_page"] = token
            _, doc = await self._call("GET", self._url("repository", **query))
            for repo in doc.get("repositories") or []:
                if not isinstance(repo, dict) or repo.get("kind", "image") != "image":
                    continue
                ns, name = repo.get("namespace"), repo.get("name")
                if isinstance(ns, str) and isinstance(name, str) and ns and name:
                    yield f"{ns}/{name}"
            token = doc.get("next_page") or ""
            if not isinstance(token, str) or not token:
                return
        raise ProtocolError(f"more than {_MAX_PAGES} pages of {namespace}'s repositories")

    async def repository_exists(self, namespace: str, name: str) -> bool:
        """Whether ``NAMESPACE/NAME`` exists (and the token may see it)."""
        url = self._url(f"repository/{namespace}/{name}", includeTags="false")
        try:
            await self._call("GET", url)
        except NotFound:
            return False
        return True

    async def create_repository(
        self, namespace: str, name: str, *, visibility: str, description: str
    ) -> bool:
        """Create an image repository; False if it existed already (created meanwhile)."""
        body = {
            "namespace": namespace,
            "repository": name,
            "visibility": visibility,
            "description": description,
            "repo_kind": "image",
        }
        try:
            await self._call("POST", self._url("repository"), body)
        except RequestRejected as e:
            if e.status in (400, 409) and "exist" in e.message.lower():
                return False
            raise
        return True

    # -- tags --------------------------------------------------------------------------------

    async def tag_refs(
        self, repo: str, page_size: int = TAG_PAGE_SIZE
    ) -> tuple[list[str], dict[str, ManifestRef]]:
        """Active tags of ``NAMESPACE/NAME`` and each one's manifest digest (media type
        ``""``, size :data:`~adapters.oci.types.UNKNOWN_SIZE`: Quay's listing does not say
        them), one request per ``page_size`` tags. NotFound if the repository is unknown."""
        tags: list[str] = []
        refs: dict[str, ManifestRef] = {}
        for page in range(1, _MAX_PAGES + 1):
            query: dict[str, str | int] = {"onlyActiveTags": "true", "limit": page_size}
            query["page"] = page
            _, doc = await self._call("GET", self._url(f"repository/{repo}/tag/", **query))
            for item in doc.get("tags") or []:
                if not isinstance(item, dict) or not isinstance(item.get("name"), str):
                    continue
                tags.append(item["name"])
                digest = item.get("manifest_digest")
                if isinstance(digest, str) and is_digest(digest):
                    refs[item["name"]] = ManifestRef(digest, "", UNKNOWN_SIZE)
            if doc.get("has_additional") is not True:
                return tags, refs
        raise ProtocolError(f"more than {_MAX_PAGES} pages of {repo}'s tags")

    async def delete_tag(self, repo: str, tag: str) -> None:
        """Delete one tag of ``NAMESPACE/NAME`` (its manifest stays while other tags name
        it; Quay keeps it for the namespace's time machine). NotFound if absent."""
        await self._call("DELETE", self._url(f"repository/{repo}/tag/{tag}"))


def quay_error(status: int, doc: object, data: bytes, method: str, url: str) -> OciError:
    """Quay's ``{"error_message", "error_type", "detail", "status"}`` (or an older
    ``{"message"}``/``{"error"}``) as one of our errors, with Quay's words and what to do."""
    message = code = ""
    if isinstance(doc, dict):
        for key in ("error_message", "detail", "message", "error"):
            if isinstance(doc.get(key), str) and doc[key]:
                message = doc[key]
                break
        code = str(doc.get("error_type") or doc.get("title") or "")
    if not message:
        message = data[:200].decode("utf-8", "replace").strip() or f"HTTP {status}"
    hint = _HINTS.get(status)
    if hint:
        message = f"{message[:500]} ({hint})"
    kind: type[OciError] = {401: Unauthorized, 403: Denied, 404: NotFound}.get(
        status, RequestRejected
    )
    return kind(message[:1000], status=status, code=code or None, method=method, url=url)
