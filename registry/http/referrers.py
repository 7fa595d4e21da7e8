"""``/v2/<name>/referrers/<digest>``: the OCI 1.1 referrers API, with ``artifactType``
filtering."""

from __future__ import annotations

from registry.http.asgi import Request, Response, json_response
from registry.http.blobs import parse_digest
from registry.http.context import RegistryContext
from registry.oci.manifest import Descriptor
from registry.oci.mediatypes import OCI_INDEX

__all__ = ["referrers"]


async def referrers(ctx: RegistryContext, req: Request) -> Response:
    name = req.params["name"]
    subject = str(parse_digest(req.params["digest"]))
    artifact_type = req.q("artifactType") or None
    rows = await ctx.content.referrers(name, subject, artifact_type)
    manifests = [
        Descriptor(r.media_type, r.digest, r.size, r.artifact_type, r.annotations).to_json()
        for r in rows
    ]
    headers = {"Content-Type": OCI_INDEX}
    if artifact_type is not None:
        headers["OCI-Filters-Applied"] = "artifactType"
    index = {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": manifests}
    return json_response(index, headers=headers)
