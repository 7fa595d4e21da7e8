"""``harbor``: a Harbor 2.x registry, through its OCI API and its own v2.0 API.

- **Discovery** (:meth:`HarborAdapter.catalog_listings`): projects (``GET /api/v2.0/projects``,
  paged) then each project's repositories — Harbor's ``/v2/_catalog`` is for system
  administrators only, and a robot account lists through the API too. Option ``projects``
  names the projects to look in.
- **Listing** (:meth:`HarborAdapter.list_tag_refs`): the artifact API with tags — each tag's
  digest and manifest media type in a request per 100 artifacts, no manifest ``HEAD``/``GET``
  per tag (Harbor's own replication ``GET``\\ s manifests while listing).
- **Projects on push** (:meth:`HarborAdapter.prepare_repository`): ``HEAD
  /api/v2.0/projects?project_name=`` then, if absent, ``POST /api/v2.0/projects`` with the
  settings of the ``project_*`` options (:mod:`adapters.harbor_config`); a 409 (a concurrent
  creator) is success. Known projects are remembered for :attr:`probe_ttl_seconds`.
- **Tag deletes** through the API (:mod:`adapters.harbor_client`).
- **Webhooks** (:meth:`HarborAdapter.ensure_webhook`): a project's webhook policy that sends
  ``PUSH_ARTIFACT`` and ``DELETE_ARTIFACT`` to Seawall's
  ``POST /api/v2.0/registries/{id}/webhook``, for event-based pull policies.

Logins: a Harbor user, or a robot account (``robot$project+name`` for one project,
``robot$name`` for system level) and its secret, for both the registry and the API. The
referrers API (Harbor 2.8+) is probed per registry.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any, ClassVar

import anyio

from adapters.base import (
    AdapterOption,
    Capabilities,
    EndpointConfig,
    RegistryAdapter,
)
from adapters.harbor_api import WebhookTarget
from adapters.harbor_client import HarborClient
from adapters.harbor_config import (
    OPTIONS,
    HarborSettings,
    check_project_name,
    parse_settings,
    split_repository,
)
from adapters.oci.errors import Denied, NotFound, RequestRejected, Unauthorized
from adapters.oci.types import UNKNOWN_SIZE, ManifestRef
from adapters.protocol import CatalogListings

__all__ = ["WEBHOOK_EVENTS", "HarborAdapter", "WebhookTarget"]

#: the Harbor events Seawall's incoming webhook turns into event-scoped runs
WEBHOOK_EVENTS = ("PUSH_ARTIFACT", "DELETE_ARTIFACT")
_LIST_CONCURRENCY = 8


class HarborAdapter(RegistryAdapter):
    """One Harbor (see the module). Keyword arguments are
    :class:`~adapters.oci.client.OciClient` options."""

    type: ClassVar[str] = "harbor"
    description: ClassVar[str] = (
        "Harbor 2.x (projects created on push, robot accounts, artifact API listings, webhooks)"
    )
    capabilities: ClassVar[Capabilities] = Capabilities(
        catalog=True,  # through the projects and repositories API
        referrers_api=False,  # Harbor 2.8+ has it: probed
        blob_mount=True,
        chunked_upload=True,
        delete_tag=True,  # through the API (/v2 refuses a tag)
        delete_manifest=True,
        create_namespace=True,  # projects
        min_path_components=2,  # project/repository
    )
    probed: ClassVar[frozenset[str]] = frozenset({"referrers_api"})
    options_spec: ClassVar[tuple[AdapterOption, ...]] = OPTIONS

    def __init__(self, config: EndpointConfig, **client_options: Any) -> None:
        super().__init__(config, **client_options)
        self.settings: HarborSettings = parse_settings(config)
        self._projects: dict[str, float] = {}  # project known to exist -> monotonic expiry
        self._project_locks: dict[str, anyio.Lock] = {}

    @classmethod
    def check_config(cls, config: EndpointConfig) -> None:
        """The base checks, then Harbor's: a login (user or robot account), not a bearer
        token; options that agree with each other. No I/O."""
        super().check_config(config)
        parse_settings(config)

    def client(self) -> HarborClient:
        if self._client is None:
            self._client = HarborClient(self.registry_url(), **self.client_kwargs())
        assert isinstance(self._client, HarborClient)
        return self._client

    # -- names and projects ------------------------------------------------------------------

    def check_name(self, name: str) -> None:
        """The OCI grammar, at least two components, and a Harbor project name first."""
        super().check_name(name)
        check_project_name(split_repository(name)[0])

    async def prepare_repository(self, name: str) -> None:
        """Create ``name``'s project with the endpoint's project settings unless it exists.

        :raises InvalidRepositoryName: per :meth:`check_name`.
        :raises adapters.oci.errors.Denied: the login may not create projects.
        """
        self.check_name(name)
        project = split_repository(name)[0]
        if self._projects.get(project, 0.0) > time.monotonic():
            return
        lock = self._project_locks.setdefault(project, anyio.Lock())
        async with lock:  # one check (and creation) per project, however many repositories
            if self._projects.get(project, 0.0) > time.monotonic():
                return
            await self._ensure_project(project)
            self._projects[project] = time.monotonic() + self.probe_ttl_seconds

    async def _ensure_project(self, project: str) -> None:
        api = self.client().api
        try:
            if not await api.project_exists(project):
                await api.create_project(self.settings.project_request(project))
        except (Denied, Unauthorized) as e:
            who = self.config.username or "anonymous"
            raise type(e)(
                f"Harbor refused to create the project {project!r} for {who}: create it in "
                "Harbor, or log in as a user who may create projects or as a system robot "
                "account with the project create permission (docs/adapters/harbor.md)",
                status=e.status,
                code=e.code,
                method=e.method,
                url=e.url,
            ) from e

    # -- listings ----------------------------------------------------------------------------

    async def catalog_listings(self, prefix: str = "") -> CatalogListings:
        """Repository names from the projects API (only those starting with ``prefix``);
        tags are listed per repository (:meth:`list_tag_refs`)."""
        api = self.client().api
        projects = list(self.settings.projects) or [p.name for p in await api.projects()]
        head, slash, _ = prefix.partition("/")
        wanted = [p for p in projects if (p == head if slash else p.startswith(prefix))]
        found: dict[str, list[str]] = {}
        limit = anyio.Semaphore(_LIST_CONCURRENCY)

        async def one(project: str) -> None:
            async with limit:
                found[project] = await api.repositories(project)

        async with anyio.create_task_group() as tg:
            for project in wanted:
                tg.start_soon(one, project)
        names = sorted(n for repos in found.values() for n in repos if n.startswith(prefix))
        return names, None

    async def list_tag_refs(self, repo: str) -> tuple[list[str], dict[str, ManifestRef]]:
        """Tags and their digests and manifest media types from the artifact API (size
        :data:`~adapters.oci.types.UNKNOWN_SIZE`: Harbor's artifact size counts the layers).
        An empty list costs one more request: Harbor lists an unknown repository as empty.

        :raises adapters.oci.errors.NotFound: no such repository (or project).
        """
        api = self.client().api
        tags: list[str] = []
        refs: dict[str, ManifestRef] = {}
        artifacts = await api.artifacts(repo)
        if not artifacts and not await api.repository_exists(repo):
            raise NotFound(f"Harbor at {self.config.url} has no repository {repo}")
        for artifact in artifacts:
            for tag in artifact.tags:
                tags.append(tag)
                refs[tag] = ManifestRef(artifact.digest, artifact.media_type, UNKNOWN_SIZE)
        return sorted(tags), refs

    # -- webhooks ----------------------------------------------------------------------------

    async def ensure_webhook(
        self,
        project: str,
        target: WebhookTarget,
        *,
        name: str = "seawall",
        event_types: Sequence[str] = WEBHOOK_EVENTS,
    ) -> None:
        """Make ``project`` send ``event_types`` to ``target`` through a webhook policy named
        ``name`` (created, or replaced if it exists: idempotent). For Seawall the target is
        ``<seawall>/api/v2.0/registries/<id of this endpoint>/webhook`` with the endpoint's
        ``webhook_secret`` as ``auth_header``.

        :raises adapters.oci.errors.Denied: the login may not manage the project's webhooks
            (a robot account needs ``notification-policy`` create, list and update).
        """
        check_project_name(project)
        api = self.client().api
        body = {
            "name": name,
            "description": "Seawall: event-based replication from this project",
            "enabled": True,
            "event_types": list(event_types),
            "targets": [target.wire()],
        }
        try:
            for attempt in range(2):
                existing = next(
                    (p for p in await api.webhook_policies(project) if p.name == name), None
                )
                try:
                    await api.put_webhook_policy(project, body, existing.id if existing else None)
                    return
                except RequestRejected as e:
                    if e.status != 409 or attempt:
                        raise  # 409: another caller created it meanwhile: replace theirs
        except (Denied, Unauthorized) as e:
            raise type(e)(
                f"Harbor refused to manage the webhooks of project {project!r} for "
                f"{self.config.username or 'anonymous'}: give the account the project's "
                "notification-policy permissions (create, list, update), or register the "
                "webhook in Harbor's UI",
                status=e.status,
                code=e.code,
                method=e.method,
                url=e.url,
            ) from e
