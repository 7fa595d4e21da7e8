"""The event scan behind :mod:`engine.lag` (its docstring has the rules): which outbox events
a policy covers, and which of them are not replicated yet. Internal to ``engine.lag``."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Sequence
from contextlib import aclosing
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import func, or_, select
from sqlalchemy.ext.asyncio import AsyncConnection

from engine.filters import Filter, repository_matches
from engine.scope import DELETIONS, Scope, scopes_for
from engine.state.models import EventRetry, Execution, Task
from registry.meta.models import Event

__all__ = [
    "PolicyView",
    "Run",
    "ScanMemo",
    "oldest_covered_event",
    "oldest_unreplicated_event",
    "utc",
    "within",
]

X = Execution.__table__  # type: ignore[attr-defined]
T = Task.__table__  # type: ignore[attr-defined]
E = Event.__table__  # type: ignore[attr-defined]
R = EventRetry.__table__  # type: ignore[attr-defined]
_PAGE = 2000  # events read per query


@dataclass(frozen=True, slots=True)
class PolicyView:
    """What the scan needs of a policy."""

    id: int
    name: str
    remote_source: bool
    target: str
    target_id: int | None
    trigger: str
    row: dict[str, Any]  # id, filters_json, deletion: what scopes_for reads
    filters: tuple[Filter, ...]
    created_at: datetime


@dataclass(frozen=True, slots=True)
class _Event:
    id: int
    at: datetime
    action: str
    repository: str
    digest: str | None
    tag: str | None

    @property
    def key(self) -> tuple[str, str, str]:
        """What the change is to: a later replicated change to the same key supersedes it."""
        if self.tag and self.action in ("push", "tag", "untag"):
            return ("tag", self.repository, self.tag)
        if self.digest and self.action in ("push", "delete"):
            return ("digest", self.repository, self.digest)
        return ("repository", self.repository, "")


@dataclass(frozen=True, slots=True)
class Run:
    id: int
    status: str
    scope: Scope | None  # None: the whole policy
    start: datetime
    end: datetime | None


def utc(value: datetime) -> datetime:
    """A timestamp column's value as an aware UTC time (SQLite returns naive UTC)."""
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


# ---------------------------------------------------------------- scheduled and manual


#: What a scheduled policy's scan found: per policy id, the scan's key (since, filters,
#: deletion), the oldest covered change found (None: none yet) and the last event id read.
ScanMemo = dict[int, tuple[tuple[Any, ...], datetime | None, int]]


async def oldest_covered_event(
    c: AsyncConnection, p: PolicyView, since: datetime, memo: ScanMemo | None = None
) -> datetime | None:
    """The oldest event since ``since`` that the policy covers: one grouped query, the oldest
    event per repository (and whether it removes something), matched against the policy.

    ``memo`` (kept by the caller between calls) makes the next call cheap: a change found stays
    the oldest until ``since`` moves, and when none was found only newer events are read.
    """
    key = (since, p.row["filters_json"], bool(p.row["deletion"]))
    after = 0
    if memo is not None and p.id in memo and memo[p.id][0] == key:
        _, found, after = memo[p.id]
        if found is not None:
            return found
    removes = E.c.action.in_(sorted(DELETIONS))
    rows = await c.execute(
        select(E.c.repository, removes, func.min(E.c.created_at), func.max(E.c.id))
        .where(E.c.created_at >= since, E.c.id > after)
        .group_by(E.c.repository, removes)
    )
    coverage, oldest, last = _Coverage(p), None, after
    for repository, removal, first, top in rows:
        last = max(last, int(top))
        change = _Event(0, utc(first), "delete" if removal else "push", repository, None, None)
        if coverage.scope_of(change) and (oldest is None or change.at < oldest):
            oldest = change.at
    if memo is not None:
        memo[p.id] = (key, oldest, last)
    return oldest


class _Coverage:
    """The outbox consumer's rule (:func:`engine.scope.scopes_for`) for one policy, with its
    name filters matched once per repository rather than compiled per event."""

    def __init__(self, p: PolicyView) -> None:
        self.p = p
        self._matches: dict[str, bool] = {}
        self._unfiltered = {**p.row, "filters_json": "[]"}

    def scope_of(self, e: _Event) -> Scope | None:
        """The scope the consumer gives ``e`` for the policy; None: the policy does not cover it."""
        if e.repository not in self._matches:
            self._matches[e.repository] = repository_matches(self.p.filters, e.repository)
        if not self._matches[e.repository]:
            return None
        event = (e.action, e.repository, e.digest, e.tag)
        return scopes_for([self._unfiltered], [event]).get(self.p.id)


# ---------------------------------------------------------------- event-based

Key = tuple[str, str, str]


async def oldest_unreplicated_event(
    c: AsyncConnection, p: PolicyView, since: datetime, cursor: int
) -> datetime | None:
    """Scan the events that may be unreplicated, newest first: the unconsumed ones, and those
    of repositories an open scope names. A replicated change settles every older change to the
    same thing; the scan ends, past the cursor, once everything the open scopes name is
    settled (an unsettled name scans back to ``since``: that is a lag)."""
    scopes = await _open_scopes(c, p.id, since)
    scan = _Scan(p, cursor, scopes)
    successes = _Successes(c, p.id, scan.open.repositories)
    oldest: datetime | None = None
    async with aclosing(_newest_first(c, since, cursor, scan.open.repositories)) as events:
        async for e in events:
            if e.id <= cursor and scan.settled():
                break
            scope = scan.scope_of(e)
            if scope is None or scan.superseded(e):
                continue
            await successes.reach(e.at)
            if await successes.replicated(e, scope, consumed=e.id <= cursor):
                scan.replicated(e, scope)
            elif e.id > cursor or within(scope, scan.open):
                oldest = e.at if oldest is None else min(oldest, e.at)
    return oldest


async def _open_scopes(c: AsyncConnection, policy_id: int, since: datetime) -> list[Scope]:
    """Scopes of the policy's event runs that have not succeeded (active, or ended otherwise
    since ``since``), and of its event retries: where unreplicated consumed changes can be."""
    runs = (
        await c.execute(
            select(X.c.scope_json).where(
                X.c.policy_id == policy_id,
                X.c.dry_run.is_(False),
                X.c.scope_json != "",
                X.c.status != "Succeed",
                or_(X.c.end_time.is_(None), X.c.end_time >= since),
            )
        )
    ).scalars()
    retries = (await c.execute(select(R.c.scope_json).where(R.c.policy_id == policy_id))).scalars()
    return [Scope.from_json(s) for s in [*runs, *retries] if s]


async def _newest_first(
    c: AsyncConnection, since: datetime, cursor: int, repositories: set[str]
) -> AsyncIterator[_Event]:
    """Events since ``since`` that are unconsumed or in one of ``repositories``, by id from
    the newest, a page at a time."""
    near = E.c.id > cursor
    if repositories:
        near = or_(near, E.c.repository.in_(sorted(repositories)))
    before: int | None = None
    while True:
        q = select(E.c.id, E.c.created_at, E.c.action, E.c.repository, E.c.digest, E.c.tag).where(
            E.c.created_at >= since, near
        )
        if before is not None:
            q = q.where(E.c.id < before)
        rows = (await c.execute(q.order_by(E.c.id.desc()).limit(_PAGE))).all()
        for i, at, action, repository, digest, tag in rows:
            yield _Event(int(i), utc(at), action, repository, digest, tag)
        if len(rows) < _PAGE:
            return
        before = int(rows[-1][0])


class _Scan:
    """What the scan has settled: keys with a replicated change (older changes to them are
    superseded) and repositories listed whole by a replicated change (everything older in
    them is)."""

    def __init__(self, p: PolicyView, cursor: int, scopes: Sequence[Scope]) -> None:
        self.cursor, self.coverage = cursor, _Coverage(p)
        self.open = Scope()
        for s in scopes:
            self.open.merge(s)
        self.keys: set[Key] = set()
        self.repositories: set[str] = set()

    def scope_of(self, e: _Event) -> Scope | None:
        return self.coverage.scope_of(e)

    def superseded(self, e: _Event) -> bool:
        return e.key in self.keys or e.repository in self.repositories

    def replicated(self, e: _Event, scope: Scope) -> None:
        self.keys.add(e.key)
        if e.digest and e.action in ("push", "tag"):
            self.keys.add(("digest", e.repository, e.digest))  # the artifact is there
        if e.repository in scope.whole:
            self.repositories.add(e.repository)

    def settled(self) -> bool:
        """Whether everything the open scopes name has a replicated change (seen so far)."""
        o = self.open
        if not o.whole <= self.repositories:
            return False
        named = [("tag", r, t) for r, ts in o.tags.items() for t in ts]
        named += [("digest", r, d) for r, ds in o.digests.items() for d in ds]
        return all(k in self.keys or k[1] in self.repositories for k in named)


class _Successes:
    """The policy's successful runs that ended at or after a time, read further back as the
    scan needs them; a run's copy tasks in a repository read once, when first needed."""

    def __init__(self, c: AsyncConnection, policy_id: int, repositories: set[str]) -> None:
        self.c, self.policy_id = c, policy_id
        # scoped runs matter only for consumed events, which are all in these repositories:
        # a run whose scope does not mention one is not read (a superset test in SQL; exact
        # checks follow). Too many to list: every run is read.
        named = [X.c.scope_json.like(f"%{json.dumps(r)}%") for r in sorted(repositories)]
        self.relevant = or_(X.c.scope_json == "", *named) if len(named) <= 100 else None
        self.low: datetime | None = None  # runs that ended at or after it are loaded
        self.step = timedelta(seconds=1)
        self.whole: list[Run] = []
        self.scoped: dict[str, list[Run]] = {}  # repository -> runs whose scope names it
        self.copies: dict[tuple[int, str], list[tuple[str, tuple[str, ...]]]] = {}

    async def reach(self, at: datetime) -> None:
        if self.low is not None and at >= self.low:
            return
        low = at - self.step
        self.step *= 2
        q = select(X.c.id, X.c.scope_json, X.c.start_time, X.c.end_time).where(
            X.c.policy_id == self.policy_id,
            X.c.status == "Succeed",
            X.c.dry_run.is_(False),
            X.c.end_time >= low,
        )
        if self.low is not None:
            q = q.where(X.c.end_time < self.low)
        if self.relevant is not None:
            q = q.where(self.relevant)
        for i, s, start, end in (await self.c.execute(q)).all():
            run = Run(int(i), "Succeed", Scope.from_json(s) if s else None, utc(start), utc(end))
            if run.scope is None:
                self.whole.append(run)
            else:
                for repo in run.scope.repositories:
                    self.scoped.setdefault(repo, []).append(run)
        self.low = low

    async def replicated(self, e: _Event, scope: Scope, *, consumed: bool) -> bool:
        """Rules 1 and 2 of the module docstring."""
        if any(run.start >= e.at for run in self.whole):
            return True
        if not consumed:
            return False
        for run in self.scoped.get(e.repository, ()):
            assert run.scope is not None and run.end is not None
            if run.end >= e.at and within(scope, run.scope) and not await self._contradicts(run, e):
                return True
        return False

    async def _contradicts(self, run: Run, e: _Event) -> bool:
        """Whether the run copied something ``e`` had changed away (it planned before ``e``)."""
        key = (run.id, e.repository)
        if key not in self.copies:
            rows = await self.c.execute(
                select(T.c.digest, T.c.tags_json).where(
                    T.c.execution_id == run.id,
                    T.c.operation == "copy",
                    T.c.src_repository == e.repository,
                )
            )
            self.copies[key] = [(d, tuple(json.loads(t or "[]"))) for d, t in rows]
        for digest, tags in self.copies[key]:
            if e.action == "delete_repository" or (e.action == "delete" and digest == e.digest):
                return True
            if e.tag and e.tag in tags and (e.action == "untag" or digest != e.digest):
                return True
        return False


def within(inner: Scope, outer: Scope) -> bool:
    """Whether ``outer`` names everything ``inner`` does."""
    for repo in inner.repositories:
        if repo in outer.whole:
            continue
        if repo in inner.whole:
            return False
        if not inner.digests.get(repo, set()) <= outer.digests.get(repo, set()):
            return False
        if not inner.tags.get(repo, set()) <= outer.tags.get(repo, set()):
            return False
    return True
