"""``HarborApi``: the parts of Harbor's v2.0 API (``/api/v2.0``, its published swagger) the
``harbor`` adapter uses, on the OCI client's connections, retries and ``429`` handling.

- **Projects**: ``GET /projects?page=&page_size=`` (paged by ``Link: rel="next"``; ``X-Total-Count``
  says the total), ``HEAD /projects?project_name=`` (200 or 404), ``POST /projects`` (201; 409
  when it exists: a concurrent creator won).
- **Repositories**: ``GET /projects/{project}/repositories`` (names include the project).
- **Artifacts**: ``GET /projects/{project}/repositories/{repository}/artifacts?with_tag=true``
  — each artifact's digest, manifest media type and tags: a repository's listing costs a
  request per 100 artifacts, no manifest request per tag. ``{repository}`` is the name within
  the project, URL-encoded twice (``a/b`` → ``a%252Fb``), as the swagger says. Harbor lists
  an unknown repository as empty (its handler does not look it up):
  ``GET /projects/{project}/repositories/{repository}`` tells (404).
- **Tags**: ``DELETE …/artifacts/{reference}/tags/{tag}`` (Harbor's ``/v2`` deletes by digest
  only: ``400 UNSUPPORTED`` for a tag).
- **Webhook policies**: ``GET|POST /projects/{project}/webhook/policies``,
  ``PUT …/policies/{id}`` (with ``X-Is-Resource-Name: true``: the path holds a name).

Logins are Basic (a user, or a robot account ``robot$project+name`` / ``robot$name``), sent
with every request; anonymous callers see public projects only. Harbor's error bodies are
``{"errors": [{"code", "message"}]}``, the OCI shape: they become :mod:`adapters.oci.errors`
in the session, once.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote, urlencode

from adapters.harbor_config import split_repository
from adapters.oci.auth import Credentials, RegistryAuth
from adapters.oci.errors import NotFound, ProtocolError, RequestRejected
from adapters.oci.session import RegistrySession
from adapters.oci.transport import Request
from adapters.oci.urls import is_digest, next_link

__all__ = [
    "API_PREFIX",
    "PAGE_SIZE",
    "HarborApi",
    "HarborArtifact",
    "HarborProject",
    "WebhookPolicy",
    "WebhookTarget",
]

API_PREFIX = "/api/v2.0"
PAGE_SIZE = 100  # Harbor's maximum page_size
_PAGE_LIMIT = 100_000  # pages followed at most: a Link loop must end
_BODY_LIMIT_BYTES = 16 << 20  # one page of JSON
_JSON = {"Accept": "application/json"}
_BY_NAME = {"X-Is-Resource-Name": "true"}


@dataclass(frozen=True, slots=True)
class HarborProject:
    name: str
    public: bool
    repo_count: int


@dataclass(frozen=True, slots=True)
class HarborArtifact:
    """One artifact as Harbor lists it: its digest, manifest media type and tags."""

    digest: str
    media_type: str
    tags: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class WebhookTarget:
    """Where Harbor sends a project's events (``WebhookTargetObject``, type ``http``)."""

    address: str
    auth_header: str = field(default="", repr=False)  # sent as the Authorization header
    skip_cert_verify: bool = False
    payload_format: str = "Default"  # or CloudEvents

    def wire(self) -> dict[str, Any]:
        return {
            "type": "http",
            "address": self.address,
            "auth_header": self.auth_header,
            "skip_cert_verify": self.skip_cert_verify,
            "payload_format": self.payload_format,
        }


@dataclass(frozen=True, slots=True)
class WebhookPolicy:
    id: int
    name: str
    enabled: bool
    event_types: tuple[str, ...]
    addresses: tuple[str, ...]  # the targets' addresses


class HarborApi:
    """Harbor's API at ``base_url`` (the Harbor URL, without ``/api/v2.0``), sending requests
    through ``session`` (see :meth:`with_login`)."""

    def __init__(self, base_url: str, session: RegistrySession, page_size: int = PAGE_SIZE):
        self.base_url = base_url.rstrip("/")
        self.session = session
        self.page_size = page_size

    @classmethod
    def with_login(
        cls, base_url: str, like: RegistrySession, username: str | None, password: str | None
    ) -> HarborApi:
        """An API on ``like``'s transport and retry policy that sends Basic ``username``
        and ``password`` with every request (none: anonymous)."""
        auth = RegistryAuth(Credentials(username, password))
        auth.basic_seen = username is not None  # Harbor's API sends no challenge: say it first
        session = RegistrySession(like.transport, auth, max_in_flight=8, policy=like.policy)
        return cls(base_url, session)

    # -- requests ----------------------------------------------------------------------------

    def url(self, path: str, query: Mapping[str, str | int] | None = None) -> str:
        return f"{self.base_url}{API_PREFIX}{path}" + (f"?{urlencode(query)}" if query else "")

    async def _call(
        self,
        method: str,
        url: str,
        *,
        expect: Sequence[int],
        body: Mapping[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> tuple[int, Any]:
        """``(status, decoded JSON body or None)`` of one request."""
        sent = dict(_JSON) | dict(headers or {})
        content = None
        if body is not None:
            content = json.dumps(body).encode()
            sent["Content-Type"] = "application/json"
        request = Request(method, url, headers=sent, content=content)
        async with self.session.request(request, expect=expect) as response:
            raw = await response.read(_BODY_LIMIT_BYTES) if method != "HEAD" else b""
            status = response.status
        try:
            return status, (json.loads(raw) if raw.strip() else None)
        except ValueError:
            raise ProtocolError(f"Harbor answered {method} {url} without JSON", url=url) from None

    async def _pages(
        self, url: str, headers: Mapping[str, str] | None = None
    ) -> AsyncIterator[list[Any]]:
        """Each page's JSON array, following ``Link: rel="next"``."""
        seen: set[str] = set()
        next_url: str | None = url
        sent = dict(_JSON) | dict(headers or {})
        while next_url is not None and next_url not in seen and len(seen) < _PAGE_LIMIT:
            seen.add(next_url)
            request = Request("GET", next_url, headers=sent)
            async with self.session.request(request, expect=(200,)) as response:
                raw = await response.read(_BODY_LIMIT_BYTES)
                following = next_link(response.headers.getall("Link", []), response.url)
            try:
                page = json.loads(raw)
            except ValueError:
                page = None
            if not isinstance(page, list):
                raise ProtocolError(f"Harbor answered {next_url} without a JSON array", url=url)
            yield page
            next_url = following

    # -- projects ----------------------------------------------------------------------------

    async def projects(self) -> list[HarborProject]:
        """Every project the login can see (public ones, and those it is a member of)."""
        out: list[HarborProject] = []
        url = self.url(
            "/projects", {"page": 1, "page_size": self.page_size, "with_detail": "false"}
        )
        async for page in self._pages(url):
            for item in page:
                if isinstance(item, dict) and isinstance(item.get("name"), str):
                    meta = item.get("metadata")
                    meta = meta if isinstance(meta, dict) else {}
                    count = item.get("repo_count")
                    out.append(
                        HarborProject(
                            item["name"],
                            meta.get("public") == "true",
                            count if isinstance(count, int) else 0,
                        )
                    )
        return out

    async def project_exists(self, project: str) -> bool:
        url = self.url("/projects", {"project_name": project})
        status, _ = await self._call("HEAD", url, expect=(200, 404))
        return status == 200

    async def create_project(self, request_body: Mapping[str, Any]) -> bool:
        """Create a project (Harbor's ``ProjectReq``); False if it exists already (409)."""
        try:
            await self._call("POST", self.url("/projects"), expect=(201,), body=request_body)
        except RequestRejected as e:
            if e.status == 409:
                return False
            raise
        return True

    # -- repositories, artifacts, tags ---------------------------------------------------------

    async def repositories(self, project: str) -> list[str]:
        """Full names (``project/…``) of the project's repositories; NotFound: no project."""
        query = {"page": 1, "page_size": self.page_size}
        url = self.url(f"/projects/{_segment(project)}/repositories", query)
        names: list[str] = []
        async for page in self._pages(url):
            names.extend(
                item["name"]
                for item in page
                if isinstance(item, dict) and isinstance(item.get("name"), str)
            )
        return names

    async def repository_exists(self, repo: str) -> bool:
        """``GET /projects/{project}/repositories/{name}``: 200 or 404 (needs ``repository``
        ``read``)."""
        status, _ = await self._call("GET", self.url(_repository_path(repo)), expect=(200, 404))
        return status == 200

    async def artifacts(self, repo: str) -> list[HarborArtifact]:
        """The repository's artifacts with their tags (none for an unknown repository:
        Harbor lists it as empty; NotFound: no such project)."""
        query: dict[str, str | int] = {"page": 1, "page_size": self.page_size, "with_tag": "true"}
        url = self.url(f"{_repository_path(repo)}/artifacts", query)
        out: list[HarborArtifact] = []
        async for page in self._pages(url):
            for item in page:
                if not isinstance(item, dict) or not is_digest(str(item.get("digest", ""))):
                    continue
                tags = [t.get("name") for t in item.get("tags") or [] if isinstance(t, dict)]
                media_type = item.get("manifest_media_type")
                out.append(
                    HarborArtifact(
                        item["digest"],
                        media_type if isinstance(media_type, str) else "",
                        tuple(t for t in tags if isinstance(t, str) and t),
                    )
                )
        return out

    async def delete_tag(self, repo: str, reference: str, tag: str) -> None:
        """Remove ``tag`` from the artifact ``reference`` (a digest or the tag itself)."""
        path = f"{_repository_path(repo)}/artifacts/{_segment(reference)}/tags/{_segment(tag)}"
        await self._call("DELETE", self.url(path), expect=(200, 202, 204))

    # -- webhook policies ----------------------------------------------------------------------

    async def webhook_policies(self, project: str) -> list[WebhookPolicy]:
        """The project's webhook policies (``X-Is-Resource-Name: true``: a name in the path)."""
        query = {"page": 1, "page_size": self.page_size}
        url = self.url(f"/projects/{_segment(project)}/webhook/policies", query)
        out: list[WebhookPolicy] = []
        async for page in self._pages(url, _BY_NAME):
            for item in page:
                if not isinstance(item, dict) or not isinstance(item.get("id"), int):
                    continue
                targets = [t for t in item.get("targets") or [] if isinstance(t, dict)]
                out.append(
                    WebhookPolicy(
                        item["id"],
                        str(item.get("name", "")),
                        bool(item.get("enabled")),
                        tuple(str(e) for e in item.get("event_types") or []),
                        tuple(str(t.get("address", "")) for t in targets),
                    )
                )
        return out

    async def put_webhook_policy(
        self, project: str, body: Mapping[str, Any], policy_id: int | None = None
    ) -> None:
        """Create a webhook policy (``policy_id`` None) or replace one."""
        base = f"/projects/{_segment(project)}/webhook/policies"
        if policy_id is None:
            await self._call("POST", self.url(base), expect=(201,), body=body, headers=_BY_NAME)
        else:
            url = self.url(f"{base}/{policy_id}")
            await self._call("PUT", url, expect=(200,), body=body, headers=_BY_NAME)


def _segment(value: str) -> str:
    return quote(value, safe="")


def _repository_path(repo: str) -> str:
    """``/projects/{project}/repositories/{name, encoded twice}``."""
    project, name = split_repository(repo)
    if not project or not name:
        raise NotFound(f"{repo!r} is not a Harbor repository (project/name)")
    return f"/projects/{_segment(project)}/repositories/{quote(quote(name, safe=''), safe='')}"
