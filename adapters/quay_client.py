"""``QuayClient``: the OCI client, with Quay's tag delete when the registry's is refused.

Quay releases differ in ``DELETE /v2/<name>/manifests/<tag>``: older ones delete manifests by
digest only (``405``/``UNSUPPORTED``). A refused tag delete is then made through the REST API
(``DELETE /api/v1/repository/<name>/tag/<tag>``) when the endpoint has an API token, and
remembered: later tag deletes go straight to the API. Without a token the refusal stands, and
says how to fix it.

Quay creates a repository when a login that may create one asks its token endpoint for
``push`` on it, and answers ``401`` to anything on a repository that does not exist:
:meth:`QuayClient.open_for_push` asks (an upload opened and cancelled) so that a repository is
there, or the refusal known, before anything else is sent to it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from adapters.oci.client import OciClient
from adapters.oci.errors import Denied, OciError, Unauthorized, Unsupported
from adapters.oci.transport import Request
from adapters.oci.urls import Endpoint
from adapters.oci.urls import push as push_scope
from adapters.quay_api import QuayApi
from registry.oci.origin import Origin

__all__ = ["QuayClient"]


class QuayClient(OciClient):
    """An :class:`OciClient` for one Quay (see the module).

    :param api: the REST API client, or None when the endpoint has no API token (called on
        the first refused tag delete).
    Other keyword arguments are :class:`OciClient`'s.
    """

    def __init__(self, base_url: str, *, api: Callable[[], QuayApi | None], **kwargs: Any) -> None:
        super().__init__(base_url, **kwargs)
        self._api = api
        self.v2_tag_delete = True  # False once the registry refused a tag delete

    async def delete_tag(self, repo: str, tag: str, *, origin: Origin | None = None) -> None:
        """Remove one tag: through ``/v2`` while the registry takes it, else through the API.

        :raises Unsupported: the registry refuses and there is no API token.
        """
        if self.v2_tag_delete:
            try:
                return await super().delete_tag(repo, tag, origin=origin)
            except Unsupported:
                self.v2_tag_delete = False
        api = self._api()
        if api is None:
            raise Unsupported(
                f"{self.base_url} deletes manifests by digest only and this endpoint has no "
                f"API token to delete the tag {repo}:{tag} through /api/v1: give "
                "--api-token-file (an OAuth token with repo:write) or log in as $oauthtoken",
                method="DELETE",
                url=f"{self.base_url}/v2/{repo}/manifests/{tag}",
            )
        await api.delete_tag(repo, tag)

    async def open_for_push(self, repo: str) -> None:
        """Open an upload to ``repo`` and cancel it: Quay creates the repository if the login
        may create on push (two requests, and the token request).

        :raises Denied: the login may not push there (or not create the repository).
        """
        url = self.endpoint.uploads(repo)
        request = Request("POST", url, headers={"Content-Length": "0"}, scope=push_scope(repo))
        try:
            async with self.session.request(request, expect=(202,)) as response:
                location = response.headers.get("Location")
        except (Unauthorized, Denied) as e:
            raise Denied(
                f"this login may not push to {repo} on {self.base_url}: give the robot write "
                "permission on the repository (or the organization's creator role, so that a "
                "push creates it), or give an API token and --create-repositories true",
                status=e.status,
                code=e.code,
                method="POST",
                url=url,
            ) from e
        if location:
            cancel = Request("DELETE", Endpoint.resolve(url, location), scope=push_scope(repo))
            try:
                async with self.session.request(cancel, expect=(200, 202, 204, 404)):
                    pass
            except OciError:  # best effort: an abandoned upload is purged by the registry
                pass
