"""What the ``google-gar`` / ``google-gcr`` tests share: a :class:`FakeGoogle` in front of a
real Seawall, one service-account key, one project with one Artifact Registry repository, and
the endpoint configs and API bodies that reach them."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from adapters.base import EndpointConfig
from tests.support.fake_google import FakeGoogle
from tests.support.server import SeawallProcess

__all__ = ["EMAIL", "FAST", "LOCATION", "PROJECT", "REPOSITORY", "GoogleWorld", "google_world"]

PROJECT = "seawall-proj"
REPOSITORY = "images"
LOCATION = "us-central1"
EMAIL = f"replicator@{PROJECT}.iam.gserviceaccount.com"
FAST: dict[str, Any] = {"backoff_base_seconds": 0.01}  # client options: quick retries


@dataclass
class GoogleWorld:
    fake: FakeGoogle
    key: dict[str, str]  # the service-account key (JSON object)

    @property
    def key_json(self) -> str:
        return json.dumps(self.key)

    @property
    def key_id(self) -> str:
        return self.key["private_key_id"]

    def options(self, **more: str) -> dict[str, str]:
        """GAR options for the fake: project, location, API endpoint (and ``more``)."""
        base = {"project": PROJECT, "location": LOCATION, "api_endpoint": self.fake.url}
        return base | more

    def config(
        self, username: str | None = "oauth2accesstoken", password: str | None = None, **opts: str
    ) -> EndpointConfig:
        """An endpoint config for the fake (GAR options when the fake is GAR); the password
        defaults to the key JSON."""
        if username is not None and password is None:
            password = self.key_json
        options = self.options(**opts) if self.fake.flavor == "gar" else opts
        pairs = tuple(sorted(options.items()))
        return EndpointConfig(
            self.fake.url, username=username, password=password, insecure=True, options=pairs
        )

    def endpoint_body(self, name: str, access_key: str = "_json_key") -> dict[str, Any]:
        """A management API ``POST /registries`` body for the fake."""
        body: dict[str, Any] = {
            "name": name,
            "type": f"google-{self.fake.flavor}",
            "url": self.fake.url,
            "insecure": True,
            "credential": {
                "type": "basic",
                "access_key": access_key,
                "access_secret": self.key_json,
            },
        }
        if self.fake.flavor == "gar":
            body["options"] = self.options()
        return body


@contextmanager
def google_world(backend: SeawallProcess, flavor: str = "gar") -> Iterator[GoogleWorld]:
    """A started fake in front of ``backend`` with a key and ``PROJECT/REPOSITORY``."""
    fake = FakeGoogle(
        backend.url, ("admin", backend.admin_password), flavor=flavor, location=LOCATION
    ).start()
    try:
        key = fake.new_service_account(EMAIL)
        fake.create_repository(PROJECT, REPOSITORY)
        yield GoogleWorld(fake, key)
    finally:
        fake.stop()
