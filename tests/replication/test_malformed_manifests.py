"""A source that serves malformed manifests (issue 11): each fails exactly its own task with a
clear reason, the run goes on and copies the other artifacts, and ends Failed (Harbor's
roll-up), both in a policy run of ``seawall serve`` and in ``seawall sync``.

The source is a real CNCF distribution behind a small proxy of the test's own, which answers
for some tags with broken manifest bytes (consistent digests: the bytes hash to what the
``HEAD`` and ``GET`` announce, so only their content is wrong) and passes everything else on.
"""

from __future__ import annotations

import asyncio
import json
import re
import subprocess
import sys
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest
from aiohttp import web

from engine.oneshot import SyncSide, sync_once
from tests.replication.support import add_endpoint, add_policy, api, digest_of, dumps, start, wait
from tests.support.client import OCI_INDEX, OCI_MANIFEST, client, push_image, sha256
from tests.support.distribution import DistributionProcess
from tests.support.fake_acr_upstream import Upstream
from tests.support.server import SeawallProcess

ROOT = Path(__file__).resolve().parents[2]
#: ``seawall sync ARGS`` in a fresh interpreter; its last line: the exit code and the database
#: modules it imported ("-": none)
_SYNC_PROBE = """
import sys
from seawall import cli
code = cli.main(sys.argv[1:])
loaded = {m.split(".")[0] for m in sys.modules} & {"sqlalchemy", "sqlmodel", "aiosqlite", "asyncpg"}
print(f"exit {code}, database modules: {','.join(sorted(loaded)) or '-'}")
"""
REPO = "mf/app"
GOOD = ("good-1", "good-2")
_CONFIG = {
    "mediaType": "application/vnd.oci.image.config.v1+json",
    "digest": "sha256:" + "ab" * 32,
    "size": 2,
}
#: tag -> (what the source answers for it, what the task's reason must say)
BROKEN: dict[str, tuple[bytes, str]] = {
    "not-json": (b'{"schemaVersion": 2, "config": {', "not valid JSON"),
    "no-layers": (
        json.dumps({"schemaVersion": 2, "mediaType": OCI_MANIFEST, "config": _CONFIG}).encode(),
        "needs a layers array",
    ),
    "wrong-types": (
        json.dumps(
            {"schemaVersion": 2, "mediaType": OCI_MANIFEST, "config": "sha256:" + "ab" * 32}
        ).encode(),
        "config is not a descriptor object",
    ),
    "index-child-without-digest": (
        json.dumps(
            {
                "schemaVersion": 2,
                "mediaType": OCI_INDEX,
                "manifests": [{"mediaType": OCI_MANIFEST, "size": 10}],
            }
        ).encode(),
        "manifests[0].digest is missing",
    ),
}


class MalformedSource:
    """A proxy in front of ``upstream`` (in a thread of its own) that answers ``HEAD``/``GET``
    of ``REPO``'s manifests named in :data:`BROKEN` (by tag or by the broken bytes' digest)
    with the broken bytes."""

    def __init__(self, upstream: str) -> None:
        self.upstream_url = upstream
        self.answers: dict[str, bytes] = {}
        for tag, (data, _) in BROKEN.items():
            self.answers[tag] = self.answers[sha256(data)] = data
        self.url = ""
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._runner: web.AppRunner | None = None
        self._upstream: Upstream | None = None

    def __enter__(self) -> MalformedSource:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self._loop).result(30)
        return self

    def __exit__(self, *exc: object) -> None:
        asyncio.run_coroutine_threadsafe(self._stop(), self._loop).result(30)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(30)
        self._loop.close()

    async def _start(self) -> None:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        host, port = self._runner.addresses[0][:2]
        self.url = f"http://{host}:{port}"
        self._upstream = Upstream(self.upstream_url, self.url, None, None)
        await self._upstream.open()

    async def _stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
        if self._upstream is not None:
            await self._upstream.close()

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        m = re.fullmatch(r"/v2/(.+)/manifests/([^/]+)", request.path)
        if m and m[1] == REPO and m[2] in self.answers and request.method in ("GET", "HEAD"):
            data = self.answers[m[2]]
            kind = OCI_INDEX if b'"manifests"' in data else OCI_MANIFEST
            headers = {"Content-Type": kind, "Docker-Content-Digest": sha256(data)}
            return web.Response(body=data, headers=headers)
        assert self._upstream is not None
        body = await request.read()
        return await self._upstream.forward(request, request.method, request.path_qs, body)


@pytest.fixture
def source(tmp_path: Path) -> Iterator[tuple[MalformedSource, DistributionProcess, dict[str, str]]]:
    """The proxy, the distribution behind it, and the good tags' digests. Every tag of
    :data:`BROKEN` is pushed whole to distribution (so that it is listed); the proxy answers
    for it."""
    with DistributionProcess(tmp_path / "dist") as dist:
        with client(dist.url, None) as c:
            good = {tag: push_image(c, REPO, tag, seed=tag)[0] for tag in GOOD}
            for tag in BROKEN:
                push_image(c, REPO, tag, seed=tag)
        with MalformedSource(dist.url) as proxy:
            yield proxy, dist, good


def _check_failed(tasks: list[dict[str, Any]]) -> None:
    """Exactly the broken tags' tasks failed, each saying what is wrong with which manifest;
    the good ones were copied."""
    failed = {t["src_resource"]: t["reason"] for t in tasks if t["status"] == "Failed"}
    assert sorted(failed) == sorted(f"{REPO}:[{tag}]" for tag in BROKEN), dumps(tasks)
    for tag, (data, says) in BROKEN.items():
        reason = failed[f"{REPO}:[{tag}]"]
        assert says in reason, (tag, reason)
        assert f"{REPO}@{sha256(data)}" in reason, (tag, reason)
        assert "Traceback" not in reason and len(reason) <= 2000, reason
    copied = [t["src_resource"] for t in tasks if t["status"] == "Succeed"]
    assert sorted(copied) == [f"{REPO}:[{tag}]" for tag in GOOD], dumps(tasks)


def test_a_policy_run_fails_only_the_malformed_artifacts(
    seawall: SeawallProcess,
    source: tuple[MalformedSource, DistributionProcess, dict[str, str]],
) -> None:
    proxy, _, good = source
    namespace = f"mf-{uuid.uuid4().hex[:8]}"
    with api(seawall.url, seawall.admin_password) as a:
        src = add_endpoint(a, f"malformed-{namespace}", proxy.url)
        pid = add_policy(
            a, namespace, src=src, dest_namespace=namespace, dest_namespace_replace_count=1
        )
        eid = start(a, pid)

        def tasks_now() -> list[dict[str, Any]]:
            return a.get(f"/replication/executions/{eid}/tasks", params={"page_size": 100}).json()

        try:
            execution = wait(a, eid, 60)
        except AssertionError as e:  # the old copier crashed the run: it never ended
            raise AssertionError(f"{e}; its tasks: {dumps(tasks_now())}") from None
        tasks = tasks_now()
    assert execution["status"] == "Failed", dumps(execution)
    assert execution["failed"] == len(BROKEN) and execution["succeed"] == len(GOOD)
    _check_failed(tasks)
    with client(seawall.url, "admin", seawall.admin_password) as c:
        for tag, want in good.items():
            assert digest_of(c, f"{namespace}/app", tag) == want
        for tag in BROKEN:
            assert digest_of(c, f"{namespace}/app", tag) is None


def test_seawall_sync_fails_only_the_malformed_artifacts(
    source: tuple[MalformedSource, DistributionProcess, dict[str, str]],
    tmp_path: Path,
) -> None:
    proxy, dist, good = source
    state = tmp_path / "state"
    state.mkdir()
    src, dst = SyncSide(f"{proxy.url}/mf"), SyncSide(f"{dist.url}/mirror")
    result = anyio.run(lambda: sync_once(src, dst, state))
    assert result.status == "Failed", dumps(result.tasks)
    assert result.counts == {"copied": len(GOOD), "failed": len(BROKEN)}, result.counts
    _check_failed(result.tasks)
    with httpx.Client(base_url=dist.url) as d:
        for tag, want in good.items():
            assert digest_of(d, "mirror/app", tag) == want
        for tag in BROKEN:
            assert digest_of(d, "mirror/app", tag) is None

    # The next run plans again: the good ones are identical, the broken ones fail again; the
    # command (in a fresh interpreter, which never imports SQLAlchemy) says which and why, one
    # line each.
    args = ["sync", f"{proxy.url}/mf", f"{dist.url}/mirror", "--state-dir", str(state), "-q"]
    probe = subprocess.run(
        [sys.executable, "-c", _SYNC_PROBE, *args],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
    )
    assert probe.stdout.splitlines()[-1] == "exit 1, database modules: -", probe
    failed = [line for line in probe.stderr.splitlines() if line.startswith("  failed: ")]
    assert len(failed) == len(BROKEN), probe.stderr
    for tag, (_, says) in BROKEN.items():
        assert any(f"[{tag}]" in line and says in line for line in failed), (tag, probe.stderr)
    assert "Traceback" not in probe.stderr, probe.stderr
