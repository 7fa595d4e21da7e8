"""Plans from listings: a whole policy, or what an event scope names.

Shared by the service's runner and ``seawall sync``; no database here (the ledger of what the
policy replicated comes in as a mapping).

Between two Seawalls the plan settles tags written differently on both sides by the conflict
rule of the run's remote endpoint (:func:`conflict_rule`); each settled conflict is logged (the
audit record; the task rows say it too).
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Awaitable
from dataclasses import replace

import anyio

from adapters.base import RegistryAdapter
from adapters.oci.errors import OciError
from adapters.protocol import RegistryClient
from adapters.seawall import SeawallAdapter
from engine.conflicts import ConflictRule, rule_from_options
from engine.filters import name_prefix, repository_matches
from engine.listing import (
    DETAIL_FILTERS,
    describe,
    head_tags,
    list_repositories,
    list_side,
    merge_listings,
)
from engine.naming import map_repository
from engine.plan import CopyAction, Listing, Plan, PolicySpec, make_plan
from engine.regions.report import is_canary
from engine.scope import Scope

__all__ = ["conflict_rule", "plan_policy", "plan_scope", "scope_ledger_keys"]

log = logging.getLogger("seawall.engine")
Ledger = dict[str, dict[str, str]]


def conflict_rule(src: RegistryAdapter, dst: RegistryAdapter) -> ConflictRule:
    """The rule a run between ``src`` and ``dst`` settles conflicts by: the one set on its
    remote Seawall endpoint (the destination's, where both are remote and it sets one); none
    (the source is the authority) where none is set. Each region's endpoints for the others
    must say the same rule (docs/operations.md)."""
    for side in (dst, src):
        if isinstance(side, SeawallAdapter) and side.config.option("conflict_rule"):
            return rule_from_options(dict(side.config.options))
    return ConflictRule()


def _audited(plan: Plan) -> Plan:
    for conflict in plan.conflicts:
        log.info("replication conflict settled: %s", conflict.describe())
    return plan


def _map(spec: PolicySpec, repo: str) -> str:
    return map_repository(repo, spec.dest_namespace, spec.dest_namespace_replace_count)


async def _describe(spec: PolicySpec, src: RegistryAdapter, listing: Listing) -> Listing:
    if any(f.type in DETAIL_FILTERS for f in spec.filters):  # labels, artifact types
        return await describe(src.client(), listing)
    return listing


async def plan_policy(
    spec: PolicySpec,
    src: RegistryAdapter,
    dst: RegistryAdapter,
    ledger: Ledger,
    *,
    verify: bool = False,
) -> Plan:
    """The whole policy: the source's catalog (name filters first), both sides listed at once
    (the destination's repositories follow from the catalog). ``verify``: trust no ledger
    entry, check every destination tag."""
    spec = replace(spec, conflict_rule=conflict_rule(src, dst))
    filters = list(spec.filters)
    repos, preloaded = await list_repositories(
        src, lambda r: not is_canary(r) and repository_matches(filters, r), name_prefix(filters)
    )
    dst_repos = {_map(spec, r) for r in repos} | set(ledger)
    listings: dict[str, Listing] = {}

    async def source() -> None:
        found = await list_side(src, repos, preloaded=preloaded)
        listings["src"] = await _describe(spec, src, found)

    async def destination() -> None:
        known = None if verify else ledger
        listings["dst"] = await list_side(dst, dst_repos, missing_ok=True, known=known)

    async with anyio.create_task_group() as tg:
        tg.start_soon(source)
        tg.start_soon(destination)
    found = listings["src"]
    plan = _audited(await _planned(spec, found, listings["dst"], ledger))
    return plan if found.complete else replace(plan, problems=found.problems)


def scope_ledger_keys(spec: PolicySpec, scope: Scope) -> tuple[set[str], dict[str, set[str]]]:
    """What of the ledger an event-scoped plan reads: the destination repositories the scope
    lists whole, and the tags it names in the others (see :func:`plan_scope`)."""
    whole = {_map(spec, r) for r in scope.whole}
    tags: dict[str, set[str]] = {}
    for r, named in scope.tags.items():
        if r not in scope.whole:
            tags.setdefault(_map(spec, r), set()).update(named)
    return whole, tags


async def plan_scope(
    spec: PolicySpec,
    src: RegistryAdapter,
    dst: RegistryAdapter,
    scope: Scope,
    ledger: Ledger,
    *,
    ledger_size: int | None = None,
    verify: bool = False,
) -> Plan:
    """An event-scoped plan. Repositories the scope names whole are listed whole (a
    repository missing at the source was deleted there); the others are planned from the
    scope's tags alone, one ``HEAD`` per tag on each side, with the ledger narrowed to those
    tags so nothing else is considered for deletion. ``ledger`` needs to hold only what
    :func:`scope_ledger_keys` names; the deletion guard's fraction is taken over everything
    the policy has replicated, ``ledger_size`` tags (by default: what ``ledger`` holds)."""
    spec = replace(spec, conflict_rule=conflict_rule(src, dst))
    names = sorted(r for r in scope.repositories if repository_matches(list(spec.filters), r))
    whole = [r for r in names if r in scope.whole]
    narrow = {r: scope.tags.get(r, set()) for r in names if r not in scope.whole}
    mine: Ledger = {}
    for r in whole:
        mine.setdefault(_map(spec, r), {}).update(ledger.get(_map(spec, r), {}))
    for r, tags in narrow.items():
        held = ledger.get(_map(spec, r), {})
        mine.setdefault(_map(spec, r), {}).update({t: held[t] for t in tags if t in held})
    listings: dict[str, Listing] = {}

    async def source() -> None:
        found = await _both(list_side(src, whole, missing_ok=True), head_tags(src.client(), narrow))
        listings["src"] = await _describe(spec, src, found)

    async def destination() -> None:
        known = None if verify else mine
        listings["dst"] = await _both(
            list_side(dst, {_map(spec, r) for r in whole}, missing_ok=True, known=known),
            head_tags(dst.client(), {_map(spec, r): tags for r, tags in narrow.items()}),
        )

    async with anyio.create_task_group() as tg:  # both sides at once
        tg.start_soon(source)
        tg.start_soon(destination)
    source_listing, destination_listing = listings["src"], listings["dst"]
    base = sum(len(t) for t in ledger.values()) if ledger_size is None else ledger_size
    plan = _audited(
        await _planned(spec, source_listing, destination_listing, mine, deletion_base=base)
    )
    plan = await _with_late_referrers(plan, spec, src.client(), dst.client(), scope, source_listing)
    if source_listing.complete:
        return plan
    return replace(plan, problems=source_listing.problems)


async def _planned(
    spec: PolicySpec,
    src: Listing,
    dst: Listing,
    ledger: Ledger,
    *,
    deletion_base: int | None = None,
) -> Plan:
    """:func:`make_plan` in a worker thread: filters run over every listed tag, and a big
    listing must not hold the event loop (the registry's requests) while they do."""
    return await anyio.to_thread.run_sync(
        functools.partial(make_plan, spec, src, dst, ledger, deletion_base=deletion_base)
    )


async def _both(whole: Awaitable[Listing], narrow: Awaitable[Listing]) -> Listing:
    """The whole-repository and the by-tag listing of one side, made at once, in one."""
    found: list[Listing] = []

    async def one(listing: Awaitable[Listing]) -> None:
        found.append(await listing)

    async with anyio.create_task_group() as tg:
        tg.start_soon(one, whole)
        tg.start_soon(one, narrow)
    return merge_listings(*found)


async def _with_late_referrers(
    plan: Plan,
    spec: PolicySpec,
    src: RegistryClient,
    dst: RegistryClient,
    scope: Scope,
    source: Listing,
) -> Plan:
    """Carry artifacts pushed untagged into a scope's repositories — signatures, SBOMs and
    attestations pushed after their subject — by copying the subject again with its referrers
    (a no-op for the subject itself, which is present). Only subjects this policy carries are
    followed: ones the plan selected, or already at the destination."""
    selected = {(a.src_repository, a.digest): a.dst_repository for a in plan.copies}
    selected.update({(a.src_repository, a.digest): a.dst_repository for a in plan.skips})
    copying = {(a.src_repository, a.digest) for a in plan.copies}
    extra: dict[tuple[str, str], CopyAction] = {}
    for repo, digests in sorted(scope.digests.items()):
        if not repository_matches(list(spec.filters), repo):
            continue
        tagged = set(source.tags.get(repo, {}).values())
        for digest in sorted(digests - tagged):
            root = await _subject_root(src, repo, digest)
            key = (repo, root or "")
            if root is None or key in copying or key in extra:
                continue
            target = selected.get(key)
            if target is None and await dst.head_manifest(_map(spec, repo), root) is not None:
                target = _map(spec, repo)
            if target is not None:
                extra[key] = CopyAction(
                    repo, target, root, (), reason="referrers pushed after their subject"
                )
    if not extra:
        return plan
    return replace(plan, copies=plan.copies + tuple(extra.values()))


async def _subject_root(src: RegistryClient, repo: str, digest: str, depth: int = 4) -> str | None:
    """The artifact at the root of ``digest``'s subject chain (a signature of an SBOM of an
    image: the image), or None when ``digest`` has no subject or is gone."""
    current, root = digest, None
    for _ in range(depth):
        try:
            subject = (await src.get_manifest(repo, current)).json().get("subject") or {}
        except (OciError, ValueError, RecursionError):
            return root  # gone, or not a manifest (a registry announced a blob)
        if not isinstance(subject, dict) or not subject.get("digest"):
            return root
        current = root = str(subject["digest"])
    return root
