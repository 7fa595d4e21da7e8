"""``seawall dr check``: the failover checks of every region, through the management API;
``seawall dr drill``: a failover drill, run beside the server (:mod:`seawall.drill_cli`).

``POST /api/v2.0/dr/check`` runs them now (an admin's credentials); ``--latest`` shows the
latest recorded ones instead (``GET``; any account, scheduled checks included). Output: a
table for people, or ``--json`` (``{"regions": [{"name", "healthy", "lag_seconds", "missing",
"differs", …}, …]}``). Exit codes: 0 every region is healthy and consistent; 1 one is not (or
the check could not be run); 2 the command line is wrong.
"""

from __future__ import annotations

import argparse
from typing import Any

import httpx

from seawall.drill_cli import add_drill, run_drill
from seawall.region_cli import connection_flags
from seawall.replication_client import ApiClient, CliError, credentials_from, run_command
from seawall.replication_output import print_json, table

__all__ = ["CHECK_TIMEOUT_SECONDS", "COMMANDS", "add_commands", "run"]

COMMANDS: tuple[str, ...] = ("dr",)
CHECK = "/dr/check"
#: How long the command waits for a check (each region's is bounded by the server's
#: ``dr.check_timeout_seconds``; regions are checked at once).
CHECK_TIMEOUT_SECONDS = 900.0
SHOWN = 20  # entries of missing / differs / extra printed per region in the table view


def add_commands(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    dr = sub.add_parser("dr", help="disaster recovery: failover checks and drills of the regions")
    group = dr.add_subparsers(dest="action", required=True)
    check = group.add_parser(
        "check",
        parents=[connection_flags()],
        help="check every region: health, replication lag, consistency",
        epilog="Exit status: 0 when every region is healthy and consistent, 1 otherwise.",
    )
    check.add_argument("--json", action="store_true", help="print the report as JSON")
    check.add_argument(
        "--region",
        action="append",
        default=[],
        metavar="NAME",
        help="check only this region (repeatable)",
    )
    check.add_argument(
        "--latest",
        action="store_true",
        help="show the latest recorded checks instead of running one",
    )
    add_drill(group)


def run(args: argparse.Namespace, transport: httpx.BaseTransport | None = None) -> int:
    if args.action == "drill":
        return run_drill(args)
    api = ApiClient(credentials_from(args.url, args.username, args.password), transport)

    def check() -> int:
        if args.latest and args.region:
            raise CliError("--latest shows every region: leave out --region", exit_code=2)
        report = _latest(api) if args.latest else _check(api, args.region)
        if args.json:
            print_json(report)
        else:
            _print(report)
        return 0 if _ok(report) else 1

    return run_command(api, check)


def _check(api: ApiClient, regions: list[str]) -> dict[str, Any]:
    body = {"regions": regions} if regions else {}
    response = api.request("POST", CHECK, json=body, timeout=CHECK_TIMEOUT_SECONDS)
    found: dict[str, Any] = response.json()
    return found


def _latest(api: ApiClient) -> dict[str, Any]:
    found: dict[str, Any] = api.get(CHECK)
    return found


def _ok(report: dict[str, Any]) -> bool:
    regions = report.get("regions") or []
    if report.get("unchecked"):
        return False
    return bool(regions) and all(r.get("healthy") and r.get("consistent") for r in regions)


def _cell_count(region: dict[str, Any], key: str) -> str:
    counts = region.get("consistency") or {}
    if not counts.get("checked"):
        return "-"
    return str(counts.get(f"{key}_count", len(region.get(key) or [])))


def _row(r: dict[str, Any]) -> list[str]:
    health = r.get("health") or {}
    lag = r.get("lag_seconds")
    latency = health.get("latency_ms")
    name = f"{r['name']} (self)" if r.get("self") else r["name"]
    problems = (r.get("consistency") or {}).get("problems") or []
    detail = health.get("detail") or ""
    if problems:
        detail = f"{detail}; {problems[0]}" if detail and detail != "ok" else problems[0]
    return [
        name,
        "yes" if r.get("healthy") else "NO",
        "yes" if r.get("consistent") else "NO",
        "?" if lag is None else f"{lag:.1f}s",
        _cell_count(r, "missing"),
        _cell_count(r, "differs"),
        _cell_count(r, "extra"),
        "-" if latency is None else f"{latency:.0f} ms",
        detail[:120],
    ]


def _print(report: dict[str, Any]) -> None:
    regions = report.get("regions") or []
    header = ["REGION", "HEALTHY", "CONSISTENT", "LAG", "MISSING", "DIFFERS", "EXTRA"]
    table([*header, "LATENCY", "DETAIL"], [_row(r) for r in regions])
    for r in regions:
        for key in ("missing", "differs", "extra"):
            entries = r.get(key) or []
            if not entries:
                continue
            total = int((r.get("consistency") or {}).get(f"{key}_count") or len(entries))
            more = f" (and {total - SHOWN} more)" if total > SHOWN else ""
            print(f"\n{r['name']}: {key} {total}{more}")
            for entry in entries[:SHOWN]:
                print(f"  {entry}")
    for name in report.get("unchecked") or []:
        print(f"\n{name}: never checked (run `seawall dr check`)")
    verdict = "all regions healthy and consistent" if _ok(report) else "NOT all regions are OK"
    print(f"\n{verdict} (checked {report.get('checked_at') or 'never'})")
