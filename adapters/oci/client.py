"""``OciClient``: the one OCI Distribution client every adapter and the engine use.

One client talks to one registry (``base_url``) over one aiohttp session. Every method raises
only :mod:`adapters.oci.errors`; requests are authenticated (Basic, bearer token, or the Docker
token flow), paced (``max_in_flight``, ``requests_per_second``, a 429 pauses the endpoint) and
retried (idempotent requests, 5xx/connection errors/timeouts, ``Retry-After``) underneath.

Usage::

    async with OciClient("https://registry.example", username="u", password="p") as oci:
        ref = await oci.head_manifest("team/app", "1.0")
        async with oci.blob_stream("team/app", digest) as blob:
            async for chunk in blob.iter_chunks():
                ...
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from types import TracebackType
from typing import Any
from urllib.parse import urlencode

from adapters.oci.auth import Credentials, RegistryAuth
from adapters.oci.blobs import BlobStream
from adapters.oci.content import (
    descriptor,
    digest_of,
    json_object,
    media_type_of,
    sniff_media_type,
)
from adapters.oci.credentials import CredentialProvider, RefreshingCredentials
from adapters.oci.errors import DigestMismatch, ProtocolError, RequestRejected, Unsupported
from adapters.oci.limits import RetryPolicy
from adapters.oci.origins import TagHead, TagStates, origins_of, tombstones_of
from adapters.oci.session import RegistrySession
from adapters.oci.transport import AiohttpTransport, Request, Response, Transport
from adapters.oci.types import MANIFEST_ACCEPT, ClientStats, Manifest, ManifestRef, PingResult
from adapters.oci.uploads import OpenStream, Uploader, _Source
from adapters.oci.urls import (
    CATALOG_SCOPE,
    Endpoint,
    delete,
    is_digest,
    next_link,
    normalize_base_url,
)
from adapters.oci.urls import pull as pull_scope
from adapters.oci.urls import push as push_scope
from registry.oci import mediatypes as mt
from registry.oci.manifest import Descriptor
from registry.oci.origin import ORIGIN_HEADER, TOMBSTONE_HEADER, Origin

__all__ = ["OciClient", "TagListing"]

MiB = 1024 * 1024
_PAGE_LIMIT = 100_000  # pages followed at most: a Link loop must end

#: One repository as a tag list describes it: its tags, the manifests those it says name, and
#: (a Seawall) their origins and the repository's tombstones.
TagListing = tuple[list[str], dict[str, ManifestRef], TagStates]
_ORIGIN_HEADERS = (ORIGIN_HEADER, TOMBSTONE_HEADER)


class OciClient:
    """Client for one registry. Create it anywhere; its session opens on first use."""

    def __init__(
        self,
        base_url: str,
        *,
        username: str | None = None,
        password: str | None = None,
        token: str | None = None,
        insecure: bool = False,
        ca_file: str | None = None,
        max_in_flight: int = 16,
        requests_per_second: float | None = None,
        timeout_connect_seconds: float = 30.0,
        timeout_read_seconds: float = 300.0,
        retries: int = 5,
        backoff_base_seconds: float = 0.5,
        max_retry_after_seconds: float = 300.0,
        monolithic_max_bytes: int = 32 * MiB,
        chunk_bytes: int = 64 * MiB,
        max_manifest_bytes: int = 8 * MiB,
        user_agent: str = "seawall/0.1",
        transport: Transport | None = None,
        credential_provider: CredentialProvider | None = None,
        refresh_before_seconds: float = 300.0,
        credential_clock: Callable[[], float] = time.time,
        token_clock: Callable[[], float] | None = None,
        origins: bool = False,
    ) -> None:
        """``credential_provider``: where credentials that expire come from (a cloud
        registry's token exchange); they replace ``username``/``password``/``token``, are
        fetched before the first request, ``refresh_before_seconds`` before they expire, and
        once more after a 401 (see :mod:`adapters.oci.credentials`); their expiry is read
        against ``credential_clock``. ``token_clock``: what registry tokens' expiry (and a JWT's
        ``exp``) is read against (default: monotonic time for the cache, wall time for ``exp``;
        tests inject one). ``origins``: the registry is a Seawall, which records
        where and when each tag was written (:attr:`carries_origins`)."""
        #: the registry reports tag origins and tombstones, and keeps the origins this client's
        #: writes carry (a Seawall): the engine then settles conflicts between regions
        self.carries_origins = origins
        self.base_url = normalize_base_url(base_url)
        self.endpoint = Endpoint(self.base_url)
        clocks = {} if token_clock is None else {"clock": token_clock, "wall_clock": token_clock}
        self.auth = RegistryAuth(Credentials(username, password, token), **clocks)
        self._transport = transport or AiohttpTransport(
            insecure=insecure,
            ca_file=ca_file,
            max_connections=max_in_flight + 4,  # room for token requests to another host
            timeout_connect_seconds=timeout_connect_seconds,
            timeout_read_seconds=timeout_read_seconds,
            user_agent=user_agent,
        )
        policy = RetryPolicy(
            retries=retries,
            backoff_base_seconds=backoff_base_seconds,
            max_retry_after_seconds=max_retry_after_seconds,
        )
        self.session = RegistrySession(
            self._transport,
            self.auth,
            max_in_flight=max_in_flight,
            requests_per_second=requests_per_second,
            policy=policy,
            credentials=(
                RefreshingCredentials(
                    credential_provider,
                    refresh_before_seconds=refresh_before_seconds,
                    clock=credential_clock,
                )
                if credential_provider is not None
                else None
            ),
        )
        self.monolithic_max_bytes = monolithic_max_bytes
        self.chunk_bytes = chunk_bytes
        self.max_manifest_bytes = max_manifest_bytes
        self._uploader = Uploader(self.session, self.endpoint, self.head_blob)

    # -- lifecycle ---------------------------------------------------------------------------

    async def close(self) -> None:
        await self._transport.aclose()

    async def __aenter__(self) -> OciClient:
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    def stats(self) -> ClientStats:
        return self.session.stats()

    def __repr__(self) -> str:
        return f"OciClient({self.base_url!r})"

    # -- registry ----------------------------------------------------------------------------

    async def ping(self) -> PingResult:
        """``GET /v2/`` through the auth flow: proves reachability and credentials."""
        request = Request("GET", self.endpoint.v2())
        async with self.session.request(request, expect=(200,)) as response:
            api_version = response.headers.get("Docker-Distribution-API-Version")
            status = response.status
        bearer = self.auth.bearer
        return PingResult(
            status=status,
            api_version=api_version,
            auth_scheme=self.auth.scheme,
            realm=bearer.params.get("realm") if bearer else None,
            service=bearer.params.get("service") if bearer else None,
        )

    async def catalog(self, page_size: int = 1000) -> list[str]:
        """All repository names, following ``Link: rel="next"``."""
        return await self._paged(self.endpoint.catalog(page_size), CATALOG_SCOPE, "repositories")

    async def catalog_listings(
        self, prefix: str = "", page_size: int = 1000
    ) -> tuple[list[str], dict[str, tuple[list[str], dict[str, ManifestRef]]] | None]:
        """The catalog and, where the registry lists tags with it (a Seawall answers
        :data:`~registry.oci.mediatypes.SEAWALL_CATALOG`), each repository's tags and the
        manifests they name, as :meth:`list_tag_refs` would return them; None otherwise.
        ``prefix``: only names starting with it are wanted (a Seawall then lists only those;
        other registries list all, as :meth:`catalog` does)."""
        repos, listings = await self.catalog_states(prefix, page_size)
        if listings is None:
            return repos, None
        return repos, {repo: (names, refs) for repo, (names, refs, _) in listings.items()}

    async def catalog_states(
        self, prefix: str = "", page_size: int = 1000
    ) -> tuple[list[str], dict[str, TagListing] | None]:
        """:meth:`catalog_listings` with each repository's :class:`TagStates` (tag origins and
        tombstones: empty where the registry does not report them)."""
        url = self.endpoint.catalog(page_size)
        if prefix:
            url += "&" + urlencode({"prefix": prefix})
        accept = f"{mt.SEAWALL_CATALOG}, application/json"
        repos: list[str] = []
        listings: dict[str, TagListing] | None = {}
        async for page, media_type in self._pages(url, CATALOG_SCOPE, accept):
            repos.extend(str(r) for r in page.get("repositories") or [])
            found = page.get("listings")
            if listings is None or media_type != mt.SEAWALL_CATALOG or not isinstance(found, dict):
                listings = None
                continue
            for repo, one in found.items():
                if isinstance(one, dict) and isinstance(one.get("tags"), list):
                    names = [str(t) for t in one["tags"]]
                    manifests = one.get("manifests")
                    states = TagStates(origins_of(manifests), tombstones_of(one.get("tombstones")))
                    listings[str(repo)] = (names, _tag_refs(manifests), states)
        return repos, listings

    async def list_tags(self, repo: str, page_size: int = 1000) -> list[str]:
        """All tags of ``repo`` (NotFound if the repository is unknown), following ``Link``."""
        return await self._paged(self.endpoint.tags(repo, page_size), pull_scope(repo), "tags")

    async def list_tag_refs(
        self, repo: str, page_size: int = 1000
    ) -> tuple[list[str], dict[str, ManifestRef]]:
        """All tags of ``repo`` and, where the listing says (a Seawall registry answers
        :data:`~registry.oci.mediatypes.SEAWALL_TAG_LIST`), the manifest each names; a tag
        without one needs :meth:`head_manifest`. Other registries: :meth:`list_tags`, same
        requests."""
        tags, refs, _ = await self.list_tag_states(repo, page_size)
        return tags, refs

    async def list_tag_states(self, repo: str, page_size: int = 1000) -> TagListing:
        """:meth:`list_tag_refs` with the repository's :class:`TagStates` (a Seawall's tag
        origins and tombstones; empty elsewhere), in the same requests."""
        tags: list[str] = []
        refs: dict[str, ManifestRef] = {}
        origins: dict[str, Origin] = {}
        tombstones: dict[str, object] = {}
        url = self.endpoint.tags(repo, page_size)
        accept = f"{mt.SEAWALL_TAG_LIST}, application/json"
        async for page, media_type in self._pages(url, pull_scope(repo), accept):
            tags.extend(str(t) for t in page.get("tags") or [])
            if media_type == mt.SEAWALL_TAG_LIST:
                refs.update(_tag_refs(page.get("manifests")))
                origins.update(origins_of(page.get("manifests")))
                found = page.get("tombstones")
                tombstones.update(found if isinstance(found, dict) else {})
        return tags, refs, TagStates(origins, tombstones_of(tombstones))

    async def _paged(self, url: str | None, scope: str, key: str) -> list[str]:
        out: list[str] = []
        async for page, _ in self._pages(url, scope, "application/json"):
            out.extend(str(item) for item in page.get(key) or [])
        return out

    async def _pages(
        self, url: str | None, scope: str, accept: str
    ) -> AsyncIterator[tuple[dict[str, Any], str | None]]:
        """Each page's JSON object and media type, following ``Link: rel="next"``."""
        seen: set[str] = set()
        while url is not None and url not in seen and len(seen) < _PAGE_LIMIT:
            seen.add(url)
            request = Request("GET", url, headers={"Accept": accept}, scope=scope)
            async with self.session.request(request, expect=(200,)) as response:
                page = json_object(await response.read(), url)
                media_type = media_type_of(response.headers.get("Content-Type"))
                url = _next_link(response)
            yield page, media_type

    # -- manifests ---------------------------------------------------------------------------

    async def head_manifest(self, repo: str, reference: str) -> ManifestRef | None:
        """Digest, media type and size of a manifest, or None if there is none."""
        ref, _ = await self._head(repo, reference)
        return ref

    async def head_tag(self, repo: str, tag: str) -> TagHead:
        """:meth:`head_manifest` of a tag, with the tag's origin or, for a tag deleted there,
        its tombstone (a Seawall says them in headers; other registries do not)."""
        ref, headers = await self._head(repo, tag)
        return TagHead.from_headers(ref, headers)

    async def _head(self, repo: str, reference: str) -> tuple[ManifestRef | None, dict[str, str]]:
        request = self._manifest_request("HEAD", repo, reference)
        async with self.session.request(request, expect=(200, 404)) as response:
            kept = {k: v for k in _ORIGIN_HEADERS if (v := response.headers.get(k))}
            if response.status == 404:
                return None, kept
            digest = response.headers.get("Docker-Content-Digest")
            length = response.headers.get("Content-Length", "")
            media_type = media_type_of(response.headers.get("Content-Type"))
        if digest is None and is_digest(reference):
            digest = reference
        if digest is None or not length.isdigit() or media_type is None:
            return (await self.get_manifest(repo, reference)).ref, kept  # HEAD told too little
        return ManifestRef(digest, media_type, int(length)), kept

    async def get_manifest(self, repo: str, reference: str) -> Manifest:
        """The manifest's exact bytes; DigestMismatch if they do not hash to the digest asked
        for (by digest) or announced (``Docker-Content-Digest``)."""
        request = self._manifest_request("GET", repo, reference)
        async with self.session.request(request, expect=(200,)) as response:
            data = await response.read(self.max_manifest_bytes)
            announced = response.headers.get("Docker-Content-Digest")
            media_type = media_type_of(response.headers.get("Content-Type"))
        expected = reference if is_digest(reference) else announced
        digest = digest_of(data, expected)
        if expected is not None and digest != expected:
            raise DigestMismatch(
                f"manifest {repo}:{reference} hashes to {digest}, not {expected}",
                method="GET",
                url=request.url,
            )
        return Manifest(data, media_type or sniff_media_type(data), digest)

    async def put_manifest(
        self,
        repo: str,
        reference: str,
        data: bytes,
        media_type: str,
        *,
        origin: Origin | None = None,
    ) -> str:
        """Store ``data`` under a tag or digest; returns its digest. ``origin``: the tag's
        original origin, carried to a Seawall (sent only where :attr:`carries_origins`)."""
        digest = digest_of(data, reference if is_digest(reference) else None)
        request = Request(
            "PUT",
            self.endpoint.manifest(repo, reference),
            headers={"Content-Type": media_type, **self._origin_headers(origin)},
            content=data,
            scope=push_scope(repo),
        )
        async with self.session.request(request, expect=(200, 201, 202, 204)) as response:
            announced = response.headers.get("Docker-Content-Digest")
        if announced and announced.split(":")[0] == digest.split(":")[0] and announced != digest:
            raise DigestMismatch(
                f"registry stored {repo}:{reference} as {announced}, we sent {digest}",
                method="PUT",
                url=request.url,
            )
        return digest

    async def delete_manifest(
        self, repo: str, digest: str, *, origin: Origin | None = None
    ) -> None:
        """Delete a manifest by digest (and every tag on it). NotFound if absent.
        ``origin``: the deletion's original origin (as for :meth:`put_manifest`)."""
        if not is_digest(digest):
            raise RequestRejected(f"delete_manifest needs a digest, got {digest!r}: see delete_tag")
        await self._delete(repo, digest, origin)

    async def delete_tag(self, repo: str, tag: str, *, origin: Origin | None = None) -> None:
        """Remove one tag (OCI 1.1). Unsupported if the registry only deletes by digest.
        ``origin``: the deletion's original origin (as for :meth:`put_manifest`)."""
        if is_digest(tag):
            raise RequestRejected(f"delete_tag needs a tag, got the digest {tag!r}")
        try:
            await self._delete(repo, tag, origin)
        except (RequestRejected, DigestMismatch) as error:
            if error.status != 400:
                raise
            # distribution 2.8 parses the tag as a digest (DIGEST_INVALID); others say
            # UNSUPPORTED or TAG_INVALID: the tag was valid, so deleting by tag is what failed
            raise Unsupported(
                f"{self.base_url} cannot delete the tag {repo}:{tag} ({error.code or 400})",
                status=400,
                code=error.code,
                method="DELETE",
                url=error.url,
            ) from error

    async def _delete(self, repo: str, reference: str, origin: Origin | None = None) -> None:
        url = self.endpoint.manifest(repo, reference)
        headers = self._origin_headers(origin)
        request = Request("DELETE", url, headers=headers, scope=delete(repo))
        async with self.session.request(request, expect=(200, 202, 204)):
            pass

    def _origin_headers(self, origin: Origin | None) -> dict[str, str]:
        if origin is None or not self.carries_origins:
            return {}
        return {ORIGIN_HEADER: origin.header()}

    def _manifest_request(self, method: str, repo: str, reference: str) -> Request:
        return Request(
            method,
            self.endpoint.manifest(repo, reference),
            headers={"Accept": ", ".join(MANIFEST_ACCEPT)},
            scope=pull_scope(repo),
        )

    # -- referrers ---------------------------------------------------------------------------

    async def referrers(
        self, repo: str, digest: str, artifact_type: str | None = None
    ) -> list[Descriptor] | None:
        """Manifests whose ``subject`` is ``digest`` (OCI 1.1 referrers API), filtered by
        ``artifact_type``; None when the registry has no referrers API (then use the
        :meth:`referrers_tag` fallback)."""
        url: str | None = self.endpoint.referrers(repo, digest, artifact_type)
        out: list[Descriptor] = []
        filtered = True
        pages = 0
        while url is not None and pages < _PAGE_LIMIT:
            pages += 1
            request = Request("GET", url, headers={"Accept": mt.OCI_INDEX}, scope=pull_scope(repo))
            async with self.session.request(request, expect=(200, 404)) as response:
                is_index = media_type_of(response.headers.get("Content-Type")) == mt.OCI_INDEX
                body = await response.read(self.max_manifest_bytes)
                if response.status == 404 or not is_index:
                    return None if pages == 1 else out
                applied = response.headers.get("OCI-Filters-Applied", "")
                filtered = filtered and "artifactType" in applied
                url = _next_link(response)
            out.extend(descriptor(d) for d in json_object(body, request.url).get("manifests") or [])
        if artifact_type and not filtered:
            out = [d for d in out if d.artifact_type == artifact_type]
        return out

    @staticmethod
    def referrers_tag(digest: str) -> str:
        """The referrers tag schema's tag for ``digest``: ``sha256:abc…`` → ``sha256-abc…``."""
        if not is_digest(digest):
            raise RequestRejected(f"{digest!r} is not a digest")
        algorithm, _, encoded = digest.partition(":")
        return f"{algorithm}-{encoded}"[:128]

    # -- blobs -------------------------------------------------------------------------------

    async def head_blob(self, repo: str, digest: str) -> int | None:
        """The blob's size in bytes, or None if the repository has no such blob."""
        request = Request("HEAD", self.endpoint.blob(repo, digest), scope=pull_scope(repo))
        async with self.session.request(request, expect=(200, 404)) as response:
            if response.status == 404:
                return None
            length = response.headers.get("Content-Length", "")
        if not length.isdigit():
            raise ProtocolError("blob HEAD without Content-Length", method="HEAD", url=request.url)
        return int(length)

    @asynccontextmanager
    async def blob_stream(
        self, repo: str, digest: str, offset: int = 0
    ) -> AsyncIterator[BlobStream]:
        """Read a blob from ``offset`` without buffering it; reconnects with ``Range`` if the
        connection breaks."""
        stream = BlobStream(
            self.session, self.endpoint.blob(repo, digest), pull_scope(repo), offset
        )
        await stream.open()
        try:
            yield stream
        finally:
            await stream.aclose()

    async def mount_blob(self, repo: str, digest: str, from_repo: str) -> bool:
        """Cross-repository mount; False (session cancelled) if the registry would not."""
        url = self.endpoint.uploads(repo, mount=digest, **{"from": from_repo})
        scope = f"{push_scope(repo)} {pull_scope(from_repo)}"
        request = Request("POST", url, headers={"Content-Length": "0"}, scope=scope)
        async with self.session.request(request, expect=(201, 202)) as response:
            if response.status == 201:
                return True
            location = response.headers.get("Location")
        if location:
            cancel = Request("DELETE", Endpoint.resolve(url, location), scope=push_scope(repo))
            try:
                async with self.session.request(cancel, expect=(200, 202, 204, 404)):
                    pass
            except Exception:  # best effort: an abandoned session is purged by the registry
                pass
        return False

    async def upload_blob(
        self,
        repo: str,
        digest: str,
        size_bytes: int,
        open_stream: OpenStream,
        *,
        chunk_bytes: int | None = None,
    ) -> None:
        """Push a blob whose bytes ``open_stream(offset)`` yields from ``offset`` on.

        Blobs up to ``monolithic_max_bytes`` (and ``chunk_bytes`` None) go in one ``PUT``;
        others in ``chunk_bytes`` (default: the client's) ``PATCH`` chunks that resume at the
        registry's offset after a failure. The registry verifies the digest.
        """
        source = _Source(open_stream, size_bytes)
        try:
            if chunk_bytes is None and size_bytes <= self.monolithic_max_bytes:
                await self._uploader.monolithic(repo, digest, source)
            else:
                await self._uploader.chunked(repo, digest, source, chunk_bytes or self.chunk_bytes)
        finally:
            await source.close()


def _tag_refs(manifests: object) -> dict[str, ManifestRef]:
    """``{tag: ManifestRef}`` from a Seawall tag list's ``manifests``; malformed entries are
    left out (those tags are then asked for one by one)."""
    if not isinstance(manifests, dict):
        return {}
    out: dict[str, ManifestRef] = {}
    for tag, m in manifests.items():
        if not isinstance(m, dict):
            continue
        digest, media_type, size = m.get("digest"), m.get("mediaType"), m.get("size")
        if (
            isinstance(digest, str)
            and is_digest(digest)
            and isinstance(media_type, str)
            and isinstance(size, int)
        ):
            out[str(tag)] = ManifestRef(digest, media_type, size)
    return out


def _next_link(response: Response) -> str | None:
    return next_link(response.headers.getall("Link", []), response.url)
