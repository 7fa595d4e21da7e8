"""OciClient against real registries: CNCF distribution 2.8 (no auth, htpasswd Basic) and
Seawall (Docker token flow). Each test runs on all three unless it says otherwise."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator

import pytest

from adapters.oci import (
    DigestMismatch,
    NotFound,
    OciClient,
    RequestRejected,
    Unauthorized,
    Unsupported,
)
from registry.oci import mediatypes as mt
from tests.adapters.conftest import Remote
from tests.adapters.content import MiB, Source, push_blob, push_image, random_source, sha256

pytestmark = pytest.mark.anyio


async def test_ping_reports_the_auth_scheme(remote: Remote) -> None:
    async with remote.client() as oci:
        result = await oci.ping()
    assert result.status == 200
    assert result.api_version == "registry/2.0"
    assert result.auth_scheme == remote.auth_scheme


async def test_wrong_password_is_unauthorized(remote: Remote) -> None:
    if remote.username is None:
        pytest.skip("registry without auth")
    async with OciClient(remote.url, username=remote.username, password="wrong") as oci:
        with pytest.raises(Unauthorized):
            await oci.list_tags("oci-client/none")


async def test_monolithic_blob_round_trip(remote: Remote, repo: str) -> None:
    source = random_source(3 * MiB + 17)
    async with remote.client() as oci:
        assert await oci.head_blob(repo, source.digest) is None
        await oci.upload_blob(repo, source.digest, len(source.data), source)
        assert await oci.head_blob(repo, source.digest) == len(source.data)
        async with oci.blob_stream(repo, source.digest) as blob:
            assert blob.size_bytes == len(source.data)
            got = b"".join([chunk async for chunk in blob.iter_chunks(MiB)])
        stats = oci.stats()
    assert got == source.data
    assert source.opened_at == [0]
    assert stats.bytes_sent >= len(source.data)
    assert stats.bytes_received >= len(source.data)


async def test_small_blobs_go_in_one_post_where_the_registry_takes_it(
    remote: Remote, repo: str
) -> None:
    """OCI's single-POST upload: one request a blob where the registry stores the body
    (Seawall answers 201); distribution answers 202 (it ignores the body), so that blob is PUT
    on the session and the client goes POST + PUT from then on."""
    sources = [random_source(1000 + i) for i in range(4)]
    async with remote.client() as oci:
        await oci.upload_blob(repo, sources[0].digest, len(sources[0].data), sources[0])
        per_blob = []
        for source in sources[1:]:
            before = oci.stats().requests
            await oci.upload_blob(repo, source.digest, len(source.data), source)
            per_blob.append(oci.stats().requests - before)
        for source in sources:
            assert await oci.head_blob(repo, source.digest) == len(source.data)
            async with oci.blob_stream(repo, source.digest) as blob:
                assert b"".join([c async for c in blob.iter_chunks(MiB)]) == source.data
    assert per_blob == ([2, 2, 2] if remote.is_distribution else [1, 1, 1])


async def test_chunked_blob_round_trip(remote: Remote, repo: str) -> None:
    source = random_source(5 * MiB + 3, piece_bytes=300_000)  # pieces straddle chunk edges
    async with remote.client() as oci:
        await oci.upload_blob(repo, source.digest, len(source.data), source, chunk_bytes=MiB)
        async with oci.blob_stream(repo, source.digest) as blob:
            got = b"".join([chunk async for chunk in blob.iter_chunks()])
    assert got == source.data
    assert source.opened_at == [0]


async def test_large_blobs_go_chunked_by_default(remote: Remote, repo: str) -> None:
    source = random_source(3 * MiB)
    async with remote.client(monolithic_max_bytes=MiB, chunk_bytes=MiB) as oci:
        before = oci.stats().requests
        await oci.upload_blob(repo, source.digest, len(source.data), source)
        requests = oci.stats().requests - before
        assert await oci.head_blob(repo, source.digest) == len(source.data)
    assert requests >= 5  # POST, 3 PATCH, PUT (plus any token round trips)


async def test_blob_stream_from_an_offset(remote: Remote, repo: str) -> None:
    data = os.urandom(2 * MiB)
    async with remote.client() as oci:
        digest = await push_blob(oci, repo, data)
        async with oci.blob_stream(repo, digest, offset=MiB + 5) as blob:
            assert blob.size_bytes == len(data)
            got = b"".join([chunk async for chunk in blob.iter_chunks()])
    assert got == data[MiB + 5 :]


async def test_wrong_digest_is_refused_by_the_registry(remote: Remote, repo: str) -> None:
    source = random_source(4096)
    wrong = sha256(b"something else")
    async with remote.client() as oci:
        with pytest.raises(DigestMismatch):
            await oci.upload_blob(repo, wrong, len(source.data), source)
        assert await oci.head_blob(repo, wrong) is None


async def test_empty_blob(remote: Remote, repo: str) -> None:
    async with remote.client() as oci:
        digest = await push_blob(oci, repo, b"")
        assert await oci.head_blob(repo, digest) == 0


async def test_manifest_round_trip(remote: Remote, repo: str) -> None:
    async with remote.client() as oci:
        digest, data = await push_image(oci, repo, "v1", os.urandom(1000))
        assert digest == sha256(data)
        ref = await oci.head_manifest(repo, "v1")
        by_tag = await oci.get_manifest(repo, "v1")
        by_digest = await oci.get_manifest(repo, digest)
        assert await oci.head_manifest(repo, "missing") is None
        with pytest.raises(NotFound):
            await oci.get_manifest(repo, "missing")
    assert ref is not None
    assert (ref.digest, ref.media_type, ref.size) == (digest, mt.OCI_MANIFEST, len(data))
    assert by_tag.data == data and by_tag.digest == digest
    assert by_digest.media_type == mt.OCI_MANIFEST


async def test_index_round_trip(remote: Remote, repo: str) -> None:
    async with remote.client() as oci:
        child, data = await push_image(oci, repo, "amd64", os.urandom(100))
        index = (
            b'{"schemaVersion":2,"mediaType":"%s","manifests":[{"mediaType":"%s",'
            b'"digest":"%s","size":%d,"platform":{"architecture":"amd64","os":"linux"}}]}'
            % (mt.OCI_INDEX.encode(), mt.OCI_MANIFEST.encode(), child.encode(), len(data))
        )
        digest = await oci.put_manifest(repo, "multi", index, mt.OCI_INDEX)
        got = await oci.get_manifest(repo, "multi")
    assert got.data == index and got.digest == digest and got.media_type == mt.OCI_INDEX


async def test_mount_across_repositories(remote: Remote, repo: str) -> None:
    layer = os.urandom(10_000)
    async with remote.client() as oci:
        digest = await push_blob(oci, repo, layer)
        assert await oci.mount_blob(repo + "-copy", digest, repo) is True
        assert await oci.head_blob(repo + "-copy", digest) == len(layer)
        missing = sha256(b"never pushed " + os.urandom(8))
        assert await oci.mount_blob(repo + "-copy", missing, repo) is False
        assert await oci.head_blob(repo + "-copy", missing) is None


async def test_tags_and_catalog_follow_pagination(remote: Remote, repo: str) -> None:
    layer = os.urandom(100)
    tags = [f"t{i}" for i in range(5)]
    async with remote.client() as oci:
        for tag in tags:
            await push_image(oci, repo, tag, layer)
        await push_image(oci, repo + "-b", "x", layer)
        before = oci.stats().requests
        listed = await oci.list_tags(repo, page_size=2)
        tag_requests = oci.stats().requests - before
        repos = await oci.catalog(page_size=1)
        with pytest.raises(NotFound):
            await oci.list_tags(repo + "-never-pushed")
    assert sorted(listed) == tags
    assert {repo, repo + "-b"} <= set(repos)
    assert len(repos) == len(set(repos))
    if remote.name == "seawall":
        assert tag_requests >= 3  # 2 + 2 + 1, through Link: rel="next"


async def test_delete_manifest(remote: Remote, repo: str) -> None:
    async with remote.client() as oci:
        digest, _ = await push_image(oci, repo, "gone", os.urandom(100))
        await oci.delete_manifest(repo, digest)
        assert await oci.head_manifest(repo, digest) is None
        assert await oci.head_manifest(repo, "gone") is None
        with pytest.raises(NotFound):
            await oci.delete_manifest(repo, digest)
        with pytest.raises(RequestRejected):
            await oci.delete_manifest(repo, "gone")  # a tag is not a digest


async def test_delete_tag(remote: Remote, repo: str) -> None:
    async with remote.client() as oci:
        digest, _ = await push_image(oci, repo, "one", os.urandom(100))
        await push_image(oci, repo, "two", os.urandom(100))
        if remote.is_distribution:  # 2.8 deletes by digest only
            with pytest.raises(Unsupported):
                await oci.delete_tag(repo, "one")
            return
        await oci.delete_tag(repo, "one")
        assert await oci.head_manifest(repo, "one") is None
        assert await oci.head_manifest(repo, digest) is not None
        assert sorted(await oci.list_tags(repo)) == ["two"]


async def test_referrers(remote: Remote, repo: str) -> None:
    async with remote.client() as oci:
        subject, _ = await push_image(oci, repo, "app", os.urandom(100))
        sbom, _ = await push_image(oci, repo, "sbom", os.urandom(50), subject=subject)
        found = await oci.referrers(repo, subject)
        filtered = await oci.referrers(repo, subject, "application/vnd.example.none")
    if remote.is_distribution:  # 2.8 has no referrers API
        assert found is None
        return
    assert found is not None and [d.digest for d in found] == [sbom]
    assert found[0].artifact_type == "application/vnd.example.sbom"
    assert filtered == []


def test_referrers_tag() -> None:
    digest = sha256(b"x")
    assert OciClient.referrers_tag(digest) == digest.replace(":", "-")
    with pytest.raises(RequestRejected):
        OciClient.referrers_tag("latest")


async def test_concurrent_requests_share_tokens(remote: Remote, repo: str) -> None:
    import anyio

    layer = os.urandom(100)
    async with remote.client(max_in_flight=4) as oci:
        digest, _ = await push_image(oci, repo, "c", layer)
        results: list[object] = []

        async def head() -> None:
            results.append(await oci.head_manifest(repo, digest))

        async with anyio.create_task_group() as tg:
            for _ in range(40):
                tg.start_soon(head)
    assert len(results) == 40 and all(r is not None for r in results)


async def test_source_errors_reach_the_caller(remote: Remote, repo: str) -> None:
    class Broken(Exception):
        pass

    data = os.urandom(3 * MiB)

    async def failing(offset: int) -> AsyncIterator[bytes]:
        yield data[offset : offset + MiB]
        raise Broken("source registry fell over")

    async with remote.client() as oci:
        with pytest.raises(Broken):
            await oci.upload_blob(repo, sha256(data), len(data), failing, chunk_bytes=2 * MiB)
        with pytest.raises(Broken):
            await oci.upload_blob(repo, sha256(data), len(data), failing)


async def test_a_short_source_is_reported(remote: Remote, repo: str) -> None:
    source = Source(os.urandom(1000))
    async with remote.client() as oci:
        with pytest.raises(Exception, match="source"):
            await oci.upload_blob(repo, source.digest, 2000, source)


async def test_upload_survives_a_connection_cut_mid_chunk(remote: Remote, repo: str) -> None:
    """The network drops a PATCH half-way: the upload carries on from the registry's offset
    (Seawall keeps what arrived) or, where the registry refuses to resume a broken session
    (distribution 2.8 cancels it), from a new session; either way it completes."""
    from tests.adapters.proxy import CuttingProxy

    source = random_source(4 * MiB, piece_bytes=64 * 1024)
    proxy = CuttingProxy(remote.url, cut_after_bytes=MiB + MiB // 2)  # mid 2nd chunk
    async with proxy.running() as url:
        oci = OciClient(
            url, username=remote.username, password=remote.password, backoff_base_seconds=0.01
        )
        async with oci:
            await oci.upload_blob(repo, source.digest, len(source.data), source, chunk_bytes=MiB)
            assert await oci.head_blob(repo, source.digest) == len(source.data)
            stats = oci.stats()
    assert proxy.cuts == 1
    assert stats.resumes == 1
    assert len(source.opened_at) == 2
    if remote.name == "seawall":
        # resumed inside the second chunk, where Seawall's status said it was
        assert MiB < source.opened_at[1] < 2 * MiB
    else:
        assert source.opened_at == [0, 0]
