"""Run the HTTP server: granian (Rust HTTP, ASGI) in front of ``seawall.asgi:create_app``.

Measured on the 2-core machines here (see docs/benchmarks.md): granian and uvicorn serve small
requests at the same rate, but granian's ``pathsend`` file responses pull a 200 MiB blob ~1.5×
faster than uvicorn, off the Python thread.
"""

from __future__ import annotations

import json
import os

from seawall.config import SETTINGS_ENV, Settings

__all__ = ["serve"]


def serve(settings: Settings) -> None:
    from granian import Granian
    from granian.constants import Interfaces, Loops

    os.environ[SETTINGS_ENV] = json.dumps(settings.model_dump())  # read by every worker
    Granian(
        "seawall.asgi:create_app",
        factory=True,
        address=settings.host,
        port=settings.port,
        interface=Interfaces.ASGI,
        workers=settings.workers,
        loop=Loops.uvloop,
        websockets=False,
        log_level=settings.log_level,  # type: ignore[arg-type]
        log_access=False,
        backlog=2048,
        workers_kill_timeout=30,
        respawn_failed_workers=True,
    ).serve()
