"""``google-gar`` (Artifact Registry, ``LOCATION-docker.pkg.dev``) and ``google-gcr``
(Container Registry hosts ``gcr.io``, ``us.``/``eu.``/``asia.gcr.io``).

Both log in the ways :mod:`adapters.google_auth` describes (``_json_key`` keys, access tokens
from a key, a key file or Application Default Credentials, refreshed before they expire and
once after a 401), list tags with their digests in one ``tags/list`` request per repository
(:mod:`adapters.google_client`), and delete a tag alone or a manifest with its tags.

``google-gar`` names are ``PROJECT/REPOSITORY/IMAGE[/...]``: REPOSITORY is an Artifact Registry
repository, which a ``docker push`` does not create. :meth:`GarAdapter.prepare_repository`
checks through the Artifact Registry API that it exists (a clear per-task reason if not) or,
with ``--create-repositories true``, creates it. Discovery lists the project's Docker
repositories in the location and their images, tags and digests through the same API: a
whole repository of images costs one request per 1000 images, and no tag listing follows.

``google-gcr`` names are ``PROJECT/IMAGE[/...]``; repositories appear on first push; discovery
is ``GET /v2/_catalog`` (optionally only ``--project``'s names).

Capabilities (conservative; see ``docs/adapters/google-gar.md``): chunked uploads, tag deletes
(``DELETE …/manifests/<tag>`` untags), manifest deletes (tags first); no cross-repository
mounts declared; the referrers API is probed per registry.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import replace
from typing import Any, ClassVar

from adapters.base import AdapterOption, Capabilities, EndpointConfig, RegistryAdapter
from adapters.google_api import ArtifactRegistryApi, DockerImage
from adapters.google_auth import (
    ACCESS_TOKEN_USER,
    JSON_KEY_USER,
    GoogleTokenSource,
    check_google_auth_available,
    resolve_auth,
)
from adapters.google_client import GoogleOciClient
from adapters.google_names import (
    DEFAULT_API_ENDPOINT,
    GCR_HOSTS,
    LOCATION_PATTERN,
    RegistryHost,
    check_api_endpoint,
    check_gar_name,
    check_gcr_name,
    gar_host,
    gcr_host,
    split_gar_name,
)
from adapters.oci.auth import Credentials
from adapters.oci.credentials import CredentialProvider
from adapters.oci.errors import NotFound, OciError, RequestRejected
from adapters.oci.types import UNKNOWN_SIZE, ManifestRef
from adapters.protocol import CatalogListings

__all__ = ["GarAdapter", "GcrAdapter", "GoogleAdapter"]

_PROJECT_PATTERN = r"[a-z][a-z0-9-]{4,28}[a-z0-9]"
_KEY_FILE = AdapterOption(
    name="key_file",
    help="a google-auth credential file on the Seawall host (service-account key, external "
    "account / workload identity federation config); default: the credential, else ADC",
    example="/etc/seawall/gar-key.json",
)
_TRIGGERS = ("manual", "scheduled")  # Google sends no webhooks to Seawall


class GoogleAdapter(RegistryAdapter):
    """What ``google-gar`` and ``google-gcr`` share: Google logins, the Google OCI client.

    :param clock: the clock access-token expiry is read against (tests inject one).
    """

    url_schemes: ClassVar[tuple[str, ...]] = ("https", "http")
    supported_triggers: ClassVar[tuple[str, ...]] = _TRIGGERS
    credential_pattern: ClassVar[dict[str, Any] | None] = {
        "access_key_type": "AccessKeyTypeFix",
        "access_key_data": JSON_KEY_USER,
        "access_secret_type": "AccessSecretTypeFile",
        "access_secret_data": "No Change",
    }

    @classmethod
    def check_available(cls) -> None:
        check_google_auth_available()

    @classmethod
    def check_config(cls, config: EndpointConfig) -> None:
        """Scheme and options, then the host (:meth:`registry_host`) and the login
        (:func:`~adapters.google_auth.resolve_auth`): all without I/O beyond reading a
        ``--key-file``."""
        super().check_config(config)
        cls.registry_host(config)
        resolve_auth(config, cls.type)

    @classmethod
    def registry_host(cls, config: EndpointConfig) -> RegistryHost:
        raise NotImplementedError

    def __init__(
        self, config: EndpointConfig, *, clock: Callable[[], float] = time.time, **client: Any
    ) -> None:
        super().__init__(config, **client)
        self.auth = resolve_auth(config, self.type)
        self.host = self.registry_host(config)
        self.clock = clock
        self.tokens = GoogleTokenSource(self.auth, clock=clock) if self.auth.refreshes else None

    def client_kwargs(self) -> dict[str, Any]:
        kwargs = super().client_kwargs()
        login = self.auth.registry_login
        username, password = login if login is not None else (None, None)
        return kwargs | {"username": username, "password": password, "token": None}

    def credential_provider(self) -> CredentialProvider | None:
        """Access tokens as ``oauth2accesstoken`` logins (None for a static login)."""
        if self.auth.registry_login is not None or self.tokens is None:
            return None
        return self.tokens.provider("registry", lambda t: Credentials(ACCESS_TOKEN_USER, t))

    def client(self) -> GoogleOciClient:
        if self._client is None:
            self._client = GoogleOciClient(self.registry_url(), **self.client_kwargs())
        return self._client  # type: ignore[return-value]

    async def close(self) -> None:
        await super().close()
        if self.tokens is not None:
            self.tokens.close()


class GarAdapter(GoogleAdapter):
    """Google Artifact Registry (module docstring)."""

    type: ClassVar[str] = "google-gar"
    description: ClassVar[str] = (
        "Google Artifact Registry (LOCATION-docker.pkg.dev): PROJECT/REPOSITORY/IMAGE names, "
        "discovery through the Artifact Registry API"
    )
    capabilities: ClassVar[Capabilities] = Capabilities(
        catalog=True,
        referrers_api=False,
        blob_mount=False,
        chunked_upload=True,
        delete_tag=True,
        delete_manifest=True,
        create_namespace=False,
        min_path_components=3,
    )
    probed: ClassVar[frozenset[str]] = frozenset({"referrers_api"})
    options_spec: ClassVar[tuple[AdapterOption, ...]] = (
        AdapterOption(
            name="project",
            help="the Google Cloud project whose repositories discovery lists",
            required=True,
            pattern=_PROJECT_PATTERN,
            example="my-project",
        ),
        AdapterOption(
            name="location",
            help="the repositories' location; default: the URL's (LOCATION-docker.pkg.dev)",
            pattern=LOCATION_PATTERN,
            example="us-central1",
        ),
        AdapterOption(
            name="api_endpoint",
            help=f"the Artifact Registry API; default {DEFAULT_API_ENDPOINT}",
            example=DEFAULT_API_ENDPOINT,
        ),
        _KEY_FILE,
        AdapterOption(
            name="create_repositories",
            help="create a missing Artifact Registry repository before a push "
            "(needs artifactregistry.repositories.create); default false",
            choices=("true", "false"),
        ),
    )
    #: how long a repository found to exist is trusted (one API request per repository then)
    repository_ttl_seconds: ClassVar[float] = 600.0
    operation_poll_seconds: ClassVar[float] = 1.0  # between polls of a repository creation

    @classmethod
    def registry_host(cls, config: EndpointConfig) -> RegistryHost:
        return gar_host(config.url, config.option("location"))

    @classmethod
    def check_config(cls, config: EndpointConfig) -> None:
        super().check_config(config)
        check_api_endpoint(config.option("api_endpoint", DEFAULT_API_ENDPOINT), cls.type)

    def __init__(
        self, config: EndpointConfig, *, clock: Callable[[], float] = time.time, **client: Any
    ) -> None:
        super().__init__(config, clock=clock, **client)
        self.project = config.option("project")
        self.location = self.host.location
        self.api_endpoint = check_api_endpoint(
            config.option("api_endpoint", DEFAULT_API_ENDPOINT), self.type
        )
        self.create_repositories = config.option("create_repositories") == "true"
        self._api: ArtifactRegistryApi | None = None
        self._existing: dict[tuple[str, str], float] = {}  # (project, repo) -> trusted until

    def api(self) -> ArtifactRegistryApi:
        """The Artifact Registry API client (created on first call, then the same one)."""
        if self._api is None:
            default = self.api_endpoint == DEFAULT_API_ENDPOINT
            # the access token goes there: its certificate is verified always (an http://
            # stand-in has none); the endpoint's insecure concerns the registry host only
            kwargs: dict[str, Any] = {
                "ca_file": None if default else self.config.ca_file,
                "clock": self.clock,
                "operation_poll_seconds": self.operation_poll_seconds,
            }
            for name in ("retries", "backoff_base_seconds", "max_retry_after_seconds"):
                if name in self._client_options:
                    kwargs[name] = self._client_options[name]
            if self.tokens is not None:
                kwargs["credential_provider"] = self.tokens.provider(
                    "api", lambda t: Credentials(token=t)
                )
            else:
                kwargs["access_token"] = self.auth.access_token
            self._api = ArtifactRegistryApi(self.api_endpoint, **kwargs)
        return self._api

    async def close(self) -> None:
        api, self._api = self._api, None
        if api is not None:
            await api.close()
        await super().close()

    def check_name(self, name: str) -> None:
        super().check_name(name)
        check_gar_name(name)

    async def probe_referrers_api(self, repository: str | None = None) -> bool:
        """The base probe, aimed inside an Artifact Registry repository that exists when no
        repository is given (outside one, Artifact Registry answers 404 whatever it
        supports): one the adapter prepared, else the project's first Docker repository."""
        cached = self._probes.get("referrers_api")
        if repository is None and (cached is None or cached[1] <= time.monotonic()):
            repository = await self._probe_target()
        return await super().probe_referrers_api(repository)

    async def _probe_target(self) -> str | None:
        known = next(iter(self._existing), None)
        if known is None:
            try:
                repos = await self.api().list_repositories(self.project, self.location)
            except OciError:
                return None  # the base probe's default target then
            found = [r for r in repos if r.format == "DOCKER" and r.mode == "STANDARD_REPOSITORY"]
            known = (found[0].project, found[0].repository_id) if found else None
        return None if known is None else f"{known[0]}/{known[1]}/seawall-capability-probe"

    async def current_capabilities(self, repository: str | None = None) -> Capabilities:
        current = await super().current_capabilities(repository)
        return replace(current, create_namespace=self.create_repositories)

    async def prepare_repository(self, name: str) -> None:
        """Check that the Artifact Registry repository of ``name`` exists (create it with
        ``--create-repositories true``); a standard one, since remote and virtual
        repositories take no pushes.

        :raises NotFound: it does not exist (the message says how to create it).
        :raises RequestRejected: it is a remote or virtual repository.
        """
        self.check_name(name)
        project, repository, _ = split_gar_name(name)
        key = (project, repository)
        if self._existing.get(key, 0.0) > time.monotonic():
            return
        found = await self.api().get_repository(project, self.location, repository)
        where = f"projects/{project}/locations/{self.location}/repositories/{repository}"
        if found is None and self.create_repositories:
            await self.api().create_repository(project, self.location, repository)
        elif found is None:
            raise NotFound(
                f"the Artifact Registry repository {where} does not exist (a push does not "
                f"create it): create it (gcloud artifacts repositories create {repository} "
                f"--repository-format=docker --location={self.location} --project={project})"
                " or set --create-repositories true on the endpoint"
            )
        elif found.format != "DOCKER" or found.mode not in ("", "STANDARD_REPOSITORY"):
            raise RequestRejected(
                f"the Artifact Registry repository {where} is a {found.format} "
                f"{found.mode.lower().replace('_', ' ')}: pushes need a standard Docker one"
            )
        self._existing[key] = time.monotonic() + self.repository_ttl_seconds

    async def catalog_listings(self, prefix: str = "") -> CatalogListings:
        """The project's Docker repositories in the location (one API listing), then each
        one's images with their tags and digests (one listing per 1000 images); only those
        whose names can start with ``prefix``."""
        api, project = self.api(), self.project
        names: set[str] = set()
        listings: dict[str, tuple[list[str], dict[str, ManifestRef]]] = {}
        for repo in await api.list_repositories(project, self.location):
            base = f"{project}/{repo.repository_id}/"
            if repo.format != "DOCKER" or not (base.startswith(prefix) or prefix.startswith(base)):
                continue
            images = await api.list_docker_images(project, self.location, repo.repository_id)
            for image in images:
                if image.name.startswith(prefix) and image.name.startswith(base):
                    names.add(image.name)
                    _add_image(listings.setdefault(image.name, ([], {})), image)
        for tags, _ in listings.values():
            tags.sort()
        return sorted(names), listings


def _add_image(listing: tuple[list[str], dict[str, ManifestRef]], image: DockerImage) -> None:
    tags, refs = listing
    tags.extend(image.tags)
    if image.media_type:
        ref = ManifestRef(image.digest, image.media_type, UNKNOWN_SIZE)
        refs.update(dict.fromkeys(image.tags, ref))


class GcrAdapter(GoogleAdapter):
    """Google Container Registry hosts (module docstring)."""

    type: ClassVar[str] = "google-gcr"
    description: ClassVar[str] = (
        "Google Container Registry (gcr.io, us/eu/asia.gcr.io): PROJECT/IMAGE names"
    )
    capabilities: ClassVar[Capabilities] = Capabilities(
        catalog=True,
        referrers_api=False,
        blob_mount=False,
        chunked_upload=True,
        delete_tag=True,
        delete_manifest=True,
        create_namespace=False,
        min_path_components=2,
    )
    probed: ClassVar[frozenset[str]] = frozenset({"referrers_api"})
    options_spec: ClassVar[tuple[AdapterOption, ...]] = (
        AdapterOption(
            name="project",
            help="discover only this project's repositories (default: all the catalog lists)",
            pattern=_PROJECT_PATTERN,
            example="my-project",
        ),
        _KEY_FILE,
    )
    endpoint_pattern: ClassVar[dict[str, Any] | None] = {
        "endpoint_type": "EndpointPatternTypeList",
        "endpoints": [{"key": h, "value": f"https://{h}"} for h in GCR_HOSTS],
    }

    @classmethod
    def registry_host(cls, config: EndpointConfig) -> RegistryHost:
        return gcr_host(config.url)

    def check_name(self, name: str) -> None:
        super().check_name(name)
        check_gcr_name(name)

    async def catalog_listings(self, prefix: str = "") -> CatalogListings:
        """``GET /v2/_catalog`` (all pages), only names starting with ``prefix`` (and with
        ``--project``'s, when given); no tags (one ``tags/list`` per repository follows)."""
        project = self.config.option("project")
        names, _ = await self.client().catalog_listings(prefix)
        wanted = [
            n
            for n in names
            if n.startswith(prefix) and (not project or n.startswith(project + "/"))
        ]
        return wanted, None
