"""What every fake provider in front of a real registry shares (:class:`RoutedFake`): each
request is classified into a route (``"HEAD /v2/{name}/manifests/{ref}"``) and a handler,
counted by route, and its answer's status counted per route before it goes out; and the
registry side's routes and token scopes (:func:`v2_route`, :func:`v2_needs`), the same for
every provider that speaks the Docker token flow.
"""

from __future__ import annotations

import collections
import re
import threading
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from tests.support.threaded_app import ThreadedApp

__all__ = ["V2", "Need", "RoutedFake", "v2_needs", "v2_route"]

#: ``/v2/<name>/<kind>[/<rest>]``
V2 = re.compile(r"^/v2/(.+)/(blobs/uploads|manifests|blobs|tags|referrers)(/.*)?$")
#: ``(type, name, action)`` a token must grant
Need = tuple[str, str, str]
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

_ROUTE = web.RequestKey("fake_route", str)
_TEMPLATES = {
    "manifests": "/v2/{name}/manifests/{ref}",
    "blobs": "/v2/{name}/blobs/{digest}",
    "tags": "/v2/{name}/tags/list",
    "referrers": "/v2/{name}/referrers/{digest}",
}


def v2_route(method: str, path: str) -> str | None:
    """The counted route of a registry request (``"GET /v2/"``, ``"GET /v2/_catalog"``,
    ``"PUT /v2/{name}/manifests/{ref}"``, ``"PATCH /v2/{name}/blobs/uploads/{id}"``), or None
    when ``path`` is no registry route."""
    if path in ("/v2", "/v2/"):
        return f"{method} /v2/"
    if path == "/v2/_catalog":
        return f"{method} /v2/_catalog"
    m = V2.match(path)
    if m is None:
        return None
    kind = m.group(2)
    if kind == "blobs/uploads":
        session = "{id}" if len(m.group(3) or "") > 1 else ""
        return f"{method} /v2/{{name}}/blobs/uploads/{session}"
    return f"{method} {_TEMPLATES[kind]}"


def v2_needs(request: web.Request) -> tuple[list[Need], str]:
    """What a registry request needs of a token, and the challenge's ``scope``: the catalog;
    pull to read; pull and push to write; delete to delete; and pull on the source of a
    cross-repository mount."""
    if request.path == "/v2/_catalog":
        return [("registry", "catalog", "*")], "registry:catalog:*"
    m = V2.match(request.path)
    assert m is not None
    name, kind, method = m.group(1), m.group(2), request.method
    if method == "DELETE":
        actions = ["delete"]
    elif method in ("GET", "HEAD") and kind != "blobs/uploads":
        actions = ["pull"]
    else:
        actions = ["pull", "push"]
    needs = [("repository", name, a) for a in actions]
    scope = f"repository:{name}:{','.join(actions)}"
    source = request.query.get("from")
    if kind == "blobs/uploads" and source and request.query.get("mount"):
        needs.append(("repository", source, "pull"))
        scope += f" repository:{source}:pull"
    return needs, scope


class RoutedFake(ThreadedApp):
    """A fake whose requests are counted by route. A subclass calls :meth:`_init_counts` in
    its ``__init__`` and implements :meth:`_route`; :meth:`_refusal` may answer a request
    instead of its handler (a throttle, an injected fault)."""

    _lock: threading.Lock
    _counts: collections.Counter[str]
    _answers: collections.Counter[tuple[str, int]]

    def _init_counts(self) -> None:
        self._lock = threading.Lock()
        self._counts = collections.Counter()
        self._answers = collections.Counter()

    # -- what the test reads ---------------------------------------------------------------

    def counts(self) -> dict[str, int]:
        """Requests received so far, by route (``"HEAD /v2/{name}/manifests/{ref}"``)."""
        with self._lock:
            return dict(self._counts)

    def count(self, route: str) -> int:
        with self._lock:
            return self._counts[route]

    def answers(self, route: str) -> dict[int, int]:
        """How often ``route`` was answered with each status: ``{200: 3, 401: 1}``."""
        with self._lock:
            return {status: n for (r, status), n in self._answers.items() if r == route}

    @property
    def total(self) -> int:
        with self._lock:
            return sum(self._counts.values())

    def reset_counts(self) -> None:
        with self._lock:
            self._counts.clear()
            self._answers.clear()

    # -- dispatch --------------------------------------------------------------------------

    def _route(self, request: web.Request) -> tuple[str, Any]:
        """``(route, handler)`` for ``request``."""
        raise NotImplementedError

    async def _refusal(self, route: str, request: web.Request) -> web.StreamResponse | None:
        """An answer instead of the handler's (after the request was counted), or None."""
        return None

    def _configure(self, app: web.Application) -> None:
        app.on_response_prepare.append(self._record)

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        route, handler = self._route(request)
        request[_ROUTE] = route  # for _record, when the answer's headers go out
        with self._lock:
            self._counts[route] += 1
        refused = await self._refusal(route, request)
        return refused if refused is not None else await handler(request)

    async def _record(self, request: web.Request, response: web.StreamResponse) -> None:
        """Count an answer before it is sent (the client may look right after it arrives)."""
        with self._lock:
            self._answers[(request.get(_ROUTE, "other"), response.status)] += 1
