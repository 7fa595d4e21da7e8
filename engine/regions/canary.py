"""A region's health: reachable, credentials accepted, and a canary round trip.

Steps, cheapest first; the first failure ends the probe and says what failed::

    reachable       the URL's host is not a refused address (engine.netguard) and takes a
                    TCP connection within CONNECT_SECONDS (no client retries for seconds)
    authenticated   the adapter's health check: GET /v2/ through the auth flow with the
                    endpoint's credentials (a provider's own API where the adapter has one)
    canary          a tiny image — a config blob, one layer, a manifest — pushed under a
                    unique tag to seawall-canary/<region>, pulled back by tag (the manifest's
                    bytes must hash to the pushed digest) and its layer read back (the bytes
                    must hash to the layer's digest); then deleted (by digest where the
                    registry deletes manifests, else the tag). A canary that cannot be
                    deleted is reported, not held against the region's health.

The endpoint's account needs push, pull and delete on ``seawall-canary/*``.
"""

from __future__ import annotations

import hashlib
import json
import time
import uuid
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from urllib.parse import urlsplit

import anyio

from adapters.base import AdapterError, RegistryAdapter
from adapters.oci.errors import OciError
from engine.netguard import TargetRefused, check_url, connect_problem
from engine.regions.report import CANARY_NAMESPACE, Health
from registry.oci import mediatypes as mt

__all__ = ["CONNECT_SECONDS", "canary_image", "probe"]

CONNECT_SECONDS = 5.0
LAYER_MEDIA_TYPE = "application/vnd.oci.image.layer.v1.tar"
Clock = Callable[[], float]


def canary_image(region: str, nonce: str) -> tuple[bytes, bytes, bytes]:
    """``(config, layer, manifest)`` bytes of a canary image, unique to ``nonce``."""
    config = json.dumps(
        {"architecture": "amd64", "os": "linux", "seawall": {"canary": region, "nonce": nonce}},
        sort_keys=True,
    ).encode()
    layer = f"seawall canary {region} {nonce}\n".encode()
    manifest = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": mt.OCI_MANIFEST,
            "config": _descriptor(mt.OCI_CONFIG, config),
            "layers": [_descriptor(LAYER_MEDIA_TYPE, layer)],
            "annotations": {"org.opencontainers.image.title": f"seawall canary for {region}"},
        },
        separators=(",", ":"),
    ).encode()
    return config, layer, manifest


def _digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def _descriptor(media_type: str, data: bytes) -> dict[str, object]:
    return {"mediaType": media_type, "digest": _digest(data), "size": len(data)}


async def _unreachable(url: str, allow_link_local: bool) -> str | None:
    """Why ``url`` cannot or must not be reached; None when a TCP connection was made (or
    the URL is not an HTTP one: the adapter's own check decides)."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https"):
        return None
    try:
        check_url(url, allow_link_local=allow_link_local)
    except TargetRefused as e:
        return str(e)[:300]
    return await connect_problem(url, CONNECT_SECONDS)


async def probe(
    adapter: RegistryAdapter,
    region: str,
    *,
    canary: bool = True,
    allow_link_local: bool = False,
    clock: Clock = time.perf_counter,
) -> Health:
    """The region's :class:`Health`; never raises for a registry's failure (the caller
    bounds the time)."""
    problem = await _unreachable(adapter.registry_url(), allow_link_local)
    if problem is not None:
        return Health(False, False, False, problem)
    started = clock()
    try:
        ok, detail = await adapter.health()
    except (OciError, AdapterError) as e:
        ok, detail = False, str(e)[:300]
    latency_ms = (clock() - started) * 1000
    if not ok:
        return Health(True, False, False, detail[:300], latency_ms=latency_ms)
    if not canary:
        return Health(True, True, True, "ok (no canary)", latency_ms=latency_ms)
    started = clock()
    try:
        removed, note = await _round_trip(adapter, region)
    except (OciError, AdapterError, ValueError) as e:
        failed = f"canary round trip failed: {type(e).__name__}: {e}"[:400]
        return Health(True, True, False, failed, latency_ms=latency_ms)
    canary_ms = (clock() - started) * 1000
    return Health(True, True, True, note, latency_ms, canary_ms, canary_removed=removed)


async def _round_trip(adapter: RegistryAdapter, region: str) -> tuple[bool, str]:
    """Push, pull and compare, then delete the canary: ``(deleted, note)``.

    :raises ValueError: what was pulled back is not what was pushed.
    """
    nonce = uuid.uuid4().hex
    repo = f"{CANARY_NAMESPACE}/{region}"
    tag = f"c{datetime.now(UTC):%Y%m%dT%H%M%S}-{nonce[:12]}"
    config, layer, manifest = canary_image(region, nonce)
    await adapter.prepare_repository(repo)
    client = adapter.client()
    for blob in (config, layer):
        await client.upload_blob(repo, _digest(blob), len(blob), _stream(blob))
    pushed = await client.put_manifest(repo, tag, manifest, mt.OCI_MANIFEST)
    try:
        pulled = await client.get_manifest(repo, tag)
        if pulled.digest != pushed or _digest(pulled.data) != pushed:
            raise ValueError(f"pulled {repo}:{tag} as {pulled.digest}, pushed {pushed}")
        async with client.blob_stream(repo, _digest(layer)) as reader:
            data = b"".join([chunk async for chunk in reader.iter_chunks()])
        if _digest(data) != _digest(layer):
            raise ValueError(f"the canary's layer came back as {_digest(data)}")
    finally:
        with anyio.CancelScope(shield=True):
            removed, note = await _remove(adapter, repo, tag, pushed)
    return removed, note


def _stream(data: bytes) -> Callable[[int], AsyncIterator[bytes]]:
    async def open_at(offset: int) -> AsyncIterator[bytes]:
        yield data[offset:]

    return open_at


async def _remove(adapter: RegistryAdapter, repo: str, tag: str, digest: str) -> tuple[bool, str]:
    """Delete the canary (its blobs are left to the registry's garbage collection)."""
    client = adapter.client()
    try:
        with anyio.fail_after(10):
            if adapter.capabilities.delete_manifest:
                await client.delete_manifest(repo, digest)
            else:
                await client.delete_tag(repo, tag)
    except (OciError, TimeoutError) as e:
        return False, f"ok; the canary {repo}:{tag} could not be deleted ({type(e).__name__})"
    return True, "ok"
