"""Blob downloads that resume where they broke off.

:class:`BlobStream` reads a blob as it arrives (never buffering it whole). If the connection
drops mid-way it asks again with ``Range: bytes=<position>-`` and carries on; a registry that
ignores ``Range`` (200 instead of 206) is read from the start and the prefix skipped.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator

from adapters.oci.errors import ConnectionFailed, ProtocolError, Transient
from adapters.oci.session import RegistrySession
from adapters.oci.transport import Request, Response

__all__ = ["BlobStream"]

_CONTENT_RANGE_RE = re.compile(r"^bytes\s+(\d+)-(\d+)/(\d+|\*)$")
DEFAULT_CHUNK_BYTES = 1024 * 1024


class BlobStream:
    """An open blob download from ``offset_bytes`` to the end.

    ``size_bytes`` is the whole blob's size; ``iter_chunks`` yields the bytes from
    ``offset_bytes`` on, in pieces of at most ``chunk_bytes``. Use it inside
    ``OciClient.blob_stream(...)``'s ``async with``, which closes it.
    """

    def __init__(self, session: RegistrySession, url: str, scope: str, offset_bytes: int) -> None:
        self._session = session
        self._url = url
        self._scope = scope
        self._response: Response | None = None
        self._resumes = 0
        self.offset_bytes = offset_bytes
        self.position_bytes = offset_bytes
        self.size_bytes = 0

    async def open(self, size_hint_bytes: int | None = None) -> BlobStream:
        await self._open_at(self.position_bytes, size_hint_bytes)
        return self

    async def iter_chunks(self, chunk_bytes: int = DEFAULT_CHUNK_BYTES) -> AsyncIterator[bytes]:
        """The remaining bytes; reconnects (``retries`` times in all) if the stream breaks."""
        while self.position_bytes < self.size_bytes:
            if self._response is None:
                await self._resume(None)
                continue
            try:
                chunk = await self._response.read_chunk(
                    min(chunk_bytes, self.size_bytes - self.position_bytes)
                )
                if not chunk:
                    raise ConnectionFailed(
                        f"blob stream ended at byte {self.position_bytes} of {self.size_bytes}",
                        method="GET",
                        url=self._url,
                    )
            except Transient as error:
                await self._resume(error)
                continue
            self.position_bytes += len(chunk)
            yield chunk

    async def aclose(self) -> None:
        if self._response is not None:
            self._response.close()
            self._response = None

    async def _resume(self, error: Transient | None) -> None:
        await self.aclose()
        self._resumes += 1
        if self._resumes > self._session.policy.retries:
            raise error or ConnectionFailed("blob stream lost", method="GET", url=self._url)
        self._session.counters.resumes += 1
        await self._open_at(self.position_bytes, self.size_bytes)

    async def _open_at(self, offset: int, size_hint_bytes: int | None) -> None:
        headers = {"Range": f"bytes={offset}-"} if offset else {}
        request = Request("GET", self._url, headers=headers, scope=self._scope)
        response = await self._session.send(request)
        try:
            if response.status == 206:
                self.size_bytes = self._partial(response, offset)
            elif response.status == 200:
                self.size_bytes = self._whole(response, size_hint_bytes)
                await self._skip(response, offset)
            elif response.status == 416 and size_hint_bytes == offset:
                self.size_bytes = offset  # nothing left to read
            else:
                raise await self._session.error_of(request, response)
        except BaseException:
            response.close()
            raise
        self._response = response

    def _partial(self, response: Response, offset: int) -> int:
        m = _CONTENT_RANGE_RE.match(response.headers.get("Content-Range", "").strip())
        if m is None or int(m.group(1)) != offset or m.group(3) == "*":
            raise ProtocolError(
                f"asked for bytes {offset}- and got Content-Range "
                f"{response.headers.get('Content-Range')!r}",
                method="GET",
                url=self._url,
            )
        return int(m.group(3))

    def _whole(self, response: Response, size_hint_bytes: int | None) -> int:
        length = response.headers.get("Content-Length")
        if length is not None and length.isdigit():
            return int(length)
        if size_hint_bytes is not None:
            return size_hint_bytes
        raise ProtocolError("blob answer without Content-Length", method="GET", url=self._url)

    async def _skip(self, response: Response, offset: int) -> None:
        """Drop the first ``offset`` bytes of a full answer to a ranged request."""
        left = offset
        while left > 0:
            chunk = await response.read_chunk(min(left, DEFAULT_CHUNK_BYTES))
            if not chunk:
                raise ConnectionFailed(
                    f"blob ended while skipping to byte {offset}", method="GET", url=self._url
                )
            left -= len(chunk)
