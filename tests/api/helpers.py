"""Small builders shared by the API tests."""

from __future__ import annotations

from typing import Any

import httpx

__all__ = ["created_id", "make_policy", "make_registry", "registry_body"]


def created_id(response: httpx.Response) -> int:
    assert response.status_code == 201, response.text
    return int(response.headers["location"].rsplit("/", 1)[1])


def registry_body(name: str, **extra: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "name": name,
        "type": "docker-registry",
        "url": f"https://{name}.example.com",
        "description": f"{name} endpoint",
        "credential": {"type": "basic", "access_key": "robot", "access_secret": "hunter2"},
        "insecure": False,
    }
    body.update(extra)
    return body


def make_registry(c: httpx.Client, name: str, **extra: Any) -> int:
    return created_id(c.post("/registries", json=registry_body(name, **extra)))


def make_policy(c: httpx.Client, name: str, src: int | None, **extra: Any) -> int:
    body: dict[str, Any] = {
        "name": name,
        "src_registry": {"id": src} if src else None,
        "dest_registry": None if src else {"id": extra.pop("dest")},
        "filters": [{"type": "name", "value": "library/**"}],
        "trigger": {"type": "manual"},
    }
    body.update(extra)
    return created_id(c.post("/replication/policies", json=body))
