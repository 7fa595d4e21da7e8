"""Outgoing webhooks through the management API (in-process): adding, changing and removing a
policy's webhooks, their validation, the write-only auth header, the delivery log's paging and
filters, and the CLI's ``seawall policy webhook …`` / ``policy deliveries``."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
from sqlalchemy import func, insert, select

from engine.notify.models import EVENT_TYPES, Delivery, Webhook
from seawall import cli, replication_cli
from tests.api.harness import ADMIN_PASSWORD, READER_PASSWORD, InProcessApi
from tests.api.helpers import created_id, make_policy, make_registry

D = Delivery.__table__  # type: ignore[attr-defined]
W = Webhook.__table__  # type: ignore[attr-defined]
SECRET = "Bearer very-secret-token"


def hooks_of(pid: int) -> str:
    return f"/replication/policies/{pid}/webhooks"


def setup(c: httpx.Client) -> int:
    return make_policy(c, "p", make_registry(c, "hub"))


def add_hook(c: httpx.Client, pid: int, **extra: Any) -> int:
    body = {"name": "ci", "address": "http://127.0.0.1:9/hook", **extra}
    return created_id(c.post(hooks_of(pid), json=body))


def test_add_get_list_update_delete(api: InProcessApi) -> None:
    with api.client() as c:
        pid = setup(c)
        r = c.post(
            hooks_of(pid),
            json={
                "name": "ci",
                "address": "https://hooks.example.com/seawall",
                "format": "CloudEvents",  # Harbor's spelling
                "auth_header": SECRET,
                "event_types": ["REPLICATION_FINISHED", "REPLICATION_FAILED"],
            },
        )
        wid = created_id(r)
        assert r.headers["location"] == f"/api/v2.0/replication/policies/{pid}/webhooks/{wid}"
        h = c.get(f"{hooks_of(pid)}/{wid}").json()
        assert h["name"] == "ci" and h["policy_id"] == pid
        assert h["address"] == "https://hooks.example.com/seawall"
        assert h["format"] == "cloudevents" and h["auth_header_set"] is True
        assert h["event_types"] == ["REPLICATION_FINISHED", "REPLICATION_FAILED"]
        assert h["enabled"] is True and h["skip_cert_verify"] is False
        assert h["creator"] == "admin" and h["creation_time"].endswith("Z")
        assert SECRET not in r.text + json.dumps(h)

        second = add_hook(c, pid, name="all", event_types=["REPLICATION"])
        listed = c.get(hooks_of(pid), params={"page_size": 1})
        assert listed.headers["x-total-count"] == "2" and 'rel="next"' in listed.headers["link"]
        assert [x["id"] for x in listed.json()] == [wid]
        assert c.get(f"{hooks_of(pid)}/{second}").json()["event_types"] == list(EVENT_TYPES)
        assert SECRET not in c.get(hooks_of(pid)).text

        # PUT changes what it carries; an absent auth_header keeps it, "" removes it
        assert c.put(f"{hooks_of(pid)}/{wid}", json={"enabled": False}).status_code == 200
        h = c.get(f"{hooks_of(pid)}/{wid}").json()
        assert h["enabled"] is False and h["auth_header_set"] is True and h["name"] == "ci"
        assert c.put(f"{hooks_of(pid)}/{wid}", json={"auth_header": ""}).status_code == 200
        assert c.get(f"{hooks_of(pid)}/{wid}").json()["auth_header_set"] is False
        r = c.put(f"{hooks_of(pid)}/{wid}", json={"name": "all"})
        assert r.status_code == 409 and r.json()["errors"][0]["code"] == "CONFLICT"

        assert c.delete(f"{hooks_of(pid)}/{wid}").status_code == 200
        assert c.get(f"{hooks_of(pid)}/{wid}").status_code == 404
        assert c.get(hooks_of(pid)).headers["x-total-count"] == "1"


@pytest.mark.parametrize(
    ("body", "words"),
    [
        ({"address": "http://127.0.0.1/x"}, "name is required"),
        ({"name": "x"}, "address is required"),
        ({"name": "x", "address": "ftp://host/x"}, "http:// or https://"),
        ({"name": "x", "address": "http:///nohost"}, "http:// or https://"),
        ({"name": "x", "address": "http://h:99999999/"}, "invalid port"),
        ({"name": "x", "address": "http://h/", "format": "xml"}, "format must be one of"),
        ({"name": "x", "address": "http://h/", "event_types": []}, "must not be empty"),
        ({"name": "x", "address": "http://h/", "event_types": ["PUSH"]}, "unknown event type"),
        ({"name": "x", "address": "http://h/", "event_types": "ALL"}, "must be a list"),
        ({"name": "x", "address": "http://h/", "auth_header": "a\r\nX: y"}, "one line"),
        ({"name": "x", "address": "http://h/", "enabled": "yes"}, "true or false"),
    ],
)
def test_validation(api: InProcessApi, body: dict[str, Any], words: str) -> None:
    with api.client() as c:
        pid = setup(c)
        r = c.post(hooks_of(pid), json=body)
    assert r.status_code == 400, r.text
    error = r.json()["errors"][0]
    assert error["code"] == "BAD_REQUEST" and words in error["message"]


def test_not_found_access_and_cascade(api: InProcessApi) -> None:
    with api.client() as c:
        pid = setup(c)
        wid = add_hook(c, pid)
        other = make_policy(c, "q", make_registry(c, "hub2"))
        assert c.post(hooks_of(999), json={"name": "a", "address": "http://h/"}).status_code == 404
        r = c.get(f"{hooks_of(other)}/{wid}")  # someone else's webhook
        assert r.status_code == 404 and "has no webhook" in r.text
        assert c.get(f"{hooks_of(pid)}/{wid}/deliveries/1").status_code == 404
        assert c.get(f"/replication/policies/{pid}/deliveries?webhook_id=x").status_code == 400
    with api.client("reader", READER_PASSWORD) as reader:
        # webhook addresses often carry a secret (a Slack URL, user:pass@): admins only
        assert reader.get(hooks_of(pid)).status_code == 403
        assert reader.get(f"/replication/policies/{pid}/deliveries").status_code == 403
        body = {"name": "b", "address": "http://h/"}
        assert reader.post(hooks_of(pid), json=body).status_code == 403
        assert reader.delete(f"{hooks_of(pid)}/{wid}").status_code == 403
    with api.client(None) as anon:
        assert anon.get(hooks_of(pid)).status_code == 401
    with api.client() as c:
        add_delivery(api, wid, pid, "REPLICATION_STARTED")
        assert c.delete(f"/replication/policies/{pid}").status_code == 200
        assert c.get(hooks_of(pid)).status_code == 404
    assert api.call(count_rows_of, api) == (0, 0)  # the webhook and its log went with the policy


async def count_rows_of(api: InProcessApi) -> tuple[int, int]:
    async with api.ctx.db.read() as c:
        hooks = (await c.execute(select(func.count()).select_from(W))).scalar_one()
        logs = (await c.execute(select(func.count()).select_from(D))).scalar_one()
    return int(hooks), int(logs)


def add_delivery(api: InProcessApi, wid: int, pid: int, event_type: str, **values: Any) -> None:
    async def go() -> None:
        async with api.ctx.db.write() as c:
            await c.execute(
                insert(D).values(
                    webhook_id=wid,
                    policy_id=pid,
                    execution_id=values.pop("execution_id", 1),
                    event_type=event_type,
                    event=event_type.lower(),
                    payload_json=json.dumps({"type": "REPLICATION"}),
                    **values,
                )
            )

    api.call(go)


def test_delivery_log_paging_filters_and_test_event(api: InProcessApi) -> None:
    with api.client() as c:
        pid = setup(c)
        wid = add_hook(c, pid, auth_header=SECRET)
        add_delivery(api, wid, pid, "REPLICATION_STARTED", status="Success", attempts=1)
        history = [{"time": "t", "http_status": 500, "error": "HTTP 500", "duration_ms": 3}]
        add_delivery(
            api,
            wid,
            pid,
            "REPLICATION_FAILED",
            execution_id=2,
            status="Failed",
            attempts=6,
            last_http_status=500,
            last_error="HTTP 500 Internal Server Error",
            history_json=json.dumps(history),
        )
        path = f"{hooks_of(pid)}/{wid}/deliveries"
        r = c.get(path)
        assert r.headers["x-total-count"] == "2"
        newest, oldest = r.json()
        assert newest["event_type"] == "REPLICATION_FAILED" and oldest["status"] == "Success"
        assert newest["attempts"] == 6 and newest["last_http_status"] == 500
        assert newest["attempt_log"] == history and newest["payload"] == {"type": "REPLICATION"}
        assert newest["next_attempt_time"] is None
        assert [d["id"] for d in c.get(path, params={"status": "Success"}).json()] == [oldest["id"]]
        assert len(c.get(path, params={"execution_id": 2}).json()) == 1
        assert c.get(path, params={"status": "Done"}).status_code == 400
        assert c.get(path, params={"event_type": "NOPE"}).status_code == 400
        assert c.get(path, params={"page_size": 1, "page": 2}).json()[0]["id"] == oldest["id"]

        # a test event is queued even for a disabled webhook, in the webhook's format
        c.put(f"{hooks_of(pid)}/{wid}", json={"enabled": False, "format": "cloudevents"})
        r = c.post(f"{hooks_of(pid)}/{wid}/test")
        did = created_id(r)
        d = c.get(r.headers["location"].removeprefix("/api/v2.0")).json()
        assert d["id"] == did and d["event_type"] == "TEST" and d["status"] == "Pending"
        assert d["payload"]["specversion"] == "1.0"
        assert d["payload"]["data"]["seawall"]["policy"] == {"id": pid, "name": "p"}
        everything = c.get(f"/replication/policies/{pid}/deliveries")
        assert everything.headers["x-total-count"] == "3"
        assert SECRET not in everything.text


def seawall(api: InProcessApi, *argv: str, password: str = ADMIN_PASSWORD) -> int:
    args = cli._parser().parse_args([*argv, "--url", api.url, "--password", password])
    return replication_cli.run(args, transport=api.transport())


def test_cli_webhook_commands(api: InProcessApi, capsys: pytest.CaptureFixture[str]) -> None:
    add = ("registry", "add", "hub", "--type", "docker-registry", "--no-ping")
    assert seawall(api, *add, "--registry-url", "https://hub.example.com") == 0
    assert seawall(api, "policy", "add", "pull", "--src-registry", "hub") == 0
    capsys.readouterr()
    hook = ("policy", "webhook", "add", "pull", "--address", "http://127.0.0.1:9/in")
    assert seawall(api, *hook, "--format", "cloudevents", "--auth-header", SECRET) == 0
    assert "added webhook 127.0.0.1 (id 1) to policy pull" in capsys.readouterr().out
    events = ("--event", "replication_failed", "--event", "ARTIFACT_FAILED")
    assert seawall(api, *hook, "--name", "alerts", *events) == 0
    assert seawall(api, *hook, "--name", "bad", "--event", "NOPE") == 1
    assert "unknown event type 'NOPE'" in capsys.readouterr().err
    assert seawall(api, "policy", "webhook", "list", "pull") == 0
    out = capsys.readouterr().out
    assert "127.0.0.1" in out and "cloudevents" in out and "set" in out and "all" in out
    assert "ARTIFACT_FAILED,REPLICATION_FAILED" in out and SECRET not in out

    add_delivery(
        api,
        1,
        1,
        "ARTIFACT_REPLICATED",
        status="Pending",
        attempts=2,
        last_http_status=503,
        last_error="HTTP 503 Service Unavailable",
    )
    assert seawall(api, "policy", "deliveries", "pull") == 0
    out = capsys.readouterr().out
    assert "ATTEMPTS" in out and "artifact_replicated" in out and "503" in out
    assert "Pending" in out and "next attempt" in out
    assert seawall(api, "policy", "deliveries", "pull", "--webhook", "alerts") == 0
    assert "artifact_replicated" not in capsys.readouterr().out
    assert seawall(api, "policy", "webhook", "test", "pull", "alerts") == 0
    assert "queued test delivery" in capsys.readouterr().out
    assert seawall(api, "policy", "webhook", "rm", "pull", "nope") == 1
    assert "has no webhook 'nope'" in capsys.readouterr().err
    assert seawall(api, "policy", "webhook", "rm", "pull", "1") == 0
    assert "removed webhook 127.0.0.1 (id 1)" in capsys.readouterr().out
