"""``AcrClient``: the OCI client plus the parts ACR publishes beyond the OCI API.

- **Listings** through ACR's metadata API: ``GET /acr/v1/_catalog`` (scope
  ``registry:catalog:*``) and ``GET /acr/v1/{name}/_tags`` (scope
  ``repository:{name}:metadata_read``), paged with ``n``, ``last`` and ``Link``. Each tag comes
  with its digest: a repository costs one request per page, no ``HEAD`` per tag. The tag list
  says neither the manifest's media type nor its size: those are ``""`` and
  :data:`~adapters.oci.types.UNKNOWN_SIZE` (-1) in the
  :class:`~adapters.oci.types.ManifestRef` values; the engine needs the digest.
  A login that may not read one repository's metadata (a repository-scoped token without
  ``metadata/read`` there: 401/403) gets that repository's OCI listing instead, for
  :data:`METADATA_REFUSAL_SECONDS` (then ``/acr/v1`` is asked again: scope maps change); other
  repositories keep ``/acr/v1``. A non-ACR host without ``/acr/v1`` (404 without a registry
  error code) gets the OCI listings for good.
- **Tag deletes** through ``DELETE /acr/v1/{name}/_tags/{tag}``: ACR's ``/v2`` API deletes
  manifests by digest only.
- **413**: an upload refused as too large says so and what to change.
- **AAD logins** (a credential provider): ``clock`` is what the refresh token's expiry is read
  against (the session fetches fresh credentials before it, and once after a ``401`` from the
  registry or from ``/oauth2/token``).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from contextlib import aclosing
from typing import Any
from urllib.parse import quote, urlencode

from adapters.oci.auth import Credentials, RegistryAuth
from adapters.oci.client import OciClient
from adapters.oci.errors import (
    Denied,
    NotFound,
    OciError,
    RequestRejected,
    Unauthorized,
    Unsupported,
)
from adapters.oci.session import RegistrySession
from adapters.oci.transport import Request
from adapters.oci.types import UNKNOWN_SIZE, ManifestRef
from adapters.oci.uploads import OpenStream
from adapters.oci.urls import CATALOG_SCOPE, is_digest
from adapters.oci.urls import delete as delete_scope
from registry.oci.reference import is_valid_name, is_valid_tag

__all__ = ["ACR_MAX_REQUEST_BYTES", "METADATA_REFUSAL_SECONDS", "AcrClient"]

#: The largest request body sent to ACR. ACR answers 413 to bodies over about 20 MB
#: (goharbor/harbor#21640, #23015: a 29 MB monolithic PUT refused): blobs above this go in
#: chunks of this size.
ACR_MAX_REQUEST_BYTES = 16 * 1024 * 1024
PAGE_SIZE = 100  # items per /acr/v1 page asked for (the registry may send fewer)
#: how long a repository whose metadata the login may not read is listed through /v2
METADATA_REFUSAL_SECONDS = 600.0
_MAX_REFUSALS = 10_000  # repositories remembered at most (the oldest refusals go first)
#: 404 codes that mean "no such repository/tag" (the API is there)
_MISSING = frozenset({"NAME_UNKNOWN", "TAG_UNKNOWN", "MANIFEST_UNKNOWN", "NAME_INVALID"})


class AcrClient(OciClient):
    """An :class:`OciClient` for one ACR registry (see the module).

    :param acr_host: the URL is an ACR login server (``*.azurecr.io``): ``/acr/v1`` is
        there, and its 404s mean a missing repository or tag.
    :param clock: the clock credentials' expiry and remembered metadata refusals are read
        against (tests inject one).
    Other keyword arguments are :class:`OciClient`'s.
    """

    def __init__(
        self,
        base_url: str,
        *,
        acr_host: bool = True,
        clock: Callable[[], float] = time.time,
        **kwargs: Any,
    ) -> None:
        super().__init__(base_url, credential_clock=clock, **kwargs)
        self._acr_host = acr_host
        self._clock = clock
        self.metadata_api = True  # False: the host has no /acr/v1 (not an ACR)
        #: repository -> clock time until which its tags are listed through /v2 (the login
        #: may not read its metadata)
        self._refused: dict[str, float] = {}
        self._anonymous: RegistrySession | None = None

    def anonymous_session(self) -> RegistrySession:
        """A session on this client's connections that sends no credentials (ACR's
        ``/oauth2/exchange`` takes none): retries and ``Retry-After`` as usual."""
        if self._anonymous is None:
            self._anonymous = RegistrySession(
                self.session.transport,
                RegistryAuth(Credentials()),
                max_in_flight=4,
                policy=self.session.policy,
            )
        return self._anonymous

    # -- listings ----------------------------------------------------------------------------

    async def acr_catalog(self, prefix: str = "", page_size: int = PAGE_SIZE) -> list[str]:
        """Repository names (those starting with ``prefix`` when given) from
        ``/acr/v1/_catalog``. Names come in lexical order: a prefix starts the listing just
        before it and ends it after its last match."""
        if not self.metadata_api:
            return [r for r in await self.catalog() if r.startswith(prefix)]
        query: dict[str, str | int] = {"n": page_size}
        if len(prefix) > 1:
            query["last"] = prefix[:-1]  # sorts before every name starting with prefix
        url = f"{self.base_url}/acr/v1/_catalog?{urlencode(query)}"
        names: list[str] = []
        try:
            async with aclosing(self._pages(url, CATALOG_SCOPE, "application/json")) as pages:
                async for page, _ in pages:
                    found = [str(r) for r in page.get("repositories") or []]
                    names.extend(r for r in found if r.startswith(prefix))
                    if prefix and found and _past(found[-1], prefix):
                        break  # names sort lexically: none further starts with prefix
        except (NotFound, Unsupported):
            if self._acr_host:
                raise
            self.metadata_api = False  # not an ACR: the OCI catalog
            return await self.acr_catalog(prefix)
        return names

    async def acr_tag_refs(
        self, repo: str, page_size: int = PAGE_SIZE
    ) -> tuple[list[str], dict[str, ManifestRef]]:
        """Tags of ``repo`` and each one's digest (media type ``""``, size
        :data:`~adapters.oci.types.UNKNOWN_SIZE` (-1): not listed) from
        ``/acr/v1/{repo}/_tags``; NotFound if the repository is unknown. A repository whose
        metadata the login may not read is listed through ``/v2`` (remembered for
        :data:`METADATA_REFUSAL_SECONDS`)."""
        if self.metadata_api and not self.metadata_refused(repo):
            try:
                return await self._acr_tags(repo, page_size)
            except (NotFound, Unsupported) as e:
                if not self._api_missing(e):
                    raise
                self.metadata_api = False
            except (Unauthorized, Denied):
                self._refuse(repo)  # no metadata_read on this repository: its OCI listing
        return await self.list_tag_refs(repo)

    def metadata_refused(self, repo: str) -> bool:
        """Whether ``repo``'s metadata was refused to this login lately."""
        until = self._refused.get(repo)
        if until is None:
            return False
        if self._clock() < until:
            return True
        del self._refused[repo]
        return False

    def _refuse(self, repo: str) -> None:
        now = self._clock()
        self._refused = {r: t for r, t in self._refused.items() if t > now}
        while len(self._refused) >= _MAX_REFUSALS:
            del self._refused[next(iter(self._refused))]  # the oldest refusal
        self._refused.pop(repo, None)
        self._refused[repo] = now + METADATA_REFUSAL_SECONDS

    async def _acr_tags(
        self, repo: str, page_size: int
    ) -> tuple[list[str], dict[str, ManifestRef]]:
        url = f"{self.base_url}/acr/v1/{_name(repo)}/_tags?{urlencode({'n': page_size})}"
        scope = f"repository:{repo}:metadata_read"
        tags: list[str] = []
        refs: dict[str, ManifestRef] = {}
        async for page, _ in self._pages(url, scope, "application/json"):
            for item in page.get("tags") or []:
                if not isinstance(item, dict) or not isinstance(item.get("name"), str):
                    continue
                tags.append(item["name"])
                digest = item.get("digest")
                if isinstance(digest, str) and is_digest(digest):
                    refs[item["name"]] = ManifestRef(digest, "", UNKNOWN_SIZE)
        return tags, refs

    def _api_missing(self, error: OciError) -> bool:
        """Whether ``error`` says this host has no ``/acr/v1`` (rather than no such thing)."""
        if self._acr_host:
            return False
        return isinstance(error, Unsupported) or error.code not in _MISSING

    # -- tags --------------------------------------------------------------------------------

    async def delete_tag(self, repo: str, tag: str) -> None:
        """Remove one tag (``DELETE /acr/v1/{repo}/_tags/{tag}``); NotFound if absent."""
        if is_digest(tag) or not is_valid_tag(tag):
            raise RequestRejected(f"delete_tag needs a tag, got {tag[:200]!r}")
        if not self.metadata_api:
            return await super().delete_tag(repo, tag)
        url = f"{self.base_url}/acr/v1/{_name(repo)}/_tags/{quote(tag, safe='')}"
        request = Request("DELETE", url, scope=delete_scope(repo))
        try:
            async with self.session.request(request, expect=(200, 202, 204)):
                pass
        except (NotFound, Unsupported) as e:
            if not self._api_missing(e):
                raise
            self.metadata_api = False
            await super().delete_tag(repo, tag)

    # -- blobs -------------------------------------------------------------------------------

    async def upload_blob(
        self,
        repo: str,
        digest: str,
        size_bytes: int,
        open_stream: OpenStream,
        *,
        chunk_bytes: int | None = None,
    ) -> None:
        try:
            await super().upload_blob(
                repo, digest, size_bytes, open_stream, chunk_bytes=chunk_bytes
            )
        except OciError as e:
            if e.status != 413:
                raise
            sent = chunk_bytes or (
                size_bytes if size_bytes <= self.monolithic_max_bytes else self.chunk_bytes
            )
            raise RequestRejected(
                f"ACR refused a request body of up to {sent} bytes as too large (413) while "
                f"uploading {digest} ({size_bytes} bytes) to {repo}: ACR takes about 20 MB per "
                f"request; this client sends blobs over {self.monolithic_max_bytes} bytes in "
                f"{self.chunk_bytes}-byte chunks - lower monolithic_max_bytes/chunk_bytes (or "
                "check a proxy in between)",
                status=413,
                code=e.code,
                method=e.method,
                url=e.url,
            ) from e


def _past(name: str, prefix: str) -> bool:
    return name > prefix and not name.startswith(prefix)


def _name(repo: str) -> str:
    if not is_valid_name(repo):
        raise RequestRejected(f"{repo[:300]!r} is not a valid repository name")
    return repo
