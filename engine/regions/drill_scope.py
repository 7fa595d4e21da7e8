"""What a drill puts at risk, and where the survivors should hold each of it.

**Placement.** Every region's protections (:mod:`engine.regions.consistency`: the push
policies from this Seawall to it, its ``--protect`` globs) applied to this registry's
listing, as a run would apply them to an empty destination: for each region, every
``(repository there, tag)`` it must hold and the ``(repository here, digest)`` it comes from.

**At risk** — what the failed region holds that a failure could lose, one entry per
``(repository, digest)`` with its tags:

- this Seawall failed: every artifact here that some region protects; its survivors'
  locations are the regions that protect it, under their names for it;
- a region failed: what it holds in its protected repositories (its listing, taken before
  the failure — changes made there included); the survivors' locations are this Seawall
  under the repositories here that map there, and every other region protecting those
  repositories, under its names for them.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace

import anyio

from adapters.base import RegistryAdapter
from engine.filters import repository_matches
from engine.listing import DETAIL_FILTERS, describe
from engine.naming import NamingError
from engine.plan import Listing, make_plan
from engine.regions.consistency import Protection
from engine.regions.drill_ack import Change
from engine.regions.drill_report import AtRisk, Location
from engine.regions.report import is_canary

__all__ = ["Placement", "apply_changes", "at_risk_of_region", "at_risk_of_self", "placement"]

Wanted = dict[tuple[str, str], tuple[str, str]]  # (repository there, tag) -> (here, digest)


@dataclass(frozen=True, slots=True)
class Placement:
    """``wanted[region]``: ``(repository there, tag) -> (repository here, digest)``;
    ``names[region]``: ``repository here -> repositories there``; ``problems``: what could
    not be worked out (a filter that needs manifests that could not be read, a name that
    cannot be mapped)."""

    wanted: Mapping[str, Wanted]
    names: Mapping[str, Mapping[str, frozenset[str]]]
    problems: tuple[str, ...] = ()

    def sources(self, region: str, repository: str) -> set[str]:
        """The repositories here that ``region`` holds as ``repository``."""
        return {here for here, there in self.names.get(region, {}).items() if repository in there}


async def placement(
    local: Listing,
    local_adapter: RegistryAdapter | None,
    regions: Mapping[str, Sequence[Protection]],
) -> Placement:
    """Each region's wanted tags from ``local`` (this registry's listing). ``local_adapter``
    reads manifests for label and artifact-type filters (None: they judge by the details
    ``local`` already has, and select nothing they would need to read)."""
    wanted: dict[str, Wanted] = {}
    names: dict[str, dict[str, frozenset[str]]] = {}
    problems: list[str] = [*local.problems]
    for region, found in regions.items():
        into: Wanted = {}
        repo_names: dict[str, set[str]] = {}
        for protection in found:
            chosen, trouble = await _chosen(protection, local, local_adapter)
            problems += [f"region {region}: {p}" for p in trouble]
            spec = replace(protection.spec, override=True, deletion=False)
            try:
                plan = await anyio.to_thread.run_sync(
                    functools.partial(make_plan, spec, chosen, Listing({}))
                )
            except NamingError as e:
                problems.append(f"region {region}: {protection.label}: {e}")
                continue
            for copy in plan.copies:
                repo_names.setdefault(copy.src_repository, set()).add(copy.dst_repository)
                for tag in copy.tags:
                    into[(copy.dst_repository, tag)] = (copy.src_repository, copy.digest)
        wanted[region] = into
        names[region] = {k: frozenset(v) for k, v in repo_names.items()}
    return Placement(wanted, names, tuple(problems))


async def _chosen(
    protection: Protection, local: Listing, adapter: RegistryAdapter | None
) -> tuple[Listing, list[str]]:
    filters = list(protection.spec.filters)
    repos = [r for r in local.tags if not is_canary(r) and repository_matches(filters, r)]
    chosen = Listing(
        {r: local.tags[r] for r in repos}, media_types=local.media_types, details=local.details
    )
    if not any(f.type in DETAIL_FILTERS for f in filters):
        return chosen, []
    if adapter is None:
        return chosen, []
    described = await describe(adapter.client(), chosen)
    return described, list(described.problems)


def apply_changes(listing: Listing, changes: Iterable[Change]) -> Listing:
    """``listing`` (repository -> tag -> digest) with the outbox's later changes applied."""
    tags = {repo: dict(found) for repo, found in listing.tags.items()}
    for change in changes:
        held = tags.setdefault(change.repository, {})
        if change.action in ("push", "tag") and change.tag and change.digest:
            held[change.tag] = change.digest
        elif change.action == "untag" and change.tag:
            held.pop(change.tag, None)
        elif change.action == "delete" and change.digest:
            for tag in [t for t, d in held.items() if d == change.digest]:
                del held[tag]
        elif change.action == "delete_repository":
            held.clear()
    kept = {repo: found for repo, found in tags.items() if found}
    return replace(listing, tags=kept)


def _group(entries: Iterable[tuple[str, str, str]]) -> dict[tuple[str, str], list[str]]:
    """``(repository, tag, digest)`` entries grouped by ``(repository, digest)``."""
    out: dict[tuple[str, str], list[str]] = {}
    for repo, tag, digest in entries:
        out.setdefault((repo, digest), []).append(tag)
    return out


def at_risk_of_self(self_name: str, place: Placement) -> list[AtRisk]:
    """This Seawall failed: what it holds that some region protects."""
    locations: dict[tuple[str, str], set[Location]] = {}
    tags: dict[tuple[str, str], set[str]] = {}
    for region, wanted in place.wanted.items():
        if region == self_name:
            continue
        for (there, tag), (here, digest) in wanted.items():
            locations.setdefault((here, digest), set()).add(Location(region, there))
            tags.setdefault((here, digest), set()).add(tag)
    return [
        AtRisk(repo, digest, tuple(sorted(tags[(repo, digest)])), tuple(sorted(locs)))
        for (repo, digest), locs in sorted(locations.items())
    ]


def at_risk_of_region(
    region: str, held: Listing, self_name: str, place: Placement, survivors: Sequence[str]
) -> list[AtRisk]:
    """``region`` failed: what ``held`` (its listing of its protected repositories) names,
    with the survivors' locations for each."""
    entries = ((repo, tag, d) for repo, tags in held.tags.items() for tag, d in tags.items())
    out: list[AtRisk] = []
    for (repo, digest), tag_list in sorted(_group(entries).items()):
        here = place.sources(region, repo)
        locs = {Location(self_name, h) for h in here}
        for other in survivors:
            if other == self_name:
                continue
            for h in here:
                locs |= {Location(other, name) for name in place.names.get(other, {}).get(h, ())}
        out.append(AtRisk(repo, digest, tuple(sorted(tag_list)), tuple(sorted(locs))))
    return out
