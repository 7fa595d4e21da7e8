"""What a ``harbor`` test talks to: the Harbor fake in front of a real Seawall, its robot
accounts (created through Harbor's robot API, as a user would), and the endpoint configs a
user would give.

:data:`REPLICATION_ROBOT` is the least-privilege system robot account that the docs give
(``docs/adapters/harbor.md``): the tests log in with exactly that JSON.
"""

from __future__ import annotations

import uuid
from typing import Any

import httpx

from adapters.base import EndpointConfig
from tests.support.fake_harbor import FakeHarbor
from tests.support.server import SeawallProcess

__all__ = [
    "FAST",
    "PROJECT_ROBOT",
    "REPLICATION_ROBOT",
    "admin_config",
    "create_robot",
    "fake_harbor",
    "namespace",
    "robot_config",
]

FAST: dict[str, Any] = {"backoff_base_seconds": 0.01}  # client options: no slow retries


def _access(*pairs: str) -> list[dict[str, str]]:
    return [{"resource": r, "action": a} for r, _, a in (p.partition(":") for p in pairs)]


#: A system robot for replication to and from every project, creating projects on push and
#: registering Seawall's webhook (the docs' copy-paste JSON).
REPLICATION_ROBOT: dict[str, Any] = {
    "name": "seawall",
    "description": "Seawall replication",
    "level": "system",
    "duration": -1,
    "permissions": [
        {
            "kind": "system",
            "namespace": "/",
            "access": _access("project:create", "project:list"),
        },
        {
            "kind": "project",
            "namespace": "*",
            "access": _access(
                "repository:list",
                "repository:read",
                "repository:pull",
                "repository:push",
                "artifact:list",
                "artifact:delete",
                "tag:list",
                "tag:delete",
                "notification-policy:list",
                "notification-policy:create",
                "notification-policy:update",
            ),
        },
    ],
}


def PROJECT_ROBOT(project: str) -> dict[str, Any]:
    """A project robot that may pull and list ``project`` only (a pull-only source)."""
    return {
        "name": "reader",
        "level": "project",
        "duration": -1,
        "permissions": [
            {
                "kind": "project",
                "namespace": project,
                "access": _access(
                    "repository:list",
                    "repository:read",
                    "repository:pull",
                    "artifact:list",
                    "tag:list",
                ),
            }
        ],
    }


def fake_harbor(data_plane: SeawallProcess, **kwargs: Any) -> FakeHarbor:
    """A Harbor fake (not started) in front of ``data_plane``."""
    return FakeHarbor(
        data_plane.url,
        upstream_username="admin",
        upstream_password=data_plane.admin_password,
        **kwargs,
    )


def create_robot(harbor: FakeHarbor, body: dict[str, Any]) -> tuple[str, str]:
    """``(name, secret)`` of a robot account created through ``POST /api/v2.0/robots``."""
    r = httpx.post(
        f"{harbor.url}/api/v2.0/robots", json=body, auth=("admin", harbor.admin_password)
    )
    assert r.status_code == 201, r.text
    return r.json()["name"], r.json()["secret"]


def admin_config(harbor: FakeHarbor, **options: str) -> EndpointConfig:
    return EndpointConfig(
        harbor.url,
        username="admin",
        password=harbor.admin_password,
        options=tuple(sorted(options.items())),
    )


def robot_config(harbor: FakeHarbor, robot: tuple[str, str], **options: str) -> EndpointConfig:
    return EndpointConfig(
        harbor.url, username=robot[0], password=robot[1], options=tuple(sorted(options.items()))
    )


def namespace() -> str:
    """A Harbor project name of the test's own."""
    return f"hb{uuid.uuid4().hex[:10]}"
