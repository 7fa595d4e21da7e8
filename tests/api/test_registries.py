"""Registry endpoints: Harbor's shapes, validation, secrets, health, paging."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from engine.state.models import RegistryEndpoint
from tests.api.harness import InProcessApi
from tests.api.helpers import created_id, make_policy, make_registry, registry_body

R = RegistryEndpoint.__table__  # type: ignore[attr-defined]


def stored_secret(api: InProcessApi, registry_id: int) -> str:
    async def go() -> str:
        async with api.ctx.db.read() as c:
            row = (await c.execute(select(R).where(R.c.id == registry_id))).mappings().one()
            return str(row["access_secret_encrypted"])

    return api.call(go)


def test_create_answers_201_with_location_and_get_has_harbor_fields(api: InProcessApi) -> None:
    with api.client() as c:
        r = c.post("/registries", json=registry_body("hub"))
        rid = created_id(r)
        assert r.headers["location"] == f"/api/v2.0/registries/{rid}"
        got = c.get(f"/registries/{rid}").json()
    assert got["id"] == rid and got["name"] == "hub" and got["type"] == "docker-registry"
    assert got["url"] == "https://hub.example.com" and got["description"] == "hub endpoint"
    assert got["credential"] == {"type": "basic", "access_key": "robot", "access_secret": "*****"}
    assert got["insecure"] is False and got["status"] == "unknown"
    assert got["creation_time"].endswith("Z") and got["update_time"].endswith("Z")


def test_secrets_are_sealed_at_rest_and_never_returned(api: InProcessApi) -> None:
    with api.client() as c:
        rid = make_registry(c, "sealed")
        bodies = [c.get(f"/registries/{rid}").text, c.get("/registries").text]
    assert all("hunter2" not in b for b in bodies)
    sealed = stored_secret(api, rid)
    assert sealed.startswith("v1:") and "hunter2" not in sealed
    assert api.ctx.secrets.decrypt(sealed) == "hunter2"


def test_no_credential_means_an_anonymous_basic_one(api: InProcessApi) -> None:
    with api.client() as c:
        rid = make_registry(c, "anon", credential=None)
        got = c.get(f"/registries/{rid}").json()
    assert got["credential"] == {"type": "basic", "access_key": "", "access_secret": ""}


def test_validation(api: InProcessApi) -> None:
    cases: list[tuple[dict[str, Any], str]] = [
        ({"name": ""}, "name is required"),
        ({"type": "nope"}, "unknown registry type"),
        ({"type": None}, "type is required"),
        ({"url": "ftp://x.example.com"}, "http:// or https://"),
        ({"url": "https://"}, "http:// or https://"),
        ({"credential": {"type": "kerberos"}}, "credential.type must be one of basic, oauth"),
        ({"insecure": "yes"}, "insecure must be true or false"),
        ({"ca_certificate": "not a cert"}, "ca_certificate"),
    ]
    with api.client() as c:
        for change, message in cases:
            r = c.post("/registries", json={**registry_body("bad"), **change})
            assert r.status_code == 400, (change, r.text)
            assert message in r.json()["errors"][0]["message"], (change, r.text)


def test_duplicate_names_conflict(api: InProcessApi) -> None:
    with api.client() as c:
        make_registry(c, "twice")
        r = c.post("/registries", json=registry_body("twice"))
        assert r.status_code == 409 and r.json()["errors"][0]["code"] == "CONFLICT"
        other = make_registry(c, "other")
        assert c.put(f"/registries/{other}", json={"name": "twice"}).status_code == 409


def test_put_takes_harbors_flat_nullable_body(api: InProcessApi) -> None:
    with api.client() as c:
        rid = make_registry(c, "edit")
        before = stored_secret(api, rid)
        r = c.put(f"/registries/{rid}", json={"description": "new", "access_secret": "*****"})
        assert r.status_code == 200
        got = c.get(f"/registries/{rid}").json()
        assert got["description"] == "new" and got["url"] == "https://edit.example.com"
        assert stored_secret(api, rid) == before  # the mask round-trips to "unchanged"
        c.put(f"/registries/{rid}", json={"access_key": "bob", "access_secret": "s3cret"})
        assert api.ctx.secrets.decrypt(stored_secret(api, rid)) == "s3cret"
        assert c.get(f"/registries/{rid}").json()["credential"]["access_key"] == "bob"
        assert c.put("/registries/999", json={"description": "x"}).status_code == 404


def test_ping_records_health_and_says_why(api: InProcessApi) -> None:
    with api.client() as c:
        rid = make_registry(c, "pingme")
        assert c.post("/registries/ping", json={"id": rid}).status_code == 200
        assert c.get(f"/registries/{rid}").json()["status"] == "healthy"
        assert api.fakes.pinged[-1]["access_secret"] == "hunter2"  # the checker gets it in clear
        api.fakes.unhealthy["https://pingme.example.com"] = "connection refused"
        r = c.post("/registries/ping", json={"id": rid})
        assert r.status_code == 400 and "connection refused" in r.text
        assert c.get(f"/registries/{rid}").json()["status"] == "unhealthy"
        # other settings are checked without touching the stored status
        r = c.post("/registries/ping", json={"id": rid, "url": "https://else.example.com"})
        assert r.status_code == 200
        assert c.get(f"/registries/{rid}").json()["status"] == "unhealthy"
        # a new endpoint, not stored
        r = c.post("/registries/ping", json={"type": "docker-registry", "url": "https://n.io"})
        assert r.status_code == 200
        assert c.post("/registries/ping", json={"url": "https://n.io"}).status_code == 400
        assert c.post("/registries/ping", json={"id": 999}).status_code == 404
        # a changed URL makes the recorded health unknown again
        r = c.put(
            f"/registries/{rid}",
            json={"url": "https://moved.example.com", "access_secret": "hunter3"},
        )
        assert r.status_code == 200, r.text
        assert c.get(f"/registries/{rid}").json()["status"] == "unknown"


def test_a_stored_secret_is_only_ever_sent_to_its_own_url(api: InProcessApi) -> None:
    """Issue 12's leak: ping or PUT with another URL must not carry the stored secret there."""
    with api.client() as c:
        rid = make_registry(c, "bound")
        r = c.post("/registries/ping", json={"id": rid, "url": "http://attacker.example"})
        assert r.status_code == 200
        assert api.fakes.pinged[-1]["url"] == "http://attacker.example"
        assert api.fakes.pinged[-1]["access_secret"] == ""  # not "hunter2"
        r = c.put(f"/registries/{rid}", json={"url": "http://attacker.example"})
        assert r.status_code == 400 and "access_secret again" in r.text
        assert c.get(f"/registries/{rid}").json()["url"] == "https://bound.example.com"
        r = c.put(
            f"/registries/{rid}", json={"url": "https://b2.example.com", "access_secret": "n"}
        )
        assert r.status_code == 200
        assert api.ctx.secrets.decrypt(stored_secret(api, rid)) == "n"
        # the same URL again with the mask keeps the secret
        r = c.put(f"/registries/{rid}", json={"url": "https://b2.example.com"})
        assert r.status_code == 200


def test_urls_and_options_are_bounded_and_checked(api: InProcessApi) -> None:
    with api.client() as c:
        base = {"name": "u", "type": "docker-registry"}
        for url in (
            "http://h:99999",
            "http://h:0",
            "http://a b",
            "http://user:pw@h",
            "ftp://h",
            "file://host/x",
            "file:relative",
            "http://[::1/",
            "http://h/" + "x" * 3000,
        ):
            r = c.post("/registries", json={**base, "url": url})
            assert r.status_code == 400, (url, r.text)
            assert r.json()["errors"][0]["code"] == "BAD_REQUEST"
        for options in ({"Bad": "x"}, {"a": ["x"]}, {"a": "x" * 5000}, "nope"):
            r = c.post("/registries", json={**base, "url": "http://h", "options": options})
            assert r.status_code == 400, (options, r.text)
        r = c.post("/registries", json={**base, "url": "http://h", "options": {"region": "x"}})
        assert r.status_code == 201, r.text
        rid = int(r.headers["Location"].rsplit("/", 1)[1])
        assert c.get(f"/registries/{rid}").json()["options"] == {"region": "x"}


def test_delete_is_refused_while_a_policy_uses_the_endpoint(api: InProcessApi) -> None:
    with api.client() as c:
        rid = make_registry(c, "used")
        pid = make_policy(c, "uses-it", rid)
        r = c.delete(f"/registries/{rid}")
        assert r.status_code == 412 and "uses-it" in r.text
        assert r.json()["errors"][0]["code"] == "PRECONDITION"
        assert c.delete(f"/replication/policies/{pid}").status_code == 200
        assert c.delete(f"/registries/{rid}").status_code == 200
        r = c.get(f"/registries/{rid}")
        assert r.status_code == 404 and r.json()["errors"][0]["code"] == "NOT_FOUND"


def test_info_and_adapters(api: InProcessApi) -> None:
    with api.client() as c:
        rid = make_registry(c, "info")
        info = c.get(f"/registries/{rid}/info").json()
        assert info["type"] == "docker-registry"
        assert {"supported_resource_filters", "supported_triggers"} <= set(info)
        assert c.get("/replication/adapters").json() == ["docker-registry", "seawall"]
        assert set(c.get("/replication/adapterinfos").json()) == {"docker-registry", "seawall"}
        assert c.get("/registries/999/info").status_code == 404


def test_paging_headers_query_and_sort(api: InProcessApi) -> None:
    with api.client() as c:
        for i in range(12):
            make_registry(c, f"reg-{i:02d}", type="seawall" if i % 3 == 0 else "docker-registry")
        r = c.get("/registries", params={"page_size": 5})
        assert r.headers["x-total-count"] == "12" and len(r.json()) == 5
        assert r.headers["link"] == '</api/v2.0/registries?page=2&page_size=5>; rel="next"'
        r = c.get("/registries", params={"page": 2, "page_size": 5})
        assert 'page=1&page_size=5>; rel="prev"' in r.headers["link"]
        assert 'page=3&page_size=5>; rel="next"' in r.headers["link"]
        r = c.get("/registries", params={"page": 3, "page_size": 5})
        assert len(r.json()) == 2 and 'rel="next"' not in r.headers["link"]
        names = [x["name"] for x in c.get("/registries", params={"q": "name=~reg-1"}).json()]
        assert names == ["reg-10", "reg-11"]
        r = c.get("/registries", params={"q": "name=reg-03"})
        assert [x["name"] for x in r.json()] == ["reg-03"] and r.headers["x-total-count"] == "1"
        r = c.get("/registries", params={"q": "type=seawall,name=~reg", "sort": "-name"})
        assert [x["name"] for x in r.json()] == ["reg-09", "reg-06", "reg-03", "reg-00"]
        r = c.get("/registries", params={"q": "name={reg-01 reg-02}"})
        assert r.headers["x-total-count"] == "2"
        # the query keeps its other parameters in the links
        r = c.get("/registries", params={"q": "name=~reg", "page_size": 5})
        assert "q=name%3D~reg" in r.headers["link"]
        for bad in ({"page_size": 101}, {"page": 0}, {"q": "secret=x"}, {"sort": "password"}):
            assert c.get("/registries", params=bad).status_code == 400, bad
