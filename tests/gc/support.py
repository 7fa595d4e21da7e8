"""Helpers of the garbage-collection tests: a registry under test (:class:`Rig`), pushing with
the retries a real client makes, and the two checks every test ends with — every remaining
manifest pullable byte for byte, and the store holding exactly the referenced blobs."""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import random
import subprocess
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import anyio
import httpx

from registry.storage.gc import GcReport, blob_digest
from seawall.config import Settings, load_settings
from tests.support.client import OCI_MANIFEST, client, image_manifest, sha256
from tests.support.server import SeawallProcess

__all__ = ["Image", "Rig", "assert_pullable", "push_image"]


@dataclass(frozen=True)
class Image:
    repo: str
    tag: str
    digest: str
    manifest: bytes
    blobs: dict[str, bytes] = field(repr=False)


@dataclass
class Rig:
    """A running registry and, for this process, the settings it runs with."""

    backend: str
    server: SeawallProcess
    env: dict[str, str]
    settings: Settings

    @classmethod
    def of(cls, backend: str, server: SeawallProcess, env: dict[str, str]) -> Rig:
        settings = load_settings(
            overrides={"data_dir": str(server.data_dir)},
            environ={k: v for k, v in env.items() if k.startswith("SEAWALL_")},
        )
        return cls(backend, server, env, settings)

    def client(self) -> httpx.Client:
        return client(self.server.url, "admin", self.server.admin_password)

    def gc_command(self, *args: str) -> list[str]:
        return [
            sys.executable,
            "-m",
            "seawall",
            "gc",
            "--data-dir",
            str(self.server.data_dir),
            *args,
        ]

    def cli_env(self) -> dict[str, str]:
        return {k: v for k, v in os.environ.items() if not k.startswith("SEAWALL_")} | self.env

    def gc_cli(self, *args: str) -> dict[str, object]:
        """``seawall gc --json ARGS`` as a process; its report."""
        out = subprocess.run(
            [*self.gc_command("--json", *args)],
            env=self.cli_env(),
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert out.returncode == 0, out.stderr[-3000:]
        report: dict[str, object] = json.loads(out.stdout)
        return report

    def collect(
        self,
        grace: timedelta = timedelta(0),
        *,
        dry_run: bool = False,
        clock: Callable[[], datetime] | None = None,
    ) -> GcReport:
        """One collection in this process; ``clock`` (optional) is when it runs, as if the
        database's clock read that."""
        return asyncio.run(self._collect(grace, dry_run, clock))

    async def _collect(
        self, grace: timedelta, dry_run: bool, clock: Callable[[], datetime] | None
    ) -> GcReport:
        from registry.meta.gc import SqlGcIndex
        from registry.storage.gc import Collector, GcOptions, new_owner
        from seawall.app import build_services

        services = build_services(self.settings)
        try:
            # the database's time decides: a collection "later" sees it moved forward
            ahead = clock() - datetime.now(UTC) if clock is not None else timedelta(0)
            index = SqlGcIndex(services.sql, new_owner(), ahead=ahead)
            options = GcOptions(grace, dry_run)
            return await Collector(services.driver, index, options).run()
        finally:
            await services.close()

    def collect_until(self, stop: threading.Event, pause_s: float = 0.15) -> list[GcReport]:
        """Collections at grace 0 in this thread until ``stop`` is set, each after a random
        pause of up to ``pause_s`` (a collection spinning without pause at grace 0 would take
        every blob between its upload and its manifest, and no push would ever finish)."""

        async def loop() -> list[GcReport]:
            from registry.meta.gc import SqlGcIndex
            from registry.storage.gc import Collector, GcOptions, new_owner
            from seawall.app import build_services

            services = build_services(self.settings)
            reports = []
            try:
                while not stop.is_set():
                    await anyio.sleep(random.uniform(0, pause_s))
                    index = SqlGcIndex(services.sql, new_owner())
                    collector = Collector(services.driver, index, GcOptions(timedelta(0)))
                    reports.append(await collector.run())
            finally:
                await services.close()
            return reports

        return asyncio.run(loop())

    def holds(self) -> int:
        """Publication holds in the database (each push's link consumes its own)."""

        async def count() -> int:
            from seawall.app import build_services

            services = build_services(self.settings)
            try:
                row = await services.sql.one("SELECT count(*) FROM blob_hold")
                return int(row[0]) if row else 0
            finally:
                await services.close()

        return asyncio.run(count())

    def stored(self, under: str = "/blobs") -> dict[str, int]:
        """What the store holds (a blob's digest, or an upload's path → size)."""
        return asyncio.run(self._stored(under))

    async def _stored(self, under: str) -> dict[str, int]:
        from seawall.app import build_driver

        driver = build_driver(self.settings)
        try:
            out: dict[str, int] = {}
            async for info in driver.walk(under):
                digest = blob_digest(info.path)
                out[str(digest) if digest else info.path] = info.size_bytes
            return out
        finally:
            await driver.close()


def layer(seed: str, size: int) -> bytes:
    """``size`` incompressible bytes, the same for the same seed."""
    out = bytearray()
    block = hashlib.sha256(seed.encode()).digest()
    while len(out) < size:
        block = hashlib.sha256(block).digest()
        out += block * 32
    return bytes(out[:size])


def send_blob(c: httpx.Client, repo: str, data: bytes, mount_from: str | None = None) -> None:
    """Upload (or mount) one blob; raises on anything but success."""
    digest = sha256(data)
    if mount_from:
        r = c.post(f"/v2/{repo}/blobs/uploads/", params={"mount": digest, "from": mount_from})
        if r.status_code == 201:
            return
        assert r.status_code == 202, (r.status_code, r.text)
        r = c.put(r.headers["Location"], params={"digest": digest}, content=data)
    else:
        r = c.post(f"/v2/{repo}/blobs/uploads/", params={"digest": digest}, content=data)
    r.raise_for_status()


def push_image(
    c: httpx.Client,
    repo: str,
    tag: str,
    blobs: list[bytes],
    *,
    mount_from: str | None = None,
    attempts: int = 12,
) -> tuple[Image, int]:
    """Push blobs then the manifest; as a client does, push again after ``MANIFEST_BLOB_UNKNOWN``
    or ``503`` (a collection took a blob in between) or ``BLOB_UPLOAD_UNKNOWN`` (a collection
    at grace 0 took the session); (image, retries)."""
    config, layers = blobs[0], blobs[1:]
    manifest = image_manifest(config, layers)
    seen: list[str] = []
    for attempt in range(attempts):
        try:
            for i, data in enumerate(blobs):
                send_blob(c, repo, data, mount_from if i == len(blobs) - 1 else None)
            r = c.put(
                f"/v2/{repo}/manifests/{tag}",
                content=manifest,
                headers={"Content-Type": OCI_MANIFEST},
            )
            if r.status_code == 201:
                image = Image(repo, tag, sha256(manifest), manifest, {sha256(b): b for b in blobs})
                return image, attempt
            assert r.status_code == 400 and "MANIFEST_BLOB_UNKNOWN" in r.text, r.text
            seen.append(r.text[:300])
        except httpx.HTTPStatusError as e:
            seen.append(f"{e.request.method} {e.request.url.path}: {e.response.text[:300]}")
            # 503: the blob was being collected; 404 BLOB_UPLOAD_UNKNOWN: grace 0 also takes
            # upload sessions at once (a client starts the upload again)
            assert e.response.status_code in (404, 503), e.response.text
            if e.response.status_code == 404:
                assert "BLOB_UPLOAD_UNKNOWN" in e.response.text, e.response.text
    raise AssertionError(f"{repo}:{tag} not pushed in {attempts} attempts: {seen}")


def assert_pullable(c: httpx.Client, images: list[Image]) -> None:
    """Every image's manifest by digest, and every blob byte for byte (sha256 checked)."""
    for image in images:
        r = c.get(f"/v2/{image.repo}/manifests/{image.digest}", headers={"Accept": OCI_MANIFEST})
        assert r.status_code == 200 and r.content == image.manifest, (image, r.status_code)
        for digest in image.blobs:
            r = c.get(f"/v2/{image.repo}/blobs/{digest}", follow_redirects=True)
            assert r.status_code == 200, (image.repo, digest, r.status_code, r.text[:200])
            assert sha256(r.content) == digest, (image.repo, digest, "bytes differ")


def referenced(images: list[Image]) -> set[str]:
    return {d for image in images for d in image.blobs}
