"""``/service/token``: the Docker registry token endpoint (GET, and the OAuth2 POST form).

Credentials are HTTP Basic (GET) or ``grant_type=password`` (POST). Invalid credentials get
``401``; valid or absent ones get a token whose ``access`` holds only what the account may do
of the requested scopes (possibly nothing), as Docker's token spec says. The scopes asked for
are bounded (:func:`registry.auth.scopes.parse_scopes`), so every token is small, whoever asks.
"""

from __future__ import annotations

import base64
from datetime import UTC
from urllib.parse import parse_qs

from registry.auth.permissions import allowed_actions
from registry.auth.scopes import Access, ScopeError, parse_scopes
from registry.http.asgi import Request, Response, json_response
from registry.http.auth import grants_of, login
from registry.http.context import RegistryContext
from registry.meta.accounts import AccountRecord
from registry.oci.errors import RegistryError

__all__ = ["token"]

_PULL_PUSH = frozenset({"pull", "push"})
MAX_FORM_BYTES = 64 * 1024


def _scopes(values: list[str]) -> list[Access]:
    try:
        return parse_scopes(values)
    except ScopeError as e:
        raise RegistryError(
            "UNAUTHORIZED",
            {"scope": " ".join(values)[:200], "reason": str(e)},
            status=400,
            message=f"invalid scope: {e}",
        ) from None


async def _password_form(req: Request) -> tuple[list[Access], str]:
    """The POST form's scopes and its credentials as a Basic header."""
    form = parse_qs((await req.body(MAX_FORM_BYTES)).decode("utf-8", "replace"))
    scopes = _scopes(form.get("scope", []))
    grant_type = (form.get("grant_type") or [""])[0]
    if grant_type != "password":
        raise RegistryError(
            "UNSUPPORTED",
            {"grant_type": grant_type[:50]},
            status=400,
            message="only grant_type=password is supported",
        )
    user, password = (form.get("username") or [""])[0], (form.get("password") or [""])[0]
    return scopes, "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def _granted(account: AccountRecord | None, scopes: list[Access], anonymous_pull: bool) -> list:
    kind = account.kind if account else None
    grants = grants_of(account) if account else []
    granted: list[Access] = []
    for access in scopes:
        # A repository token carries pull and push whenever the account has them, even if only
        # one was asked for: clients that keep one token per session (oras-py) would otherwise
        # fail on their first push after a pull. Delete is granted only when asked for.
        wanted = access.actions | (_PULL_PUSH if access.type == "repository" else frozenset())
        actions = allowed_actions(
            kind, grants, Access(access.type, access.name, wanted), anonymous_pull=anonymous_pull
        )
        granted.append(Access(access.type, access.name, frozenset(actions)))  # maybe empty
    return granted


async def token(ctx: RegistryContext, req: Request) -> Response:
    if req.method == "POST":
        scopes, basic = await _password_form(req)
    else:
        scopes, basic = _scopes(req.query.get("scope", [])), req.headers.get("authorization", "")
    account: AccountRecord | None = None
    if basic[:6].lower() == "basic ":
        account = await login(ctx, basic, req.client_host)
        if account is None:
            raise RegistryError(
                "UNAUTHORIZED",
                {"reason": "invalid username or password"},
                message="authentication failed: invalid username or password",
            )
    granted = _granted(account, scopes, ctx.options.anonymous_pull)
    subject, stamp = (account.name, account.stamp) if account else (None, None)
    issued = ctx.tokens.issue(subject, granted, stamp=stamp)
    body = {
        "token": issued.token,
        "access_token": issued.token,
        "expires_in": issued.expires_in_seconds,
        "issued_at": issued.issued_at.astimezone(UTC).isoformat().replace("+00:00", "Z"),
    }
    return json_response(body, headers={"Cache-Control": "no-store"})
