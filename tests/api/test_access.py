"""Access rules, the error format and the public endpoints."""

from __future__ import annotations

import httpx

from tests.api.harness import READER_PASSWORD, InProcessApi


def test_ping_and_systeminfo_are_public(api: InProcessApi) -> None:
    with api.client(user=None) as c:
        r = c.get("/ping")
        assert r.status_code == 200 and r.text == "Pong"
        assert r.headers["content-type"].startswith("text/plain")
        info = c.get("/systeminfo").json()
    assert info["harbor_version"].startswith("seawall-")
    assert info["external_url"] == api.url
    assert info["current_time"].endswith("Z")


def test_no_credentials_is_401_with_a_basic_challenge(api: InProcessApi) -> None:
    with api.client(user=None) as c:
        r = c.get("/registries")
    assert r.status_code == 401
    assert r.headers["www-authenticate"] == 'Basic realm="seawall"'
    assert r.json()["errors"][0]["code"] == "UNAUTHORIZED"


def test_wrong_password_is_401(api: InProcessApi) -> None:
    with api.client(password="nope") as c:
        r = c.get("/registries")
    assert r.status_code == 401 and "invalid username or password" in r.text


def test_any_account_reads_only_admins_change(api: InProcessApi) -> None:
    with api.client("reader", READER_PASSWORD) as c:
        assert c.get("/registries").status_code == 200
        assert c.get("/replication/policies").status_code == 200
        r = c.post("/registries", json={"name": "x", "type": "seawall", "url": "http://x"})
    assert r.status_code == 403
    assert r.json()["errors"][0]["code"] == "FORBIDDEN"


def test_unknown_paths_and_methods(api: InProcessApi) -> None:
    with api.client() as c:
        r = c.get("/nothing-here")
        assert r.status_code == 404 and r.json()["errors"][0]["code"] == "NOT_FOUND"
        r = c.delete("/replication/executions")
        assert r.status_code == 405 and "GET, POST" in r.headers["allow"]
        assert c.get("/registries/").status_code == 200  # a trailing slash is fine
    with httpx_client(api) as raw:
        assert raw.get("/v2/").status_code == 404  # the API answers only under /api/v2.0


def test_bodies_must_be_json_objects(api: InProcessApi) -> None:
    with api.client() as c:
        r = c.post(
            "/registries", content=b"{not json", headers={"content-type": "application/json"}
        )
        assert r.status_code == 400 and "not valid JSON" in r.text
        r = c.post("/registries", json=[1, 2])
        assert r.status_code == 400 and "JSON object" in r.text
        r = c.post("/registries", content=b"x" * (2 << 20))
        assert r.status_code == 413


def httpx_client(api: InProcessApi) -> httpx.Client:
    return httpx.Client(base_url=api.url, transport=api.transport())
