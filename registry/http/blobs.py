"""``/v2/<name>/blobs/<digest>``: GET (with Range), HEAD, DELETE."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from datetime import timedelta

from registry.http.asgi import Request, Response
from registry.http.context import RegistryContext
from registry.http.upstream import may_read_through
from registry.oci.digest import Digest, DigestError
from registry.oci.errors import RegistryError
from registry.storage.base import PathNotFound

__all__ = ["delete_blob", "get_blob", "parse_digest"]

_RANGE_RE = re.compile(r"^bytes=(\d*)-(\d*)$")


def parse_digest(value: str, code: str = "DIGEST_INVALID") -> Digest:
    try:
        return Digest.parse(value)
    except DigestError as e:
        raise RegistryError(code, {"digest": value[:200], "reason": str(e)}) from None


def parse_range(header: str, size: int) -> tuple[int, int] | None:
    """``(start, end_inclusive)`` of a single byte range, or None when unsatisfiable."""
    m = _RANGE_RE.match(header.strip())
    if not m or (not m.group(1) and not m.group(2)):
        return None
    if not m.group(1):  # suffix: the last N bytes
        n = int(m.group(2))
        return (max(size - n, 0), size - 1) if n > 0 and size > 0 else None
    start = int(m.group(1))
    end = int(m.group(2)) if m.group(2) else size - 1
    if start >= size or end < start:
        return None
    return start, min(end, size - 1)


async def get_blob(ctx: RegistryContext, req: Request) -> Response:
    name = req.params["name"]
    digest = parse_digest(req.params["digest"])
    key = str(digest)
    size = await ctx.content.blob_size(name, key)
    if size is None:
        manifest = await ctx.content.get_manifest(name, key)  # a manifest fetched as a blob
        if manifest is not None:
            return Response(200, _headers(key, manifest.size), manifest.data)
        proxy = ctx.proxy_cache
        if proxy is not None and await proxy.namespace_of(name) is not None:
            size = await proxy.blob(name, digest)  # pulled through, stored when not None
        elif ctx.read_through is not None and may_read_through(req):
            size = await ctx.read_through.blob(name, digest)  # stored here when not None
        if size is None:
            raise RegistryError("BLOB_UNKNOWN", {"digest": key})
    headers = _headers(key, size)
    range_header = req.headers.get("range")
    if range_header and req.method == "GET":
        span = parse_range(range_header, size)
        if span is None:
            raise RegistryError(
                "RANGE_INVALID",
                {"range": range_header[:100], "size": size},
                headers={"Content-Range": f"bytes */{size}"},
            )
        start, end = span
        headers["Content-Length"] = str(end - start + 1)
        headers["Content-Range"] = f"bytes {start}-{end}/{size}"
        stream = await _opened(ctx.blobs.read(digest, start, end - start + 1), key)
        return Response(206, headers, stream=stream)
    if req.method == "HEAD":
        return Response(200, headers, head=True)
    if ctx.options.redirect_blobs:
        url = await ctx.blobs.url_for(digest, timedelta(seconds=ctx.options.redirect_seconds))
        if url is not None:  # bytes flow from the store; a driver that cannot serves them here
            return Response(307, {"Location": url, "Docker-Content-Digest": key})
    local = ctx.blobs.local_file(digest)
    if local is not None:
        return Response(200, headers, file_path=local)
    return Response(200, headers, stream=await _opened(ctx.blobs.read(digest), key))


async def _opened(stream: AsyncIterator[bytes], key: str) -> AsyncIterator[bytes]:
    """``stream`` with its first chunk already read: bytes the store no longer holds (a
    collection removed them) are a ``BLOB_UNKNOWN`` answer, not a connection dropped after
    the headers went out."""
    try:
        first = await anext(stream)
    except StopAsyncIteration:
        first = b""
    except PathNotFound:
        raise RegistryError("BLOB_UNKNOWN", {"digest": key}) from None

    async def rest() -> AsyncIterator[bytes]:
        yield first
        async for chunk in stream:
            yield chunk

    return rest()


def _headers(digest: str, size: int) -> dict[str, str]:
    return {
        "Content-Type": "application/octet-stream",
        "Content-Length": str(size),
        "Docker-Content-Digest": digest,
        "ETag": f'"{digest}"',
        "Accept-Ranges": "bytes",
        "Cache-Control": "max-age=31536000",
    }


async def delete_blob(ctx: RegistryContext, req: Request) -> Response:
    name = req.params["name"]
    digest = str(parse_digest(req.params["digest"]))
    if not await ctx.content.unlink_blob(name, digest):
        raise RegistryError("BLOB_UNKNOWN", {"digest": digest})
    return Response(202, {"Docker-Content-Digest": digest})
