"""Blob uploads that resume from the registry's offset instead of restarting from byte 0.

Small blobs go in one request, the OCI spec's single ``POST ?digest=`` with the bytes (``201``);
a registry that answers ``202`` took no body and gets ``PUT ?digest=`` on that session, and
``POST`` + ``PUT`` from then on. Large ones, or any when ``chunk_bytes`` is set, go in chunks::

    POST /v2/<repo>/blobs/uploads/                      -> 202 Location: L
    PATCH L  Content-Range: 0-(n-1)   (n bytes)          -> 202 Location: L', Range: 0-(n-1)
    PATCH L' Content-Range: n-(2n-1)  ... (connection reset)
    GET L'                                               -> 204 Range: 0-(k-1)   (k bytes landed)
    PATCH L' Content-Range: k-...     (source reopened at k: open_stream(k))
    PUT L'' ?digest=sha256:...                           -> 201

Only when the session is gone (404, or the registry refuses to resume it) does a new one start
at 0, and not even then if the blob meanwhile exists (a ``PUT`` whose answer was lost). Nothing
is verified locally: the registry checks the digest on ``PUT`` (DIGEST_INVALID → DigestMismatch).
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Callable

from adapters.oci.errors import OciError, ProtocolError, Transient
from adapters.oci.session import RegistrySession
from adapters.oci.transport import BodyFactory, Request
from adapters.oci.urls import Endpoint, push

__all__ = ["OpenStream", "Uploader"]

#: ``open_stream(offset)`` yields the blob's bytes from ``offset`` to its end.
OpenStream = Callable[[int], AsyncIterable[bytes]]

_RANGE_RE = re.compile(r"^(?:bytes=)?0-(\d+)$")
_OCTETS = "application/octet-stream"


def session_gone(error: OciError) -> bool:
    """Whether the registry no longer has (or refuses to continue) the upload session."""
    return error.status in (404, 416) or error.code in (
        "BLOB_UPLOAD_INVALID",
        "BLOB_UPLOAD_UNKNOWN",
        "RANGE_INVALID",
    )


def is_resumable(error: OciError) -> bool:
    """Whether an upload may carry on after ``error`` by asking the registry where it is.

    A 401 is: a token may expire during a long upload, and a streamed chunk is not re-sent by
    the auth flow; the status query gets a new token (or fails for good if credentials are bad).
    """
    return isinstance(error, Transient) or error.status == 401 or session_gone(error)


def received_bytes(range_header: str | None) -> int | None:
    """Bytes a registry holds, from its ``Range: 0-<last>`` (``0-0`` is read as none)."""
    m = _RANGE_RE.match((range_header or "").strip())
    if m is None:
        return None
    last = int(m.group(1))
    return last + 1 if last > 0 else 0


def _refuses_single_post(error: OciError) -> bool:
    """The registry says it does not take a blob in the POST itself."""
    return error.status in (405, 411, 413, 415, 501) or error.code == "UNSUPPORTED"


def _may_refuse_single_post(error: OciError) -> bool:
    """Perhaps the form was refused (a proxy, an unusual registry): not a bad blob, not auth."""
    bad_blob = error.code in ("DIGEST_INVALID", "SIZE_INVALID", "BLOB_UPLOAD_INVALID")
    return error.status is not None and 400 <= error.status < 500 and not bad_blob


class _Source:
    """The caller's byte source, consumed across chunks and reopened at an offset on resume."""

    def __init__(self, open_stream: OpenStream, size_bytes: int) -> None:
        self._open = open_stream
        self.size_bytes = size_bytes
        self._it: AsyncIterator[bytes] | None = None
        self._pending = b""
        self.position = 0
        self.error: BaseException | None = None  # what the source itself raised, if anything

    async def seek(self, offset: int) -> None:
        await self.close()
        self._it = aiter(self._open(offset))
        self._pending, self.position, self.error = b"", offset, None

    def take(self, n: int) -> BodyFactory:
        """A body of exactly the next ``n`` bytes (single use)."""

        async def body() -> AsyncIterator[bytes]:
            remaining = n
            while remaining:
                if not self._pending:
                    self._pending = await self._next()
                piece, self._pending = self._pending[:remaining], self._pending[remaining:]
                remaining -= len(piece)
                self.position += len(piece)
                yield piece

        return body

    async def read_all(self) -> bytes:
        parts, total = [], 0
        while total < self.size_bytes:
            chunk = await self._next()
            parts.append(chunk)
            total += len(chunk)
        if total != self.size_bytes:
            raise ProtocolError(f"source gave {total} bytes for a blob of {self.size_bytes}")
        return b"".join(parts)

    async def _next(self) -> bytes:
        assert self._it is not None, "seek() first"
        try:
            while not (chunk := await anext(self._it)):
                pass
            return bytes(chunk)
        except StopAsyncIteration:
            self.error = ProtocolError(
                f"source ended at byte {self.position} of a {self.size_bytes}-byte blob"
            )
        except Exception as e:  # not cancellation: aiohttp cancels a body it stops sending
            self.error = e
        raise self.error

    async def close(self) -> None:
        it, self._it = self._it, None
        closer = getattr(it, "aclose", None)
        for _ in range(100):  # aiohttp may still be cancelling a body writer using it
            try:
                if closer is not None:
                    await closer()
                return
            except RuntimeError:
                await asyncio.sleep(0.01)


class Uploader:
    """Pushes one blob; see the module docstring for the protocol."""

    def __init__(
        self,
        session: RegistrySession,
        endpoint: Endpoint,
        blob_exists: Callable[[str, str], Awaitable[int | None]],
    ) -> None:
        self._session = session
        self._endpoint = endpoint
        self._blob_exists = blob_exists
        self._single_post = True  # until the registry shows it does not take one

    async def monolithic(self, repo: str, digest: str, source: _Source) -> None:
        """The whole (small) blob from memory: one POST, or POST + PUT; a new session per
        attempt."""
        await source.seek(0)
        data = await source.read_all()
        failures = 0
        single = self._single_post
        while True:
            try:
                if single:
                    location = await self._post_whole(repo, digest, data)
                else:
                    location = await self._start(repo)
                if location is not None:  # a session to PUT into: two requests from now on
                    single = self._single_post = False
                    await self._finish(repo, location, digest, data)
                return
            except OciError as error:
                if error.status == 401:  # the bytes body was already re-sent with new creds
                    raise
                if single and _refuses_single_post(error):
                    self._single_post = single = False  # the form, not the blob: POST + PUT
                    continue
                if single and _may_refuse_single_post(error):
                    single = False  # POST + PUT for this blob (and for good once it starts)
                    continue
                failures = await self._after_failure(error, failures)
                if await self._blob_exists(repo, digest) is not None:
                    return

    async def chunked(self, repo: str, digest: str, source: _Source, chunk_bytes: int) -> None:
        """POST, PATCH chunk after chunk, PUT; on a failure resume at the registry's offset."""
        location: str | None = await self._start(repo)
        offset = 0
        await source.seek(0)
        failures = 0
        while location is not None:
            try:
                location, offset = await self._patch_all(
                    repo, location, offset, source, chunk_bytes
                )
                await self._finish(repo, location, digest, b"")
                return
            except Exception as raised:
                error = source.error or raised
                if not isinstance(error, OciError):
                    raise error from raised
                failures = await self._after_failure(error, failures)
                self._session.counters.resumes += 1
                location, offset = await self._recover(repo, digest, location)
                await source.seek(offset)

    async def _after_failure(self, error: OciError, failures: int) -> int:
        if not is_resumable(error) or failures >= self._session.policy.retries:
            raise error
        if not isinstance(error, Transient) or error.retry_after_seconds is None:
            await asyncio.sleep(self._session.policy.backoff_seconds(failures))
        return failures + 1

    async def _post_whole(self, repo: str, digest: str, data: bytes) -> str | None:
        """Single-POST upload: None when stored (201); on 202 the registry ignored the body
        and this is its session's Location (later blobs go POST + PUT)."""
        url = self._endpoint.uploads(repo, digest=digest)
        headers = {"Content-Type": _OCTETS, "Content-Length": str(len(data))}
        request = Request("POST", url, headers, content=data, scope=push(repo), retry=False)
        async with self._session.request(request, expect=(201, 202)) as response:
            if response.status == 201:
                return None
            return self._location(response.headers.get("Location"), url)

    async def _start(self, repo: str) -> str:
        url = self._endpoint.uploads(repo)
        request = Request("POST", url, headers={"Content-Length": "0"}, scope=push(repo))
        async with self._session.request(request, expect=(202,)) as response:
            return self._location(response.headers.get("Location"), url)

    async def _patch_all(
        self, repo: str, location: str, offset: int, source: _Source, chunk_bytes: int
    ) -> tuple[str, int]:
        size = source.size_bytes
        while offset < size:
            n = min(chunk_bytes, size - offset)
            headers = {
                "Content-Type": _OCTETS,
                "Content-Range": f"{offset}-{offset + n - 1}",
                "Content-Length": str(n),
            }
            request = Request(
                "PATCH", location, headers, content=source.take(n), scope=push(repo), retry=False
            )
            # 202 per the spec; ECR answers 201 (the upload still needs its PUT with the digest)
            async with self._session.request(request, expect=(201, 202)) as response:
                location = self._location(response.headers.get("Location"), location)
                held = received_bytes(response.headers.get("Range"))
            offset += n
            if held is not None and held != offset:  # the registry kept less than we sent
                offset = held
                await source.seek(offset)
        return location, offset

    async def _finish(self, repo: str, location: str, digest: str, data: bytes) -> None:
        url = Endpoint.with_query(location, digest=digest)
        headers = {"Content-Type": _OCTETS, "Content-Length": str(len(data))}
        request = Request("PUT", url, headers, content=data, scope=push(repo), retry=False)
        async with self._session.request(request, expect=(201, 204)):
            pass

    async def _recover(self, repo: str, digest: str, location: str) -> tuple[str | None, int]:
        """Where to carry on: the session's offset, a new session at 0, or done (None)."""
        request = Request("GET", location, scope=push(repo))
        try:
            async with self._session.request(request, expect=(204, 200)) as response:
                held = received_bytes(response.headers.get("Range"))
                if held is not None:
                    return self._location(response.headers.get("Location"), location), held
        except OciError as error:
            if not session_gone(error):
                raise
        if await self._blob_exists(repo, digest) is not None:
            return None, 0
        return await self._start(repo), 0

    def _location(self, header: str | None, current_url: str) -> str:
        if not header:
            raise ProtocolError("upload answer without a Location header", url=current_url)
        return Endpoint.resolve(current_url, header)
