"""``seawall db upgrade|current|downgrade``: the metadata database's schema revision.

The same settings as ``serve`` (``--config``, ``--data-dir``, ``SEAWALL_DATABASE_URL``) name the
database. ``upgrade`` does what every start does (:mod:`seawall.migrations.runner`), so it can
run before the nodes of a new version start, or to see the upgrade through on its own;
``current`` reads only; ``downgrade`` is refused (restore the backup instead). Every failure is
one line on stderr: exit 1, or 2 for a wrong command line.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from seawall.config import Settings

__all__ = ["add_command", "run"]


def add_command(
    sub: argparse._SubParsersAction[argparse.ArgumentParser],
    add_common: Callable[[argparse.ArgumentParser], None],
) -> None:
    db = sub.add_parser("db", help="the database schema: upgrade it, show its revision")
    actions = db.add_subparsers(dest="action", required=True)
    upgrade = actions.add_parser(
        "upgrade", help="upgrade the database schema to this Seawall's (as a start does)"
    )
    add_common(upgrade)
    current = actions.add_parser("current", help="show the database's schema revision")
    add_common(current)
    downgrade = actions.add_parser("downgrade", help="(refused: restore a backup instead)")
    add_common(downgrade)
    downgrade.add_argument("revision", nargs="?", help=argparse.SUPPRESS)


def run(args: argparse.Namespace, settings: Settings) -> int:
    from seawall.migrations import DowngradeRefused, SchemaError

    if args.action == "downgrade":
        return _fail(str(DowngradeRefused()))
    url = settings.resolved_database_url
    missing = _missing_sqlite(url)
    if missing is not None:
        return _fail(
            f"no Seawall database at {missing}; `seawall serve` creates one (point at an "
            "existing one with --data-dir DIR, SEAWALL_DATA_DIR or database_url)"
        )
    from sqlalchemy.exc import SQLAlchemyError

    try:
        return asyncio.run(_run(args.action, url))
    except SchemaError as e:
        return _fail(str(e))
    except (OSError, SQLAlchemyError) as e:
        return _fail(_unreachable(url, e))


async def _run(action: str, url: str) -> int:
    from registry.meta.db import create_engine
    from seawall.migrations import State, upgrade_database
    from seawall.migrations.runner import read_state

    engine = create_engine(url)
    try:
        if action == "upgrade":
            print((await upgrade_database(engine)).describe())
            return 0
        async with engine.connect() as conn:
            state = await conn.run_sync(read_state)
        print(state.describe())
        return 1 if state.state is State.AHEAD else 0
    finally:
        await engine.dispose()


def _missing_sqlite(url: str) -> Path | None:
    """The SQLite file ``url`` names when it does not exist (never create an empty one)."""
    from registry.meta.sql import sqlite_path

    path = sqlite_path(url)
    if path in (None, "", ":memory:"):
        return None
    return None if Path(path).exists() else Path(path)


def _unreachable(url: str, error: BaseException) -> str:
    from sqlalchemy.engine import make_url

    try:
        where = make_url(url).render_as_string(hide_password=True)
    except Exception:
        where = "database_url"
    reason = str(getattr(error, "orig", None) or error).strip().splitlines()
    first = reason[0][:300] if reason else type(error).__name__
    return (
        f"cannot open or upgrade the database {where}: {first}; check database_url "
        "(SEAWALL_DATABASE_URL) and that the database server is running and reachable"
    )


def _fail(message: str) -> int:
    print(f"seawall db: {message}", file=sys.stderr, flush=True)
    return 1
