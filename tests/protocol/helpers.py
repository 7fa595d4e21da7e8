"""Helpers for the black-box protocol suite: OCI documents, pushes, error assertions, and a raw
HTTP/1.1 client for what httpx will not send (dot segments in paths) or will not show (a body
after a HEAD response).

Nothing here knows Seawall's internals: every helper speaks HTTP to a registry URL.
"""

from __future__ import annotations

import base64
import json
import os
import re
import socket
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import httpx

from tests.support.client import (
    ACCEPT,
    DOCKER_LIST,
    DOCKER_MANIFEST,
    OCI_INDEX,
    OCI_MANIFEST,
    sha256,
)

__all__ = [
    "DOCKER_CONFIG",
    "DOCKER_LAYER",
    "DOCKER_LIST",
    "DOCKER_MANIFEST",
    "EMPTY_DIGEST",
    "EMPTY_JSON",
    "EMPTY_JSON_DIGEST",
    "HEADERS",
    "OCI_CONFIG",
    "OCI_EMPTY",
    "OCI_INDEX",
    "OCI_LAYER",
    "OCI_MANIFEST",
    "SPEC_ERROR_CODES",
    "RawResponse",
    "Target",
    "all_pages",
    "assert_error",
    "blob_data",
    "descriptor",
    "hooks",
    "image",
    "index",
    "next_link",
    "push_blob",
    "push_image",
    "put_manifest",
    "raw_request",
    "sha256",
    "with_params",
]

OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"
OCI_EMPTY = "application/vnd.oci.empty.v1+json"
DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
DOCKER_LAYER = "application/vnd.docker.image.rootfs.diff.tar.gzip"

EMPTY_JSON = b"{}"
EMPTY_JSON_DIGEST = "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a"
EMPTY_DIGEST = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"

# The spec's 14 codes, plus the Docker-era codes the spec says clients may meet.
SPEC_ERROR_CODES = frozenset(
    {
        "BLOB_UNKNOWN",
        "BLOB_UPLOAD_INVALID",
        "BLOB_UPLOAD_UNKNOWN",
        "DIGEST_INVALID",
        "MANIFEST_BLOB_UNKNOWN",
        "MANIFEST_INVALID",
        "MANIFEST_UNKNOWN",
        "NAME_INVALID",
        "NAME_UNKNOWN",
        "SIZE_INVALID",
        "UNAUTHORIZED",
        "DENIED",
        "UNSUPPORTED",
        "TOOMANYREQUESTS",
    }
)
LEGACY_ERROR_CODES = frozenset(
    {"TAG_INVALID", "MANIFEST_UNVERIFIED", "PAGINATION_NUMBER_INVALID", "RANGE_INVALID"}
)


@dataclass(frozen=True)
class Target:
    """The registry under test: its URL and admin credentials (None: no auth, e.g. distribution)."""

    url: str
    username: str | None
    password: str | None
    external: bool = False
    data_dir: Any = None

    def basic_header(self, username: str | None = None, password: str | None = None) -> dict:
        user = username or self.username
        if user is None:
            return {}
        pw = password if username else self.password
        token = base64.b64encode(f"{user}:{pw}".encode()).decode()
        return {"Authorization": f"Basic {token}"}


# --------------------------------------------------------------------------- assertions


def error_codes(r: httpx.Response) -> list[str]:
    return [e.get("code") for e in r.json()["errors"]]


def assert_error(r: httpx.Response, status: int | tuple[int, ...], *codes: str) -> None:
    """``r`` is an error with one of ``status`` and (if the body may be read) one of ``codes``
    in an OCI error body ``{"errors": [{"code", "message"}]}`` served as application/json."""
    statuses = (status,) if isinstance(status, int) else status
    where = f"{r.request.method} {r.request.url.raw_path.decode()}"
    assert r.status_code in statuses, (
        f"{where}: expected {statuses} {codes}, got {r.status_code} {r.text[:300]!r}"
    )
    if r.request.method == "HEAD":
        return
    ctype = r.headers.get("content-type", "").split(";")[0].strip()
    assert ctype == "application/json", f"{where}: error Content-Type is {ctype!r}"
    got = error_codes(r)
    assert got, f"{where}: empty errors list"
    if codes:
        assert set(got) & set(codes), f"{where}: expected one of {codes}, got {got}: {r.text}"


def check_invariants(r: httpx.Response) -> None:
    """Response hook run on every response of the suite's clients: no 5xx ever; every ``/v2/``
    response carries ``Docker-Distribution-API-Version``; every 4xx body (when there is one) is
    the OCI error JSON with known codes."""
    r.read()
    where = f"{r.request.method} {r.request.url.raw_path.decode()[:200]}"
    assert r.status_code < 500, f"{where}: server error {r.status_code}: {r.text[:500]!r}"
    if r.request.url.path.startswith("/v2"):
        assert r.headers.get("docker-distribution-api-version") == "registry/2.0", (
            f"{where}: {r.status_code} lacks Docker-Distribution-API-Version: registry/2.0"
        )
    if r.status_code >= 400 and r.request.method != "HEAD" and r.request.url.path != "/healthz":
        ctype = r.headers.get("content-type", "").split(";")[0].strip()
        assert ctype == "application/json", (
            f"{where}: {r.status_code} error with Content-Type {ctype!r}: {r.text[:200]!r}"
        )
        try:
            body = r.json()
        except ValueError:
            raise AssertionError(f"{where}: error body is not JSON: {r.text[:200]!r}") from None
        if r.request.url.path.startswith("/v2"):
            errors = body.get("errors") if isinstance(body, dict) else None
            assert isinstance(errors, list) and errors, f"{where}: no errors list: {body}"
            for e in errors:
                code = e.get("code")
                assert isinstance(code, str) and re.fullmatch(r"[A-Z_]+", code), (
                    f"{where}: bad error code {code!r}"
                )
                assert code in SPEC_ERROR_CODES | LEGACY_ERROR_CODES, (
                    f"{where}: error code {code!r} is not an OCI/Docker code"
                )
                assert isinstance(e.get("message", ""), str), f"{where}: message not a string"


def hooks() -> dict[str, list]:
    """httpx ``event_hooks`` checking :func:`check_invariants` on every response."""
    return {"response": [check_invariants]}


# Clients always say which manifest types they take (content negotiation, as docker does).
HEADERS = {"Accept": ACCEPT}


# --------------------------------------------------------------------------- content


def blob_data(size: int = 512) -> bytes:
    """Random bytes: a digest no other test pushes."""
    return os.urandom(size)


def descriptor(media_type: str, data: bytes, **extra: Any) -> dict[str, Any]:
    return {"mediaType": media_type, "digest": sha256(data), "size": len(data), **extra}


def image(
    config: bytes,
    layers: list[bytes],
    *,
    media_type: str = OCI_MANIFEST,
    config_type: str | None = None,
    layer_type: str | None = None,
    indent: int | None = None,
    **extra: Any,
) -> bytes:
    """An image manifest (OCI or Docker schema2 by ``media_type``) as bytes; ``indent`` makes the
    bytes deliberately non-canonical so exact-bytes storage is tested."""
    docker = media_type == DOCKER_MANIFEST
    config_type = config_type or (DOCKER_CONFIG if docker else OCI_CONFIG)
    layer_type = layer_type or (DOCKER_LAYER if docker else OCI_LAYER)
    doc: dict[str, Any] = {
        "schemaVersion": 2,
        "mediaType": media_type,
        "config": descriptor(config_type, config),
        "layers": [descriptor(layer_type, layer) for layer in layers],
    }
    doc.update(extra)
    return json.dumps(doc, indent=indent).encode()


def index(children: list[tuple[bytes, str]], *, media_type: str = OCI_INDEX, **extra: Any) -> bytes:
    """An index (OCI or Docker manifest list) over ``(manifest bytes, media type)`` children."""
    platforms = [("amd64", "linux"), ("arm64", "linux"), ("s390x", "linux")]
    doc: dict[str, Any] = {
        "schemaVersion": 2,
        "mediaType": media_type,
        "manifests": [
            descriptor(mt, body, platform={"architecture": a, "os": o})
            for (body, mt), (a, o) in zip(children, platforms, strict=False)
        ],
    }
    doc.update(extra)
    return json.dumps(doc).encode()


def with_params(location: str, **params: str) -> httpx.URL:
    """``location`` with ``params`` merged into its query (httpx's ``params=`` would replace it)."""
    return httpx.URL(location).copy_merge_params(params)


def push_blob(c: httpx.Client, repo: str, data: bytes) -> str:
    """Push by POST then PUT (the one upload flow every registry must support)."""
    r = c.post(f"/v2/{repo}/blobs/uploads/")
    assert r.status_code == 202, (r.status_code, r.text)
    r = c.put(
        with_params(r.headers["Location"], digest=sha256(data)),
        content=data,
        headers={"Content-Type": "application/octet-stream"},
    )
    assert r.status_code == 201, (r.status_code, r.text)
    return sha256(data)


def put_manifest(
    c: httpx.Client, repo: str, ref: str, body: bytes, media_type: str
) -> httpx.Response:
    return c.put(f"/v2/{repo}/manifests/{ref}", content=body, headers={"Content-Type": media_type})


def push_image(
    c: httpx.Client,
    repo: str,
    ref: str | None = None,
    *,
    media_type: str = OCI_MANIFEST,
    layers: int = 1,
    **extra: Any,
) -> tuple[str, bytes]:
    """Push a random image (config + ``layers`` layers + manifest) by ``ref`` (default: by its
    digest); return (digest, manifest bytes)."""
    config = json.dumps({"architecture": "amd64", "os": "linux", "n": os.urandom(8).hex()})
    layer_blobs = [blob_data(300) for _ in range(layers)]
    for b in (config.encode(), *layer_blobs):
        push_blob(c, repo, b)
    body = image(config.encode(), layer_blobs, media_type=media_type, **extra)
    digest = sha256(body)
    r = put_manifest(c, repo, ref or digest, body, media_type)
    assert r.status_code == 201, (r.status_code, r.text)
    return digest, body


LINK_RE = re.compile(r'^<([^>]+)>\s*;\s*rel="?next"?$')


def next_link(r: httpx.Response) -> str | None:
    """The target of an RFC 5988 ``Link: <url>; rel="next"`` header, or None."""
    link = r.headers.get("Link")
    if link is None:
        return None
    m = LINK_RE.match(link.strip())
    assert m, f"Link header not RFC 5988 rel=next: {link!r}"
    return m.group(1)


def all_pages(c: httpx.Client, url: str, key: str, max_pages: int = 1000) -> list[str]:
    """Every item of a paginated list (tags or catalog), following Link headers."""
    items: list[str] = []
    next_url: str | None = url
    for _ in range(max_pages):
        if next_url is None:
            return items
        r = c.get(next_url)
        assert r.status_code == 200, (next_url, r.status_code, r.text[:300])
        items += r.json()[key] or []
        next_url = next_link(r)
    raise AssertionError(f"{url}: more than {max_pages} pages")


# --------------------------------------------------------------------------- raw HTTP


@dataclass
class RawResponse:
    status: int
    headers: dict[str, str]
    body: bytes
    raw_after_headers: bytes = field(repr=False, default=b"")

    def json(self) -> Any:
        return json.loads(self.body)

    def codes(self) -> list[str]:
        return [e.get("code") for e in self.json()["errors"]]


def raw_request(
    base_url: str,
    method: str,
    path: str,
    headers: dict[str, str] | None = None,
    body: bytes = b"",
    timeout: float = 20.0,
) -> RawResponse:
    """One HTTP/1.1 request with ``path`` sent byte for byte (no normalisation) on a fresh
    connection closed by ``Connection: close``; everything the server sends is read."""
    u = urlsplit(base_url)
    host, port = u.hostname or "127.0.0.1", u.port or 80
    lines = [f"{method} {path} HTTP/1.1", f"Host: {host}:{port}", "Connection: close"]
    for k, v in (headers or {}).items():
        lines.append(f"{k}: {v}")
    if body or method in ("POST", "PUT", "PATCH"):
        lines.append(f"Content-Length: {len(body)}")
    data = ("\r\n".join(lines) + "\r\n\r\n").encode() + body
    chunks: list[bytes] = []
    with socket.create_connection((host, port), timeout=timeout) as s:
        s.sendall(data)
        while True:
            try:
                chunk = s.recv(65536)
            except TimeoutError:
                break
            if not chunk:
                break
            chunks.append(chunk)
    raw = b"".join(chunks)
    head, sep, rest = raw.partition(b"\r\n\r\n")
    assert sep, f"no complete response head from {method} {path}: {raw[:200]!r}"
    status_line, *header_lines = head.decode("latin-1").split("\r\n")
    status = int(status_line.split()[1])
    hdrs: dict[str, str] = {}
    for line in header_lines:
        k, _, v = line.partition(":")
        hdrs[k.strip().lower()] = v.strip()
    payload = rest
    if method != "HEAD" and "chunked" in hdrs.get("transfer-encoding", "").lower():
        payload = _dechunk(rest)
    return RawResponse(status, hdrs, payload, rest)


def _dechunk(data: bytes) -> bytes:
    out, pos = bytearray(), 0
    while True:
        end = data.index(b"\r\n", pos)
        size = int(data[pos:end].split(b";")[0], 16)
        if size == 0:
            return bytes(out)
        out += data[end + 2 : end + 2 + size]
        pos = end + 2 + size + 2
