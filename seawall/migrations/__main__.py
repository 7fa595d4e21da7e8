"""``python -m seawall.migrations "what changed"``: write the next revision (a developer's tool).

A scratch SQLite database is brought to the current head by running every revision, then
Alembic's autogenerate compares it with the models and writes ``versions/NNNN_<slug>.py`` (in
batch mode, which SQLite needs and PostgreSQL runs as plain ``ALTER``). Read what it wrote: it
cannot see renames or data to move, and types it cannot compare. ``HEAD`` in ``step.py`` is
set to the new revision.
"""

from __future__ import annotations

import asyncio
import re
import subprocess
import sys
import tempfile
from pathlib import Path

from alembic import command
from sqlalchemy.engine import Connection

from registry.meta.db import create_engine
from seawall.migrations import step
from seawall.migrations.runner import alembic_config, head

STEP_SOURCE = Path(step.__file__)


def _write(conn: Connection, message: str) -> str:
    config = alembic_config(conn)
    command.upgrade(config, "head")
    next_id = f"{int(head()) + 1:04d}"
    written = command.revision(config, message, autogenerate=True, rev_id=next_id)
    for script in written if isinstance(written, list) else [written]:
        if script is not None:  # in the project's style where ruff is installed
            subprocess.run([sys.executable, "-m", "ruff", "format", "-q", script.path], check=False)
    return next_id


def _set_head(revision: str) -> None:
    """``HEAD`` in ``step.py`` set to the new revision (a test checks they agree)."""
    source = STEP_SOURCE.read_text()
    updated = re.sub(r'^HEAD = "[^"]*"', f'HEAD = "{revision}"', source, count=1, flags=re.M)
    STEP_SOURCE.write_text(updated)
    print(f"HEAD in {STEP_SOURCE} is now {revision}")


async def _make(db: Path, message: str) -> str:
    engine = create_engine(f"sqlite:///{db}")
    try:
        async with engine.connect() as conn:
            revision: str = await conn.run_sync(_write, message)
            await conn.commit()
            return revision
    finally:
        await engine.dispose()


def main(argv: list[str]) -> int:
    message = " ".join(argv).strip()
    if not message or message.startswith("-"):
        print('usage: python -m seawall.migrations "what the revision changes"', file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory(prefix="seawall-revision-") as tmp:
        revision = asyncio.run(_make(Path(tmp) / "scratch.db", message))
    _set_head(revision)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
