"""Registry authentication: none, HTTP Basic, a static bearer token, or the Docker token flow.

:meth:`RegistryAuth.auth_flow` is a generator in httpx's ``Auth.auth_flow`` shape: it yields the
requests to send (the original, token requests, the retry) and receives their responses, so it
does no I/O of its own and the session drives it through the same transport, limits and retries
as everything else.

The token flow (https://distribution.github.io/distribution/spec/auth/token/)::

    GET /v2/a/manifests/x               -> 401 WWW-Authenticate: Bearer realm=R,service=S,scope=Q
    GET R?service=S&scope=Q (Basic creds) -> 200 {"token": T, "expires_in": 300}
    GET /v2/a/manifests/x  Bearer T     -> 200

Tokens are cached per request scope (``repository:a:pull``) until shortly before they expire.
Once a registry has challenged with Bearer, tokens for new scopes are fetched before the first
request (no 401 round trip); once it has challenged with Basic, Basic is sent up front.
"""

from __future__ import annotations

import base64
import json
import re
import time
from collections.abc import Callable, Generator
from dataclasses import dataclass, field
from urllib.parse import quote, urlencode

from adapters.oci.errors import ProtocolError, error_from_response
from adapters.oci.limits import parse_retry_after_seconds
from adapters.oci.transport import Request, Response

__all__ = ["Challenge", "Credentials", "RegistryAuth", "jwt_expiry", "parse_challenges"]

_DEFAULT_TOKEN_SECONDS = 60.0  # the token spec's default when expires_in is absent
_MAX_CACHED_TOKENS = 4096


@dataclass(frozen=True, slots=True)
class Credentials:
    """Who we are: a username/password pair, a static bearer token, or nobody."""

    username: str | None = None
    password: str | None = field(default=None, repr=False)
    token: str | None = field(default=None, repr=False)

    def basic_header(self) -> str | None:
        if self.username is None:
            return None
        raw = f"{self.username}:{self.password or ''}".encode()
        return "Basic " + base64.b64encode(raw).decode("ascii")


@dataclass(frozen=True, slots=True)
class Challenge:
    """One ``WWW-Authenticate`` challenge: scheme (lower case) and its parameters."""

    scheme: str
    params: dict[str, str]

    @property
    def scopes(self) -> list[str]:
        return self.params.get("scope", "").split()


_TOKEN = r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+"
_PARAM_RE = re.compile(rf'\s*({_TOKEN})\s*=\s*(?:"((?:[^"\\]|\\.)*)"|({_TOKEN}))\s*(?:,|$)')
_SCHEME_RE = re.compile(rf"\s*({_TOKEN})(?:\s+|$)")


def parse_challenges(values: list[str]) -> list[Challenge]:
    """Parse ``WWW-Authenticate`` header values (each may hold several challenges)."""
    out: list[Challenge] = []
    for value in values:
        pos = 0
        while pos < len(value):
            m = _SCHEME_RE.match(value, pos)
            if not m:
                break
            scheme, pos = m.group(1).lower(), m.end()
            params: dict[str, str] = {}
            while pm := _PARAM_RE.match(value, pos):
                quoted, bare = pm.group(2), pm.group(3)
                raw = re.sub(r"\\(.)", r"\1", quoted) if quoted is not None else bare
                params[pm.group(1).lower()] = raw
                pos = pm.end()
            out.append(Challenge(scheme, params))
            while pos < len(value) and value[pos] in ", ":
                pos += 1
    return out


@dataclass(slots=True)
class _Token:
    value: str
    expires_at: float


class RegistryAuth:
    """Answers challenges for one registry; safe to share between concurrent requests."""

    def __init__(
        self,
        credentials: Credentials,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        """``clock`` times the token cache; ``wall_clock`` is what a JWT's ``exp`` is read
        against (tests inject one clock as both)."""
        self.credentials = credentials
        self._clock = clock
        self._wall_clock = wall_clock
        self._tokens: dict[str, _Token] = {}
        self.bearer: Challenge | None = None  # the last Bearer challenge seen
        self.basic_seen = False

    def use(self, credentials: Credentials) -> None:
        """Log in with ``credentials`` from now on (a refreshed set): tokens fetched with
        other credentials are forgotten."""
        if credentials != self.credentials:
            self.credentials = credentials
            self._tokens.clear()

    @property
    def scheme(self) -> str | None:
        if self.bearer is not None:
            return "bearer"
        return "basic" if self.basic_seen else None

    def auth_flow(self, request: Request) -> Generator[Request, Response, None]:
        """Yield ``request`` with credentials; on a 401, answer the challenge and yield it again."""
        sent = self._preemptive_header(request.scope)
        if sent is None and self.bearer is not None and self._can_fetch_token:
            sent = yield from self._fetch_token(self.bearer, request.scope, proactive=True)
        response = yield request.with_header("Authorization", sent)
        if response.status != 401:
            return
        challenges = parse_challenges(response.headers.getall("WWW-Authenticate", []))
        bearer = next((c for c in challenges if c.scheme == "bearer"), None)
        basic = next((c for c in challenges if c.scheme == "basic"), None)
        header: str | None = None
        if bearer is not None and "realm" in bearer.params and self._can_fetch_token:
            self.bearer = bearer
            self._tokens.pop(request.scope, None)
            if not request.replayable:
                return  # a streamed body cannot be sent twice: the caller resumes (new token)
            header = yield from self._fetch_token(bearer, request.scope)
        elif basic is not None and self.credentials.username is not None:
            self.basic_seen = True
            header = self.credentials.basic_header()
        if header is None or header == sent or not request.replayable:
            return  # nothing new to offer (or no body to offer it with): the 401 stands
        yield request.with_header("Authorization", header)

    @property
    def _can_fetch_token(self) -> bool:
        # A static token is all we have, unless a username/password was given as well.
        return self.credentials.token is None or self.credentials.username is not None

    def _preemptive_header(self, scope: str) -> str | None:
        cached = self._tokens.get(scope)
        if cached is not None and cached.expires_at > self._clock():
            return "Bearer " + cached.value
        if self.credentials.token is not None:
            return "Bearer " + self.credentials.token
        if self.basic_seen:
            return self.credentials.basic_header()
        return None

    def _fetch_token(
        self, challenge: Challenge, scope: str, *, proactive: bool = False
    ) -> Generator[Request, Response, str]:
        """Ask the realm for a token covering ``scope`` and (answering a 401) the challenge's
        scopes; cache it under ``scope``. A proactive fetch reuses an earlier challenge's realm
        and service, never its scopes (they were for another request)."""
        asked = [] if proactive else challenge.scopes
        scopes = list(dict.fromkeys([*asked, *scope.split()]))
        params: list[tuple[str, str]] = []
        if "service" in challenge.params:
            params.append(("service", challenge.params["service"]))
        params += [("scope", s) for s in scopes]
        realm = challenge.params["realm"]
        url = realm + ("&" if "?" in realm else "?") + urlencode(params, quote_via=quote)
        token_request = Request("GET", url, buffered=True, scope="")
        basic = self.credentials.basic_header()
        if basic is not None:
            token_request = token_request.with_header("Authorization", basic)
        response = yield token_request
        if response.status in (404, 405) and self.credentials.username is not None:
            response = yield self._oauth2_request(realm, challenge, scopes)
        body = response.body or b""
        if response.status != 200:
            raise error_from_response(
                response.status,
                response.headers,
                body,
                method=token_request.method,
                url=realm,
                retry_after_seconds=parse_retry_after_seconds(response.headers.get("Retry-After")),
            )
        token = self._remember(scope, body, realm)
        return "Bearer " + token

    def _oauth2_request(self, realm: str, challenge: Challenge, scopes: list[str]) -> Request:
        """The OAuth2 ``grant_type=password`` form, for realms that refuse the GET flow."""
        form: list[tuple[str, str]] = [
            ("grant_type", "password"),
            ("client_id", "seawall"),
            ("username", self.credentials.username or ""),
            ("password", self.credentials.password or ""),
        ]
        if "service" in challenge.params:
            form.append(("service", challenge.params["service"]))
        if scopes:
            form.append(("scope", " ".join(scopes)))
        return Request(
            "POST",
            realm,
            headers={"Content-Type": "application/x-www-form-urlencoded"},
            content=urlencode(form).encode(),
            buffered=True,
        )

    def _remember(self, scope: str, body: bytes, realm: str) -> str:
        try:
            doc = json.loads(body)
            token = doc.get("token") or doc.get("access_token")
            said = doc.get("expires_in")
            lifetime = (
                float(said)
                if said
                else _jwt_lifetime(token, self._wall_clock()) or _DEFAULT_TOKEN_SECONDS
            )
        except (ValueError, AttributeError, TypeError):
            token, lifetime = None, 0.0
        if not isinstance(token, str) or not token:
            raise ProtocolError("token endpoint answered without a token", url=realm)
        now = self._clock()
        if len(self._tokens) >= _MAX_CACHED_TOKENS:
            self._tokens = {k: t for k, t in self._tokens.items() if t.expires_at > now}
            if len(self._tokens) >= _MAX_CACHED_TOKENS:
                self._tokens.clear()
        # Renew a little early: a token that expires in flight costs a 401 round trip.
        self._tokens[scope] = _Token(token, now + max(lifetime * 0.9, lifetime - 30.0))
        return token


def jwt_expiry(token: object) -> float | None:
    """The ``exp`` claim (epoch seconds) of a JWT, unverified: only to know when to ask for a
    new one. None when the token is no JWT or has no numeric ``exp``."""
    if not isinstance(token, str) or token.count(".") != 2 or len(token) > 16384:
        return None
    payload = token.split(".")[1]
    try:
        exp = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))["exp"]
    except (ValueError, KeyError, TypeError):
        return None
    return float(exp) if isinstance(exp, int | float) and not isinstance(exp, bool) else None


def _jwt_lifetime(token: object, now: float) -> float | None:
    """Seconds until a JWT's ``exp`` (ACR's token answers carry no ``expires_in``), at most a
    day; None when it says nothing or is past."""
    exp = jwt_expiry(token)
    if exp is None:
        return None
    remaining = exp - now
    return min(remaining, 86400.0) if remaining > 0 else None
