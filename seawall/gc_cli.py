"""``seawall gc`` (one garbage collection, on demand or from cron) and the periodic collection
inside ``seawall serve`` (``gc.interval_seconds``). Both take the settings ``serve`` takes and are
safe while any number of ``serve`` nodes run: the protocol is in :mod:`registry.storage.gc`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import sys
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

import anyio

if TYPE_CHECKING:
    from registry.storage.gc import GcReport
    from seawall.app import Services
    from seawall.config import Settings

__all__ = ["add_command", "collect", "collect_if_due", "run", "run_periodic"]

log = logging.getLogger("seawall.gc")

#: The periodic collection's first attempt comes this long after a node starts (at most one
#: interval), so a fleet restarting at once does not list the store at once.
FIRST_RUN_SECONDS = 300.0


def add_command(
    sub: argparse._SubParsersAction,
    add_common: Callable[[argparse.ArgumentParser], None],
) -> None:
    p = sub.add_parser(
        "gc",
        help="remove unreferenced blobs and abandoned uploads (safe while serve runs)",
        description="Garbage collection: removes stored blobs no manifest in any repository "
        "references, and upload sessions idle for longer than the grace period. Safe while "
        "`seawall serve` runs on any number of nodes.",
    )
    add_common(p)
    p.add_argument("--dry-run", action="store_true", help="report what would go; remove nothing")
    p.add_argument("--json", action="store_true", help="print the report as one JSON object")
    p.add_argument(
        "--grace-seconds",
        type=float,
        default=None,
        help="least age of anything removed (default: gc.grace_seconds, 3600; 0 allowed)",
    )


async def collect(services: Services, *, grace: timedelta, dry_run: bool = False) -> GcReport:
    """One collection over ``services``' store and database."""
    from registry.meta.gc import SqlGcIndex
    from registry.storage.gc import Collector, GcOptions, new_owner

    index = SqlGcIndex(services.sql, new_owner())
    return await Collector(services.driver, index, GcOptions(grace, dry_run)).run()


def run(args: argparse.Namespace, settings: Settings) -> int:
    if args.grace_seconds is not None and args.grace_seconds < 0:
        print("seawall gc: --grace-seconds must be 0 or more", file=sys.stderr)
        return 2
    grace_s = settings.gc.grace_seconds if args.grace_seconds is None else args.grace_seconds
    report = asyncio.run(_run_once(settings, timedelta(seconds=grace_s), args.dry_run))
    if args.json:
        print(json.dumps(report.to_json()))
    else:
        print(describe(report))
    return 1 if report.errors else 0


async def _run_once(settings: Settings, grace: timedelta, dry_run: bool) -> GcReport:
    from seawall.app import build_services
    from seawall.migrations import upgrade_on_start

    services = build_services(settings)
    try:
        await upgrade_on_start(services.engine)
        return await collect(services, grace=grace, dry_run=dry_run)
    finally:
        await services.close()


def _mib(n_bytes: int) -> str:
    return f"{n_bytes / 1048576:.1f} MiB"


def describe(report: GcReport) -> str:
    """One human line per figure group."""
    verb = "would remove" if report.dry_run else "removed"
    lines = [
        f"{verb} {report.blobs_removed} blobs ({_mib(report.blob_bytes_reclaimed)}) and "
        f"{report.uploads_removed} upload sessions ({_mib(report.upload_bytes_reclaimed)}): "
        f"{_mib(report.bytes_reclaimed)} in all",
        f"{report.blobs_scanned} blobs scanned: {report.blobs_live} referenced, "
        f"{report.blobs_kept} unreferenced but kept (younger than the grace period of "
        f"{report.grace_seconds:g} s, in use, or marked by this run: "
        f"{report.blobs_marked} newly marked go at the first run one grace period from now)",
    ]
    if report.objects_unknown:
        lines.append(f"{report.objects_unknown} objects under /blobs are no blob data: left alone")
    if report.errors:
        lines.append(f"{report.errors} errors (see the log); a later run finishes the job")
    lines.append(f"took {report.duration_seconds:.2f} s")
    return "\n".join(lines)


async def run_periodic(
    services: Services, *, sleep: Callable[[float], Awaitable[None]] = anyio.sleep
) -> None:
    """Inside ``serve``: every ``gc.interval_seconds`` a collection runs on one node (whichever
    takes the interval's lease first; other nodes and workers skip it). Runs until cancelled."""
    gc = services.settings.gc
    await sleep(min(FIRST_RUN_SECONDS, gc.interval_seconds))
    while True:
        try:
            report = await collect_if_due(services)
            if report is not None:
                log.info("garbage collection: %s", json.dumps(report.to_json()))
        except Exception:
            log.exception("garbage collection failed; the next interval tries again")
        await sleep(gc.interval_seconds)


async def collect_if_due(services: Services) -> GcReport | None:
    """One periodic collection, unless another node or worker took this interval's lease."""
    from registry.meta.gc import SqlGcIndex
    from registry.storage.gc import new_owner

    gc = services.settings.gc
    now = datetime.now(UTC)
    lease = SqlGcIndex(services.sql, new_owner())
    if not await lease.take_lease(
        "periodic", now, now + timedelta(seconds=gc.interval_seconds) * 0.9
    ):
        return None
    return await collect(services, grace=timedelta(seconds=gc.grace_seconds))
