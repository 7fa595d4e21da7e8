"""The GCE metadata server of :class:`~tests.support.fake_google.FakeGoogle`, as google-auth's
Application Default Credentials use it on Google Cloud (GCE, GKE workload identity, Cloud Run)
once ``GCE_METADATA_HOST`` / ``GCE_METADATA_IP`` point at the fake::

    GET /                                                          ping: 200, Metadata-Flavor
    GET /computeMetadata/v1/instance/service-accounts/default/?recursive=true   {email, scopes}
    GET /computeMetadata/v1/instance/service-accounts/<email|default>/token      an access token
    GET /computeMetadata/v1/project/project-id                                   the project

Every request must carry ``Metadata-Flavor: Google`` (else 403); answers carry it too. Served
only while :attr:`FakeGoogle.metadata_key_id` names the instance's service account.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from aiohttp import web

if TYPE_CHECKING:
    from tests.support.fake_google import FakeGoogle

__all__ = ["MetadataFake"]

_FLAVOR = {"Metadata-Flavor": "Google"}
_ACCOUNTS = "/computeMetadata/v1/instance/service-accounts/"


class MetadataFake:
    """Answers the metadata server's paths for the fake."""

    def __init__(self, fake: FakeGoogle) -> None:
        self.fake = fake

    def handle(self, request: web.Request) -> web.Response:
        key_id = self.fake.metadata_key_id
        if key_id is None:
            return web.Response(status=404, text="not on Google Cloud")
        if request.headers.get("Metadata-Flavor") != "Google":
            return web.Response(status=403, text="Missing Metadata-Flavor:Google header")
        account = self.fake.accounts[key_id]
        path = request.path
        if path == "/":
            return web.Response(text="ok", headers=_FLAVOR)
        if path == "/computeMetadata/v1/project/project-id":
            return web.Response(text=account.email.split("@")[1].split(".")[0], headers=_FLAVOR)
        if path.startswith(_ACCOUNTS):
            who, _, what = path[len(_ACCOUNTS) :].partition("/")
            if who not in ("default", account.email):
                return web.Response(status=404, text="no such service account", headers=_FLAVOR)
            if what == "token":
                body = {
                    "access_token": self.fake.issue_access_token(key_id),
                    "expires_in": int(self.fake.access_token_seconds),
                    "token_type": "Bearer",
                }
                return web.json_response(body, headers=_FLAVOR)
            if what == "":
                scopes = ["https://www.googleapis.com/auth/cloud-platform"]
                info = {"email": account.email, "scopes": scopes, "aliases": ["default"]}
                return web.json_response(info, headers=_FLAVOR)
        return web.Response(status=404, text="not found", headers=_FLAVOR)
