"""Registry bearer tokens: short-lived JWTs (HS256) carrying Docker's ``access`` claim.

A token as issued (claims)::

    {"iss": "seawall", "sub": "alice", "aud": "seawall",        # sub absent for anonymous
     "stamp": "9f2c...",                                         # the account's, with sub
     "iat": 1700000000, "nbf": 1700000000, "exp": 1700000300, "jti": "<random>",
     "access": [{"type": "repository", "name": "team/app", "actions": ["pull", "push"]}]}

The issuer puts in the token only what it is given: decide the actions first with
:func:`registry.auth.permissions.allowed_actions`. ``stamp`` is the account's
(:attr:`registry.meta.accounts.AccountRecord.stamp`); the registry compares it with the account
row on every request, so a deleted or changed account's tokens stop working at once. Every
worker process must use the same key, hence :func:`load_or_create_key`, which is safe when
several workers start at once.

No token longer than :data:`MAX_TOKEN_BYTES` is ever issued (scopes are bounded, see
:func:`registry.auth.scopes.parse_scopes`), so a longer one is refused before its signature is
checked, and verified claims are kept in a cache bounded in bytes
(:class:`registry.auth.token_cache.VerifiedTokens`).
"""

from __future__ import annotations

import contextlib
import os
import secrets
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

import jwt

from registry.auth.scopes import Access
from registry.auth.token_cache import VerifiedTokens

__all__ = [
    "MAX_TOKEN_BYTES",
    "MIN_KEY_BYTES",
    "InvalidToken",
    "IssuedToken",
    "TokenClaims",
    "TokenIssuer",
    "load_or_create_key",
]

MIN_KEY_BYTES = 32
#: Far above the largest token the endpoint can issue (32 scopes, 4 KiB of scope text: ~9 KiB).
MAX_TOKEN_BYTES = 16 * 1024
LEEWAY_SECONDS = 5
ALGORITHM = "HS256"

Reason = Literal[
    "expired", "not yet valid", "bad signature", "wrong audience", "wrong issuer", "malformed"
]


class InvalidToken(Exception):
    """A bearer token was refused. ``reason`` is one of :data:`Reason`; the message says what to do.

    Answer it with a ``401`` and a fresh ``WWW-Authenticate: Bearer ...`` challenge.
    """

    def __init__(self, reason: Reason, detail: str = "") -> None:
        self.reason: Reason = reason
        message = f"bearer token rejected ({reason})"
        if detail:
            message += f": {detail}"
        super().__init__(message + "; get a new token from the token endpoint")


@dataclass(frozen=True, slots=True)
class IssuedToken:
    """A token just issued, and what the token endpoint tells the client about it."""

    token: str = field(repr=False)
    expires_in_seconds: int
    issued_at: datetime  # UTC, whole seconds (the token's iat)

    def as_response(self) -> dict[str, str | int]:
        """The token endpoint's JSON body (both ``token`` and ``access_token``, as clients vary)."""
        return {
            "token": self.token,
            "access_token": self.token,
            "expires_in": self.expires_in_seconds,
            "issued_at": self.issued_at.isoformat().replace("+00:00", "Z"),
        }


@dataclass(frozen=True, slots=True)
class TokenClaims:
    """What a verified token says: who (``None`` = anonymous), may do what, until when (UTC),
    and the stamp the subject's account had when the token was issued."""

    subject: str | None
    access: tuple[Access, ...]
    expires_at: datetime
    stamp: str | None = None

    def mentions(self, type: str, name: str) -> bool:
        """Whether the token was issued for a scope on ``type:name`` (granted or not)."""
        return any(a.type == type and a.name == name for a in self.access)

    def allows(self, type: str, name: str, action: str) -> bool:
        """Whether the token grants ``action`` on ``type:name`` (``*`` in the token means all)."""
        return any(
            a.type == type and a.name == name and (action in a.actions or "*" in a.actions)
            for a in self.access
        )


class TokenIssuer:
    """Issues and verifies this registry's tokens with one shared HMAC key.

    :param key: at least 32 bytes, the same in every worker (see :func:`load_or_create_key`).
    :param issuer: the ``iss`` claim, checked on verify.
    :param service: the ``aud`` claim; must equal the ``service`` of the ``WWW-Authenticate``
        challenge and of the token request.
    :param ttl_seconds: lifetime of an issued token (the ``expires_in`` told to clients).
    :raises ValueError: for a key shorter than 32 bytes or a non-positive TTL.
    """

    def __init__(
        self,
        key: bytes,
        *,
        issuer: str = "seawall",
        service: str = "seawall",
        ttl_seconds: int = 300,
        cache: VerifiedTokens | None = None,
    ) -> None:
        if len(key) < MIN_KEY_BYTES:
            raise ValueError(
                f"the token signing key is {len(key)} bytes; it must be at least {MIN_KEY_BYTES} "
                "random bytes (unset the configured key to have one generated, or use e.g. "
                "`openssl rand -base64 48`)"
            )
        if ttl_seconds <= 0:
            raise ValueError(f"ttl_seconds must be positive, got {ttl_seconds}")
        self._key = key
        self.issuer = issuer
        self.service = service
        self.ttl_seconds = ttl_seconds
        self._verified = cache or VerifiedTokens()

    def __repr__(self) -> str:
        return (
            f"TokenIssuer(issuer={self.issuer!r}, service={self.service!r}, "
            f"ttl_seconds={self.ttl_seconds})"
        )

    def issue(
        self, subject: str | None, access: Sequence[Access], *, stamp: str | None = None
    ) -> IssuedToken:
        """A token for ``subject`` (``None``: anonymous) granting exactly ``access``; ``stamp``
        is the subject account's (checked by the registry on every request).

        Entries with no actions stay in the token (the Docker token spec's way of saying "asked
        for, not granted"), so the registry can tell a refused scope from one never asked for.
        Never raises for valid inputs.
        """
        issued_at = datetime.now(UTC).replace(microsecond=0)
        iat = int(issued_at.timestamp())
        claims: dict[str, Any] = {
            "iss": self.issuer,
            "aud": self.service,
            "iat": iat,
            "nbf": iat,
            "exp": iat + self.ttl_seconds,
            "jti": secrets.token_urlsafe(16),
            "access": [
                {"type": a.type, "name": a.name, "actions": sorted(a.actions)} for a in access
            ],
        }
        if subject is not None:
            claims["sub"] = subject
        if stamp is not None:
            claims["stamp"] = stamp
        token = jwt.encode(claims, self._key, algorithm=ALGORITHM)
        return IssuedToken(token, self.ttl_seconds, issued_at)

    def verify(self, token: str) -> TokenClaims:
        """The claims of ``token`` if this issuer made it and it is still valid (5 s leeway).

        Claims verified in the last 30 s come from a cache bounded in bytes; a token longer than
        :data:`MAX_TOKEN_BYTES` is refused unread (this issuer never made it).

        :raises InvalidToken: with reason expired, not yet valid, bad signature (including a
            different key or algorithm), wrong audience, wrong issuer, or malformed.
        """
        if len(token) > MAX_TOKEN_BYTES:
            raise InvalidToken(
                "malformed", f"longer than {MAX_TOKEN_BYTES} bytes, which no token of ours is"
            )
        claims = self._verified.get(token)
        if claims is None:
            claims = self._decode(token)
            self._verified.put(token, claims)
        elif claims.expires_at.timestamp() + LEEWAY_SECONDS <= datetime.now(UTC).timestamp():
            raise InvalidToken("expired")
        return claims

    def _decode(self, token: str) -> TokenClaims:
        try:
            claims = jwt.decode(
                token,
                self._key,
                algorithms=[ALGORITHM],
                audience=self.service,
                issuer=self.issuer,
                leeway=LEEWAY_SECONDS,
                options={"require": ["exp", "iat", "iss", "aud"], "strict_aud": True},
            )
        except jwt.ExpiredSignatureError:
            raise InvalidToken("expired") from None
        except jwt.ImmatureSignatureError:
            raise InvalidToken("not yet valid") from None
        except (jwt.InvalidSignatureError, jwt.InvalidAlgorithmError):
            raise InvalidToken("bad signature", "not signed with this registry's key") from None
        except jwt.InvalidAudienceError:
            raise InvalidToken("wrong audience", f"not issued for {self.service!r}") from None
        except jwt.InvalidIssuerError:
            raise InvalidToken("wrong issuer", f"not issued by {self.issuer!r}") from None
        except jwt.InvalidTokenError as exc:
            raise InvalidToken("malformed", str(exc)) from None
        return _claims_of(claims)


def _claims_of(claims: dict[str, Any]) -> TokenClaims:
    subject, stamp = claims.get("sub"), claims.get("stamp")
    raw_access = claims.get("access", [])
    if subject is not None and not isinstance(subject, str):
        raise InvalidToken("malformed", "sub is not a string")
    if stamp is not None and not isinstance(stamp, str):
        raise InvalidToken("malformed", "stamp is not a string")
    if not isinstance(raw_access, list):
        raise InvalidToken("malformed", "access is not a list")
    access = []
    for item in raw_access:
        if not (
            isinstance(item, dict)
            and isinstance(item.get("type"), str)
            and isinstance(item.get("name"), str)
            and isinstance(item.get("actions"), list)
            and all(isinstance(a, str) for a in item["actions"])
        ):
            raise InvalidToken("malformed", "access entries need type, name and actions")
        access.append(Access(item["type"], item["name"], frozenset(item["actions"])))
    try:
        expires_at = datetime.fromtimestamp(claims["exp"], UTC)
    except (TypeError, ValueError, OverflowError, OSError):
        raise InvalidToken("malformed", "exp is not a timestamp") from None
    return TokenClaims(subject, tuple(access), expires_at, stamp)


def load_or_create_key(path: Path) -> bytes:
    """The token signing key stored at ``path``, creating it (mode 0600) if it does not exist.

    The file holds printable text, so it can be copied between hosts or written by hand (e.g.
    ``openssl rand -base64 48 > token.key``); surrounding whitespace is ignored and the remaining
    bytes are the key. Creation is atomic and never overwrites: when several workers start at
    once, all of them end up with the one key that was published first. Missing parent
    directories are created.

    :raises ValueError: when the file holds fewer than 32 bytes.
    :raises OSError: when the file cannot be read or created.
    """
    try:
        return _read_key(path)
    except FileNotFoundError:
        pass
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="ascii") as f:  # mkstemp creates it with mode 0600
            f.write(secrets.token_urlsafe(48) + "\n")
            f.flush()
            os.fsync(f.fileno())
        with contextlib.suppress(FileExistsError):  # another process published first: use theirs
            os.link(tmp_name, path)
    finally:
        os.unlink(tmp_name)
    return _read_key(path)


def _read_key(path: Path) -> bytes:
    key = path.read_bytes().strip()
    if len(key) < MIN_KEY_BYTES:
        raise ValueError(
            f"token key file {path} holds {len(key)} bytes; a key needs at least {MIN_KEY_BYTES}. "
            "Delete the file to have a new key generated (all issued tokens become invalid), or "
            f"write a longer one, e.g. `openssl rand -base64 48 > {path}`"
        )
    return key
