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

from engine.lag import LagBasis, LagSample, replication_lag
from engine.regions.report import LagEntry
from registry.meta.db import Database

__all__ = ["LagSource", "RegionLag", "region_lag"]

log = logging.getLogger("seawall.dr")


LagSource = Callable[[Database, datetime], Awaitable[Sequence[LagSample]]]
#: endpoint id -> the lag of each push policy to it that has a change pending
RegionLag = Mapping[int, tuple[LagEntry, ...]]


async def region_lag(
    db: Database, now: datetime, source: LagSource = replication_lag
) -> RegionLag | None:
    """Each endpoint's lag entries at ``now`` (aware UTC); None when it cannot be measured."""
    try:
        samples = await source(db, now)
    except Exception:
        log.exception("failover check: measuring the replication lag failed")
        return None
    out: dict[int, list[LagEntry]] = {}
    for sample in samples:
        # a push from this registry: a local source (its changes are in the outbox)
        if sample.target_id is not None and sample.basis is LagBasis.EVENTS:
            entry = LagEntry(sample.policy, max(0.0, sample.lag_seconds), sample.oldest_change_at)
            out.setdefault(int(sample.target_id), []).append(entry)
    return {k: tuple(sorted(v, key=lambda e: e.policy)) for k, v in out.items()}
