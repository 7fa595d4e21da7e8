"""Consistency of a region with this registry, over its protected repositories.

What a region must hold (its *protections*):

- what every enabled push policy from this registry to the region's endpoint selects — its
  filters applied as a run applies them (name, tag, label, artifact type; signatures stored
  under the tag schema follow their subject), each repository named as the policy names it
  there (destination namespace);
- plus, for each of the region's own patterns (``seawall region add … --protect GLOB``),
  every tag of every repository here whose name the glob matches, under the same name.

A comparison is the planner's own (:func:`engine.plan.make_plan` with override on and no
deletion): a tag it would copy is **missing** there when the region lacks it, **differs** when
the region holds another digest. **Extra**: a tag the region holds in a protected repository
that no repository here mapping to it has. Repositories under ``seawall-canary/`` are never
compared. Listing goes through the adapters: this registry once per check (its catalog carries
every tag's digest), the region once per protected repository (a Seawall or a provider whose
listing carries digests: one request; others: one ``HEAD`` per tag).
"""

from __future__ import annotations

import functools
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

import anyio

from adapters.base import RegistryAdapter
from adapters.oci.errors import OciError
from engine.filters import Filter, FilterError, repository_matches
from engine.listing import DETAIL_FILTERS, describe, list_repositories, list_side
from engine.naming import NamingError, map_repository
from engine.plan import Listing, PolicySpec, make_plan
from engine.regions.report import Consistency, is_canary

__all__ = ["Protection", "compare", "list_local", "protections"]


@dataclass(frozen=True, slots=True)
class Protection:
    """One source of protected repositories: a push policy, or one of the region's patterns."""

    label: str  # "policy NAME" or "pattern GLOB"
    spec: PolicySpec


def protections(
    policies: Iterable[Mapping[str, Any]], registry_id: int, patterns: Sequence[str]
) -> tuple[list[Protection], list[str]]:
    """The region's protections, and the problems of policies whose filters no longer parse
    (such a policy protects nothing; the region is reported incomplete)."""
    out: list[Protection] = []
    problems: list[str] = []
    for p in policies:
        if p.get("src_registry_id") is not None or p.get("dest_registry_id") != registry_id:
            continue  # a pull from the region: the region is that policy's source
        try:
            filters = tuple(Filter.from_harbor(f) for f in json.loads(p["filters_json"] or "[]"))
        except (ValueError, FilterError) as e:
            problems.append(f"policy {p['name']}: its filters cannot be read ({e})")
            continue
        spec = PolicySpec(
            policy_id=int(p["id"]),
            filters=filters,
            dest_namespace=p.get("dest_namespace") or "",
            dest_namespace_replace_count=int(p.get("dest_namespace_replace_count", -1)),
        )
        out.append(Protection(f"policy {p['name']}", spec))
    for pattern in patterns:
        spec = PolicySpec(policy_id=0, filters=(Filter("name", pattern),))
        out.append(Protection(f"pattern {pattern}", spec))
    return out, problems


async def list_local(adapter: RegistryAdapter) -> Listing:
    """Every repository of this registry but the canaries, with tags and digests."""
    repos, preloaded = await list_repositories(adapter, lambda r: not is_canary(r))
    return await list_side(adapter, repos, preloaded=preloaded)


def _selected(protection: Protection, local: Listing) -> Listing:
    filters = list(protection.spec.filters)
    repos = [r for r in local.tags if not is_canary(r) and repository_matches(filters, r)]
    return Listing(
        {r: local.tags[r] for r in repos},
        media_types=local.media_types,
        details=local.details,
    )


def _target(spec: PolicySpec, repo: str) -> str:
    return map_repository(repo, spec.dest_namespace, spec.dest_namespace_replace_count)


async def compare(
    local: Listing,
    local_adapter: RegistryAdapter,
    region: RegistryAdapter,
    found: Sequence[Protection],
    problems: Sequence[str] = (),
) -> Consistency:
    """The region's :class:`Consistency` against ``local`` (this registry's listing)."""
    problems = [*problems, *local.problems]
    selections: list[tuple[Protection, Listing]] = []
    sources: dict[str, set[str]] = {}  # region repository -> repositories here mapping to it
    for protection in found:
        chosen = _selected(protection, local)
        if any(f.type in DETAIL_FILTERS for f in protection.spec.filters):
            chosen = await describe(local_adapter.client(), chosen)
            problems += chosen.problems
        try:
            mapped = {repo: _target(protection.spec, repo) for repo in chosen.tags}
        except NamingError as e:
            problems.append(f"{protection.label}: {e}")
            continue
        for repo, target in mapped.items():
            sources.setdefault(target, set()).add(repo)
        selections.append((protection, chosen))
    targets = sorted(r for r in sources if not is_canary(r))
    try:
        there = await list_side(region, targets, missing_ok=True)
    except OciError as e:
        return Consistency.of(len(targets), (), (), (), [*problems, f"listing failed: {e}"])
    problems += there.problems
    missing: list[str] = []
    differs: list[str] = []
    for protection, chosen in selections:
        spec = replace(protection.spec, override=True, deletion=False)
        plan = await anyio.to_thread.run_sync(functools.partial(make_plan, spec, chosen, there))
        for action in plan.copies:
            held = there.tags.get(action.dst_repository, {})
            for tag in action.tags:
                ref = f"{action.dst_repository}:{tag}"
                (differs if tag in held else missing).append(ref)
    extra = [
        f"{repo}:{tag}"
        for repo in targets
        for tag in there.tags.get(repo, {})
        if not any(tag in local.tags.get(src, {}) for src in sources[repo])
    ]
    return Consistency.of(len(targets), missing, differs, extra, problems)
