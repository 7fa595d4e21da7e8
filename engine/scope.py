"""The scope of an event-triggered run: which repositories changed, and which digests were pushed.

A scheduled or manual run covers the whole policy. A run triggered by events (the registry's
outbox, or a remote registry's webhook) lists and plans only the repositories the events named,
so a push reaches the other side in well under a second whatever the size of the registry. The
plan inside a scope is the ordinary one (every tag of a pushed digest, deletions when the policy
replicates them), which makes event runs idempotent by digest: replaying an event, or merging
several into one run, converges to the same state.

Pushed digests are kept because an untagged artifact, typically a signature or SBOM pushed
after its subject, appears in no tag listing: the run carries it by copying its subject's
referrers.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from engine.filters import Filter, repository_matches
from engine.regions.report import is_canary

__all__ = ["DELETIONS", "Scope", "scopes_for"]

#: Event actions that remove something (``push`` and ``tag`` add).
DELETIONS = frozenset({"untag", "delete", "delete_repository"})


@dataclass
class Scope:
    """What events named, per repository: ``digests`` pushed, ``tags`` set or removed, and
    ``whole`` repositories to list entirely (a repository deleted, or an event that did not
    say which tag). A repository in ``tags`` but not in ``whole`` is planned from those tags
    alone: one ``HEAD`` per tag on each side, whatever the size of the repository."""

    digests: dict[str, set[str]] = field(default_factory=dict)
    tags: dict[str, set[str]] = field(default_factory=dict)
    whole: set[str] = field(default_factory=set)

    @property
    def repositories(self) -> set[str]:
        return set(self.digests) | set(self.tags) | self.whole

    def add(
        self,
        repository: str,
        digest: str | None = None,
        tag: str | None = None,
        *,
        whole: bool = False,
    ) -> None:
        if digest:
            self.digests.setdefault(repository, set()).add(digest)
        if tag:
            self.tags.setdefault(repository, set()).add(tag)
        if whole:
            self.whole.add(repository)

    def conflicts(self, other: Scope) -> bool:
        """Whether runs of one policy with these two scopes must not run at once: they name
        a tag in common, or one lists a repository whole that the other names at all. Pushed
        digests alone never conflict (copying a digest is idempotent; its tags are ordered by
        the tag rule)."""
        if self.whole & other.repositories or other.whole & self.repositories:
            return True
        return any(tags & other.tags.get(repo, set()) for repo, tags in self.tags.items())

    def merge(self, other: Scope) -> Scope:
        for repo, digests in other.digests.items():
            self.digests.setdefault(repo, set()).update(digests)
        for repo, tags in other.tags.items():
            self.tags.setdefault(repo, set()).update(tags)
        self.whole |= other.whole
        return self

    def __bool__(self) -> bool:
        return bool(self.digests or self.tags or self.whole)

    def to_json(self) -> str:
        if not self:
            return ""
        body = {
            "digests": {r: sorted(d) for r, d in sorted(self.digests.items())},
            "tags": {r: sorted(t) for r, t in sorted(self.tags.items())},
            "whole": sorted(self.whole),
        }
        return json.dumps(body, separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str | None) -> Scope:
        if not text:
            return cls()
        body: Mapping[str, Any] = json.loads(text)
        digests: Mapping[str, Iterable[str]] = body.get("digests", {})
        tags: Mapping[str, Iterable[str]] = body.get("tags", {})
        return cls(
            {str(r): {str(d) for d in ds} for r, ds in digests.items()},
            {str(r): {str(t) for t in ts} for r, ts in tags.items()},
            {str(r) for r in body.get("whole", [])},
        )


#: ``(action, repository, digest, tag)``
EventTuple = tuple[str, str, str | None, str | None]


def scopes_for(
    policies: Sequence[dict[str, Any]], events: Sequence[EventTuple]
) -> dict[int, Scope]:
    """``{policy id: scope}`` for ``events``: repositories that match a policy's filters;
    deletions only for policies that replicate deletion. A push or tag event names its tag (an
    untagged push, its digest); an untag names the tag removed; a deleted manifest or
    repository, or an event naming neither tag nor digest, covers the whole repository."""
    out: dict[int, Scope] = {}
    for policy in policies:
        filters = [Filter.from_harbor(f) for f in json.loads(policy["filters_json"] or "[]")]
        scope = Scope()
        for action, repository, digest, tag in events:
            if action in DELETIONS and not policy["deletion"]:
                continue
            if is_canary(repository):  # the failover checks' canaries are nobody's changes
                continue
            if not repository_matches(filters, repository):
                continue
            if action in ("push", "tag"):
                scope.add(repository, digest, tag, whole=not (digest or tag))
            elif action == "untag" and tag:
                scope.add(repository, tag=tag)
            else:  # a manifest or repository deleted (its tags may be unknown): list it all
                scope.add(repository, whole=True)
        if scope:
            out[int(policy["id"])] = scope
    return out
