"""Recording a check: the latest result per region, and one alert per transition.

Per region, in one transaction: the result replaces the region's latest check; then each
alert state flips with a conditional ``UPDATE`` (:meth:`RegionStore.flip`) — only the writer
that flipped it writes the alert, so a state that persists check after check sends nothing
more, and two nodes checking at once send one alert:

    healthy → unhealthy          REGION_UNHEALTHY      (the first check of a region counts
    unhealthy → healthy          REGION_RECOVERED       as coming from healthy / no lag)
    lag ≤ limit → lag > limit    REPLICATION_LAG
    lag > limit → lag ≤ limit    REPLICATION_LAG_RECOVERED   (a lag not measured changes nothing)

An alert is a delivery row (:mod:`engine.notify`) for every enabled webhook that subscribes
to its type, of every policy replicating to or from the region's endpoint (for this Seawall's
own region: of every policy); the notifier sends it with its usual retries.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import Any

from sqlalchemy import insert, or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from engine.notify.models import Delivery, Webhook
from engine.notify.notifier import webhook_events
from engine.notify.payloads import dr_event, render_dr
from engine.regions.report import DrReport, RegionResult
from engine.regions.store import RegionStore
from engine.state.models import Policy
from registry.meta.db import Database
from registry.meta.models import utcnow

__all__ = ["record", "transitions"]

log = logging.getLogger("seawall.dr")
W = Webhook.__table__  # type: ignore[attr-defined]
D = Delivery.__table__  # type: ignore[attr-defined]
P = Policy.__table__  # type: ignore[attr-defined]


async def record(
    db: Database,
    report: DrReport,
    registry_ids: Mapping[str, int | None],
    lag_alert_seconds: float,
    wake: Callable[[], None] | None = None,
) -> list[tuple[str, str]]:
    """Record every region's result and write its alerts; ``(region, event type)`` of each
    alert. ``registry_ids``: each region's endpoint id (None: this Seawall)."""
    store = RegionStore(db)
    sent: list[tuple[str, str]] = []
    written = 0
    for result in report.regions:
        registry_id = registry_ids.get(result.name)
        for attempt in (1, 2):
            try:
                async with db.write() as c:
                    await store.save(
                        c,
                        result.name,
                        healthy=result.healthy,
                        consistent=result.consistent,
                        lag_seconds=result.lag_seconds,
                        report=result.to_json(),
                        checked_at=result.checked_at,
                    )
                    events = await transitions(c, result, lag_alert_seconds)
                    for event_type in events:
                        written += await _deliver(
                            c, result, registry_id, event_type, lag_alert_seconds
                        )
                break
            except IntegrityError:  # another node wrote the region's first row just now
                if attempt == 2:
                    raise
        for event_type in events:
            log.warning("region %s: %s", result.name, event_type)
            sent.append((result.name, event_type))
    if written and wake is not None:
        wake()
    return sent


async def transitions(
    c: AsyncConnection, result: RegionResult, lag_alert_seconds: float
) -> list[str]:
    """The alert types ``result`` makes due (and the alert state flipped for them)."""
    out = []
    unhealthy = not result.healthy
    if await RegionStore.flip(c, result.name, "unhealthy_alerted", unhealthy):
        out.append("REGION_UNHEALTHY" if unhealthy else "REGION_RECOVERED")
    if result.lag_seconds is not None:
        lagging = result.lag_seconds > lag_alert_seconds
        if await RegionStore.flip(c, result.name, "lag_alerted", lagging):
            out.append("REPLICATION_LAG" if lagging else "REPLICATION_LAG_RECOVERED")
    return out


def _region(result: RegionResult, lag_alert_seconds: float) -> dict[str, Any]:
    data = result.to_json()
    keep = ("name", "self", "registry", "url", "healthy", "consistent", "lag_seconds")
    out = {k: data[k] for k in keep}
    out["lag_alert_seconds"] = lag_alert_seconds
    out["detail"] = result.health.detail
    out["missing_count"] = result.consistency.missing_count
    out["differs_count"] = result.consistency.differs_count
    out["checked_at"] = data["checked_at"]
    return out


async def _deliver(
    c: AsyncConnection,
    result: RegionResult,
    registry_id: int | None,
    event_type: str,
    lag_alert_seconds: float,
) -> int:
    """Delivery rows of one alert for the webhooks that want it; how many."""
    stmt = select(W.c.id, W.c.policy_id, W.c.format, W.c.event_types_json).where(
        W.c.enabled.is_(True)
    )
    if registry_id is not None:
        stmt = stmt.join(P, P.c.id == W.c.policy_id).where(
            or_(P.c.src_registry_id == registry_id, P.c.dest_registry_id == registry_id)
        )
    hooks = [
        h for h in (await c.execute(stmt)).mappings().all() if event_type in webhook_events(dict(h))
    ]
    if not hooks:
        return 0
    event = dr_event(event_type, _region(result, lag_alert_seconds), result.checked_at)
    now = utcnow()
    rows = [
        {
            "webhook_id": h["id"],
            "policy_id": h["policy_id"],
            "execution_id": None,
            "event_type": event_type,
            "event": event.event,
            "format": h["format"],
            "payload_json": render_dr(event, h["format"], int(h["policy_id"]), int(h["id"])),
            "status": "Pending",
            "attempts": 0,
            "last_error": "",
            "history_json": "[]",
            "next_attempt_at": now,
            "created_at": now,
            "updated_at": now,
        }
        for h in hooks
    ]
    await c.execute(insert(D), rows)
    return len(rows)
