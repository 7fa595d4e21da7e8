"""Request bodies, from the outside: a body that stops arriving — or trickles in at a byte a
second — is cut off after the configured idle timeout (``SEAWALL_BODY_IDLE_TIMEOUT_SECONDS``,
2 s here) with ``408 SIZE_INVALID``; a slow but steady one is not; malformed chunked framing is
a ``400`` in the OCI error body (granian answered a plain-text 500); and while slow bodies are
held open, manifest GETs stay fast."""

from __future__ import annotations

import select
import socket
import threading
import time
import uuid
from collections.abc import Iterator

import httpx
import pytest

from tests.hardening.registry_support import (
    assert_oci_error,
    get_token,
    percentile,
    raw_exchange,
    timed_gets,
)
from tests.support.client import client, push_image
from tests.support.server import SeawallProcess

IDLE_SECONDS = 2.0


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SeawallProcess]:
    data = tmp_path_factory.mktemp("bodies") / "data"
    env = {"SEAWALL_BODY_IDLE_TIMEOUT_SECONDS": str(IDLE_SECONDS)}
    proc = SeawallProcess(data, extra_env=env).start()
    yield proc
    proc.kill()


@pytest.fixture(scope="module")
def push_token(server: SeawallProcess) -> str:
    return get_token(server.url, "repository:slow/app:pull,push", ("admin", server.admin_password))


def _upload_location(server: SeawallProcess, token: str) -> str:
    r = httpx.post(
        f"{server.url}/v2/slow/app/blobs/uploads/",
        headers={"Authorization": f"Bearer {token}"},
        timeout=30,
    )
    assert r.status_code == 202, r.text
    return r.headers["Location"]


def _head(method: str, path: str, token: str, length: int | None, **extra: str) -> bytes:
    lines = [f"{method} {path} HTTP/1.1", "Host: 127.0.0.1", f"Authorization: Bearer {token}"]
    if length is not None:
        lines.append(f"Content-Length: {length}")
    lines += [f"{k.replace('_', '-')}: {v}" for k, v in extra.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def _trickle(
    port: int, head: bytes, pieces: list[bytes], every_s: float, give_up_s: float
) -> tuple[float, bytes]:
    """Send ``head``, then one piece every ``every_s`` until the server answers (or
    ``give_up_s`` passes); the seconds it took and what the server sent."""
    started = time.monotonic()
    with socket.create_connection(("127.0.0.1", port), timeout=give_up_s) as s:
        s.sendall(head)
        answer = b""
        for piece in pieces:
            if time.monotonic() - started > give_up_s:
                break
            readable, _, _ = select.select([s], [], [], every_s)
            if readable:
                break
            try:
                s.sendall(piece)
            except OSError:
                break
        s.settimeout(max(0.5, give_up_s - (time.monotonic() - started)))
        try:
            while not _complete(answer) and (chunk := s.recv(65536)):
                answer += chunk
        except (TimeoutError, ConnectionResetError):
            pass
    return time.monotonic() - started, answer


def _complete(answer: bytes) -> bool:
    """Whether ``answer`` holds a whole response head and the Content-Length it announces."""
    head, sep, body = answer.partition(b"\r\n\r\n")
    if not sep:
        return False
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            return len(body) >= int(value)
    return False


def _assert_stalled(took: float, answer: bytes) -> None:
    assert answer, f"no answer after {took:.1f} s: the body is held indefinitely"
    head, _, body = answer.partition(b"\r\n\r\n")
    status = int(head.split()[1])
    ctype = next(
        (
            line.split(b":", 1)[1].decode().strip()
            for line in head.split(b"\r\n")[1:]
            if line.lower().startswith(b"content-type:")
        ),
        "",
    )
    assert status == 408, answer[:300]
    assert assert_oci_error(status, ctype, body, "stalled body") == ["SIZE_INVALID"]
    assert took < IDLE_SECONDS + 3, f"cut off only after {took:.1f} s"


def test_a_trickle_of_one_byte_at_a_time_is_cut_off(
    server: SeawallProcess, push_token: str
) -> None:
    path = _upload_location(server, push_token)
    head = _head("PATCH", path, push_token, 10**12, Content_Type="application/octet-stream")
    took, answer = _trickle(server.port, head, [b"x"] * 200, every_s=0.25, give_up_s=10)
    _assert_stalled(took, answer)


def test_a_body_that_stops_is_cut_off(server: SeawallProcess, push_token: str) -> None:
    path = _upload_location(server, push_token)
    head = _head("PATCH", path, push_token, 10, Content_Type="application/octet-stream")
    took, answer = _trickle(server.port, head, [b"abc"], every_s=0.1, give_up_s=10)
    _assert_stalled(took, answer)


def test_a_slow_but_steady_body_is_taken(server: SeawallProcess, push_token: str) -> None:
    path = _upload_location(server, push_token)
    pieces = [b"y" * 8192] * 12  # 96 KiB at 32 KiB/s: 3 s, longer than the idle timeout
    head = _head("PATCH", path, push_token, 8192 * 12, Content_Type="application/octet-stream")
    took, answer = _trickle(server.port, head, pieces, every_s=0.25, give_up_s=15)
    assert answer.startswith(b"HTTP/1.1 202"), answer[:300]
    assert took > IDLE_SECONDS


@pytest.mark.parametrize(
    "framing",
    [b"zz\r\nabc\r\n0\r\n\r\n", b"3\r\nabcdef\r\n0\r\n\r\n", b"-1\r\n\r\n", b"f" * 20 + b"\r\nab"],
)
def test_malformed_chunked_bodies_are_refused_in_the_oci_body(
    server: SeawallProcess, push_token: str, framing: bytes
) -> None:
    targets = [
        ("PUT", "/v2/slow/app/manifests/chunked", "application/vnd.oci.image.manifest.v1+json"),
        ("PATCH", _upload_location(server, push_token), "application/octet-stream"),
        ("POST", "/service/token", "application/x-www-form-urlencoded"),
    ]
    for method, path, ctype in targets:
        head = _head(
            method,
            path,
            push_token,
            None,
            Content_Type=ctype,
            Transfer_Encoding="chunked",
            Connection="close",
        )
        status, headers, body = raw_exchange(server.port, head, framing)
        codes = assert_oci_error(status, headers.get("content-type", ""), body, f"{method} {path}")
        assert status == 400 and codes == ["SIZE_INVALID"], (method, status, body[:200])


def test_manifest_gets_stay_fast_while_slow_bodies_are_held(
    server: SeawallProcess, push_token: str
) -> None:
    repo = f"fast/{uuid.uuid4().hex[:8]}"
    with client(server.url, "admin", server.admin_password) as admin:
        push_image(admin, repo, "v1")
    pull = get_token(server.url, f"repository:{repo}:pull", ("admin", server.admin_password))
    path = f"/v2/{repo}/manifests/v1"
    before = timed_gets(server.url, path, pull, 100)
    stop = threading.Event()

    def slowloris() -> None:
        head = _head("PATCH", _upload_location(server, push_token), push_token, 10**12)
        with socket.create_connection(("127.0.0.1", server.port), timeout=10) as s:
            s.sendall(head)
            while not stop.wait(0.2):
                try:
                    s.sendall(b"z")
                except OSError:
                    return

    senders = [threading.Thread(target=slowloris, daemon=True) for _ in range(20)]
    for t in senders:
        t.start()
    try:
        time.sleep(0.3)
        during = timed_gets(server.url, path, pull, 5000, for_seconds=IDLE_SECONDS)
    finally:
        stop.set()
        for t in senders:
            t.join(timeout=10)
    after = timed_gets(server.url, path, pull, 100)
    p99 = percentile(during, 99) * 1000
    base_p99 = max(percentile(before, 99), percentile(after, 99)) * 1000
    print(
        f"manifest GET p99 {p99:.1f} ms ({len(during)} GETs, 20 slow bodies), base {base_p99:.1f}"
    )
    assert p99 < max(50, 4 * base_p99), f"p99 {p99:.0f} ms (base {base_p99:.0f})"
