"""An aiohttp application served on 127.0.0.1 from a thread and event loop of its own: the
shape of every fake provider and proxy a synchronous test talks to (:class:`ThreadedApp`).

A subclass answers every request in :meth:`ThreadedApp._handle`, sets ``self.port`` (or
overrides :meth:`ThreadedApp._ports` to listen on several), and may open and close what its
loop owns (an upstream session) in :meth:`ThreadedApp._open` / :meth:`ThreadedApp._close`
and add to the application in :meth:`ThreadedApp._configure`.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Sequence
from typing import Self

from aiohttp import web

__all__ = ["ThreadedApp"]


class ThreadedApp:
    port: int
    _loop: asyncio.AbstractEventLoop | None = None
    _thread: threading.Thread | None = None
    _runner: web.AppRunner | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> Self:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._serve(), self._loop).result(30)
        return self

    def stop(self) -> None:
        if self._loop is None:
            return
        asyncio.run_coroutine_threadsafe(self._shut(), self._loop).result(30)
        self._loop.call_soon_threadsafe(self._loop.stop)
        assert self._thread is not None
        self._thread.join(30)
        self._loop.close()
        self._loop = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    async def _serve(self) -> None:
        await self._open()
        app = web.Application(client_max_size=1 << 40)
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._configure(app)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        for port in self._ports():
            await web.TCPSite(self._runner, "127.0.0.1", port).start()

    async def _shut(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
        await self._close()

    # -- what a subclass provides ----------------------------------------------------------

    def _ports(self) -> Sequence[int]:
        return (self.port,)

    async def _open(self) -> None:
        """Open what the loop owns (before the first request)."""

    async def _close(self) -> None:
        """Close it (after the last)."""

    def _configure(self, app: web.Application) -> None:
        """Add to the application (signals, shared values) before it serves."""

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        raise NotImplementedError
