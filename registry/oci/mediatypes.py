"""Media types the registry knows."""

from __future__ import annotations

__all__ = [
    "DOCKER_CONFIG",
    "DOCKER_MANIFEST",
    "DOCKER_MANIFEST_LIST",
    "INDEX_TYPES",
    "MANIFEST_TYPES",
    "OCI_EMPTY",
    "OCI_INDEX",
    "OCI_MANIFEST",
    "SEAWALL_CATALOG",
    "SEAWALL_TAG_LIST",
]

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_EMPTY = "application/vnd.oci.empty.v1+json"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_MANIFEST_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"

IMAGE_TYPES = frozenset({OCI_MANIFEST, DOCKER_MANIFEST})
INDEX_TYPES = frozenset({OCI_INDEX, DOCKER_MANIFEST_LIST})
MANIFEST_TYPES = IMAGE_TYPES | INDEX_TYPES

#: Seawall's tag list: the OCI ``{"name", "tags"}`` body plus ``"manifests": {tag: {"digest",
#: "mediaType", "size"}}``, sent when a client's ``Accept`` names it (a replicator lists tags and
#: their digests in one request instead of a ``HEAD`` per tag). Other registries ignore the
#: ``Accept`` and answer plain ``application/json``.
SEAWALL_TAG_LIST = "application/vnd.seawall.tag-list.v1+json"

#: Seawall's catalog: the OCI ``{"repositories"}`` body plus ``"listings": {repository:
#: {"tags", "manifests"}}`` (each as in :data:`SEAWALL_TAG_LIST`), at most 100 repositories a
#: page, optionally only names starting with ``prefix=``: a replicator lists a whole source in
#: a request or two.
SEAWALL_CATALOG = "application/vnd.seawall.catalog.v1+json"
