"""``X-Forwarded-*`` believed only from configured proxies (``SEAWALL_TRUSTED_PROXIES``) and
never able to put a quote into ``WWW-Authenticate`` or ``external_url``: two real servers."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.support.server import SeawallProcess

EVIL = ['evil.example",error="injected', "a b", "x\\y", "h:99999", "h:1:2", ""]


def _realm(r: httpx.Response) -> str:
    challenge = r.headers["www-authenticate"]
    params = re.findall(r'(\w+)="([^"]*)"', challenge)
    assert challenge.count('"') == 2 * len(params), f"stray quote in {challenge!r}"
    assert [k for k, _ in params] == ["realm", "service"], challenge
    return params[0][1]


def test_untrusted_forwarded_headers_are_ignored(seawall: SeawallProcess) -> None:
    expected = f"http://{seawall.host}/service/token"
    with httpx.Client(base_url=seawall.url, timeout=30) as c:
        for value in ["registry.example.com", *EVIL]:
            headers = {"X-Forwarded-Host": value, "X-Forwarded-Proto": "https"}
            assert _realm(c.get("/v2/", headers=headers)) == expected, value
        info = c.get("/api/v2.0/systeminfo", headers={"X-Forwarded-Host": "evil.example"})
        assert info.status_code == 200 and "evil" not in info.text


def test_a_malformed_host_header_never_reaches_a_challenge(seawall: SeawallProcess) -> None:
    with httpx.Client(base_url=seawall.url, timeout=30) as c:
        r = c.get("/v2/", headers={"Host": 'h",error="x'})
        realm = _realm(r)
        assert realm.endswith("/service/token") and "error" not in realm


@pytest.fixture
def behind_proxy(tmp_path: Path) -> Iterator[SeawallProcess]:
    """A server that trusts the loopback address as its reverse proxy."""
    server = SeawallProcess(tmp_path / "data", extra_env={"SEAWALL_TRUSTED_PROXIES": "127.0.0.1"})
    yield server.start()
    server.kill()


def test_trusted_proxy_sets_origin_but_cannot_inject(behind_proxy: SeawallProcess) -> None:
    with httpx.Client(base_url=behind_proxy.url, timeout=30) as c:
        headers = {"X-Forwarded-Host": "registry.example.com:8443", "X-Forwarded-Proto": "https"}
        assert _realm(c.get("/v2/", headers=headers)) == (
            "https://registry.example.com:8443/service/token"
        )
        for value in EVIL:
            realm = _realm(c.get("/v2/", headers={"X-Forwarded-Host": value}))
            assert realm == f"http://{behind_proxy.host}/service/token", value
        bad_proto = {"X-Forwarded-Proto": 'https",x="y'}
        assert _realm(c.get("/v2/", headers=bad_proto)).startswith("http://127.0.0.1:")
