"""``GET /ping`` and ``GET /systeminfo`` (public, as in Harbor)."""

from __future__ import annotations

from datetime import UTC, datetime
from importlib.metadata import PackageNotFoundError, version

from engine.api.context import ApiContext
from engine.api.wire import rfc3339
from registry.http.asgi import Request, Response, json_response

__all__ = ["info", "ping", "seawall_version"]

HARBOR_API = "v2.0"


def seawall_version() -> str:
    try:
        return version("seawall")
    except PackageNotFoundError:
        return "0+unknown"


async def ping(ctx: ApiContext, req: Request) -> Response:
    return Response(200, {"Content-Type": "text/plain; charset=utf-8"}, b"Pong")


async def info(ctx: ApiContext, req: Request) -> Response:
    """Harbor's ``GeneralInfo``, with what is true of Seawall. ``harbor_version`` names Seawall
    (``seawall-<version>``): the API implements Harbor's v2.0 replication subset, not all of it."""
    host = req.base_url.split("://", 1)[1]
    return json_response(
        {
            "harbor_version": f"seawall-{seawall_version()}",
            "seawall_version": seawall_version(),
            "api_version": HARBOR_API,
            "current_time": rfc3339(datetime.now(UTC)),
            "registry_url": host,
            "external_url": req.base_url,
            "auth_mode": "db_auth",
            "primary_auth_mode": False,
            "project_creation_restriction": "adminonly",
            "self_registration": False,
            "has_ca_root": False,
            "read_only": False,
            "notification_enable": False,
            "with_chartmuseum": False,
            "registry_storage_provider_name": "seawall",
        }
    )
