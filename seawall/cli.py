"""The ``seawall`` command line."""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

from seawall import sync_cli

if TYPE_CHECKING:
    from seawall.config import Settings

__all__ = ["main"]

# Each command imports what it needs when it runs: ``seawall sync`` must not pay for the
# management API client (httpx) and the settings (pydantic) it does not use.


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("seawall")
    except PackageNotFoundError:
        return "0+unknown"


def _add_common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", help="TOML settings file (default: $SEAWALL_CONFIG)")
    p.add_argument(
        "--data-dir", help="data directory (default: $SEAWALL_DATA_DIR or ./seawall-data)"
    )


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="seawall", description="Seawall: OCI registry and registry replication engine."
    )
    parser.add_argument("--version", action="version", version=f"seawall {_version()}")
    sub = parser.add_subparsers(dest="command", required=True)

    serve = sub.add_parser("serve", help="run the registry (and its management API)")
    _add_common(serve)
    serve.add_argument("--host", help="listen address (default: $SEAWALL_HOST or 127.0.0.1)")
    serve.add_argument("--port", type=int, help="listen port (default: $SEAWALL_PORT or 5000)")
    serve.add_argument("--workers", type=int, help="server worker processes (default: 1)")

    for kind in ("user", "robot"):
        group = sub.add_parser(kind, help=f"manage {kind} accounts").add_subparsers(
            dest="action", required=True
        )
        add = group.add_parser("add", help=f"create a {kind} account")
        _add_common(add)
        add.add_argument("name")
        if kind == "user":
            add.add_argument("--password", required=True)
        else:
            add.add_argument(
                "--expires-days",
                type=int,
                default=None,
                help="days until the robot's secret expires (default: never)",
            )
        add.add_argument(
            "--allow",
            action="append",
            default=[],
            metavar="PATTERN=ACTIONS",
            help="grant, e.g. 'team/*=pull,push' (repeatable; actions: pull, push, delete or *)",
        )
        add.add_argument("--description", default="")
        for action in ("list", "delete"):
            p = group.add_parser(action, help=f"{action} {kind} accounts")
            _add_common(p)
            if action == "delete":
                p.add_argument("name")
    from seawall import replication_cli

    replication_cli.add_commands(sub)
    sync_cli.add_command(sub)
    from seawall import gc_cli

    gc_cli.add_command(sub, _add_common)
    from seawall import db_cli

    db_cli.add_command(sub, _add_common)
    from seawall import dr_cli, region_cli

    region_cli.add_commands(sub)
    dr_cli.add_commands(sub)
    from seawall import proxy_cache_cli

    proxy_cache_cli.add_commands(sub)
    return parser


def _sync_parser() -> argparse.ArgumentParser:
    """The parser of ``seawall sync`` alone (same usage, help and errors as in the whole one)."""
    parser = argparse.ArgumentParser(prog="seawall")
    sync_cli.add_command(parser.add_subparsers(dest="command", required=True))
    return parser


def _fail(message: str, code: int = 1) -> SystemExit:
    """Print ``message`` as one line on stderr; the exit to raise."""
    print(f"seawall: {message}", file=sys.stderr, flush=True)
    return SystemExit(code)


def _settings(args: argparse.Namespace) -> Settings:
    """The settings; a bad one (unknown key, wrong value, missing file) exits 2 with one line."""
    from seawall.config import SettingsError, load_settings

    overrides = {
        "data_dir": getattr(args, "data_dir", None),
        "host": getattr(args, "host", None),
        "port": getattr(args, "port", None),
        "workers": getattr(args, "workers", None),
    }
    try:
        return load_settings(args.config, overrides)
    except SettingsError as e:
        raise _fail(str(e), 2) from None


def _check_data_dir(settings: Settings) -> None:
    path = settings.data_path
    if path.exists() and not path.is_dir():
        raise _fail(
            f"data directory {path} is a file, not a directory; move it away or choose "
            "another with --data-dir (or SEAWALL_DATA_DIR)"
        )


def _database_unreachable(settings: Settings, error: BaseException) -> SystemExit:
    from sqlalchemy.engine import make_url

    try:
        where = make_url(settings.resolved_database_url).render_as_string(hide_password=True)
    except Exception:  # only for the message
        where = "database_url"
    reason = str(getattr(error, "orig", None) or error).strip().splitlines()
    first = reason[0] if reason else type(error).__name__
    return _fail(
        f"cannot open the database {where}: {first[:300]}; check database_url "
        "(SEAWALL_DATABASE_URL) and that the database server is running and reachable"
    )


def _serve(args: argparse.Namespace) -> int:
    from sqlalchemy.exc import SQLAlchemyError

    from seawall.app import bootstrap
    from seawall.server import check_address, serve

    settings = _settings(args)
    _check_data_dir(settings)
    try:
        check_address(settings.host, settings.port)  # before anything says "serving"
    except SystemExit as e:
        raise _fail(str(e.code).removeprefix("seawall: ")) from None
    try:
        generated = asyncio.run(bootstrap(settings))
    except (OSError, SQLAlchemyError) as e:
        raise _database_unreachable(settings, e) from None
    if generated:
        print(
            f"Generated the admin password (shown once; set SEAWALL_ADMIN_PASSWORD to choose one):"
            f"\n  admin / {generated}",
            flush=True,
        )
    print(
        f"Seawall {_version()} serving http://{settings.host}:{settings.port} "
        f"(data: {settings.data_path})",
        flush=True,
    )
    serve(settings)
    return 0


def _account_settings(args: argparse.Namespace) -> Settings:
    """The settings of an account command; ``list`` and ``delete`` where there is no database
    exit 1 saying where they looked (they must not create a new, empty registry's database)."""
    from registry.meta.sql import sqlite_path

    settings = _settings(args)
    _check_data_dir(settings)
    db_file = sqlite_path(settings.resolved_database_url)
    if (
        args.action != "add"
        and db_file not in (None, "", ":memory:")
        and not Path(db_file).exists()
    ):
        where = f"data directory {settings.data_path}" if not settings.database_url else db_file
        raise _fail(
            f"no Seawall database in {where} (looked for {db_file}); run this where "
            "`seawall serve` keeps its data or point at it with --data-dir DIR (or "
            "SEAWALL_DATA_DIR, or database_url)"
        )
    return settings


async def _accounts(args: argparse.Namespace, settings: Settings) -> int:
    from registry.auth.passwords import generate_secret, hash_password
    from registry.auth.permissions import parse_grant
    from registry.meta.accounts import GrantRow
    from seawall.app import build_services
    from seawall.migrations import upgrade_on_start

    services = build_services(settings)
    try:
        await upgrade_on_start(services.engine)
        accounts = services.context.accounts
        prefix = "robot$" if args.command == "robot" else ""
        if args.action == "list":
            for a in await accounts.all():
                if (a.kind == "robot") == (args.command == "robot"):
                    rights = " ".join(
                        f"{g.repository}={','.join(sorted(g.actions))}" for g in a.grants
                    )
                    state = "disabled" if a.disabled else ("expired" if not a.active else "active")
                    print(f"{a.name}\t{a.kind}\t{state}\t{rights}")
            return 0
        if args.action == "delete":
            name = args.name if args.name.startswith(prefix) else prefix + args.name
            if not await accounts.delete(name):
                print(f"seawall: no account named {name!r}", file=sys.stderr)
                return 1
            print(f"deleted {name}")
            return 0
        try:
            grants = [parse_grant(g) for g in args.allow]
        except ValueError as e:
            print(f"seawall: {e}", file=sys.stderr)
            return 2
        rows = [GrantRow(g.repository, g.actions) for g in grants]
        name = args.name if args.name.startswith(prefix) else prefix + args.name
        if args.command == "robot":
            secret = generate_secret()
            expires = (
                datetime.now(UTC) + timedelta(days=args.expires_days) if args.expires_days else None
            )
            await accounts.create(
                name,
                "robot",
                hash_password(secret),
                rows,
                description=args.description,
                expires_at=expires,
            )
            print(f"created robot account {name}; its secret (shown once):")
            print(secret)
        else:
            await accounts.create(
                name, "user", hash_password(args.password), rows, description=args.description
            )
            print(f"created user {name}")
        return 0
    except ValueError as e:
        print(f"seawall: {e}", file=sys.stderr)
        return 1
    finally:
        await services.close()


def main(argv: Sequence[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] == ["sync"]:
        return sync_cli.run(_sync_parser().parse_args(argv))
    parser = _parser()
    args, extra = parser.parse_known_args(argv)
    if extra:  # only registry add takes flags it does not know: the provider's settings
        if (args.command, getattr(args, "action", None)) != ("registry", "add"):
            parser.error(f"unrecognized arguments: {' '.join(extra)}")
        from seawall import replication_cli

        try:
            args.provider_options = replication_cli.provider_options(extra)
        except replication_cli.CliError as e:
            parser.error(str(e))
    if args.command == "serve":
        return _serve(args)
    if args.command in ("user", "robot"):
        return asyncio.run(_accounts(args, _account_settings(args)))
    if args.command == "sync":
        return sync_cli.run(args)
    if args.command == "gc":
        from seawall import gc_cli

        return gc_cli.run(args, _settings(args))
    if args.command == "db":
        from seawall import db_cli

        return db_cli.run(args, _settings(args))
    if args.command == "region":
        from seawall import region_cli

        return region_cli.run(args)
    if args.command == "dr":
        from seawall import dr_cli

        return dr_cli.run(args)
    if args.command == "proxy-cache":
        from seawall import proxy_cache_cli

        return proxy_cache_cli.run(args)
    from seawall import replication_cli

    if args.command in replication_cli.COMMANDS:
        return replication_cli.run(args)
    return 2


if __name__ == "__main__":
    raise SystemExit(main())
