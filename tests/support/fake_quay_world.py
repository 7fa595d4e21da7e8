"""What a ``quay`` test talks to: the Quay fake in front of a real Seawall, with a robot and an
OAuth application token set up, and the endpoint configs a user would give.

- namespace :data:`ORG` (``conformance``): robot ``conformance+ci`` with write on every
  repository (an organization default permission), and the OAuth token of user
  :data:`USER`, a member, with ``repo:read``, ``repo:write``, ``repo:create``, ``user:read``;
- namespace :data:`LEGACY_ORG` (``legacy``): robot ``legacy+ci`` with the creator role (a push
  creates the repository), for endpoints without an API token.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from adapters.base import EndpointConfig
from tests.support.fake_quay import FakeQuay
from tests.support.server import SeawallProcess

__all__ = ["FAST", "LEGACY_ORG", "ORG", "USER", "QuayWorld", "namespace", "quay_world"]

ORG = "conformance"
LEGACY_ORG = "legacy"
USER = "seawallbot"
FAST: dict[str, Any] = {"backoff_base_seconds": 0.01}  # client options: no slow retries


@dataclass(frozen=True)
class QuayWorld:
    """A started fake and the logins on it."""

    fake: FakeQuay
    robot: tuple[str, str]  # (ORG+ci, token)
    legacy_robot: tuple[str, str]  # (LEGACY_ORG+ci, token): creator, no API
    oauth_token: str
    token_file: Path  # holds oauth_token

    def robot_config(self, **options: str) -> EndpointConfig:
        """The robot with the API token from its file (and ``options``)."""
        user, token = self.robot
        opts = {"api_token_file": str(self.token_file)} | options
        return EndpointConfig(
            self.fake.url, username=user, password=token, options=tuple(sorted(opts.items()))
        )

    def oauth_config(self, **options: str) -> EndpointConfig:
        """The OAuth token alone (Harbor's ``oauth`` credential)."""
        return EndpointConfig(
            self.fake.url, token=self.oauth_token, options=tuple(sorted(options.items()))
        )

    def legacy_config(self, **options: str) -> EndpointConfig:
        user, token = self.legacy_robot
        return EndpointConfig(
            self.fake.url, username=user, password=token, options=tuple(sorted(options.items()))
        )


def quay_world(data_plane: SeawallProcess, directory: Path, **kwargs: Any) -> QuayWorld:
    """A started Quay fake in front of ``data_plane`` with the logins above (stop
    ``world.fake`` when done)."""
    fake = FakeQuay(
        data_plane.url,
        upstream_username="admin",
        upstream_password=data_plane.admin_password,
        **kwargs,
    ).start()
    token = fake.add_oauth_token(USER, [ORG])
    token_file = directory / "quay-api-token"
    token_file.write_text(token + "\n")
    return QuayWorld(
        fake,
        fake.add_robot(ORG, "ci"),
        fake.add_robot(LEGACY_ORG, "ci", creator=True),
        token,
        token_file,
    )


def namespace() -> str:
    """A namespace of the test's own."""
    return f"q{uuid.uuid4().hex[:10]}"
