"""The OCI client of an ``aws-ecr`` endpoint: :class:`EcrClient`, an :class:`OciClient` that
asks ECR's API where the data plane cannot answer (or answers worse).

- listings: ``DescribeRepositories`` (ECR has no ``/v2/_catalog``) and ``DescribeImages``: one
  listing per repository page with every tag's digest and media type (its ``imageSizeInBytes``
  is the image's size, not the manifest's: listed refs carry
  :data:`~adapters.oci.types.UNKNOWN_SIZE`, which planning never reads);
- deletes: ``BatchDeleteImage`` by tag (that tag only) or by digest (the image and its tags);
- a tag ``PUT`` into a repository whose tags are immutable is checked first, so that moving a
  tag fails with :class:`ImmutableTag` saying which digest holds it;
- blob mounts are tried only where the registry has ECR blob mounting turned on, and uploads go
  in one request (ECR takes no multi-chunk ``PATCH`` uploads reliably); ECR's ``201`` answer
  to that ``PATCH`` (the spec says ``202``) is taken by the OCI client.

Blob and manifest bytes still travel over the registry API with ``GetAuthorizationToken``'s
login (the adapter's credential provider).
"""

from __future__ import annotations

import fnmatch
from typing import Any

from adapters.aws_ecr_api import EcrApi, ImageDetail, RepositoryInfo
from adapters.oci.client import OciClient
from adapters.oci.content import digest_of
from adapters.oci.errors import RequestRejected, Unsupported
from adapters.oci.types import UNKNOWN_SIZE, ManifestRef
from adapters.oci.uploads import OpenStream
from adapters.oci.urls import is_digest
from adapters.protocol import CatalogListings

__all__ = [
    "EcrClient",
    "ImmutableTag",
    "RepositoryCache",
    "immutable",
]


class ImmutableTag(RequestRejected):
    """The repository's tags are immutable and the tag names another image already."""

    hint = "push under a new tag, or make the repository's tags mutable"


def immutable(info: RepositoryInfo, tag: str) -> bool:
    """Whether ``tag`` cannot move in the repository (its mutability and exclusion filters,
    ECR's wildcard patterns)."""
    excluded = any(fnmatch.fnmatchcase(tag, pattern) for pattern in info.exclusion_filters)
    if info.tag_mutability == "IMMUTABLE":
        return True
    if info.tag_mutability == "IMMUTABLE_WITH_EXCLUSION":
        return not excluded
    if info.tag_mutability == "MUTABLE_WITH_EXCLUSION":
        return excluded
    return False


class RepositoryCache:
    """What the endpoint's repositories say about tags, asked once per repository."""

    def __init__(self, api: EcrApi) -> None:
        self.api = api
        self._known: dict[str, RepositoryInfo] = {}

    def remember(self, info: RepositoryInfo) -> None:
        self._known[info.name] = info

    def cached(self, name: str) -> RepositoryInfo | None:
        return self._known.get(name)

    async def get(self, name: str) -> RepositoryInfo | None:
        """The repository (``DescribeRepositories`` the first time), None if there is none."""
        info = self._known.get(name)
        if info is None:
            info = await self.api.repository(name)
            if info is not None:
                self._known[name] = info
        return info


class EcrClient(OciClient):
    """:class:`OciClient` for an ECR registry; ``repositories`` is the adapter's cache."""

    def __init__(
        self,
        base_url: str,
        *,
        repositories: RepositoryCache,
        blob_mount: bool = False,
        **kwargs: Any,
    ) -> None:
        super().__init__(base_url, **kwargs)
        self.api = repositories.api
        self.repositories = repositories
        self.blob_mount = blob_mount

    # -- listings through the API ----------------------------------------------------------

    async def catalog(self, page_size: int = 1000) -> list[str]:
        """All repositories (``DescribeRepositories``)."""
        return await self.api.repositories()

    async def catalog_listings(self, prefix: str = "", page_size: int = 1000) -> CatalogListings:
        """Repositories starting with ``prefix``; their tags come from :meth:`list_tag_refs`."""
        return await self.api.repositories(prefix), None

    async def list_tag_refs(
        self, repo: str, page_size: int = 1000
    ) -> tuple[list[str], dict[str, ManifestRef]]:
        """Tags and the manifests they name from ``DescribeImages``. A tag whose manifest ECR does
        not describe fully is listed without a ref (the engine asks for it with ``HEAD``).

        :raises adapters.oci.errors.NotFound: no such repository.
        """
        images = await self.api.images(repo)
        tags: list[str] = []
        refs: dict[str, ManifestRef] = {}
        for image in images:
            ref = _ref(image)
            for tag in image.tags:
                tags.append(tag)
                if ref is not None:
                    refs[tag] = ref
        return tags, refs

    # -- manifests -------------------------------------------------------------------------

    async def put_manifest(self, repo: str, reference: str, data: bytes, media_type: str) -> str:
        """As :meth:`OciClient.put_manifest`; a tag that would move in a repository with
        immutable tags raises :class:`ImmutableTag` before anything is sent (and a tag
        already naming these bytes there is left as it is)."""
        digest = digest_of(data, reference if is_digest(reference) else None)
        if not is_digest(reference):
            info = await self.repositories.get(repo)
            if info is not None and immutable(info, reference):
                current = await self.api.image(repo, reference)
                if current is not None and current.digest == digest:
                    return digest
                if current is not None:
                    raise await self._immutable(repo, reference, current.digest, digest)
        try:
            stored = await super().put_manifest(repo, reference, data, media_type)
        except RequestRejected as error:
            if "immutable" not in str(error).lower() or is_digest(reference):
                raise
            current = await self.api.image(repo, reference)
            raise await self._immutable(
                repo, reference, current.digest if current else "another image", digest
            ) from error
        return stored

    async def _immutable(self, repo: str, tag: str, held_by: str, digest: str) -> ImmutableTag:
        account = await self.api.account()
        return ImmutableTag(
            f"ECR repository {repo} (registry {account}) has immutable tags; tag {tag} already "
            f"names {held_by}, so it cannot move to {digest}",
            status=400,
            code="ImageTagAlreadyExistsException",
        )

    async def delete_manifest(self, repo: str, digest: str) -> None:
        """``BatchDeleteImage`` by digest: the image and every tag on it."""
        if not is_digest(digest):
            raise RequestRejected(f"delete_manifest needs a digest, got {digest!r}: see delete_tag")
        await self.api.delete(repo, {"imageDigest": digest})

    async def delete_tag(self, repo: str, tag: str) -> None:
        """``BatchDeleteImage`` by tag: only that tag (ECR deletes an image with its last)."""
        if is_digest(tag):
            raise RequestRejected(f"delete_tag needs a tag, got the digest {tag!r}")
        await self.api.delete(repo, {"imageTag": tag})

    # -- blobs -----------------------------------------------------------------------------

    async def mount_blob(self, repo: str, digest: str, from_repo: str) -> bool:
        """A cross-repository mount where the registry has blob mounting on; else False
        without a request (ECR would open an upload session instead)."""
        if not self.blob_mount:
            return False
        return await super().mount_blob(repo, digest, from_repo)

    async def upload_blob(
        self,
        repo: str,
        digest: str,
        size_bytes: int,
        open_stream: OpenStream,
        *,
        chunk_bytes: int | None = None,
    ) -> None:
        """One request per blob (a large one streams in a single ``PATCH``).

        :raises Unsupported: ``chunk_bytes`` asks for several chunks: ECR answers chunked
            ``PATCH`` uploads outside the spec and does not take them reliably.
        """
        if chunk_bytes is not None and chunk_bytes < size_bytes:
            raise Unsupported(
                f"ECR does not take a blob in several chunks ({size_bytes} bytes in chunks of "
                f"{chunk_bytes}): upload it in one request (copy_by_chunk off)"
            )
        await super().upload_blob(repo, digest, size_bytes, open_stream)


def _ref(image: ImageDetail) -> ManifestRef | None:
    if image.media_type is None:
        return None
    return ManifestRef(image.digest, image.media_type, UNKNOWN_SIZE)
