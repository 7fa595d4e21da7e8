"""The edge's rules in process: the host grammar, ``X-Forwarded-For`` behind trusted proxies,
and :class:`BodyGuard`'s deadline driven by a fake clock (the real-time cut-off is tested from
the outside in ``test_registry_bodies.py``)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from registry.http.asgi import STALLED
from registry.http.edge import BodyGuard, Edge, EdgeOptions, is_valid_host


def _scope(headers: list[tuple[bytes, bytes]], client: str = "10.0.0.9") -> dict[str, Any]:
    return {"type": "http", "scheme": "http", "headers": headers, "client": (client, "5555")}


async def _nothing() -> dict[str, Any]:
    raise AssertionError("not called")


@pytest.mark.parametrize(
    ("host", "ok"),
    [
        ("registry.example.com", True),
        ("registry:5000", True),
        ("[::1]:5000", True),
        ("my_registry", True),
        ("h:65536", False),
        ('a"b', False),
        ("a b", False),
        ("", False),
        ("[::1", False),
    ],
)
def test_host_grammar(host: str, ok: bool) -> None:
    assert is_valid_host(host) is ok


def test_forwarded_for_names_the_client_only_behind_a_trusted_proxy() -> None:
    edge = Edge(EdgeOptions(trusted_proxies=("10.0.0.0/24",)))
    forwarded = [(b"x-forwarded-for", b"203.0.113.7, 10.0.0.3"), (b"host", b"r:5000")]
    scope, _ = edge.admit(_scope(forwarded), _nothing)
    assert scope["client"][0] == "203.0.113.7"  # 10.0.0.3 is one of our proxies: skipped
    assert all(k != b"x-forwarded-for" for k, _ in scope["headers"])
    scope, _ = edge.admit(_scope(forwarded, client="192.0.2.1"), _nothing)
    assert scope["client"][0] == "192.0.2.1"


def test_bad_trusted_proxy_setting_says_what_to_write() -> None:
    with pytest.raises(ValueError, match=r"10\.0\.0\.0/8"):
        Edge(EdgeOptions(trusted_proxies=("not-an-address",)))


class FakeBody:
    """A client sending ``chunks`` as fast as asked, while a fake clock moves ``step`` seconds
    per chunk."""

    def __init__(self, chunks: list[bytes], clock: list[float], step: float) -> None:
        self.chunks, self.clock, self.step = list(chunks), clock, step

    async def __call__(self) -> dict[str, Any]:
        self.clock[0] += self.step
        chunk = self.chunks.pop(0)
        return {"type": "http.request", "body": chunk, "more_body": bool(self.chunks)}


def _drain(guard: BodyGuard) -> tuple[int, bool]:
    async def run() -> tuple[int, bool]:
        received = 0
        while True:
            message = await guard()
            if message["type"] == "http.disconnect":
                return received, bool(message.get(STALLED))
            received += len(message["body"])
            if not message["more_body"]:
                return received, False

    return asyncio.run(run())


def test_a_trickle_below_the_minimum_rate_runs_out_of_time() -> None:
    clock = [0.0]
    body = FakeBody([b"x"] * 1000, clock, step=1.0)  # 1 byte/s, never idle for long
    guard = BodyGuard(body, idle_seconds=30, min_bytes_per_second=1024, clock=lambda: clock[0])
    received, stalled = _drain(guard)
    assert stalled and received <= 31


def test_a_slow_but_steady_body_is_not_cut() -> None:
    clock = [0.0]
    body = FakeBody([b"x" * 8192] * 200, clock, step=2.0)  # 4 KiB/s for 400 s
    guard = BodyGuard(body, idle_seconds=30, min_bytes_per_second=1024, clock=lambda: clock[0])
    assert _drain(guard) == (8192 * 200, False)


def test_a_pause_longer_than_the_idle_timeout_ends_the_body() -> None:
    clock = [0.0]
    body = FakeBody([b"x" * 65536, b"y"], clock, step=1.0)
    guard = BodyGuard(body, idle_seconds=30, min_bytes_per_second=1024, clock=lambda: clock[0])

    async def run() -> tuple[dict[str, Any], dict[str, Any]]:
        first = await guard()
        clock[0] += 31.0  # the client pauses longer than the idle timeout
        return first, await guard()

    first, second = asyncio.run(run())
    assert len(first["body"]) == 65536
    assert second == {"type": "http.disconnect", STALLED: True}


def test_only_one_valid_host_header_is_kept() -> None:
    edge = Edge(EdgeOptions())
    headers = [(b"host", b'bad"host'), (b"host", b"a.example"), (b"host", b"b.example")]
    scope, _ = edge.admit(_scope(headers), _nothing)
    assert [v for k, v in scope["headers"] if k == b"host"] == [b"a.example"]
