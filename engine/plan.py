"""Plans: what a run will copy, skip and delete — computed once, shown by a dry run, carried out
by a real run (one code path for both).

The planner is pure: :func:`make_plan` takes the policy and the listings and returns a
:class:`Plan`; it does no I/O, so every rule here is unit-tested without a registry.

Where both sides report tag origins and tombstones (Seawalls: :mod:`registry.oci.origin`) and
the policy has a conflict rule (:mod:`engine.conflicts`: set for regions that replicate to each
other), a tag the two sides disagree about is settled by the rule, and a tag deleted on one
side is never copied back from the other: with deletion on, the tombstone deletes it there
instead. Elsewhere the override rule decides, as Harbor's does.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace

from engine.conflicts import NO_ORIGIN, Conflict, ConflictRule, Side, Write
from engine.filters import Candidate, Filter, apply_filters
from engine.naming import map_repository
from registry.oci.origin import Origin, Tombstone

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
    #: settles tags written differently on both sides (only where both report origins)
    conflict_rule: ConflictRule = field(default_factory=ConflictRule)


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
    #: the side reports where and when each tag was written, and the tags deleted there (a
    #: Seawall): ``origins`` ``{repo: {tag: origin}}`` (a tag missing there was written before
    #: origins were recorded) and ``tombstones`` ``{repo: {tag: tombstone}}``
    reports_origins: bool = False
    origins: Mapping[str, Mapping[str, Origin]] = field(default_factory=dict)
    tombstones: Mapping[str, Mapping[str, Tombstone]] = field(default_factory=dict)

    def write(self, repo: str, tag: str) -> Write | None:
        """The side's last write of ``repo:tag``: the tag, its tombstone, or None."""
        digest = self.tags.get(repo, {}).get(tag)
        if digest is not None:
            return Write(self.origins.get(repo, {}).get(tag, NO_ORIGIN), digest)
        gone = self.tombstones.get(repo, {}).get(tag)
        return None if gone is None else Write.of_tombstone(gone)


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
    #: the repository the tag was deleted from at the source, where known (a Seawall's
    #: tombstone there gives the deletion its origin: :meth:`engine.copier.Copier.deleting`)
    src_repository: str = ""


@dataclass(frozen=True, slots=True)
class Plan:
    copies: tuple[CopyAction, ...] = ()
    skips: tuple[SkipAction, ...] = ()
    deletions: tuple[DeleteAction, ...] = ()
    deletions_blocked: str = ""  # why planned deletions will not run (guard or bad listing)
    problems: tuple[str, ...] = ()  # what went wrong listing the source
    conflicts: tuple[Conflict, ...] = ()  # tags both sides wrote differently, and who won

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
    conflicts: list[Conflict] = []
    kept_tags: dict[str, set[str]] = {}
    candidates = _candidates(source)
    chosen = apply_filters(list(policy.filters), candidates)
    aware = _aware(policy, source, destination)
    for cand in chosen + _fallback_referrers(policy.filters, candidates, chosen):
        dst_repo = map_repository(
            cand.repository, policy.dest_namespace, policy.dest_namespace_replace_count
        )
        kept_tags.setdefault(dst_repo, set()).update(cand.tags)
        dst_tags = destination.tags.get(dst_repo, {})
        to_copy, identical, differs = [], [], []
        settled: dict[str, Conflict] = {}
        for tag in cand.tags:
            have = dst_tags.get(tag)
            if have == cand.digest:
                identical.append(tag)
                continue
            theirs = destination.write(dst_repo, tag) if aware else None
            if theirs is not None:  # both sides wrote it: the rule settles it
                ours = source.write(cand.repository, tag)
                assert ours is not None
                settled[tag] = policy.conflict_rule.settle(cand.repository, tag, ours, theirs)
                if settled[tag].winner == Side.DESTINATION:
                    continue
            if have is None or policy.override:
                to_copy.append(tag)
            else:
                differs.append(tag)
        conflicts.extend(settled.values())
        skips.extend(_lost(cand, dst_repo, settled))
        if to_copy:
            reason = "missing at destination" if not identical else "some tags missing"
            if any(dst_tags.get(t) not in (None, cand.digest) for t in to_copy):
                reason = "destination differs (override on)"
            won = [settled[t] for t in to_copy if t in settled]
            if won:
                reason = f"conflict settled for the source: {won[0].describe()}"
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
    deletions, blocked, settled_deletions = _deletions(
        policy, source, destination, kept_tags, replicated or {}, deletion_base
    )
    return Plan(
        tuple(_subject_first(copies)),
        tuple(skips),
        deletions,
        blocked,
        conflicts=tuple(conflicts) + settled_deletions,
    )


def _aware(policy: PolicySpec, source: Listing, destination: Listing) -> bool:
    """Whether conflicts are settled: the policy has a rule, and both sides report origins."""
    return policy.conflict_rule.settles and source.reports_origins and destination.reports_origins


def _lost(cand: Candidate, dst_repo: str, settled: Mapping[str, Conflict]) -> list[SkipAction]:
    """Skips for the tags of ``cand`` whose conflict the destination won: one per reason."""
    lost = [c for c in settled.values() if c.winner == Side.DESTINATION]
    out: list[SkipAction] = []
    for deleted in (True, False):
        some = [c for c in lost if c.destination.deleted == deleted]
        if not some:
            continue
        what = "deleted at the destination: not copied back" if deleted else "destination wins"
        out.append(
            SkipAction(
                cand.repository,
                dst_repo,
                cand.digest,
                tuple(c.tag for c in some),
                "skipped-differs",
                f"conflict settled for the destination ({what}): {some[0].describe()}",
            )
        )
    return out


def _deletions(
    policy: PolicySpec,
    source: Listing,
    destination: Listing,
    kept_tags: Mapping[str, set[str]],
    replicated: Mapping[str, Mapping[str, str]],
    base: int | None,
) -> tuple[tuple[DeleteAction, ...], str, tuple[Conflict, ...]]:
    """Deletion sync: what the ledger holds and the source no longer has (never more than
    that, where the sides report no origins); where they do, also what the source's tombstones
    delete — a tag deleted there later than the destination's was written (by the policy's
    rule) — and nothing whose destination write is the later one."""
    if not policy.deletion:
        return (), "", ()
    aware = _aware(policy, source, destination)
    sources = _source_repositories(policy, source) if aware else {}
    candidates: dict[tuple[str, str], DeleteAction] = {}
    conflicts: list[Conflict] = []
    inferred = 0  # deletions inferred from absence alone (what the fraction guard is for)
    for dst_repo, ledger in sorted(replicated.items()):
        present = destination.tags.get(dst_repo, {})
        keep = kept_tags.get(dst_repo, set())
        for tag, digest in sorted(ledger.items()):
            if tag in keep or present.get(tag) != digest:
                continue  # still at the source, or no longer what we put there: not ours to delete
            gone = _settled(policy, source, destination, sources.get(dst_repo), dst_repo, tag)
            if gone is not None:
                conflicts.append(gone)
                if gone.winner == Side.DESTINATION:
                    continue
            else:
                inferred += 1
            candidates[(dst_repo, tag)] = DeleteAction(
                dst_repo, tag, digest, src_repository=sources.get(dst_repo, "")
            )
    for dst_repo, src_repo in sorted(sources.items()):
        present = destination.tags.get(dst_repo, {})
        for tag in sorted(source.tombstones.get(src_repo, {})):
            if (dst_repo, tag) in candidates or tag not in present:
                continue
            if tag in kept_tags.get(dst_repo, set()) or not _tag_selected(policy, src_repo, tag):
                continue
            gone = _settled(policy, source, destination, src_repo, dst_repo, tag)
            assert gone is not None
            conflicts.append(gone)
            if gone.winner == Side.SOURCE:
                why = f"deleted at source ({gone.source.origin.describe()})"
                candidates[(dst_repo, tag)] = DeleteAction(
                    dst_repo, tag, present[tag], why, src_repo
                )
    found = tuple(candidates.values())
    return found, _blocked(policy, source, destination, found, inferred, base), tuple(conflicts)


def _source_repositories(policy: PolicySpec, source: Listing) -> dict[str, str]:
    """``{destination repository: source repository}`` of the repositories the source listed
    (tags or tombstones) that the name filters keep."""
    names = set(source.tags) | set(source.tombstones)
    selected = apply_filters(
        [f for f in policy.filters if f.type == "name"], [Candidate(r, "", ()) for r in names]
    )
    return {
        map_repository(c.repository, policy.dest_namespace, policy.dest_namespace_replace_count): (
            c.repository
        )
        for c in selected
    }


def _tag_selected(policy: PolicySpec, repo: str, tag: str) -> bool:
    """Whether the policy would carry ``repo:tag``, judged on names alone: a policy with
    filters on what an artifact is (labels, types) deletes by tombstone only what its ledger
    says it put there."""
    if any(f.type not in ("name", "tag") for f in policy.filters):
        return False
    return bool(apply_filters(list(policy.filters), [Candidate(repo, "", (tag,))]))


def _settled(
    policy: PolicySpec,
    source: Listing,
    destination: Listing,
    src_repo: str | None,
    dst_repo: str,
    tag: str,
) -> Conflict | None:
    """The rule's verdict between the source's tombstone of a tag and the destination's tag;
    None where the source has no tombstone for it (or the sides report no origins)."""
    if src_repo is None:
        return None
    ours, theirs = source.write(src_repo, tag), destination.write(dst_repo, tag)
    if ours is None or not ours.deleted or theirs is None or theirs.deleted:
        return None
    return policy.conflict_rule.settle(src_repo, tag, ours, theirs)


def _blocked(
    policy: PolicySpec,
    source: Listing,
    destination: Listing,
    found: tuple[DeleteAction, ...],
    inferred: int,
    base: int | None,
) -> str:
    """Why ``found`` may not run: an incomplete source listing, or a guard. The fraction guard
    counts only deletions inferred from a tag's absence at the source (a tombstone is a
    record of the deletion, not an inference); ``max_deletions`` counts all."""
    if not found:
        return ""
    if not source.complete:
        why = "; ".join(source.problems[:3]) or "the source listing was incomplete"
        return f"no deletion: {why}"
    total = (base if base is not None else sum(len(t) for t in destination.tags.values())) or 1
    if len(found) > policy.max_deletions:
        return (
            f"{GUARD}: {len(found)} deletions exceed max_deletions="
            f"{policy.max_deletions}; review them with a dry run, then raise the limit "
            "(seawall policy update NAME --max-deletions N, or the API's max_deletions)"
        )
    if inferred and inferred / total > policy.max_deletion_fraction:
        return (
            f"{GUARD}: {inferred} of {total} destination tags "
            f"({inferred / total:.0%}) exceed max_deletion_fraction="
            f"{policy.max_deletion_fraction:g}; review them with a dry run, then raise the limit "
            "(seawall policy update NAME --max-deletion-fraction F)"
        )
    return ""
