"""What the schema step refuses, each with a message of one line saying what to do."""

from __future__ import annotations

from typing import NoReturn

__all__ = ["DowngradeRefused", "SchemaError", "SchemaTooNew", "refuse_downgrade"]


class SchemaError(Exception):
    """The database's schema cannot be used or changed as asked; ``str()`` is one line."""


class SchemaTooNew(SchemaError):
    """The database was upgraded by a newer Seawall: its revision is unknown here."""

    def __init__(self, revision: str, head: str) -> None:
        self.revision, self.head = revision, head
        super().__init__(
            f"the database schema is at revision {revision}, newer than this Seawall knows "
            f"(its newest is {head}): upgrade Seawall, or restore the backup taken before the "
            "newer version upgraded the database"
        )


class DowngradeRefused(SchemaError):
    """Schema downgrades are not supported (they would drop data)."""

    def __init__(self, revision: str | None = None) -> None:
        where = f" from revision {revision}" if revision else ""
        super().__init__(
            f"downgrading the database schema{where} is not supported: to go back to an older "
            "Seawall, restore the backup taken before the upgrade"
        )


def refuse_downgrade(revision: str) -> NoReturn:
    """Every revision's ``downgrade()``."""
    raise DowngradeRefused(revision)
