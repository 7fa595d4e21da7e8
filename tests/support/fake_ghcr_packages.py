"""The GHCR fake's packages: what GitHub records about each pushed manifest, and the Packages
REST API over it (GitHub REST API 2022-11-28, "Packages").

A package is ``OWNER/NAME`` in the registry behind the fake; each manifest pushed through the
fake is a *version* (an id, its digest as ``name``, its tags in
``metadata.container.tags``); a tag pushed again moves to the new version. Deleting a version
really deletes the manifest in the registry behind (by digest); deleting the last version of
a package is refused as GitHub does ("delete the package instead"); deleting a package deletes
every version.

Routes (``{kind}`` is ``orgs`` or ``users``; ``{package}`` URL-encoded, ``/`` as ``%2F``)::

    GET    /users/{owner}
    GET    /{kind}/{owner}/packages?package_type=container&per_page&page   (Link paging)
    GET    /{kind}/{owner}/packages/container/{package}
    DELETE /{kind}/{owner}/packages/container/{package}
    GET    /{kind}/{owner}/packages/container/{package}/versions?per_page&page
    GET    /{kind}/{owner}/packages/container/{package}/versions/{id}
    DELETE /{kind}/{owner}/packages/container/{package}/versions/{id}

Classic token scopes are enforced: ``read:packages`` to read, ``delete:packages`` (and
``read:packages``) to delete; a lacking scope is GitHub's ``403`` with ``X-OAuth-Scopes`` and
``X-Accepted-OAuth-Scopes``; no or a bad token is ``401``.
"""

from __future__ import annotations

import itertools
import re
import threading
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote, urlencode

from aiohttp import web

if TYPE_CHECKING:
    from tests.support.fake_ghcr import FakeGhcr

__all__ = ["PAGE_CAP", "PackageBook", "Version", "github_error", "route"]

#: the most items a page holds, whatever ``per_page`` asks (the app's setting)
PAGE_CAP = web.AppKey("page_cap", int)
DOCS = "https://docs.github.com/rest/packages/packages"
_OWNER = re.compile(r"^/users/([^/]+)$")
_PACKAGES = re.compile(r"^/(orgs|users)/([^/]+)/packages$")
_PACKAGE = re.compile(r"^/(orgs|users)/([^/]+)/packages/container/([^/]+)(/versions(?:/(\d+))?)?$")


@dataclass
class Version:
    id: int
    digest: str
    tags: list[str] = field(default_factory=list)


@dataclass
class Package:
    owner: str
    name: str
    id: int
    visibility: str = "private"
    versions: list[Version] = field(default_factory=list)


class PackageBook:
    """Owners, packages and versions (thread-safe: the test thread reads it too)."""

    def __init__(self) -> None:
        self.owners: dict[str, str] = {}  # login -> "Organization" | "User"
        self.packages: dict[str, Package] = {}  # "owner/name" -> package
        self._ids = itertools.count(1000)
        self.lock = threading.Lock()

    def recorded(self, repository: str, digest: str, tag: str | None) -> None:
        """A manifest was stored in ``repository`` (by ``tag``, or by digest if None)."""
        owner, _, name = repository.partition("/")
        with self.lock:
            package = self.packages.get(repository)
            if package is None:
                package = Package(owner, name, next(self._ids))
                self.packages[repository] = package
            version = next((v for v in package.versions if v.digest == digest), None)
            if version is None:
                version = Version(next(self._ids), digest)
                package.versions.append(version)
            if tag is not None:
                for other in package.versions:
                    if tag in other.tags and other is not version:
                        other.tags.remove(tag)
                if tag not in version.tags:
                    version.tags.append(tag)

    def package(self, repository: str) -> Package | None:
        with self.lock:
            return self.packages.get(repository)

    def tags_of(self, repository: str) -> dict[str, list[str]]:
        """``{digest: tags}`` of a package (for tests)."""
        with self.lock:
            package = self.packages.get(repository)
            return {v.digest: list(v.tags) for v in package.versions} if package else {}


def github_error(status: int, message: str, headers: dict[str, str] | None = None) -> web.Response:
    body = {"message": message, "documentation_url": DOCS, "status": str(status)}
    return web.json_response(body, status=status, headers=headers)


def route(fake: FakeGhcr, request: web.Request) -> tuple[str, Callable[..., Awaitable[Any]]]:
    """The route name and handler of a REST API request (``raw_path``: ``%2F`` kept)."""
    path, method = request.raw_path.split("?", 1)[0], request.method
    if m := _OWNER.match(path):
        return f"{method} /users/{{owner}}", lambda r: _owner(fake, r, m.group(1))
    if m := _PACKAGES.match(path):
        return f"{method} /{{kind}}/{{owner}}/packages", lambda r: _list_packages(fake, r, m)
    if m := _PACKAGE.match(path):
        name = "/versions/{id}" if m.group(5) else "/versions" if m.group(4) else ""
        template = f"{method} /{{kind}}/{{owner}}/packages/container/{{package}}{name}"
        return template, lambda r: _package(fake, r, m)
    return f"{method} other", _not_found


async def _not_found(request: web.Request) -> web.Response:
    return github_error(404, "Not Found")


#: the REST API versions the fake serves (``X-GitHub-Api-Version``; none sent: the default)
API_VERSIONS = frozenset({"2022-11-28"})


def _login(fake: FakeGhcr, request: web.Request, need: tuple[str, ...]) -> web.Response | None:
    """None if the request's API version is served and its bearer token has every scope in
    ``need``; else GitHub's 400, 401 or 403."""
    version = request.headers.get("X-GitHub-Api-Version")
    if version is not None and version not in API_VERSIONS:
        return github_error(400, f"API version {version[:40]} is not supported.")
    fake.api_headers.append(
        (request.headers.get("Accept", ""), request.headers.get("X-GitHub-Api-Version", ""))
    )
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() not in ("bearer", "token") or not token:
        return github_error(401, "Requires authentication")
    pat = fake.pats.get(token.strip())
    if pat is None:
        return github_error(401, "Bad credentials")
    if not set(need) <= pat.scopes:
        scopes = {
            "X-OAuth-Scopes": ", ".join(sorted(pat.scopes)),
            "X-Accepted-OAuth-Scopes": ", ".join(need),
        }
        verb = "delete" if "delete:packages" in need else "read"
        return github_error(
            403, f"You need at least {need[-1]} scope to {verb} packages.", headers=scopes
        )
    return None


async def _owner(fake: FakeGhcr, request: web.Request, owner: str) -> web.Response:
    if "Authorization" in request.headers:  # anonymous works too; a bad token does not
        refused = _login(fake, request, ())
        if refused is not None:
            return refused
    kind = fake.book.owners.get(owner)
    if kind is None:
        return github_error(404, "Not Found")
    return web.json_response({"login": owner, "id": abs(hash(owner)) % 10**8, "type": kind})


def _owner_kind_matches(fake: FakeGhcr, kind: str, owner: str) -> bool:
    want = "Organization" if kind == "orgs" else "User"
    return fake.book.owners.get(owner) == want


def _paged(request: web.Request, items: list[Any]) -> web.Response:
    """One page of ``items`` and GitHub's ``Link`` header (``next``, ``last``)."""
    try:
        per_page = min(int(request.query.get("per_page", "30")), 100)
        page = max(int(request.query.get("page", "1")), 1)
    except ValueError:
        return github_error(422, "Invalid request.")
    per_page = min(per_page, request.app[PAGE_CAP])
    pages = max(1, -(-len(items) // per_page))
    chunk = items[(page - 1) * per_page : page * per_page]
    base = f"{request.scheme}://{request.host}{request.raw_path.split('?', 1)[0]}"
    links = []

    def link(n: int, rel: str) -> str:
        query = dict(request.query) | {"page": str(n), "per_page": str(per_page)}
        return f'<{base}?{urlencode(query)}>; rel="{rel}"'

    if page < pages:
        links += [link(page + 1, "next"), link(pages, "last")]
    if page > 1:
        links += [link(1, "first"), link(page - 1, "prev")]
    headers = {"Link": ", ".join(links)} if links else {}
    return web.json_response(chunk, headers=headers)


async def _list_packages(fake: FakeGhcr, request: web.Request, m: re.Match[str]) -> web.Response:
    refused = _login(fake, request, ("read:packages",))
    if refused is not None:
        return refused
    kind, owner = m.group(1), m.group(2)
    if request.query.get("package_type") != "container":
        return github_error(422, "Invalid request. package_type is required.")
    if not _owner_kind_matches(fake, kind, owner):
        return github_error(404, "Not Found")
    with fake.book.lock:
        found = sorted(
            (p for p in fake.book.packages.values() if p.owner == owner), key=lambda p: p.name
        )
        items = [_package_json(fake, p) for p in found]
    return _paged(request, items)


def _package_json(fake: FakeGhcr, p: Package) -> dict[str, Any]:
    kind = fake.book.owners.get(p.owner, "User")
    return {
        "id": p.id,
        "name": p.name,
        "package_type": "container",
        "owner": {"login": p.owner, "type": kind},
        "version_count": len(p.versions),
        "visibility": p.visibility,
        "url": f"{fake.url}/{'orgs' if kind == 'Organization' else 'users'}/{p.owner}/packages/"
        f"container/{p.name.replace('/', '%2F')}",
    }


def _version_json(v: Version) -> dict[str, Any]:
    return {
        "id": v.id,
        "name": v.digest,
        "metadata": {"package_type": "container", "container": {"tags": list(v.tags)}},
    }


async def _package(fake: FakeGhcr, request: web.Request, m: re.Match[str]) -> web.Response:
    deleting = request.method == "DELETE"
    need = ("read:packages", "delete:packages") if deleting else ("read:packages",)
    refused = _login(fake, request, need)
    if refused is not None:
        return refused
    kind, owner, name = m.group(1), m.group(2), unquote(m.group(3))
    package = fake.book.package(f"{owner}/{name}")
    if package is None or not _owner_kind_matches(fake, kind, owner):
        return github_error(404, "Package not found.")
    if m.group(5):
        return await _one_version(fake, request, package, int(m.group(5)))
    if m.group(4):
        with fake.book.lock:
            items = [_version_json(v) for v in reversed(package.versions)]
        return _paged(request, items)
    if deleting:
        await _delete_package(fake, package)
        return web.Response(status=204)
    with fake.book.lock:
        return web.json_response(_package_json(fake, package))


async def _one_version(
    fake: FakeGhcr, request: web.Request, package: Package, version_id: int
) -> web.Response:
    with fake.book.lock:
        version = next((v for v in package.versions if v.id == version_id), None)
        last = len(package.versions) == 1
    if version is None:
        return github_error(404, "Not Found")
    if request.method != "DELETE":
        return web.json_response(_version_json(version))
    if fake.ignore_deletes:  # a fault the test injects: GitHub says done, nothing changes
        return web.Response(status=204)
    if last:
        return github_error(
            400,
            "You cannot delete the last version of a package. You must delete the package instead.",
        )
    await fake.delete_upstream(f"{package.owner}/{package.name}", version.digest)
    with fake.book.lock:
        package.versions.remove(version)
    return web.Response(status=204)


async def _delete_package(fake: FakeGhcr, package: Package) -> None:
    if fake.ignore_deletes:
        return
    repository = f"{package.owner}/{package.name}"
    for version in list(package.versions):
        await fake.delete_upstream(repository, version.digest)
    with fake.book.lock:
        fake.book.packages.pop(repository, None)
