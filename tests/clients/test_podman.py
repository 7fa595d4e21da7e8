"""podman against the registry: login, pull an image skopeo pushed, push it back under another name.

podman runs as root with a private store per test (``--root``/``--runroot`` under tmp_path, the
storage driver probed once: overlay where the kernel allows it, else vfs) and a private auth file.
podman re-compresses layers when it pushes from its store, so a re-pushed image has a new manifest
digest; what must survive is the config (same digest, hence the same image ID) and the layers'
uncompressed content (the config's diff_ids).
"""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest

from tests.clients.layouts import build_image, build_index, sha256
from tests.clients.tools import CommandFailed, Podman, Registry, Skopeo

pytestmark = pytest.mark.clients


def _seed(skopeo: Skopeo, registry: Registry, repo: str, layout: Path, tag: str) -> None:
    skopeo.copy(
        f"oci:{layout}:{tag}",
        registry.docker(repo, tag),
        "--all",
        "--preserve-digests",
        dest_registry=registry,
    )


def _login_if_needed(podman: Podman, registry: Registry) -> None:
    if registry.username:
        podman.login(registry)


def test_login(podman: Podman, authed_registry: Registry) -> None:
    podman.login(authed_registry)
    auths = json.loads(podman.authfile.read_text())["auths"]
    assert authed_registry.host in auths

    with pytest.raises(CommandFailed) as failed:
        podman.login(authed_registry, password="not-the-password")
    assert failed.value.returncode != 0


def test_pull_then_push_under_another_name(
    podman: Podman, skopeo: Skopeo, registry: Registry, repo: str, tmp_path: Path
) -> None:
    image = build_image(tmp_path / "src", "v1", seed="podman")
    _seed(skopeo, registry, repo, tmp_path / "src", "v1")
    _login_if_needed(podman, registry)

    source = registry.image(repo, "v1")
    podman.run("pull", "--tls-verify=false", source)
    pulled = podman.image_inspect(source)
    assert pulled["Id"] == sha256(image.config).removeprefix("sha256:")
    assert pulled["Digest"] == image.digest
    assert f"{registry.host}/{repo}@{image.digest}" in pulled["RepoDigests"]

    target_repo = f"{repo}-copy"
    target = registry.image(target_repo, "pushed")
    digestfile = tmp_path / "pushed.digest"
    podman.run("tag", source, target)
    podman.run("push", "--tls-verify=false", "--digestfile", str(digestfile), target)
    pushed_digest = digestfile.read_text().strip()

    served = skopeo.inspect_raw(registry, target_repo, "pushed")
    assert sha256(served) == pushed_digest
    manifest = json.loads(served)
    assert manifest["config"]["digest"] == sha256(image.config)

    # the layers podman re-compressed still unpack to the original tars (the diff_ids)
    with registry.http() as c:
        config = c.get(f"/v2/{target_repo}/blobs/{manifest['config']['digest']}")
        assert config.content == image.config
        for layer, diff_id in zip(manifest["layers"], image.diff_ids, strict=True):
            r = c.get(f"/v2/{target_repo}/blobs/{layer['digest']}")
            assert r.status_code == 200, (layer, r.status_code, r.text[:500])
            assert sha256(r.content) == layer["digest"]
            assert sha256(gzip.decompress(r.content)) == diff_id


def test_pull_picks_platform_from_index(
    podman: Podman, skopeo: Skopeo, registry: Registry, repo: str, tmp_path: Path
) -> None:
    index = build_index(tmp_path / "src", "multi", seed="podman-multi")
    _seed(skopeo, registry, repo, tmp_path / "src", "multi")
    _login_if_needed(podman, registry)

    ref = registry.image(repo, "multi")
    for arch in ("arm64", "amd64"):
        child = index.image_for(arch)
        podman.run("pull", "--tls-verify=false", "--arch", arch, ref)
        pulled = podman.image_inspect(ref)
        assert pulled["Architecture"] == arch
        assert pulled["Id"] == sha256(child.config).removeprefix("sha256:")
        assert f"{registry.host}/{repo}@{child.digest}" in pulled["RepoDigests"]
