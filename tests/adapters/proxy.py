"""A TCP proxy in front of a real registry that cuts one upload mid-chunk.

Every connection is piped both ways. The first time a client sends ``PATCH /``, the proxy lets
``cut_after_bytes`` more bytes through and then drops both sides of that connection, as a
flaky network would. Only that one request is cut.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress
from urllib.parse import urlsplit

__all__ = ["CuttingProxy"]


class CuttingProxy:
    def __init__(self, upstream_url: str, cut_after_bytes: int) -> None:
        parts = urlsplit(upstream_url)
        self._host, self._port = parts.hostname or "127.0.0.1", parts.port or 80
        self._cut_after = cut_after_bytes
        self.cuts = 0
        self.url = ""

    @asynccontextmanager
    async def running(self) -> AsyncIterator[str]:
        server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        self.url = f"http://127.0.0.1:{port}"
        try:
            yield self.url
        finally:
            server.close()
            with suppress(Exception):
                await server.wait_closed()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection(self._host, self._port)
        up = asyncio.create_task(self._upstream(reader, up_writer, writer))
        down = asyncio.create_task(self._pipe(up_reader, writer))
        await asyncio.wait([up, down], return_when=asyncio.FIRST_COMPLETED)
        for task in (up, down):
            task.cancel()
        for w in (writer, up_writer):
            w.transport.abort()

    async def _upstream(
        self, reader: asyncio.StreamReader, up: asyncio.StreamWriter, client: asyncio.StreamWriter
    ) -> None:
        budget: int | None = None
        while data := await reader.read(64 * 1024):
            if budget is None and self.cuts == 0 and b"PATCH /" in data:
                budget = self._cut_after + len(data) - data.index(b"PATCH /")
            if budget is not None:
                if len(data) >= budget:
                    up.write(data[:budget])
                    await up.drain()
                    self.cuts += 1
                    await asyncio.sleep(0.2)  # let the registry take in what it got
                    return
                budget -= len(data)
            up.write(data)
            await up.drain()

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while data := await reader.read(64 * 1024):
            writer.write(data)
            await writer.drain()
