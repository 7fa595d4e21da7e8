"""The management API answers in its own error body when a login is throttled (429, per source
address as well as per account) and when a request body stops arriving (408) — never a
plain-text 500 from the server."""

from __future__ import annotations

import base64
import json
import socket
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.support.server import SeawallProcess


@pytest.fixture
def server(tmp_path: Path) -> Iterator[SeawallProcess]:
    proc = SeawallProcess(
        tmp_path / "data", extra_env={"SEAWALL_BODY_IDLE_TIMEOUT_SECONDS": "1"}
    ).start()
    yield proc
    proc.kill()


def test_api_logins_are_throttled_per_source(server: SeawallProcess) -> None:
    statuses = []
    with httpx.Client(base_url=server.url, timeout=30) as c:
        for _ in range(40):  # a new name each time: only the source's bucket fills
            r = c.get("/api/v2.0/registries", auth=(f"u{uuid.uuid4().hex[:8]}", "wrong"))
            statuses.append(r.status_code)
            if r.status_code == 429:
                break
    assert statuses[-1] == 429, statuses
    assert set(statuses) <= {401, 429}, statuses
    assert int(r.headers["Retry-After"]) >= 1
    assert r.json()["errors"][0]["code"] == "TOO_MANY_REQUESTS"


def test_a_stalled_api_body_is_a_408_in_the_api_error_body(server: SeawallProcess) -> None:
    auth = base64.b64encode(f"admin:{server.admin_password}".encode()).decode()
    head = (
        "POST /api/v2.0/registries HTTP/1.1\r\n"
        f"Host: {server.host}\r\nAuthorization: Basic {auth}\r\n"
        "Content-Type: application/json\r\nContent-Length: 1000\r\n\r\n"
    )
    with socket.create_connection(("127.0.0.1", server.port), timeout=30) as s:
        s.sendall(head.encode() + b'{"name": "x", ')  # then nothing more
        answer = b""
        while b"\r\n\r\n" not in answer or not answer.rstrip().endswith(b"}"):
            chunk = s.recv(65536)
            if not chunk:
                break
            answer += chunk
    status_line, _, rest = answer.partition(b"\r\n")
    assert b" 408 " in status_line, answer
    body = rest.partition(b"\r\n\r\n")[2]
    assert json.loads(body)["errors"][0]["code"] == "REQUEST_TIMEOUT"
