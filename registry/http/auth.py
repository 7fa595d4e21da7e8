"""Who is asking, and may they? Per-request authentication and authorization for ``/v2/``.

Accepted credentials: a bearer token from our token endpoint (the Docker token flow), or HTTP
Basic for an account. With no or insufficient credentials the answer is ``401`` with a
``WWW-Authenticate: Bearer realm=…,service=…,scope=…`` challenge, so that clients fetch a token
with the scope they need; a Basic account lacking a right gets ``403 DENIED``.

A bearer token names its account and carries the account's stamp; both are checked against the
account store (cached for ``cache_ttl_seconds``) on every request, so a deleted, disabled or
changed account's tokens stop working at once. Passwords are checked off the event loop, under
the throttle of :mod:`registry.auth.logins`.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
from collections.abc import Sequence
from datetime import UTC, datetime

from registry.auth.logins import LoginThrottled
from registry.auth.passwords import VerifiedCache, hash_password, verify_password
from registry.auth.permissions import Grant, allowed_actions
from registry.auth.scopes import Access, format_scope
from registry.auth.tokens import InvalidToken, TokenClaims
from registry.http.asgi import Request
from registry.http.context import RegistryContext
from registry.meta.accounts import AccountRecord
from registry.oci.errors import RegistryError
from registry.oci.reference import MAX_NAME_LENGTH

__all__ = [
    "authorize",
    "challenge",
    "check_basic",
    "current_subject",
    "login",
    "may_pull_somewhere",
    "realm_of",
    "verified_token",
]


_DUMMY_HASH = hash_password("seawall-dummy-password")


def realm_of(ctx: RegistryContext, req: Request) -> str:
    return ctx.options.token_realm or f"{req.base_url}/service/token"


def challenge(
    ctx: RegistryContext, req: Request, needed: Sequence[Access], error: str | None = None
) -> RegistryError:
    parts = [f'realm="{realm_of(ctx, req)}"', f'service="{ctx.options.token_service}"']
    if needed:
        parts.append('scope="' + " ".join(format_scope(a) for a in needed) + '"')
    if error:
        parts.append(f'error="{error}"')
    detail = [
        {"Type": a.type, "Name": a.name, "Action": ",".join(sorted(a.actions))} for a in needed
    ]
    return RegistryError(
        "UNAUTHORIZED",
        detail or None,
        headers={"WWW-Authenticate": "Bearer " + ",".join(parts)},
    )


def parse_basic(header: str) -> tuple[str, str] | None:
    try:
        raw = base64.b64decode(header[6:].strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return None
    user, sep, password = raw.partition(":")
    return (user, password) if sep else None


async def login(
    ctx: RegistryContext, header: str, source: str | None = None
) -> AccountRecord | None:
    """The active account named by Basic credentials ``header`` whose password matches, else
    None. ``source`` is the client's address (throttled on its own as well as the account).

    A success remembered a moment ago is answered at once; anything else is throttled first —
    before the account is even looked up — then checked off the event loop. An unknown account
    costs the same scrypt as a known one: names do not leak by timing.

    :raises LoginThrottled: too many failed logins for the account or from ``source``, or too
        many checks waiting; nothing was checked.
    """
    creds = parse_basic(header)
    if creds is None:
        return None
    name, password = creds
    checks = ctx.passwords
    if checks.knows(name):
        account = await _usable_account(ctx, name)
        if account is not None and checks.check(name, password, account.password_hash):
            return account  # verified a moment ago: no scrypt, no throttle
    keys = [f"account:{name[:MAX_NAME_LENGTH]}", *([f"source:{source}"] if source else [])]
    wait = checks.throttle.reserve(keys)
    if wait > 0:
        raise LoginThrottled(wait, "too many failed logins for this account or from this address")
    account = await _usable_account(ctx, name)
    encoded = account.password_hash if account is not None else _DUMMY_HASH
    if not await _verify_off_loop(checks, keys, password, encoded) or account is None:
        return None
    checks.throttle.succeeded(keys)
    checks.remember(name, password, account.password_hash)
    return account


async def _usable_account(ctx: RegistryContext, name: str) -> AccountRecord | None:
    account = await ctx.accounts.get(name) if 0 < len(name) <= MAX_NAME_LENGTH else None
    return account if account is not None and account.active else None


async def _verify_off_loop(
    checks: VerifiedCache, keys: list[str], password: str, encoded: str
) -> bool:
    """``verify_password`` on the check pool (a failure is already reserved on ``keys``)."""
    future = checks.pool.submit(verify_password, password, encoded)
    if future is None:
        checks.throttle.succeeded(keys)  # nothing was tried: nothing to count
        raise LoginThrottled(1, "too many password checks waiting")
    return await asyncio.wrap_future(future)


async def check_basic(
    ctx: RegistryContext, header: str, source: str | None = None
) -> AccountRecord | None:
    """:func:`login`, with a throttled login refused like a wrong password (never raises)."""
    try:
        return await login(ctx, header, source)
    except LoginThrottled:
        return None


def verified_token(ctx: RegistryContext, token: str) -> TokenClaims | None:
    """The claims of a bearer token we issued that has not expired, else None (the issuer
    keeps verified claims briefly, bounded in bytes). Says nothing about the account: see
    :func:`current_subject`."""
    try:
        claims = ctx.tokens.verify(token)
    except InvalidToken:
        return None
    return claims if claims.expires_at > datetime.now(UTC) else None


async def current_subject(ctx: RegistryContext, claims: TokenClaims) -> bool:
    """Whether the token's account still exists, is active and has the stamp the token was
    issued with (anonymous tokens have no account to check)."""
    if claims.subject is None:
        return True
    account = await ctx.accounts.get(claims.subject)
    return account is not None and account.active and account.stamp == claims.stamp


def grants_of(account: AccountRecord) -> list[Grant]:
    return [Grant(g.repository, g.actions) for g in account.grants]


async def authorize(
    ctx: RegistryContext,
    req: Request,
    needed: Sequence[Access],
    challenge_also: Sequence[Access] = (),
) -> None:
    """Raise unless the request may do everything in ``needed`` (empty: any valid identity).

    ``challenge_also`` are scopes the request may use beyond ``needed`` (a mount's source):
    a challenge names them too, so the client fetches one token for all of them.
    """
    asked = [*needed, *challenge_also]
    header = req.headers.get("authorization", "")
    scheme = header[:7].lower()
    if scheme == "bearer ":
        claims = verified_token(ctx, header[7:].strip())
        if claims is None or not await current_subject(ctx, claims):
            raise challenge(ctx, req, asked, "invalid_token")
        for access in needed:
            if not all(claims.allows(access.type, access.name, a) for a in access.actions):
                raise challenge(ctx, req, asked, "insufficient_scope")
        req.user = claims.subject
        return
    if scheme.startswith("basic ") and ctx.options.basic_on_registry:
        account = await login(ctx, header, req.client_host)
        if account is None:
            raise challenge(ctx, req, asked, "invalid_credentials")
        grants = grants_of(account)
        for access in needed:
            got = allowed_actions(
                account.kind, grants, access, anonymous_pull=ctx.options.anonymous_pull
            )
            if not access.actions <= got:
                raise RegistryError(
                    "DENIED",
                    {"account": account.name, "needs": format_scope(access)},
                )
        req.user = account.name
        return
    anonymous_ok = ctx.options.anonymous_pull and all(
        access.actions
        <= allowed_actions(None, [], access, anonymous_pull=ctx.options.anonymous_pull)
        for access in needed
    )
    if not anonymous_ok:
        raise challenge(ctx, req, asked)


async def may_pull_somewhere(
    ctx: RegistryContext, req: Request, repositories: Sequence[str]
) -> bool:
    """Whether the request's identity may pull from at least one of ``repositories``."""
    account = await ctx.accounts.get(req.user) if req.user else None
    kind = account.kind if account else None
    grants = grants_of(account) if account else []
    return any(
        "pull"
        in allowed_actions(
            kind,
            grants,
            Access("repository", repo, frozenset({"pull"})),
            anonymous_pull=ctx.options.anonymous_pull,
        )
        for repo in repositories
    )
