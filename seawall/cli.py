"""The ``seawall`` command line."""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
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
    return parser


def _sync_parser() -> argparse.ArgumentParser:
    """The parser of ``seawall sync`` alone (same usage, help and errors as in the whole one)."""
    parser = argparse.ArgumentParser(prog="seawall")
    sync_cli.add_command(parser.add_subparsers(dest="command", required=True))
    return parser


def _settings(args: argparse.Namespace) -> Settings:
    from seawall.config import load_settings

    overrides = {
        "data_dir": getattr(args, "data_dir", None),
        "host": getattr(args, "host", None),
        "port": getattr(args, "port", None),
        "workers": getattr(args, "workers", None),
    }
    return load_settings(args.config, overrides)


def _serve(args: argparse.Namespace) -> int:
    from seawall.app import bootstrap
    from seawall.server import serve

    settings = _settings(args)
    generated = asyncio.run(bootstrap(settings))
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


async def _accounts(args: argparse.Namespace) -> int:
    from registry.auth.passwords import generate_secret, hash_password
    from registry.auth.permissions import parse_grant
    from registry.meta.accounts import GrantRow
    from registry.meta.db import init_schema
    from seawall.app import build_services

    services = build_services(_settings(args))
    try:
        await init_schema(services.engine)
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
        return asyncio.run(_accounts(args))
    if args.command == "sync":
        return sync_cli.run(args)
    if args.command == "gc":
        from seawall import gc_cli

        return gc_cli.run(args, _settings(args))
    from seawall import replication_cli

    if args.command in replication_cli.COMMANDS:
        return replication_cli.run(args)
    return 2


if __name__ == "__main__":
    raise SystemExit(main())
