"""``/v2/<name>/manifests/<reference>``: GET, HEAD, PUT, DELETE by tag or digest.

Bytes are stored and served exactly as pushed: the digest of what comes out is the digest of
what went in.
"""

from __future__ import annotations

from registry.http.asgi import BodyTooLarge, Request, Response
from registry.http.blobs import parse_digest
from registry.http.context import RegistryContext
from registry.http.upstream import may_read_through
from registry.oci.digest import Digest, DigestError, sha256_of
from registry.oci.errors import RegistryError
from registry.oci.manifest import parse_manifest
from registry.oci.numbers import NumberError, parse_count
from registry.oci.reference import is_valid_tag

__all__ = ["delete_manifest", "get_manifest", "put_manifest"]


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
    record = await ctx.content.get_manifest(name, reference)
    if record is None and ctx.read_through is not None and may_read_through(req):
        record = await ctx.read_through.manifest(name, reference)
    if record is None:
        raise RegistryError("MANIFEST_UNKNOWN", {"name": name, "reference": reference})
    headers = {
        "Content-Type": record.media_type,
        "Content-Length": str(record.size),
        "Docker-Content-Digest": record.digest,
        "ETag": f'"{record.digest}"',
    }
    return Response(200, headers, record.data, head=req.method == "HEAD")


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
    await ctx.content.put_manifest(name, digest, data, parsed, tag, req.user)
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
    if ":" in reference:
        found = await ctx.content.delete_manifest(name, reference, req.user)
    else:
        found = await ctx.content.delete_tag(name, reference, req.user)
    if not found:
        raise RegistryError("MANIFEST_UNKNOWN", {"name": name, "reference": reference})
    ctx.notify()
    return Response(202, {"Content-Length": "0"})
