"""``seawall dr drill --region NAME``: a failover drill (:mod:`engine.regions.drill`).

The drill runs in this process, beside the server, with the settings ``seawall serve`` runs
with (``--config``, ``--data-dir``, ``--host``, ``--port``, ``SEAWALL_*``): it reads the
database (regions, policies, the event outbox, the replication lag), reaches the regions with
the endpoints' stored credentials and this Seawall as its replication engine does, and may stop
this Seawall itself — so it cannot run inside it. ``--fail-command`` / ``--restore-command``
are the operator's hooks; without a fail command the drill is simulated (nothing stopped).

Output: a summary for people, or ``--json`` (``passed``, ``rpo_artifacts``, ``rto_seconds``,
``verified_seconds``, ``rpo_seconds``, ``lost``, ``series``, …). Exit codes: 0 passed; 1 not
passed, or the drill could not start; 2 the command line or a setting is wrong.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from seawall.replication_output import print_json, table

if TYPE_CHECKING:
    from engine.regions.drill import Hooks
    from engine.regions.drill_report import DrillOptions, DrillReport
    from seawall.config import Settings

__all__ = ["add_drill", "run_drill"]

SHOWN = 20  # lost / unserved entries printed in the summary
#: flag -> (DrillOptions field, default, upper bound, help)
NUMBERS: dict[str, tuple[str, float, float, str]] = {
    "--rto-target-seconds": ("rto_target_seconds", 10.0, 3600.0, "the RTO a passing drill keeps"),
    "--ack-grace-seconds": (
        "ack_grace_seconds",
        1.0,
        86400.0,
        "a lost artifact pushed at most this long before the failure does not fail the drill",
    ),
    "--rto-timeout-seconds": (
        "rto_timeout_seconds",
        60.0,
        3600.0,
        "how long the RTO is waited for",
    ),
    "--hook-timeout-seconds": ("hook_timeout_seconds", 120.0, 3600.0, "a hook's time limit"),
    "--confirm-timeout-seconds": (
        "confirm_timeout_seconds",
        10.0,
        600.0,
        "how long after the fail command the region must have stopped answering",
    ),
    "--converge-timeout-seconds": (
        "converge_timeout_seconds",
        300.0,
        86400.0,
        "how long the region may take to answer again and re-converge",
    ),
    "--poll-seconds": ("poll_seconds", 0.5, 60.0, "the time between two polls"),
}


class _Usage(Exception):
    """A wrong command line or setting: one line, exit 2."""


def add_drill(group: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    drill = group.add_parser(
        "drill",
        help="fail one region, report RPO and RTO, restore it and watch it re-converge",
        epilog="Runs beside the server with its settings. Exit status: 0 when the drill "
        "passed, 1 otherwise. Hooks get SEAWALL_DRILL_REGION, SEAWALL_DRILL_URL and "
        "SEAWALL_DRILL_PHASE in their environment.",
    )
    drill.add_argument("--region", required=True, metavar="NAME", help="the region to fail")
    drill.add_argument("--json", action="store_true", help="print the report as JSON")
    drill.add_argument(
        "--fail-command",
        metavar="CMD",
        help="shell command that makes the region unavailable (none: a simulated drill)",
    )
    drill.add_argument(
        "--restore-command",
        metavar="CMD",
        help="shell command that brings it back (none: the drill waits for it to answer)",
    )
    for flag, (_, default, _limit, text) in NUMBERS.items():
        drill.add_argument(flag, type=float, metavar="S", help=f"{text} (default: {default:g})")
    settings = drill.add_argument_group("the server's settings (as `seawall serve` takes them)")
    settings.add_argument("--config", help="TOML settings file (default: $SEAWALL_CONFIG)")
    settings.add_argument(
        "--data-dir", help="data directory (default: $SEAWALL_DATA_DIR or ./seawall-data)"
    )
    settings.add_argument("--host", help="this Seawall's address (default: $SEAWALL_HOST)")
    settings.add_argument("--port", type=int, help="this Seawall's port (default: $SEAWALL_PORT)")


def run_drill(args: argparse.Namespace) -> int:
    import anyio
    from sqlalchemy.exc import SQLAlchemyError

    from adapters.base import AdapterError
    from adapters.oci.errors import OciError
    from engine.regions.drill import DrillRefused

    try:
        settings = _settings(args)
        options, hooks = _options(args), _hooks(args)
        report = anyio.run(_drill, settings, args.region, options, hooks)
    except _Usage as e:
        print(f"seawall: {e}", file=sys.stderr)
        return 2
    except DrillRefused as e:
        print(f"seawall: the drill did not start: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("seawall: interrupted; the region may still be down", file=sys.stderr)
        return 130
    except (OSError, SQLAlchemyError, OciError, AdapterError) as e:
        print(f"seawall: the drill failed: {type(e).__name__}: {e}"[:500], file=sys.stderr)
        return 1
    if args.json:
        print_json(report.to_json())
    else:
        _print(report.to_json())
    return 0 if report.passed else 1


def _settings(args: argparse.Namespace) -> Settings:
    from seawall.config import SettingsError, load_settings

    overrides = {"data_dir": args.data_dir, "host": args.host, "port": args.port}
    try:
        return load_settings(args.config, overrides)
    except SettingsError as e:
        raise _Usage(str(e)) from None


def _options(args: argparse.Namespace) -> DrillOptions:
    from engine.regions.drill_report import DrillOptions

    values: dict[str, Any] = {}
    for flag, (name, _, limit, _text) in NUMBERS.items():
        value = getattr(args, name)
        if value is None:
            continue
        low = 0.0 if name == "ack_grace_seconds" else 0.01
        if not low <= value <= limit:  # also refuses nan
            raise _Usage(f"{flag} must be between {low:g} and {limit:g}, not {value!r}")
        values[name] = value
    return DrillOptions(**values)


def _hooks(args: argparse.Namespace) -> Hooks:
    from engine.regions.drill import Hooks

    for flag, value in (
        ("--fail-command", args.fail_command),
        ("--restore-command", args.restore_command),
    ):
        if value is not None and not value.strip():
            raise _Usage(f"{flag} is empty")
    if args.restore_command and not args.fail_command:
        raise _Usage("--restore-command needs --fail-command (a simulated drill stops nothing)")
    return Hooks(args.fail_command or None, args.restore_command or None)


def _files(settings: Settings) -> tuple[bytes, bytes]:
    """The token key and the secrets key, read (never created: a wrong data directory must
    not get new keys); :raises _Usage: what is missing."""
    from registry.meta.sql import sqlite_path

    data = settings.data_path
    db_file = sqlite_path(settings.resolved_database_url)
    if db_file is not None and not Path(db_file).exists():
        raise _Usage(
            f"no Seawall database at {db_file}: run the drill with the settings the server "
            "runs with (--config, --data-dir)"
        )
    for name in ("secrets.key", *(() if settings.auth.token_key else ("token.key",))):
        if not (data / name).exists():
            raise _Usage(f"{data / name} is missing: is {data} the server's data directory?")
    from engine.state.secrets import load_or_create_secret_key
    from registry.auth.tokens import load_or_create_key

    token = settings.auth.token_key
    token_key = token.encode() if token else load_or_create_key(data / "token.key")
    return token_key, load_or_create_secret_key(data / "secrets.key")


async def _drill(
    settings: Settings, region: str, options: DrillOptions, hooks: Hooks
) -> DrillReport:
    from engine.regions.drill import Driller
    from engine.state.secrets import SecretBox
    from registry.meta.db import Database, create_engine
    from seawall.replication import EndpointClients

    token_key, secret_key = _files(settings)
    engine = create_engine(settings.resolved_database_url)
    db = Database(engine)
    clients = EndpointClients(settings, db, SecretBox(secret_key), token_key)
    try:
        driller = Driller(
            db, clients, self_name=settings.dr.region_name, options=options, hooks=hooks
        )
        return await driller.run(region)
    finally:
        await clients.aclose()
        await engine.dispose()


# ---------------------------------------------------------------------------- the summary
def _secs(value: Any) -> str:
    return "-" if value is None else f"{float(value):.2f} s"


def _hook_text(hook: dict[str, Any] | None) -> str:
    if not hook:
        return "no command"
    if hook.get("timed_out"):
        return f"command killed after {_secs(hook.get('duration_seconds'))}"
    return f"command exited {hook.get('exit_code')} after {_secs(hook.get('duration_seconds'))}"


def _print(r: dict[str, Any]) -> None:
    failure, recovery, o = r["failure"], r["recovery"], r["options"]
    verdict = "PASSED" if r["passed"] else "NOT PASSED"
    print(f"drill of region {r['region']} ({failure['mode']}): {verdict}")
    rows = [
        [
            "failure",
            f"{'confirmed' if failure['confirmed'] else 'NOT confirmed'} at "
            f"{failure['at']} ({_hook_text(failure['hook'])}) {failure['detail']}".rstrip(),
        ],
        ["survivors", ", ".join(r["survivors"]) or "-"],
        ["artifacts", f"{r['artifacts']} held by {r['region']}, {r['served']} served again"],
        [
            "RPO",
            f"{r['rpo_artifacts']} artifact(s) lost, oldest {_secs(r['rpo_seconds'])} "
            f"(grace {o['ack_grace_seconds']:g} s)",
        ],
        [
            "RTO",
            f"{_secs(r['rto_seconds'])} (target {o['rto_target_seconds']:g} s) for the "
            f"{r['lacked']} location(s) lacking their artifact; all verified "
            f"{_secs(r['verified_seconds'])} after the failure",
        ],
        ["restore", _recovery_text(recovery)],
    ]
    table(["", ""], rows)
    _entries("lost", r["lost"], r["rpo_artifacts"], _lost_line)
    _entries("not served", r["unserved"], r["unserved_count"], _unserved_line)
    if r["series"]:
        print("\nlag over time:")
        table(
            ["T", "REGION", "LAG", "MISSING"],
            [
                [
                    f"{p['t_seconds']:.1f}s",
                    p["region"],
                    _secs(p["lag_seconds"]),
                    "-" if p["missing"] is None else str(p["missing"]),
                ]
                for p in r["series"]
            ],
        )
    for reason in r["reasons"]:
        print(f"\nnot passed: {reason}")
    for problem in r["problems"]:
        print(f"problem: {problem}")


def _recovery_text(recovery: dict[str, Any]) -> str:
    if not recovery["attempted"]:
        return recovery["detail"] or "-"
    parts = [_hook_text(recovery["hook"])]
    if recovery["answered_after_seconds"] is not None:
        parts.append(f"answered {_secs(recovery['answered_after_seconds'])} after the failure")
    if recovery["converged"]:
        parts.append(f"re-converged {_secs(recovery['converged_after_seconds'])} after it")
    else:
        parts.append("NOT re-converged")
    if recovery["runs_queued"]:
        parts.append("runs queued: " + ", ".join(recovery["runs_queued"]))
    if recovery["detail"]:
        parts.append(recovery["detail"])
    return "; ".join(parts)


def _lost_line(x: dict[str, Any]) -> str:
    tags = ",".join(x["tags"])
    when = "acknowledged at an unknown time"
    if x["acknowledged_at"]:
        when = f"acknowledged {x['acknowledged_at']} ({_secs(x['age_seconds'])} before)"
    return f"{x['repository']}@{x['digest']} [{tags}] {when}"


def _unserved_line(x: dict[str, Any]) -> str:
    return f"{x['artifact']} at {x['at']}: {x['detail']}"


def _entries(title: str, items: list[dict[str, Any]], total: int, line: Any) -> None:
    if not total:
        return
    more = f" (and {total - SHOWN} more)" if total > SHOWN else ""
    print(f"\n{title} {total}{more}:")
    for item in items[:SHOWN]:
        print(f"  {line(item)}")
