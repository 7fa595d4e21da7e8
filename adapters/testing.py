"""The conformance suite every registry adapter passes, shipped inside the package.

A new adapter is one fixture and one subclass, in its own test module::

    import pytest
    from adapters.base import EndpointConfig
    from adapters.testing import AdapterConformance

    @pytest.fixture
    async def adapter(my_registry):  # a live adapter on a real registry of the type
        async with MyAdapter(EndpointConfig(my_registry.url, username=..., password=...)) as a:
            yield a

    class TestMyAdapter(AdapterConformance):
        pass

The tests run through the adapter's own client and check every declared capability against
the registry, both ways: a capability declared True must work, one declared False must really
be refused (a probed one must match its probe). Each test uses repositories of its own
(:meth:`AdapterConformance.repository_name`); the anyio plugin runs them on asyncio.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import uuid
from collections.abc import AsyncIterator
from typing import Any, ClassVar

import pytest

from adapters.base import (
    TRIGGERS,
    Capabilities,
    InvalidEndpoint,
    InvalidRepositoryName,
    RegistryAdapter,
)
from adapters.oci.errors import OciError, Unsupported
from adapters.oci.types import UNKNOWN_SIZE
from adapters.oci.uploads import OpenStream
from adapters.registry import available
from registry.oci import mediatypes as mt

__all__ = ["AdapterConformance"]

MiB = 1 << 20
LAYER = "application/vnd.oci.image.layer.v1.tar"
ARTIFACT_TYPE = "application/vnd.seawall.conformance.v1+json"


def sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def byte_source(data: bytes, piece_bytes: int = 256 * 1024) -> OpenStream:
    async def pieces(offset: int) -> AsyncIterator[bytes]:
        for start in range(offset, len(data), piece_bytes):
            yield data[start : start + piece_bytes]

    return pieces


async def push_blob(adapter: RegistryAdapter, repo: str, data: bytes, **kw: Any) -> str:
    digest = sha256(data)
    await adapter.client().upload_blob(repo, digest, len(data), byte_source(data), **kw)
    return digest


async def read_blob(adapter: RegistryAdapter, repo: str, digest: str) -> bytes:
    async with adapter.client().blob_stream(repo, digest) as blob:
        return b"".join([chunk async for chunk in blob.iter_chunks()])


async def push_image(
    adapter: RegistryAdapter, repo: str, tag: str | None, subject: str | None = None
) -> tuple[str, bytes]:
    """A config, one layer and an OCI image manifest (pushed by digest if ``tag`` is None);
    with ``subject``, an artifact referring to that manifest. ``(digest, manifest bytes)``."""
    await adapter.prepare_repository(repo)
    config = json.dumps({"architecture": "amd64", "os": "linux", "n": uuid.uuid4().hex}).encode()
    layer = os.urandom(4096)
    doc: dict[str, Any] = {
        "schemaVersion": 2,
        "mediaType": mt.OCI_MANIFEST,
        "config": {"mediaType": mt.OCI_CONFIG, "digest": sha256(config), "size": len(config)},
        "layers": [
            {"mediaType": "application/octet-stream", "digest": sha256(layer), "size": 4096}
        ],
    }
    if subject is not None:
        ref = await adapter.client().head_manifest(repo, subject)
        assert ref is not None, f"subject {subject} is not in {repo}"
        doc["artifactType"] = ARTIFACT_TYPE
        doc["subject"] = {"mediaType": ref.media_type, "digest": subject, "size": ref.size}
    await push_blob(adapter, repo, config)
    await push_blob(adapter, repo, layer)
    data = json.dumps(doc).encode()
    digest = await adapter.client().put_manifest(repo, tag or sha256(data), data, mt.OCI_MANIFEST)
    assert digest == sha256(data)
    return digest, data


class AdapterConformance:
    """What every adapter must do. Needs an ``adapter`` fixture: a live adapter on a real
    registry of its type (function scope: the client belongs to the test's event loop)."""

    pytestmark: ClassVar[list[pytest.MarkDecorator]] = [pytest.mark.anyio]
    expect_registered: ClassVar[bool] = True  # discoverable by adapters.registry.get(type)
    repository_prefix: ClassVar[str] = "conformance"
    #: the adapter's tag listing carries digests (Seawall's, and the cloud providers' APIs)
    lists_tag_digests: ClassVar[bool] = False
    #: its listings carry manifest sizes too (Seawall's; Google's and ACR's say UNKNOWN_SIZE)
    lists_manifest_sizes: ClassVar[bool] = True
    #: its listings carry media types too (ACR's ``_tags`` does not: "")
    lists_media_types: ClassVar[bool] = True
    #: its repository listing carries each repository's tags with digests (Seawall's does)
    catalog_lists_tags: ClassVar[bool] = False
    #: the type logs in (False: a directory, which refuses credentials)
    takes_credentials: ClassVar[bool] = True

    @pytest.fixture
    def anyio_backend(self) -> str:
        return "asyncio"  # the OCI client runs on aiohttp

    def repository_name(self, adapter: RegistryAdapter) -> str:
        """A fresh repository name within the type's path-depth rules. Override where the
        registry needs a particular namespace (an existing project, the account's name)."""
        caps = adapter.capabilities
        depth = max(caps.min_path_components, 2)
        if caps.max_path_components is not None:
            depth = min(depth, caps.max_path_components)
        parents = [self.repository_prefix, *("c" for _ in range(depth - 2))][: depth - 1]
        return "/".join([*parents, f"t{uuid.uuid4().hex[:12]}"])

    @pytest.fixture
    def repository(self, adapter: RegistryAdapter) -> str:
        return self.repository_name(adapter)

    # -- declaration -----------------------------------------------------------------------

    async def test_declaration_is_data(self, adapter: RegistryAdapter) -> None:
        cls = type(adapter)
        assert isinstance(cls.type, str) and cls.type
        assert isinstance(cls.capabilities, Capabilities)
        with pytest.raises(dataclasses.FrozenInstanceError):
            cls.capabilities.catalog = not cls.capabilities.catalog  # type: ignore[misc]
        names = {f.name for f in dataclasses.fields(Capabilities)}
        assert cls.probed <= names
        if self.expect_registered:
            assert available().get(cls.type) is cls, (
                f"{cls.__name__} is not registered: declare the entry point "
                f'{cls.type} = "{cls.__module__}:{cls.__qualname__}" in "seawall.adapters"'
            )

    async def test_info_has_harbors_registry_info_shape(self, adapter: RegistryAdapter) -> None:
        info = type(adapter).info()
        assert info == adapter.info()
        json.dumps(info)
        assert info["type"] == adapter.type
        assert isinstance(info["description"], str)
        assert info["supported_copy_by_chunk"] is adapter.capabilities.chunked_upload
        assert "manual" in info["supported_triggers"]
        assert set(info["supported_triggers"]) <= set(TRIGGERS)
        for f in info["supported_resource_filters"]:
            assert isinstance(f["type"], str) and isinstance(f["style"], str)

    async def test_client_is_configured_from_capabilities(self, adapter: RegistryAdapter) -> None:
        client = adapter.client()
        assert adapter.client() is client
        limit = adapter.capabilities.monolithic_max_bytes
        if limit is not None:
            assert client.monolithic_max_bytes <= limit
            assert client.chunk_bytes <= limit

    async def test_config_is_checked_before_anything_is_sent(
        self, adapter: RegistryAdapter
    ) -> None:
        cls = type(adapter)
        cls.check_config(adapter.config)
        with pytest.raises(InvalidEndpoint):
            cls.check_config(dataclasses.replace(adapter.config, url="gopher://nowhere"))
        with pytest.raises(InvalidEndpoint):
            cls.check_config(dataclasses.replace(adapter.config, options=(("no_such", "x"),)))
        for option in cls.options_spec:
            if option.required:
                left = tuple((k, v) for k, v in adapter.config.options if k != option.name)
                with pytest.raises(InvalidEndpoint):
                    cls.check_config(dataclasses.replace(adapter.config, options=left))

    async def test_check_name_applies_the_rules(
        self, adapter: RegistryAdapter, repository: str
    ) -> None:
        adapter.check_name(repository)
        caps = adapter.capabilities
        bad = ["Upper/Case", "a//b", "/a", "a/", "", "x" * 256]
        if caps.min_path_components > 1:
            bad.append("/".join(["n"] * (caps.min_path_components - 1)))
        if caps.max_path_components is not None:
            bad.append("/".join(["n"] * (caps.max_path_components + 1)))
        for name in bad:
            with pytest.raises(InvalidRepositoryName):
                adapter.check_name(name)
        with pytest.raises(InvalidRepositoryName):
            await adapter.prepare_repository("Upper/Case")
        await adapter.prepare_repository(repository)
        await adapter.prepare_repository(repository)  # idempotent

    # -- health ----------------------------------------------------------------------------

    async def test_health(self, adapter: RegistryAdapter) -> None:
        ok, detail = await adapter.health()
        assert ok, detail
        assert detail

    async def test_wrong_credentials_are_unhealthy(self, adapter: RegistryAdapter) -> None:
        cfg = adapter.config
        if not self.takes_credentials:  # e.g. a directory: credentials are refused up front
            with pytest.raises(InvalidEndpoint):
                type(adapter).check_config(dataclasses.replace(cfg, username="u", password="p"))
            return
        if cfg.username is None and cfg.token is None:
            pytest.skip("the registry is used anonymously")
        wrong = dataclasses.replace(
            cfg,
            password="wrong" if cfg.password is not None else None,
            token="wrong" if cfg.token is not None else None,
        )
        async with type(adapter)(wrong) as other:
            ok, detail = await other.health()
        assert not ok
        assert detail

    # -- blobs -----------------------------------------------------------------------------

    async def test_monolithic_blob_round_trip(
        self, adapter: RegistryAdapter, repository: str
    ) -> None:
        data = os.urandom(MiB + 7)
        await adapter.prepare_repository(repository)
        assert await adapter.client().head_blob(repository, sha256(data)) is None
        digest = await push_blob(adapter, repository, data)
        assert await adapter.client().head_blob(repository, digest) == len(data)
        assert await read_blob(adapter, repository, digest) == data

    async def test_chunked_blob_round_trip(self, adapter: RegistryAdapter, repository: str) -> None:
        data = os.urandom(2 * MiB + MiB // 2)
        await adapter.prepare_repository(repository)
        if not adapter.capabilities.chunked_upload:
            with pytest.raises(OciError):
                await push_blob(adapter, repository, data, chunk_bytes=MiB)
            return
        digest = await push_blob(adapter, repository, data, chunk_bytes=MiB)
        assert await read_blob(adapter, repository, digest) == data

    async def test_mount(self, adapter: RegistryAdapter, repository: str) -> None:
        data = os.urandom(64 * 1024)
        await adapter.prepare_repository(repository)
        digest = await push_blob(adapter, repository, data)
        other = self.repository_name(adapter)
        await adapter.prepare_repository(other)
        mounted = await adapter.client().mount_blob(other, digest, repository)
        assert mounted is adapter.capabilities.blob_mount
        if mounted:
            assert await adapter.client().head_blob(other, digest) == len(data)

    # -- manifests and tags ----------------------------------------------------------------

    async def test_manifest_by_tag_and_by_digest(
        self, adapter: RegistryAdapter, repository: str
    ) -> None:
        client = adapter.client()
        digest, data = await push_image(adapter, repository, "v1")
        by_tag = await client.head_manifest(repository, "v1")
        by_digest = await client.head_manifest(repository, digest)
        assert by_tag is not None and by_digest is not None
        assert by_tag == by_digest
        assert (by_tag.digest, by_tag.media_type, by_tag.size) == (
            digest,
            mt.OCI_MANIFEST,
            len(data),
        )
        for reference in ("v1", digest):
            got = await client.get_manifest(repository, reference)
            assert (got.data, got.digest) == (data, digest)
        assert await client.put_manifest(repository, digest, data, mt.OCI_MANIFEST) == digest

    async def test_tags_are_listed(self, adapter: RegistryAdapter, repository: str) -> None:
        client = adapter.client()
        _, data = await push_image(adapter, repository, "v1")
        await client.put_manifest(repository, "v2", data, mt.OCI_MANIFEST)
        assert sorted(await client.list_tags(repository)) == ["v1", "v2"]
        tags, refs = await adapter.list_tag_refs(repository)
        assert sorted(tags) == ["v1", "v2"]
        if self.lists_tag_digests:
            assert sorted(refs) == ["v1", "v2"]
            for tag, ref in refs.items():
                head = await client.head_manifest(repository, tag)
                assert head is not None
                assert ref.digest == head.digest
                assert ref.media_type == (head.media_type if self.lists_media_types else "")
                assert ref.size == (head.size if self.lists_manifest_sizes else UNKNOWN_SIZE)
        else:
            assert refs == {}

    async def test_catalog(self, adapter: RegistryAdapter, repository: str) -> None:
        digest, _ = await push_image(adapter, repository, "v1")
        if adapter.capabilities.catalog:
            names, listings = await adapter.catalog_listings(repository)
            assert repository in names
            if self.catalog_lists_tags:
                assert listings is not None and names == [repository]  # only the prefix's
                tags, refs = listings[repository]
                assert tags == ["v1"] and refs["v1"].digest == digest
            else:
                assert listings is None
        else:
            with pytest.raises(OciError):
                await adapter.catalog_listings(repository)

    async def test_delete_manifest(self, adapter: RegistryAdapter, repository: str) -> None:
        client = adapter.client()
        digest, _ = await push_image(adapter, repository, "v1")
        if not adapter.capabilities.delete_manifest:
            with pytest.raises(OciError):
                await client.delete_manifest(repository, digest)
            return
        await client.delete_manifest(repository, digest)
        assert await client.head_manifest(repository, digest) is None
        assert await client.head_manifest(repository, "v1") is None

    async def test_delete_tag(self, adapter: RegistryAdapter, repository: str) -> None:
        client = adapter.client()
        digest, data = await push_image(adapter, repository, "v1")
        await client.put_manifest(repository, "v2", data, mt.OCI_MANIFEST)
        if not adapter.capabilities.delete_tag:
            with pytest.raises(Unsupported):
                await client.delete_tag(repository, "v1")
            assert await client.head_manifest(repository, "v1") is not None
            return
        await client.delete_tag(repository, "v1")
        assert await client.head_manifest(repository, "v1") is None
        kept = await client.head_manifest(repository, "v2")
        assert kept is not None and kept.digest == digest
        assert await client.head_manifest(repository, digest) is not None

    # -- referrers -------------------------------------------------------------------------

    async def test_referrers_match_the_capability(
        self, adapter: RegistryAdapter, repository: str
    ) -> None:
        client = adapter.client()
        subject, _ = await push_image(adapter, repository, "v1")
        referrer, _ = await push_image(adapter, repository, None, subject=subject)
        expected = adapter.capabilities.referrers_api
        if "referrers_api" in adapter.probed:
            expected = await adapter.probe_referrers_api(repository)
            before = client.stats().requests
            assert await adapter.probe_referrers_api(repository) is expected
            assert client.stats().requests == before, "a probe's answer is cached"
        current = await adapter.current_capabilities(repository)
        assert current.referrers_api is expected
        found = await client.referrers(repository, subject)
        if not expected:
            assert found is None, "referrers_api is declared False but the registry has it"
            return
        assert found is not None, "referrers_api is declared True but the registry has none"
        assert referrer in [d.digest for d in found]
        assert all(d.artifact_type == ARTIFACT_TYPE for d in found)
