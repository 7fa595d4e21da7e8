"""A small registry client for tests: httpx with the Docker token flow (Basic → Bearer)."""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Generator
from typing import Any

import httpx

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
ACCEPT = ", ".join([OCI_MANIFEST, OCI_INDEX, DOCKER_MANIFEST, DOCKER_LIST])


def sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


class TokenAuth(httpx.Auth):
    """Answers a ``WWW-Authenticate: Bearer`` challenge by asking the realm for a token with the
    given Basic credentials (or anonymously); answers a Basic challenge with Basic."""

    requires_response_body = True

    def __init__(self, username: str | None, password: str | None) -> None:
        self.basic = httpx.BasicAuth(username, password or "") if username else None
        self.tokens: dict[str, str] = {}

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        key = request.url.path
        m = re.match(r"/v2/(.+?)/(blobs|manifests|tags|referrers)/", key)
        scope_key = m.group(1) if m else key
        if scope_key in self.tokens:
            request.headers["Authorization"] = "Bearer " + self.tokens[scope_key]
        response = yield request
        if response.status_code != 401:
            return
        challenge = response.headers.get("WWW-Authenticate", "")
        if challenge.lower().startswith("basic") and self.basic:
            yield from self.basic.auth_flow(request)
            return
        if not challenge.lower().startswith("bearer"):
            return
        params = dict(re.findall(r'(\w+)="([^"]*)"', challenge))
        realm = params.pop("realm")
        token_request = httpx.Request("GET", realm, params=params)
        if self.basic:
            token_request = next(self.basic.auth_flow(token_request))
        token_response = yield token_request
        if token_response.status_code != 200:
            return
        token_response.read()
        body = token_response.json()
        self.tokens[scope_key] = body.get("token") or body["access_token"]
        request.headers["Authorization"] = "Bearer " + self.tokens[scope_key]
        yield request


def client(
    base_url: str, username: str | None = "admin", password: str | None = None, **kw: Any
) -> httpx.Client:
    return httpx.Client(base_url=base_url, auth=TokenAuth(username, password), timeout=60.0, **kw)


def push_blob(c: httpx.Client, repo: str, data: bytes) -> str:
    digest = sha256(data)
    r = c.post(
        f"/v2/{repo}/blobs/uploads/",
        params={"digest": digest},
        content=data,
        headers={"Content-Type": "application/octet-stream"},
    )
    if r.status_code == 202:  # no single-POST upload (distribution 2.8): POST then PUT
        location = r.headers["Location"]
        sep = "&" if "?" in location else "?"
        r = c.put(
            f"{location}{sep}digest={digest}",
            content=data,
            headers={"Content-Type": "application/octet-stream"},
        )
    assert r.status_code == 201, (r.status_code, r.text)
    return digest


def image_manifest(config: bytes, layers: list[bytes], **extra: Any) -> bytes:
    doc: dict[str, Any] = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {
            "mediaType": "application/vnd.oci.image.config.v1+json",
            "digest": sha256(config),
            "size": len(config),
        },
        "layers": [
            {
                "mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
                "digest": sha256(layer),
                "size": len(layer),
            }
            for layer in layers
        ],
    }
    doc.update(extra)
    return json.dumps(doc).encode()


def push_image(
    c: httpx.Client, repo: str, ref: str, *, layers: int = 1, seed: str = "x", **extra: Any
) -> tuple[str, bytes]:
    """Push a small OCI image; return (manifest digest, manifest bytes)."""
    config = json.dumps({"architecture": "amd64", "os": "linux", "seed": seed}).encode()
    blobs = [f"layer-{seed}-{i}".encode() * 100 for i in range(layers)]
    for b in (config, *blobs):
        push_blob(c, repo, b)
    manifest = image_manifest(config, blobs, **extra)
    r = c.put(
        f"/v2/{repo}/manifests/{ref}", content=manifest, headers={"Content-Type": OCI_MANIFEST}
    )
    assert r.status_code == 201, (r.status_code, r.text)
    return sha256(manifest), manifest


EMPTY_CONFIG = b"{}"


def push_artifact(
    c: httpx.Client,
    repo: str,
    artifact_type: str,
    payload: bytes,
    *,
    tag: str | None = None,
    subject: tuple[str, int] | None = None,
) -> str:
    """Push an OCI 1.1 artifact (an SBOM, a signature: empty config, one layer), by ``tag`` or
    else by digest, with an optional ``subject`` (digest, size); returns its digest."""
    push_blob(c, repo, EMPTY_CONFIG)
    push_blob(c, repo, payload)
    doc: dict[str, Any] = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "artifactType": artifact_type,
        "config": {
            "mediaType": "application/vnd.oci.empty.v1+json",
            "digest": sha256(EMPTY_CONFIG),
            "size": len(EMPTY_CONFIG),
        },
        "layers": [
            {
                "mediaType": "application/octet-stream",
                "digest": sha256(payload),
                "size": len(payload),
            }
        ],
    }
    if subject is not None:
        doc["subject"] = {"mediaType": OCI_MANIFEST, "digest": subject[0], "size": subject[1]}
    manifest = json.dumps(doc).encode()
    digest = sha256(manifest)
    r = c.put(
        f"/v2/{repo}/manifests/{tag or digest}",
        content=manifest,
        headers={"Content-Type": OCI_MANIFEST},
    )
    assert r.status_code == 201, r.text
    return digest
