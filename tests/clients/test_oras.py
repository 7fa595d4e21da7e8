"""oras-py against the registry: push and pull an artifact, attach referrers, list them.

oras-py's ``login`` only stores credentials (in a config file we point into tmp_path); they are
checked on the first request, by the Bearer/Basic dance in ``do_request``. ``HOME`` is moved into
tmp_path too, because oras-py always merges ``~/.docker/config.json`` into its credentials.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace

import oras.client
import oras.decorator
import oras.oci
import pytest

from tests.clients.layouts import OCI_INDEX, OCI_MANIFEST, sha256
from tests.clients.tools import Registry

pytestmark = pytest.mark.clients

ARTIFACT_MEDIA_TYPE = "application/vnd.seawall.test.bundle.v1+tar"
SBOM_CONFIG = "application/vnd.seawall.test.sbom.v1+json"
SIGNATURE_CONFIG = "application/vnd.seawall.test.signature.v1+json"

OrasFactory = Callable[[Registry, str | None], oras.client.OrasClient]


@pytest.fixture
def oras_client(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> OrasFactory:
    """Make an OrasClient for a registry, logged in with its (or the given) password."""
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.delenv("DOCKER_CONFIG", raising=False)

    def make(registry: Registry, password: str | None = None) -> oras.client.OrasClient:
        c = oras.client.OrasClient(hostname=registry.host, insecure=True)
        if registry.username:
            c.login(
                username=registry.username,
                password=password if password is not None else registry.password or "",
                hostname=registry.host,
                config_path=str(tmp_path / "oras-auth.json"),
            )
        return c

    return make


def _files(root: Path, seed: str) -> dict[str, bytes]:
    root.mkdir(parents=True, exist_ok=True)
    contents = {
        "readme.txt": f"seawall artifact {seed}\n".encode(),
        "payload.bin": hashlib.sha256(seed.encode()).digest() * 2048,
    }
    for name, data in contents.items():
        (root / name).write_bytes(data)
    return contents


def _push(
    client: oras.client.OrasClient,
    target: str,
    paths: list[Path],
    **kw: object,
) -> str:
    """Push; return the manifest digest the registry reported."""
    response = client.push(
        target=target,
        files=[f"{p}:{ARTIFACT_MEDIA_TYPE}" for p in paths],
        disable_path_validation=True,
        quiet=True,
        **kw,
    )
    assert response.status_code == 201, (response.status_code, response.text)
    return response.headers["Docker-Content-Digest"]


def test_push_pull_artifact(
    oras_client: OrasFactory, registry: Registry, repo: str, tmp_path: Path
) -> None:
    client = oras_client(registry, None)
    contents = _files(tmp_path / "in", "push-pull")
    target = registry.image(repo, "v1")

    digest = _push(client, target, [tmp_path / "in" / name for name in contents])

    manifest = client.get_manifest(target)
    assert manifest["mediaType"] == OCI_MANIFEST
    assert [layer["digest"] for layer in manifest["layers"]] == [
        sha256(d) for d in contents.values()
    ]
    assert {layer["mediaType"] for layer in manifest["layers"]} == {ARTIFACT_MEDIA_TYPE}
    with registry.http() as c:
        r = c.get(f"/v2/{repo}/manifests/v1", headers={"Accept": OCI_MANIFEST})
    assert r.status_code == 200, r.text
    assert sha256(r.content) == digest == r.headers["Docker-Content-Digest"]

    pulled = client.pull(target=target, outdir=str(tmp_path / "out"))
    assert sorted(Path(p).name for p in pulled) == sorted(contents)
    for name, data in contents.items():
        assert (tmp_path / "out" / name).read_bytes() == data

    assert client.get_tags(f"{registry.host}/{repo}") == ["v1"]


def test_wrong_password_is_refused(
    oras_client: OrasFactory,
    seawall_registry: Registry,
    repo: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # oras-py retries a refused request five times with back-off (3 s .. 83 s): skip the waits
    monkeypatch.setattr(oras.decorator, "time", SimpleNamespace(sleep=lambda _s: None))
    client = oras_client(seawall_registry, "not-the-password")
    contents = _files(tmp_path / "in", "refused")
    with pytest.raises(ValueError):
        _push(client, seawall_registry.image(repo, "v1"), [tmp_path / "in" / n for n in contents])
    with seawall_registry.http() as c:
        r = c.get(f"/v2/{repo}/manifests/v1", headers={"Accept": OCI_MANIFEST})
    assert r.status_code == 404, (r.status_code, r.text)


def _subject(registry: Registry, repo: str, ref: str) -> oras.oci.Subject:
    with registry.http() as c:
        r = c.get(f"/v2/{repo}/manifests/{ref}", headers={"Accept": f"{OCI_MANIFEST}, {OCI_INDEX}"})
    assert r.status_code == 200, r.text
    return oras.oci.Subject(
        mediaType=r.headers["Content-Type"].split(";")[0],
        digest=sha256(r.content),
        size=len(r.content),
    )


def test_referrers(
    oras_client: OrasFactory, seawall_registry: Registry, repo: str, tmp_path: Path
) -> None:
    """Two referrers (an SBOM and a signature) attached to an artifact are listed by the
    referrers API, and ``artifactType`` filtering, when applied, keeps only the matching one."""
    registry = seawall_registry
    client = oras_client(registry, None)
    contents = _files(tmp_path / "in", "subject")
    artifact_digest = _push(
        client, registry.image(repo, "v1"), [tmp_path / "in" / n for n in contents]
    )
    subject = _subject(registry, repo, "v1")
    assert subject.digest == artifact_digest

    referrers: dict[str, str] = {}
    for kind, config_type in (("sbom", SBOM_CONFIG), ("signature", SIGNATURE_CONFIG)):
        body = tmp_path / kind / f"{kind}.json"
        body.parent.mkdir()
        body.write_text(json.dumps({"kind": kind, "subject": subject.digest}))
        config = tmp_path / kind / "config.json"
        config.write_text("{}")
        response = client.push(
            target=registry.image(repo, kind),
            files=[f"{body}:application/json"],
            manifest_config=f"{config}:{config_type}",
            subject=subject,
            disable_path_validation=True,
            quiet=True,
        )
        assert response.status_code == 201, (response.status_code, response.text)
        assert response.headers.get("OCI-Subject") == subject.digest, dict(response.headers)
        referrers[response.headers["Docker-Content-Digest"]] = config_type

    with registry.http() as c:
        r = c.get(f"/v2/{repo}/referrers/{subject.digest}")
        assert r.status_code == 200, (r.status_code, r.text)
        assert r.headers["Content-Type"].split(";")[0] == OCI_INDEX
        index = r.json()
        assert index["mediaType"] == OCI_INDEX
        listed = {m["digest"]: m.get("artifactType") for m in index["manifests"]}
        assert listed == referrers

        r = c.get(f"/v2/{repo}/referrers/{subject.digest}", params={"artifactType": SBOM_CONFIG})
        assert r.status_code == 200, (r.status_code, r.text)
        if "artifactType" in r.headers.get("OCI-Filters-Applied", ""):
            assert [m["artifactType"] for m in r.json()["manifests"]] == [SBOM_CONFIG]

        unknown = "sha256:" + "0" * 64
        r = c.get(f"/v2/{repo}/referrers/{unknown}")
        assert r.status_code == 200, (r.status_code, r.text)
        assert r.json()["manifests"] == []
