"""Listing one side of a replication: repositories, their tags and the digest each tag names.

A listing that fails anywhere is marked incomplete (never silently shorter), so deletion sync can
refuse to act on it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping

import anyio

from adapters.oci.client import OciClient
from adapters.oci.errors import NotFound, OciError
from engine.plan import Listing

__all__ = ["list_repositories", "list_side"]


async def list_repositories(client: OciClient, keep: Callable[[str], bool]) -> list[str]:
    """The catalog, filtered by ``keep`` (name filters, applied before any tag listing)."""
    return [r for r in await client.catalog() if keep(r)]


async def list_side(
    client: OciClient,
    repositories: Iterable[str],
    *,
    missing_ok: bool = False,
    concurrency: int = 32,
    known: Mapping[str, Mapping[str, str]] | None = None,
) -> Listing:
    """Tags and digests of ``repositories``. With ``missing_ok`` an unknown repository is an
    empty one (a destination not yet created); otherwise it makes the listing incomplete.

    ``known`` (``{repo: {tag: digest}}``, the ledger of what Seawall itself wrote there) is
    trusted for tags the registry still lists: no ``HEAD`` for them. Deletions re-check the
    digest before they act, so trusting it can delay a repair, never cause a wrong delete.
    """
    known = known or {}
    tags: dict[str, dict[str, str]] = {}
    media_types: dict[str, str] = {}
    problems: list[str] = []
    slots = anyio.Semaphore(concurrency)

    async def one_tag(repo: str, tag: str) -> None:
        async with slots:
            ref = await client.head_manifest(repo, tag)
        if ref is not None:
            tags[repo][tag] = ref.digest
            media_types[ref.digest] = ref.media_type

    async def one_repo(repo: str) -> None:
        try:
            async with slots:
                names = await client.list_tags(repo)
        except NotFound:
            if not missing_ok:
                problems.append(f"{repo}: repository not found")
            tags[repo] = {}
            return
        tags[repo] = {}
        trusted = known.get(repo, {})
        async with anyio.create_task_group() as tg:
            for tag in names:
                if tag in trusted:
                    tags[repo][tag] = trusted[tag]
                else:
                    tg.start_soon(one_tag, repo, tag)

    async def guarded(repo: str) -> None:
        try:
            await one_repo(repo)
        except OciError as e:
            problems.append(f"{repo}: {e}")

    async with anyio.create_task_group() as tg:
        for repo in sorted(set(repositories)):
            tg.start_soon(guarded, repo)
    return Listing(tags, complete=not problems, problems=tuple(problems), media_types=media_types)
