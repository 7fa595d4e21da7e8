"""Plans: what a run will copy, skip and delete — computed once, shown by a dry run, carried out
by a real run (one code path for both).

The planner is pure: :func:`make_plan` takes the policy and the listings and returns a
:class:`Plan`; it does no I/O, so every rule here is unit-tested without a registry.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace

from engine.filters import Candidate, Filter, apply_filters
from engine.naming import map_repository

__all__ = [
    "GUARD",
    "CopyAction",
    "DeleteAction",
    "Listing",
    "Plan",
    "PolicySpec",
    "SkipAction",
    "make_plan",
]

#: How a plan's ``deletions_blocked`` (and the run's status text) begins when a per-run
#: deletion limit stopped it: the run then waits for a person, not for a retry.
GUARD = "deletion guard"
_REFERRER_TAG = re.compile(r"^(sha256)-([a-f0-9]{64})(\..+)?$")


@dataclass(frozen=True, slots=True)
class PolicySpec:
    """The parts of a policy the planner needs."""

    policy_id: int
    filters: tuple[Filter, ...] = ()
    dest_namespace: str = ""
    dest_namespace_replace_count: int = -1
    override: bool = True
    deletion: bool = False
    max_deletions: int = 100
    max_deletion_fraction: float = 0.25


@dataclass(frozen=True, slots=True)
class Listing:
    """What one side holds: ``{repository: {tag: digest}}``, plus whether the listing is whole.

    ``complete`` is false when any part failed (an error, a partial page, an auth failure):
    deletions are then never planned from it.
    """

    tags: Mapping[str, Mapping[str, str]]
    complete: bool = True
    problems: tuple[str, ...] = ()
    media_types: Mapping[str, str] = field(default_factory=dict)  # digest -> media type
    #: digest -> (artifact type, labels), filled only when filters need them (see
    #: :func:`engine.listing.describe`): one manifest GET per artifact
    details: Mapping[str, tuple[str | None, frozenset[str]]] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class CopyAction:
    src_repository: str
    dst_repository: str
    digest: str
    tags: tuple[str, ...]  # tags to set at the destination once the content is complete
    media_type: str = ""
    reason: str = "missing at destination"


@dataclass(frozen=True, slots=True)
class SkipAction:
    src_repository: str
    dst_repository: str
    digest: str
    tags: tuple[str, ...]
    outcome: str  # skipped-identical | skipped-differs
    reason: str


@dataclass(frozen=True, slots=True)
class DeleteAction:
    dst_repository: str
    tag: str
    digest: str
    reason: str = "deleted at source"


@dataclass(frozen=True, slots=True)
class Plan:
    copies: tuple[CopyAction, ...] = ()
    skips: tuple[SkipAction, ...] = ()
    deletions: tuple[DeleteAction, ...] = ()
    deletions_blocked: str = ""  # why planned deletions will not run (guard or bad listing)
    problems: tuple[str, ...] = ()  # what went wrong listing the source

    @property
    def total(self) -> int:
        return len(self.copies) + len(self.skips) + len(self.deletions)


def _candidates(source: Listing) -> list[Candidate]:
    out: list[Candidate] = []
    for repo in sorted(source.tags):
        by_digest: dict[str, list[str]] = {}
        for tag, digest in source.tags[repo].items():
            by_digest.setdefault(digest, []).append(tag)
        for digest, tags in by_digest.items():
            referrer = any(_REFERRER_TAG.match(t) for t in tags)
            artifact_type, labels = source.details.get(digest, (None, frozenset()))
            out.append(
                Candidate(
                    repository=repo,
                    digest=digest,
                    tags=tuple(sorted(tags)),
                    labels=labels,
                    media_type=source.media_types.get(digest, ""),
                    artifact_type=artifact_type,
                    is_referrer=referrer,
                )
            )
    return out


def _fallback_referrers(
    filters: tuple[Filter, ...], candidates: list[Candidate], chosen: list[Candidate]
) -> list[Candidate]:
    """Signatures and attestations stored under the tag schema (``sha256-<subject>.sig``) whose
    subject the filters chose: tag filters are for the subjects' tags, so these follow their
    subject whatever the tag filters say (the other filters still apply)."""
    selected = {(c.repository, c.digest) for c in chosen}
    others = [f for f in filters if f.type != "tag"]
    extra: list[Candidate] = []
    for cand in candidates:
        if not cand.is_referrer or (cand.repository, cand.digest) in selected:
            continue
        follow = tuple(
            t
            for t in cand.tags
            if (m := _REFERRER_TAG.match(t)) and (cand.repository, f"{m[1]}:{m[2]}") in selected
        )
        if follow:
            extra.extend(apply_filters(others, [replace(cand, tags=follow)]))
    return extra


def _subject_first(actions: list[CopyAction]) -> list[CopyAction]:
    """Fallback-schema referrer tags (``sha256-<hex>.sig``) go after every other copy, so a
    signature never arrives before its subject."""
    return sorted(actions, key=lambda a: any(_REFERRER_TAG.match(t) for t in a.tags))


def make_plan(
    policy: PolicySpec,
    source: Listing,
    destination: Listing,
    replicated: Mapping[str, Mapping[str, str]] | None = None,
    *,
    deletion_base: int | None = None,
) -> Plan:
    """Decide every action of a run.

    ``replicated`` is the ledger of what this policy put at the destination
    (``{dst_repository: {tag: digest}}``); deletion sync only ever deletes what is in it.
    ``deletion_base`` is what ``max_deletion_fraction`` is a fraction of: by default the tags
    listed at the destination; an event-scoped run, which lists only the repositories its
    events named, passes the number of tags the policy has replicated in all.
    """
    copies: list[CopyAction] = []
    skips: list[SkipAction] = []
    kept_tags: dict[str, set[str]] = {}
    candidates = _candidates(source)
    chosen = apply_filters(list(policy.filters), candidates)
    for cand in chosen + _fallback_referrers(policy.filters, candidates, chosen):
        dst_repo = map_repository(
            cand.repository, policy.dest_namespace, policy.dest_namespace_replace_count
        )
        kept_tags.setdefault(dst_repo, set()).update(cand.tags)
        dst_tags = destination.tags.get(dst_repo, {})
        to_copy, identical, differs = [], [], []
        for tag in cand.tags:
            have = dst_tags.get(tag)
            if have == cand.digest:
                identical.append(tag)
            elif have is None or policy.override:
                to_copy.append(tag)
            else:
                differs.append(tag)
        if to_copy:
            reason = "missing at destination" if not identical else "some tags missing"
            if any(dst_tags.get(t) not in (None, cand.digest) for t in to_copy):
                reason = "destination differs (override on)"
            copies.append(
                CopyAction(
                    cand.repository, dst_repo, cand.digest, tuple(to_copy), cand.media_type, reason
                )
            )
        elif identical:
            skips.append(
                SkipAction(
                    cand.repository,
                    dst_repo,
                    cand.digest,
                    tuple(identical),
                    "skipped-identical",
                    "identical at destination",
                )
            )
        if differs:
            skips.append(
                SkipAction(
                    cand.repository,
                    dst_repo,
                    cand.digest,
                    tuple(differs),
                    "skipped-differs",
                    "destination differs and override is off",
                )
            )
    deletions, blocked = _deletions(
        policy, source, destination, kept_tags, replicated or {}, deletion_base
    )
    return Plan(tuple(_subject_first(copies)), tuple(skips), deletions, blocked)


def _deletions(
    policy: PolicySpec,
    source: Listing,
    destination: Listing,
    kept_tags: Mapping[str, set[str]],
    replicated: Mapping[str, Mapping[str, str]],
    base: int | None,
) -> tuple[tuple[DeleteAction, ...], str]:
    if not policy.deletion:
        return (), ""
    candidates: list[DeleteAction] = []
    for dst_repo, ledger in sorted(replicated.items()):
        present = destination.tags.get(dst_repo, {})
        keep = kept_tags.get(dst_repo, set())
        for tag, digest in sorted(ledger.items()):
            if tag in keep or present.get(tag) != digest:
                continue  # still at the source, or no longer what we put there: not ours to delete
            candidates.append(DeleteAction(dst_repo, tag, digest))
    if not candidates:
        return (), ""
    if not source.complete:
        why = "; ".join(source.problems[:3]) or "the source listing was incomplete"
        return tuple(candidates), f"no deletion: {why}"
    total = (base if base is not None else sum(len(t) for t in destination.tags.values())) or 1
    if len(candidates) > policy.max_deletions:
        return tuple(candidates), (
            f"{GUARD}: {len(candidates)} deletions exceed max_deletions="
            f"{policy.max_deletions}; review them with a dry run, then raise the limit "
            "(seawall policy update NAME --max-deletions N, or the API's max_deletions)"
        )
    if len(candidates) / total > policy.max_deletion_fraction:
        return tuple(candidates), (
            f"{GUARD}: {len(candidates)} of {total} destination tags "
            f"({len(candidates) / total:.0%}) exceed max_deletion_fraction="
            f"{policy.max_deletion_fraction:g}; review them with a dry run, then raise the limit "
            "(seawall policy update NAME --max-deletion-fraction F)"
        )
    return tuple(candidates), ""
