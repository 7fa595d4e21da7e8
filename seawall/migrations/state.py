"""Where a database's schema stands, and what a schema step did: values, no Alembic import (the
start of every process reads them, and most starts need nothing else)."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from seawall.migrations.errors import SchemaTooNew

__all__ = ["SchemaState", "State", "Upgrade"]


class State(StrEnum):
    EMPTY = "empty"  # none of Seawall's tables
    UNVERSIONED = "un-versioned"  # Seawall's tables, made before migrations (no alembic_version)
    BEHIND = "behind"  # an older revision: the ones after it run
    CURRENT = "current"  # the head revision
    AHEAD = "ahead"  # a revision this Seawall does not know: a newer one upgraded it


@dataclass(frozen=True)
class SchemaState:
    """``revision``: the database's stamped revision (None when empty or un-versioned);
    ``head``: this Seawall's newest; ``stamp_as``: for an un-versioned database, the revision it
    is stamped at before upgrading (None: none, every revision runs)."""

    state: State
    revision: str | None
    head: str
    stamp_as: str | None = None

    def describe(self) -> str:
        """One line (``seawall db current``)."""
        if self.state is State.EMPTY:
            return f"empty database: it is created at revision {self.head} when Seawall starts"
        if self.state is State.UNVERSIONED:
            found = (
                f"the schema of revision {self.stamp_as}" if self.stamp_as else "an older schema"
            )
            return (
                f"un-versioned (made before migrations; holds {found}): "
                f"`seawall db upgrade` brings it to revision {self.head}"
            )
        if self.state is State.BEHIND:
            return (
                f"revision {self.revision}, behind this Seawall's {self.head}: "
                "`seawall db upgrade` (or a start) upgrades it"
            )
        if self.state is State.AHEAD:
            return str(SchemaTooNew(str(self.revision), self.head))
        return f"revision {self.revision} (head: up to date)"


@dataclass(frozen=True)
class Upgrade:
    """What one schema step did: the state it found and the revision it left."""

    before: SchemaState
    after: str

    @property
    def changed(self) -> bool:
        return self.before.state is not State.CURRENT

    def describe(self) -> str:
        """One line: what changed (the log, ``serve``'s output, ``seawall db upgrade``)."""
        before = self.before
        if before.state is State.CURRENT:
            return f"database schema up to date (revision {self.after})"
        if before.state is State.EMPTY:
            return f"database schema created at revision {self.after}"
        if before.state is State.UNVERSIONED:
            start = f"stamped {before.stamp_as}" if before.stamp_as else "from the base"
            return f"database schema made before migrations upgraded ({start}) to {self.after}"
        return f"database schema upgraded from revision {before.revision} to {self.after}"
