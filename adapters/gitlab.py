"""``gitlab``: GitLab's container registry (GitLab.com or self-managed).

Logins (see :mod:`adapters.gitlab_config`): a username and an access token (personal,
project or group) or a deploy token. The registry challenges with
``Bearer realm="<gitlab>/jwt/auth",service="container_registry"``; the OCI client's token flow
answers with the login and caches each scope's JWT until shortly before its ``exp``. The
login itself is a credential provider (:class:`~adapters.gitlab_config.GitLabLogin`): checked
against GitLab before the first request, near the token's expiry date and after a ``401``, so
an expired or revoked token says so.

Beyond the OCI API (:mod:`adapters.gitlab_api`, ``PRIVATE-TOKEN``): discovery through the
container registry API (a group's or a project's repositories, paged), tags with their digests
from the tag details, tag deletes through the API. Names follow GitLab's rules
(:mod:`adapters.gitlab_names`): a repository is its project's full path and at most three
image names; GitLab creates it on the first push, but only under an existing project, so
:meth:`GitLabAdapter.prepare_repository` asks for the project and fails loudly without one.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, ClassVar

import anyio

from adapters.base import (
    AdapterOption,
    Capabilities,
    EndpointConfig,
    InvalidEndpoint,
    RegistryAdapter,
)
from adapters.gitlab_api import ContainerRepository, GitLabApi
from adapters.gitlab_client import GitLabClient, GitLabDirectory
from adapters.gitlab_config import GitLabLogin, GitLabSettings, parse_settings
from adapters.gitlab_names import (
    GITLAB_PATH_PATTERN,
    MAX_PATH_COMPONENTS,
    check_gitlab_name,
    check_under_project,
    project_candidates,
)
from adapters.oci.credentials import CredentialProvider
from adapters.oci.errors import NotFound, OciError, Unsupported
from adapters.oci.types import UNKNOWN_SIZE, ManifestRef
from adapters.protocol import CatalogListings

__all__ = ["GitLabAdapter"]

TAG_DETAILS_IN_FLIGHT = 8  # tag-detail requests at once per repository listing


class GitLabAdapter(RegistryAdapter):
    """One GitLab container registry (see the module).

    :param clock: what registry tokens' and access tokens' expiry is read against
        (``time.time``; tests inject the fake's clock).
    Other keyword arguments are :class:`~adapters.oci.client.OciClient` options.
    """

    type: ClassVar[str] = "gitlab"
    description: ClassVar[str] = (
        "GitLab container registry (GitLab.com or self-managed; access or deploy tokens)"
    )
    capabilities: ClassVar[Capabilities] = Capabilities(
        catalog=True,  # through the API: a group's or a project's repositories
        referrers_api=False,  # probed: GitLab's registry answers it only in recent versions
        blob_mount=True,
        chunked_upload=True,
        delete_tag=True,  # through the API
        delete_manifest=True,  # DELETE /v2/<name>/manifests/<digest>, with the delete scope
        create_namespace=False,  # repositories appear on push, under an existing project
        min_path_components=2,
        max_path_components=MAX_PATH_COMPONENTS,
    )
    probed: ClassVar[frozenset[str]] = frozenset({"referrers_api"})
    #: GitLab sends no webhooks for registry pushes: nothing calls Seawall's webhook URL
    supported_triggers: ClassVar[tuple[str, ...]] = ("manual", "scheduled")
    options_spec: ClassVar[tuple[AdapterOption, ...]] = (
        AdapterOption(
            name="gitlab_url",
            help="the GitLab instance that runs the registry (its /jwt/auth issues the "
            "registry's tokens, its /api/v4 lists repositories); default https://gitlab.com "
            "for registry.gitlab.com, required for any other registry",
            example="https://gitlab.example.com",
        ),
        AdapterOption(
            name="group",
            help="discover the container repositories of this group and its subgroups (full path)",
            pattern=GITLAB_PATH_PATTERN,
            example="mygroup/platform",
        ),
        AdapterOption(
            name="project",
            help="discover this project's container repositories only (full path); "
            "pushes must then go below it",
            pattern=GITLAB_PATH_PATTERN,
            example="mygroup/myproject",
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
        self.settings: GitLabSettings = parse_settings(config)
        self._clock = clock or time.time
        self._api: GitLabApi | None = None
        self._directory: GitLabDirectory | None = None
        self._login: GitLabLogin | None = None

    @classmethod
    def check_config(cls, config: EndpointConfig) -> None:
        """The base checks, then GitLab's: the registry URL, the instance, the login, the
        discovery scope. No network."""
        super().check_config(config)
        parse_settings(config)

    @classmethod
    def secret_targets(cls, config: EndpointConfig) -> tuple[str, ...]:
        """The registry and the instance the token is sent to (gitlab.com by default)."""
        try:
            instance = parse_settings(config).gitlab_url
        except InvalidEndpoint:
            return super().secret_targets(config)
        return tuple(dict.fromkeys((*super().secret_targets(config), instance)))

    # -- clients ---------------------------------------------------------------------------

    def api(self) -> GitLabApi:
        """The REST API client (created on first call)."""
        if self._api is None:
            retry = {
                k: v
                for k, v in self._client_options.items()
                if k in ("retries", "backoff_base_seconds")
            }
            self._api = GitLabApi(
                self.settings.gitlab_url,
                token=self.settings.token or None,
                insecure=self.config.insecure,
                ca_file=self.config.ca_file,
                **retry,
            )
        return self._api

    def directory(self) -> GitLabDirectory | None:
        """Projects and repositories by path; None where the API cannot be used."""
        if not self.settings.uses_api:
            return None
        if self._directory is None:
            self._directory = GitLabDirectory(self.api())
        return self._directory

    def client(self) -> GitLabClient:
        if self._client is None:
            self._client = GitLabClient(
                self.registry_url(),
                directory=self.directory(),
                clock=self._clock,
                **self.client_kwargs(),
            )
        assert isinstance(self._client, GitLabClient)
        return self._client

    def credential_provider(self) -> CredentialProvider | None:
        """Access tokens: checked against GitLab (:class:`GitLabLogin`); anonymous and
        deploy-token logins are used as they are."""
        if not self.settings.token or not self.settings.uses_api:
            return None
        if self._login is None:
            self._login = GitLabLogin(self.settings, self.api())
        return self._login

    @property
    def token_checks(self) -> int:
        """How often GitLab was asked about the access token so far."""
        return self._login.checks if self._login is not None else 0

    async def close(self) -> None:
        await super().close()
        api, self._api, self._directory = self._api, None, None
        if api is not None:
            await api.close()

    # -- listings --------------------------------------------------------------------------

    async def catalog_listings(self, prefix: str = "") -> CatalogListings:
        """Repositories from the container registry API: the ``group``'s, the ``project``'s,
        or (neither set) the group that ``prefix`` starts with. Tags are listed per
        repository."""
        directory = self.directory()
        if directory is None:
            raise Unsupported(
                "gitlab: a deploy token cannot use GitLab's API, and GitLab's /v2/_catalog is "
                "for administrators: log in with an access token (read_api) to discover "
                "repositories, or name them in the policy"
            )
        s = self.settings
        if s.project:
            found = await directory.api.project_repositories(s.project)
        else:
            group = s.group or (prefix.split("/", 1)[0] if "/" in prefix else "")
            if not group:
                raise Unsupported(
                    "gitlab: nothing to discover in: set --group (or --project), or give the "
                    "policy a name filter that starts with the group, e.g. mygroup/**"
                )
            found = await directory.api.group_repositories(group)
        directory.remember(found)
        return sorted({r.path for r in found if r.path.startswith(prefix)}), None

    async def list_tag_refs(self, repo: str) -> tuple[list[str], dict[str, ManifestRef]]:
        """Tags from the API and each one's digest from its details (media type ``""``,
        size :data:`~adapters.oci.types.UNKNOWN_SIZE`: GitLab does not say them); the
        registry's tag list where the API knows no such repository.

        :raises adapters.oci.errors.NotFound: no such repository.
        """
        directory = self.directory()
        repository = None
        if directory is not None:
            repository = await directory.repository(repo) or await directory.repository(
                repo, fresh=True
            )
        if directory is None or repository is None:
            return await self.client().list_tag_refs(repo)
        try:
            tags = await directory.api.tags(repository)
        except NotFound:  # deleted and pushed again meanwhile: a new id, or gone
            directory.forget(repo)
            repository = await directory.repository(repo, fresh=True)
            if repository is None:
                return await self.client().list_tag_refs(repo)
            tags = await directory.api.tags(repository)
        return tags, await self._digests(directory.api, repository, tags)

    async def _digests(
        self, api: GitLabApi, repository: ContainerRepository, tags: list[str]
    ) -> dict[str, ManifestRef]:
        """Each tag's digest from its details, a few at once; the first failure is raised
        as it is (never wrapped in an exception group)."""
        refs: dict[str, ManifestRef] = {}
        failures: list[OciError] = []
        limit = anyio.Semaphore(TAG_DETAILS_IN_FLIGHT)

        async def one(tag: str) -> None:
            async with limit:
                if failures:
                    return
                try:
                    digest = await api.tag_digest(repository, tag)
                except OciError as e:
                    failures.append(e)
                    return
            if digest is not None:
                refs[tag] = ManifestRef(digest, "", UNKNOWN_SIZE)

        async with anyio.create_task_group() as tg:
            for tag in tags:
                tg.start_soon(one, tag)
        if failures:
            raise failures[0]
        return refs

    # -- names and projects ----------------------------------------------------------------

    def check_name(self, name: str) -> None:
        """GitLab's rules (:mod:`adapters.gitlab_names`); with ``project`` set, the name must
        be below that project.

        :raises adapters.base.InvalidRepositoryName: saying which rule.
        """
        check_gitlab_name(name)
        if self.settings.project:
            check_under_project(name, self.settings.project)

    async def prepare_repository(self, name: str) -> None:
        """Check the name, then that a project owns it (GitLab creates the repository on the
        first push, under an existing project only). With a deploy token (no API) only the
        name is checked.

        :raises adapters.base.InvalidRepositoryName: per :meth:`check_name`, or more than
            three image names below the project.
        :raises adapters.oci.errors.NotFound: no project owns the path.
        """
        self.check_name(name)
        directory = self.directory()
        if directory is None:
            return
        project = await directory.project_of(name)
        if project is None:
            tried = ", ".join(project_candidates(name))
            raise NotFound(
                f"gitlab: no project at {self.settings.gitlab_url} owns {name!r} (asked for "
                f"{tried}): GitLab creates a container repository on its first push only "
                "under an existing project the token can see; create the project or change "
                "the policy's destination namespace",
                status=404,
            )
        check_under_project(name, project.full_path)
