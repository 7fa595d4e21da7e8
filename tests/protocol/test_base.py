"""``/v2/`` (end-1), ``/healthz``, the 401 on every route without credentials, and the response
invariants (API version header, error JSON, HEAD without a body)."""

from __future__ import annotations

import re

import httpx
import pytest

from tests.protocol.helpers import (
    OCI_MANIFEST,
    Target,
    assert_error,
    blob_data,
    push_blob,
    push_image,
    raw_request,
)

D = "sha256:" + "a" * 64
R = "proto/unauth/app"

# Every route of the spec (and the catalog), as (method, path).
ROUTES = [
    ("GET", "/v2/"),
    ("HEAD", "/v2/"),
    ("GET", "/v2/_catalog"),
    ("GET", f"/v2/{R}/manifests/latest"),
    ("HEAD", f"/v2/{R}/manifests/latest"),
    ("GET", f"/v2/{R}/manifests/{D}"),
    ("PUT", f"/v2/{R}/manifests/latest"),
    ("DELETE", f"/v2/{R}/manifests/{D}"),
    ("GET", f"/v2/{R}/blobs/{D}"),
    ("HEAD", f"/v2/{R}/blobs/{D}"),
    ("DELETE", f"/v2/{R}/blobs/{D}"),
    ("POST", f"/v2/{R}/blobs/uploads/"),
    ("POST", f"/v2/{R}/blobs/uploads/?digest={D}"),
    ("POST", f"/v2/{R}/blobs/uploads/?mount={D}&from=proto/other"),
    ("GET", f"/v2/{R}/blobs/uploads/0123456789abcdef"),
    ("PATCH", f"/v2/{R}/blobs/uploads/0123456789abcdef"),
    ("PUT", f"/v2/{R}/blobs/uploads/0123456789abcdef?digest={D}"),
    ("DELETE", f"/v2/{R}/blobs/uploads/0123456789abcdef"),
    ("GET", f"/v2/{R}/tags/list"),
    ("GET", f"/v2/{R}/tags/list?n=1&last=a"),
    ("GET", f"/v2/{R}/referrers/{D}"),
    ("GET", f"/v2/{R}/referrers/{D}?artifactType=application/x"),
]

CHALLENGE_RE = re.compile(r"^Bearer\s+(.*)$", re.IGNORECASE)


def parse_challenge(header: str) -> dict[str, str]:
    m = CHALLENGE_RE.match(header)
    assert m, f"not a Bearer challenge: {header!r}"
    return dict(re.findall(r'(\w+)="([^"]*)"', m.group(1)))


def test_ping_authenticated(admin: httpx.Client) -> None:
    r = admin.get("/v2/")
    assert r.status_code == 200, r.text
    assert r.headers["Docker-Distribution-API-Version"] == "registry/2.0"


def test_ping_basic(basic: httpx.Client) -> None:
    r = basic.get("/v2/")
    assert r.status_code == 200, r.text
    assert r.headers["Docker-Distribution-API-Version"] == "registry/2.0"


@pytest.mark.seawall_only
def test_ping_unauthenticated_challenges(anon: httpx.Client, target: Target) -> None:
    r = anon.get("/v2/")
    assert_error(r, 401, "UNAUTHORIZED")
    params = parse_challenge(r.headers["WWW-Authenticate"])
    assert params.get("realm", "").startswith(("http://", "https://")), params
    assert params.get("service"), params
    assert r.headers["Docker-Distribution-API-Version"] == "registry/2.0"


def test_healthz_without_auth(anon: httpx.Client, target: Target) -> None:
    if target.external:
        pytest.skip("/healthz is Seawall's")
    r = anon.get("/healthz")
    assert r.status_code == 200, r.text


@pytest.mark.seawall_only
@pytest.mark.parametrize(("method", "path"), ROUTES, ids=[f"{m} {p}" for m, p in ROUTES])
def test_every_route_requires_auth(anon: httpx.Client, method: str, path: str) -> None:
    r = anon.request(method, path, content=b"x" if method in ("PUT", "PATCH") else None)
    assert_error(r, 401, "UNAUTHORIZED")
    params = parse_challenge(r.headers["WWW-Authenticate"])
    assert params.get("realm") and params.get("service"), params
    if f"/v2/{R}/" in path:
        # the scope names the repository and an action the route needs
        scopes = [s for s in params.get("scope", "").split() if s.startswith(f"repository:{R}:")]
        assert scopes, params
        actions = set(scopes[0].rsplit(":", 1)[1].split(","))
        if "/blobs/uploads/" in path:
            acceptable = {"push"} | ({"pull"} if method == "GET" else set())
        else:
            acceptable = {"GET": {"pull"}, "HEAD": {"pull"}, "DELETE": {"delete"}}.get(
                method, {"push"}
            )
        assert "*" in actions or acceptable & actions, (scopes, acceptable)
    if path == "/v2/_catalog":
        assert params.get("scope", "").startswith("registry:catalog:"), params


@pytest.mark.seawall_only
def test_bad_credentials_are_not_anonymous(anon: httpx.Client, target: Target) -> None:
    """Wrong Basic credentials on /v2/ get 401 with a challenge, like no credentials."""
    r = anon.get("/v2/", headers=target.basic_header("admin", "wrong-password"))
    assert_error(r, 401, "UNAUTHORIZED")
    assert "WWW-Authenticate" in r.headers


def test_unknown_route_is_404_not_500(admin: httpx.Client, repo: str) -> None:
    push_image(admin, repo, "latest")
    r = admin.get(f"/v2/{repo}/no-such-endpoint")
    assert r.status_code == 404, r.text


@pytest.mark.parametrize(
    ("method", "path"),
    [("POST", "/manifests/latest"), ("PATCH", "/manifests/latest"), ("POST", "/tags/list")],
)
def test_wrong_method_is_405_or_404(admin: httpx.Client, repo: str, method: str, path: str) -> None:
    push_image(admin, repo, "latest")
    r = admin.request(method, f"/v2/{repo}{path}", content=b"{}")
    assert r.status_code in (404, 405), r.text


# --------------------------------------------------------------------------- HEAD has no body

HEAD_CASES = ["blob", "unknown-blob", "manifest-tag", "manifest-digest", "unknown-manifest"]


@pytest.mark.parametrize("case", HEAD_CASES)
def test_head_has_no_body(admin: httpx.Client, target: Target, repo: str, case: str) -> None:
    """The raw bytes after a HEAD response's head are nothing at all (not even on errors), and
    Content-Length still announces the GET's size."""
    data = blob_data(1000)
    digest = push_blob(admin, repo, data)
    mdigest, manifest = push_image(admin, repo, "latest")
    path, status, size = {
        "blob": (f"/v2/{repo}/blobs/{digest}", 200, len(data)),
        "unknown-blob": (f"/v2/{repo}/blobs/sha256:{'0' * 64}", 404, None),
        "manifest-tag": (f"/v2/{repo}/manifests/latest", 200, len(manifest)),
        "manifest-digest": (f"/v2/{repo}/manifests/{mdigest}", 200, len(manifest)),
        "unknown-manifest": (f"/v2/{repo}/manifests/nope", 404, None),
    }[case]
    headers = {"Accept": OCI_MANIFEST, **target.basic_header()}
    r = raw_request(target.url, "HEAD", path, headers)
    assert r.status == status, r
    assert r.raw_after_headers == b"", f"HEAD {path} sent a body: {r.raw_after_headers[:200]!r}"
    assert r.headers.get("docker-distribution-api-version") == "registry/2.0"
    if size is not None:
        assert r.headers.get("content-length") == str(size)


@pytest.mark.seawall_only
def test_head_unauthenticated_has_no_body(target: Target) -> None:
    r = raw_request(target.url, "HEAD", "/v2/")
    assert r.status == 401
    assert r.raw_after_headers == b""
    assert r.headers.get("www-authenticate", "").lower().startswith("bearer ")
