"""What a failover check finds: values only (no I/O), and their JSON.

One check looks at every region of this logical registry — this Seawall itself (the *self*
region) and every declared one — and gives, per region::

    health       reachable → credentials accepted → canary round trip (push, pull, digests)
    lag          the age of the oldest change not yet replicated there (the current RPO)
    consistency  per protected repository: tags missing there, tags whose digest differs,
                 tags there that this registry does not have (extra)

The JSON (``seawall dr check --json``, ``POST /api/v2.0/dr/check``) keeps the contract's
fields (``name``, ``healthy``, ``lag_seconds``, ``missing``, ``differs``) and adds the details.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

__all__ = [
    "CANARY_NAMESPACE",
    "LIST_LIMIT",
    "MAX_NAME_CHARS",
    "Consistency",
    "DrReport",
    "Health",
    "LagEntry",
    "RegionChecks",
    "RegionResult",
    "check_region_name",
    "is_canary",
]

#: The reserved repository namespace of the canary round trip: ``seawall-canary/<region>``.
#: Never protected, never compared; keep it out of replication policies' filters.
CANARY_NAMESPACE = "seawall-canary"
#: Entries of ``missing`` / ``differs`` / ``extra`` listed per region (the counts are whole).
LIST_LIMIT = 1000
MAX_NAME_CHARS = 63
# one repository path component (OCI grammar), so that seawall-canary/<name> is a valid name
_NAME = re.compile(r"^[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*$")


def check_region_name(name: str) -> str:
    """``name`` if it can name a region, else :raises ValueError: saying what a name is."""
    if not name or len(name) > MAX_NAME_CHARS or _NAME.fullmatch(name) is None:
        raise ValueError(
            f"region name {name[:80]!r} is not valid: use 1 to {MAX_NAME_CHARS} lowercase "
            "letters and digits, separated by '.', '_' or '-' (e.g. eu-west-1)"
        )
    return name


def is_canary(repository: str) -> bool:
    return repository == CANARY_NAMESPACE or repository.startswith(CANARY_NAMESPACE + "/")


def _iso(value: datetime | None) -> str | None:
    if value is None:
        return None
    value = value if value.tzinfo is not None else value.replace(tzinfo=UTC)
    return (
        value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{value.microsecond // 1000:03d}Z"
    )


def _ms(value: float | None) -> float | None:
    return None if value is None else round(value, 1)


@dataclass(frozen=True, slots=True)
class Health:
    """Reachable (a TCP connection, no refused address), authenticated (``GET /v2/`` with the
    endpoint's credentials answers), canary (a tiny image pushed, pulled back, digests equal).
    ``latency_ms``: the ``GET /v2/`` round trip; ``canary_ms``: push and pull together.
    ``detail``: what failed (or ``ok``); a canary that could not be removed says so there
    without making the region unhealthy."""

    reachable: bool
    authenticated: bool
    canary: bool
    detail: str
    latency_ms: float | None = None
    canary_ms: float | None = None
    canary_removed: bool = False

    @property
    def healthy(self) -> bool:
        return self.reachable and self.authenticated and self.canary

    def to_json(self) -> dict[str, Any]:
        return {
            "reachable": self.reachable,
            "authenticated": self.authenticated,
            "canary": self.canary,
            "canary_removed": self.canary_removed,
            "latency_ms": _ms(self.latency_ms),
            "canary_ms": _ms(self.canary_ms),
            "detail": self.detail,
        }


@dataclass(frozen=True, slots=True)
class Consistency:
    """The region against this registry, over its protected repositories.

    Entries are ``repository:tag`` as named in the region (after a policy's destination
    namespace), sorted, at most :data:`LIST_LIMIT` each; the counts are whole. ``checked``
    is false when no comparison was made (the region is unhealthy); ``problems`` says what
    could not be listed (the comparison is then incomplete, hence not consistent)."""

    checked: bool
    protected_repositories: int = 0
    missing: tuple[str, ...] = ()
    differs: tuple[str, ...] = ()
    extra: tuple[str, ...] = ()
    missing_count: int = 0
    differs_count: int = 0
    extra_count: int = 0
    problems: tuple[str, ...] = ()

    @property
    def consistent(self) -> bool:
        """Nothing protected is missing or different there, and everything could be listed.
        Extra tags are reported, but lose nothing in a failover: they do not count."""
        return (
            self.checked and not self.missing_count and not self.differs_count and not self.problems
        )

    @classmethod
    def of(
        cls,
        protected: int,
        missing: Sequence[str],
        differs: Sequence[str],
        extra: Sequence[str],
        problems: Sequence[str] = (),
    ) -> Consistency:
        def cut(items: Sequence[str]) -> tuple[str, ...]:
            return tuple(sorted(set(items))[:LIST_LIMIT])

        return cls(
            True,
            protected,
            cut(missing),
            cut(differs),
            cut(extra),
            len(set(missing)),
            len(set(differs)),
            len(set(extra)),
            tuple(problems[:20]),
        )


@dataclass(frozen=True, slots=True)
class LagEntry:
    """One policy replicating to the region: how old its oldest pending change is."""

    policy: str
    lag_seconds: float
    oldest_change_at: datetime | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "policy": self.policy,
            "lag_seconds": round(self.lag_seconds, 3),
            "oldest_change_at": _iso(self.oldest_change_at),
        }


@dataclass(frozen=True, slots=True)
class RegionResult:
    """One region's check. ``lag_seconds``: the largest lag of the policies replicating to
    it (0 with none pending; None when it could not be measured)."""

    name: str
    is_self: bool
    registry: str | None  # the endpoint's name (None: this Seawall)
    url: str
    health: Health
    consistency: Consistency
    lag_seconds: float | None
    lag: tuple[LagEntry, ...] = ()
    checked_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    duration_ms: float = 0.0

    @property
    def healthy(self) -> bool:
        return self.health.healthy

    @property
    def consistent(self) -> bool:
        return self.is_self or self.consistency.consistent

    @property
    def ok(self) -> bool:
        return self.healthy and self.consistent

    def to_json(self) -> dict[str, Any]:
        c = self.consistency
        return {
            "name": self.name,
            "healthy": self.healthy,
            "lag_seconds": None if self.lag_seconds is None else round(self.lag_seconds, 3),
            "missing": [*c.missing],
            "differs": [*c.differs],
            "extra": [*c.extra],
            "consistent": self.consistent,
            "self": self.is_self,
            "registry": self.registry,
            "url": self.url,
            "health": self.health.to_json(),
            "lag": [e.to_json() for e in self.lag],
            "consistency": {
                "checked": c.checked,
                "protected_repositories": c.protected_repositories,
                "missing_count": c.missing_count,
                "differs_count": c.differs_count,
                "extra_count": c.extra_count,
                "problems": [*c.problems],
            },
            "checked_at": _iso(self.checked_at),
            "duration_ms": _ms(self.duration_ms),
        }


@dataclass(frozen=True, slots=True)
class DrReport:
    """Every region checked at once; ``ok`` when all are healthy and consistent."""

    regions: tuple[RegionResult, ...]
    checked_at: datetime

    @property
    def ok(self) -> bool:
        return all(r.ok for r in self.regions)

    def to_json(self) -> dict[str, Any]:
        return {
            "regions": [r.to_json() for r in self.regions],
            "ok": self.ok,
            "checked_at": _iso(self.checked_at),
        }


class RegionChecks(Protocol):
    """What the management API needs to run the checks (``POST /api/v2.0/dr/check``)."""

    @property
    def self_name(self) -> str:
        """The name this Seawall has as a region (setting ``dr.region_name``)."""
        ...

    async def run(self, names: Sequence[str] | None = None) -> DrReport:
        """Check the regions named (None: all), record the results, send the alerts due.

        :raises LookupError: a name that is no region.
        """
        ...
