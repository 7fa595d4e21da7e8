"""Cron schedules: fire on time (with seconds, Harbor's six fields), a firing missed while
Seawall was down runs once at start, runs of one policy never overlap (queued or skipped)."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from engine.cron import cron_trigger
from tests.replication.support import add_endpoint, add_policy, api, dumps, push_big_images
from tests.schedules.test_events import eventually, executions
from tests.support.client import client
from tests.support.distribution import DistributionProcess
from tests.support.server import SeawallProcess

MiB = 1 << 20


def cron(expression: str, timezone: str = "UTC") -> dict[str, Any]:
    return {"type": "scheduled", "trigger_settings": {"cron": expression, "timezone": timezone}}


def parse(ts: str) -> datetime:
    return datetime.fromisoformat(ts.replace("Z", "+00:00"))


def test_cron_fires_on_time(fresh_seawall: SeawallProcess, dist: DistributionProcess) -> None:
    local = fresh_seawall.start()
    with api(local.url, local.admin_password) as a:
        # Every 5 seconds in Harbor's six-field form, in a zone far from UTC.
        every5 = cron("*/5 * * * * *", "Asia/Kathmandu")
        dest = add_endpoint(a, "dist", dist.url)
        created = time.time()
        pid = add_policy(a, "tick", dest=dest, trigger=every5)
        runs = eventually(lambda: len(executions(a, pid)) >= 3 and executions(a, pid), 40, "runs")
        fired = set()
        for x in runs:
            assert x["trigger"] == "scheduled", dumps(x)
            # created just after a fire time (seconds divisible by 5): a loaded machine may
            # take a moment, never a whole period
            started = parse(x["start_time"])
            late = (started.second % 5) + started.microsecond / 1e6
            assert late < 4, dumps(runs)
            fire_time = started.timestamp() - late
            assert fire_time > created, ("a run at creation, not at a fire time", dumps(runs))
            fired.add(int(fire_time))
        assert len(fired) == len(runs), dumps(runs)  # one run per fire time
        # Disabling the policy stops its schedule.
        r = a.put(f"/replication/policies/{pid}", json={"enabled": False})
        assert r.status_code == 200, r.text
        time.sleep(0.5)
        count = len(executions(a, pid))
        time.sleep(6)
        assert len(executions(a, pid)) == count


def test_first_fire_time_is_the_next_matching_whole_second_in_the_policy_zone() -> None:
    # Set at 10.3 s, "*/5" fires at 15 s, not at once at 10.3 s (APScheduler's default start).
    at = datetime(2026, 1, 1, 0, 0, 10, 300000, tzinfo=UTC)
    for zone in ("UTC", "Asia/Kathmandu", "America/New_York"):
        first = cron_trigger("*/5 * * * * *", zone, after=at).next()
        assert first == at.replace(second=15, microsecond=0), (zone, first)
    # 02:00 in Kathmandu (UTC+05:45) is 20:15 UTC the day before: APScheduler a6 read a UTC
    # start time's fields as Kathmandu's and put the first fire hours in the past (a run at once).
    midnight = datetime(2026, 1, 1, 0, 0, 0, 300000, tzinfo=UTC)
    first = cron_trigger("0 2 * * *", "Asia/Kathmandu", after=midnight).next()
    assert first == datetime(2026, 1, 1, 20, 15, tzinfo=UTC), first
    first = cron_trigger("0 2 * * *", after=midnight.replace(hour=2)).next()
    assert first == datetime(2026, 1, 2, 2, 0, tzinfo=UTC), first


def test_bad_cron_is_refused_clearly(seawall: SeawallProcess) -> None:
    with api(seawall.url, seawall.admin_password) as a:
        dest = add_endpoint(a, "cron-nowhere", "http://127.0.0.1:9")
        for expression, tz, words in [
            ("0 99 * * *", "UTC", "higher than the maximum"),
            ("0 2 * *", "UTC", "expected 5 fields"),
            ("0 2 * * *", "Mars/Olympus", "IANA"),
        ]:
            r = a.post(
                "/replication/policies",
                json={
                    "name": f"bad-{len(expression)}-{len(tz)}",
                    "dest_registry": {"id": dest},
                    "trigger": cron(expression, tz),
                },
            )
            assert r.status_code == 400, r.text
            assert words in r.text, r.text


def test_missed_firing_runs_once_at_start(
    fresh_seawall: SeawallProcess, dist: DistributionProcess
) -> None:
    local = fresh_seawall.start()
    at = datetime.now(UTC) + timedelta(seconds=8)
    with api(local.url, local.admin_password) as a:
        daily = f"{at.second} {at.minute} {at.hour} * * *"  # once a day, 8 s from now
        pid = add_policy(a, "nightly", dest=add_endpoint(a, "dist", dist.url), trigger=cron(daily))
        time.sleep(3.0)  # the schedule is stored (at once; this leaves room for a slow machine)
    local.kill()  # down across the fire time
    time.sleep(max(0.0, (at - datetime.now(UTC)).total_seconds()) + 3)
    local.start()
    with api(local.url, local.admin_password) as a:
        runs = eventually(lambda: executions(a, pid), 20, "the missed run")
        time.sleep(2)
        runs = executions(a, pid)
        assert len(runs) == 1, dumps(runs)
        assert runs[0]["trigger"] == "scheduled"
        assert parse(runs[0]["start_time"]) > at


@pytest.mark.parametrize("single_active", [True, False])
def test_runs_of_a_policy_never_overlap(
    fresh_seawall: SeawallProcess, tmp_path: Path, single_active: bool
) -> None:
    local = fresh_seawall.start()
    dist = DistributionProcess(tmp_path / "d").start()
    try:
        with (
            client(local.url, "admin", local.admin_password) as c,
            api(local.url, local.admin_password) as a,
        ):
            push_big_images(c, "big", 1, 6)
            # 6 MiB at 1 MiB/s: the first run lasts ~6 s while the schedule fires every 2 s.
            pid = add_policy(
                a,
                "busy",
                dest=add_endpoint(a, "dist", dist.url),
                trigger=cron("*/2 * * * * *"),
                speed_bytes_per_second=MiB,
                single_active_replication=single_active,
            )
            deadline, seen_queued = time.monotonic() + 9, False
            while time.monotonic() < deadline:
                runs = executions(a, pid)
                # (a queued run reports InProgress, as Harbor has no Pending, and says so)
                queued = [x for x in runs if x["status_text"].startswith("queued:")]
                active = [x for x in runs if x["status"] == "InProgress" and x not in queued]
                assert len(active) <= 1 and len(queued) <= 1, dumps(runs)
                seen_queued = seen_queued or bool(queued)
                time.sleep(0.2)
            runs = executions(a, pid)
            skipped = [x for x in runs if x["status_text"].startswith("Execution skipped")]
            if single_active:
                assert skipped and all(x["status"] == "Failed" for x in skipped), dumps(runs)
                assert not seen_queued, dumps(runs)
            else:
                assert not skipped, dumps(runs)
                assert seen_queued, dumps(runs)
            a.put(f"/replication/policies/{pid}", json={"enabled": False})
    finally:
        dist.stop()
