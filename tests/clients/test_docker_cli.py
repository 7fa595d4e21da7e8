"""The docker CLI against the registry, with no engine: ``docker login`` and ``docker manifest``.

Without a daemon the CLI does the registry work itself. It tries ``https://HOST/v2/`` first and,
because 127.0.0.0/8 is an insecure registry by default, falls back to ``http://``; then it
answers the registry's challenge (Basic, or Bearer via the token realm) with the credentials and
stores them in ``$DOCKER_CONFIG/config.json`` only if the registry accepted them.
"""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest

from tests.clients.layouts import OCI_MANIFEST, build_index, sha256
from tests.clients.tools import DockerCli, Registry, Skopeo

pytestmark = pytest.mark.clients


def test_login_stores_credentials(docker_cli: DockerCli, authed_registry: Registry) -> None:
    result = docker_cli.login(authed_registry, authed_registry.password or "")
    assert b"Login Succeeded" in result.stdout, result
    stored = docker_cli.config()["auths"][authed_registry.host]["auth"]
    assert base64.b64decode(stored).decode() == authed_registry.creds


def test_login_wrong_password_fails(docker_cli: DockerCli, authed_registry: Registry) -> None:
    result = docker_cli.login(authed_registry, "not-the-password", check=False)
    assert result.returncode != 0, result
    assert b"Login Succeeded" not in result.stdout
    assert authed_registry.host not in docker_cli.config().get("auths", {})


def test_manifest_inspect_index(
    docker_cli: DockerCli, skopeo: Skopeo, registry: Registry, repo: str, tmp_path: Path
) -> None:
    index = build_index(tmp_path / "src", "multi", seed="docker-cli")
    skopeo.copy(
        f"oci:{tmp_path / 'src'}:multi",
        registry.docker(repo, "multi"),
        "--all",
        "--preserve-digests",
        dest_registry=registry,
    )
    if registry.username:
        docker_cli.login(registry, registry.password or "")

    out = docker_cli.run(
        "manifest", "inspect", "--insecure", "--verbose", registry.image(repo, "multi")
    )
    entries = json.loads(out.stdout)
    assert [e["Descriptor"]["digest"] for e in entries] == [i.digest for i in index.images]
    for entry, image in zip(entries, index.images, strict=True):
        assert entry["Descriptor"]["mediaType"] == OCI_MANIFEST
        assert entry["Descriptor"]["platform"]["architecture"] == image.architecture
        raw = base64.b64decode(entry["Raw"])
        assert raw == image.manifest
        assert sha256(raw) == image.digest
