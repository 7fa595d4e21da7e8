"""The ACR fake's token endpoints, as published (``containerregistry`` data plane 2021-07-01).

- ``GET /oauth2/token?service=S&scope=...`` with Basic credentials (the admin user, an ACR
  token, or ``00000000-0000-0000-0000-000000000000`` and a refresh token) → ``{"access_token"}``;
- ``POST /oauth2/token`` form ``grant_type=refresh_token`` (``refresh_token``) or ``password``
  (``username``, ``password``), ``service``, ``scope`` → ``{"access_token"}``;
- ``POST /oauth2/exchange`` form ``grant_type=access_token``, ``service``, ``tenant``,
  ``access_token`` (an AAD token for the registry's audience) → ``{"refresh_token"}``.

Refusals are ``401`` with ACR's error body; the access token allows what of the asked scopes
the login may do (possibly nothing: the registry then answers ``401 insufficient_scope``).
"""

from __future__ import annotations

import base64
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl

from aiohttp import web

from tests.support.fake_acr_auth import ACR_REFRESH_USERNAME, ALL_ACTIONS, Principal
from tests.support.fake_acr_metadata import acr_error

if TYPE_CHECKING:
    from tests.support.fake_acr import FakeAcr

__all__ = ["ACR_AUDIENCES", "exchange", "token"]

#: audiences ACR takes AAD tokens for (its own, and Resource Manager's)
ACR_AUDIENCES = frozenset({"https://containerregistry.azure.net", "https://management.azure.com"})


async def token(fake: FakeAcr, request: web.Request) -> web.Response:
    if request.method == "GET":
        params = list(request.query.items())
        principal = _basic_login(fake, request)
    elif request.method == "POST":
        params = parse_qsl((await request.read()).decode(), keep_blank_values=True)
        principal = _form_login(fake, dict(params))
    else:
        return acr_error(405, "UNSUPPORTED", "GET or POST")
    if dict(params).get("service") != fake.service:
        return acr_error(400, "UNSUPPORTED", f"service must be {fake.service}")
    if principal is None:
        return acr_error(401, "UNAUTHORIZED", "invalid credentials or refresh token")
    scopes = [s for k, v in params if k == "scope" for s in v.split(" ") if s]
    return web.json_response({"access_token": fake.tokens.issue_access(principal, scopes)})


def _basic_login(fake: FakeAcr, request: web.Request) -> Principal | None:
    header = request.headers.get("Authorization", "")
    if not header.lower().startswith("basic "):
        return None
    try:
        user, _, password = base64.b64decode(header[6:]).decode().partition(":")
    except (ValueError, UnicodeDecodeError):
        return None
    return fake.tokens.login(user, password)


def _form_login(fake: FakeAcr, form: dict[str, str]) -> Principal | None:
    grant = form.get("grant_type")
    if grant == "refresh_token":
        return fake.tokens.login(ACR_REFRESH_USERNAME, form.get("refresh_token", ""))
    if grant == "password":
        return fake.tokens.login(form.get("username", ""), form.get("password", ""))
    return None


async def exchange(fake: FakeAcr, request: web.Request) -> web.Response:
    if request.method != "POST":
        return acr_error(405, "UNSUPPORTED", "POST only")
    form = dict(parse_qsl((await request.read()).decode(), keep_blank_values=True))
    if form.get("grant_type") != "access_token" or not form.get("access_token"):
        return acr_error(400, "UNSUPPORTED", "grant_type=access_token with an access_token")
    if form.get("service") != fake.service:
        return acr_error(400, "UNSUPPORTED", f"service must be {fake.service}")
    verifier = fake.aad_verifier
    claims = None if verifier is None else verifier(form["access_token"])
    tenant = form.get("tenant", "")
    problem = _exchange_problem(fake, claims, tenant)
    if problem:
        return acr_error(401, "UNAUTHORIZED", problem)
    assert claims is not None
    who = str(claims.get("oid") or claims.get("appid") or claims.get("sub"))
    principal = Principal(who, "aad", {"*": fake.aad_roles.get(who, ALL_ACTIONS)}, catalog=True)
    return web.json_response({"refresh_token": fake.tokens.issue_refresh(principal, tenant)})


def _exchange_problem(fake: FakeAcr, claims: Mapping[str, Any] | None, tenant: str) -> str:
    if fake.refuse_exchange:
        return "the AAD identity is not allowed on this registry"
    if claims is None:
        return "invalid or expired AAD access token"
    if claims.get("aud") not in ACR_AUDIENCES:
        return f"the AAD token's audience {claims.get('aud')!r} is not this registry's"
    tid = str(claims.get("tid", ""))
    if tenant and tenant.lower() != tid.lower():
        return f"the AAD token is for tenant {tid}, not {tenant}"
    if fake.tenant_id and tid.lower() != fake.tenant_id.lower():
        return f"the registry is in tenant {fake.tenant_id}, the AAD token in {tid}"
    return ""
