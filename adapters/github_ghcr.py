"""``github-ghcr``: GitHub Container Registry (``https://ghcr.io``).

Logins (see :mod:`adapters.github_ghcr_config`): a GitHub username and a personal access token
(classic), sent to GHCR's token service (``GET /token?scope=repository:OWNER/NAME:pull&
service=ghcr.io`` with Basic ``username:PAT`` → ``{"token"}``; the OCI client's bearer flow
does it), and to the GitHub REST API as ``Bearer``. Without a token, public packages are
pulled anonymously.

GHCR's own ``/v2/_catalog`` lists nothing, so repositories are found through the GitHub
Packages API (:mod:`adapters.github_ghcr_api`): the packages of each owner — the first path
component of a policy's name filter, else the ``owners`` option — and each package's versions
with their digests and tags (one request per 100 versions, no ``HEAD`` per tag). Deletes go
through the same API and are checked (:mod:`adapters.github_ghcr_client`); one tag of a
version with other tags cannot be deleted, and the client says so.

Capabilities: no OCI referrers API (the engine uses the referrers tag schema), cross-
repository mounts, chunked uploads, no tag deletes, manifest deletes through the API,
packages created by the first push; repositories are ``OWNER/PACKAGE`` (at least two
components).
"""

from __future__ import annotations

from typing import Any, ClassVar

from adapters.base import (
    AdapterOption,
    Capabilities,
    EndpointConfig,
    InvalidEndpoint,
    InvalidRepositoryName,
    RegistryAdapter,
)
from adapters.github_ghcr_api import PackagesApi
from adapters.github_ghcr_client import GhcrClient
from adapters.github_ghcr_config import (
    GHCR_URL,
    OWNER_TYPES,
    OWNERS_PATTERN,
    GhcrSettings,
    check_owner,
    parse_settings,
    split_repository,
)
from adapters.oci.errors import NotFound, RequestRejected
from adapters.oci.types import UNKNOWN_SIZE, ManifestRef
from adapters.protocol import CatalogListings

__all__ = ["GhcrAdapter"]

#: client options the Packages API shares with the OCI client
_SHARED_OPTIONS = ("retries", "backoff_base_seconds", "max_retry_after_seconds")


class GhcrAdapter(RegistryAdapter):
    """GitHub Container Registry (see the module). Keyword arguments are
    :class:`~adapters.oci.client.OciClient` options (retries and backoff apply to the
    Packages API too)."""

    type: ClassVar[str] = "github-ghcr"
    description: ClassVar[str] = (
        "GitHub Container Registry (ghcr.io): personal access tokens, discovery and deletes "
        "through the GitHub Packages API"
    )
    capabilities: ClassVar[Capabilities] = Capabilities(
        catalog=True,  # through the Packages API
        referrers_api=False,
        blob_mount=True,
        chunked_upload=True,
        delete_tag=False,  # GitHub deletes whole versions
        delete_manifest=True,  # through the Packages API
        create_namespace=False,  # a package appears on its first push
        min_path_components=2,  # OWNER/PACKAGE
    )
    # GitHub's package webhooks (registry_package) are not a payload Seawall reads: no
    # event_based pulls (push policies to GHCR fire on this registry's own events)
    supported_triggers: ClassVar[tuple[str, ...]] = ("manual", "scheduled")
    endpoint_pattern: ClassVar[dict[str, Any] | None] = {
        "endpoint_type": "EndpointPatternTypeFix",
        "endpoints": [{"key": "ghcr.io", "value": GHCR_URL}],
    }
    options_spec: ClassVar[tuple[AdapterOption, ...]] = (
        AdapterOption(
            name="api_url",
            help="the GitHub REST API that manages the packages (default https://api.github.com;"
            " GitHub Enterprise Server: https://HOST/api/v3)",
            example="https://api.github.com",
        ),
        AdapterOption(
            name="owner_type",
            help="whether owners are organizations (org) or users (user); auto asks GitHub "
            "once per owner (default auto)",
            choices=OWNER_TYPES,
            example="org",
        ),
        AdapterOption(
            name="owners",
            help="comma-separated GitHub users or organizations whose packages are discovered "
            "when a policy's name filter does not start with one",
            pattern=OWNERS_PATTERN,
            example="acme,acme-labs",
        ),
    )

    def __init__(self, config: EndpointConfig, **client_options: Any) -> None:
        super().__init__(config, **client_options)
        self.settings: GhcrSettings = parse_settings(config)

    @classmethod
    def check_config(cls, config: EndpointConfig) -> None:
        """The base checks, then GHCR's: the registry URL without a path, ``api_url`` (https,
        required beside any registry but ghcr.io), a token with any username. No I/O."""
        super().check_config(config)
        parse_settings(config)

    # -- the client ------------------------------------------------------------------------

    def client(self) -> GhcrClient:
        if self._client is None:
            self._client = GhcrClient(self.registry_url(), api=self._api(), **self.client_kwargs())
        assert isinstance(self._client, GhcrClient)
        return self._client

    def client_kwargs(self) -> dict[str, Any]:
        """The token goes to GHCR's token service as Basic ``username:PAT``, never as a
        static bearer token."""
        kwargs = super().client_kwargs()
        kwargs["username"] = self.settings.username or None
        kwargs["password"] = self.settings.pat or None
        kwargs["token"] = None
        return kwargs

    def _api(self) -> PackagesApi | None:
        if self.settings.anonymous:
            return None
        shared = {k: v for k, v in self._client_options.items() if k in _SHARED_OPTIONS}
        return PackagesApi(
            self.settings.api_url,
            self.settings.pat,
            owner_type=self.settings.owner_type,
            ca_file=self.config.ca_file,
            **shared,
        )

    # -- listings --------------------------------------------------------------------------

    async def catalog_listings(self, prefix: str = "") -> CatalogListings:
        """``OWNER/PACKAGE`` names starting with ``prefix``, from the Packages API: the owner
        the prefix names (its first component), else each of the ``owners`` option.

        :raises adapters.oci.errors.Unauthorized: the endpoint has no token.
        :raises adapters.oci.errors.RequestRejected: no owner is known to list.
        """
        api = self.client().packages("discovering packages")
        owner, slash, _ = prefix.partition("/")
        if slash:
            owners: tuple[str, ...] = (owner.lower(),)
        else:
            owners = tuple(o for o in self.settings.owners if o.startswith(prefix))
            if not owners and prefix:
                owners = (prefix.lower(),)  # the filter names a namespace: try it as the owner
        if not owners:
            raise RequestRejected(
                "GHCR lists no catalog: give the endpoint --owners (the GitHub users or "
                "organizations to discover), or start the policy's name filter with an owner"
            )
        names: list[str] = []
        for one in owners:
            names.extend(f"{one}/{p}" for p in await api.list_packages(one))
        return sorted(n for n in names if n.startswith(prefix)), None

    async def list_tag_refs(self, repo: str) -> tuple[list[str], dict[str, ManifestRef]]:
        """Tags and digests from the package's versions (media type ``""`` and size
        :data:`~adapters.oci.types.UNKNOWN_SIZE`: the API says neither). Anonymous
        endpoints list the registry's tags instead.

        :raises adapters.oci.errors.NotFound: no such package.
        """
        client = self.client()
        if client.api is None:
            return await client.list_tag_refs(repo)
        try:
            owner, package = split_repository(repo)
        except InvalidRepositoryName as e:
            raise NotFound(str(e)) from None
        tags: list[str] = []
        refs: dict[str, ManifestRef] = {}
        for version in await client.api.list_versions(owner, package):
            for tag in version.tags:
                tags.append(tag)
                refs[tag] = ManifestRef(version.digest, "", UNKNOWN_SIZE)
        return sorted(tags), refs

    # -- names -----------------------------------------------------------------------------

    def check_name(self, name: str) -> None:
        """The OCI grammar, ``OWNER/PACKAGE`` (two components at least), and an owner that is
        a GitHub login (lowercase letters, digits, single inner hyphens, ≤ 39 characters).

        :raises InvalidRepositoryName: says which rule.
        """
        super().check_name(name)
        check_owner(split_repository(name)[0], f"owner of {name!r}")

    async def prepare_repository(self, name: str) -> None:
        """Nothing to create (a package appears on its first push); refuses an anonymous
        endpoint, which cannot push.

        :raises InvalidRepositoryName: per :meth:`check_name`.
        :raises InvalidEndpoint: the endpoint has no token.
        """
        self.check_name(name)
        if self.settings.anonymous:
            raise InvalidEndpoint(
                f"pushing {name} to {self.config.url} needs a personal access token (classic) "
                "with write:packages: give it as the endpoint's secret"
            )
