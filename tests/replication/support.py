"""Driving replication through the management API, as a user would."""

from __future__ import annotations

import json
import os
import time
from typing import Any

import httpx

from tests.support.client import ACCEPT, OCI_MANIFEST, image_manifest, push_blob, sha256


def api(url: str, password: str) -> httpx.Client:
    return httpx.Client(base_url=f"{url}/api/v2.0", auth=("admin", password), timeout=60.0)


def add_endpoint(
    c: httpx.Client,
    name: str,
    url: str,
    type_: str = "docker-registry",
    username: str = "",
    password: str = "",
) -> int:
    body: dict[str, Any] = {"name": name, "type": type_, "url": url, "insecure": True}
    if username:
        body["credential"] = {"type": "basic", "access_key": username, "access_secret": password}
    r = c.post("/registries", json=body)
    assert r.status_code == 201, r.text
    return int(r.headers["Location"].rsplit("/", 1)[1])


def add_policy(
    c: httpx.Client, name: str, *, src: int | None = None, dest: int | None = None, **fields: Any
) -> int:
    body: dict[str, Any] = {
        "name": name,
        "src_registry": {"id": src} if src else None,
        "dest_registry": {"id": dest} if dest else None,
        "trigger": {"type": "manual"},
        "enabled": True,
        "override": True,
        **fields,
    }
    r = c.post("/replication/policies", json=body)
    assert r.status_code == 201, r.text
    return int(r.headers["Location"].rsplit("/", 1)[1])


def start(c: httpx.Client, policy_id: int, *, dry_run: bool = False) -> int:
    r = c.post("/replication/executions", json={"policy_id": policy_id, "dry_run": dry_run})
    assert r.status_code == 201, r.text
    return int(r.headers["Location"].rsplit("/", 1)[1])


def wait(c: httpx.Client, eid: int, timeout_s: float = 120.0) -> dict[str, Any]:
    """The execution once it has ended (tolerates a server that is restarting meanwhile)."""
    deadline = time.monotonic() + timeout_s
    status = "unknown"
    while time.monotonic() < deadline:
        try:
            ex: dict[str, Any] = c.get(f"/replication/executions/{eid}").json()
        except httpx.HTTPError:
            time.sleep(0.5)
            continue
        status = ex["status"]
        if status not in ("Pending", "InProgress"):
            return ex
        time.sleep(0.3)
    raise AssertionError(f"execution {eid} still {status} after {timeout_s}s")


def run(
    c: httpx.Client, policy_id: int, *, dry_run: bool = False, timeout_s: float = 120.0
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Start an execution, wait for it to end, return it with its tasks."""
    eid = start(c, policy_id, dry_run=dry_run)
    ex = wait(c, eid, timeout_s)
    tasks = c.get(f"/replication/executions/{eid}/tasks", params={"page_size": 100}).json()
    return ex, tasks


def digest_of(c: httpx.Client, repo: str, ref: str) -> str | None:
    r = c.get(f"/v2/{repo}/manifests/{ref}", headers={"Accept": ACCEPT})
    if r.status_code == 404:
        return None
    assert r.status_code == 200, (repo, ref, r.status_code, r.text)
    assert sha256(r.content) == r.headers["Docker-Content-Digest"]
    return r.headers["Docker-Content-Digest"]


def tags(c: httpx.Client, repo: str) -> list[str]:
    r = c.get(f"/v2/{repo}/tags/list")
    return [] if r.status_code == 404 else sorted(r.json().get("tags") or [])


def outcomes(tasks: list[dict[str, Any]]) -> dict[str, int]:
    out: dict[str, int] = {}
    for t in tasks:
        out[t.get("outcome") or t["status"]] = out.get(t.get("outcome") or t["status"], 0) + 1
    return out


def dumps(x: Any) -> str:
    return json.dumps(x, indent=1, default=str)[:3000]


def push_big_images(
    c: httpx.Client, prefix: str, count: int, layer_mib: int
) -> dict[tuple[str, str], str]:
    """One image ``<prefix>/rNN:v1`` per repository with a random layer of ``layer_mib`` (takes
    time to copy); returns ``{(repository, tag): digest}``."""
    want = {}
    for i in range(count):
        repo = f"{prefix}/r{i:02d}"
        config = json.dumps({"architecture": "amd64", "os": "linux", "n": i}).encode()
        layer = os.urandom(layer_mib << 20)
        push_blob(c, repo, config)
        push_blob(c, repo, layer)
        manifest = image_manifest(config, [layer])
        r = c.put(
            f"/v2/{repo}/manifests/v1", content=manifest, headers={"Content-Type": OCI_MANIFEST}
        )
        assert r.status_code == 201, r.text
        want[(repo, "v1")] = sha256(manifest)
    return want
