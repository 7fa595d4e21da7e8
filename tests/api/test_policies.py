"""Replication policies: Harbor's body, our extensions, validation and the delete guard."""

from __future__ import annotations

import importlib.util
from typing import Any

import pytest

from tests.api.harness import InProcessApi
from tests.api.helpers import created_id, make_policy, make_registry

POLICIES = "/replication/policies"


def body(name: str, src: int | None, **extra: Any) -> dict[str, Any]:
    out: dict[str, Any] = {"name": name, "src_registry": {"id": src} if src else None}
    out.update(extra)
    return out


def test_create_and_read_back_in_harbors_shape(api: InProcessApi) -> None:
    with api.client() as c:
        rid = make_registry(c, "hub")
        r = c.post(
            POLICIES,
            json=body(
                "pull-library",
                rid,
                description="mirror library",
                dest_registry=None,
                dest_namespace="mirror",
                filters=[
                    {"type": "name", "value": "library/**"},
                    {"type": "tag", "value": ">=1.2 <2", "syntax": "semver"},
                    {"type": "tag", "value": ".*-rc", "syntax": "regex", "decoration": "excludes"},
                    {"type": "label", "value": ["prod"]},
                ],
                trigger={"type": "scheduled", "trigger_settings": {"cron": "0 0 2 * * *"}},
                override=False,
            ),
        )
        pid = created_id(r)
        assert r.headers["location"] == f"/api/v2.0/replication/policies/{pid}"
        p = c.get(f"{POLICIES}/{pid}").json()
    assert p["name"] == "pull-library" and p["description"] == "mirror library"
    assert p["src_registry"]["id"] == rid and p["src_registry"]["name"] == "hub"
    assert p["src_registry"]["credential"]["access_secret"] == "*****"
    assert p["dest_registry"]["id"] == 0 and p["dest_registry"]["name"] == "Local"
    assert p["dest_namespace"] == "mirror"
    assert p["dest_namespace_replace_count"] == -1  # omitted: Harbor's API default
    assert p["filters"][0] == {
        "type": "name",
        "value": "library/**",
        "decoration": "matches",
        "syntax": "glob",
    }
    assert p["filters"][2]["decoration"] == "excludes" and p["filters"][2]["syntax"] == "regex"
    assert p["trigger"] == {
        "type": "scheduled",
        "trigger_settings": {"cron": "0 0 2 * * *", "timezone": "UTC"},
    }
    assert p["deletion"] is False and p["replicate_deletion"] is False
    assert p["override"] is False and p["enabled"] is True
    assert p["speed"] == 0 and p["speed_bytes_per_second"] == -1
    assert p["copy_by_chunk"] is False and p["single_active_replication"] is False
    assert p["max_deletions"] == 100 and p["max_deletion_fraction"] == 0.25
    assert p["creation_time"].endswith("Z")


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ({"deletion": True}, True),
        ({"replicate_deletion": True}, True),  # Harbor ignores this one; we do not
        ({"deletion": False, "replicate_deletion": True}, True),
        ({}, False),
    ],
)
def test_deletion_and_replicate_deletion_are_one_setting(
    api: InProcessApi, given: dict[str, bool], expected: bool
) -> None:
    with api.client() as c:
        rid = make_registry(c, "hub")
        pid = created_id(c.post(POLICIES, json=body("p", rid, **given)))
        p = c.get(f"{POLICIES}/{pid}").json()
        assert p["deletion"] is expected and p["replicate_deletion"] is expected
        c.put(f"{POLICIES}/{pid}", json={"replicate_deletion": False})
        p = c.get(f"{POLICIES}/{pid}").json()
        assert p["deletion"] is False and p["replicate_deletion"] is False


def test_speed_is_kilobits_per_second_and_bytes_per_second_is_exact(api: InProcessApi) -> None:
    with api.client() as c:
        rid = make_registry(c, "hub")
        pid = created_id(c.post(POLICIES, json=body("slow", rid, speed=1000)))
        p = c.get(f"{POLICIES}/{pid}").json()
        assert p["speed"] == 1000 and p["speed_bytes_per_second"] == 125_000
        c.put(f"{POLICIES}/{pid}", json={"speed_bytes_per_second": 1000, "speed": 5})
        p = c.get(f"{POLICIES}/{pid}").json()
        assert p["speed_bytes_per_second"] == 1000 and p["speed"] == 8  # rounded up
        c.put(f"{POLICIES}/{pid}", json={"speed": 0})
        assert c.get(f"{POLICIES}/{pid}").json()["speed_bytes_per_second"] == -1


def test_local_registry_forms_and_remote_to_remote(api: InProcessApi) -> None:
    with api.client() as c:
        a, b = make_registry(c, "a"), make_registry(c, "b")
        pid = created_id(c.post(POLICIES, json=body("push", None, dest_registry={"id": a})))
        p = c.get(f"{POLICIES}/{pid}").json()
        assert p["src_registry"]["id"] == 0 and p["dest_registry"]["id"] == a
        pid = created_id(
            c.post(POLICIES, json=body("zero", 0, src_registry={"id": 0}, dest_registry={"id": a}))
        )
        assert c.get(f"{POLICIES}/{pid}").json()["src_registry"]["name"] == "Local"
        pid = created_id(c.post(POLICIES, json=body("relay", a, dest_registry={"id": b})))
        p = c.get(f"{POLICIES}/{pid}").json()
        assert (p["src_registry"]["id"], p["dest_registry"]["id"]) == (a, b)


def test_validation_errors(api: InProcessApi) -> None:
    with api.client() as c:
        rid = make_registry(c, "hub")
        cases: list[tuple[dict[str, Any], str]] = [
            ({"name": ""}, "name is required"),
            ({"src_registry": {"id": 999}}, "registry 999 does not exist"),
            ({"src_registry": None, "dest_registry": None}, "both the local registry"),
            ({"filters": [{"type": "colour", "value": "x"}]}, "filters[0].type"),
            ({"filters": [{"type": "name", "value": "x", "decoration": "maybe"}]}, "decoration"),
            ({"filters": [{"type": "name", "value": "x", "syntax": "sql"}]}, "filters[0].syntax"),
            ({"filters": [{"type": "name", "value": "x", "syntax": "semver"}]}, "tags only"),
            ({"filters": [{"type": "label", "value": 3}]}, "list of label names"),
            ({"filters": "name=x"}, "filters must be a list"),
            ({"trigger": {"type": "scheduled"}}, "needs trigger.trigger_settings.cron"),
            ({"trigger": {"type": "hourly"}}, "trigger.type must be one of"),
            (
                {"trigger": {"type": "scheduled", "trigger_settings": {"cron": "every day"}}},
                "expected 5 fields",
            ),
            (
                {"trigger": {"type": "manual", "trigger_settings": {"timezone": "Mars/Base"}}},
                "not an IANA time zone",
            ),
            (
                {"trigger": {"type": "event_based"}, "single_active_replication": True},
                "single_active_replication cannot be used with an event_based trigger",
            ),
            ({"dest_namespace": "Bad Name"}, "dest_namespace"),
            ({"dest_namespace_replace_count": -2}, "at least -1"),
            ({"max_deletion_fraction": 1.5}, "between 0.0 and 1.0"),
            ({"enabled": "yes"}, "enabled must be true or false"),
        ]
        for change, message in cases:
            r = c.post(POLICIES, json={**body("bad", rid), **change})
            assert r.status_code == 400, (change, r.text)
            assert message in r.json()["errors"][0]["message"], (change, r.text)


def test_bad_regex_filters_are_refused(api: InProcessApi) -> None:
    with api.client() as c:
        rid = make_registry(c, "hub")
        bad = {"type": "tag", "value": "([unclosed", "syntax": "regex"}
        r = c.post(POLICIES, json=body("bad", rid, filters=[bad]))
        assert r.status_code == 400 and "filters[0]" in r.text


@pytest.mark.skipif(
    importlib.util.find_spec("engine.filters") is None, reason="engine.filters not written yet"
)
def test_filters_are_checked_by_the_engine(api: InProcessApi) -> None:
    with api.client() as c:
        rid = make_registry(c, "hub")
        for bad in (
            {"type": "tag", "value": "([unclosed", "syntax": "regex"},
            {"type": "tag", "value": ">=banana", "syntax": "semver"},
        ):
            r = c.post(POLICIES, json=body("bad", rid, filters=[bad]))
            assert r.status_code == 400, (bad, r.text)
            assert "filters[0]" in r.text


def test_duplicate_names_conflict(api: InProcessApi) -> None:
    with api.client() as c:
        rid = make_registry(c, "hub")
        make_policy(c, "same", rid)
        r = c.post(POLICIES, json=body("same", rid))
        assert r.status_code == 409 and r.json()["errors"][0]["code"] == "CONFLICT"
        other = make_policy(c, "other", rid)
        assert c.put(f"{POLICIES}/{other}", json={"name": "same"}).status_code == 409
        assert c.put(f"{POLICIES}/{other}", json={"name": "other"}).status_code == 200


def test_put_changes_only_what_it_is_given(api: InProcessApi) -> None:
    with api.client() as c:
        rid = make_registry(c, "hub")
        pid = make_policy(c, "keep", rid, dest_namespace="ns", dest_namespace_replace_count=1)
        assert c.put(f"{POLICIES}/{pid}", json={"description": "changed"}).status_code == 200
        p = c.get(f"{POLICIES}/{pid}").json()
    assert p["description"] == "changed" and p["enabled"] is True
    assert p["dest_namespace"] == "ns" and p["dest_namespace_replace_count"] == 1
    assert p["filters"][0]["value"] == "library/**"


def test_list_query_and_paging(api: InProcessApi) -> None:
    with api.client() as c:
        rid = make_registry(c, "hub")
        for i in range(3):
            make_policy(c, f"pol-{i}", rid)
        make_policy(c, "other", rid, enabled=False)
        r = c.get(POLICIES, params={"q": "name=~pol", "page_size": 2})
        assert r.headers["x-total-count"] == "3" and 'rel="next"' in r.headers["link"]
        assert [p["name"] for p in r.json()] == ["pol-0", "pol-1"]
        assert [p["name"] for p in c.get(POLICIES, params={"name": "oth"}).json()] == ["other"]
        r = c.get(POLICIES, params={"q": "enabled=false"})
        assert [p["name"] for p in r.json()] == ["other"]


def test_delete_refused_while_a_run_is_active(api: InProcessApi) -> None:
    with api.client() as c:
        rid = make_registry(c, "hub")
        pid = make_policy(c, "busy", rid)
        eid = created_id(c.post("/replication/executions", json={"policy_id": pid}))
        r = c.delete(f"{POLICIES}/{pid}")
        assert r.status_code == 412 and r.json()["errors"][0]["code"] == "PRECONDITION"
        assert f"active execution ({eid})" in r.text
        api.add_tasks(eid, [{"status": "Succeed", "outcome": "copied"}])
        api.set_execution(eid, status="Succeed")
        assert c.delete(f"{POLICIES}/{pid}").status_code == 200
        assert c.get(f"{POLICIES}/{pid}").status_code == 404
        assert c.get(f"/replication/executions/{eid}").status_code == 404  # went with it
        assert c.delete(f"{POLICIES}/{pid}").status_code == 404
