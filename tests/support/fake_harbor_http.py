"""What the Harbor fake's API handlers share: projects, Harbor's error body, who is asking,
paging.

Errors are ``{"errors": [{"code", "message"}]}`` (Harbor's ``lib/http/error.go``). Lists are
paged by ``page`` (from 1) and ``page_size`` (default 10, at most 100: more is ``422``, as
the swagger's bound makes go-swagger answer) with ``X-Total-Count`` and ``Link: <…>;
rel="prev" , <…>; rel="next"``.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

from aiohttp import web

from tests.support.fake_harbor_auth import Account
from tests.support.fake_harbor_webhooks import now_iso

if TYPE_CHECKING:
    from tests.support.fake_harbor import FakeHarbor

__all__ = ["NO_ACCESS", "PREFIX", "Project", "caller", "harbor_error", "paged", "refuse", "visible"]

PREFIX = "/api/v2.0"
NO_ACCESS = "unauthorized"


@dataclass
class Project:
    id: int
    name: str
    metadata: dict[str, str]
    storage_limit: int
    owner: str
    creation_time: str = field(default_factory=now_iso)

    @property
    def public(self) -> bool:
        return self.metadata.get("public") == "true"

    def wire(self, repo_count: int = 0) -> dict[str, Any]:
        return {
            "project_id": self.id,
            "owner_id": 1,
            "owner_name": self.owner,
            "name": self.name,
            "registry_id": 0,
            "creation_time": self.creation_time,
            "update_time": self.creation_time,
            "deleted": False,
            "togglable": True,
            "repo_count": repo_count,
            "metadata": dict(self.metadata),
        }


def harbor_error(status: int, code: str, message: str) -> web.Response:
    body = json.dumps({"errors": [{"code": code, "message": message}]})
    return web.Response(status=status, text=body + "\n", content_type="application/json")


# -- who is asking ---------------------------------------------------------------------------


def caller(fake: FakeHarbor, request: web.Request) -> Account | web.Response | None:
    """The account of a Basic login, None (anonymous), or the 401 for a wrong one."""
    found = fake.accounts.from_basic(request.headers.get("Authorization", ""))
    if found is False:
        return harbor_error(401, "UNAUTHORIZED", NO_ACCESS)
    return found if isinstance(found, Account) else None


def refuse(account: Account | None, what: str) -> web.Response:
    if account is None:
        return harbor_error(401, "UNAUTHORIZED", NO_ACCESS)
    return harbor_error(403, "FORBIDDEN", f"{account.name} may not {what}")


def visible(account: Account | None, project: Project) -> bool:
    if project.public or (account is not None and account.admin):
        return True
    if account is None:
        return False
    return any(ns in (project.name, "*") for ns, _, _ in account.permissions)


def paged(request: web.Request, items: Sequence[Any]) -> web.Response:
    try:
        page = int(request.query.get("page", "1"))
        size = int(request.query.get("page_size", "10"))
    except ValueError:
        return harbor_error(400, "BAD_REQUEST", "page and page_size are integers")
    if size > 100 or size < 1 or page < 1:
        return harbor_error(
            422, "UNPROCESSABLE_ENTITY", "page_size in query should be between 1 and 100"
        )
    chunk = items[(page - 1) * size : page * size]
    links = []
    for rel, number in (("prev", page - 1), ("next", page + 1)):
        if number >= 1 and (number - 1) * size < len(items) and number != page:
            query = urlencode({**request.query, "page": number, "page_size": size})
            links.append(f'<{request.rel_url.raw_path}?{query}>; rel="{rel}"')
    headers = {"X-Total-Count": str(len(items))}
    if links:
        headers["Link"] = " , ".join(links)
    return web.json_response(list(chunk), headers=headers)
