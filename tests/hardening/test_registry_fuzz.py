"""A negative suite for the registry API and the token endpoint: several hundred malformed
requests, generated systematically (methods x paths x bad names, references, digests, query
values, headers, bodies), each sent byte for byte, anonymously and as an admin.

Every answer must be below 500 and, when it is an error, the documented OCI error body
(``{"errors": [{"code", "message", ...}]}``, codes from docs/registry-api.md). Afterwards the
server must still serve, hold nothing it refused, and its memory (``/proc/PID/status`` VmRSS of
its processes) must be within 50 MiB of where it started. The requests issue 12 lists are all
here: ``?n=²``, integers beyond 2**63, deeply nested manifests, malformed chunked bodies,
descriptor sizes of 10**30, 2,000-scope token requests, oversized tokens, bad logins and a
quote in ``X-Forwarded-Host``.
"""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest

from tests.hardening.registry_support import (
    assert_oci_error,
    basic,
    get_token,
    raw_exchange,
    server_rss_kib,
)
from tests.protocol.helpers import raw_request
from tests.support.client import OCI_MANIFEST, client, push_blob, push_image, sha256
from tests.support.server import SeawallProcess

REPO = "fuzz/app"
HUGE = "9223372036854775808"  # 2**63
GOOD_DIGEST = sha256(b"nothing")
BAD_NAMES = [
    "UPPER/case",
    "a" * 300,
    "a//b",
    "fuzz/../etc",
    "fuzz/./app",
    "-lead/x",
    "fuzz%2Fapp",
    "a:b",
    "%C3%BC/x",
    "a%20b",
    "a%00b",
    "%ff%fe",
    ".",
]
BAD_REFS = [
    "-x",
    "a" * 200,
    "%00",
    "%C3%BC",
    "sha256:zz",
    "sha256:" + "a" * 63,
    "md5:" + "a" * 32,
    "sha256:" + "A" * 64,
    "sha512:abc",
    ":",
]
METHODS = ["GET", "HEAD", "PUT", "POST", "PATCH", "DELETE", "OPTIONS", "BREW"]
SUFFIXES = ["manifests/v1", "blobs/{d}", "blobs/uploads/", "blobs/uploads/nope", "tags/list"]


@dataclass(frozen=True)
class Case:
    method: str
    path: str
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""


def _nested(depth: int) -> bytes:
    return b'{"schemaVersion":2,"annotations":{"a":' + b"[" * depth + b"]" * depth + b"}}"


def _manifest(**overrides: object) -> bytes:
    doc: dict[str, object] = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {
            "mediaType": "application/vnd.oci.image.config.v1+json",
            "digest": GOOD_DIGEST,
            "size": 7,
        },
        "layers": [],
    }
    doc.update(overrides)
    return json.dumps(doc).encode()


def _sized(size: object) -> bytes:
    return _manifest(layers=[{"mediaType": "x/y", "digest": GOOD_DIGEST, "size": size}])


MANIFEST_BODIES = [
    _nested(100_000),
    _nested(33),
    _sized(10**30),
    _sized(2**63),
    _sized(-1),
    _sized(1.5),
    _sized("7"),
    _sized(True),
    b"[]",
    b"{",
    b"\xff\xfe\x00",
    b"",
    b'{"schemaVersion":2,"layers":[],"config":{"size":1e400}}',
    b'{"n":' + b"9" * 5000 + b"}",
    _manifest(annotations={"a": {"b": 1}}),
    _manifest(schemaVersion=3),
    _manifest(layers="x"),
    _manifest(subject={"digest": "sha256:zz"}),
    _manifest(mediaType=7),
    _manifest(config=None),
]


def path_cases() -> Iterator[Case]:
    """Every method on every route family, with bad names and bad references."""
    for name in [REPO, *BAD_NAMES]:
        for suffix in SUFFIXES:
            for method in METHODS:
                yield Case(method, f"/v2/{name}/{suffix.format(d=GOOD_DIGEST)}")
    for ref in BAD_REFS:
        for route in ("manifests", "blobs", "referrers", "blobs/uploads"):
            for method in ("GET", "HEAD", "PUT", "DELETE"):
                yield Case(method, f"/v2/{REPO}/{route}/{ref}")
    for path in ("/v2/_catalog/x", "/v2/" + "x/" * 3000, "/v2/%ff", "/v2/..%2f..%2fetc", "/v2//"):
        yield Case("GET", path)


def query_cases(upload: str) -> Iterator[Case]:
    bad_counts = ["%C2%B2", "-1", "1e3", "0x10", "%205", HUGE, "9" * 40, "%D9%A3", "1.5"]
    for n in bad_counts:
        yield Case("GET", f"/v2/{REPO}/tags/list?n={n}")
        yield Case("GET", f"/v2/_catalog?n={n}")
    for value in ("%00", "%C3%BC", "a" * 400, "%ff"):
        yield Case("GET", f"/v2/{REPO}/tags/list?last={value}")
        yield Case("GET", f"/v2/_catalog?last={value}&prefix={value}")
    for digest in ("zz", "sha256:", "sha256:" + "g" * 64, HUGE):
        yield Case("POST", f"/v2/{REPO}/blobs/uploads/?digest={digest}", body=b"x")
        yield Case("PUT", f"{upload}?digest={digest}", body=b"x")
        yield Case("POST", f"/v2/{REPO}/blobs/uploads/?mount={digest}&from=BAD//name")
    yield Case("GET", f"/v2/{REPO}/referrers/{GOOD_DIGEST}?artifactType=%00")


def header_cases(upload: str) -> Iterator[Case]:
    for value in ("bytes=abc", f"0-{HUGE}", "5-1", "bytes 0-0/*", f"{HUGE}-{HUGE}", "0-"):
        yield Case("PATCH", upload, {"Content-Range": value}, b"x")
    for value in ("bytes=5-1", f"bytes={HUGE}-", "items=0-1", "bytes=-0", "bytes=0-0,2-3", "bytes"):
        yield Case("GET", f"/v2/{REPO}/blobs/{GOOD_DIGEST}", {"Range": value})
    for value in (
        "Bearer",
        "Bearer a.b.c",
        "Basic !!!",
        "Basic " + base64.b64encode(b"x").decode(),
        "Bearer " + "x" * 20_000,
        "Digest x",
        "Basic " + "A" * 5000,
    ):
        yield Case("GET", "/v2/", {"Authorization": value})
        yield Case("GET", f"/v2/{REPO}/tags/list", {"Authorization": value})
    for value in ('evil",error="x', "a b", "[::1"):
        yield Case("GET", "/v2/", {"X-Forwarded-Host": value, "X-Forwarded-Proto": 'x"y'})
    for ctype in ("", "text/plain", 'application/vnd.oci.image.index.v1+json; x="', "ü"):
        yield Case("PUT", f"/v2/{REPO}/manifests/ctype", {"Content-Type": ctype}, _manifest())


def body_cases() -> Iterator[Case]:
    for i, body in enumerate(MANIFEST_BODIES):
        headers = {"Content-Type": OCI_MANIFEST}
        yield Case("PUT", f"/v2/{REPO}/manifests/bad-{i}", headers, body)
        yield Case("PUT", f"/v2/{REPO}/manifests/{sha256(body)}", headers, body)


def token_cases() -> Iterator[Case]:
    scopes = [f"repository:r{i}:pull" for i in range(2000)]
    form = "application/x-www-form-urlencoded"
    yield Case("GET", "/service/token?service=seawall&" + "&".join(f"scope={s}" for s in scopes))
    for scope in (
        "x",
        "repository:a",
        "Repository:a:pull",
        "repository::pull",
        "%00:a:b",
        "repository:a:PULL",
        "repository:" + "a" * 5000 + ":pull",
    ):
        yield Case("GET", f"/service/token?service=seawall&scope={scope}")
    bodies = [
        b"grant_type=password&username=admin&password=wrong",
        b"grant_type=refresh_token",
        b"\xff\xfe",
        b"grant_type=password&" + b"a" * 70_000,
        b"=&=&&",
    ]
    for body in bodies:
        yield Case("POST", "/service/token", {"Content-Type": form}, body)
    for method in ("PUT", "DELETE", "PATCH"):
        yield Case(method, "/service/token")
    for user in ("admin", "nobody", "", "a" * 300, "robot$x"):
        yield Case("GET", "/service/token?service=seawall", basic(user, "wrong"))


CHUNKED = [
    b"zz\r\nabc\r\n0\r\n\r\n",
    b"3\r\nabcdef\r\n0\r\n\r\n",
    b"-1\r\n\r\n",
    b"f" * 20 + b"\r\n",
]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SeawallProcess]:
    proc = SeawallProcess(tmp_path_factory.mktemp("fuzz") / "data").start()
    yield proc
    proc.kill()


def _check(server: SeawallProcess, case: Case, identity: dict[str, str]) -> str | None:
    """What is wrong with the answer to ``case`` (None: a 2xx/3xx, or a documented 4xx)."""
    headers = {**identity, **case.headers}
    where = f"{case.method} {case.path[:120]} {sorted(headers)}"
    r = raw_request(server.url, case.method, case.path, headers, case.body, timeout=30)
    if r.status >= 500:
        return f"{where}: {r.status} {r.body[:200]!r}"
    if r.status >= 400 and case.method != "HEAD":
        try:
            assert_oci_error(r.status, r.headers.get("content-type", ""), r.body, where)
        except (AssertionError, ValueError) as e:
            return str(e)[:300]
    return None


def _chunked(server: SeawallProcess, identity: dict[str, str], upload: str) -> int:
    sent = 0
    for framing in CHUNKED:
        for method, path in (
            ("PUT", f"/v2/{REPO}/manifests/c"),
            ("PATCH", upload),
            ("POST", "/service/token"),
        ):
            lines = [
                f"{method} {path} HTTP/1.1",
                "Host: x",
                "Connection: close",
                "Transfer-Encoding: chunked",
                *(f"{k}: {v}" for k, v in identity.items()),
            ]
            status, headers, body = raw_exchange(
                server.port, "\r\n".join(lines).encode() + b"\r\n\r\n", framing
            )
            assert_oci_error(status, headers.get("content-type", ""), body, f"chunked {method}")
            sent += 1
    return sent


def test_malformed_requests_get_documented_4xx_and_the_server_stays_healthy(
    server: SeawallProcess,
) -> None:
    started = time.monotonic()
    admin = ("admin", server.admin_password)
    with client(server.url, *admin) as c:
        push_image(c, REPO, "v1")
        upload = c.post(f"/v2/{REPO}/blobs/uploads/").headers["Location"]
    token = get_token(server.url, f"repository:{REPO}:pull,push,delete registry:catalog:*", admin)
    identities = [{}, basic(*admin), {"Authorization": f"Bearer {token}"}]
    rss_before = server_rss_kib(server)
    cases = [
        *path_cases(),
        *query_cases(upload),
        *header_cases(upload),
        *body_cases(),
        *token_cases(),
    ]
    # every case anonymously, and as admin (Basic and bearer taking turns)
    runs = [
        (case, identity)
        for i, case in enumerate(cases)
        for identity in (identities[0], identities[1 + i % 2])
    ]
    wrong = [w for case, identity in runs if (w := _check(server, case, identity))]
    assert not wrong, f"{len(wrong)} of {len(runs)} answers wrong:\n" + "\n".join(wrong[:25])
    sent = len(runs) + _chunked(server, identities[1], upload) + _chunked(server, {}, upload)
    assert sent >= 300, sent
    with client(server.url, *admin) as c:  # still serving; nothing refused was stored
        assert c.get("/healthz").status_code == 200
        r = c.get(f"/v2/{REPO}/tags/list")
        assert r.status_code == 200 and set(r.json()["tags"]) <= {"v1"}, r.text[:300]
        digest, _ = push_image(c, "fuzz/after", "v2", seed="after")
        assert c.get("/v2/fuzz/after/manifests/v2").headers["docker-content-digest"] == digest
    grown = server_rss_kib(server) - rss_before
    print(f"{sent} malformed requests in {time.monotonic() - started:.1f} s; RSS +{grown} KiB")
    assert grown < 50 * 1024, f"RSS grew {grown // 1024} MiB"
    assert time.monotonic() - started < 60


@pytest.mark.parametrize("size", [10**30, 2**63, -1, 1.5, "7", None])
def test_descriptor_sizes_outside_int64_are_refused_and_not_stored(
    server: SeawallProcess, size: object
) -> None:
    """The blobs exist, so only the size is wrong: refused as MANIFEST_INVALID, never stored
    (hence never replicated)."""
    admin = ("admin", server.admin_password)
    with client(server.url, *admin) as c:
        config = json.dumps({"size-test": str(size)}).encode()
        push_blob(c, "fuzz/sizes", config)
        doc = json.loads(_manifest())
        doc["config"].update(digest=sha256(config), size=size)
        tag = "size-" + sha256(repr(size).encode())[7:19]
        r = c.put(
            f"/v2/fuzz/sizes/manifests/{tag}",
            content=json.dumps(doc).encode(),
            headers={"Content-Type": OCI_MANIFEST},
        )
        codes = assert_oci_error(r.status_code, r.headers["content-type"], r.content, "size")
        assert r.status_code == 400 and codes == ["MANIFEST_INVALID"], r.text[:300]
        assert "size" in r.text
        assert c.get(f"/v2/fuzz/sizes/manifests/{tag}").status_code == 404
