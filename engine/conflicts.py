"""Settling a tag written differently in two regions: the rule, pure.

Where both sides of a run are Seawalls, each tag comes with its *origin* (the region that took
the client's push and that region's database time then, carried through every replication),
and each deleted tag with a *tombstone* (the digest it named and the deletion's origin). Two
sides that disagree about a tag — different digests, or one deleted what the other holds —
are settled by the run's :class:`ConflictRule`, the same way in every region, so the
policies in the two directions agree on the winner and nothing ping-pongs:

- ``none`` (the default): no settling — the source is the authority, as in Harbor (with
  override on it overwrites the destination, and a tag deleted only at the destination is
  copied again): right for a one-way mirror, which a re-run repairs;
- ``last-writer-wins``: the later origin wins; a tie goes to the greater region name, then to
  a write over a deletion, then to the greater digest.
- ``primary``: the write made in the repository's primary region wins; when neither side's
  write was made there, the last writer wins.

Whatever the rule, a deletion of the very digest the other side holds, made after that digest
was written, is no conflict: the deletion saw the write, and wins.

The rule is an endpoint setting of the ``seawall`` adapter (options ``conflict_rule`` and
``primary_region``, :mod:`adapters.seawall`); a run takes it from its remote side.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum

from engine.glob import glob_match
from registry.oci.origin import EPOCH, Origin, Tombstone

__all__ = [
    "NO_ORIGIN",
    "Conflict",
    "ConflictRule",
    "RuleKind",
    "Side",
    "Write",
    "parse_primaries",
    "rule_from_options",
]

#: The origin of a tag a Seawall lists without one (written before origins were recorded).
NO_ORIGIN = Origin(EPOCH, "")


class RuleKind(StrEnum):
    NONE = "none"
    LAST_WRITER_WINS = "last-writer-wins"
    PRIMARY = "primary"


class Side(StrEnum):
    SOURCE = "source"
    DESTINATION = "destination"


@dataclass(frozen=True, slots=True)
class Write:
    """One side's last write of a tag: its origin and the digest it set — or, ``deleted``,
    the digest the tag named when it was deleted."""

    origin: Origin
    digest: str
    deleted: bool = False

    @classmethod
    def of_tombstone(cls, tombstone: Tombstone) -> Write:
        return cls(tombstone.origin, tombstone.digest, deleted=True)

    def describe(self) -> str:
        what = "deleted" if self.deleted else self.digest
        return f"{what} ({self.origin.describe() if self.origin.region else 'origin unknown'})"

    def _key(self) -> tuple[object, ...]:
        return (self.origin.at, self.origin.region, not self.deleted, self.digest)


@dataclass(frozen=True, slots=True)
class Conflict:
    """A settled conflict, for the audit: where, both writes, who won and by which rule."""

    repository: str  # at the source
    tag: str
    source: Write
    destination: Write
    winner: Side
    rule: str

    def describe(self) -> str:
        return (
            f"{self.repository}:{self.tag}: source {self.source.describe()} vs destination "
            f"{self.destination.describe()}: the {self.winner} wins ({self.rule})"
        )


@dataclass(frozen=True, slots=True)
class ConflictRule:
    """``primaries``: ``(repository glob, region)`` in order, the first match naming the
    primary region (a glob of ``""`` matches every repository)."""

    kind: RuleKind = RuleKind.NONE
    primaries: tuple[tuple[str, str], ...] = ()

    @property
    def settles(self) -> bool:
        """Whether conflicts are settled at all (else the source is the authority)."""
        return self.kind != RuleKind.NONE

    def primary_for(self, repository: str) -> str | None:
        if self.kind != RuleKind.PRIMARY:
            return None
        for pattern, region in self.primaries:
            if not pattern or glob_match(pattern, repository):
                return region
        return None

    def settle(self, repository: str, tag: str, source: Write, destination: Write) -> Conflict:
        """Who wins between the two sides' writes of ``repository:tag``."""
        winner, why = self._winner(repository, source, destination)
        return Conflict(repository, tag, source, destination, winner, why)

    def _winner(self, repository: str, src: Write, dst: Write) -> tuple[Side, str]:
        for gone, kept, side in ((src, dst, Side.SOURCE), (dst, src, Side.DESTINATION)):
            saw_it = gone.digest == kept.digest and gone.origin > kept.origin
            if gone.deleted and not kept.deleted and saw_it:
                return side, "a later deletion of that digest"
        primary = self.primary_for(repository)
        if primary is not None:
            src_primary, dst_primary = src.origin.region == primary, dst.origin.region == primary
            if src_primary != dst_primary:
                return (Side.SOURCE if src_primary else Side.DESTINATION), f"primary {primary}"
        winner = Side.SOURCE if src._key() > dst._key() else Side.DESTINATION
        return winner, "last writer wins"


def parse_primaries(text: str) -> tuple[tuple[str, str], ...]:
    """``REGION`` or ``GLOB=REGION,…`` (a bare ``REGION`` among them: every other repository)
    → ``((glob, region), …)``. :raises ValueError: an empty part."""
    out: list[tuple[str, str]] = []
    for part in text.split(","):
        pattern, sep, region = part.strip().rpartition("=")
        if not region or (sep and not pattern):
            raise ValueError(f"primary_region part {part!r}: write REGION or GLOB=REGION")
        out.append((pattern, region))
    return tuple(out)


def rule_from_options(options: Mapping[str, str]) -> ConflictRule:
    """The rule an endpoint's options set (``conflict_rule``, ``primary_region``); ``none``
    where they set none. :raises ValueError: ``primary`` without a region."""
    kind = RuleKind(options.get("conflict_rule") or RuleKind.NONE)
    if kind != RuleKind.PRIMARY:
        return ConflictRule(kind)
    text = options.get("primary_region") or ""
    if not text:
        raise ValueError("conflict_rule primary needs primary_region")
    return ConflictRule(kind, parse_primaries(text))
