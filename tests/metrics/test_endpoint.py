"""``GET /metrics`` on real ``seawall serve`` processes: who may scrape, and the request
counters moving with real requests (one worker, and two adding up)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator

import httpx
import pytest

from tests.metrics.scrape import Samples, parse, scrape, total, value
from tests.support.client import OCI_MANIFEST, client, image_manifest, push_blob, sha256
from tests.support.server import SeawallProcess

REQUESTS = "seawall_registry_requests_total"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SeawallProcess]:
    proc = SeawallProcess(tmp_path_factory.mktemp("metrics") / "data").start()
    yield proc
    proc.stop()


def admin(server: SeawallProcess) -> tuple[str, str]:
    return ("admin", server.admin_password)


def test_metrics_need_an_administrator(server: SeawallProcess) -> None:
    url = f"{server.url}/metrics"
    r = httpx.get(url)
    assert r.status_code == 401
    assert r.headers["www-authenticate"] == 'Basic realm="seawall"'
    assert r.json()["errors"][0]["code"] == "UNAUTHORIZED"
    assert httpx.get(url, auth=("admin", "wrong")).status_code == 401
    env = {k: v for k, v in os.environ.items() if not k.startswith("SEAWALL_")}
    subprocess.run(
        [
            *(sys.executable, "-m", "seawall", "user", "add", "reader"),
            *("--password", "reader-pw-1", "--allow", "*=pull", "--data-dir", str(server.data_dir)),
        ],
        env=env,
        check=True,
        capture_output=True,
    )
    r = httpx.get(url, auth=("reader", "reader-pw-1"))
    assert r.status_code == 403 and r.json()["errors"][0]["code"] == "DENIED"
    assert httpx.post(url, auth=admin(server)).status_code == 405
    r = httpx.get(url, auth=admin(server))
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain")
    names = {name for name, _ in parse(r.text)}
    assert {REQUESTS, "seawall_replication_event_backlog"} <= names
    assert "# TYPE seawall_replication_lag_seconds gauge" in r.text


def test_request_counters_move_with_requests(server: SeawallProcess) -> None:
    config = b'{"architecture":"amd64","os":"linux","seed":"counters"}'
    layer = os.urandom(300_000)
    manifest = image_manifest(config, [layer])
    before = scrape(server.url, admin(server))
    with client(server.url, "admin", server.admin_password) as c:
        for blob in (config, layer):
            push_blob(c, "metrics/app", blob)
        put = c.put(
            "/v2/metrics/app/manifests/v1",
            content=manifest,
            headers={"Content-Type": OCI_MANIFEST},
        )
        assert put.status_code == 201
        for _ in range(7):
            assert c.get(
                "/v2/metrics/app/manifests/v1", headers={"Accept": OCI_MANIFEST}
            ).is_success
        for _ in range(5):
            assert c.head(
                "/v2/metrics/app/manifests/v1", headers={"Accept": OCI_MANIFEST}
            ).is_success
        got = c.get(f"/v2/metrics/app/blobs/{sha256(layer)}")
        assert got.content == layer  # sent by the server from the file (pathsend)
    after = scrape(server.url, admin(server))

    def moved(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    assert moved(REQUESTS, route="manifest", method="GET", status="200") == 7
    assert moved(REQUESTS, route="manifest", method="HEAD", status="200") == 5
    assert moved(REQUESTS, route="manifest", method="PUT", status="201") == 1
    assert moved(REQUESTS, route="upload", method="POST", status="201") == 2
    assert moved(REQUESTS, route="blob", method="GET", status="200") == 1
    duration = "seawall_registry_request_duration_seconds_count"
    assert moved(duration, route="manifest", method="GET") == 7
    received = "seawall_registry_received_bytes_total"
    # the first upload is sent twice: refused for want of a token (its body read and dropped,
    # so the connection stays usable), then with one
    assert moved(received, route="upload") == 2 * len(config) + len(layer)
    assert moved(received, route="manifest") == len(manifest)
    sent = "seawall_registry_sent_bytes_total"
    assert moved(sent, route="manifest") == 7 * len(manifest) + len(put.content)
    assert moved(sent, route="blob") == len(layer)
    assert moved(REQUESTS, route="metrics", method="GET", status="200") == 1  # the first scrape


def test_public_metrics_and_two_workers_adding_up(tmp_path_factory: pytest.TempPathFactory) -> None:
    proc = SeawallProcess(
        tmp_path_factory.mktemp("metrics-workers") / "data",
        # no engine: two workers creating APScheduler's tables at once in a new database can
        # fail one worker's start-up ("table job_results already exists"), a separate bug
        extra_env={"SEAWALL_METRICS__PUBLIC": "true", "SEAWALL_ENGINE_ENABLED": "false"},
        extra_args=["--workers", "2"],
    ).start()
    try:
        for _ in range(20):  # each on a connection of its own: the kernel spreads them
            assert httpx.get(f"{proc.url}/healthz").status_code == 200

        def health(samples: Samples) -> float:
            return total(samples, REQUESTS, route="health")

        # each worker writes its counts for the others once a second: until both have, a
        # scrape may miss the latest of the other's; then every scrape, whichever worker
        # answers it, shows both workers' counts (the deadline is a bound, not a wait)
        deadline, streak, seen = time.monotonic() + 20, 0, []
        while streak < 8 and time.monotonic() < deadline:
            seen.append(health(scrape(proc.url, None)))
            streak = streak + 1 if seen[-1] == 20 else 0
            time.sleep(0.1)
        assert streak == 8 and max(seen) == 20, seen
        assert len(list((proc.data_dir / "metrics").glob("workers-*/*.json"))) == 2
    finally:
        proc.stop()
