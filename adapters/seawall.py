"""``seawall``: another Seawall (or this one). OCI Distribution 1.1 in full: the referrers API,
cross-repository mounts and tag deletes; repositories appear on first push (no namespaces to
create). Its registry sends push and delete events, so event-based triggers apply.
"""

from __future__ import annotations

from typing import ClassVar

from adapters.base import Capabilities, RegistryAdapter

__all__ = ["SeawallAdapter"]


class SeawallAdapter(RegistryAdapter):
    type: ClassVar[str] = "seawall"
    description: ClassVar[str] = "Seawall registry (OCI Distribution 1.1, referrers API)"
    capabilities: ClassVar[Capabilities] = Capabilities(
        catalog=True,
        referrers_api=True,
        blob_mount=True,
        chunked_upload=True,
        delete_tag=True,
        delete_manifest=True,
        create_namespace=False,
    )
