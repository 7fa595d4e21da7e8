"""Bad input to the management API is a 400 (or 404) in Harbor's error body, never a 500:
ids and integers beyond what the database holds, numbers that are not ASCII digits, JSON that is
too deep or holds what cannot be stored, cron expressions and patterns that cannot run."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.api.harness import InProcessApi
from tests.api.helpers import make_policy, make_registry

HUGE = "9223372036854775808"  # 2**63


def _error(r: httpx.Response, status: int, *words: str) -> None:
    assert r.status_code == status, (r.status_code, r.text)
    errors = r.json()["errors"]
    assert errors and set(errors[0]) == {"code", "message"}
    for word in words:
        assert word in errors[0]["message"], errors[0]["message"]


def test_ids_beyond_the_database_are_not_found(api: InProcessApi) -> None:
    with api.client(user=None) as anon:
        _error(anon.post(f"/registries/{HUGE}/webhook", json={}), 404, "ids are at most")
    with api.client() as c:
        for path in (
            f"/registries/{HUGE}",
            f"/replication/policies/{HUGE}",
            "/registries/99999999999",
        ):
            _error(c.get(path), 404)
        _error(c.get(f"/replication/executions/{HUGE}/tasks/{HUGE}/log"), 404)
        _error(c.put(f"/replication/executions/{HUGE}"), 404)
        _error(c.post("/replication/executions", json={"policy_id": 2**63}), 400, "64 bits")
        _error(c.post("/replication/executions", json={"policy_id": 2**40}), 400, "at most")
        _error(c.post("/registries/ping", json={"id": 2**33}), 400, "at most")


@pytest.mark.parametrize(
    "query",
    [
        {"page": "²"},
        {"page": HUGE},
        {"page_size": "1_0"},
        {"policy_id": "²"},
        {"policy_id": HUGE},
        {"q": f"id={HUGE}"},
        {"q": "id=[1~99999999999]"},
        {"q": "name=\x00"},
        {"q": "x" * 5000},
        {"q": ",".join(["name=a"] * 50)},
    ],
)
def test_bad_query_values_are_400(api: InProcessApi, query: dict[str, str]) -> None:
    with api.client() as c:
        path = "/replication/executions" if "policy_id" in query else "/replication/policies"
        _error(c.get(path, params=query), 400)


@pytest.mark.parametrize(
    "body",
    [
        b"[" * 100_000 + b"]" * 100_000,
        b'{"a":' * 40 + b"1" + b"}" * 40,
        b'{"name": "x", "n": NaN}',
        b'{"name": "x", "n": Infinity}',
        b'{"name": "a\\u0000b"}',
        b'{"name": "\\ud800"}',
        b'{"name": 1' + b"0" * 30 + b"}",
        b'{"name": "' + b"x" * 300 + b'"}',
        b"\xff\xfe",
        b'"just a string"',
    ],
)
def test_bad_json_is_400(api: InProcessApi, body: bytes) -> None:
    with api.client() as c:
        for path in ("/registries", "/replication/policies"):
            _error(c.post(path, content=body, headers={"content-type": "application/json"}), 400)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("speed_bytes_per_second", 2**64),
        ("max_deletions", 2**40),
        ("dest_namespace_replace_count", 2**40),
        ("filters", [{"type": "tag", "value": "a{1,99999999999}", "syntax": "regex"}]),
        ("filters", [{"type": "tag", "value": r"(a)\1", "syntax": "regex"}]),
        ("filters", [{"type": "tag", "value": "x" * 5000}]),
        ("filters", [{"type": "tag", "value": "v*"}] * 40),
        ("filters", [{"type": {"a": 1}, "value": "x"}]),
        ("trigger", {"type": "scheduled", "trigger_settings": {"cron": "* * * * * 8"}}),
        ("trigger", {"type": "scheduled", "trigger_settings": {"cron": "* * * * 8"}}),
        ("trigger", {"type": "scheduled", "trigger_settings": {"cron": "0 0 0 31 2 *"}}),
        ("trigger", {"type": "scheduled", "trigger_settings": {"cron": "* * * * * 1-9"}}),
        ("trigger", "scheduled"),
        ("src_registry", {"id": 2**35}),
    ],
)
def test_bad_policy_fields_are_400(api: InProcessApi, field: str, value: Any) -> None:
    with api.client() as c:
        dest = make_registry(c, "dest")
        body = {"name": "p", "dest_registry": {"id": dest}, field: value}
        _error(c.post("/replication/policies", json=body), 400)
        pid = make_policy(c, "ok", None, dest=dest)
        _error(c.put(f"/replication/policies/{pid}", json={field: value}), 400)


def test_a_bad_cron_says_what_is_wrong(api: InProcessApi) -> None:
    with api.client() as c:
        dest = make_registry(c, "dest")
        trigger = {"type": "scheduled", "trigger_settings": {"cron": "* * * * * 8"}}
        body = {"name": "p", "dest_registry": {"id": dest}, "trigger": trigger}
        _error(c.post("/replication/policies", json=body), 400, "day of week 8 is not 0-7")
        body = {
            "name": "p",
            "dest_registry": {"id": dest},
            "filters": [{"type": "tag", "value": "a{1,99999999999}", "syntax": "regex"}],
        }
        _error(c.post("/replication/policies", json=body), 400, "counts beyond 1000")


def test_a_remote_webhook_with_bad_json_or_names_is_400(api: InProcessApi) -> None:
    secret = "a-webhook-secret-of-some-length"
    with api.client() as c:
        rid = make_registry(c, "remote", webhook_secret=secret)
    with api.client(user=None) as anon:
        hook, auth = f"/registries/{rid}/webhook", {"authorization": f"Bearer {secret}"}
        deep = b"[" * 100_000 + b"]" * 100_000
        _error(anon.post(hook, content=deep, headers=auth), 400, "webhook payload")
        for repository in ("x" * 5000, "Team/App", "../etc"):
            body = {"repository": repository, "action": "push", "tag": "1.0"}
            _error(anon.post(hook, json=body, headers=auth), 400, "not a repository name")
        body = {"repository": "team/app", "action": "push", "tag": "-bad tag"}
        _error(anon.post(hook, json=body, headers=auth), 400, "not a repository name")
