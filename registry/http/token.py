"""``/service/token``: the Docker registry token endpoint (GET, and the OAuth2 POST form).

Credentials are HTTP Basic (GET) or ``grant_type=password`` (POST). Invalid credentials get
``401``; valid or absent ones get a token whose ``access`` holds only what the account may do
of the requested scopes (possibly nothing), as Docker's token spec says.
"""

from __future__ import annotations

from datetime import UTC
from urllib.parse import parse_qs

from registry.auth.permissions import allowed_actions
from registry.auth.scopes import Access, ScopeError, parse_scope
from registry.http.asgi import Request, Response, json_response
from registry.http.auth import check_basic, grants_of
from registry.http.context import RegistryContext
from registry.meta.accounts import AccountRecord
from registry.oci.errors import RegistryError

__all__ = ["token"]

_PULL_PUSH = frozenset({"pull", "push"})


def _scopes(values: list[str]) -> list[Access]:
    out: list[Access] = []
    for value in values:
        try:
            out += parse_scope(value)
        except ScopeError as e:
            raise RegistryError(
                "UNAUTHORIZED", {"scope": value[:200], "reason": str(e)}, status=400
            ) from None
    return out


async def token(ctx: RegistryContext, req: Request) -> Response:
    account: AccountRecord | None = None
    anonymous = True
    if req.method == "POST":
        form = parse_qs((await req.body(64 * 1024)).decode("utf-8", "replace"))
        scopes = _scopes(form.get("scope", []))
        grant_type = (form.get("grant_type") or [""])[0]
        if grant_type != "password":
            raise RegistryError(
                "UNSUPPORTED",
                {"grant_type": grant_type[:50]},
                status=400,
                message="only grant_type=password is supported",
            )
        import base64

        user, password = (form.get("username") or [""])[0], (form.get("password") or [""])[0]
        basic = "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()
        account, anonymous = await check_basic(ctx, basic), False
    else:
        scopes = _scopes(req.query.get("scope", []))
        header = req.headers.get("authorization", "")
        if header[:6].lower() == "basic ":
            account, anonymous = await check_basic(ctx, header), False
    if not anonymous and account is None:
        raise RegistryError(
            "UNAUTHORIZED",
            {"reason": "invalid username or password"},
            message="authentication failed: invalid username or password",
        )
    kind = account.kind if account else None
    grants = grants_of(account) if account else []
    granted: list[Access] = []
    for access in scopes:
        # A repository token carries pull and push whenever the account has them, even if only
        # one was asked for: clients that keep one token per session (oras-py) would otherwise
        # fail on their first push after a pull. Delete is granted only when asked for.
        wanted = access.actions | (_PULL_PUSH if access.type == "repository" else frozenset())
        actions = allowed_actions(
            kind,
            grants,
            Access(access.type, access.name, wanted),
            anonymous_pull=ctx.options.anonymous_pull,
        )
        granted.append(Access(access.type, access.name, frozenset(actions)))  # maybe empty
    issued = ctx.tokens.issue(account.name if account else None, granted)
    body = {
        "token": issued.token,
        "access_token": issued.token,
        "expires_in": issued.expires_in_seconds,
        "issued_at": issued.issued_at.astimezone(UTC).isoformat().replace("+00:00", "Z"),
    }
    return json_response(body, headers={"Cache-Control": "no-store"})
