"""OciClient's failure handling, against a fault-injecting in-memory registry (no real
registry misbehaves on cue): 429 + Retry-After, 5xx, resets mid-upload and mid-download,
lying digests, limits, token caching, timeouts, refused connections."""

from __future__ import annotations

import email.utils
import hashlib
import os
import time
from collections.abc import AsyncIterator
from typing import Any

import anyio
import pytest

from adapters.oci import (
    ConnectionFailed,
    DigestMismatch,
    OciClient,
    RateLimited,
    ServerError,
    TimedOut,
    Unauthorized,
)
from registry.oci import mediatypes as mt
from tests.adapters.content import MiB, Source, random_source
from tests.adapters.fakes import RESET, FakeRegistry, Fault, serve

pytestmark = pytest.mark.anyio


@pytest.fixture
async def fake() -> AsyncIterator[Fake]:
    registry = FakeRegistry()
    async with serve(registry.app()) as url:
        yield registry, url


Fake = tuple[FakeRegistry, str]


def client(url: str, **kw: Any) -> OciClient:
    kw.setdefault("backoff_base_seconds", 0.01)
    return OciClient(url, **kw)


async def test_429_retry_after_seconds_is_honoured_while_listing_tags(fake: Fake) -> None:
    registry, url = fake
    registry.tags["a"] = [f"t{i:02d}" for i in range(25)]
    # the second page is throttled once: the client must wait and carry on, not start over
    registry.faults[("GET", "/tags/list")] = []
    async with client(url) as oci:
        first = await oci.list_tags("a", page_size=10)
        registry.faults[("GET", "/tags/list")] = [Fault(429, {"Retry-After": "1"})]
        started = time.monotonic()
        second = await oci.list_tags("a", page_size=10)
        waited = time.monotonic() - started
        stats = oci.stats()
    assert first == second == registry.tags["a"]
    assert waited >= 0.95
    assert registry.hits[("GET", "/v2/a/tags/list")] == 3 + 4  # 3 pages, then 1 throttled + 3
    assert stats.rate_limited == 1 and stats.retries == 1
    assert stats.rate_limit_wait_seconds == pytest.approx(1.0)


async def test_429_retry_after_http_date(fake: Fake) -> None:
    registry, url = fake
    registry.manifests["v1"] = (b"{}", mt.OCI_MANIFEST)
    when = email.utils.formatdate(time.time() + 2, usegmt=True)  # second resolution: 1-2 s
    registry.faults[("HEAD", "/manifests/v1")] = [Fault(429, {"Retry-After": when})]
    async with client(url) as oci:
        started = time.monotonic()
        ref = await oci.head_manifest("a", "v1")
        waited = time.monotonic() - started
    assert ref is not None
    assert waited >= 0.9
    assert registry.hits[("HEAD", "/v2/a/manifests/v1")] == 2


async def test_429_pauses_the_whole_endpoint(fake: Fake) -> None:
    registry, url = fake
    registry.manifests["v1"] = (b"{}", mt.OCI_MANIFEST)
    registry.faults[("HEAD", "/manifests/v1")] = [Fault(429, {"Retry-After": "1"})]
    async with client(url) as oci:
        await oci.head_manifest("a", "v1")  # throttled: pauses the endpoint for 1 s...
        started = time.monotonic()
        await oci.head_blob("a", "sha256:" + "0" * 64)  # ...which this request then respects
    # the first request already waited the second out; this one must not start a new wait
    assert time.monotonic() - started < 0.5
    registry.faults[("HEAD", "/manifests/v1")] = [Fault(429, {"Retry-After": "1"})]
    async with client(url) as oci, anyio.create_task_group() as tg:
        tg.start_soon(oci.head_manifest, "a", "v1")
        await anyio.sleep(0.2)
        started = time.monotonic()
        await oci.head_blob("a", "sha256:" + "0" * 64)
        assert time.monotonic() - started >= 0.6  # waited for the pause to end


async def test_429_longer_than_the_limit_is_raised(fake: Fake) -> None:
    registry, url = fake
    registry.tags["a"] = ["x"]
    registry.faults[("GET", "/tags/list")] = [Fault(429, {"Retry-After": "3600"})]
    async with client(url, max_retry_after_seconds=60) as oci:
        with pytest.raises(RateLimited) as caught:
            await oci.list_tags("a")
    assert caught.value.retry_after_seconds == 3600
    assert registry.hits[("GET", "/v2/a/tags/list")] == 1


async def test_503_then_success(fake: Fake) -> None:
    registry, url = fake
    data = b'{"schemaVersion":2}'
    registry.manifests["v1"] = (data, mt.OCI_MANIFEST)
    registry.faults[("GET", "/manifests/v1")] = [Fault(503), Fault(502)]
    async with client(url) as oci:
        manifest = await oci.get_manifest("a", "v1")
        stats = oci.stats()
    assert manifest.data == data
    assert registry.hits[("GET", "/v2/a/manifests/v1")] == 3
    assert stats.retries == 2


async def test_persistent_5xx_gives_up_after_the_retries(fake: Fake) -> None:
    registry, url = fake
    registry.manifests["v1"] = (b"{}", mt.OCI_MANIFEST)
    registry.faults[("GET", "/manifests/v1")] = [Fault(500)] * 10
    async with client(url, retries=2) as oci:
        with pytest.raises(ServerError) as caught:
            await oci.get_manifest("a", "v1")
    assert caught.value.status == 500
    assert registry.hits[("GET", "/v2/a/manifests/v1")] == 3


async def test_connection_reset_then_success(fake: Fake) -> None:
    registry, url = fake
    registry.manifests["v1"] = (b"{}", mt.OCI_MANIFEST)
    registry.faults[("GET", "/manifests/v1")] = [RESET]
    async with client(url) as oci:
        assert (await oci.get_manifest("a", "v1")).data == b"{}"
    assert registry.hits[("GET", "/v2/a/manifests/v1")] == 2


async def test_lying_digest_header_is_a_mismatch(fake: Fake) -> None:
    registry, url = fake
    data = b'{"schemaVersion":2}'
    registry.manifests["v1"] = (data, mt.OCI_MANIFEST)
    registry.digest_header["v1"] = "sha256:" + "1" * 64
    real = "sha256:" + hashlib.sha256(data).hexdigest()
    registry.manifests[real] = (b'{"schemaVersion":3}', mt.OCI_MANIFEST)
    async with client(url) as oci:
        with pytest.raises(DigestMismatch):
            await oci.get_manifest("a", "v1")
        with pytest.raises(DigestMismatch):  # asked by digest, got other bytes
            await oci.get_manifest("a", real)


async def test_upload_resumes_from_the_registrys_offset(fake: Fake) -> None:
    registry, url = fake
    source = random_source(5 * MiB, piece_bytes=100_000)
    registry.patch_reset_after[2] = 300_000  # 2nd chunk: registry keeps 300 kB, then resets
    async with client(url) as oci:
        await oci.upload_blob("a", source.digest, len(source.data), source, chunk_bytes=MiB)
        stats = oci.stats()
    assert registry.blobs[source.digest] == source.data
    assert source.opened_at == [0, MiB + 300_000]  # reopened where the registry was, not at 0
    resent = registry.bytes_received - len(source.data)
    assert resent <= MiB - 300_000  # at most what was in flight past the registry's offset
    assert stats.resumes == 1


async def test_upload_resumes_after_a_5xx_chunk(fake: Fake) -> None:
    registry, url = fake
    source = random_source(3 * MiB)
    registry.patch_status[3] = 500  # answered before its body is read: resume at 2 MiB
    async with client(url) as oci:
        await oci.upload_blob("a", source.digest, len(source.data), source, chunk_bytes=MiB)
    assert registry.blobs[source.digest] == source.data
    assert source.opened_at == [0, 2 * MiB]


async def test_lost_upload_session_starts_again(fake: Fake) -> None:
    registry, url = fake
    source = random_source(3 * MiB)
    registry.patch_reset_after[2] = 10
    registry.expire_sessions_on_status = True  # the status query finds the session gone
    async with client(url) as oci:
        await oci.upload_blob("a", source.digest, len(source.data), source, chunk_bytes=MiB)
    assert registry.blobs[source.digest] == source.data
    assert source.opened_at == [0, 0]


async def test_monolithic_upload_retries_with_a_new_session(fake: Fake) -> None:
    registry, url = fake
    source = Source(os.urandom(100_000))
    registry.faults[("PUT", "")] = [Fault(503)]
    async with client(url) as oci:
        await oci.upload_blob("a", source.digest, len(source.data), source)
    assert registry.blobs[source.digest] == source.data
    assert registry.hits[("POST", "/v2/a/blobs/uploads/")] == 2
    assert source.opened_at == [0]  # small blobs are read once and kept in memory


async def test_blob_stream_resumes_with_range(fake: Fake) -> None:
    registry, url = fake
    data = os.urandom(3 * MiB)
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    registry.blobs[digest] = data
    registry.cut_blob_after = [MiB, MiB // 2]
    async with client(url) as oci:
        async with oci.blob_stream("a", digest) as blob:
            got = b"".join([chunk async for chunk in blob.iter_chunks(64 * 1024)])
        stats = oci.stats()
    assert got == data
    assert stats.resumes == 2
    assert stats.bytes_received < len(data) + 256 * 1024  # nothing fetched twice


async def test_blob_stream_skips_when_range_is_ignored(fake: Fake) -> None:
    registry, url = fake
    data = os.urandom(MiB)
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    registry.blobs[digest] = data
    registry.ignore_range = True
    async with client(url) as oci, oci.blob_stream("a", digest, offset=1000) as blob:
        got = b"".join([chunk async for chunk in blob.iter_chunks()])
    assert got == data[1000:]


async def test_max_in_flight_is_respected(fake: Fake) -> None:
    registry, url = fake
    registry.manifests["v1"] = (b"{}", mt.OCI_MANIFEST)
    registry.delay_seconds = 0.05
    async with client(url, max_in_flight=3) as oci, anyio.create_task_group() as tg:
        for _ in range(20):
            tg.start_soon(oci.head_manifest, "a", "v1")
    assert registry.max_in_flight == 3


async def test_requests_per_second_is_respected(fake: Fake) -> None:
    registry, url = fake
    registry.manifests["v1"] = (b"{}", mt.OCI_MANIFEST)
    async with client(url, requests_per_second=20) as oci:
        started = time.monotonic()
        async with anyio.create_task_group() as tg:
            for _ in range(30):
                tg.start_soon(oci.head_manifest, "a", "v1")
        elapsed = time.monotonic() - started
    assert elapsed >= (30 - 20) / 20 - 0.05  # a burst of 20, then 20/s


async def test_tokens_are_fetched_once_per_scope(fake: Fake) -> None:
    registry, url = fake
    registry.require_token = True
    registry.manifests["v1"] = (b"{}", mt.OCI_MANIFEST)
    async with client(url, username="u", password="p") as oci:
        async with anyio.create_task_group() as tg:
            for _ in range(20):
                tg.start_soon(oci.head_manifest, "a", "v1")
        await oci.head_manifest("b", "v1")
        result = await oci.ping()
    scopes = [q.get("scope") for q in registry.token_requests]
    assert scopes.count("repository:a:pull") == 1  # single flight, then cached
    assert scopes.count("repository:b:pull") == 1  # fetched up front: no 401 round trip
    assert registry.hits[("HEAD", "/v2/b/manifests/v1")] == 1
    assert result.auth_scheme == "bearer" and result.service == "fake"


async def test_expired_tokens_are_renewed(fake: Fake) -> None:
    registry, url = fake
    registry.require_token = True
    registry.token_seconds = 1
    registry.manifests["v1"] = (b"{}", mt.OCI_MANIFEST)
    async with client(url) as oci:  # anonymous token flow
        await oci.head_manifest("a", "v1")
        await oci.head_manifest("a", "v1")
        assert len(registry.token_requests) == 1
        await anyio.sleep(1.0)
        await oci.head_manifest("a", "v1")
    assert len(registry.token_requests) == 2
    assert all("authorization" not in q for q in registry.token_requests)  # anonymous


async def test_read_timeout(fake: Fake) -> None:
    registry, url = fake
    registry.manifests["v1"] = (b"{}", mt.OCI_MANIFEST)
    registry.delay_seconds = 1.0
    async with client(url, timeout_read_seconds=0.2, retries=1) as oci:
        with pytest.raises(TimedOut):
            await oci.get_manifest("a", "v1")
    assert registry.hits[("GET", "/v2/a/manifests/v1")] == 2


async def test_refused_connection() -> None:
    from tests.support.server import free_port

    async with client(f"http://127.0.0.1:{free_port()}", retries=1) as oci:
        with pytest.raises(ConnectionFailed) as caught:
            await oci.ping()
    assert caught.value.url is not None and "/v2/" in caught.value.url


async def test_basic_credentials_go_to_the_token_realm(fake: Fake) -> None:
    registry, url = fake
    registry.require_token = True
    registry.manifests["v1"] = (b"{}", mt.OCI_MANIFEST)
    async with client(url, username="u", password="p") as oci:
        await oci.head_manifest("a", "v1")
    (query,) = registry.token_requests
    assert query["authorization"] == "Basic dTpw"  # u:p
    assert query["service"] == "fake" and query["scope"] == "repository:a:pull"


async def test_oauth2_post_when_the_realm_refuses_get(fake: Fake) -> None:
    registry, url = fake
    registry.require_token = True
    registry.token_get_status = 405
    registry.manifests["v1"] = (b"{}", mt.OCI_MANIFEST)
    async with client(url, username="u", password="p") as oci:
        assert await oci.head_manifest("a", "v1") is not None
    (form,) = registry.token_requests
    assert form["grant_type"] == "password"
    assert (form["username"], form["password"]) == ("u", "p")
    assert form["scope"] == "repository:a:pull"


async def test_a_rejected_token_is_replaced(fake: Fake) -> None:
    registry, url = fake
    registry.require_token = True
    registry.manifests["v1"] = (b"{}", mt.OCI_MANIFEST)
    async with client(url) as oci:
        await oci.head_manifest("a", "v1")
        registry.revoked_tokens.add("tok-1")  # e.g. the registry restarted with a new key
        assert await oci.head_manifest("a", "v1") is not None
    assert len(registry.token_requests) == 2


async def test_static_token_is_sent_as_bearer(fake: Fake) -> None:
    registry, url = fake
    registry.require_token = True
    registry.manifests["v1"] = (b"{}", mt.OCI_MANIFEST)
    async with client(url, token="tok-static") as oci:
        assert await oci.head_manifest("a", "v1") is not None
    assert registry.token_requests == []
    registry.revoked_tokens.add("tok-static")
    async with client(url, token="tok-static") as oci:
        with pytest.raises(Unauthorized):
            await oci.head_manifest("a", "v1")


async def test_unmountable_blob_cancels_the_session(fake: Fake) -> None:
    registry, url = fake  # the fake ignores ?mount=: it always opens a session (202)
    async with client(url) as oci:
        assert await oci.mount_blob("a", "sha256:" + "2" * 64, "b") is False
    deletes = [k for k in registry.hits if k[0] == "DELETE"]
    assert len(deletes) == 1 and registry.uploads == {}


async def test_token_expiring_mid_upload(fake: Fake) -> None:
    registry, url = fake
    registry.require_token = True
    registry.revoke_tokens_after_patch = 2  # the 3rd chunk meets a 401
    source = random_source(4 * MiB)
    async with client(url, username="u", password="p") as oci:
        await oci.upload_blob("a", source.digest, len(source.data), source, chunk_bytes=MiB)
    assert registry.blobs[source.digest] == source.data
    assert source.opened_at == [0, 2 * MiB]  # resumed after the 401, not re-sent from 0
    assert len(registry.token_requests) == 2
