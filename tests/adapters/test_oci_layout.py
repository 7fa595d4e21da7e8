"""The ``oci-layout`` adapter on real directories: the shared conformance kit, the engine round
trip through a real ``seawall serve``, bad input refused before anything is written, and what
the layout guarantees on disk (atomic blobs, no symlinks followed, one writer of index.json at a
time, others' index.json fields kept). The real tools: ``test_oci_layout_interop.py``."""

from __future__ import annotations

import dataclasses
import errno
import hashlib
import json
import os
import threading
import time
import tracemalloc
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import anyio
import pytest

from adapters.base import EndpointConfig, InvalidEndpoint, InvalidRepositoryName, RegistryAdapter
from adapters.oci.errors import (
    DigestMismatch,
    NotFound,
    OciError,
    ProtocolError,
    RequestRejected,
    Transient,
)
from adapters.oci_layout import OciLayoutAdapter, layout_root
from adapters.oci_layout_store import Layout
from adapters.testing import AdapterConformance, byte_source, push_blob, push_image, read_blob
from registry.oci import mediatypes as mt
from tests.replication.roundtrip import round_trip
from tests.replication.support import add_policy, api, digest_of, dumps, run
from tests.support.client import client
from tests.support.server import SeawallProcess

REF_NAME = "org.opencontainers.image.ref.name"


@pytest.fixture
def root(tmp_path: Path) -> Path:
    path = tmp_path / "layouts"
    path.mkdir()
    return path


@pytest.fixture
async def adapter(root: Path) -> AsyncIterator[OciLayoutAdapter]:
    async with OciLayoutAdapter(EndpointConfig("file://" + str(root))) as adapter:
        yield adapter


class TestOciLayoutConformance(AdapterConformance):
    lists_tag_digests = True  # index.json carries each tag's descriptor
    catalog_lists_tags = True  # one walk lists repositories with their tags
    takes_credentials = False  # a directory: credentials are refused before anything is read


def sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def index_json(layout: Path) -> dict[str, Any]:
    return json.loads((layout / "index.json").read_text())


# -- the engine round trip ---------------------------------------------------------------------


def test_round_trip_through_seawall(local: SeawallProcess, tmp_path: Path) -> None:
    usb = tmp_path / "usb"
    usb.mkdir()
    round_trip(local, {"name": "usb", "type": "oci-layout", "url": f"file://{usb}"})
    signed = index_json(usb / "rt" / "signed")["manifests"]
    assert len([m for m in signed if REF_NAME in m.get("annotations", {})]) == 1
    assert len([m for m in signed if "annotations" not in m]) == 2  # signature, SBOM
    multi = index_json(usb / "rt" / "multi")["manifests"]
    assert [m["annotations"][REF_NAME] for m in multi] == ["1.0"]  # children: via the index


# -- bad input: refused before anything is sent or written -------------------------------------


@pytest.mark.parametrize(
    ("url", "says"),
    [
        ("file://relative/path", "names the host 'relative'"),
        ("file://registry.example/srv/layouts", "three slashes"),
        ("file://user:secret@/srv/layouts", "credentials"),
        ("file:///srv/layouts?x=1", "no query"),
        ("file:///srv/layouts#top", "no query"),
        ("file:///srv/../etc", r"no '\.' or '\.\.'"),
        ("file:///srv/./layouts", r"no '\.' or '\.\.'"),
        ("file:///srv/%2e%2e/etc", r"no '\.' or '\.\.'"),
        ("file:///", "file-system root"),
        ("file:relative", "use file://"),
        ("https://registry.example", "use file://"),
        ("/srv/layouts", "use file://"),
    ],
)
def test_bad_urls_are_refused_with_what_to_do(url: str, says: str) -> None:
    with pytest.raises(InvalidEndpoint, match=says):
        OciLayoutAdapter.check_config(EndpointConfig(url))


def test_good_urls_name_a_normalized_root() -> None:
    assert layout_root("file:///srv/layouts/") == "/srv/layouts"
    assert layout_root("file://localhost/srv//layouts") == "/srv/layouts"
    assert layout_root("file:///mnt/usb%20drive") == "/mnt/usb drive"
    OciLayoutAdapter.check_config(EndpointConfig("file:///srv/layouts"))


@pytest.mark.parametrize(
    "config",
    [
        EndpointConfig("file:///srv/layouts", username="u", password="p"),
        EndpointConfig("file:///srv/layouts", token="t"),
        EndpointConfig("file:///srv/layouts", ca_file="/etc/ssl/ca.pem"),
        EndpointConfig("file:///srv/layouts", options=(("region", "x"),)),
    ],
)
def test_credentials_and_options_are_refused(config: EndpointConfig) -> None:
    with pytest.raises(InvalidEndpoint):
        OciLayoutAdapter.check_config(config)
    with pytest.raises(InvalidEndpoint):
        OciLayoutAdapter(config)


@pytest.mark.parametrize(
    "name",
    ["../etc", "a/../../etc", "/abs", "a//b", "team/blobs", "index.json", "a/oci-layout/b", ""],
)
def test_names_that_escape_or_collide_are_refused(root: Path, name: str) -> None:
    with pytest.raises(InvalidRepositoryName):
        OciLayoutAdapter(EndpointConfig(f"file://{root}")).check_name(name)


@pytest.mark.anyio
async def test_the_client_builds_no_path_from_bad_names_or_digests(
    adapter: OciLayoutAdapter, root: Path
) -> None:
    client = adapter.client()
    data = b"x" * 10
    for repo in ("../outside", "a/../../outside", "team/blobs", "/etc"):
        with pytest.raises(RequestRejected):
            await client.put_manifest(repo, "v1", b"{}", mt.OCI_MANIFEST)
        with pytest.raises(RequestRejected):
            await client.upload_blob(repo, sha256(data), len(data), byte_source(data))
    for digest in ("sha256:../../x", "sha256:" + "A" * 64, "md5:abc", "sha256:" + "0" * 63):
        with pytest.raises(RequestRejected):
            await client.upload_blob("team/app", digest, len(data), byte_source(data))
        with pytest.raises(RequestRejected):
            await client.head_blob("team/app", digest)
    for reference in ("../x", "a/b", "-x"):
        with pytest.raises(RequestRejected):
            await client.head_manifest("team/app", reference)
    assert sorted(os.listdir(root)) == []  # nothing was created
    assert not (root.parent / "outside").exists()


def test_the_api_refuses_bad_endpoints_before_storing_them(
    local: SeawallProcess, tmp_path: Path
) -> None:
    with api(local.url, local.admin_password) as a:
        for body in (
            {"url": "file://relative/path"},
            {"url": "file:///srv/../etc"},
            {"url": f"file://{tmp_path}", "credential": {"access_key": "u", "access_secret": "p"}},
        ):
            r = a.post("/registries", json={"name": "bad", "type": "oci-layout", **body})
            assert r.status_code == 400, r.text
        assert a.get("/registries").json() == []


# -- health ------------------------------------------------------------------------------------


@pytest.mark.anyio
async def test_health_says_what_is_wrong_with_the_root(tmp_path: Path) -> None:
    async def health(path: Path) -> tuple[bool, str]:
        async with OciLayoutAdapter(EndpointConfig(f"file://{path}")) as adapter:
            return await adapter.health()

    assert await health(tmp_path) == (True, f"directory {tmp_path}, readable and writable")
    ok, detail = await health(tmp_path / "unmounted")
    assert not ok and "does not exist" in detail and "mount" in detail
    (tmp_path / "file").write_text("x")
    ok, detail = await health(tmp_path / "file")
    assert not ok and "not a directory" in detail
    (tmp_path / "app").mkdir()
    (tmp_path / "app" / "oci-layout").write_text('{"imageLayoutVersion": "1.0.0"}')
    ok, detail = await health(tmp_path / "app")
    assert not ok and "parent directory" in detail and "'app'" in detail


@pytest.mark.anyio
async def test_a_missing_root_is_never_created(tmp_path: Path) -> None:
    gone = tmp_path / "unmounted"
    async with OciLayoutAdapter(EndpointConfig(f"file://{gone}")) as adapter:
        with pytest.raises(NotFound, match="does not exist"):
            await adapter.prepare_repository("team/app")
        with pytest.raises(NotFound, match="does not exist"):
            await push_blob(adapter, "team/app", b"data")
        assert await adapter.client().head_manifest("team/app", "v1") is None
    assert not gone.exists()


# -- what the layout guarantees ----------------------------------------------------------------


def stray_files(layout: Path) -> list[str]:
    return [p.name for p in layout.rglob(".*")]


@pytest.mark.anyio
async def test_a_blob_that_does_not_match_leaves_nothing(
    adapter: OciLayoutAdapter, root: Path
) -> None:
    data = os.urandom(300_000)
    client = adapter.client()
    with pytest.raises(DigestMismatch):
        await client.upload_blob("team/app", sha256(b"other"), len(data), byte_source(data))
    with pytest.raises(RequestRejected, match="SIZE_INVALID"):
        await client.upload_blob("team/app", sha256(data), len(data) - 1, byte_source(data))
    with pytest.raises(RequestRejected, match="SIZE_INVALID"):
        await client.upload_blob("team/app", sha256(data), len(data) + 1, byte_source(data))
    assert list((root / "team" / "app" / "blobs" / "sha256").iterdir()) == []
    assert stray_files(root / "team" / "app") == []


@pytest.mark.anyio
async def test_a_source_that_breaks_is_resumed_where_it_stopped(
    adapter: OciLayoutAdapter,
) -> None:
    data = os.urandom(3 << 20)
    asked: list[int] = []

    async def flaky(offset: int) -> AsyncIterator[bytes]:
        asked.append(offset)
        end = len(data) if len(asked) > 1 else offset + (1 << 20)
        yield data[offset:end]
        if end < len(data):
            raise Transient("connection reset")

    client = adapter.client()
    await client.upload_blob("team/app", sha256(data), len(data), flaky)
    assert asked == [0, 1 << 20]
    assert client.stats().resumes == 1
    assert await read_blob(adapter, "team/app", sha256(data)) == data


@pytest.mark.anyio
async def test_a_damaged_blob_is_not_passed_on(adapter: OciLayoutAdapter, root: Path) -> None:
    data = os.urandom(10_000)
    digest = await push_blob(adapter, "team/app", data)
    path = root / "team" / "app" / "blobs" / "sha256" / digest.split(":")[1]
    path.write_bytes(b"y" + data[1:])
    with pytest.raises(DigestMismatch, match="damaged"):
        await read_blob(adapter, "team/app", digest)


@pytest.mark.anyio
async def test_symlinks_below_the_root_are_never_followed(
    adapter: OciLayoutAdapter, root: Path, tmp_path: Path
) -> None:
    outside = tmp_path / "outside"
    async with OciLayoutAdapter(EndpointConfig(f"file://{outside.parent}")) as other:
        await push_image(other, "outside", "v1")  # a real layout at tmp_path/outside
    (root / "evil").symlink_to(outside)
    client = adapter.client()
    assert await client.catalog() == []
    with pytest.raises(RequestRejected, match="symbolic link"):
        await client.list_tags("evil")
    data = b"secret"
    with pytest.raises(RequestRejected, match="symbolic link"):
        await client.upload_blob("evil/app", sha256(data), len(data), byte_source(data))
    with pytest.raises(RequestRejected, match="symbolic link"):
        await adapter.prepare_repository("evil")
    await push_blob(adapter, "team/app", b"other")
    blob = root / "team" / "app" / "blobs" / "sha256" / sha256(data).split(":")[1]
    secret = tmp_path / "secret"
    secret.write_bytes(data)
    blob.symlink_to(secret)
    with pytest.raises(RequestRejected, match="symbolic link"):
        await client.head_blob("team/app", sha256(data))
    with pytest.raises(RequestRejected, match="symbolic link"):
        await read_blob(adapter, "team/app", sha256(data))
    assert not (outside / "app").exists()


@pytest.mark.anyio
async def test_concurrent_writers_lose_no_tag(root: Path) -> None:
    """Two adapters (two clients: only the directory flock is shared) tag at once."""
    config = EndpointConfig(f"file://{root}")
    async with OciLayoutAdapter(config) as a, OciLayoutAdapter(config) as b:
        digest, data = await push_image(a, "team/app", "base")

        async def tag(adapter: RegistryAdapter, name: str) -> None:
            await adapter.client().put_manifest("team/app", name, data, mt.OCI_MANIFEST)

        async with anyio.create_task_group() as tg:
            for i in range(20):
                tg.start_soon(tag, a, f"a{i}")
                tg.start_soon(tag, b, f"b{i}")
        tags, refs = await a.list_tag_refs("team/app")
    assert len(tags) == 41
    assert {r.digest for r in refs.values()} == {digest}


@pytest.mark.anyio
async def test_a_moved_tag_leaves_the_old_manifest_readable_by_digest(
    adapter: OciLayoutAdapter, root: Path
) -> None:
    client = adapter.client()
    old, _ = await push_image(adapter, "team/app", "latest")
    new, _ = await push_image(adapter, "team/app", "latest")
    assert (await client.head_manifest("team/app", "latest")).digest == new  # type: ignore[union-attr]
    assert await client.head_manifest("team/app", old) is not None
    assert [m["digest"] for m in index_json(root / "team" / "app")["manifests"]] == [new]


@pytest.mark.anyio
async def test_mount_links_the_same_file(adapter: OciLayoutAdapter, root: Path) -> None:
    digest = await push_blob(adapter, "team/a", os.urandom(50_000))
    await adapter.prepare_repository("team/b")
    assert await adapter.client().mount_blob("team/b", digest, "team/a")
    name = digest.split(":")[1]
    a, b = (root / "team" / r / "blobs" / "sha256" / name for r in ("a", "b"))
    assert a.stat().st_ino == b.stat().st_ino
    assert not await adapter.client().mount_blob("team/b", sha256(b"none"), "team/a")
    assert not await adapter.client().mount_blob("team/b", digest, "team/missing")


@pytest.mark.anyio
async def test_sha512_blobs_are_kept_under_their_algorithm(
    adapter: OciLayoutAdapter, root: Path
) -> None:
    data = os.urandom(5000)
    digest = "sha512:" + hashlib.sha512(data).hexdigest()
    await adapter.prepare_repository("team/app")
    await adapter.client().upload_blob("team/app", digest, len(data), byte_source(data))
    assert (root / "team" / "app" / "blobs" / "sha512" / digest.split(":")[1]).read_bytes() == data
    assert await read_blob(adapter, "team/app", digest) == data


@pytest.mark.anyio
async def test_a_manifest_waits_for_its_blobs(adapter: OciLayoutAdapter) -> None:
    config = b'{"architecture": "amd64", "os": "linux"}'
    doc = {
        "schemaVersion": 2,
        "mediaType": mt.OCI_MANIFEST,
        "config": {"mediaType": mt.OCI_CONFIG, "digest": sha256(config), "size": len(config)},
        "layers": [],
    }
    data = json.dumps(doc).encode()
    with pytest.raises(RequestRejected, match="MANIFEST_BLOB_UNKNOWN"):
        await adapter.client().put_manifest("team/app", "v1", data, mt.OCI_MANIFEST)
    with pytest.raises(RequestRejected, match="MANIFEST_INVALID"):
        await adapter.client().put_manifest("team/app", "v1", b"[]", mt.OCI_MANIFEST)
    await push_blob(adapter, "team/app", config)
    assert await adapter.client().put_manifest("team/app", "v1", data, mt.OCI_MANIFEST)


@pytest.mark.anyio
async def test_others_index_fields_are_kept_and_odd_ref_names_skipped(
    adapter: OciLayoutAdapter, root: Path
) -> None:
    digest, data = await push_image(adapter, "team/app", "v1")
    layout = root / "team" / "app"
    foreign = {
        "schemaVersion": 2,
        "annotations": {"org.example.note": "kept"},
        "manifests": [
            {
                "mediaType": mt.OCI_MANIFEST,
                "digest": digest,
                "size": len(data),
                "annotations": {REF_NAME: "example.com/team/app:1.0", "io.example": "x"},
            },
            {"mediaType": mt.OCI_MANIFEST, "digest": "not-a-digest", "size": 1},
        ],
    }
    (layout / "index.json").write_text(json.dumps(foreign))
    client = adapter.client()
    assert await client.list_tags("team/app") == []  # a full reference is not a tag
    await client.put_manifest("team/app", "v2", data, mt.OCI_MANIFEST)
    after = index_json(layout)
    assert after["annotations"] == {"org.example.note": "kept"}
    assert after["manifests"][:2] == foreign["manifests"]
    assert await client.list_tags("team/app") == ["v2"]


@pytest.mark.anyio
async def test_layouts_of_other_tools_read_as_written(
    adapter: OciLayoutAdapter, root: Path
) -> None:
    layout = root / "um" / "base"
    (layout / "blobs" / "sha256").mkdir(parents=True)
    (layout / "oci-layout").write_text('{"imageLayoutVersion":"1.0.0"}')
    (layout / "index.json").write_text('{"schemaVersion":2,"manifests":null}')  # umoci init
    assert await adapter.client().catalog() == ["um/base"]
    assert await adapter.list_tag_refs("um/base") == ([], {})
    (root / "not" / "a" / "layout").mkdir(parents=True)
    (root / "Upper").mkdir()
    (root / "Upper" / "oci-layout").write_text("{}")  # no valid repository name: not listed
    assert await adapter.client().catalog() == ["um/base"]
    (layout / "oci-layout").write_text('{"imageLayoutVersion":"2.0.0"}')
    with pytest.raises(Exception, match="not supported"):
        await adapter.list_tag_refs("um/base")


def test_client_options_reach_the_client(root: Path) -> None:
    adapter = OciLayoutAdapter(
        EndpointConfig(f"file://{root}"), max_manifest_bytes=1024, backoff_base_seconds=0.01
    )
    assert adapter.client().max_manifest_bytes == 1024
    assert adapter.client() is adapter.client()
    assert dataclasses.replace(adapter.capabilities).referrers_api


@pytest.mark.anyio
async def test_memory_stays_flat_with_blob_size(adapter: OciLayoutAdapter) -> None:
    piece, count = 1 << 20, 48

    def block(i: int) -> bytes:
        return hashlib.sha256(str(i).encode()).digest() * (piece // 32)

    whole = hashlib.sha256()
    for i in range(count):
        whole.update(block(i))
    digest = "sha256:" + whole.hexdigest()

    async def source(offset: int) -> AsyncIterator[bytes]:
        for i in range(offset // piece, count):
            yield block(i)

    client = adapter.client()
    tracemalloc.start()
    try:
        await client.upload_blob("team/big", digest, piece * count, source)
        again = hashlib.sha256()
        async with client.blob_stream("team/big", digest) as blob:
            async for chunk in blob.iter_chunks():
                again.update(chunk)
        peak_bytes = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert "sha256:" + again.hexdigest() == digest
    assert peak_bytes < 8 * piece, f"peak {peak_bytes} bytes for a {piece * count}-byte blob"


@pytest.mark.anyio
async def test_mount_copies_where_links_are_refused(
    adapter: OciLayoutAdapter, root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Another file system below the root (EXDEV): the blob is copied and verified."""
    data = os.urandom(70_000)
    digest = await push_blob(adapter, "team/a", data)
    await adapter.prepare_repository("team/b")

    def no_link(*args: object, **kwargs: object) -> None:
        raise OSError(errno.EXDEV, "Invalid cross-device link")

    monkeypatch.setattr(os, "link", no_link)
    assert await adapter.client().mount_blob("team/b", digest, "team/a")
    name = digest.split(":")[1]
    a, b = (root / "team" / r / "blobs" / "sha256" / name for r in ("a", "b"))
    assert b.read_bytes() == data
    assert a.stat().st_ino != b.stat().st_ino


@pytest.mark.anyio
async def test_docker_media_types_and_nested_repositories(adapter: OciLayoutAdapter) -> None:
    client = adapter.client()
    config = b'{"architecture": "amd64", "os": "linux"}'
    layer = os.urandom(1000)
    for repo in ("team", "team/app"):  # a layout inside a layout's directory
        await push_blob(adapter, repo, config)
        await push_blob(adapter, repo, layer)
        image = json.dumps(
            {
                "schemaVersion": 2,
                "mediaType": mt.DOCKER_MANIFEST,
                "config": {"mediaType": mt.DOCKER_CONFIG, "digest": sha256(config), "size": 41},
                "layers": [
                    {
                        "mediaType": "application/vnd.docker.image.rootfs.diff.tar.gzip",
                        "digest": sha256(layer),
                        "size": len(layer),
                    }
                ],
            }
        ).encode()
        await client.put_manifest(repo, sha256(image), image, mt.DOCKER_MANIFEST)
        child = {"mediaType": mt.DOCKER_MANIFEST, "digest": sha256(image), "size": len(image)}
        listed = json.dumps(
            {"schemaVersion": 2, "mediaType": mt.DOCKER_MANIFEST_LIST, "manifests": [child]}
        ).encode()
        await client.put_manifest(repo, "v1", listed, mt.DOCKER_MANIFEST_LIST)
        got = await client.get_manifest(repo, "v1")
        assert (got.data, got.media_type) == (listed, mt.DOCKER_MANIFEST_LIST)
        ref = await client.head_manifest(repo, sha256(image))
        assert ref is not None and ref.media_type == mt.DOCKER_MANIFEST
    assert await client.catalog() == ["team", "team/app"]


@pytest.mark.anyio
async def test_index_json_lists_the_roots_only(adapter: OciLayoutAdapter, root: Path) -> None:
    """Children pushed by digest are roots until their index arrives; referrers stay roots."""
    client = adapter.client()
    layout = root / "team" / "app"

    def roots() -> list[tuple[str, str | None]]:
        return [
            (m["digest"], (m.get("annotations") or {}).get(REF_NAME))
            for m in index_json(layout)["manifests"]
        ]

    child, data = await push_image(adapter, "team/app", None)
    assert roots() == [(child, None)]
    signature, _ = await push_image(adapter, "team/app", None, subject=child)
    entry = {"mediaType": mt.OCI_MANIFEST, "digest": child, "size": len(data)}
    index = json.dumps({"schemaVersion": 2, "mediaType": mt.OCI_INDEX, "manifests": [entry]})
    top = await client.put_manifest("team/app", "1.0", index.encode(), mt.OCI_INDEX)
    assert roots() == [(signature, None), (top, "1.0")]
    written = (layout / "index.json").stat().st_ino
    await client.put_manifest("team/app", child, data, mt.OCI_MANIFEST)  # again: via the index
    await client.put_manifest("team/app", "1.0", index.encode(), mt.OCI_INDEX)  # no change
    assert roots() == [(signature, None), (top, "1.0")]
    assert (layout / "index.json").stat().st_ino == written  # not even rewritten
    found = await client.referrers("team/app", child)
    assert [d.digest for d in found or []] == [signature]


# -- what a damaged or hostile layout cannot do: hang a worker, crash a run --------------------

NOT_REGULAR = "not a regular file"
DEEP = "nests JSON more than 64 levels deep"


def blob_path(layout: Path, digest: str) -> Path:
    return layout / "blobs" / "sha256" / digest.split(":")[1]


def replace_with_fifo(path: Path) -> None:
    path.unlink()
    os.mkfifo(path)


@pytest.mark.anyio
async def test_a_fifo_as_index_json_or_oci_layout_is_refused_not_waited_on(
    adapter: OciLayoutAdapter, root: Path
) -> None:
    """Opening a named pipe waits for a writer: it must be refused instead, at once."""
    client = adapter.client()
    await push_image(adapter, "team/app", "v1")
    await push_image(adapter, "team/lib", "v1")
    replace_with_fifo(root / "team" / "app" / "index.json")
    replace_with_fifo(root / "team" / "lib" / "oci-layout")
    with anyio.fail_after(5):
        with pytest.raises(
            ProtocolError, match=f"team/app/index.json is a named pipe.*{NOT_REGULAR}"
        ):
            await client.list_tag_refs("team/app")
        with pytest.raises(ProtocolError, match=NOT_REGULAR):
            await client.get_manifest("team/app", "v1")
        with pytest.raises(ProtocolError, match="team/lib/oci-layout is a named pipe"):
            await client.list_tag_refs("team/lib")
        names, found = await client.catalog_listings()  # listed without its tags
    assert names == ["team/app"] and found == {}  # team/lib: no oci-layout file, no layout
    (root / "team" / "app" / "index.json").unlink()
    (root / "team" / "app" / "index.json").mkdir()
    with anyio.fail_after(5), pytest.raises(ProtocolError, match="is a directory, not a regular"):
        await client.list_tag_refs("team/app")


@pytest.mark.anyio
async def test_a_fifo_as_a_blob_is_refused_not_waited_on(
    adapter: OciLayoutAdapter, root: Path
) -> None:
    client = adapter.client()
    digest, _ = await push_image(adapter, "team/app", "v1")
    signature, _ = await push_image(adapter, "team/app", None, subject=digest)
    manifest = json.loads((await client.get_manifest("team/app", "v1")).data)
    layer = manifest["layers"][0]["digest"]
    layout = root / "team" / "app"
    replace_with_fifo(blob_path(layout, layer))
    replace_with_fifo(blob_path(layout, signature))
    with anyio.fail_after(5):
        with pytest.raises(ProtocolError, match=f"blobs/sha256/{layer[7:]} is a named pipe"):
            await read_blob(adapter, "team/app", layer)
        with pytest.raises(ProtocolError, match=NOT_REGULAR):
            await client.head_blob("team/app", layer)
        with pytest.raises(ProtocolError, match=NOT_REGULAR):
            await client.mount_blob("team/other", layer, "team/app")
        with pytest.raises(ProtocolError, match=NOT_REGULAR):  # the referrers scan reads it
            await client.referrers("team/app", digest)
        with pytest.raises(ProtocolError, match=NOT_REGULAR):
            await client.get_manifest("team/app", signature)
    assert await client.list_tags("team/app") == ["v1"]  # the rest of the layout still works


@pytest.mark.anyio
async def test_a_blocked_read_is_abandoned_on_cancel_and_a_write_is_not(
    adapter: OciLayoutAdapter, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A read stuck in the kernel (a hung network mount) must not hold a run that is stopped;
    a write that started finishes (index.json is never left half-updated)."""
    client = adapter.client()
    _, data = await push_image(adapter, "team/app", "v1")
    release = threading.Event()
    index, write_index = Layout.index, Layout.write_index

    def stuck_index(self: Layout) -> Any:
        release.wait(30)
        return index(self)

    monkeypatch.setattr(Layout, "index", stuck_index)
    started = time.monotonic()
    with anyio.move_on_after(0.3) as scope:
        await client.list_tag_refs("team/app")
    assert scope.cancelled_caught and time.monotonic() - started < 2
    release.set()
    monkeypatch.setattr(Layout, "index", index)

    release.clear()

    def slow_write(self: Layout, new: Any) -> None:
        release.wait(30)
        write_index(self, new)

    monkeypatch.setattr(Layout, "write_index", slow_write)
    timer = threading.Timer(1.0, release.set)
    timer.start()
    started = time.monotonic()
    with anyio.move_on_after(0.2):
        await client.put_manifest("team/app", "v2", data, mt.OCI_MANIFEST)
    assert time.monotonic() - started >= 0.9  # waited for the write to finish
    timer.join()
    assert await client.list_tags("team/app") == ["v1", "v2"]


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("content", "says"),
    [
        (b"[" * 200_000, DEEP),
        (b'{"manifests":' + b"[" * 200_000, DEEP),
        (b'{"manifests":[' + b'{"a":' * 100 + b"1" + b"}" * 100 + b"]}", DEEP),
        (b'{"manifests": [}', "is not valid JSON"),
        (None, "is larger than 8388608 bytes"),  # 9 MiB, sparse
    ],
)
async def test_deep_or_oversized_index_json_is_a_protocol_error(
    adapter: OciLayoutAdapter, root: Path, content: bytes | None, says: str
) -> None:
    client = adapter.client()
    await push_image(adapter, "team/app", "v1")
    path = root / "team" / "app" / "index.json"
    if content is None:
        os.truncate(path, 9 << 20)
    else:
        path.write_bytes(content)
    with pytest.raises(ProtocolError, match=f"team/app/index.json {says}"):
        await client.list_tag_refs("team/app")
    with pytest.raises(ProtocolError, match=says):
        await client.referrers("team/app", sha256(b"x"))
    with pytest.raises(ProtocolError, match=says):  # a destination refuses it the same way
        await push_image(adapter, "team/app", "v2")
    assert await client.catalog_listings() == (["team/app"], {})


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("content", "says"),
    [
        (b"[" * 50_000, DEEP),
        (b'{"imageLayoutVersion":"1.0.0","x":' + b"[" * 100 + b"]" * 100 + b"}", DEEP),
        (b" " * 70_000 + b'{"imageLayoutVersion":"1.0.0"}', "is larger than 65536 bytes"),
    ],
)
async def test_deep_or_oversized_oci_layout_is_a_protocol_error(
    adapter: OciLayoutAdapter, root: Path, content: bytes, says: str
) -> None:
    await push_image(adapter, "team/app", "v1")
    (root / "team" / "app" / "oci-layout").write_bytes(content)
    with pytest.raises(ProtocolError, match=f"team/app/oci-layout {says}"):
        await adapter.client().list_tag_refs("team/app")
    with pytest.raises(ProtocolError, match=says):
        await adapter.prepare_repository("team/app")
    assert await adapter.client().catalog_listings() == (["team/app"], {})


@pytest.mark.anyio
async def test_deep_manifests_are_not_summarized_nor_passed_on(
    adapter: OciLayoutAdapter, root: Path
) -> None:
    """Manifests read from blobs (to resolve, to find referrers) are bounded the same way;
    the engine is never handed JSON it cannot parse within Python's recursion limit."""
    client = adapter.client()
    subject, _ = await push_image(adapter, "team/app", "v1")
    ref = {"mediaType": mt.OCI_MANIFEST, "digest": subject, "size": 1}
    layout = root / "team" / "app"
    index = index_json(layout)
    for depth in (100, 200_000):
        deep = b'{"schemaVersion":2,"mediaType":"%s","subject":%s' % (
            mt.OCI_MANIFEST.encode(),
            json.dumps(ref).encode(),
        )
        deep += b',"annotations":{"x":' + b"[" * depth + b"]" * depth + b"}}"
        blob_path(layout, sha256(deep)).write_bytes(deep)
        index["manifests"].append(
            {
                "mediaType": mt.OCI_MANIFEST,
                "digest": sha256(deep),
                "size": len(deep),
                "annotations": {REF_NAME: f"deep{depth}"},
            }
        )
    odd = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": mt.OCI_MANIFEST,
            "artifactType": "application/example",
            "config": {"mediaType": mt.OCI_EMPTY, "digest": subject, "size": 2},
            "layers": [],
            "subject": ref,
            "annotations": {"ok": "yes", "no": {"a": [1]}},
        }
    ).encode()
    blob_path(layout, sha256(odd)).write_bytes(odd)
    index["manifests"].append({"digest": sha256(odd)})  # no media type: summarized
    (layout / "index.json").write_text(json.dumps(index))
    found = await client.referrers("team/app", subject)
    assert [(d.digest, d.annotations) for d in found or []] == [(sha256(odd), {"ok": "yes"})]
    for depth in (100, 200_000):
        with pytest.raises(ProtocolError, match=DEEP):
            await client.get_manifest("team/app", f"deep{depth}")
    assert await client.head_manifest("team/app", "v1") is not None


@pytest.mark.anyio
async def test_nothing_but_oci_errors_leaves_the_adapter(
    adapter: OciLayoutAdapter, monkeypatch: pytest.MonkeyPatch
) -> None:
    await push_image(adapter, "team/app", "v1")

    def broken(self: Layout) -> Any:
        raise KeyError("surprise")

    monkeypatch.setattr(Layout, "index", broken)
    with pytest.raises(ProtocolError, match=r"listing tags of .*/team/app: unexpected KeyError"):
        await adapter.client().list_tag_refs("team/app")
    with pytest.raises(OciError):
        await adapter.client().put_manifest("team/app", "v2", b"{}", mt.OCI_MANIFEST)
    assert await adapter.client().catalog_listings() == (["team/app"], {})


def test_a_bad_layout_fails_its_listing_not_the_server(
    local: SeawallProcess, tmp_path: Path
) -> None:
    """Pulling from a root where one layout's index.json is hostile: the run ends with a
    failed listing task that says which file and why, the other layouts are copied, and the
    server keeps working."""
    usb = tmp_path / "usb"
    usb.mkdir()

    async def good() -> str:
        async with OciLayoutAdapter(EndpointConfig(f"file://{usb}")) as adapter:
            return (await push_image(adapter, "src/good", "v1"))[0]

    digest = anyio.run(good)
    bad = usb / "src" / "bad"
    (bad / "blobs" / "sha256").mkdir(parents=True)
    (bad / "oci-layout").write_text('{"imageLayoutVersion":"1.0.0"}')
    (bad / "index.json").write_bytes(b"[" * 200_000)
    with api(local.url, local.admin_password) as a:
        r = a.post(
            "/registries", json={"name": "usb", "type": "oci-layout", "url": f"file://{usb}"}
        )
        assert r.status_code == 201, r.text
        remote = int(r.headers["Location"].rsplit("/", 1)[1])
        policy = add_policy(
            a, "from-usb", src=remote, filters=[{"type": "name", "value": "src/**"}]
        )
        ex, tasks = run(a, policy, timeout_s=60)
        assert ex["status"] == "Failed", dumps([ex, tasks])
        reasons = [t.get("reason") or "" for t in tasks]
        assert any(
            "src/bad/index.json nests JSON more than 64 levels deep" in why for why in reasons
        ), dumps(tasks)
        assert a.get("/registries").status_code == 200
    with client(local.url, "admin", local.admin_password) as c:
        assert digest_of(c, "src/good", "v1") == digest
