"""``DELETE /api/v2.0/projects/{project}/repositories/{repository}``: delete a whole repository.

Harbor's shape: the repository name without its project, URL-encoded twice when it has a slash
(``team/tools/app`` is project ``team``, repository ``tools%252Fapp``; once-encoded and plain
slashes are accepted too). Every tag, manifest and blob link of the repository goes in one
transaction, announced by one ``delete_repository`` event, so event-based policies that
replicate deletion delete it at their destinations too. Admins only; ``404`` when there is no
such repository (or it is already empty).
"""

from __future__ import annotations

from urllib.parse import unquote

from engine.api.context import ApiContext
from engine.api.errors import bad_request, not_found
from registry.http.asgi import Request, Response
from registry.oci.reference import is_valid_name

__all__ = ["delete"]


async def delete(ctx: ApiContext, req: Request) -> Response:
    name = f"{unquote(req.params['project'])}/{unquote(unquote(req.params['repository']))}"
    if not is_valid_name(name):
        raise bad_request(f"{name[:300]!r} is not a repository name")
    if not await ctx.registry_ctx.content.delete_repository(name, req.user):
        raise not_found(f"repository {name} does not exist")
    return Response(200)
