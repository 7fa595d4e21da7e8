"""``docker-hub``: Docker Hub (``https://registry-1.docker.io``, API ``https://hub.docker.com``).

- **Logins** (:mod:`adapters.docker_hub_config`): a Docker ID with a personal access token (or
  its password; an organization name with an organization access token), or none for
  anonymous pulls. The registry's tokens come from Hub's token service through the OCI
  client's challenge flow (``auth.docker.io/token?service=registry.docker.io&scope=…``, the
  login as Basic); the Hub API's JWT from ``POST /v2/users/login``, refreshed before its
  ``exp`` and once after a 401 (:mod:`adapters.docker_hub_api`).
- **Discovery**: Hub has no ``/v2/_catalog``. :meth:`DockerHubAdapter.catalog_listings` lists
  namespaces through the Hub API: ``--namespaces`` when given, else the login's own and the
  one the policy's name filter starts with (``myorg/**`` lists ``myorg``). Tags are listed by
  the registry (``tags/list``) and resolved with one ``HEAD`` each, which Hub does not count
  as a pull; or, with ``--tag-listing hub-api``, by the Hub API with their digests.
- **Names**: exactly ``NAMESPACE/REPOSITORY``; ``alpine`` read from Hub is ``library/alpine``.
- **The pull limit** (:mod:`adapters.docker_hub_limits`): read from every manifest answer;
  manifest ``GET``\\s stop at ``--rate-limit-floor`` pulls left, with an error that names the
  budget and when the window frees it (the task fails and is retried later; nothing waits
  for hours). :mod:`adapters.docker_hub_client` resolves tags with ``HEAD`` before any
  ``GET``, so a sync of unchanged tags costs no pulls.
- **Capabilities**: chunked uploads, cross-repository mounts, tag deletes through the Hub API;
  no manifest deletes, no referrers API (the tag schema stands in), repositories appear on
  push inside a namespace the login owns (namespaces are not created).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, ClassVar

from adapters.base import (
    AdapterOption,
    Capabilities,
    EndpointConfig,
    RegistryAdapter,
)
from adapters.docker_hub_api import HubApi
from adapters.docker_hub_client import HubClient
from adapters.docker_hub_config import (
    DEFAULT_RATE_LIMIT_FLOOR,
    NAMESPACES_PATTERN,
    TAG_LISTINGS,
    HubSettings,
    check_hub_name,
    hub_repository,
    parse_settings,
)
from adapters.docker_hub_limits import PullBudget
from adapters.oci.errors import NotFound, Unsupported
from adapters.oci.transport import AiohttpTransport
from adapters.oci.types import UNKNOWN_SIZE, ManifestRef
from adapters.oci.urls import is_digest
from adapters.protocol import CatalogListings

__all__ = ["DockerHubAdapter"]


class DockerHubAdapter(RegistryAdapter):
    """Docker Hub (see the module).

    :param clock: what the pull budget's window and the Hub JWT's expiry are read against
        (``time.time``; tests inject the fake's clock).
    Other keyword arguments are :class:`~adapters.oci.client.OciClient` options (a test
    ``transport`` included; the Hub API has a connection pool of its own).
    """

    type: ClassVar[str] = "docker-hub"
    description: ClassVar[str] = (
        "Docker Hub (Docker ID with a personal access token, or anonymous pulls); "
        "paces itself under Hub's pull limit"
    )
    capabilities: ClassVar[Capabilities] = Capabilities(
        catalog=True,  # through the Hub API's namespace listing
        referrers_api=False,
        blob_mount=True,
        chunked_upload=True,
        delete_tag=True,  # through the Hub API
        delete_manifest=False,
        create_namespace=False,  # repositories appear on push, in a namespace the login owns
        min_path_components=2,
        max_path_components=2,
        max_in_flight=8,
    )
    # Hub's webhooks carry no secret header and a payload of their own: no event_based pulls
    supported_triggers: ClassVar[tuple[str, ...]] = ("manual", "scheduled")
    endpoint_pattern: ClassVar[dict[str, Any] | None] = {
        "endpoint_type": "EndpointPatternTypeFix",
        "endpoints": [{"key": "hub.docker.com", "value": "https://registry-1.docker.io"}],
    }
    options_spec: ClassVar[tuple[AdapterOption, ...]] = (
        AdapterOption(
            name="hub_url",
            help="the Docker Hub API (default https://hub.docker.com; needed only for a "
            "stand-in of Hub at another URL)",
            example="https://hub.docker.com",
        ),
        AdapterOption(
            name="namespaces",
            help="Docker IDs or organizations whose repositories discovery lists, "
            "comma-separated (default: the login's own and the namespace the policy's name "
            "filter starts with)",
            pattern=NAMESPACES_PATTERN,
            example="myorg,myuser",
        ),
        AdapterOption(
            name="rate_limit_floor",
            help="pulls (manifest GETs) of Hub's limit kept in reserve: at this many left, "
            f"Seawall stops fetching manifests until the window frees some (default "
            f"{DEFAULT_RATE_LIMIT_FLOOR})",
            pattern=r"\d{1,6}",
            example="20",
        ),
        AdapterOption(
            name="tag_listing",
            help="registry (default): the registry's tag list and one HEAD per tag (free of "
            "the pull limit, always current); hub-api: the Hub API's tag list, which names "
            "each tag's digest (one request per 100 tags, but it may lag a push by a moment)",
            choices=TAG_LISTINGS,
            example="hub-api",
        ),
    )

    def __init__(
        self,
        config: EndpointConfig,
        *,
        clock: Callable[[], float] | None = None,
        **client_options: Any,
    ) -> None:
        super().__init__(config, **client_options)
        self.settings: HubSettings = parse_settings(config)
        self._clock = clock or time.time
        self.budget = PullBudget(self.settings.rate_limit_floor, self._clock)
        self._api: HubApi | None = None

    @classmethod
    def check_config(cls, config: EndpointConfig) -> None:
        """The base checks, then Hub's: the registry URL (Hub's hosts, or a stand-in with
        ``--hub-url``), the login (a Docker ID with a token, or none), the namespaces and the
        floor. No network."""
        super().check_config(config)
        parse_settings(config)

    def registry_url(self) -> str:
        """``https://registry-1.docker.io`` for every name of Hub's registry."""
        return self.settings.registry_url

    # -- clients ---------------------------------------------------------------------------

    def api(self) -> HubApi:
        """The Hub API client (created on first call, then the same one)."""
        if self._api is None:
            kwargs = self._client_options
            self._api = HubApi(
                self.settings.hub_url,
                AiohttpTransport(insecure=False, ca_file=self.config.ca_file),
                username=self.settings.username,
                password=self.settings.password,
                retries=kwargs.get("retries", 5),
                backoff_base_seconds=kwargs.get("backoff_base_seconds", 0.5),
                clock=self._clock,
            )
        return self._api

    def client(self) -> HubClient:
        if self._client is None:
            self._client = HubClient(
                self.registry_url(), budget=self.budget, hub_api=self.api(), **self.client_kwargs()
            )
        assert isinstance(self._client, HubClient)
        return self._client

    async def close(self) -> None:
        await super().close()
        api, self._api = self._api, None
        if api is not None:
            await api.close()

    # -- listings and names ----------------------------------------------------------------

    def discovery_namespaces(self, prefix: str = "") -> list[str]:
        """The namespaces :meth:`catalog_listings` lists for ``prefix``: ``--namespaces``
        when given, else the login's own and the prefix's first component."""
        head = prefix.split("/", 1)[0]
        if self.settings.namespaces:
            found = list(self.settings.namespaces)
        else:
            found = [n for n in (head, (self.settings.username or "").lower()) if n]
        # only namespaces that names starting with prefix can be in
        return [n for n in dict.fromkeys(found) if n.startswith(head) or head.startswith(n)]

    async def catalog_listings(self, prefix: str = "") -> CatalogListings:
        """Repositories of :meth:`discovery_namespaces` from the Hub API (100 a page), only
        names starting with ``prefix``; tags are listed per repository. A namespace that
        Hub does not know is skipped unless ``--namespaces`` named it.

        :raises Unsupported: there is no namespace to list (anonymous, no ``--namespaces``,
            no name filter naming one).
        :raises NotFound: a namespace of ``--namespaces`` does not exist.
        """
        namespaces = self.discovery_namespaces(prefix)
        if not namespaces:
            raise Unsupported(
                "Docker Hub has no catalog: give the endpoint --namespaces (Docker IDs or "
                "organizations to list), log in, or start the policy's name filter with the "
                "namespace (myorg/**)",
                code="UNSUPPORTED",
            )
        names: list[str] = []
        for namespace in namespaces:
            try:
                found = await self.api().list_repositories(namespace)
            except NotFound:
                if namespace in self.settings.namespaces:
                    raise
                continue
            names.extend(n for n in found if n.startswith(prefix))
        return sorted(set(names)), None

    async def list_tag_refs(self, repo: str) -> tuple[list[str], dict[str, ManifestRef]]:
        """Tags of ``repo`` (``alpine``: ``library/alpine``): by default the registry's tag
        list (the engine then sends a free ``HEAD`` per tag); with ``--tag-listing hub-api``
        the Hub API's, with each tag's digest where Hub names one (size unknown: -1).

        :raises NotFound: no such repository.
        """
        if self.settings.tag_listing != "hub-api":
            return await super().list_tag_refs(repo)
        found = await self.api().list_tags(hub_repository(repo))
        refs = {
            t.name: ManifestRef(t.digest, t.media_type, UNKNOWN_SIZE)
            for t in found
            if is_digest(t.digest)
        }
        return sorted(t.name for t in found), refs

    def check_name(self, name: str) -> None:
        """Docker Hub's rules for a repository Seawall writes: exactly ``NAMESPACE/NAME``,
        not ``library/``; the message says how to map the policy's names.

        :raises InvalidRepositoryName: per :func:`~adapters.docker_hub_config.check_hub_name`.
        """
        check_hub_name(name)

    async def prepare_repository(self, name: str) -> None:
        """Nothing to create (Hub creates the repository on push, in a namespace the login
        owns); the name is checked."""
        self.check_name(name)
