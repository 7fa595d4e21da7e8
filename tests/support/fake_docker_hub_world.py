"""What a ``docker-hub`` test talks to: :class:`~tests.support.fake_docker_hub.FakeDockerHub`
in front of a real Seawall, one Docker ID (:data:`USER` with an access token, :data:`PAT`)
owning the namespaces the test names, and the endpoint configs a user would give."""

from __future__ import annotations

import uuid
from typing import Any

from adapters.base import EndpointConfig
from tests.support.fake_docker_hub import FakeDockerHub
from tests.support.server import SeawallProcess

__all__ = ["FAST", "PAT", "USER", "anonymous_config", "fake_hub", "hub_config", "namespace"]

USER = "hubuser"
PAT = "dckr_pat_fake-access-token"
FAST: dict[str, Any] = {"backoff_base_seconds": 0.01}  # client options: no slow retries


def fake_hub(
    data_plane: SeawallProcess, namespaces: tuple[str, ...] = (), **kwargs: Any
) -> FakeDockerHub:
    """A Hub fake (not started) in front of ``data_plane``; :data:`USER` owns ``namespaces``."""
    hub = FakeDockerHub(
        data_plane.url,
        upstream_username="admin",
        upstream_password=data_plane.admin_password,
        **kwargs,
    )
    hub.add_user(USER, PAT, namespaces)
    return hub


def hub_config(hub: FakeDockerHub, **options: str) -> EndpointConfig:
    """:data:`USER`'s login on the fake (registry and Hub API at the fake's URL)."""
    return EndpointConfig(
        hub.url, username=USER, password=PAT, options={"hub_url": hub.url, **options}
    )


def anonymous_config(hub: FakeDockerHub, **options: str) -> EndpointConfig:
    return EndpointConfig(hub.url, options={"hub_url": hub.url, **options})


def namespace() -> str:
    """A Hub namespace of the test's own."""
    return f"ns{uuid.uuid4().hex[:10]}"
