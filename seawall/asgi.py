"""The ASGI application factory the server's workers import (``seawall.asgi:create_app``)."""

from __future__ import annotations

import ctypes
import logging
import os
import signal
import sys
from collections.abc import Mapping

from registry.http.app import RegistryApp
from registry.http.edge import Edge, EdgeOptions, parse_networks
from seawall.app import build_app
from seawall.config import Settings, load_settings

__all__ = ["create_app", "edge_options"]

PROXIES_ENV = "SEAWALL_TRUSTED_PROXIES"
BODY_IDLE_ENV = "SEAWALL_BODY_IDLE_TIMEOUT_SECONDS"


def _die_with_parent() -> None:
    """A worker must not outlive its launcher (kill -9 of the launcher would leave it serving)."""
    if sys.platform.startswith("linux"):
        try:
            libc = ctypes.CDLL("libc.so.6", use_errno=True)
            libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
        except OSError:
            pass


def edge_options(settings: Settings, environ: Mapping[str, str] = os.environ) -> EdgeOptions:
    """Trusted proxies and the body idle timeout: the settings ``trusted_proxies`` and
    ``body_idle_timeout_seconds`` where ``Settings`` has them, else ``SEAWALL_TRUSTED_PROXIES``
    (comma-separated addresses or networks) and ``SEAWALL_BODY_IDLE_TIMEOUT_SECONDS``.

    :raises SystemExit: one line naming the bad value and what to write instead.
    """
    proxies = getattr(settings, "trusted_proxies", None)
    if proxies is None:
        proxies = [p.strip() for p in environ.get(PROXIES_ENV, "").split(",") if p.strip()]
    idle = getattr(settings, "body_idle_timeout_seconds", None)
    raw = str(idle if idle is not None else environ.get(BODY_IDLE_ENV, "30"))
    try:
        parse_networks(proxies)
    except ValueError as e:
        raise SystemExit(f"seawall: {e}") from None
    try:
        seconds = float(raw)
    except ValueError:
        seconds = float("nan")
    if not 0 < seconds <= 3600:  # also NaN
        raise SystemExit(
            f"seawall: body idle timeout {raw!r} is not a number of seconds from 0 to 3600; "
            f"write e.g. {BODY_IDLE_ENV}=30"
        )
    return EdgeOptions(trusted_proxies=tuple(proxies), body_idle_timeout_seconds=seconds)


def create_app() -> RegistryApp:
    _die_with_parent()
    settings = load_settings()
    logging.basicConfig(
        level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    app = build_app(settings)
    app.edge = Edge(edge_options(settings))  # until build_app passes edge= itself
    return app
