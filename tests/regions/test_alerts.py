"""Recording checks: the latest result per region, one alert per transition (not per check),
sent to the webhooks of the policies that replicate to or from the region — on SQLite and on
PostgreSQL, where two nodes recording the same transition at once still send one alert."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import anyio
import pytest
from sqlalchemy import CursorResult, insert, select

import engine.notify.models
import engine.regions.models
import engine.state.models  # noqa: F401 - the replication tables
from engine.notify.models import EVENT_TYPES, Delivery, Webhook
from engine.notify.payloads import DR_EVENT_TYPES
from engine.regions import alerts
from engine.regions.report import Consistency, DrReport, Health, RegionResult
from engine.regions.store import RegionStore
from engine.state.models import Policy, RegistryEndpoint
from registry.meta.db import Database, create_engine, init_schema

D = Delivery.__table__  # type: ignore[attr-defined]
W = Webhook.__table__  # type: ignore[attr-defined]
P = Policy.__table__  # type: ignore[attr-defined]
R = RegistryEndpoint.__table__  # type: ignore[attr-defined]
NOW = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)
LIMIT = 60.0
HEALTHY = Health(True, True, True, "ok", 3.0, 9.0, True)
DOWN = Health(False, False, False, "http://eu: cannot connect (Connection refused)")


def result(name: str, health: Health = HEALTHY, lag: float | None = 0.0) -> RegionResult:
    return RegionResult(name, False, f"{name}-endpoint", f"http://{name}", health,
                        Consistency.of(1, (), (), ()), lag, checked_at=NOW)  # fmt: skip


def new_id(result: CursorResult[Any]) -> int:
    key = result.inserted_primary_key
    assert key is not None
    return int(key[0])


async def world(db: Database) -> dict[str, int]:
    """Endpoints eu and us, a push policy to each; webhooks: eu's alerts, eu's runs only, us's
    alerts. Returns their ids."""
    ids: dict[str, int] = {}
    async with db.write() as c:
        for name in ("eu", "us"):
            endpoint = insert(R).values(name=f"{name}-endpoint", type="seawall", url="x")
            ids[name] = new_id(await c.execute(endpoint))
            push = insert(P).values(name=f"to-{name}", dest_registry_id=ids[name])
            ids[f"to-{name}"] = new_id(await c.execute(push))
        hooks = {
            "eu-alerts": ("to-eu", list(DR_EVENT_TYPES)),
            "eu-runs": ("to-eu", list(EVENT_TYPES[:5])),
            "us-alerts": ("to-us", ["REGION_UNHEALTHY"]),
        }
        for hook, (owner, events) in hooks.items():
            row = insert(W).values(
                policy_id=ids[owner],
                name=hook,
                address="http://127.0.0.1:9/",
                format="cloudevents" if hook == "us-alerts" else "default",
                event_types_json=json.dumps(events),
            )
            ids[hook] = new_id(await c.execute(row))
    return ids


async def sent(db: Database) -> list[tuple[int, str, dict[str, Any]]]:
    async with db.read() as c:
        rows = await c.execute(select(D.c.webhook_id, D.c.event_type, D.c.payload_json))
        return [(int(w), t, json.loads(p)) for w, t, p in rows.all()]


async def scenario(db: Database) -> None:
    ids = await world(db)
    endpoints = {"eu": ids["eu"], "us": ids["us"], "home": None}
    woken: list[int] = []

    async def record(*results: RegionResult) -> list[tuple[str, str]]:
        report = DrReport(results, NOW)
        return await alerts.record(db, report, endpoints, LIMIT, lambda: woken.append(1))

    assert await record(result("eu"), result("us")) == []  # first check, healthy: nothing
    assert await record(result("eu", DOWN, None)) == [("eu", "REGION_UNHEALTHY")]
    assert await record(result("eu", DOWN, None)) == []  # still down: no second alert
    assert await record(result("eu", lag=LIMIT + 1)) == [
        ("eu", "REGION_RECOVERED"),
        ("eu", "REPLICATION_LAG"),
    ]
    assert await record(result("eu", lag=LIMIT + 50)) == []
    assert await record(result("eu", lag=None)) == []  # not measured: no change
    assert await record(result("eu", lag=LIMIT)) == [("eu", "REPLICATION_LAG_RECOVERED")]
    assert await record(result("us", DOWN)) == [("us", "REGION_UNHEALTHY")]
    deliveries = await sent(db)
    assert [(w, t) for w, t, _ in deliveries] == [
        (ids["eu-alerts"], "REGION_UNHEALTHY"),
        (ids["eu-alerts"], "REGION_RECOVERED"),
        (ids["eu-alerts"], "REPLICATION_LAG"),
        (ids["eu-alerts"], "REPLICATION_LAG_RECOVERED"),
        (ids["us-alerts"], "REGION_UNHEALTHY"),
    ]
    _, _, first = deliveries[0]
    assert first["type"] == "REGION_UNHEALTHY" and first["operator"] == "SEAWALL"
    region = first["event_data"]["region"]
    assert (region["name"], region["healthy"], region["registry"]) == ("eu", False, "eu-endpoint")
    assert "cannot connect" in region["detail"] and region["lag_alert_seconds"] == LIMIT
    assert first["event_data"]["seawall"]["policy"] == {"id": ids["to-eu"]}
    _, _, cloud = deliveries[-1]
    assert cloud["type"] == "io.seawall.dr.region_unhealthy" and cloud["specversion"] == "1.0"
    assert len(woken) == 4  # once per record() that wrote a delivery (the us one included)
    latest = await RegionStore(db).latest()
    assert latest["eu"].lag_seconds == LIMIT and latest["eu"].healthy
    assert latest["us"].report["health"]["detail"] == DOWN.detail

    # this Seawall's own region alerts every policy's subscribed webhooks
    home_down = replace(result("home", DOWN), is_self=True, registry=None)
    assert await record(home_down) == [("home", "REGION_UNHEALTHY")]
    hooks = [w for w, t, _ in await sent(db) if t == "REGION_UNHEALTHY"][-2:]
    assert sorted(hooks) == sorted([ids["eu-alerts"], ids["us-alerts"]])


async def concurrent(db: Database) -> None:
    """Two nodes record the same transition at once: one alert."""
    ids = await world(db)
    endpoints = {"eu": ids["eu"]}
    await alerts.record(db, DrReport((result("eu"),), NOW), endpoints, LIMIT)
    found: list[list[tuple[str, str]]] = []

    async def node() -> None:
        report = DrReport((result("eu", DOWN),), NOW)
        found.append(await alerts.record(db, report, endpoints, LIMIT))

    async with anyio.create_task_group() as tg:
        for _ in range(4):
            tg.start_soon(node)
    assert sorted(found) == [[], [], [], [("eu", "REGION_UNHEALTHY")]]
    assert [t for _, t, _ in await sent(db)] == ["REGION_UNHEALTHY"]


async def on(url: str, test: Callable[[Database], Awaitable[None]]) -> None:
    engine = create_engine(url)
    try:
        await init_schema(engine)
        await test(Database(engine))
    finally:
        await engine.dispose()


@pytest.mark.parametrize("test", [scenario, concurrent], ids=["transitions", "concurrent"])
def test_alerts_on_sqlite(tmp_path: Path, test: Callable[[Database], Awaitable[None]]) -> None:
    anyio.run(on, f"sqlite+aiosqlite:///{tmp_path / 'alerts.db'}", test)


@pytest.mark.parametrize("test", [scenario, concurrent], ids=["transitions", "concurrent"])
def test_alerts_on_postgresql(
    postgres_url: str, test: Callable[[Database], Awaitable[None]]
) -> None:
    anyio.run(on, postgres_url, test)
