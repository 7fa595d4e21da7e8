"""``/api/v2.0/regions`` and ``/api/v2.0/dr/check``: shapes, validation (4xx with the error
body, never a 5xx), access, and what a non-admin sees of a check."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from engine.regions.store import RegionStore
from registry.auth.passwords import hash_password
from registry.meta.accounts import GrantRow
from tests.api.harness import InProcessApi
from tests.api.helpers import created_id, make_registry


def error(r: httpx.Response, status: int) -> str:
    assert r.status_code == status, (r.status_code, r.text)
    errors = r.json()["errors"]
    assert len(errors) == 1 and set(errors[0]) == {"code", "message"}
    return str(errors[0]["message"])


def test_create_list_get_delete(regions_api: InProcessApi) -> None:
    with regions_api.client() as c:
        rid = make_registry(c, "eu-endpoint")
        r = c.post(
            "/regions",
            json={"name": "eu-west-1", "registry": {"id": rid}, "repositories": ["lib/**"]},
        )
        new_id = created_id(r)
        assert r.headers["location"] == f"/api/v2.0/regions/{new_id}"
        listed = c.get("/regions")
        assert listed.headers["X-Total-Count"] == "2"
        home, eu = listed.json()
        assert (home["name"], home["self"], home["id"]) == ("home", True, 0)
        assert home["registry"]["type"] == "seawall" and home["status"] is None
        assert (eu["name"], eu["self"], eu["id"]) == ("eu-west-1", False, new_id)
        assert eu["registry"] == {
            "id": rid,
            "name": "eu-endpoint",
            "type": "docker-registry",
            "url": "https://eu-endpoint.example.com",
        }
        assert eu["repositories"] == ["lib/**"] and eu["creation_time"].endswith("Z")
        assert c.get(f"/regions/{new_id}").json() == c.get("/regions/eu-west-1").json()
        assert c.get("/regions/home").json()["self"] is True
        paged = c.get("/regions", params={"page": 2, "page_size": 1})
        assert [x["name"] for x in paged.json()] == ["eu-west-1"]
        assert 'rel="prev"' in paged.headers["Link"]
        # an endpoint that is a region cannot be deleted from under it
        assert "remove the region first" in error(c.delete(f"/registries/{rid}"), 412)
        assert c.delete("/regions/eu-west-1").status_code == 200
        assert "does not exist" in error(c.get("/regions/eu-west-1"), 404)
        assert "does not exist" in error(c.delete(f"/regions/{new_id}"), 404)
        assert "own region" in error(c.delete("/regions/home"), 412)
        assert c.delete(f"/registries/{rid}").status_code == 200


@pytest.mark.parametrize(
    ("body", "status", "words"),
    [
        ({"registry": {"id": 1}}, 400, "name is required"),
        ({"name": "EU", "registry": {"id": 1}}, 400, "region name 'EU' is not valid"),
        ({"name": "eu west", "registry": {"id": 1}}, 400, "is not valid"),
        ({"name": "a" * 64, "registry": {"id": 1}}, 400, "is not valid"),
        ({"name": "-eu", "registry": {"id": 1}}, 400, "is not valid"),
        ({"name": "42", "registry": {"id": 1}}, 400, "all digits"),
        ({"name": 7, "registry": {"id": 1}}, 400, "name must be a string"),
        ({"name": "home", "registry": {"id": 1}}, 409, "own region name"),
        ({"name": "eu"}, 400, "registry is required"),
        ({"name": "eu", "registry": 1}, 400, "registry must be an object"),
        ({"name": "eu", "registry": {"id": 0}}, 400, "registry 0 is this Seawall"),
        ({"name": "eu", "registry": {"id": 999}}, 400, "registry 999 does not exist"),
        ({"name": "eu", "registry": {"id": -1}}, 400, "at least 0"),
        ({"name": "eu", "registry": {"id": "1"}}, 400, "must be an integer"),
        ({"name": "eu", "registry": {"id": 1}, "repositories": "lib/**"}, 400, "must be a list"),
        ({"name": "eu", "registry": {"id": 1}, "repositories": [3]}, 400, "repositories:"),
        ({"name": "eu", "registry": {"id": 1}, "repositories": [""]}, 400, "repositories:"),
        ({"name": "eu", "registry": {"id": 1}, "repositories": ["a"] * 33}, 400, "at most 32"),
        ({"name": "eu", "registry": {"id": 1}, "repositories": ["lib/{a"]}, 400, "lib/{a"),
        ({"name": "eu", "registry": {"id": 1}, "description": "x" * 2000}, 400, "longer than"),
    ],
)
def test_create_validation(
    regions_api: InProcessApi, body: dict[str, Any], status: int, words: str
) -> None:
    with regions_api.client() as c:
        make_registry(c, "eu-endpoint")  # id 1
        assert words in error(c.post("/regions", json=body), status)
        assert len(c.get("/regions").json()) == 1  # nothing was stored


def test_conflicts_and_bad_bodies(regions_api: InProcessApi) -> None:
    with regions_api.client() as c:
        one, two = make_registry(c, "one"), make_registry(c, "two")
        created_id(c.post("/regions", json={"name": "eu", "registry": {"id": one}}))
        dup = c.post("/regions", json={"name": "eu", "registry": {"id": two}})
        assert "already exists" in error(dup, 409)
        same = c.post("/regions", json={"name": "us", "registry": {"id": one}})
        assert "already region 'eu'" in error(same, 409)
        assert "JSON" in error(c.post("/regions", content=b"{nope"), 400)
        assert error(c.post("/regions", content=b"[1]"), 400)
        assert error(c.get("/regions/" + "9" * 30), 404)
        assert error(c.put("/regions/eu", json={}), 405)


def test_access(regions_api: InProcessApi) -> None:
    with regions_api.client() as admin:
        rid = make_registry(admin, "eu-endpoint")
    with regions_api.client("reader", "reader-secret-1") as reader:
        assert reader.get("/regions").status_code == 200
        assert reader.get("/dr/check").status_code == 200
        body = {"name": "eu", "registry": {"id": rid}}
        assert "not an administrator" in error(reader.post("/regions", json=body), 403)
        assert error(reader.post("/dr/check", json={}), 403)
        assert error(reader.delete("/regions/eu"), 403)
    with regions_api.client(None) as anonymous:
        assert error(anonymous.get("/regions"), 401)


def test_check_request_validation(regions_api: InProcessApi) -> None:
    with regions_api.client() as c:
        for body, words in (
            ({"regions": ["nope"]}, "no region named 'nope'"),
            ({"regions": "home"}, "must be a list"),
            ({"regions": []}, "name 1 to"),
            ({"regions": [1]}, "a list of region names"),
            ({"regions": ["x" * 64]}, "a list of region names"),
        ):
            assert words in error(c.post("/dr/check", json=body), 400)
        latest = c.get("/dr/check").json()
        assert latest["regions"] == [] and latest["unchecked"] == ["home"]
        assert latest["ok"] is False


def test_a_reader_sees_only_the_entries_it_may_pull(regions_api: InProcessApi) -> None:
    async def setup() -> None:
        ctx = regions_api.ctx
        grant = GrantRow("team/*", frozenset({"pull"}))
        await ctx.registry_ctx.accounts.create("teammate", "user", hash_password("pw-1"), [grant])
        report = {
            "name": "home",
            "healthy": True,
            "consistent": False,
            "missing": ["team/app:1", "secret/app:1"],
            "differs": ["secret/db:2"],
            "extra": [],
            "consistency": {"checked": True, "missing_count": 2, "differs_count": 1},
        }
        async with ctx.db.write() as c:
            await RegionStore(ctx.db).save(
                c,
                "home",
                healthy=True,
                consistent=False,
                lag_seconds=0.0,
                report=report,
                checked_at=datetime(2026, 1, 1, tzinfo=UTC),
            )

    regions_api.call(setup)
    with regions_api.client("teammate", "pw-1") as c:
        (seen,) = c.get("/dr/check").json()["regions"]
    assert (seen["missing"], seen["differs"]) == (["team/app:1"], [])
    assert (seen["consistency"]["missing_count"], seen["consistency"]["differs_count"]) == (1, 0)
    with regions_api.client() as c:
        (whole,) = c.get("/dr/check").json()["regions"]
        assert whole["missing"] == ["team/app:1", "secret/app:1"]
        listed = c.get("/regions").json()[0]["status"]
    assert listed == {
        "healthy": True,
        "consistent": False,
        "lag_seconds": 0.0,
        "checked_at": "2026-01-01T00:00:00.000Z",
    }
    assert json.dumps(listed)  # plain JSON
