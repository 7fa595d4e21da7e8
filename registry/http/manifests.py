"""``/v2/<name>/manifests/<reference>``: GET, HEAD, PUT, DELETE by tag or digest.

Bytes are stored and served exactly as pushed: the digest of what comes out is the digest of
what went in.

Tag origins (:mod:`registry.oci.origin`): a ``GET``/``HEAD`` by tag answers the tag's
``Seawall-Origin``, a ``404`` for a tag deleted here its ``Seawall-Tombstone``; a ``PUT`` or
``DELETE`` by tag from an account allowed to replicate (the admin and robots: the accounts
machines use) may carry ``Seawall-Origin``, the write's original origin, which is stored
instead of this region's.
"""

from __future__ import annotations

from datetime import timedelta

from registry.http.asgi import BodyTooLarge, Request, Response
from registry.http.blobs import parse_digest
from registry.http.context import RegistryContext
from registry.http.upstream import may_read_through
from registry.meta.fence import utc_now
from registry.oci.digest import Digest, DigestError, sha256_of
from registry.oci.errors import RegistryError
from registry.oci.manifest import parse_manifest
from registry.oci.numbers import NumberError, parse_count
from registry.oci.origin import ORIGIN_HEADER, TOMBSTONE_HEADER, Origin, OriginError
from registry.oci.reference import is_valid_tag

__all__ = ["REPLICATING_KINDS", "delete_manifest", "get_manifest", "put_manifest"]

#: Account kinds whose writes may carry ``Seawall-Origin``.
REPLICATING_KINDS = frozenset({"admin", "robot"})
#: How far ahead of this registry's clock a carried origin may be (clocks a little apart).
MAX_ORIGIN_AHEAD = timedelta(hours=1)


def _check_reference(reference: str) -> None:
    """404 for a reference that can name nothing (a malformed digest or tag)."""
    if ":" in reference:
        try:
            Digest.parse(reference)
        except DigestError as e:
            raise RegistryError(
                "MANIFEST_UNKNOWN", {"reference": reference[:200], "reason": str(e)}
            ) from None
    elif not is_valid_tag(reference):
        raise RegistryError(
            "MANIFEST_UNKNOWN", {"reference": reference[:200], "reason": "invalid tag"}
        )


async def get_manifest(ctx: RegistryContext, req: Request) -> Response:
    name, reference = req.params["name"], req.params["reference"]
    _check_reference(reference)
    proxy = ctx.proxy_cache
    ns = None if proxy is None else await proxy.namespace_of(name)
    if proxy is not None and ns is not None:  # a proxy cache: its tags are its own
        record = await proxy.manifest(ns, name, reference)
    else:
        record = await ctx.content.get_manifest(name, reference)
    if record is None and ns is None and ctx.read_through is not None and may_read_through(req):
        record = await ctx.read_through.manifest(name, reference)
    if record is None:
        gone = None if ":" in reference else await ctx.content.tombstone(name, reference)
        raise RegistryError(
            "MANIFEST_UNKNOWN",
            {"name": name, "reference": reference},
            headers={TOMBSTONE_HEADER: gone.header()} if gone is not None else None,
        )
    headers = {
        "Content-Type": record.media_type,
        "Content-Length": str(record.size),
        "Docker-Content-Digest": record.digest,
        "ETag": f'"{record.digest}"',
    }
    if record.origin is not None and ":" not in reference:
        headers[ORIGIN_HEADER] = record.origin.header()
    return Response(200, headers, record.data, head=req.method == "HEAD")


async def _carried_origin(ctx: RegistryContext, req: Request) -> Origin | None:
    """The ``Seawall-Origin`` a replicating Seawall's write carries, or None.

    :raises RegistryError: ``DENIED`` from an account that may not replicate;
        ``UNSUPPORTED`` (400) for a header that cannot be read or an origin too far ahead.
    """
    raw = req.headers.get(ORIGIN_HEADER.lower())
    if raw is None:
        return None
    account = await ctx.accounts.get(req.user) if req.user else None
    if account is None or account.kind not in REPLICATING_KINDS:
        raise RegistryError(
            "DENIED",
            {"header": ORIGIN_HEADER, "reason": "only the admin and robots may carry an origin"},
        )
    try:
        origin = Origin.parse_header(raw)
    except OriginError as e:
        raise RegistryError(
            "UNSUPPORTED", {"header": ORIGIN_HEADER, "reason": str(e)}, status=400
        ) from None
    if origin.at > utc_now() + MAX_ORIGIN_AHEAD:
        raise RegistryError(
            "UNSUPPORTED",
            {"header": ORIGIN_HEADER, "reason": "the origin's time is more than an hour ahead"},
            status=400,
        )
    return origin


def _too_large(limit: int) -> RegistryError:
    return RegistryError(
        "MANIFEST_INVALID",
        {"limit_bytes": limit},
        status=413,
        message=f"manifest exceeds the size limit of {limit} bytes",
    )


async def _manifest_body(req: Request, limit: int) -> bytes:
    """The body, refused (413) by its declared length before reading when that is over ``limit``."""
    try:
        declared = parse_count(req.headers.get("content-length") or "0")
    except NumberError:
        declared = 0  # the server frames the body; what is read is checked below
    if declared > limit:
        raise _too_large(limit)
    try:
        return await req.body(limit)
    except BodyTooLarge:
        raise _too_large(limit) from None


async def put_manifest(ctx: RegistryContext, req: Request) -> Response:
    name, reference = req.params["name"], req.params["reference"]
    data = await _manifest_body(req, ctx.options.max_manifest_bytes)
    tag: str | None = None
    if ":" in reference:
        expected = parse_digest(reference)
        hasher = expected.hasher()
        hasher.update(data)
        if hasher.digest() != expected:
            raise RegistryError(
                "DIGEST_INVALID", {"expected": reference, "actual": str(hasher.digest())}
            )
        digest = str(expected)
    else:
        if not is_valid_tag(reference):
            raise RegistryError("TAG_INVALID", {"tag": reference[:200]})
        digest, tag = sha256_of(data), reference
    parsed = parse_manifest(data, req.headers.get("content-type"))
    origin = await _carried_origin(ctx, req)
    if await ctx.content.put_manifest(name, digest, data, parsed, tag, req.user, origin):
        ctx.notify()
    headers = {
        "Location": f"/v2/{name}/manifests/{digest}",
        "Docker-Content-Digest": digest,
        "Content-Length": "0",
    }
    if parsed.subject is not None:
        headers["OCI-Subject"] = parsed.subject.digest
    return Response(201, headers)


async def delete_manifest(ctx: RegistryContext, req: Request) -> Response:
    name, reference = req.params["name"], req.params["reference"]
    _check_reference(reference)
    origin = await _carried_origin(ctx, req)
    if ":" in reference:
        found = await ctx.content.delete_manifest(name, reference, req.user, origin)
    else:
        found = await ctx.content.delete_tag(name, reference, req.user, origin)
    if not found:
        raise RegistryError("MANIFEST_UNKNOWN", {"name": name, "reference": reference})
    ctx.notify()
    return Response(202, {"Content-Length": "0"})
