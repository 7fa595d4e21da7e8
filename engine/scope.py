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

__all__ = ["DELETIONS", "Scope", "scopes_for"]

#: Event actions that remove something (``push`` and ``tag`` add).
DELETIONS = frozenset({"untag", "delete", "delete_repository"})


@dataclass
class Scope:
    """``repositories``: ``{repository: {pushed digests}}`` (an empty set: the repository
    changed — tags moved or removed, artifacts or the repository deleted)."""

    repositories: dict[str, set[str]] = field(default_factory=dict)

    def add(self, repository: str, digest: str | None = None) -> None:
        digests = self.repositories.setdefault(repository, set())
        if digest:
            digests.add(digest)

    def merge(self, other: Scope) -> Scope:
        for repo, digests in other.repositories.items():
            self.repositories.setdefault(repo, set()).update(digests)
        return self

    def __bool__(self) -> bool:
        return bool(self.repositories)

    def to_json(self) -> str:
        if not self.repositories:
            return ""
        body = {r: sorted(d) for r, d in sorted(self.repositories.items())}
        return json.dumps({"repositories": body}, separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str | None) -> Scope:
        if not text:
            return cls()
        body: Mapping[str, Iterable[str]] = json.loads(text).get("repositories", {})
        return cls({str(r): {str(d) for d in ds} for r, ds in body.items()})


def scopes_for(
    policies: Sequence[dict[str, Any]], events: Sequence[tuple[str, str, str | None]]
) -> dict[int, Scope]:
    """``{policy id: scope}`` for ``events`` (``(action, repository, digest)``): repositories
    that match a policy's filters; deletions only for policies that replicate deletion."""
    out: dict[int, Scope] = {}
    for policy in policies:
        filters = [Filter.from_harbor(f) for f in json.loads(policy["filters_json"] or "[]")]
        scope = Scope()
        for action, repository, digest in events:
            if action in DELETIONS and not policy["deletion"]:
                continue
            if repository_matches(filters, repository):
                scope.add(repository, digest if action == "push" else None)
        if scope:
            out[int(policy["id"])] = scope
    return out
