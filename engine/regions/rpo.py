"""Replication lag per region: the age of the oldest change not yet replicated there — the
recovery point a failover to it would have right now.

The samples come from :func:`engine.lag.replication_lag` (one per enabled policy and its
target); a region's lag is the largest lag of the push policies from this registry to its
endpoint (0 when none has a change pending). Pulls from the region do not count: they carry
the region's changes here, not this registry's there.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from datetime import datetime
from typing import Protocol

from sqlalchemy import select

from engine.regions.report import LagEntry
from engine.state.models import Policy
from registry.meta.db import Database

__all__ = ["LagSample", "LagSource", "RegionLag", "region_lag"]

log = logging.getLogger("seawall.dr")
P = Policy.__table__  # type: ignore[attr-defined]


class LagSample(Protocol):
    """What :mod:`engine.lag` reports per policy and target."""

    @property
    def policy(self) -> str: ...

    @property
    def policy_id(self) -> int: ...

    @property
    def lag_seconds(self) -> float: ...

    @property
    def oldest_change_at(self) -> datetime | None: ...


LagSource = Callable[[Database, datetime], Awaitable[Sequence[LagSample]]]
#: endpoint id -> the lag of each push policy to it that has a change pending
RegionLag = Mapping[int, tuple[LagEntry, ...]]


def _default_source() -> LagSource | None:
    try:
        from engine.lag import replication_lag
    except ImportError:  # not part of this build
        return None
    return replication_lag


async def region_lag(db: Database, now: datetime, source: LagSource | None) -> RegionLag | None:
    """Each endpoint's lag entries at ``now``; None when the lag cannot be measured."""
    source = source or _default_source()
    if source is None:
        return None
    try:
        samples = await source(db, now)
    except Exception:
        log.exception("failover check: measuring the replication lag failed")
        return None
    async with db.read() as c:
        rows = (await c.execute(select(P.c.id, P.c.src_registry_id, P.c.dest_registry_id))).all()
    pushes = {  # policy id -> endpoint id, for the pushes from this registry
        int(pid): int(dest) for pid, src, dest in rows if src is None and dest is not None
    }
    out: dict[int, list[LagEntry]] = {}
    for sample in samples:
        endpoint = pushes.get(int(sample.policy_id))
        if endpoint is not None:
            lag = max(0.0, float(sample.lag_seconds))
            out.setdefault(endpoint, []).append(
                LagEntry(sample.policy, lag, sample.oldest_change_at)
            )
    return {k: tuple(sorted(v, key=lambda e: e.policy)) for k, v in out.items()}
