"""``HarborClient``: the OCI client for one Harbor, with Harbor's API beside it.

Harbor's ``/v2`` answers ``400 UNSUPPORTED`` to ``DELETE /v2/<name>/manifests/<tag>`` (it
deletes artifacts by digest only), so :meth:`HarborClient.delete_tag` removes a tag through
the API (``DELETE /api/v2.0/projects/{p}/repositories/{r}/artifacts/{tag}/tags/{tag}``), which
leaves the artifact and its other tags in place. Everything else is the OCI client's.
"""

from __future__ import annotations

from typing import Any

from adapters.harbor_api import HarborApi
from adapters.oci.client import OciClient
from adapters.oci.errors import RequestRejected
from adapters.oci.urls import is_digest
from registry.oci.origin import Origin
from registry.oci.reference import is_valid_tag

__all__ = ["HarborClient"]


class HarborClient(OciClient):
    """An :class:`OciClient` whose :attr:`api` is Harbor's API with the same login."""

    def __init__(self, base_url: str, **kwargs: Any) -> None:
        super().__init__(base_url, **kwargs)
        creds = self.auth.credentials
        self.api = HarborApi.with_login(self.base_url, self.session, creds.username, creds.password)

    async def delete_tag(self, repo: str, tag: str, *, origin: Origin | None = None) -> None:
        """Remove one tag through Harbor's API (the artifact and its other tags stay).
        NotFound if the tag is not there."""
        if is_digest(tag) or not is_valid_tag(tag):
            raise RequestRejected(f"delete_tag needs a tag, got {tag[:200]!r}")
        await self.api.delete_tag(repo, tag, tag)
