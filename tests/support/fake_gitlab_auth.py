"""Who may do what on the GitLab fake, and the registry JWTs it issues (no HTTP here).

Follows GitLab's published container registry auth: the registry answers ``401`` with
``Bearer realm="<gitlab>/jwt/auth",service="container_registry"``; ``GET /jwt/auth`` with
Basic ``<username>:<token>`` (a personal/project/group access token: any username; a deploy
token: its own ``gitlab+deploy-token-N`` username) and ``scope=repository:<path>:<actions>``
answers ``{"token": <JWT>}``, whose ``access`` claim grants what the token's scopes allow on
paths under an existing project: ``read_registry`` pull, ``write_registry`` push and delete,
``api`` all three. ``registry:catalog:*`` is for administrators: never granted here. JWTs
expire ``jwt_seconds`` after issue on an injectable clock; access tokens at the end of their
``expires_at`` day (UTC).
"""

from __future__ import annotations

import secrets
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta

from tests.support.fake_acr_auth import parse_scope, unsigned_jwt

__all__ = ["JwtBook", "TokenRecord", "registry_actions"]

#: a token scope -> the registry actions it allows
_SCOPE_ACTIONS = {
    "read_registry": frozenset({"pull"}),
    "write_registry": frozenset({"push", "delete"}),
    "api": frozenset({"pull", "push", "delete"}),
}


def registry_actions(scopes: Iterable[str]) -> frozenset[str]:
    out: set[str] = set()
    for scope in scopes:
        out |= _SCOPE_ACTIONS.get(scope, frozenset())
    return frozenset(out)


@dataclass
class TokenRecord:
    """An access token or deploy token the fake GitLab knows."""

    id: int
    name: str
    scopes: frozenset[str]
    expires_at: date | None = None
    revoked: bool = False
    deploy_username: str = ""  # a deploy token logs in with exactly this username
    created_at: str = "2026-01-01T00:00:00.000Z"

    def expired(self, now_seconds: float) -> bool:
        if self.expires_at is None:
            return False
        end = datetime.combine(self.expires_at, time(), UTC) + timedelta(days=1)
        return now_seconds >= end.timestamp()


@dataclass(frozen=True)
class _Jwt:
    subject: str
    expires_at: float
    access: frozenset[tuple[str, str, str]] = field(default_factory=frozenset)


class JwtBook:
    """Tokens and issued JWTs of one fake GitLab (thread-safe).

    :param owner_of: the project that owns a registry path (None: no project).
    """

    def __init__(
        self,
        clock: Callable[[], float],
        owner_of: Callable[[str], str | None],
        jwt_seconds: float,
    ) -> None:
        self.clock = clock
        self.owner_of = owner_of
        self.jwt_seconds = jwt_seconds
        self.tokens: dict[str, TokenRecord] = {}
        self._jwts: dict[str, _Jwt] = {}
        self._lock = threading.Lock()
        self.jwts_issued = 0

    def add(self, secret: str, record: TokenRecord) -> None:
        with self._lock:
            self.tokens[secret] = record

    def lookup(self, secret: str) -> tuple[TokenRecord | None, str]:
        """The token's record and ``""``, or None and why not (``unknown``, ``expired``,
        ``revoked``)."""
        with self._lock:
            record = self.tokens.get(secret)
        if record is None:
            return None, "unknown"
        if record.revoked:
            return None, "revoked"
        if record.expired(self.clock()):
            return None, "expired"
        return record, ""

    def login(self, username: str, secret: str) -> TokenRecord | None:
        """A Basic login: a live token (a deploy token only with its own username)."""
        record, _ = self.lookup(secret)
        if record is None:
            return None
        if record.deploy_username and record.deploy_username != username:
            return None
        return record

    def issue(self, record: TokenRecord | None, scopes: Iterable[str]) -> str:
        """A JWT granting what of ``scopes`` the token may do (maybe nothing)."""
        allowed = registry_actions(record.scopes) if record is not None else frozenset()
        granted: set[tuple[str, str, str]] = set()
        for scope in scopes:
            parsed = parse_scope(scope)
            if parsed is None or parsed[0] != "repository":
                continue  # registry:catalog:* is for administrators
            _, name, actions = parsed
            if self.owner_of(name) is None:
                continue  # GitLab grants nothing outside an existing project
            granted |= {("repository", name, a) for a in actions & allowed}
        now = self.clock()
        subject = record.name if record is not None else "anonymous"
        access = [{"type": t, "name": n, "actions": [a]} for t, n, a in sorted(granted)]
        claims = {
            "iss": "gitlab-issuer",
            "aud": "container_registry",
            "sub": subject,
            "iat": int(now),
            "nbf": int(now) - 5,
            "exp": int(now + self.jwt_seconds),
            "jti": secrets.token_hex(16),
            "access": access,
        }
        token = unsigned_jwt(claims)
        with self._lock:
            self._jwts[token] = _Jwt(subject, now + self.jwt_seconds, frozenset(granted))
            self.jwts_issued += 1
        return token

    def check(self, token: str, needs: Iterable[tuple[str, str, str]]) -> str:
        """``ok``, ``invalid`` (unknown, expired or revoked) or ``insufficient_scope``."""
        with self._lock:
            jwt = self._jwts.get(token)
        if jwt is None or jwt.expires_at <= self.clock():
            return "invalid"
        return "ok" if set(needs) <= jwt.access else "insufficient_scope"

    def revoke_jwts(self) -> None:
        with self._lock:
            self._jwts.clear()
