"""Referrers on registries with and without the OCI 1.1 referrers API.

Where a registry has no referrers API (CNCF distribution 2.8, GCR, older Harbor and Quay), the
distribution spec's *referrers tag schema* stands in for it: the tag ``<alg>-<hex>`` of the
subject names an image index whose ``manifests`` are the referrers' descriptors. Clients that
push a referrer to such a registry (oras, cosign's OCI 1.1 mode, regctl) keep that index up to
date; so does Seawall's copier:

- reading: :func:`source_referrers` asks the API and, when the registry has none, reads the
  tag's index (no tag: no referrers);
- writing: :func:`publish_fallback` — after the referrers were copied to a destination that
  answers no referrers API — merges their descriptors into the destination's tag index and
  puts it, so clients there find them as the spec says.
"""

from __future__ import annotations

import json
from collections.abc import Sequence

from adapters.oci.client import OciClient
from adapters.oci.content import descriptor
from adapters.oci.errors import NotFound, ProtocolError
from adapters.protocol import RegistryClient
from registry.oci import mediatypes as mt
from registry.oci.manifest import Descriptor

__all__ = ["fallback_tag", "publish_fallback", "source_referrers"]


def fallback_tag(subject: str) -> str:
    """The referrers tag schema's tag of ``subject`` (``sha256:ab…`` → ``sha256-ab…``)."""
    return OciClient.referrers_tag(subject)


async def _fallback_index(client: RegistryClient, repo: str, subject: str) -> list[Descriptor]:
    try:
        manifest = await client.get_manifest(repo, fallback_tag(subject))
    except NotFound:
        return []
    try:
        doc = json.loads(manifest.data)
    except ValueError as e:
        raise ProtocolError(f"{repo}:{fallback_tag(subject)} is not a JSON index: {e}") from e
    entries = doc.get("manifests") if isinstance(doc, dict) else None
    if not isinstance(entries, list):
        return []
    try:
        return [descriptor(d) for d in entries if isinstance(d, dict)]
    except (TypeError, ValueError) as e:  # e.g. a size that is not a number
        raise ProtocolError(
            f"{repo}:{fallback_tag(subject)} lists a malformed descriptor: {e}"
        ) from e


async def source_referrers(client: RegistryClient, repo: str, subject: str) -> list[Descriptor]:
    """The referrers of ``subject``: from the referrers API, else from the tag schema."""
    found = await client.referrers(repo, subject)
    if found is not None:
        return found
    return await _fallback_index(client, repo, subject)


async def publish_fallback(
    client: RegistryClient, repo: str, subject: str, referrers: Sequence[Descriptor]
) -> bool:
    """Where ``repo``'s registry has no referrers API, add ``referrers`` to the subject's
    tag-schema index there (creating it); True if the index was put. A registry with the API
    lists them by itself: nothing is written."""
    if not referrers or await client.referrers(repo, subject) is not None:
        return False
    current = await _fallback_index(client, repo, subject)
    known = {d.digest for d in current}
    merged = current + [d for d in referrers if d.digest not in known]
    if len(merged) == len(current):
        return False
    index = {
        "schemaVersion": 2,
        "mediaType": mt.OCI_INDEX,
        "manifests": [d.to_json() for d in merged],
    }
    data = json.dumps(index, separators=(",", ":")).encode()
    await client.put_manifest(repo, fallback_tag(subject), data, mt.OCI_INDEX)
    return True
