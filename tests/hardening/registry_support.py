"""Helpers for the registry hardening tests: a server's memory, tokens, raw sockets, latency.

Everything speaks HTTP on loopback to a real ``seawall serve`` (:class:`SeawallProcess`), except
:func:`server_rss_kib`, which reads ``/proc/PID/status`` of the server's processes.
"""

from __future__ import annotations

import base64
import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

from tests.support.client import OCI_MANIFEST, push_image
from tests.support.server import SeawallProcess

__all__ = [
    "OCI_ERROR_CODES",
    "assert_oci_error",
    "basic",
    "get_token",
    "percentile",
    "raw_exchange",
    "seawall_cli",
    "server_rss_kib",
    "timed_gets",
]

#: The codes of the documented OCI error table (docs/registry-api.md, registry/oci/errors.py).
OCI_ERROR_CODES = frozenset(
    {
        "BLOB_UNKNOWN",
        "BLOB_UPLOAD_INVALID",
        "BLOB_UPLOAD_UNKNOWN",
        "DIGEST_INVALID",
        "MANIFEST_BLOB_UNKNOWN",
        "MANIFEST_INVALID",
        "MANIFEST_UNKNOWN",
        "NAME_INVALID",
        "NAME_UNKNOWN",
        "SIZE_INVALID",
        "UNAUTHORIZED",
        "DENIED",
        "UNSUPPORTED",
        "TOOMANYREQUESTS",
        "TAG_INVALID",
        "PAGINATION_NUMBER_INVALID",
        "RANGE_INVALID",
    }
)


def basic(user: str, password: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


def assert_oci_error(status: int, content_type: str, body: bytes, where: str) -> list[str]:
    """A 4xx whose body is ``{"errors": [{"code", "message", ...}]}`` with documented codes."""
    assert 400 <= status < 500, f"{where}: status {status}: {body[:300]!r}"
    assert content_type.split(";")[0].strip() == "application/json", (
        f"{where}: {status} error with Content-Type {content_type!r}: {body[:200]!r}"
    )
    doc = json.loads(body)
    errors = doc.get("errors") if isinstance(doc, dict) else None
    assert isinstance(errors, list) and errors, f"{where}: no errors list: {body[:300]!r}"
    for e in errors:
        assert e.get("code") in OCI_ERROR_CODES, f"{where}: undocumented code: {e}"
        assert isinstance(e.get("message"), str) and e["message"], f"{where}: no message: {e}"
    return [e["code"] for e in errors]


def get_token(url: str, scope: str | None, auth: tuple[str, str] | None) -> str:
    params = {"service": "seawall", **({"scope": scope} if scope else {})}
    r = httpx.get(f"{url}/service/token", params=params, auth=auth, timeout=30)
    assert r.status_code == 200, (r.status_code, r.text)
    return str(r.json()["token"])


def server_rss_kib(server: SeawallProcess) -> int:
    """The resident memory of the server's launcher and workers together, in KiB."""
    total = 0
    for pid in server.server_pids():
        try:
            status = Path(f"/proc/{pid}/status").read_text()
        except OSError:
            continue
        for line in status.splitlines():
            if line.startswith("VmRSS:"):
                total += int(line.split()[1])
    return total


def seawall_cli(data_dir: Path, *args: str) -> str:
    """``seawall ARGS --data-dir DIR``; its stdout (fails the test on a non-zero exit)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("SEAWALL_")}
    done = subprocess.run(
        [sys.executable, "-m", "seawall", *args, "--data-dir", str(data_dir)],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, f"seawall {args[:2]}: {done.stdout}\n{done.stderr[-1500:]}"
    return done.stdout


def raw_exchange(
    port: int, head: bytes, body: bytes = b"", timeout_s: float = 10.0
) -> tuple[int, dict[str, str], bytes]:
    """Send ``head`` + ``body`` as they are on a fresh connection; the status, headers and body
    of the answer (the connection must answer within ``timeout_s``)."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout_s) as s:
        s.sendall(head + body)
        raw = _read_all(s)
    head_bytes, _, rest = raw.partition(b"\r\n\r\n")
    lines = head_bytes.decode("latin-1").split("\r\n")
    assert lines and lines[0].startswith("HTTP/1.1 "), f"no HTTP answer: {raw[:200]!r}"
    headers = {}
    for line in lines[1:]:
        k, _, v = line.partition(":")
        headers[k.strip().lower()] = v.strip()
    return int(lines[0].split()[1]), headers, rest


def _read_all(s: socket.socket) -> bytes:
    chunks = []
    while True:
        try:
            chunk = s.recv(65536)
        except ConnectionResetError:
            break
        if not chunk:
            break
        chunks.append(chunk)
    return b"".join(chunks)


@contextmanager
def pushed_image(url: str, password: str, repo: str) -> Iterator[str]:
    """An image pushed as admin to ``repo`` by tag ``v1``; yields a pull token for it."""
    from tests.support.client import client

    with client(url, "admin", password) as c:
        push_image(c, repo, "v1")
    yield get_token(url, f"repository:{repo}:pull", ("admin", password))


def timed_gets(
    url: str, path: str, token: str, count: int, for_seconds: float | None = None
) -> list[float]:
    """``count`` GETs of ``path`` on one kept-alive connection (or as many as fit in
    ``for_seconds``, at most ``count``); each one's seconds."""
    headers = {"Authorization": f"Bearer {token}", "Accept": OCI_MANIFEST}
    out: list[float] = []
    with httpx.Client(base_url=url, headers=headers, timeout=30) as c:
        deadline = time.monotonic() + for_seconds if for_seconds is not None else None
        for _ in range(count):
            if out and deadline is not None and time.monotonic() > deadline:
                break
            started = time.perf_counter()
            r = c.get(path)
            out.append(time.perf_counter() - started)
            assert r.status_code == 200, (r.status_code, r.text[:200])
    return out


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]
