"""The OCI client for Google's registries: :class:`OciClient` plus two things Google does its
own way.

1. ``GET /v2/<name>/tags/list`` answers more than tags (GCR's extension, kept by Artifact
   Registry)::

       {"name": "p/app", "tags": ["1.0", "latest"], "child": ["sub"],
        "manifest": {"sha256:…": {"tag": ["1.0", "latest"], "mediaType": "…",
                                  "imageSizeBytes": "1234", "timeCreatedMs": "…",
                                  "timeUploadedMs": "…" (GCR: a string, AR: a number)}}}

   so one request per repository lists every tag with the manifest it names
   (:meth:`GoogleOciClient.list_tag_refs`): no ``HEAD`` per tag. The map has no manifest
   sizes: listed :class:`~adapters.oci.types.ManifestRef` values carry ``size=-1``
   (:data:`UNKNOWN_SIZE`); the engine reads only their digest and media type.
2. ``DELETE /v2/<name>/manifests/<digest>`` is refused while a tag names the manifest
   (``GOOGLE_MANIFEST_DANGLING_TAG``): :meth:`GoogleOciClient.delete_manifest` deletes those
   tags first (``DELETE …/manifests/<tag>`` untags), then the manifest, as the OCI contract of
   ``delete_manifest`` says (the manifest and every tag on it).
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

from adapters.oci.client import OciClient
from adapters.oci.errors import NotFound, RequestRejected
from adapters.oci.types import UNKNOWN_SIZE, ManifestRef
from adapters.oci.urls import is_digest
from adapters.oci.urls import pull as pull_scope

__all__ = ["GoogleManifest", "GoogleOciClient", "GoogleTagList", "parse_tag_list"]

DANGLING_TAG = "GOOGLE_MANIFEST_DANGLING_TAG"


@dataclass(frozen=True, slots=True)
class GoogleManifest:
    """One entry of the ``manifest`` map: the tags on a manifest and what it is."""

    tags: tuple[str, ...]
    media_type: str  # "" when the registry did not say
    image_size_bytes: int | None  # the image's total size (layers and config)


@dataclass(frozen=True, slots=True)
class GoogleTagList:
    """A parsed Google ``tags/list`` answer (all its pages)."""

    tags: tuple[str, ...]
    manifests: dict[str, GoogleManifest]  # digest -> entry
    children: tuple[str, ...]  # path components of repositories below this one

    def refs(self) -> dict[str, ManifestRef]:
        """``{tag: ManifestRef}`` for every listed tag the map names with a media type."""
        listed = set(self.tags)
        out: dict[str, ManifestRef] = {}
        for digest, entry in self.manifests.items():
            if not entry.media_type:
                continue  # the engine HEADs these tags
            for tag in entry.tags:
                if tag in listed:
                    out[tag] = ManifestRef(digest, entry.media_type, UNKNOWN_SIZE)
        return out


def _int(value: object) -> int | None:
    return int(value) if isinstance(value, str | int) and str(value).isdigit() else None


def _strings(value: object) -> tuple[str, ...]:
    return tuple(str(v) for v in value) if isinstance(value, list) else ()


def parse_tag_list(page: dict[str, object]) -> GoogleTagList:
    """One page of Google's ``tags/list``; malformed ``manifest`` entries are left out."""
    manifests: dict[str, GoogleManifest] = {}
    raw = page.get("manifest")
    for digest, entry in raw.items() if isinstance(raw, dict) else ():
        if not isinstance(digest, str) or not is_digest(digest) or not isinstance(entry, dict):
            continue
        media_type = entry.get("mediaType")
        manifests[digest] = GoogleManifest(
            _strings(entry.get("tag")),
            media_type if isinstance(media_type, str) else "",
            _int(entry.get("imageSizeBytes")),
        )
    return GoogleTagList(_strings(page.get("tags")), manifests, _strings(page.get("child")))


class GoogleOciClient(OciClient):
    """:class:`OciClient` with Google's tag listing and manifest deletion (module docstring)."""

    async def google_tags(self, repo: str) -> GoogleTagList:
        """Google's ``tags/list`` of ``repo``, every page (Google answers one).

        :raises NotFound: no such repository.
        """
        url: str | None = self.endpoint.tags(repo, 1).partition("?")[0]  # no n=: one page
        tags: list[str] = []
        children: list[str] = []
        manifests: dict[str, GoogleManifest] = {}
        async for page, _ in self._pages(url, pull_scope(repo), "application/json"):
            one = parse_tag_list(page)
            tags.extend(one.tags)
            children.extend(one.children)
            manifests.update(one.manifests)
        return GoogleTagList(tuple(tags), manifests, tuple(children))

    async def list_tag_refs(
        self, repo: str, page_size: int = 1000
    ) -> tuple[list[str], dict[str, ManifestRef]]:
        """Tags of ``repo`` and the manifest each names, from one ``tags/list`` request."""
        listing = await self.google_tags(repo)
        return list(listing.tags), listing.refs()

    async def delete_manifest(self, repo: str, digest: str) -> None:
        """Delete the manifest and every tag on it: where Google refuses because tags still
        name it, those tags are deleted first, then the manifest."""
        try:
            await super().delete_manifest(repo, digest)
            return
        except RequestRejected as e:
            if e.code != DANGLING_TAG:
                raise
        entry = (await self.google_tags(repo)).manifests.get(digest)
        for tag in entry.tags if entry is not None else ():
            with contextlib.suppress(NotFound):  # untagged meanwhile
                await self.delete_tag(repo, tag)
        await super().delete_manifest(repo, digest)
