"""Versioned schema migrations (Alembic) of the metadata database.

``versions/`` holds the revisions, oldest first: ``0001`` is the schema of the last release
before migrations (9420392), each later one a change. :mod:`.step` is the schema step every
command that opens the database runs (under the schema lock), :mod:`.runner` its Alembic part;
:mod:`.schema` is what the revisions must arrive at (the models) and what they leave alone
(APScheduler's tables). Importing this package does not import Alembic.

Adding a revision (after changing a model; a new module of tables first joins
:data:`.schema.MODEL_MODULES`): ``python -m seawall.migrations "what changed"`` writes
``versions/NNNN_what_changed.py`` from the difference between the models and a scratch database
the revisions built, and sets :data:`HEAD` to it; read and edit it (it cannot see renames or
data to move; SQLite alters tables in batch mode, copy and move), give it a test if it moves
data, and never edit a revision that has been released.
"""

from __future__ import annotations

from seawall.migrations.errors import DowngradeRefused, SchemaError, SchemaTooNew
from seawall.migrations.state import SchemaState, State, Upgrade
from seawall.migrations.step import (
    HEAD,
    VERSION_TABLE,
    schema_step,
    upgrade_database,
    upgrade_on_start,
)

__all__ = [
    "HEAD",
    "VERSION_TABLE",
    "DowngradeRefused",
    "SchemaError",
    "SchemaState",
    "SchemaTooNew",
    "State",
    "Upgrade",
    "schema_step",
    "upgrade_database",
    "upgrade_on_start",
]
