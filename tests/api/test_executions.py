"""Executions and tasks: start, status roll-up shown live, stop, tasks, logs."""

from __future__ import annotations

import httpx

from engine.state.runs import SKIPPED_TEXT
from tests.api.harness import InProcessApi
from tests.api.helpers import created_id, make_policy, make_registry

EXECUTIONS = "/replication/executions"


def setup_policy(c: httpx.Client, **extra: object) -> int:
    return make_policy(c, "p", make_registry(c, "hub"), **extra)


def test_start_creates_an_execution_and_wakes_the_service(api: InProcessApi) -> None:
    with api.client() as c:
        pid = setup_policy(c)
        before = api.fakes.wakes  # (creating a policy wakes the scheduler too)
        r = c.post(EXECUTIONS, json={"policy_id": pid, "dry_run": True})
        eid = created_id(r)
        assert r.headers["location"] == f"/api/v2.0/replication/executions/{eid}"
        assert api.fakes.wakes == before + 1
        e = c.get(f"{EXECUTIONS}/{eid}").json()
    assert e["id"] == eid and e["policy_id"] == pid and e["trigger"] == "manual"
    assert e["status"] == "InProgress"  # Pending, as Harbor reports it
    assert e["dry_run"] is True and e["end_time"] is None and e["start_time"].endswith("Z")
    for key in ("total", "failed", "succeed", "in_progress", "stopped", "skipped", "bytes_copied"):
        assert e[key] == 0


def test_start_errors(api: InProcessApi) -> None:
    with api.client() as c:
        assert c.post(EXECUTIONS, json={}).status_code == 400
        assert c.post(EXECUTIONS, json={"policy_id": 999}).status_code == 404
        pid = setup_policy(c, enabled=False)
        before = api.fakes.wakes
        r = c.post(EXECUTIONS, json={"policy_id": pid})
        assert r.status_code == 412 and "disabled" in r.text
        r = c.post(EXECUTIONS, params={"trigger": "whenever"}, json={"policy_id": pid})
        assert r.status_code == 400
    assert api.fakes.wakes == before


def test_single_active_replication_records_a_skipped_run(api: InProcessApi) -> None:
    with api.client() as c:
        pid = setup_policy(c, single_active_replication=True)
        before = api.fakes.wakes
        first = created_id(c.post(EXECUTIONS, json={"policy_id": pid}))
        second = created_id(c.post(EXECUTIONS, json={"policy_id": pid}))
        e = c.get(f"{EXECUTIONS}/{second}").json()
        assert e["status"] == "Failed" and e["status_text"] == SKIPPED_TEXT
        assert e["end_time"] is not None
        assert api.fakes.wakes == before + 1
        api.set_execution(first, status="Succeed")
        third = created_id(c.post(EXECUTIONS, json={"policy_id": pid}))
        assert c.get(f"{EXECUTIONS}/{third}").json()["status"] == "InProgress"


def test_counts_of_an_active_run_are_live(api: InProcessApi) -> None:
    with api.client() as c:
        eid = created_id(c.post(EXECUTIONS, json={"policy_id": setup_policy(c)}))
        api.set_execution(eid, status="InProgress", lease_owner="node-1")
        api.add_tasks(
            eid,
            [
                {"status": "Succeed", "outcome": "copied", "bytes_copied": 1000},
                {"status": "Succeed", "outcome": "skipped-identical"},
                {"status": "Failed", "outcome": "failed", "reason": "boom"},
                {"status": "InProgress"},
                {"status": "Pending"},
            ],
        )
        e = c.get(f"{EXECUTIONS}/{eid}").json()
    assert (e["total"], e["succeed"], e["failed"], e["in_progress"]) == (5, 2, 1, 2)
    assert (e["skipped"], e["bytes_copied"], e["stopped"]) == (1, 1000, 0)


def test_list_filters_and_pages(api: InProcessApi) -> None:
    with api.client() as c:
        pid = setup_policy(c)
        other = make_policy(c, "other", make_registry(c, "hub2"))
        ids = [created_id(c.post(EXECUTIONS, json={"policy_id": pid})) for _ in range(3)]
        created_id(c.post(EXECUTIONS, params={"trigger": "scheduled"}, json={"policy_id": other}))
        api.set_execution(ids[0], status="Succeed")
        r = c.get(EXECUTIONS, params={"policy_id": pid, "page_size": 2})
        assert r.headers["x-total-count"] == "3" and 'rel="next"' in r.headers["link"]
        assert [e["id"] for e in r.json()] == [ids[2], ids[1]]  # newest first
        r = c.get(EXECUTIONS, params={"policy_id": pid, "status": "InProgress"})
        assert {e["id"] for e in r.json()} == {ids[1], ids[2]}
        r = c.get(EXECUTIONS, params={"trigger": "scheduled"})
        assert [e["policy_id"] for e in r.json()] == [other]
        assert c.get(EXECUTIONS, params={"status": "Sleeping"}).status_code == 400


def test_stop(api: InProcessApi) -> None:
    with api.client() as c:
        pid = setup_policy(c)
        waiting = created_id(c.post(EXECUTIONS, json={"policy_id": pid}))
        assert c.put(f"{EXECUTIONS}/{waiting}").status_code == 200
        e = c.get(f"{EXECUTIONS}/{waiting}").json()
        assert e["status"] == "Stopped" and e["end_time"] is not None  # nobody held it
        running = created_id(c.post(EXECUTIONS, json={"policy_id": pid}))
        api.set_execution(running, status="InProgress", lease_owner="node-1")
        assert c.put(f"{EXECUTIONS}/{running}").status_code == 200
        assert (
            c.get(f"{EXECUTIONS}/{running}").json()["status"] == "InProgress"
        )  # its node stops it
        assert c.put(f"{EXECUTIONS}/{waiting}").status_code == 200  # finished: nothing to do
        assert c.put(f"{EXECUTIONS}/999").status_code == 404


def test_tasks_and_logs(api: InProcessApi) -> None:
    with api.client() as c:
        eid = created_id(c.post(EXECUTIONS, json={"policy_id": setup_policy(c)}))
        api.add_tasks(
            eid,
            [
                {
                    "status": "Succeed",
                    "operation": "copy",
                    "resource_type": "artifact",
                    "src_resource": "library/nginx:[1.27]",
                    "dst_resource": "mirror/nginx:[1.27]",
                    "digest": "sha256:" + "a" * 64,
                    "outcome": "would-copy",
                    "reason": "missing at destination",
                    "log": "line one\nline two",
                },
                {"status": "Failed", "operation": "deletion", "outcome": "failed", "reason": "x"},
            ],
        )
        r = c.get(f"{EXECUTIONS}/{eid}/tasks")
        assert r.headers["x-total-count"] == "2"
        first, second = r.json()
        assert first["execution_id"] == eid and first["job_id"] == str(first["id"])
        assert first["operation"] == "copy" and first["resource_type"] == "artifact"
        assert first["src_resource"] == "library/nginx:[1.27]"
        assert first["outcome"] == "would-copy" and first["digest"].startswith("sha256:")
        assert first["reason"] == "missing at destination" and first["end_time"] is None
        failed = c.get(f"{EXECUTIONS}/{eid}/tasks", params={"status": "Failed"}).json()
        assert [t["id"] for t in failed] == [second["id"]]
        log = c.get(f"{EXECUTIONS}/{eid}/tasks/{first['id']}/log")
        assert log.status_code == 200 and log.text == "line one\nline two"
        assert log.headers["content-type"].startswith("text/plain")
        other = created_id(c.post(EXECUTIONS, json={"policy_id": 1}))
        assert c.get(f"{EXECUTIONS}/{other}/tasks/{first['id']}/log").status_code == 404
        assert c.get(f"{EXECUTIONS}/999/tasks").status_code == 404
