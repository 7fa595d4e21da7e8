"""The Docker Hub API (``https://hub.docker.com``), as much of it as replication needs: log in,
list a namespace's repositories, list a repository's tags, delete a tag.

    POST   {hub}/v2/auth/token   {"identifier", "secret"}      -> {"access_token": JWT}
    POST   {hub}/v2/users/login  {"username", "password"}      -> {"token": JWT} (deprecated)
    GET    {hub}/v2/repositories/{namespace}/?page_size=100&page=N
           -> {"count", "next", "previous", "results": [{"name", "namespace", ...}]}
    GET    {hub}/v2/repositories/{namespace}/{repository}/tags/?page_size=100&page=N
           -> {"count", "next", "previous", "results": [{"name", "digest", ...}]}
    DELETE {hub}/v2/repositories/{namespace}/{repository}/tags/{tag}/   -> 204

The secret may be a personal access token (an account with two-factor authentication or SSO
must use one) or an organization access token. The JWT is sent as ``Authorization: Bearer``;
:class:`HubLogin` is the credential provider behind a
:class:`~adapters.oci.credentials.RefreshingCredentials`, so the login is made once, again
before the JWT's ``exp`` and once after a ``401``. Anonymous callers list
public repositories and delete nothing. Requests go through an OCI client session (retries,
``429``/``Retry-After``, pacing); Hub's error bodies (``{"detail"}`` or ``{"message"}``)
become :mod:`adapters.oci.errors` with Hub's words.
"""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlencode, urlsplit

from adapters.oci.auth import Credentials, RegistryAuth, jwt_expiry
from adapters.oci.credentials import IssuedCredentials, RefreshingCredentials
from adapters.oci.errors import (
    Denied,
    NotFound,
    OciError,
    ProtocolError,
    RequestRejected,
    Unauthorized,
)
from adapters.oci.limits import RetryPolicy
from adapters.oci.session import RegistrySession
from adapters.oci.transport import Request, Transport

__all__ = ["PAGE_SIZE", "HubApi", "HubLogin", "HubTag"]

PAGE_SIZE = 100  # the Hub API's largest page
_MAX_PAGES = 10_000
_MAX_BODY_BYTES = 16 << 20
_EXPECTED = (200, 201, 204, 400, 401, 403, 404, 409)


@dataclass(frozen=True, slots=True)
class HubTag:
    """A tag as the Hub API lists it: its manifest's digest (``""`` if Hub did not say)."""

    name: str
    digest: str
    media_type: str


class HubLogin:
    """A :class:`~adapters.oci.credentials.CredentialProvider`: the Hub API's JWT for a Docker
    ID (or organization) and its access token or password, until its ``exp``.

    Asks ``POST /v2/auth/token`` (``{"identifier", "secret"}`` → ``{"access_token"}``, Docker's
    current login) first; where that route is absent (``404``/``405``: an older stand-in of
    Hub) the deprecated ``POST /v2/users/login`` (``{"username", "password"}`` →
    ``{"token"}``), and keeps to the route that answered.
    """

    _ROUTES: tuple[tuple[str, str, str, str], ...] = (
        ("/v2/auth/token", "identifier", "secret", "access_token"),
        ("/v2/users/login", "username", "password", "token"),
    )

    def __init__(self, session: RegistrySession, hub_url: str, username: str, password: str):
        self._session = session
        self._hub_url = hub_url
        self._username = username
        self._password = password
        self._routes: tuple[tuple[str, str, str, str], ...] = self._ROUTES
        self.logins = 0  # logins made (for tests and stats)

    async def __call__(self) -> IssuedCredentials:
        self.logins += 1
        for route in self._routes:
            issued = await self._login(*route)
            if issued is not None:
                self._routes = (route,)
                return issued
        url = self._hub_url + self._ROUTES[-1][0]
        raise ProtocolError("the Docker Hub API has no login route", method="POST", url=url)

    async def _login(
        self, path: str, user_field: str, secret_field: str, token_field: str
    ) -> IssuedCredentials | None:
        """The JWT, or None when the route does not exist."""
        url = self._hub_url + path
        body = json.dumps({user_field: self._username, secret_field: self._password}).encode()
        headers = {"Content-Type": "application/json", "Accept": "application/json"}
        request = Request("POST", url, headers=headers, content=body)
        async with self._session.request(request, expect=(*_EXPECTED, 405)) as response:
            status, data = response.status, await response.read(_MAX_BODY_BYTES)
        if status in (404, 405) and len(self._routes) > 1:
            return None
        doc = _json(data)
        token = doc.get(token_field) if isinstance(doc, dict) else None
        if status == 200 and isinstance(token, str) and token:
            return IssuedCredentials(Credentials(token=token), jwt_expiry(token))
        if status == 200:
            raise ProtocolError("the Docker Hub login answered without a token", url=url)
        error = _error(status, doc, data, "POST", url)
        if status == 401:
            raise Unauthorized(
                f"Docker Hub refused the login of {self._username!r} ({error.message}): check "
                "the Docker ID and use a personal access token (required with two-factor "
                "authentication or SSO)",
                status=401,
                method="POST",
                url=url,
            )
        raise error


class HubApi:
    """A client of the Docker Hub API for one endpoint.

    :param hub_url: the API's base URL (``https://hub.docker.com``).
    :param transport: the connection pool (shared with nothing else that holds secrets).
    :param username: the Docker ID (None: anonymous; then ``password`` is ignored).
    :param clock: what the JWT's expiry is read against (tests inject one).
    """

    def __init__(
        self,
        hub_url: str,
        transport: Transport,
        *,
        username: str | None = None,
        password: str | None = None,
        retries: int = 5,
        backoff_base_seconds: float = 0.5,
        max_retry_after_seconds: float = 300.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.hub_url = hub_url.rstrip("/")
        self._origin = _origin(self.hub_url)
        self._transport = transport
        policy = RetryPolicy(
            retries=retries,
            backoff_base_seconds=backoff_base_seconds,
            max_retry_after_seconds=max_retry_after_seconds,
        )
        self.login: HubLogin | None = None
        self.credentials: RefreshingCredentials | None = None
        if username is not None:
            anonymous = RegistrySession(
                transport, RegistryAuth(Credentials()), max_in_flight=2, policy=policy
            )
            self.login = HubLogin(anonymous, self.hub_url, username, password or "")
            self.credentials = RefreshingCredentials(self.login, clock=clock)
        self.session = RegistrySession(
            transport,
            RegistryAuth(Credentials()),
            max_in_flight=8,
            policy=policy,
            credentials=self.credentials,
        )

    async def close(self) -> None:
        await self._transport.aclose()

    def _url(self, *parts: str, **query: str | int) -> str:
        path = "/".join(quote(p, safe="") for p in parts)
        suffix = "?" + urlencode(query) if query else ""
        return f"{self.hub_url}/v2/{path}/{suffix}"

    async def _call(self, method: str, url: str) -> Any:
        """Hub's JSON answer (``{}`` for an empty one); its errors as ours."""
        request = Request(method, url, headers={"Accept": "application/json"})
        async with self.session.request(request, expect=_EXPECTED) as response:
            status, data = response.status, await response.read(_MAX_BODY_BYTES)
        doc = _json(data) if data else {}
        if status in (200, 201, 204) and isinstance(doc, dict):
            return doc
        if status in (200, 201, 204):
            raise ProtocolError("the Docker Hub API answered without a JSON object", url=url)
        raise _error(status, doc, data, method, url)

    async def _pages(self, url: str) -> AsyncIterator[dict[str, Any]]:
        """Every item of a paged listing, following ``next`` (on the API's own host)."""
        next_url: str | None = url
        for _ in range(_MAX_PAGES):
            if next_url is None:
                return
            doc = await self._call("GET", next_url)
            for item in doc.get("results") or []:
                if isinstance(item, dict):
                    yield item
            following = doc.get("next")
            if not following:
                return
            if not isinstance(following, str) or _origin(following) != self._origin:
                raise ProtocolError(
                    f"the Docker Hub API's next page {str(following)[:200]!r} is not on "
                    f"{self._origin}: not followed",
                    url=next_url,
                )
            next_url = following
        raise ProtocolError(f"more than {_MAX_PAGES} pages", url=url)

    async def list_repositories(self, namespace: str) -> list[str]:
        """``NAMESPACE/NAME`` of every repository the caller may see in ``namespace``.

        :raises NotFound: no such namespace.
        """
        url = self._url("repositories", namespace, page_size=PAGE_SIZE, page=1)
        names: list[str] = []
        async for item in self._pages(url):
            name, owner = item.get("name"), item.get("namespace") or namespace
            if isinstance(name, str) and name and isinstance(owner, str):
                names.append(f"{owner}/{name}")
        return names

    async def list_tags(self, repository: str) -> list[HubTag]:
        """The tags of ``NAMESPACE/NAME`` with their digests (as Hub lists them).

        :raises NotFound: no such repository.
        """
        namespace, _, name = repository.partition("/")
        url = self._url("repositories", namespace, name, "tags", page_size=PAGE_SIZE, page=1)
        out: list[HubTag] = []
        async for item in self._pages(url):
            tag, digest, media_type = item.get("name"), item.get("digest"), item.get("media_type")
            if isinstance(tag, str) and tag:
                out.append(
                    HubTag(
                        tag,
                        digest if isinstance(digest, str) else "",
                        media_type if isinstance(media_type, str) else "",
                    )
                )
        return out

    async def delete_tag(self, repository: str, tag: str) -> None:
        """Delete one tag of ``NAMESPACE/NAME`` (its manifest stays, by digest).

        :raises Unauthorized: anonymous, or the login was refused.
        :raises NotFound: no such tag.
        """
        namespace, _, name = repository.partition("/")
        url = self._url("repositories", namespace, name, "tags", tag)
        if self.login is None:
            raise Unauthorized(
                f"deleting {repository}:{tag} on Docker Hub needs a login: give the endpoint "
                "a Docker ID and an access token with Read, Write & Delete",
                method="DELETE",
                url=url,
            )
        await self._call("DELETE", url)


def _json(data: bytes) -> Any:
    try:
        return json.loads(data)
    except ValueError:
        return None


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}".lower()


def _error(status: int, doc: object, data: bytes, method: str, url: str) -> OciError:
    """Hub's ``{"detail"}`` / ``{"message"}`` answer as one of our errors."""
    message = ""
    if isinstance(doc, dict):
        message = str(doc.get("detail") or doc.get("message") or "")[:500]
    if not message:
        message = data[:200].decode("utf-8", "replace").strip() or f"HTTP {status}"
    kind: type[OciError] = {401: Unauthorized, 403: Denied, 404: NotFound}.get(
        status, RequestRejected
    )
    return kind(f"Docker Hub API: {message}", status=status, method=method, url=url)
