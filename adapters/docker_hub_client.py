"""``HubClient``: the OCI client with Docker Hub's differences.

- **Names.** A one-component name read from Hub is an official image: ``alpine`` is
  ``library/alpine`` (:func:`~adapters.docker_hub_config.hub_repository`); every read maps it.
- **The pull limit.** Every manifest answer's ``ratelimit-*`` headers feed a
  :class:`~adapters.docker_hub_limits.PullBudget`; a manifest ``GET`` goes only while the
  budget is above the endpoint's floor, and a ``429 TOOMANYREQUESTS`` of the pull limit becomes
  :class:`~adapters.docker_hub_limits.PullLimitReached`, saying what is left and when (Hub's
  other throttling stays a plain :class:`~adapters.oci.errors.RateLimited`, its
  ``Retry-After`` honoured by the client).
- **HEAD before GET.** A manifest asked for by tag is resolved with a ``HEAD`` (free) and then
  fetched by digest: a tag that does not exist (the referrers tag schema's, most often) costs
  no pull. At the floor, a ``HEAD`` refreshes the reading before the ``GET`` is refused.
- **Deletes.** Hub's registry deletes nothing: a tag is deleted through the Hub API
  (:meth:`HubClient.delete_tag`); a manifest cannot be (``Unsupported``).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from contextvars import ContextVar
from typing import Any

from adapters.docker_hub_api import HubApi
from adapters.docker_hub_config import hub_repository
from adapters.docker_hub_limits import ObservingTransport, PullBudget
from adapters.oci.blobs import BlobStream
from adapters.oci.client import OciClient, TagListing
from adapters.oci.errors import NotFound, RateLimited, Unsupported
from adapters.oci.origins import TagHead
from adapters.oci.types import Manifest, ManifestRef
from adapters.oci.urls import is_digest
from registry.oci.manifest import Descriptor
from registry.oci.origin import Origin

__all__ = ["HubClient"]

#: set while get_manifest resolves a tag with a HEAD (the base client's HEAD asks get_manifest
#: when the answer lacks a digest, length or media type: that GET must not HEAD again)
_resolving: ContextVar[bool] = ContextVar("hub_resolving", default=False)


class HubClient(OciClient):
    """:class:`OciClient` for Docker Hub (see the module).

    :param budget: the endpoint's pull budget (its floor and clock).
    :param hub_api: where tags are deleted.
    Other arguments are :class:`OciClient`'s.
    """

    def __init__(self, base_url: str, *, budget: PullBudget, hub_api: HubApi, **kwargs: Any):
        super().__init__(base_url, **kwargs)
        self.budget = budget
        self.hub_api = hub_api
        observed = ObservingTransport(self.session.transport, budget)
        self.session.transport = observed  # every answer passes it, auth flow and retries too

    # -- manifests ---------------------------------------------------------------------------

    async def head_manifest(self, repo: str, reference: str) -> ManifestRef | None:
        return await super().head_manifest(hub_repository(repo), reference)

    async def head_tag(self, repo: str, tag: str) -> TagHead:
        return await super().head_tag(hub_repository(repo), tag)

    async def get_manifest(self, repo: str, reference: str) -> Manifest:
        """The manifest's bytes: by tag, a ``HEAD`` first (free), then a ``GET`` by digest;
        by digest, a ``GET`` (with a ``HEAD`` first only to re-read a budget at its floor).

        :raises NotFound: no such manifest (no pull spent).
        :raises PullLimitReached: the budget is at the floor, or Hub answered 429.
        """
        repo = hub_repository(repo)
        digest = reference
        if _resolving.get():  # the HEAD below told too little: the base client asks a GET
            return await self._spend_get(repo, reference)
        if not is_digest(reference) or not self.budget.allows():
            token = _resolving.set(True)
            try:
                ref = await super().head_manifest(repo, reference)
            finally:
                _resolving.reset(token)
            if ref is None:
                raise NotFound(
                    f"no manifest {repo}:{reference} on Docker Hub",
                    status=404,
                    code="MANIFEST_UNKNOWN",
                    method="HEAD",
                    url=self.endpoint.manifest(repo, reference),
                )
            digest = ref.digest
        return await self._spend_get(repo, digest)

    async def _spend_get(self, repo: str, reference: str) -> Manifest:
        """One manifest ``GET``, through the budget's gate; a 429 spends the budget."""
        url = self.endpoint.manifest(repo, reference)
        what = f"{repo}@{reference}" if is_digest(reference) else f"{repo}:{reference}"
        with self.budget.spend(what, url):
            try:
                return await super().get_manifest(repo, reference)
            except RateLimited as error:
                if not self._pull_limit(error):
                    raise  # Hub's other throttling: the client waited what it could
                self.budget.exhausted()
                raise self.budget.refusal(what, url, status=429) from error

    def _pull_limit(self, error: RateLimited) -> bool:
        """Whether a 429 is the pull limit (its message, or a reading of 0 left on it), not
        Hub's throttling of request rates (which frees up in seconds)."""
        reading = self.budget.current()
        spent = reading is not None and reading.remaining <= 0
        return error.status == 429 and (spent or "pull rate limit" in error.message.lower())

    async def delete_manifest(
        self, repo: str, digest: str, *, origin: Origin | None = None
    ) -> None:
        """Docker Hub's registry deletes no manifest, and its API deletes tags only."""
        raise Unsupported(
            f"Docker Hub cannot delete the manifest {repo}@{digest} through its registry; "
            "delete its tags (deletion sync does) or the repository on hub.docker.com",
            status=405,
            code="UNSUPPORTED",
            method="DELETE",
            url=self.endpoint.manifest(repo, digest),
        )

    async def delete_tag(self, repo: str, tag: str, *, origin: Origin | None = None) -> None:
        """Delete one tag through the Hub API (``DELETE /v2/repositories/NS/REPO/tags/TAG/``);
        the registry itself refuses deletes."""
        if is_digest(tag):
            return await super().delete_tag(repo, tag)  # refused as the base client does
        await self.hub_api.delete_tag(hub_repository(repo), tag)

    async def mount_blob(self, repo: str, digest: str, from_repo: str) -> bool:
        """A mount from ``from_repo`` as Hub names it (``alpine``: ``library/alpine``)."""
        return await super().mount_blob(repo, digest, hub_repository(from_repo))

    # -- listings ----------------------------------------------------------------------------

    async def list_tags(self, repo: str, page_size: int = 1000) -> list[str]:
        return await super().list_tags(hub_repository(repo), page_size)

    async def list_tag_states(self, repo: str, page_size: int = 1000) -> TagListing:
        return await super().list_tag_states(hub_repository(repo), page_size)

    async def referrers(
        self, repo: str, digest: str, artifact_type: str | None = None
    ) -> list[Descriptor] | None:
        return await super().referrers(hub_repository(repo), digest, artifact_type)

    # -- blobs -------------------------------------------------------------------------------

    async def head_blob(self, repo: str, digest: str) -> int | None:
        return await super().head_blob(hub_repository(repo), digest)

    @asynccontextmanager
    async def blob_stream(
        self, repo: str, digest: str, offset: int = 0
    ) -> AsyncIterator[BlobStream]:
        async with super().blob_stream(hub_repository(repo), digest, offset) as stream:
            yield stream
