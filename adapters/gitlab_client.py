"""``GitLabClient``: the OCI client plus what GitLab's API adds, and ``GitLabDirectory``: which
project and which container repository (ids) a registry path is, as the API says.

- **Tag deletes** go through ``DELETE /api/v4/projects/:id/registry/repositories/:rid/tags/:tag``
  (what GitLab's own UI and cleanup policies use: it works whether or not the registry behind
  the instance deletes tags itself). A repository the API does not know (or a login that may
  not use the API) gets the registry's ``DELETE /v2/<name>/manifests/<tag>``.
- **Registry tokens**: the JWTs GitLab's ``/jwt/auth`` issues are cached per scope until
  shortly before their ``exp``, read against ``clock`` (tests inject one).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from adapters.gitlab_api import ContainerRepository, GitLabApi, GitLabProject
from adapters.gitlab_names import project_candidates
from adapters.oci.client import OciClient
from adapters.oci.errors import NotFound, RequestRejected
from adapters.oci.urls import is_digest
from registry.oci.origin import Origin
from registry.oci.reference import is_valid_tag

__all__ = ["GitLabClient", "GitLabDirectory"]

_MAX_CACHED = 10_000  # paths remembered at most (then the cache starts again)


class GitLabDirectory:
    """Projects and container repositories by registry path, asked of the API and cached
    (a miss is asked again: repositories appear on their first push)."""

    def __init__(self, api: GitLabApi) -> None:
        self.api = api
        self._projects: dict[str, GitLabProject] = {}  # lower-case full path -> project
        self._repositories: dict[str, ContainerRepository] = {}  # path -> repository

    def remember(self, repositories: list[ContainerRepository]) -> None:
        if len(self._repositories) + len(repositories) > _MAX_CACHED:
            self._repositories.clear()
        self._repositories.update((r.path, r) for r in repositories)

    async def project_of(self, path: str) -> GitLabProject | None:
        """The project that owns ``path`` (the longest prefix that is one), or None."""
        candidates = project_candidates(path)
        for candidate in candidates:
            known = self._projects.get(candidate)
            if known is not None:
                return known
        for candidate in candidates:
            project = await self.api.project(candidate)
            if project is not None:
                if len(self._projects) >= _MAX_CACHED:
                    self._projects.clear()
                self._projects[candidate] = project
                return project
        return None

    async def repository(self, path: str, *, fresh: bool = False) -> ContainerRepository | None:
        """The container repository at ``path``; None if the API lists none there."""
        if not fresh and path in self._repositories:
            return self._repositories[path]
        project = await self.project_of(path)
        if project is None:
            return None
        self._repositories = {
            p: r for p, r in self._repositories.items() if r.project_id != project.id
        }
        self.remember(await self.api.project_repositories(project.id))
        return self._repositories.get(path)

    def forget(self, path: str) -> None:
        self._repositories.pop(path, None)


class GitLabClient(OciClient):
    """An :class:`OciClient` for one GitLab registry (see the module).

    :param directory: the API's view of projects and repositories; None: no API (a deploy
        token), everything goes through the registry.
    :param clock: what registry tokens' and credentials' expiry are read against.
    Other keyword arguments are :class:`OciClient`'s.
    """

    def __init__(
        self,
        base_url: str,
        *,
        directory: GitLabDirectory | None,
        clock: Callable[[], float] = time.time,
        **kwargs: Any,
    ) -> None:
        # GitLab's JWTs expire within minutes: their cache reads the same clock as the rest
        super().__init__(base_url, credential_clock=clock, token_clock=clock, **kwargs)
        self.directory = directory

    async def delete_tag(self, repo: str, tag: str, *, origin: Origin | None = None) -> None:
        """Remove one tag through GitLab's API; NotFound if it is not there."""
        if is_digest(tag) or not is_valid_tag(tag):
            raise RequestRejected(f"delete_tag needs a tag, got {tag[:200]!r}")
        repository = None
        if self.directory is not None:
            repository = await self.directory.repository(repo)
            if repository is None:
                repository = await self.directory.repository(repo, fresh=True)
        if repository is None:
            return await super().delete_tag(repo, tag, origin=origin)
        try:
            await self.directory.api.delete_tag(repository, tag)  # type: ignore[union-attr]
        except NotFound as e:
            raise NotFound(
                f"GitLab has no tag {tag!r} in {repo} ({e.message})",
                status=404,
                method=e.method,
                url=e.url,
            ) from None
