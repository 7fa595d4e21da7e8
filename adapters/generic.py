"""``docker-registry``: any registry that speaks the OCI Distribution / Docker Registry v2 API
(CNCF distribution, Zot, Nexus, Artifactory, ...). Harbor's type name for the same adapter.

Declared for the least such a registry offers — distribution 2.8 with deletes enabled, the
conformance yardstick: no tag deletes (the engine deletes by digest when no other tag shares
it); the referrers API is probed per registry (distribution 3, Zot and Harbor 2.8+ have it).
"""

from __future__ import annotations

from typing import ClassVar

from adapters.base import Capabilities, RegistryAdapter

__all__ = ["DockerRegistryAdapter"]


class DockerRegistryAdapter(RegistryAdapter):
    type: ClassVar[str] = "docker-registry"
    description: ClassVar[str] = "Any OCI Distribution (Docker Registry HTTP API v2) registry"
    capabilities: ClassVar[Capabilities] = Capabilities(
        catalog=True,
        referrers_api=False,
        blob_mount=True,
        chunked_upload=True,
        delete_tag=False,
        delete_manifest=True,
        create_namespace=False,
    )
    probed: ClassVar[frozenset[str]] = frozenset({"referrers_api"})
