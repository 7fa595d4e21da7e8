"""``quay``: quay.io or a self-hosted Red Hat Quay / Project Quay (registry and REST API on one
host: the registry under ``/v2``, the API under ``/api/v1``).

Logins (see :mod:`adapters.quay_config`): a robot account (``ORG+ROBOT`` and its token) or a
user reaches the registry through Quay's token endpoint (``/v2/auth``, the shared client's
challenge flow); an OAuth application token reaches both, as the password of the literal user
``$oauthtoken`` at ``/v2/auth`` and as ``Authorization: Bearer`` at ``/api/v1``. A robot
endpoint gets its API token from ``--api-token-file``.

With an API token (:mod:`adapters.quay_api`): discovery lists each namespace's repositories
(``next_page`` paging) — the ``--namespaces`` given, else the token user's own and its
organizations — and tags come with their digests from the tag API (one request per 100 tags,
no manifest request per tag); ``--create-repositories true`` creates a missing repository
before the first push (``--visibility``); a tag delete the registry refuses goes through the
API (:mod:`adapters.quay_client`). Without one, listings are the registry's own
(``/v2/_catalog``, ``tags/list``) and a push creates a repository only where Quay lets the
login create on push.

Quay has the OCI 1.1 referrers API from 3.12 (``FEATURE_REFERRERS_API``): probed.
"""

from __future__ import annotations

import time
from dataclasses import replace
from typing import Any, ClassVar

from adapters.base import (
    AdapterOption,
    Capabilities,
    EndpointConfig,
    InvalidEndpoint,
    RegistryAdapter,
)
from adapters.oci.errors import NotFound, OciError
from adapters.oci.types import ManifestRef
from adapters.protocol import CatalogListings
from adapters.quay_api import QuayApi
from adapters.quay_client import QuayClient
from adapters.quay_config import (
    NAMESPACES_PATTERN,
    OAUTH_USERNAME,
    VISIBILITIES,
    QuaySettings,
    check_quay_name,
    parse_settings,
    split_name,
)
from registry.oci.reference import is_valid_name

__all__ = ["QuayAdapter"]

_MAX_TOKEN_BYTES = 64 * 1024
_MAX_KNOWN_REPOSITORIES = 10_000  # repositories remembered as existing, at most


class QuayAdapter(RegistryAdapter):
    """One Quay (see the module). Keyword arguments are :class:`OciClient` options."""

    type: ClassVar[str] = "quay"
    description: ClassVar[str] = (
        "Quay (quay.io, Red Hat Quay, Project Quay): robot accounts, OAuth tokens, "
        "discovery and tag listings through Quay's API, repositories created on push"
    )
    capabilities: ClassVar[Capabilities] = Capabilities(
        catalog=True,  # the API's repository list (or /v2/_catalog without an API token)
        referrers_api=False,  # Quay >= 3.12 with FEATURE_REFERRERS_API: probed
        blob_mount=True,
        chunked_upload=True,
        delete_tag=True,  # /v2 where Quay takes it, else DELETE /api/v1/.../tag/TAG
        delete_manifest=True,
        create_namespace=False,  # --create-repositories true: see current_capabilities
        min_path_components=2,
        max_path_components=2,
    )
    probed: ClassVar[frozenset[str]] = frozenset({"referrers_api"})
    options_spec: ClassVar[tuple[AdapterOption, ...]] = (
        AdapterOption(
            name="api_token_file",
            help="a file holding a Quay OAuth application token for the REST API (discovery, "
            "tag listings with digests, repository creation, tag deletes): needed with a "
            "robot or user login; an OAuth-token login ($oauthtoken) is its own API token",
            example="/etc/seawall/quay-api-token",
        ),
        AdapterOption(
            name="namespaces",
            help="the namespaces (organizations, users) discovery lists, comma-separated; "
            "default: the API token's user and its organizations",
            pattern=NAMESPACES_PATTERN,
            example="myorg,otherorg",
        ),
        AdapterOption(
            name="create_repositories",
            help="create a missing repository through the API before the first push to it "
            "(the token needs repo:create); default false",
            choices=("true", "false"),
        ),
        AdapterOption(
            name="visibility",
            help="created repositories' visibility; default private",
            choices=VISIBILITIES,
        ),
    )
    #: how long a repository found or created is trusted (no API request for it meanwhile)
    repository_ttl_seconds: ClassVar[float] = 600.0
    repository_description: ClassVar[str] = "Created by Seawall replication"

    def __init__(self, config: EndpointConfig, **client_options: Any) -> None:
        super().__init__(config, **client_options)
        self.settings: QuaySettings = parse_settings(config)
        self._api: QuayApi | None = None
        self._existing: dict[str, float] = {}  # repository -> monotonic time trusted until

    @classmethod
    def check_config(cls, config: EndpointConfig) -> None:
        """The base checks, then Quay's: the host-only URL, the login's form, the
        namespaces, and that repository creation has an API token. No network."""
        super().check_config(config)
        parse_settings(config)

    # -- clients ------------------------------------------------------------------------------

    def client_kwargs(self) -> dict[str, Any]:
        """An OAuth bearer token logs in at ``/v2/auth`` as ``$oauthtoken`` (Quay's registry
        takes no OAuth token as a bearer)."""
        kwargs = super().client_kwargs()
        if self.config.username is None and self.config.token is not None:
            kwargs |= {"username": OAUTH_USERNAME, "password": self.config.token, "token": None}
        return kwargs

    def client(self) -> QuayClient:
        if self._client is None:
            self._client = QuayClient(self.registry_url(), api=self.api, **self.client_kwargs())
        assert isinstance(self._client, QuayClient)
        return self._client

    def api(self) -> QuayApi | None:
        """The REST API client (created on first call, then the same one); None without an
        API token. The token file is read here, on first use.

        :raises InvalidEndpoint: the token file cannot be read or is empty.
        """
        if self._api is None and self.settings.has_api:
            client = self.client()
            self._api = QuayApi(
                client.base_url,
                self.settings.api_token or self._read_token_file(),
                client.session.transport,
                policy=client.session.policy,
            )
        return self._api

    def _read_token_file(self) -> str:
        path = self.settings.api_token_file
        try:
            with open(path, "rb") as f:
                token = f.read(_MAX_TOKEN_BYTES).decode("utf-8").strip()
        except (OSError, UnicodeDecodeError) as e:
            raise InvalidEndpoint(f"quay --api-token-file {path[:300]!r}: {e}") from None
        if not token:
            raise InvalidEndpoint(f"quay --api-token-file {path[:300]!r} is empty")
        return token

    async def close(self) -> None:
        self._api = None  # it runs on the client's transport, which closes with it
        await super().close()

    # -- names and repositories ----------------------------------------------------------------

    def check_name(self, name: str) -> None:
        """The OCI grammar, then Quay's rules (a nested path is refused saying why)."""
        if is_valid_name(name) and name.count("/") > 1:
            check_quay_name(name)
        super().check_name(name)
        check_quay_name(name)

    async def probe_referrers_api(self, repository: str | None = None) -> bool:
        """The base probe, aimed at a repository that exists (Quay answers 401 for one that
        does not, whatever it supports): ``repository``, else one prepared, else the first
        one discovery finds. With none to ask, the declared (conservative) answer, uncached.
        """
        cached = self._probes.get("referrers_api")
        if repository is None and (cached is None or cached[1] <= time.monotonic()):
            repository = next(iter(self._existing), None) or await self._first_repository()
            if repository is None:
                return self.capabilities.referrers_api
        return await super().probe_referrers_api(repository)

    async def _first_repository(self) -> str | None:
        try:
            names, _ = await self.catalog_listings()
        except OciError:
            return None
        return names[0] if names else None

    async def current_capabilities(self, repository: str | None = None) -> Capabilities:
        current = await super().current_capabilities(repository)
        return replace(current, create_namespace=self.settings.create_repositories)

    async def prepare_repository(self, name: str) -> None:
        """Check the name; with an API token, check that the repository exists and create it
        (``--create-repositories true``) or say how to. Without one, open (and cancel) an
        upload: Quay creates the repository where the login may create on push.

        :raises NotFound: it does not exist and may not be created here.
        :raises Denied: the login may not push there.
        """
        self.check_name(name)
        if self._existing.get(name, 0.0) > time.monotonic():
            return
        api = self.api()
        namespace, repository = split_name(name)
        if api is None:
            await self.client().open_for_push(name)
        elif not await api.repository_exists(namespace, repository):
            if not self.settings.create_repositories:
                raise NotFound(
                    f"the Quay repository {name} does not exist and this endpoint does not "
                    "create repositories: create it in Quay, or set --create-repositories true "
                    "(the API token needs repo:create in the namespace)"
                )
            await api.create_repository(
                namespace,
                repository,
                visibility=self.settings.visibility,
                description=self.repository_description,
            )
        now = time.monotonic()
        if len(self._existing) >= _MAX_KNOWN_REPOSITORIES:
            self._existing = {r: t for r, t in self._existing.items() if t > now}
            while len(self._existing) >= _MAX_KNOWN_REPOSITORIES:
                del self._existing[next(iter(self._existing))]  # the oldest first
        self._existing[name] = now + self.repository_ttl_seconds

    # -- listings ------------------------------------------------------------------------------

    async def catalog_listings(self, prefix: str = "") -> CatalogListings:
        """Repositories whose names start with ``prefix``: through the API, namespace by
        namespace (``--namespaces``, else the token's user and organizations), those whose
        names can start with ``prefix`` only; without an API token, the registry's catalog.
        Tags are listed per repository (:meth:`list_tag_refs`)."""
        api = self.api()
        if api is None:
            names, _ = await self.client().catalog_listings(prefix)
            return [n for n in names if n.startswith(prefix)], None
        namespaces = self.settings.namespaces or tuple(await api.user_namespaces())
        first = prefix.split("/", 1)[0]
        wanted = first if "/" in prefix else None
        out: list[str] = []
        for namespace in dict.fromkeys(namespaces):
            if (wanted is not None and namespace != wanted) or not namespace.startswith(first):
                continue
            out += [r async for r in api.repositories(namespace) if r.startswith(prefix)]
        return sorted(out), None

    async def list_tag_refs(self, repo: str) -> tuple[list[str], dict[str, ManifestRef]]:
        """Tags and their digests from Quay's tag API (one request per 100 tags; media type
        ``""`` and size ``UNKNOWN_SIZE``: not listed); the registry's tag list without an
        API token. NotFound if the repository is unknown."""
        api = self.api()
        if api is None:
            return await self.client().list_tag_refs(repo)
        return await api.tag_refs(repo)
