"""Who is asking, and what of the replication state they may see.

Admins see everything. Any other account sees a replication task (and its log) only when it may
pull the task's repository on this registry (its grants, or anonymous pull) — the same rule
the registry applies to ``GET /v2/…``: a robot scoped to ``team/*`` learns nothing through the
management API about repositories outside ``team/``. A task of a remote → remote policy has no
repository here, so only admins see it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import ColumnElement, false, or_, true

from registry.auth.permissions import REPOSITORY_ACTIONS, Grant, allowed_actions
from registry.auth.scopes import Access
from registry.http.asgi import Request
from registry.meta.accounts import AccountRecord

__all__ = ["Viewer", "remember", "viewer_of"]

_KEY = "seawall.viewer"
_PULL = frozenset({"pull"})


@dataclass(frozen=True, slots=True)
class Viewer:
    """An authenticated account, as the API's reads filter by it."""

    name: str
    kind: str
    grants: tuple[Grant, ...]
    anonymous_pull: bool

    @property
    def admin(self) -> bool:
        return self.kind == "admin"

    @classmethod
    def of(cls, account: AccountRecord, anonymous_pull: bool) -> Viewer:
        grants = tuple(Grant(g.repository, g.actions) for g in account.grants)
        return cls(account.name, account.kind, grants, anonymous_pull)

    def can_pull(self, repository: str) -> bool:
        access = Access("repository", repository, _PULL)
        found = allowed_actions(self.kind, self.grants, access, anonymous_pull=self.anonymous_pull)
        return "pull" in found

    def pullable(self, column: Any) -> ColumnElement[bool]:
        """SQL: ``column`` (a repository name of this registry) is one this account may pull.
        The grant patterns of :mod:`registry.auth.permissions`: exact, ``prefix/*``, ``*``."""
        if self.admin or self.anonymous_pull:
            return true()
        if self.kind not in ("user", "robot"):
            return false()
        terms = []
        for grant in self.grants:
            actions = grant.actions
            if "pull" not in actions and not ("*" in actions or actions >= REPOSITORY_ACTIONS):
                continue
            if grant.repository == "*":
                return true()
            if grant.repository.endswith("/*"):
                terms.append(column.startswith(grant.repository[:-1], autoescape=True))
            else:
                terms.append(column == grant.repository)
        return or_(*terms) if terms else false()


def remember(req: Request, viewer: Viewer) -> None:
    req.scope[_KEY] = viewer


def viewer_of(req: Request) -> Viewer | None:
    """The authenticated account of ``req`` (None on public routes)."""
    found = req.scope.get(_KEY)
    return found if isinstance(found, Viewer) else None
