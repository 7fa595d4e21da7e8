"""Malformed requests across the management API, generated systematically — bad ids, huge
integers, wrong types, bad cron, bad regexes, bad URLs, oversize and malformed JSON, bad query
values — sent anonymously, as an admin and as a robot scoped to ``team/*``. None may answer 5xx;
every error is Harbor's body ``{"errors": [{"code", "message"}]}`` with a documented code; the
server stays healthy and its memory within 50 MiB of where it started."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.replication.support import add_endpoint, add_policy
from tests.support.server import SeawallProcess

CODES = {
    "BAD_REQUEST",
    "UNAUTHORIZED",
    "FORBIDDEN",
    "NOT_FOUND",
    "METHOD_NOT_ALLOWED",
    "CONFLICT",
    "PRECONDITION",
    "PAYLOAD_TOO_LARGE",
    "UNPROCESSABLE_ENTITY",
    "REQUEST_TIMEOUT",  # a body cut short or stalled
    "TOO_MANY_REQUESTS",  # wrong passwords from one source are throttled (Retry-After)
}
HUGE = str(2**63)
BAD_IDS = ["0", "-1", "abc", HUGE, "9" * 40, "1e3", "%00", "١", "²", "1.5", "0x10", "%2e%2e"]
BAD_QUERIES: list[dict[str, str]] = [
    {"page": "²"},
    {"page": "0"},
    {"page": "-1"},
    {"page": HUGE},
    {"page_size": "1000"},
    {"page_size": "1_0"},
    {"q": f"id={HUGE}"},
    {"q": "id=[~]"},
    {"q": "id={² 1}"},
    {"q": "name=\x00x"},
    {"q": "nope=1"},
    {"q": "=" * 3000},
    {"sort": "-nope"},
    {"policy_id": "²"},
    {"policy_id": HUGE},
    {"status": "Exploded"},
    {"trigger": "cosmic"},
    {"wait": "nan"},
    {"wait": "1e999"},
    {"webhook_id": "²"},
    {"execution_id": HUGE},
    {"event_type": "\x7f"},
]
GENERIC_BODIES: list[bytes] = [
    b"{",
    b"[]",
    b"null",
    b'"x"',
    b"1",
    b"\xff\xfe\x00",
    b"[" * 50_000 + b"]" * 50_000,
    b'{"a":' * 100 + b"1" + b"}" * 100,
    b'{"name": NaN}',
    b'{"name": "a\\u0000b"}',
    b'{"name": "\\udc00"}',
    b'{"id": 1' + b"0" * 40 + b"}",
    b'{"name": ' + b"9" * 5000 + b"}",
    b'{"name": []}',
    b'{"name": {"a": 1}, "enabled": "yes"}',
    b" " * 10 + b"{}",
    b"{" + b'"k": 1,' * 20_000 + b'"z": 2}',
]
OVERSIZE = b'{"name": "' + b"x" * (2 << 20) + b'"}'
BAD_URLS = [
    "http://[::1/",
    "http://host:99999",
    "http://host:0",
    "http://a b",
    "http://user:pw@host",
    "javascript:alert(1)",
    "ftp://host",
    "http://169.254.169.254",
    "http://[fe80::1]",
    "http://" + "a" * 3000,
    "file://relative",
    12,
    None,
]
BAD_CRONS = ["* * * * * 8", "* * * * 8", "*/0 * * * *", "0 0 0 31 2 *", "L * * * *", "x" * 300]
BAD_PATTERNS = [
    ("regex", "(a+)+$" + "{"),
    ("regex", "a{1,99999999999}"),
    ("regex", r"(a)\1"),
    ("regex", "(?<=x)y"),
    ("glob", "[a-"),
    ("glob", "{a,b"),
    ("semver", "^^1"),
    ("semver", "1 ||"),
    ("regex", "x" * 5000),
    ("pcre", "x"),
]


@dataclass
class Case:
    method: str
    path: str
    body: bytes | None = None
    params: dict[str, str] | None = None


def _json(value: Any) -> bytes:
    return json.dumps(value).encode()


def _id_cases(registry: int, policy: int, webhook: int) -> Iterator[Case]:
    templates = [
        ("GET", "/registries/{x}"),
        ("PUT", "/registries/{x}"),
        ("DELETE", "/registries/{x}"),
        ("GET", "/registries/{x}/info"),
        ("POST", "/registries/{x}/webhook"),
        ("GET", "/replication/policies/{x}"),
        ("PUT", "/replication/policies/{x}"),
        ("DELETE", "/replication/policies/{x}"),
        ("GET", "/replication/policies/{x}/webhooks"),
        ("GET", f"/replication/policies/{policy}/webhooks/{{x}}"),
        ("POST", f"/replication/policies/{policy}/webhooks/{{x}}/test"),
        ("GET", f"/replication/policies/{policy}/webhooks/{webhook}/deliveries/{{x}}"),
        ("GET", "/replication/policies/{x}/deliveries"),
        ("GET", "/replication/executions/{x}"),
        ("PUT", "/replication/executions/{x}"),
        ("GET", "/replication/executions/{x}/tasks"),
        ("GET", "/replication/executions/1/tasks/{x}/log"),
        ("DELETE", "/projects/{x}/repositories/{x}"),
    ]
    for method, template in templates:
        for bad in BAD_IDS:
            yield Case(
                method, template.replace("{x}", bad), b"{}" if method in ("PUT", "POST") else None
            )


def _query_cases(policy: int, webhook: int) -> Iterator[Case]:
    lists = [
        "/registries",
        "/replication/policies",
        "/replication/executions",
        f"/replication/policies/{policy}/webhooks",
        f"/replication/policies/{policy}/deliveries",
        f"/replication/policies/{policy}/webhooks/{webhook}/deliveries",
        "/replication/executions/1/tasks",
    ]
    for path in lists:
        for query in BAD_QUERIES:
            yield Case("GET", path, params=query)


def _body_cases(registry: int, policy: int, webhook: int) -> Iterator[Case]:
    writes = [
        ("POST", "/registries"),
        ("PUT", f"/registries/{registry}"),
        ("POST", "/registries/ping"),
        ("POST", "/replication/policies"),
        ("PUT", f"/replication/policies/{policy}"),
        ("POST", f"/replication/policies/{policy}/webhooks"),
        ("PUT", f"/replication/policies/{policy}/webhooks/{webhook}"),
        ("POST", "/replication/executions"),
        ("POST", f"/registries/{registry}/webhook"),
    ]
    for method, path in writes:
        for body in [*GENERIC_BODIES, OVERSIZE]:
            yield Case(method, path, body)
    for url in BAD_URLS:
        body = {"name": "bad", "type": "docker-registry", "url": url}
        yield Case("POST", "/registries", _json(body))
        yield Case("PUT", f"/registries/{registry}", _json({"url": url}))
        yield Case("POST", "/registries/ping", _json({"type": "docker-registry", "url": url}))
        yield Case("POST", "/registries/ping", _json({"id": registry, "url": url}))
        hook = {"name": "bad", "address": url}
        yield Case("POST", f"/replication/policies/{policy}/webhooks", _json(hook))
    for cron in BAD_CRONS:
        trigger = {"type": "scheduled", "trigger_settings": {"cron": cron, "timezone": "Mars/X"}}
        yield Case("PUT", f"/replication/policies/{policy}", _json({"trigger": trigger}))
        trigger["trigger_settings"]["timezone"] = "UTC"
        yield Case("PUT", f"/replication/policies/{policy}", _json({"trigger": trigger}))
    for syntax, value in BAD_PATTERNS:
        for kind in ("name", "tag"):
            spec = {"type": kind, "value": value, "syntax": syntax}
            yield Case("PUT", f"/replication/policies/{policy}", _json({"filters": [spec]}))
    for field, value in [
        ("speed_bytes_per_second", 2**64),
        ("max_deletions", -5),
        ("max_deletion_fraction", 7.5),
        ("dest_namespace", "../../etc"),
        ("dest_namespace_replace_count", 2**40),
        ("src_registry", {"id": HUGE}),
        ("dest_registry", {"id": 2**40}),
        ("filters", "name=x"),
        ("filters", [{"type": "label", "value": [1, 2]}]),
        ("filters", [{"type": "tag"}] * 100),
        ("trigger", {"type": "event_based", "trigger_settings": []}),
        ("single_active_replication", "true"),
    ]:
        yield Case("PUT", f"/replication/policies/{policy}", _json({field: value}))
    for field, value in [
        ("format", "xml"),
        ("event_types", []),
        ("event_types", ["NOPE"]),
        ("event_types", [1]),
        ("auth_header", "a\r\nX-Evil: 1"),
        ("skip_cert_verify", "no"),
    ]:
        path = f"/replication/policies/{policy}/webhooks/{webhook}"
        yield Case("PUT", path, _json({field: value}))
    for value in [HUGE, -1, "1", 1.5, True, [1], 2**40]:
        yield Case("POST", "/replication/executions", _json({"policy_id": value}))
        yield Case("POST", "/registries/ping", _json({"id": value}))


def _rss_kib(proc: SeawallProcess) -> int:
    total = 0
    for pid in proc.server_pids():
        try:
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
        except OSError:
            pass
    return total


def _robot(proc: SeawallProcess) -> tuple[str, str]:
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "seawall",
            "robot",
            "add",
            "fuzz",
            "--allow",
            "team/*=pull",
            "--data-dir",
            str(proc.data_dir),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return "robot$fuzz", out.stdout.strip().splitlines()[-1]


def _check(case: Case, r: httpx.Response) -> str | None:
    where = f"{case.method} {case.path[:80]} {case.params or ''} {(case.body or b'')[:60]!r}"
    if r.status_code >= 500:
        return f"{where}: {r.status_code} {r.text[:300]}"
    if r.status_code < 400:
        return None
    try:
        errors = r.json()["errors"]
        ok = (
            isinstance(errors, list)
            and errors
            and all(set(e) == {"code", "message"} and e["code"] in CODES for e in errors)
        )
    except (ValueError, KeyError, TypeError):
        ok = False
    return None if ok else f"{where}: {r.status_code} not Harbor's error body: {r.text[:200]}"


def _send(c: httpx.Client, case: Case) -> str | None:
    headers = {"content-type": "application/json"} if case.body is not None else {}
    try:
        r = c.request(
            case.method, case.path, content=case.body, params=case.params, headers=headers
        )
    except httpx.TransportError as e:
        return f"{case.method} {case.path[:80]} {(case.body or b'')[:60]!r}: no answer: {e!r}"
    return _check(case, r)


@pytest.fixture(scope="module")
def target(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SeawallProcess]:
    proc = SeawallProcess(tmp_path_factory.mktemp("fuzz") / "data").start()
    yield proc
    proc.stop()


def test_malformed_requests_never_break_the_api(target: SeawallProcess) -> None:
    started = time.monotonic()
    robot = _robot(target)
    base = f"{target.url}/api/v2.0"
    with httpx.Client(base_url=base, auth=("admin", target.admin_password), timeout=30) as a:
        registry = add_endpoint(a, "fuzz-dest", "http://127.0.0.1:9")
        policy = add_policy(a, "fuzz", dest=registry)
        r = a.post(
            f"/replication/policies/{policy}/webhooks",
            json={"name": "w", "address": "http://127.0.0.1:9/h"},
        )
        webhook = int(r.headers["Location"].rsplit("/", 1)[1])
    cases = [
        *_id_cases(registry, policy, webhook),
        *_query_cases(policy, webhook),
        *_body_cases(registry, policy, webhook),
    ]
    assert len(cases) >= 200, len(cases)
    identities: list[tuple[str, str] | None] = [None, ("admin", target.admin_password), robot]
    problems: list[str] = []
    sent = 0
    rss_before = _rss_kib(target)
    for auth in identities:
        with httpx.Client(base_url=base, auth=auth, timeout=30) as c:
            for case in cases:
                sent += 1
                if (problem := _send(c, case)) is not None:
                    problems.append(f"[{auth[0] if auth else 'anonymous'}] {problem}")
        with httpx.Client(base_url=base, auth=("admin", "wrong-password"), timeout=30) as c:
            for case in cases[:: max(1, len(cases) // 10)]:  # each costs a password hash
                sent += 1
                if (problem := _send(c, case)) is not None:
                    problems.append(f"[wrong password] {problem}")
    assert not problems, f"{len(problems)} of {sent} requests:\n" + "\n".join(problems[:40])
    with httpx.Client(base_url=base, auth=("admin", target.admin_password), timeout=30) as a:
        assert a.get("/ping").text == "Pong"
        assert a.get(f"/replication/policies/{policy}").json()["name"] == "fuzz"
        assert httpx.get(f"{target.url}/v2/", timeout=10).status_code in (200, 401)
    grown_mib = (_rss_kib(target) - rss_before) / 1024
    assert grown_mib < 50, f"RSS grew by {grown_mib:.0f} MiB"
    assert time.monotonic() - started < 60, f"{sent} requests took too long"
