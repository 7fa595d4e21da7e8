"""``azure-acr`` against ACR's limits, on the fake in front of a real Seawall: the 413 on an
oversized monolithic upload (the fake really refuses it; the adapter chunks below it and says
what happened if one still comes), 429 with ``Retry-After`` honoured, and listings that cost one
``/acr/v1/{name}/_tags`` request per repository page (no ``HEAD`` per tag)."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator

import pytest

from adapters.azure_acr import AcrAdapter
from adapters.azure_acr_client import ACR_MAX_REQUEST_BYTES
from adapters.oci.client import OciClient
from adapters.oci.errors import RequestRejected
from adapters.testing import byte_source, push_blob, push_image, read_blob
from engine.listing import list_side
from registry.oci import mediatypes as mt
from tests.support.acr_world import FAST, aad_config, admin_config, fake_aad, fake_acr, namespace
from tests.support.fake_aad import FakeAad
from tests.support.fake_acr import FakeAcr
from tests.support.server import SeawallProcess

pytestmark = pytest.mark.anyio

BIG = 21_000_000  # above ACR's ~20 MB request limit


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="module")
def aad(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FakeAad]:
    with fake_aad(tmp_path_factory.mktemp("aad")) as a:
        yield a


@pytest.fixture
def acr(seawall: SeawallProcess, aad: FakeAad) -> Iterator[FakeAcr]:
    with fake_acr(seawall, aad) as fake:
        yield fake


# -- 413 -----------------------------------------------------------------------------------------


async def test_the_fake_refuses_an_oversized_monolithic_upload(acr: FakeAcr) -> None:
    data = os.urandom(BIG)
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    plain = OciClient(  # a client that does not know ACR's limit
        acr.url, username=acr.admin_username, password=acr.admin_password, **FAST
    )
    async with plain:
        with pytest.raises(RequestRejected) as refused:
            await plain.upload_blob(f"{namespace()}/big", digest, BIG, byte_source(data))
    assert refused.value.status == 413
    assert acr.refused_bodies and all(n == BIG for _, n in acr.refused_bodies)


async def test_blobs_above_the_limit_go_chunked(acr: FakeAcr) -> None:
    repo = f"{namespace()}/big"
    data = os.urandom(BIG)
    async with AcrAdapter(admin_config(acr), **FAST) as adapter:
        digest = await push_blob(adapter, repo, data)
        assert await adapter.client().head_blob(repo, digest) == BIG
        assert await read_blob(adapter, repo, digest) == data
    assert acr.refused_bodies == []
    assert acr.count("PATCH /v2/{name}/blobs/uploads/{id}") == 2  # 16 MiB, then the rest
    assert ACR_MAX_REQUEST_BYTES < BIG < 2 * ACR_MAX_REQUEST_BYTES


async def test_a_413_that_still_comes_says_what_happened(seawall: SeawallProcess) -> None:
    with fake_acr(seawall, max_body_bytes=1_000_000) as acr:  # a proxy with a lower limit
        async with AcrAdapter(admin_config(acr), **FAST) as adapter:
            with pytest.raises(RequestRejected, match=r"too large \(413\).*chunk") as refused:
                await push_blob(adapter, f"{namespace()}/big", os.urandom(2_000_000))
    assert refused.value.status == 413
    assert "ACR takes about 20 MB per request" in str(refused.value)


# -- 429 + Retry-After ---------------------------------------------------------------------------


async def test_429_on_tag_listings_waits_retry_after(acr: FakeAcr) -> None:
    repo = f"{namespace()}/app"
    async with AcrAdapter(admin_config(acr), **FAST) as adapter:
        digest, _ = await push_image(adapter, repo, "v1")
        acr.throttle("GET /acr/v1/{name}/_tags", times=2, retry_after_seconds=0.2)
        before = adapter.client().stats()
        tags, refs = await adapter.list_tag_refs(repo)
        after = adapter.client().stats()
    assert tags == ["v1"] and refs["v1"].digest == digest
    assert acr.answers("GET /acr/v1/{name}/_tags") == {429: 2, 200: 1}
    assert after.rate_limited - before.rate_limited == 2
    assert after.rate_limit_wait_seconds - before.rate_limit_wait_seconds == pytest.approx(0.4)


async def test_429_on_the_data_plane_waits_retry_after(acr: FakeAcr) -> None:
    repo = f"{namespace()}/app"
    async with AcrAdapter(admin_config(acr), **FAST) as adapter:
        digest, _ = await push_image(adapter, repo, "v1")
        acr.throttle("HEAD /v2/{name}/manifests/{ref}", times=3, retry_after_seconds=0.1)
        ref = await adapter.client().head_manifest(repo, "v1")
        stats = adapter.client().stats()
    assert ref is not None and ref.digest == digest
    assert acr.answers("HEAD /v2/{name}/manifests/{ref}") == {429: 3, 200: 1}
    assert (stats.rate_limited, stats.rate_limit_wait_seconds) == (3, pytest.approx(0.3))


async def test_429_on_the_aad_exchange_waits_retry_after(acr: FakeAcr, aad: FakeAad) -> None:
    acr.throttle("POST /oauth2/exchange", times=1, retry_after_seconds=0.2)
    async with AcrAdapter(aad_config(acr, aad), **FAST) as adapter:
        ok, detail = await adapter.health()
        assert ok, detail
        exchange = adapter.client().anonymous_session().stats()
    assert acr.answers("POST /oauth2/exchange") == {429: 1, 200: 1}
    assert adapter.exchanges == 1
    assert (exchange.rate_limited, exchange.rate_limit_wait_seconds) == (1, pytest.approx(0.2))


async def test_429_on_the_token_endpoint_waits_retry_after(acr: FakeAcr) -> None:
    async with AcrAdapter(admin_config(acr), **FAST) as adapter:
        acr.throttle("GET /oauth2/token", times=1, retry_after_seconds=0.2)
        ok, detail = await adapter.health()
        stats = adapter.client().stats()
    assert ok, detail
    assert acr.answers("GET /oauth2/token").get(429) == 1
    assert stats.rate_limit_wait_seconds == pytest.approx(0.2)


# -- listings: one request per repository page ---------------------------------------------------


async def _repositories(adapter: AcrAdapter, count: int, tags: int) -> dict[str, str]:
    """``count`` repositories with ``tags`` tags each (one manifest); ``{repo: digest}``."""
    ns = namespace()
    out = {}
    for i in range(count):
        repo = f"{ns}/app{i}"
        digest, data = await push_image(adapter, repo, "t0")
        for t in range(1, tags):
            await adapter.client().put_manifest(repo, f"t{t}", data, mt.OCI_MANIFEST)
        out[repo] = digest
    return out


async def test_a_listing_costs_one_tags_request_per_repository(acr: FakeAcr) -> None:
    async with AcrAdapter(admin_config(acr), **FAST) as adapter:
        pushed = await _repositories(adapter, count=3, tags=8)
        acr.reset_counts()
        listing = await list_side(adapter, pushed)
    assert listing.complete
    for repo, digest in pushed.items():
        assert listing.tags[repo] == {f"t{t}": digest for t in range(8)}
    assert acr.count("GET /acr/v1/{name}/_tags") == 3
    assert acr.count("HEAD /v2/{name}/manifests/{ref}") == 0
    assert acr.count("GET /oauth2/token") == 3  # a metadata_read token per repository
    assert acr.total == 6


async def test_tag_pages_follow_the_link_header(seawall: SeawallProcess) -> None:
    with fake_acr(seawall, page_size=3) as acr:  # the registry sends at most 3 tags a page
        async with AcrAdapter(admin_config(acr), **FAST) as adapter:
            pushed = await _repositories(adapter, count=2, tags=8)
            acr.reset_counts()
            listing = await list_side(adapter, pushed)
    assert all(len(listing.tags[repo]) == 8 for repo in pushed)
    assert acr.count("GET /acr/v1/{name}/_tags") == 2 * 3  # 3 + 3 + 2 per repository
    assert acr.count("HEAD /v2/{name}/manifests/{ref}") == 0


async def test_the_catalog_starts_and_stops_at_the_prefix(seawall: SeawallProcess) -> None:
    with fake_acr(seawall, page_size=2) as acr:
        async with AcrAdapter(admin_config(acr), **FAST) as adapter:
            pushed = await _repositories(adapter, count=3, tags=1)
            prefix = next(iter(pushed)).split("/")[0] + "/"
            acr.reset_counts()
            names, listings = await adapter.catalog_listings(prefix)
            everything, _ = await adapter.catalog_listings()
    assert names == sorted(pushed) and listings is None
    assert set(pushed) <= set(everything)
    # two pages of two from just before the prefix; the whole catalog takes one per two names
    assert acr.answers("GET /acr/v1/_catalog")[200] == 2 + -(-len(everything) // 2)
