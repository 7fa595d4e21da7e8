"""Registry endpoints: ``/registries``, ``/registries/{id}``, ``/registries/ping``,
``/registries/{id}/info``, ``/replication/adapters`` and ``/replication/adapterinfos``.

Secrets are sealed before they are stored and never returned: a response carries
``credential.access_secret`` as ``"*****"`` when one is stored (``""`` when none), as Harbor does.
Sending ``"*****"`` back (a GET → PUT round trip) keeps the stored secret, where Harbor would
store the five asterisks.

Provider settings travel as ``options`` (``{"region": "eu-west-1"}``); the adapter checks them,
with the URL and credentials, before anything is stored or sent (``400`` saying what to fix).

A stored secret stays bound to the URL it was stored for: changing an endpoint's URL (with
``PUT``, or for a ``POST /registries/ping`` of a stored endpoint) needs the secret again, so a
stored secret is never sent to a URL its owner did not give it for.

Health (``status``) is ``unknown`` until ``POST /registries/ping`` with the endpoint's ``id``
records ``healthy`` or ``unhealthy``; changing the URL or the credentials makes it ``unknown``
again.
"""

from __future__ import annotations

import json
import re
from typing import Any
from urllib.parse import urlsplit

import anyio
from cryptography import x509
from sqlalchemy import delete as sql_delete
from sqlalchemy import insert, or_, select
from sqlalchemy import update as sql_update
from sqlalchemy.ext.asyncio import AsyncConnection

from engine.api.context import ApiContext, EndpointSpec
from engine.api.errors import ApiError, bad_request, not_found
from engine.api.paging import fetch_page, list_response, page_of, query_terms, sort_order
from engine.api.wire import Body, read_body, rfc3339
from engine.netguard import TargetRefused, check_url
from engine.proxy_cache.models import ProxyCacheNamespace
from engine.regions.models import Region
from engine.state.models import Policy, RegistryEndpoint, endpoint_options
from registry.http.asgi import Request, Response, json_response
from registry.meta.models import utcnow

__all__ = [
    "MASK",
    "adapter_infos",
    "adapters",
    "create",
    "delete",
    "endpoint_named",
    "get",
    "info",
    "list_registries",
    "load",
    "local_registry",
    "ping",
    "registry_json",
    "required_registry_id",
    "update",
]

R = RegistryEndpoint.__table__  # type: ignore[attr-defined]
P = Policy.__table__  # type: ignore[attr-defined]
G = Region.__table__  # type: ignore[attr-defined]
N = ProxyCacheNamespace.__table__  # type: ignore[attr-defined]
MASK = "*****"
CREDENTIAL_TYPES = ("basic", "oauth")
SEARCHABLE = {"name": R.c.name, "type": R.c.type, "url": R.c.url, "status": R.c.status}
SORTABLE = {**SEARCHABLE, "id": R.c.id, "creation_time": R.c.creation_time}


def registry_json(row: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": row["id"],
        "name": row["name"],
        "type": row["type"],
        "url": row["url"],
        "description": row["description"],
        "credential": {
            "type": row["credential_type"],
            "access_key": row["access_key"],
            "access_secret": MASK if row["access_secret_encrypted"] else "",
        },
        "insecure": row["insecure"],
        "ca_certificate": row["ca_certificate"],
        "options": endpoint_options(row.get("options_json")),
        "webhook_secret": MASK if row.get("webhook_secret_encrypted") else "",
        "status": row["status"],
        "creation_time": rfc3339(row["creation_time"]),
        "update_time": rfc3339(row["update_time"]),
    }


def local_registry(req: Request) -> dict[str, Any]:
    """Registry id 0: this Seawall's own registry (``null`` or ``{"id": 0}`` in a policy)."""
    return {
        "id": 0,
        "name": "Local",
        "type": "seawall",
        "url": req.base_url,
        "description": "this Seawall's own registry",
        "credential": None,
        "insecure": False,
        "status": "healthy",
        "creation_time": None,
        "update_time": None,
    }


async def load(ctx: ApiContext, registry_id: int) -> dict[str, Any]:
    async with ctx.db.read() as c:
        row = (await c.execute(select(R).where(R.c.id == registry_id))).mappings().first()
    if row is None:
        raise not_found(f"registry {registry_id} does not exist")
    return dict(row)


def _id(req: Request) -> int:
    return int(req.params["id"])


async def list_registries(ctx: ApiContext, req: Request) -> Response:
    page = page_of(req)
    where = query_terms(req, SEARCHABLE)
    if legacy := req.q("name"):  # Harbor's deprecated ?name= (fuzzy)
        where.append(R.c.name.contains(legacy, autoescape=True))
    stmt = select(R).where(*where).order_by(*sort_order(req, SORTABLE, [R.c.id]))
    async with ctx.db.read() as c:
        rows, total = await fetch_page(c, stmt, page)
    return list_response(req, [registry_json(r) for r in rows], page, total)


async def get(ctx: ApiContext, req: Request) -> Response:
    return json_response(registry_json(await load(ctx, _id(req))))


async def create(ctx: ApiContext, req: Request) -> Response:
    body = await read_body(req, ctx.max_body_bytes)
    name = _name(body.text("name", max_length=255))
    adapter = body.text("type", max_length=64)
    if not adapter:
        raise bad_request("type is required; GET /api/v2.0/replication/adapters lists them")
    _check_type(ctx, adapter)
    url = _url(ctx, body.text("url"), required=True)
    cred = body.obj("credential") or Body({}, "credential.")
    secret = cred.text("access_secret", max_length=65536) or ""
    options = _options(body) or {}
    spec = EndpointSpec(
        id=None,
        name=name,
        type=adapter,
        url=url,
        credential_type=cred.choice("type", CREDENTIAL_TYPES) or "basic",
        access_key=cred.text("access_key", max_length=1024) or "",
        access_secret=secret,
        insecure=bool(body.flag("insecure")),
        ca_certificate=_ca(body.text("ca_certificate", max_length=65536)),
        options=options,
    )
    await _check_endpoint(ctx, spec)
    values = {
        "name": name,
        "type": adapter,
        "url": url,
        "description": body.text("description") or "",
        "credential_type": spec["credential_type"],
        "access_key": spec["access_key"],
        "access_secret_encrypted": ctx.secrets.encrypt(secret),
        "insecure": spec["insecure"],
        "ca_certificate": spec["ca_certificate"],
        "options_json": json.dumps(options, sort_keys=True),
        "webhook_secret_encrypted": _webhook_secret(ctx, body.text("webhook_secret")) or "",
        "status": "unknown",
        "creation_time": utcnow(),
        "update_time": utcnow(),
    }
    async with ctx.db.write() as c:
        await _check_unique(c, name)
        res = await c.execute(insert(R).values(**values))
        new_id = int(res.inserted_primary_key[0])  # type: ignore[index]
    return Response(201, {"Location": f"{req.path.rstrip('/')}/{new_id}"})


async def update(ctx: ApiContext, req: Request) -> Response:
    """Harbor's flat, all-nullable ``RegistryUpdate``; a nested ``credential`` (as GET returns
    it) is accepted too, and the flat fields win."""
    registry_id = _id(req)
    body = await read_body(req, ctx.max_body_bytes)
    cred = body.obj("credential") or Body({}, "credential.")
    values: dict[str, Any] = {}
    if (name := body.text("name", max_length=255)) is not None:
        values["name"] = _name(name)
    if (description := body.text("description")) is not None:
        values["description"] = description
    if (url := body.text("url")) is not None:
        values["url"] = _url(ctx, url, required=True)
    kind = body.choice("credential_type", CREDENTIAL_TYPES) or cred.choice("type", CREDENTIAL_TYPES)
    if kind is not None:
        values["credential_type"] = kind
    key = body.text("access_key", max_length=1024)
    if (key := key if key is not None else cred.text("access_key", max_length=1024)) is not None:
        values["access_key"] = key
    secret = body.text("access_secret", max_length=65536)
    secret = secret if secret is not None else cred.text("access_secret", max_length=65536)
    if secret is not None and secret != MASK:
        values["access_secret_encrypted"] = ctx.secrets.encrypt(secret)
    if (options := _options(body)) is not None:
        values["options_json"] = json.dumps(options, sort_keys=True)
    if (insecure := body.flag("insecure")) is not None:
        values["insecure"] = insecure
    if (ca := body.text("ca_certificate", max_length=65536)) is not None:
        values["ca_certificate"] = _ca(ca)
    if (hook := _webhook_secret(ctx, body.text("webhook_secret"))) is not None:
        values["webhook_secret_encrypted"] = hook
    async with ctx.db.write() as c:
        row = (await c.execute(select(R).where(R.c.id == registry_id))).mappings().first()
        if row is None:
            raise not_found(f"registry {registry_id} does not exist")
        if "name" in values and values["name"] != row["name"]:
            await _check_unique(c, values["name"])
        before = _targets(ctx, endpoint_spec(ctx, dict(row)))
        after = await _check_endpoint(ctx, endpoint_spec(ctx, {**row, **values}))
        moved = after != before
        if moved and row["access_secret_encrypted"] and "access_secret_encrypted" not in values:
            raise bad_request(
                "changing the url (or a setting naming where credentials go, such as "
                "authority_host or api_endpoint) needs the credential's access_secret again: "
                "the stored secret is only ever sent where it was stored for"
            )
        if any(k in values and values[k] != row[k] for k in _HEALTH_INPUTS):
            values["status"] = "unknown"
        if values:
            values["update_time"] = utcnow()
            await c.execute(sql_update(R).where(R.c.id == registry_id).values(**values))
    return Response(200)


def _webhook_secret(ctx: ApiContext, secret: str | None) -> str | None:
    """The sealed secret incoming webhooks of this registry must carry (``""``: webhooks off;
    None or the mask: unchanged)."""
    if secret is None or secret == MASK:
        return None
    if secret and len(secret) < 16:
        raise bad_request("webhook_secret must be at least 16 characters (or empty to disable)")
    return ctx.secrets.encrypt(secret) if secret else ""


_HEALTH_INPUTS = (
    "url",
    "options_json",
    "credential_type",
    "access_key",
    "access_secret_encrypted",
    "insecure",
    "ca_certificate",
)


async def delete(ctx: ApiContext, req: Request) -> Response:
    registry_id = _id(req)
    async with ctx.db.write() as c:
        found = (await c.execute(select(R.c.id).where(R.c.id == registry_id))).first()
        if found is None:
            raise not_found(f"registry {registry_id} does not exist")
        users = (
            (
                await c.execute(
                    select(P.c.name)
                    .where(
                        or_(P.c.src_registry_id == registry_id, P.c.dest_registry_id == registry_id)
                    )
                    .order_by(P.c.name)
                )
            )
            .scalars()
            .all()
        )
        if users:
            raise ApiError(
                "PRECONDITION",
                f"registry {registry_id} is used by replication policies "
                f"{', '.join(users[:10])}; delete them or point them elsewhere first",
            )
        region = (await c.execute(select(G.c.name).where(G.c.registry_id == registry_id))).first()
        if region is not None:
            raise ApiError(
                "PRECONDITION",
                f"registry {registry_id} is region {region[0]!r}; remove the region first "
                f"(seawall region remove {region[0]})",
            )
        cache = (await c.execute(select(N.c.name).where(N.c.registry_id == registry_id))).first()
        if cache is not None:
            raise ApiError(
                "PRECONDITION",
                f"registry {registry_id} is the upstream of proxy cache {cache[0]!r}; remove the "
                f"proxy cache first (seawall proxy-cache remove {cache[0]})",
            )
        await c.execute(sql_delete(R).where(R.c.id == registry_id))
    return Response(200)


async def ping(ctx: ApiContext, req: Request) -> Response:
    """Check an endpoint: a stored one (``id``), optionally with fields overridden, or a new one
    (``type`` and ``url`` at least). Healthy → 200; unhealthy → 400 saying why. The stored
    ``status`` is updated only when the stored endpoint was checked as it is. A stored
    endpoint checked at another URL needs its secret in the request (see the module)."""
    body = await read_body(req, ctx.max_body_bytes)
    stored: EndpointSpec | None = None
    spec = EndpointSpec(
        id=None,
        name="",
        type="",
        url="",
        credential_type="basic",
        access_key="",
        access_secret="",
        insecure=False,
        ca_certificate="",
        options={},
    )
    if (registry_id := body.id("id")) is not None:
        stored = endpoint_spec(ctx, await load(ctx, registry_id))
        spec = EndpointSpec(**stored)
    if (adapter := body.text("type", max_length=64)) is not None:
        spec["type"] = adapter
    if (url := body.text("url")) is not None:
        spec["url"] = _url(ctx, url, required=True)
    if (kind := body.choice("credential_type", CREDENTIAL_TYPES)) is not None:
        spec["credential_type"] = kind
    if (key := body.text("access_key", max_length=1024)) is not None:
        spec["access_key"] = key
    secret = body.text("access_secret", max_length=65536)
    if secret is not None and secret != MASK:
        spec["access_secret"] = secret
    if (insecure := body.flag("insecure")) is not None:
        spec["insecure"] = insecure
    if (ca := body.text("ca_certificate", max_length=65536)) is not None:
        spec["ca_certificate"] = _ca(ca)
    if (options := _options(body)) is not None:
        spec["options"] = options
    if not spec["type"] or not spec["url"]:
        raise bad_request("type or url cannot be empty (or give the id of a stored registry)")
    _check_type(ctx, spec["type"])
    targets = await _check_endpoint(ctx, spec)
    kept = stored is not None and (secret is None or secret == MASK)
    if kept and stored is not None and targets != _targets(ctx, stored):
        spec["access_secret"] = ""  # the stored secret is bound to where it was stored for
    try:
        healthy, detail = await ctx.ping_endpoint(spec)
    except Exception as e:  # the checker's failure is the endpoint's answer
        healthy, detail = False, f"{type(e).__name__}: {e}"
    if stored is not None and stored == spec:
        async with ctx.db.write() as c:
            await c.execute(
                sql_update(R)
                .where(R.c.id == spec["id"])
                .values(status="healthy" if healthy else "unhealthy", status_detail=detail[:2000])
            )
    if not healthy:
        raise bad_request(f"the registry is unhealthy: {detail or 'no detail'}")
    return Response(200)


def endpoint_spec(ctx: ApiContext, row: dict[str, Any]) -> EndpointSpec:
    return EndpointSpec(
        id=row["id"],
        name=row["name"],
        type=row["type"],
        url=row["url"],
        credential_type=row["credential_type"],
        access_key=row["access_key"],
        access_secret=ctx.secrets.decrypt(row["access_secret_encrypted"]),
        insecure=row["insecure"],
        ca_certificate=row["ca_certificate"],
        options=endpoint_options(row.get("options_json")),
    )


async def info(ctx: ApiContext, req: Request) -> Response:
    registry_id = _id(req)
    adapter = "seawall" if registry_id == 0 else (await load(ctx, registry_id))["type"]
    data = dict(ctx.adapter_info(adapter))
    data.pop("endpoint_pattern", None)
    data.pop("credential_pattern", None)
    return json_response(data)


async def adapters(ctx: ApiContext, req: Request) -> Response:
    return json_response(list(ctx.adapter_types()))


async def adapter_infos(ctx: ApiContext, req: Request) -> Response:
    out: dict[str, Any] = {}
    for adapter in ctx.adapter_types():
        data = ctx.adapter_info(adapter)
        keys = ("endpoint_pattern", "credential_pattern", "options")
        out[adapter] = {k: data[k] for k in keys if k in data}
    return json_response(out)


# ---------------------------------------------------------------------------- validation
def _name(name: str | None) -> str:
    name = (name or "").strip()
    if not name:
        raise bad_request("name is required")
    return name


async def _check_unique(c: Any, name: str) -> None:
    if (await c.execute(select(R.c.id).where(R.c.name == name))).first() is not None:
        raise ApiError("CONFLICT", f"a registry named {name!r} already exists")


def _check_type(ctx: ApiContext, adapter: str) -> None:
    known = ctx.adapter_types()
    if adapter not in known:
        raise bad_request(f"unknown registry type {adapter!r}; known types: {', '.join(known)}")


_URL_CHARS = re.compile(r"^[\x21-\x7e]+$")  # printable ASCII, no spaces
MAX_URL_CHARS = 2048
MAX_OPTIONS = 32


def _url(ctx: ApiContext, url: str | None, required: bool) -> str:
    """An endpoint URL: ``http(s)://host[:port][/path]`` or, for file-based types,
    ``file:///absolute/path`` (the type's adapter checks which it takes); not a link-local
    address unless the server allows it (:mod:`engine.netguard`)."""
    url = (url or "").strip()
    if not url and required:
        raise bad_request("url is required")
    if len(url) > MAX_URL_CHARS or not _URL_CHARS.match(url):
        raise bad_request(
            f"url must be at most {MAX_URL_CHARS} printable characters without spaces"
        )
    try:
        parts = urlsplit(url)
        port = parts.port  # ValueError when out of 0-65535 or not a number
    except ValueError as e:
        raise bad_request(f"url {url[:200]!r} is not valid: {e}") from None
    if parts.query or parts.fragment:
        raise bad_request("url must not have a query or a fragment")
    if parts.username is not None or parts.password is not None:
        raise bad_request("url must not hold credentials: give them as the endpoint's credential")
    if parts.scheme == "file":
        if parts.netloc not in ("", "localhost") or not parts.path.startswith("/"):
            raise bad_request(f"a file url is file:///absolute/path, not {url[:200]!r}")
        return url.rstrip("/") if parts.path != "/" else url
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise bad_request(f"url must be an http:// or https:// URL with a host, not {url[:200]!r}")
    if port == 0:
        raise bad_request(f"url {url[:200]!r}: port 0 is not a port")
    try:
        check_url(url, allow_link_local=ctx.allow_link_local)
    except TargetRefused as e:
        raise bad_request(f"url {url[:200]!r}: {e}") from None
    return url.rstrip("/")


def _options(body: Body) -> dict[str, str] | None:
    """The request's ``options`` (provider settings): string values by short names."""
    raw = body.obj("options")
    if raw is None:
        return None
    if len(raw.data) > MAX_OPTIONS:
        raise bad_request(f"options: at most {MAX_OPTIONS} settings")
    out: dict[str, str] = {}
    for name, value in raw.data.items():
        if not isinstance(name, str) or not re.fullmatch(r"[a-z][a-z0-9_]{0,39}", name):
            raise bad_request(f"options: {str(name)[:60]!r} is not an option name")
        if isinstance(value, bool):
            value = "true" if value else "false"
        if not isinstance(value, str | int) or len(str(value)) > 4096:
            raise bad_request(f"options.{name} must be a string of at most 4096 characters")
        out[name] = str(value)
    return out


async def _check_endpoint(ctx: ApiContext, spec: EndpointSpec) -> tuple[str, ...]:
    """The adapter's check (in a worker thread: it may stat local files) and the netguard
    rule for every URL the endpoint's secrets may reach; returns those URLs."""
    try:
        targets = await anyio.to_thread.run_sync(ctx.check_endpoint, spec)
        for url in targets:
            if url.startswith(("http://", "https://")):
                check_url(url, allow_link_local=ctx.allow_link_local)
    except ValueError as e:  # TargetRefused is one
        raise bad_request(str(e)) from None
    return targets


def _targets(ctx: ApiContext, stored: EndpointSpec) -> tuple[str, ...]:
    """Where a stored endpoint's secret may go, as stored (a stored endpoint that no longer
    passes the checks is bound to its URL alone)."""
    try:
        return ctx.check_endpoint(stored)
    except ValueError:
        return (stored["url"],)


def _ca(pem: str | None) -> str:
    pem = (pem or "").strip()
    if pem:
        try:
            x509.load_pem_x509_certificates(pem.encode())
        except ValueError as e:
            raise bad_request(f"ca_certificate is not PEM certificates: {e}") from None
    return pem


def required_registry_id(body: Body) -> int:
    """The endpoint a region or a proxy cache is bound to: ``{"registry": {"id": N}}``."""
    ref = body.obj("registry")
    registry_id = ref.id("id", minimum=0) if ref is not None else None
    if registry_id is None:
        raise bad_request(
            'registry is required: {"id": N} of an endpoint from GET /api/v2.0/registries'
        )
    return registry_id


async def endpoint_named(c: AsyncConnection, registry_id: int) -> str:
    """The name of endpoint ``registry_id``; a ``400`` saying how to find one if there is none."""
    found = (await c.execute(select(R.c.name).where(R.c.id == registry_id))).first()
    if found is None:
        raise bad_request(
            f"registry: registry {registry_id} does not exist "
            "(GET /api/v2.0/registries lists them; `seawall registry add` adds one)"
        )
    return str(found[0])
