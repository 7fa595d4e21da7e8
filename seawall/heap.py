"""The worker's heap, settled once it has started.

Python's cyclic collector walks every object it tracks at a full (generation 2) collection,
with the event loop stopped. A worker holds ~10⁶ of them once it has imported SQLAlchemy, the
adapters and the app and built its tables and routes; a full collection then took 120–190 ms
here, several times a minute under load (measured at 25 pushes/s fanned out to two Seawalls:
the fan-out's slowest pushes). Those objects live as long as the worker, so they are frozen
(``gc.freeze``) when startup ends: a full collection walks only what was made since — 15–30 ms
every few seconds in that worker, measured the same way. The server's workers do this
(:func:`seawall.asgi.create_app`); an app built in a test process does not.
"""

from __future__ import annotations

import gc

__all__ = ["settle_heap"]


def settle_heap() -> None:
    """Collect what startup left behind, then keep what survived out of later collections."""
    gc.collect()
    gc.freeze()
