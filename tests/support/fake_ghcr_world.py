"""What a ``github-ghcr`` test talks to: :class:`~tests.support.fake_ghcr.FakeGhcr` in front of
a real Seawall, and the endpoint configs a user would give it."""

from __future__ import annotations

import uuid
from typing import Any

from adapters.base import EndpointConfig
from tests.support.fake_ghcr import ADMIN_PAT, ADMIN_USER, FakeGhcr
from tests.support.server import SeawallProcess

__all__ = ["FAST", "config", "endpoint_body", "fake_ghcr", "owner"]

FAST: dict[str, Any] = {"backoff_base_seconds": 0.01, "retries": 1}  # no slow retries


def fake_ghcr(data_plane: SeawallProcess, **kwargs: Any) -> FakeGhcr:
    """A GHCR fake (not started) in front of ``data_plane``."""
    return FakeGhcr(
        data_plane.url,
        upstream_username="admin",
        upstream_password=data_plane.admin_password,
        **kwargs,
    )


def config(
    ghcr: FakeGhcr, pat: str = ADMIN_PAT, username: str = ADMIN_USER, **options: str
) -> EndpointConfig:
    """The endpoint a user gives: the registry, the API beside it, a username and a PAT."""
    return EndpointConfig(
        ghcr.url, username=username, password=pat, options={"api_url": ghcr.url} | options
    )


def endpoint_body(
    name: str, ghcr: FakeGhcr, pat: str = ADMIN_PAT, **options: str
) -> dict[str, Any]:
    """The management API's ``POST /registries`` body for the fake."""
    return {
        "name": name,
        "type": "github-ghcr",
        "url": ghcr.url,
        "insecure": True,
        "credential": {"type": "basic", "access_key": ADMIN_USER, "access_secret": pat},
        "options": {"api_url": ghcr.url} | options,
    }


def owner(ghcr: FakeGhcr, kind: str = "Organization") -> str:
    """A GitHub owner of the test's own, known to the fake."""
    login = f"gh{uuid.uuid4().hex[:10]}"
    ghcr.add_owner(login, kind)
    return login
