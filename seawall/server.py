"""Run the HTTP server: granian (Rust HTTP, ASGI) in front of ``seawall.asgi:create_app``.

Measured on the 2-core machines here (see docs/benchmarks.md): granian and uvicorn serve small
requests at the same rate, but granian's ``pathsend`` file responses pull a 200 MiB blob ~1.5×
faster than uvicorn, off the Python thread.

granian listens with ``SO_REUSEPORT``, so a second server on a port already in use would start
and the kernel would split connections between the two: :func:`check_address` refuses first.
"""

from __future__ import annotations

import errno
import json
import os
import socket

from seawall.config import SETTINGS_ENV, Settings

__all__ = ["check_address", "serve"]


def check_address(host: str, port: int) -> None:
    """Bind ``host:port`` once, without ``SO_REUSEPORT``, and let go.

    :raises SystemExit: one line saying why the address cannot be served and what to do.
    """
    try:
        family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
    except socket.gaierror:
        raise SystemExit(
            f"seawall: cannot listen on {host!r}: not a name or address of this machine; "
            "use 127.0.0.1 (this machine only), 0.0.0.0 (every interface) or one of its addresses"
        ) from None
    try:
        with socket.socket(family, kind, proto) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # TIME_WAIT is no owner
            probe.bind(address)
    except OSError as e:
        if e.errno == errno.EADDRINUSE:
            raise SystemExit(
                f"seawall: {host}:{port} is already in use (another seawall serve?); stop that "
                "server or choose another port with --port"
            ) from None
        if e.errno == errno.EADDRNOTAVAIL:
            raise SystemExit(
                f"seawall: {host} is not an address of this machine; use 127.0.0.1, 0.0.0.0 "
                "(every interface) or one of its addresses"
            ) from None
        raise SystemExit(f"seawall: cannot listen on {host}:{port}: {e.strerror}") from None


def serve(settings: Settings) -> None:
    from granian import Granian
    from granian.constants import Interfaces, Loops

    check_address(settings.host, settings.port)
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
