"""Who is asking, and may they? Per-request authentication and authorization for ``/v2/``.

Accepted credentials: a bearer token from our token endpoint (the Docker token flow), or HTTP
Basic for an account. With no or insufficient credentials the answer is ``401`` with a
``WWW-Authenticate: Bearer realm=…,service=…,scope=…`` challenge, so that clients fetch a token
with the scope they need; a Basic account lacking a right gets ``403 DENIED``.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Sequence
from datetime import UTC, datetime

from registry.auth.passwords import hash_password, verify_password
from registry.auth.permissions import Grant, allowed_actions
from registry.auth.scopes import Access, format_scope
from registry.auth.tokens import InvalidToken, TokenClaims
from registry.http.asgi import Request
from registry.http.context import RegistryContext
from registry.meta.accounts import AccountRecord
from registry.oci.errors import RegistryError

__all__ = [
    "authorize",
    "challenge",
    "check_basic",
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


async def check_basic(ctx: RegistryContext, header: str) -> AccountRecord | None:
    """The active account named by Basic credentials whose password matches, else None."""
    creds = parse_basic(header)
    if creds is None:
        return None
    name, password = creds
    account = await ctx.accounts.get(name)
    if account is None or not account.active:
        verify_password(password, _DUMMY_HASH)  # same cost either way: names don't leak by timing
        return None
    if ctx.passwords.check(name, password, account.password_hash):
        return account
    if not verify_password(password, account.password_hash):
        return None
    ctx.passwords.remember(name, password, account.password_hash)
    return account


def verified_token(ctx: RegistryContext, token: str) -> TokenClaims | None:
    """Verify a bearer token, remembering good ones briefly: a client sends the same token on
    every request, and a signature check costs more than the rest of a manifest GET."""
    claims = ctx.verified_tokens.get(token)
    if claims is None:
        try:
            claims = ctx.tokens.verify(token)
        except InvalidToken:
            return None
        ctx.verified_tokens.put(token, claims)
    if claims.expires_at <= datetime.now(UTC):
        ctx.verified_tokens.pop(token)
        return None
    return claims


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
        if claims is None:
            raise challenge(ctx, req, asked, "invalid_token")
        for access in needed:
            if not all(claims.allows(access.type, access.name, a) for a in access.actions):
                raise challenge(ctx, req, asked, "insufficient_scope")
        req.user = claims.subject
        return
    if scheme.startswith("basic ") and ctx.options.basic_on_registry:
        account = await check_basic(ctx, header)
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
