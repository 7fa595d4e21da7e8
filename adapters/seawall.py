"""``seawall``: another Seawall (or this one). OCI Distribution 1.1 in full: the referrers API,
cross-repository mounts and tag deletes; repositories appear on first push (no namespaces to
create). Its registry sends push and delete events, so event-based triggers apply.

A Seawall records where and when each tag was written (its *origin*) and leaves a tombstone for
a deleted one (:mod:`registry.oci.origin`): its listings say them (:class:`OriginListing`), and
the origins replication carries to it are kept. Two Seawalls replicating to each other settle a
tag written differently in both by the endpoints' conflict rule (options ``conflict_rule`` and
``primary_region``; :mod:`engine.conflicts`); without one the source is the authority.
"""

from __future__ import annotations

import re
from typing import Any, ClassVar, Protocol, runtime_checkable

from adapters.base import (
    AdapterOption,
    Capabilities,
    EndpointConfig,
    InvalidEndpoint,
    RegistryAdapter,
)
from adapters.oci.client import TagListing

__all__ = ["CONFLICT_RULES", "OriginListing", "SeawallAdapter"]

#: ``conflict_rule`` values: the later write wins, or the repository's primary region's.
CONFLICT_RULES = ("none", "last-writer-wins", "primary")
_REGION = r"[a-z0-9]+(?:[._-][a-z0-9]+)*"
_PRIMARY = rf"(?:[^=,\s]+=)?{_REGION}(?:,(?:[^=,\s]+=)?{_REGION})*"


@runtime_checkable
class OriginListing(Protocol):
    """An adapter whose listings carry each tag's origin and the repository's tombstones."""

    async def list_tag_states(self, repo: str) -> TagListing: ...

    async def catalog_states(
        self, prefix: str = ""
    ) -> tuple[list[str], dict[str, TagListing] | None]: ...


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
    options_spec: ClassVar[tuple[AdapterOption, ...]] = (
        AdapterOption(
            name="conflict_rule",
            help="for Seawalls replicating to each other: how a tag written differently here "
            "and there is settled — last-writer-wins (the later write, by the time of the "
            "region that took it) or primary (the write made in the repository's primary "
            "region); a deleted tag is then never copied back. none (the default): the source "
            "is the authority, as in Harbor",
            choices=CONFLICT_RULES,
            example="primary",
        ),
        AdapterOption(
            name="primary_region",
            help="with conflict_rule primary: the primary region, or GLOB=REGION pairs "
            "separated by commas (the first glob matching the repository names it; a bare "
            "REGION: every other repository)",
            pattern=_PRIMARY,
            example="apps/**=a,c",
        ),
    )

    @classmethod
    def check_config(cls, config: EndpointConfig) -> None:
        super().check_config(config)
        rule = config.option("conflict_rule", "none")
        primary = config.option("primary_region")
        if rule == "primary" and not primary:
            raise InvalidEndpoint(
                "seawall --conflict-rule primary needs --primary-region (e.g. a, or apps/**=a,c)"
            )
        if primary and rule != "primary":
            raise InvalidEndpoint(
                "seawall --primary-region is used only with --conflict-rule primary"
            )
        if primary and len(re.findall(",", primary)) > 63:
            raise InvalidEndpoint("seawall --primary-region: at most 64 GLOB=REGION pairs")

    def client_kwargs(self) -> dict[str, Any]:
        return {**super().client_kwargs(), "origins": True}

    async def list_tag_states(self, repo: str) -> TagListing:
        """:meth:`list_tag_refs` with the tags' origins and the repository's tombstones.

        :raises adapters.oci.errors.NotFound: no such repository.
        """
        return await self.client().list_tag_states(repo)

    async def catalog_states(
        self, prefix: str = ""
    ) -> tuple[list[str], dict[str, TagListing] | None]:
        """:meth:`catalog_listings` with each repository's origins and tombstones."""
        return await self.client().catalog_states(prefix)
