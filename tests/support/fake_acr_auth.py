"""Who may do what on the ACR fake, and the tokens it hands out (no HTTP here).

Follows ACR's published auth (Azure REST API specs, ``containerregistry`` data plane
2021-07-01): logins are the admin user, repository-scoped tokens (a scope map of
``content/read``, ``content/write``, ``content/delete``, ``metadata/read``, ``metadata/write``
per repository pattern) and Microsoft Entra identities (an AAD token exchanged at
``/oauth2/exchange`` for a refresh token, then the username
``00000000-0000-0000-0000-000000000000`` with that refresh token as the password). Access tokens
carry Docker token ``access`` claims (``repository:NAME:pull,push``, ``registry:catalog:*``).

Tokens are JWT-shaped (``header.claims.signature``, unsigned: the fake trusts only what it
recorded) so that clients can read ``exp``. Expiry is read against an injectable clock.
"""

from __future__ import annotations

import base64
import fnmatch
import json
import secrets
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field

__all__ = [
    "ACR_REFRESH_USERNAME",
    "ALL_ACTIONS",
    "SCOPE_MAP_ACTIONS",
    "FakeClock",
    "Grant",
    "Principal",
    "TokenBook",
    "parse_scope",
    "unsigned_jwt",
]

ACR_REFRESH_USERNAME = "00000000-0000-0000-0000-000000000000"
ALL_ACTIONS = frozenset({"pull", "push", "delete", "metadata_read", "metadata_write"})
#: ACR scope-map actions and the Docker token actions they allow
SCOPE_MAP_ACTIONS: Mapping[str, str] = {
    "content/read": "pull",
    "content/write": "push",
    "content/delete": "delete",
    "metadata/read": "metadata_read",
    "metadata/write": "metadata_write",
}


class FakeClock:
    """Wall-clock time plus an offset a test moves forward: ``clock()``, ``advance(s)``."""

    def __init__(self) -> None:
        self._offset_seconds = 0.0

    def __call__(self) -> float:
        return time.time() + self._offset_seconds

    def advance(self, seconds: float) -> None:
        self._offset_seconds += seconds


def unsigned_jwt(claims: Mapping[str, object]) -> str:
    """A JWT-shaped token: readable claims, a random (meaningless) signature."""

    def b64(data: bytes) -> str:
        return base64.urlsafe_b64encode(data).rstrip(b"=").decode()

    header = b64(json.dumps({"alg": "RS256", "typ": "JWT"}).encode())
    return f"{header}.{b64(json.dumps(claims).encode())}.{b64(secrets.token_bytes(32))}"


def parse_scope(scope: str) -> tuple[str, str, frozenset[str]] | None:
    """``repository:a/b:pull,push`` → ``("repository", "a/b", {"pull", "push"})``."""
    kind, _, rest = scope.partition(":")
    name, _, actions = rest.rpartition(":")
    if not kind or not name or not actions:
        return None
    return kind, name, frozenset(a for a in actions.split(",") if a)


@dataclass(frozen=True)
class Principal:
    """A login: what it may do per repository pattern (fnmatch), and the catalog."""

    name: str
    kind: str  # admin | token | aad
    repositories: Mapping[str, frozenset[str]] = field(default_factory=lambda: {"*": ALL_ACTIONS})
    catalog: bool = True

    def allowed(self, repository: str) -> frozenset[str]:
        out: set[str] = set()
        for pattern, actions in self.repositories.items():
            if fnmatch.fnmatchcase(repository, pattern):
                out |= actions
        return frozenset(out)

    @classmethod
    def from_scope_map(
        cls, name: str, scope_map: Mapping[str, Iterable[str]], catalog: bool = False
    ) -> Principal:
        """A repository-scoped token: ``{"team/*": ["content/read", "metadata/read"]}``."""
        repos = {p: frozenset(SCOPE_MAP_ACTIONS[a] for a in acts) for p, acts in scope_map.items()}
        return cls(name, "token", repos, catalog)


@dataclass(frozen=True)
class Grant:
    """An issued token: whose, until when (fake clock), and what it allows."""

    principal: Principal
    expires_at: float
    access: frozenset[tuple[str, str, str]] = frozenset()  # (type, name, action)


class TokenBook:
    """Logins, refresh tokens and access tokens of one fake registry (thread-safe)."""

    def __init__(
        self,
        service: str,
        clock: Callable[[], float],
        refresh_token_seconds: float,
        access_token_seconds: float,
    ) -> None:
        self.service = service
        self.clock = clock
        self.refresh_token_seconds = refresh_token_seconds
        self.access_token_seconds = access_token_seconds
        self._users: dict[str, tuple[str, Principal]] = {}
        self._refresh: dict[str, Grant] = {}
        self._access: dict[str, Grant] = {}
        self._lock = threading.Lock()
        self.refresh_tokens_issued = 0
        self.access_tokens_issued = 0

    def add_user(self, username: str, password: str, principal: Principal) -> None:
        with self._lock:
            self._users[username] = (password, principal)

    def login(self, username: str, password: str) -> Principal | None:
        """The principal of a Basic login: a user, or the refresh-token username."""
        with self._lock:
            if username == ACR_REFRESH_USERNAME:
                grant = self._refresh.get(password)
                if grant is None or grant.expires_at <= self.clock():
                    return None
                return grant.principal
            known = self._users.get(username)
        if known is None or not secrets.compare_digest(known[0], password):
            return None
        return known[1]

    def issue_refresh(self, principal: Principal, tenant: str) -> str:
        now = self.clock()
        exp = now + self.refresh_token_seconds
        claims = {
            "jti": secrets.token_hex(16),
            "sub": principal.name,
            "iat": int(now),
            "exp": int(exp),
            "grant_type": "refresh_token",
            "tenant": tenant,
            "aud": self.service,
            "iss": "Azure Container Registry",
        }
        token = unsigned_jwt(claims)
        with self._lock:
            self._refresh[token] = Grant(principal, exp)
            self.refresh_tokens_issued += 1
        return token

    def issue_access(self, principal: Principal, scopes: Iterable[str]) -> str:
        """An access token for what of ``scopes`` the principal may do (maybe nothing)."""
        granted: set[tuple[str, str, str]] = set()
        for scope in scopes:
            parsed = parse_scope(scope)
            if parsed is None:
                continue
            kind, name, actions = parsed
            if kind == "registry" and name == "catalog" and principal.catalog:
                granted.add((kind, name, "*"))
            elif kind == "repository":
                granted |= {(kind, name, a) for a in actions & principal.allowed(name)}
        now = self.clock()
        exp = now + self.access_token_seconds
        access = [{"type": t, "name": n, "actions": [a]} for t, n, a in sorted(granted)]
        claims = {"jti": secrets.token_hex(16), "sub": principal.name, "iat": int(now)}
        token = unsigned_jwt({**claims, "exp": int(exp), "access": access})
        with self._lock:
            self._access[token] = Grant(principal, exp, frozenset(granted))
            self.access_tokens_issued += 1
        return token

    def check(self, token: str, needs: Iterable[tuple[str, str, str]]) -> str:
        """``ok``, ``invalid`` (unknown, expired or revoked) or ``insufficient_scope``."""
        with self._lock:
            grant = self._access.get(token)
        if grant is None or grant.expires_at <= self.clock():
            return "invalid"
        return "ok" if set(needs) <= grant.access else "insufficient_scope"

    def revoke_refresh_tokens(self) -> None:
        with self._lock:
            self._refresh.clear()

    def revoke_access_tokens(self) -> None:
        with self._lock:
            self._access.clear()
