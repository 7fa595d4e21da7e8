"""The ASGI application factory the server's workers import (``seawall.asgi:create_app``)."""

from __future__ import annotations

import ctypes
import logging
import signal
import sys

from registry.http.app import RegistryApp
from seawall.app import build_app
from seawall.config import load_settings
from seawall.heap import settle_heap

__all__ = ["create_app"]


def _die_with_parent() -> None:
    """A worker must not outlive its launcher (kill -9 of the launcher would leave it serving)."""
    if sys.platform.startswith("linux"):
        try:
            libc = ctypes.CDLL("libc.so.6", use_errno=True)
            libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
        except OSError:
            pass


def create_app() -> RegistryApp:
    _die_with_parent()
    settings = load_settings()
    logging.basicConfig(
        level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    return build_app(settings, on_started=settle_heap)
