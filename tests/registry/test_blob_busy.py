"""A push that meets a blob garbage collection is deleting right now is told to come back:
``503 UNAVAILABLE`` with ``Retry-After``, not a bare storage error; sent again once the
collection is done, it succeeds."""

from __future__ import annotations

import hashlib
import sqlite3
from datetime import UTC, datetime
from pathlib import Path

import anyio
import httpx

from registry.http.app import BLOB_BUSY_RETRY_SECONDS, RegistryApp
from seawall.app import bootstrap, build_services
from seawall.config import load_settings

PASSWORD = "busy-admin-pw"


def test_a_blob_being_collected_answers_503_with_retry_after(tmp_path: Path) -> None:
    settings = load_settings(
        overrides={"data_dir": str(tmp_path / "data"), "admin_password": PASSWORD}, environ={}
    )
    blob = b"a layer garbage collection is deleting" * 100
    digest = "sha256:" + hashlib.sha256(blob).hexdigest()

    async def go() -> tuple[httpx.Response, httpx.Response]:
        await bootstrap(settings)
        services = build_services(settings)
        services.context.content.fence.wait_seconds = 0.2  # how long a publication waits
        now = datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")
        with sqlite3.connect(settings.data_path / "seawall.db") as db:  # a collection's claim
            db.execute(
                "INSERT INTO blob_gc (digest, marked_at, claimed_at, owner) VALUES (?, ?, ?, ?)",
                (digest, now, now, "collector"),
            )
        transport = httpx.ASGITransport(app=RegistryApp(services.context))
        try:
            async with httpx.AsyncClient(
                transport=transport, base_url="http://seawall.test", auth=("admin", PASSWORD)
            ) as c:
                url = f"/v2/busy/app/blobs/uploads/?digest={digest}"
                busy = await c.post(url, content=blob)
                with sqlite3.connect(settings.data_path / "seawall.db") as db:
                    db.execute("DELETE FROM blob_gc WHERE digest = ?", (digest,))  # it is done
                again = await c.post(url, content=blob)
                return busy, again
        finally:
            await services.close()

    busy, again = anyio.run(go)
    assert busy.status_code == 503
    assert busy.headers["retry-after"] == str(BLOB_BUSY_RETRY_SECONDS)
    error = busy.json()["errors"][0]
    assert error["code"] == "UNAVAILABLE" and "send the request again" in error["message"]
    assert error["detail"]["reason"] == "blob busy"
    assert again.status_code == 201, again.text
