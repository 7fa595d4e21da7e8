"""skopeo against the registry: push, inspect, pull back, multi-arch, sync, delete, list-tags.

Images come from OCI layouts built in Python (tests/clients/layouts.py); every test checks what
landed byte for byte: the manifest the registry serves hashes to the digest the client pushed, and
blobs pulled back equal the blobs pushed.
"""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest

from tests.clients.layouts import OCI_INDEX, OCI_MANIFEST, Layout, build_image, build_index, sha256
from tests.clients.tools import Registry, Skopeo

pytestmark = pytest.mark.clients


def _push_layout(
    skopeo: Skopeo, layout: Path, tag: str, registry: Registry, repo: str, ref: str
) -> None:
    skopeo.copy(
        f"oci:{layout}:{tag}",
        registry.docker(repo, ref),
        "--all",
        "--preserve-digests",
        dest_registry=registry,
    )


def _manifest_response(
    registry: Registry, repo: str, ref: str, method: str = "GET"
) -> httpx.Response:
    with registry.http() as c:
        return c.request(
            method,
            f"/v2/{repo}/manifests/{ref}",
            headers={"Accept": f"{OCI_MANIFEST}, {OCI_INDEX}"},
        )


def test_push_preserves_manifest_bytes_and_digest(
    skopeo: Skopeo, registry: Registry, repo: str, tmp_path: Path
) -> None:
    image = build_image(tmp_path / "src", "v1")
    _push_layout(skopeo, tmp_path / "src", "v1", registry, repo, "1.0")

    served = skopeo.inspect_raw(registry, repo, "1.0")
    assert served == image.manifest
    assert skopeo.inspect_raw(registry, repo, image.digest) == image.manifest

    r = _manifest_response(registry, repo, "1.0", "HEAD")
    assert r.status_code == 200, (r.status_code, r.headers)
    assert r.headers["Docker-Content-Digest"] == image.digest
    assert int(r.headers["Content-Length"]) == len(image.manifest)
    assert r.headers["Content-Type"].split(";")[0] == OCI_MANIFEST

    info = skopeo.inspect(registry, repo, "1.0")
    assert info["Digest"] == image.digest
    assert info["Layers"] == [sha256(layer) for layer in image.layers]


def test_pull_back_equal_blobs(
    skopeo: Skopeo, registry: Registry, repo: str, tmp_path: Path
) -> None:
    image = build_image(tmp_path / "src", "v1", seed="pull-back", layers=3)
    _push_layout(skopeo, tmp_path / "src", "v1", registry, repo, "v1")

    skopeo.copy(
        registry.docker(repo, "v1"),
        f"oci:{tmp_path / 'back'}:pulled",
        "--preserve-digests",
        src_registry=registry,
    )

    back = Layout(tmp_path / "back")
    media_type, manifest = back.resolve("pulled")
    assert media_type == OCI_MANIFEST
    assert manifest == image.manifest
    pulled = back.all_blobs()
    for digest, data in image.blobs.items():
        assert pulled.get(digest) == data, f"blob {digest} differs after the round trip"
    assert set(pulled) == {*image.blobs, image.digest}


def test_multi_arch_index_round_trip(
    skopeo: Skopeo, registry: Registry, repo: str, tmp_path: Path
) -> None:
    index = build_index(tmp_path / "src", "multi", seed="multi-arch")
    _push_layout(skopeo, tmp_path / "src", "multi", registry, repo, "multi")

    assert skopeo.inspect_raw(registry, repo, "multi") == index.index
    r = _manifest_response(registry, repo, "multi", "HEAD")
    assert r.headers["Docker-Content-Digest"] == index.digest
    assert r.headers["Content-Type"].split(";")[0] == OCI_INDEX
    for image in index.images:
        assert skopeo.inspect_raw(registry, repo, image.digest) == image.manifest

    # platform resolution through the index picks the right child
    for arch in ("amd64", "arm64"):
        resolved = skopeo.inspect(registry, repo, "multi", arch=arch)
        child = index.image_for(arch)
        assert resolved["Digest"] == index.digest
        assert resolved["Architecture"] == arch
        assert resolved["Layers"] == [sha256(layer) for layer in child.layers]

    skopeo.copy(
        registry.docker(repo, "multi"),
        f"oci:{tmp_path / 'back'}:multi",
        "--all",
        "--preserve-digests",
        src_registry=registry,
    )
    back = Layout(tmp_path / "back")
    assert back.resolve("multi") == (OCI_INDEX, index.index)
    assert back.all_blobs() == Layout(tmp_path / "src").all_blobs()


def test_sync_between_repositories(
    skopeo: Skopeo, registry: Registry, repo: str, tmp_path: Path
) -> None:
    index = build_index(tmp_path / "src", "multi", seed="sync")
    image = build_image(tmp_path / "src", "single", seed="sync")
    _push_layout(skopeo, tmp_path / "src", "multi", registry, repo, "multi")
    _push_layout(skopeo, tmp_path / "src", "single", registry, repo, "single")

    mirror_prefix = f"{repo}-mirror"
    skopeo.sync_registry(registry, repo, registry, mirror_prefix, "--all", "--preserve-digests")

    mirrored = f"{mirror_prefix}/{repo.rsplit('/', 1)[-1]}"
    assert sorted(skopeo.list_tags(registry, mirrored)) == ["multi", "single"]
    assert skopeo.inspect_raw(registry, mirrored, "multi") == index.index
    assert skopeo.inspect_raw(registry, mirrored, "single") == image.manifest
    for child in index.images:
        assert skopeo.inspect_raw(registry, mirrored, child.digest) == child.manifest


def test_copy_between_registries_preserves_digests(
    skopeo: Skopeo, distribution: Registry, seawall_registry: Registry, repo: str, tmp_path: Path
) -> None:
    """distribution -> Seawall -> distribution: the index digest survives both hops."""
    index = build_index(tmp_path / "src", "multi", seed="cross")
    _push_layout(skopeo, tmp_path / "src", "multi", distribution, repo, "multi")

    hops = [
        (distribution, repo, seawall_registry, repo),
        (seawall_registry, repo, distribution, f"{repo}-back"),
    ]
    for src, src_repo, dest, dest_repo in hops:
        skopeo.copy(
            src.docker(src_repo, "multi"),
            dest.docker(dest_repo, "multi"),
            "--all",
            "--preserve-digests",
            src_registry=src,
            dest_registry=dest,
        )
        assert skopeo.inspect_raw(dest, dest_repo, "multi") == index.index
        for child in index.images:
            assert skopeo.inspect_raw(dest, dest_repo, child.digest) == child.manifest


def test_delete_then_manifest_unknown(
    skopeo: Skopeo, registry: Registry, repo: str, tmp_path: Path
) -> None:
    image = build_image(tmp_path / "src", "v1", seed="delete")
    _push_layout(skopeo, tmp_path / "src", "v1", registry, repo, "doomed")
    assert skopeo.inspect_raw(registry, repo, "doomed") == image.manifest

    skopeo.delete(registry, repo, "doomed")

    failure = skopeo.inspect_fails(registry, repo, "doomed")
    assert "manifest unknown" in failure.stderr.lower(), failure
    for ref in (image.digest, "doomed"):
        r = _manifest_response(registry, repo, ref)
        assert r.status_code == 404, (ref, r.status_code, r.text)
        codes = [e["code"] for e in json.loads(r.content)["errors"]]
        assert "MANIFEST_UNKNOWN" in codes, (ref, r.text)


def test_list_tags(skopeo: Skopeo, registry: Registry, repo: str, tmp_path: Path) -> None:
    build_image(tmp_path / "src", "v1", seed="tags")
    tags = ["1.0", "1.1", "latest", "v2.0.0-rc.1"]
    for tag in tags:
        _push_layout(skopeo, tmp_path / "src", "v1", registry, repo, tag)

    assert sorted(skopeo.list_tags(registry, repo)) == sorted(tags)

    with registry.http() as c:
        r = c.get(f"/v2/{repo}/tags/list")
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["name"] == repo
    assert sorted(body["tags"]) == sorted(tags)
