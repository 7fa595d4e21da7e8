"""What an ``azure-acr`` test talks to: the ACR fake in front of a real Seawall, and the
Microsoft Entra ID fake that azure-identity reaches over HTTPS.

- :func:`fake_aad` starts :class:`~tests.support.fake_aad.FakeAad` with one service principal
  (:data:`CLIENT_ID` / :data:`CLIENT_SECRET` in :data:`TENANT_ID`) and points
  ``REQUESTS_CA_BUNDLE`` (what azure-identity's HTTP stack trusts) at its CA while it runs;
- :func:`fake_acr` puts :class:`~tests.support.fake_acr.FakeAcr` in front of a Seawall, trusting
  that AAD's tokens;
- :func:`admin_config` / :func:`aad_config` are the endpoint configs a user would give.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from adapters.base import EndpointConfig
from tests.support.fake_aad import FakeAad
from tests.support.fake_acr import FakeAcr
from tests.support.server import SeawallProcess

__all__ = [
    "CLIENT_ID",
    "CLIENT_SECRET",
    "FAST",
    "TENANT_ID",
    "aad_config",
    "aad_options",
    "admin_config",
    "fake_aad",
    "fake_acr",
    "namespace",
]

TENANT_ID = "0b1c2d3e-4f50-4a61-8b72-93a4b5c6d7e8"
CLIENT_ID = "5e6f7a8b-9c0d-4e1f-a2b3-c4d5e6f7a8b9"
CLIENT_SECRET = "sp-secret-for-tests"
FAST: dict[str, Any] = {"backoff_base_seconds": 0.01}  # client options: no slow retries


@contextmanager
def fake_aad(directory: Path) -> Iterator[FakeAad]:
    """A started fake AAD with the test service principal, trusted while it runs."""
    aad = FakeAad(directory, TENANT_ID).start()
    aad.add_secret_client(CLIENT_ID, CLIENT_SECRET)
    try:
        with pytest.MonkeyPatch.context() as mp:
            mp.setenv("REQUESTS_CA_BUNDLE", str(aad.ca_file))
            yield aad
    finally:
        aad.stop()


def fake_acr(data_plane: SeawallProcess, aad: FakeAad | None = None, **kwargs: Any) -> FakeAcr:
    """An ACR fake (not started) in front of ``data_plane``, trusting ``aad``'s tokens."""
    return FakeAcr(
        data_plane.url,
        upstream_username="admin",
        upstream_password=data_plane.admin_password,
        aad_verifier=aad.verify if aad is not None else None,
        tenant_id=TENANT_ID,
        **kwargs,
    )


def admin_config(acr: FakeAcr, **options: str) -> EndpointConfig:
    return EndpointConfig(
        acr.url, username=acr.admin_username, password=acr.admin_password, options=options
    )


def aad_options(aad: FakeAad, **options: str) -> dict[str, str]:
    return {"auth": "aad-secret", "tenant_id": TENANT_ID, "authority_host": aad.url} | options


def aad_config(acr: FakeAcr, aad: FakeAad, secret: str = CLIENT_SECRET) -> EndpointConfig:
    """The service principal's login: client id and secret, tenant, the fake authority."""
    return EndpointConfig(acr.url, username=CLIENT_ID, password=secret, options=aad_options(aad))


def namespace() -> str:
    """A repository namespace of the test's own."""
    return f"acr{uuid.uuid4().hex[:10]}"
