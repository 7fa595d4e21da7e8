"""``/v2/<name>/blobs/uploads/``: monolithic, POST+PUT, chunked and streamed uploads, status,
cancel, and cross-repository mounts. Bytes are verified before anything becomes visible."""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import uuid
from collections.abc import AsyncIterator

from registry.http.asgi import BodyTooLarge, Request, Response
from registry.http.auth import may_pull_somewhere
from registry.http.blobs import parse_digest
from registry.http.context import RegistryContext
from registry.oci.digest import Digest
from registry.oci.errors import RegistryError
from registry.storage.base import PathNotFound
from registry.storage.blobs import DigestMismatch

__all__ = ["cancel_upload", "patch_upload", "put_upload", "start_upload", "upload_status"]

#: A monolithic ``POST ?digest=`` body up to this size (by its Content-Length) is read into
#: memory and stored in one storage call (:meth:`BlobStore.store`); larger ones stream through
#: an upload. The same size as the write buffer a streamed upload holds anyway.
SMALL_BLOB_BYTES = 1 << 20

_CONTENT_RANGE_RE = re.compile(r"^(?:bytes[ =])?(\d+)-(\d+)(?:/(\d+|\*))?$")


def new_upload_id(ctx: RegistryContext, name: str) -> str:
    """A session id that names its repository by signature: ``<uuid>.<hmac(uuid, name)>``.

    The id alone proves which repository the session belongs to, so an upload needs no database
    row and survives restarts (its bytes are in storage under the id).
    """
    base = uuid.uuid4().hex
    return f"{base}.{_signature(ctx, base, name)}"


def _signature(ctx: RegistryContext, base: str, name: str) -> str:
    mac = hmac.new(ctx.secret, f"{base}:{name}".encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(mac[:18]).decode()


def _owned_by(ctx: RegistryContext, upload_id: str, name: str) -> bool:
    base, _, sig = upload_id.partition(".")
    return bool(sig) and len(base) == 32 and hmac.compare_digest(sig, _signature(ctx, base, name))


def _location(name: str, upload_id: str) -> str:
    return f"/v2/{name}/blobs/uploads/{upload_id}"


def _progress(name: str, upload_id: str, size: int, status: int) -> Response:
    return Response(
        status,
        {
            "Location": _location(name, upload_id),
            "Range": f"0-{max(size - 1, 0)}",
            "Docker-Upload-UUID": upload_id,
            "Content-Length": "0",
        },
    )


def _created(name: str, digest: str) -> Response:
    return Response(
        201,
        {
            "Location": f"/v2/{name}/blobs/{digest}",
            "Docker-Content-Digest": digest,
            "Content-Length": "0",
        },
    )


async def _publish(
    ctx: RegistryContext, name: str, upload_id: str, digest: Digest, size: int
) -> Response:
    try:
        await ctx.blobs.publish(upload_id, digest, size)
    except DigestMismatch as e:
        raise _mismatch(e) from None
    await ctx.content.link_blob(name, str(digest), size)
    return _created(name, str(digest))


def _mismatch(e: DigestMismatch) -> RegistryError:
    return RegistryError("DIGEST_INVALID", {"expected": str(e.expected), "actual": str(e.actual)})


def _small_body(req: Request) -> bool:
    """Whether the request announces a body of at most :data:`SMALL_BLOB_BYTES`."""
    length = req.headers.get("content-length", "")
    return length.isascii() and length.isdigit() and int(length) <= SMALL_BLOB_BYTES


async def _store_small(ctx: RegistryContext, req: Request, name: str, digest: Digest) -> Response:
    """A small monolithic upload: the body in memory, verified, stored in one call."""
    try:
        data = await req.body(SMALL_BLOB_BYTES)
    except BodyTooLarge:  # more than its Content-Length said: the server cuts that off first
        raise RegistryError("SIZE_INVALID", {"limit": SMALL_BLOB_BYTES}) from None
    try:
        await ctx.blobs.store(digest, data)
    except DigestMismatch as e:
        raise _mismatch(e) from None
    await ctx.content.link_blob(name, str(digest), len(data))
    return _created(name, str(digest))


async def start_upload(ctx: RegistryContext, req: Request) -> Response:
    name = req.params["name"]
    mount, source = req.q("mount"), req.q("from")
    if mount is not None:
        digest = parse_digest(mount)
        if source:
            size = await ctx.content.blob_size(source, str(digest))
        else:  # no source named: any repository holding it that the caller may read
            holders = await ctx.content.repositories_with_blob(str(digest))
            readable = await may_pull_somewhere(ctx, req, holders)
            size = await ctx.content.known_blob_size(str(digest)) if readable else None
        if size is not None and await ctx.blobs.size_of(digest) is not None:
            await ctx.content.link_blob(name, str(digest), size)
            return _created(name, str(digest))
        # not mountable: fall back to a normal upload session (spec: 202)
    monolithic = req.q("digest")
    expected = parse_digest(monolithic) if monolithic is not None else None  # before any write
    if expected is not None and _small_body(req):
        return await _store_small(ctx, req, name, expected)
    upload_id = new_upload_id(ctx, name)
    await ctx.blobs.create(upload_id)
    if expected is not None:
        try:
            size = await ctx.blobs.append(upload_id, _body(req), commit=True)
            return await _publish(ctx, name, upload_id, expected, size)
        except BaseException:
            await ctx.blobs.cancel(upload_id)
            raise
    return _progress(name, upload_id, 0, 202)


def _unknown(upload_id: str) -> RegistryError:
    return RegistryError("BLOB_UPLOAD_UNKNOWN", {"upload": upload_id[:100]})


def _session(ctx: RegistryContext, req: Request) -> tuple[str, str]:
    """The repository and upload id of a request, if the id was issued for that repository."""
    name, upload_id = req.params["name"], req.params["uuid"]
    if not _owned_by(ctx, upload_id, name):
        raise _unknown(upload_id)
    return name, upload_id


async def _append(
    ctx: RegistryContext, req: Request, name: str, upload_id: str, commit: bool
) -> int:
    try:
        return await ctx.blobs.append(
            upload_id,
            _body(req),
            commit=commit,
            check=lambda size: _check_range(req, name, upload_id, size),
        )
    except PathNotFound:
        raise _unknown(upload_id) from None


def _check_range(req: Request, name: str, upload_id: str, size: int) -> None:
    header = req.headers.get("content-range")
    if not header:
        return
    m = _CONTENT_RANGE_RE.match(header.strip())
    length = req.headers.get("content-length")
    bad = m is None or int(m.group(1)) != size or int(m.group(2)) < int(m.group(1))
    if not bad and m is not None and length is not None:
        bad = int(length) != int(m.group(2)) - int(m.group(1)) + 1
    if bad:
        raise RegistryError(
            "RANGE_INVALID",
            {"content_range": header[:100], "expected_start": size},
            headers={
                "Location": _location(name, upload_id),
                "Range": f"0-{max(size - 1, 0)}",
                "Docker-Upload-UUID": upload_id,
            },
        )


async def _body(req: Request) -> AsyncIterator[bytes]:
    async for chunk in req.stream():
        yield chunk


async def upload_status(ctx: RegistryContext, req: Request) -> Response:
    name, upload_id = _session(ctx, req)
    try:
        size = await ctx.blobs.upload_size(upload_id)
    except PathNotFound:
        raise _unknown(upload_id) from None
    return _progress(name, upload_id, size, 204)


async def patch_upload(ctx: RegistryContext, req: Request) -> Response:
    name, upload_id = _session(ctx, req)
    async with ctx.blobs.lock(upload_id):
        size = await _append(ctx, req, name, upload_id, commit=False)
    return _progress(name, upload_id, size, 202)


async def put_upload(ctx: RegistryContext, req: Request) -> Response:
    raw = req.q("digest")
    if raw is None:
        raise RegistryError("DIGEST_INVALID", {"reason": "the digest query parameter is required"})
    digest = parse_digest(raw)
    name, upload_id = _session(ctx, req)
    async with ctx.blobs.lock(upload_id):
        size = await _append(ctx, req, name, upload_id, commit=True)
        return await _publish(ctx, name, upload_id, digest, size)


async def cancel_upload(ctx: RegistryContext, req: Request) -> Response:
    _, upload_id = _session(ctx, req)
    async with ctx.blobs.lock(upload_id):
        try:
            await ctx.blobs.upload_size(upload_id)
        except PathNotFound:
            raise _unknown(upload_id) from None
        await ctx.blobs.cancel(upload_id)
    return Response(204, {"Content-Length": "0"})
