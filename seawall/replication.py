"""Wiring of replication: OCI clients for endpoints (and for this registry), the replication
service, and the management API's seams."""

from __future__ import annotations

import hashlib
import hmac
from pathlib import Path

import anyio

from adapters.oci.client import OciClient
from engine.api.context import EndpointSpec
from engine.state.models import RegistryEndpoint
from engine.state.secrets import SecretBox
from registry.meta.db import Database
from seawall.config import Settings

__all__ = ["REPLICATOR", "EndpointClients", "replicator_password"]

REPLICATOR = "seawall-replicator"  # internal admin account the engine uses on this registry
E = RegistryEndpoint.__table__  # type: ignore[attr-defined]


def replicator_password(token_key: bytes) -> str:
    """Derived from the token key, so every node of a cluster knows it without storing it."""
    return hmac.new(token_key, b"seawall replicator account", hashlib.sha256).hexdigest()


def local_url(settings: Settings) -> str:
    host = settings.host if settings.host not in ("0.0.0.0", "::", "") else "127.0.0.1"
    return f"http://{host}:{settings.port}"


class EndpointClients:
    """Opens the one OCI client for a registry endpoint id (``None``: this registry)."""

    def __init__(
        self, settings: Settings, db: Database, secrets: SecretBox, token_key: bytes
    ) -> None:
        self.settings, self.db, self.secrets = settings, db, secrets
        self._local_password = replicator_password(token_key)
        self._ca_dir = settings.data_path / "ca"

    async def __call__(self, registry_id: int | None) -> OciClient:
        if registry_id is None or registry_id == 0:
            return OciClient(
                local_url(self.settings), username=REPLICATOR, password=self._local_password
            )
        async with self.db.read() as c:
            from sqlalchemy import select

            row = (await c.execute(select(E).where(E.c.id == registry_id))).mappings().first()
        if row is None:
            raise LookupError(f"registry endpoint {registry_id} does not exist")
        secret = (
            self.secrets.decrypt(row["access_secret_encrypted"])
            if row["access_secret_encrypted"]
            else ""
        )
        return self._client(
            {
                "id": row["id"],
                "name": row["name"],
                "type": row["type"],
                "url": row["url"],
                "credential_type": row["credential_type"],
                "access_key": row["access_key"],
                "access_secret": secret,
                "insecure": row["insecure"],
                "ca_certificate": row["ca_certificate"],
            }
        )

    def _client(self, spec: EndpointSpec) -> OciClient:
        ca_file = None
        if spec["ca_certificate"]:
            self._ca_dir.mkdir(parents=True, exist_ok=True)
            digest = hashlib.sha256(spec["ca_certificate"].encode()).hexdigest()[:16]
            path = Path(self._ca_dir / f"{digest}.pem")
            if not path.exists():
                path.write_text(spec["ca_certificate"])
            ca_file = str(path)
        user = spec["access_key"] or None
        if spec["credential_type"] == "oauth" and not user:
            return OciClient(
                spec["url"],
                token=spec["access_secret"] or None,
                insecure=spec["insecure"],
                ca_file=ca_file,
            )
        return OciClient(
            spec["url"],
            username=user,
            password=spec["access_secret"] or None,
            insecure=spec["insecure"],
            ca_file=ca_file,
        )

    async def ping(self, spec: EndpointSpec) -> tuple[bool, str]:
        """Health of an endpoint: ``GET /v2/`` through the auth flow, within 10 seconds."""
        client = self._client(spec)
        try:
            with anyio.fail_after(10):
                result = await client.ping()
            return True, f"HTTP {result.status}, auth {result.auth_scheme or 'none'}"
        except TimeoutError:
            return False, "no answer within 10 seconds"
        except Exception as e:  # any failure means unhealthy, with what went wrong
            return False, str(e)[:500]
        finally:
            await client.close()
