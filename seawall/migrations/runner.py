"""The schema step's Alembic part (:mod:`seawall.migrations.step` comes here for any database
not already at the head revision), and ``seawall db current``'s reading.

What it finds, and what it does:

- **empty** (none of Seawall's tables; APScheduler's may be there): the models' tables are
  created (``create_all``, the same schema the revisions build, as a test checks) and the
  database is stamped at the head revision;
- **un-versioned** (Seawall's tables, no ``alembic_version``: made before migrations existed):
  stamped at the last revision, from the base on, whose objects are all there (the revisions
  that describe such databases, ``0001`` and ``0002``, say so in ``is_applied``), or at none,
  and then upgraded; those revisions make only what is missing, so a database from any earlier
  Seawall arrives at head;
- **behind**: the revisions after its own run, in order, in the one transaction;
- **current**: nothing;
- **ahead** (a revision this Seawall does not know: a newer one upgraded it): refused with
  :class:`~seawall.migrations.errors.SchemaTooNew`, nothing changed.

Revisions run through Alembic with the caller's connection (``env.py`` takes it from the
configuration's attributes); no ``alembic.ini`` is read.
"""

from __future__ import annotations

import functools
from pathlib import Path

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from alembic.util import CommandError
from sqlalchemy.engine import Connection

from registry.meta.db import create_schema
from seawall.migrations import schema
from seawall.migrations.errors import SchemaError, SchemaTooNew
from seawall.migrations.state import SchemaState, State, Upgrade

__all__ = ["alembic_config", "head", "read_state", "script_directory", "upgrade"]

#: The script directory (``env.py``, ``versions/``), inside the installed package
SCRIPT_LOCATION = Path(__file__).resolve().parent


def alembic_config(conn: Connection | None = None) -> Config:
    """Alembic's configuration, built in code; ``conn`` is the connection ``env.py`` uses."""
    config = Config()
    config.set_main_option("script_location", str(SCRIPT_LOCATION))
    if conn is not None:
        config.attributes["connection"] = conn
    return config


@functools.cache
def script_directory() -> ScriptDirectory:
    return ScriptDirectory.from_config(alembic_config())


def head() -> str:
    """The newest revision this Seawall knows."""
    found = script_directory().get_current_head()
    assert found is not None, "no revisions in seawall/migrations/versions"
    return found


def read_state(conn: Connection) -> SchemaState:
    """Where the schema on ``conn`` stands (reads only)."""
    newest = head()
    stamped = MigrationContext.configure(conn, opts=schema.context_options(conn))
    heads = stamped.get_current_heads()
    if len(heads) > 1:
        raise SchemaError(f"the database has several schema revisions ({', '.join(heads)})")
    if heads:
        revision = heads[0]
        if not _known(revision):
            return SchemaState(State.AHEAD, revision, newest)
        state = State.CURRENT if revision == newest else State.BEHIND
        return SchemaState(state, revision, newest)
    present = set(sa.inspect(conn).get_table_names())
    if not present & set(schema.target_metadata().tables):
        return SchemaState(State.EMPTY, None, newest)
    return SchemaState(State.UNVERSIONED, None, newest, _applied_revision(conn))


def upgrade(conn: Connection) -> Upgrade:
    """The database on ``conn`` at the head revision, whatever it found (see the module's
    docstring). :raises SchemaTooNew: a newer Seawall's database (nothing is changed)."""
    before = read_state(conn)
    newest = before.head
    if before.state is State.AHEAD:
        raise SchemaTooNew(str(before.revision), newest)
    config = alembic_config(conn)
    if before.state is State.EMPTY:
        create_schema(conn, schema.target_metadata())
        command.stamp(config, newest)
    elif before.state is not State.CURRENT:
        if before.stamp_as is not None:
            command.stamp(config, before.stamp_as)
        command.upgrade(config, newest)
        _check_foreign_keys(conn)
    return Upgrade(before, newest)


def _known(revision: str) -> bool:
    try:
        return script_directory().get_revision(revision) is not None
    except CommandError:  # "Can't locate revision identified by …"
        return False


def _applied_revision(conn: Connection) -> str | None:
    """For a database made before migrations: the last of the revisions, from the base on,
    that describe such databases (they have ``is_applied``) and whose objects are all in it —
    the revision to stamp it at (None: it lacks some of the base's; every revision runs)."""
    found = None
    for revision in reversed(list(script_directory().walk_revisions())):  # base first
        is_applied = getattr(revision.module, "is_applied", None)
        if is_applied is None or not is_applied(conn):
            break
        found = revision.revision
    return found


def _check_foreign_keys(conn: Connection) -> None:
    """SQLite ran the revisions with foreign keys off (tables may have been copied): refuse to
    commit rows that now point nowhere. PostgreSQL checks as it goes."""
    if conn.dialect.name != "sqlite":
        return
    broken = conn.exec_driver_sql("PRAGMA foreign_key_check").fetchmany(3)
    if broken:
        shown = ", ".join(f"{row[0]} row {row[1]} → {row[2]}" for row in broken)
        raise SchemaError(f"the schema upgrade would leave rows pointing nowhere ({shown})")
