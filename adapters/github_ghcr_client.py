"""``GhcrClient``: the OCI client, with deletes that go through the GitHub Packages API.

ghcr.io does not support the registry's manifest ``DELETE``. A manifest is deleted here by
deleting its package *version* (``DELETE …/versions/{id}``, or the package when it is the
last version: GitHub keeps no empty package), then the deletion is checked (the version is
gone) — a ``204`` that changed nothing raises :class:`DeleteNotApplied`, never passes as done.

No API removes one tag of a version: :meth:`GhcrClient.delete_tag` always raises
:class:`~adapters.oci.errors.Unsupported`, naming the version and, where it has them, the
other tags a delete by digest would take with it.
"""

from __future__ import annotations

from typing import Any

from adapters.base import InvalidRepositoryName
from adapters.github_ghcr_api import PackagesApi, PackageVersion
from adapters.github_ghcr_config import split_repository
from adapters.oci.client import OciClient
from adapters.oci.errors import NotFound, OciError, RequestRejected, Unauthorized, Unsupported
from adapters.oci.urls import is_digest
from registry.oci.origin import Origin

__all__ = ["DeleteNotApplied", "GhcrClient"]


class DeleteNotApplied(OciError):
    """GitHub accepted a delete but the version (or package) is still there."""

    hint = "nothing was deleted: check the package in GitHub's UI and delete it there"


class GhcrClient(OciClient):
    """An :class:`OciClient` for GHCR (see the module).

    :param api: the Packages API with the endpoint's token; None for an anonymous endpoint
        (which cannot delete).
    Other keyword arguments are :class:`OciClient`'s.
    """

    def __init__(self, base_url: str, *, api: PackagesApi | None, **kwargs: Any) -> None:
        super().__init__(base_url, **kwargs)
        self.api = api

    async def close(self) -> None:
        await super().close()
        if self.api is not None:
            await self.api.close()

    def packages(self, action: str) -> PackagesApi:
        """The Packages API, or :class:`Unauthorized` saying a token is needed for ``action``."""
        if self.api is None:
            raise Unauthorized(
                f"{action} on {self.base_url} needs the GitHub Packages API: give the endpoint "
                "a personal access token (classic) with read:packages and delete:packages"
            )
        return self.api

    async def delete_manifest(
        self, repo: str, digest: str, *, origin: Origin | None = None
    ) -> None:
        """Delete the package version that is ``digest`` (and so every tag on it), then check
        that it is gone. ``origin`` is ignored: GHCR keeps none.

        :raises NotFound: no such package, or no version with that digest.
        :raises DeleteNotApplied: GitHub answered but the version is still there.
        :raises adapters.oci.errors.Denied: the token lacks ``delete:packages`` (GitHub's
            message names the scopes it has and needs).
        """
        if not is_digest(digest):
            raise RequestRejected(f"delete_manifest needs a digest, got {digest!r}: see delete_tag")
        api = self.packages(f"deleting {repo}@{digest}")
        owner, package = _split(repo)
        versions = await api.list_versions(owner, package)
        version = next((v for v in versions if v.digest == digest), None)
        if version is None:
            raise NotFound(f"GHCR package {owner}/{package} has no version {digest}")
        if len(versions) == 1:  # GitHub deletes the last version with its package only
            await api.delete_package(owner, package)
            if await api.package_exists(owner, package):
                raise DeleteNotApplied(
                    f"GitHub answered the delete of package {owner}/{package} (its last version "
                    f"{version.id}, {digest}) but the package is still there"
                )
            return
        await api.delete_version(owner, package, version.id)
        if await api.get_version(owner, package, version.id) is not None:
            raise DeleteNotApplied(
                f"GitHub answered the delete of {owner}/{package} version {version.id} "
                f"({digest}) but the version is still there"
            )

    async def delete_tag(self, repo: str, tag: str, *, origin: Origin | None = None) -> None:
        """Always :class:`Unsupported`: GitHub deletes whole versions, never one tag. The
        message says which version the tag names and which other tags it carries.

        :raises NotFound: no such package or tag.
        """
        if is_digest(tag):
            raise RequestRejected(f"delete_tag needs a tag, got the digest {tag!r}")
        api = self.packages(f"deleting {repo}:{tag}")
        owner, package = _split(repo)
        version = _tagged(await api.list_versions(owner, package), tag)
        if version is None:
            raise NotFound(f"GHCR package {owner}/{package} has no tag {tag}")
        others = [t for t in version.tags if t != tag]
        if others:
            raise Unsupported(
                f"GHCR cannot delete only the tag {repo}:{tag}: GitHub deletes whole package "
                f"versions, and version {version.id} ({version.digest}) also carries the tags "
                f"{', '.join(sorted(others))}; refused rather than delete them too (move or "
                "delete those tags first, or delete the version by digest)"
            )
        raise Unsupported(
            f"GHCR cannot delete a tag by itself: {repo}:{tag} is the only tag of version "
            f"{version.id} ({version.digest}); delete it by digest"
        )


def _split(repo: str) -> tuple[str, str]:
    try:
        return split_repository(repo)
    except InvalidRepositoryName as e:
        raise RequestRejected(str(e)) from None


def _tagged(versions: list[PackageVersion], tag: str) -> PackageVersion | None:
    return next((v for v in versions if tag in v.tags), None)
