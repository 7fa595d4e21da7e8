"""Listing one side of a replication: repositories, their tags and the digest each tag names.

A listing that fails anywhere is marked incomplete (never silently shorter), so deletion sync can
refuse to act on it. A Seawall's listing also says where and when each tag was written and
which tags were deleted there (:class:`adapters.seawall.OriginListing`), in the same requests:
the planner settles conflicts between regions with them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import replace
from typing import TypeVar

import anyio

from adapters.base import RegistryAdapter
from adapters.oci.errors import NotFound, OciError
from adapters.oci.origins import TagStates, carries_origins
from adapters.oci.types import ManifestRef
from adapters.protocol import RegistryClient
from adapters.seawall import OriginListing
from engine.plan import Listing
from registry.oci.origin import Origin, Tombstone

__all__ = [
    "DETAIL_FILTERS",
    "Preloaded",
    "describe",
    "head_tags",
    "list_repositories",
    "list_side",
    "merge_listings",
]

#: Filter types that need more than a tag listing: each artifact's manifest is read.
DETAIL_FILTERS = frozenset({"label", "artifact_type", "resource"})


#: ``{repository: (tags, {tag: manifest}, their origins and tombstones)}`` listed with the
#: catalog (see list_repositories).
Preloaded = Mapping[str, tuple[list[str], Mapping[str, ManifestRef], TagStates]]
_NONE = TagStates()
V = TypeVar("V")


async def list_repositories(
    adapter: RegistryAdapter, keep: Callable[[str], bool], prefix: str = ""
) -> tuple[list[str], Preloaded]:
    """The adapter's catalog, filtered by ``keep`` (name filters, applied before any tag
    listing), and the tags of those repositories where the provider lists them with the
    catalog (a Seawall: the whole listing in a request per 100 repositories; only names
    starting with ``prefix``, which every name ``keep`` keeps must have)."""
    found: Mapping[str, tuple[list[str], Mapping[str, ManifestRef], TagStates]] | None
    if isinstance(adapter, OriginListing):
        names, found = await adapter.catalog_states(prefix)
    else:
        names, plain = await adapter.catalog_listings(prefix)
        found = None if plain is None else {r: (t, m, _NONE) for r, (t, m) in plain.items()}
    repos = [r for r in names if keep(r)]
    if found is None:
        return repos, {}
    return repos, {r: found[r] for r in repos if r in found}


async def list_side(
    adapter: RegistryAdapter,
    repositories: Iterable[str],
    *,
    missing_ok: bool = False,
    concurrency: int = 32,
    known: Mapping[str, Mapping[str, str]] | None = None,
    preloaded: Preloaded | None = None,
) -> Listing:
    """Tags and digests of ``repositories``. With ``missing_ok`` an unknown repository is an
    empty one (a destination not yet created); otherwise it makes the listing incomplete.

    Tags are listed through the adapter: where its listing carries digests (a Seawall, a
    cloud provider's API) a repository costs one request (a page).
    Elsewhere ``known`` (``{repo: {tag: digest}}``, the ledger of what Seawall itself wrote
    there) is trusted for tags the registry still lists: no ``HEAD`` for them. Deletions
    re-check the digest before they act, so trusting it can delay a repair, never cause a
    wrong delete. ``preloaded`` repositories are not listed again.
    """
    client = adapter.client()
    known = known or {}
    preloaded = preloaded or {}
    tags: dict[str, dict[str, str]] = {}
    media_types: dict[str, str] = {}
    origins: dict[str, Mapping[str, Origin]] = {}
    tombstones: dict[str, Mapping[str, Tombstone]] = {}
    problems: list[str] = []
    slots = anyio.Semaphore(concurrency)
    reports = isinstance(adapter, OriginListing)

    async def listed(repo: str) -> tuple[list[str], Mapping[str, ManifestRef], TagStates]:
        if repo in preloaded:
            return preloaded[repo]
        async with slots:
            if isinstance(adapter, OriginListing):
                return await adapter.list_tag_states(repo)
            names, refs = await adapter.list_tag_refs(repo)
            return names, refs, _NONE

    async def one_tag(repo: str, tag: str) -> None:
        async with slots:
            ref = await client.head_manifest(repo, tag)
        if ref is not None:
            tags[repo][tag] = ref.digest
            media_types[ref.digest] = ref.media_type

    async def one_repo(repo: str) -> None:
        try:
            names, refs, states = await listed(repo)
        except NotFound:
            if not missing_ok:
                problems.append(f"{repo}: repository not found")
            tags[repo] = {}
            return
        tags[repo] = {}
        origins[repo], tombstones[repo] = states.origins, states.tombstones
        trusted = known.get(repo, {})
        async with anyio.create_task_group() as tg:
            for tag in names:
                if (ref := refs.get(tag)) is not None:
                    tags[repo][tag] = ref.digest
                    media_types[ref.digest] = ref.media_type
                elif tag in trusted:
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
    return Listing(
        tags,
        complete=not problems,
        problems=tuple(problems),
        media_types=media_types,
        reports_origins=reports,
        origins=origins,
        tombstones=tombstones,
    )


def _labels(annotations: object) -> frozenset[str]:
    if not isinstance(annotations, dict):
        return frozenset()
    out = set()
    for key, value in annotations.items():
        out.add(str(key))
        out.add(f"{key}={value}")
    return frozenset(out)


async def describe(client: RegistryClient, listing: Listing, concurrency: int = 16) -> Listing:
    """``listing`` with each artifact's type and labels, read from its manifest: the
    ``artifactType`` (else the config's media type, as the referrers API reports it)
    and the manifest's annotations as labels (``key`` and ``key=value``). A manifest that
    cannot be read makes the listing incomplete."""
    details: dict[str, tuple[str | None, frozenset[str]]] = {}
    media_types = dict(listing.media_types)
    problems: list[str] = []
    slots = anyio.Semaphore(concurrency)

    async def one(repo: str, digest: str) -> None:
        try:
            async with slots:
                manifest = await client.get_manifest(repo, digest)
            doc = manifest.json()
        except (OciError, ValueError, RecursionError) as e:  # a deep manifest too
            problems.append(f"{repo}@{digest}: {e}")
            return
        if not media_types.get(digest):  # a listing that did not say it (ACR's _tags)
            media_types[digest] = manifest.media_type
        if not isinstance(doc, dict):
            return
        config = doc.get("config") or {}
        config_type = config.get("mediaType") if isinstance(config, dict) else None
        artifact_type = doc.get("artifactType") or config_type  # image configs: images
        details[digest] = (artifact_type, _labels(doc.get("annotations")))

    async with anyio.create_task_group() as tg:
        seen: set[str] = set()
        for repo, tags in listing.tags.items():
            for digest in set(tags.values()) - seen:
                seen.add(digest)
                tg.start_soon(one, repo, digest)
    return replace(
        listing,
        details=details,
        media_types=media_types,
        complete=listing.complete and not problems,
        problems=listing.problems + tuple(problems),
    )


async def head_tags(
    client: RegistryClient, wanted: Mapping[str, Iterable[str]], concurrency: int = 32
) -> Listing:
    """Only the named tags (``{repository: tags}``): one ``HEAD`` each; a tag (or repository)
    that does not exist is absent from the listing, any other failure makes it incomplete.
    A Seawall's ``HEAD`` also says the tag's origin, or the tombstone of a deleted tag."""
    tags: dict[str, dict[str, str]] = {repo: {} for repo in wanted}
    origins: dict[str, dict[str, Origin]] = {repo: {} for repo in wanted}
    tombstones: dict[str, dict[str, Tombstone]] = {repo: {} for repo in wanted}
    media_types: dict[str, str] = {}
    problems: list[str] = []
    slots = anyio.Semaphore(concurrency)
    reports = carries_origins(client)

    async def one(repo: str, tag: str) -> None:
        try:
            async with slots:
                if carries_origins(client):
                    head = await client.head_tag(repo, tag)
                    ref = head.ref
                    if head.origin is not None:
                        origins[repo][tag] = head.origin
                    if head.tombstone is not None:
                        tombstones[repo][tag] = head.tombstone
                else:
                    ref = await client.head_manifest(repo, tag)
        except NotFound:
            return
        except OciError as e:
            problems.append(f"{repo}:{tag}: {e}")
            return
        if ref is not None:
            tags[repo][tag] = ref.digest
            media_types[ref.digest] = ref.media_type

    async with anyio.create_task_group() as tg:
        for repo, names in wanted.items():
            for tag in sorted(set(names)):
                tg.start_soon(one, repo, tag)
    return Listing(
        tags,
        complete=not problems,
        problems=tuple(problems),
        media_types=media_types,
        reports_origins=reports,
        origins=origins,
        tombstones=tombstones,
    )


def merge_listings(a: Listing, b: Listing) -> Listing:
    """Both listings in one (tags of a repository listed in both are united)."""
    return Listing(
        _united(a.tags, b.tags),
        complete=a.complete and b.complete,
        problems=a.problems + b.problems,
        media_types={**a.media_types, **b.media_types},
        details={**a.details, **b.details},
        reports_origins=a.reports_origins and b.reports_origins,
        origins=_united(a.origins, b.origins),
        tombstones=_united(a.tombstones, b.tombstones),
    )


def _united(
    a: Mapping[str, Mapping[str, V]], b: Mapping[str, Mapping[str, V]]
) -> dict[str, dict[str, V]]:
    out: dict[str, dict[str, V]] = {r: dict(t) for r, t in a.items()}
    for repo, more in b.items():
        out.setdefault(repo, {}).update(more)
    return out
