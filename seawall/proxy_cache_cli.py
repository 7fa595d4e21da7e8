"""``seawall proxy-cache add|list|remove``: proxy-cache namespaces, through the management API
(``/api/v2.0/proxy-caches``; see docs/proxy-cache.md).

``seawall proxy-cache add NAMESPACE --registry ENDPOINT [--ttl SECONDS]``: afterwards
``NAMESPACE/<upstream repository>:<tag or digest>`` pulls through from ENDPOINT (a registry
endpoint added with ``seawall registry add``, by name or id). Connection flags and exit codes
as the other API commands: 0 done, 1 it failed (one line on stderr), 2 the command line is
wrong.
"""

from __future__ import annotations

import argparse
from typing import Any
from urllib.parse import quote

import httpx

from seawall.region_cli import connection_flags
from seawall.replication_client import ApiClient, credentials_from, run_command
from seawall.replication_output import print_json, table

__all__ = ["COMMANDS", "add_commands", "run"]

COMMANDS: tuple[str, ...] = ("proxy-cache",)
PROXY_CACHES, REGISTRIES = "/proxy-caches", "/registries"


def add_commands(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    conn = connection_flags()
    cache = sub.add_parser(
        "proxy-cache", help="namespaces that pull through from another registry and cache it"
    )
    group = cache.add_subparsers(dest="action", required=True)
    add = group.add_parser(
        "add",
        parents=[conn],
        help="bind a namespace to a registry endpoint",
        epilog="NAMESPACE/<upstream repository>:<tag or digest> then pulls through from the "
        "endpoint; a tag is served from the cache for --ttl seconds, then revalidated with "
        "one HEAD upstream. Clients cannot push into the namespace.",
    )
    add.add_argument("namespace", help="one repository path component, e.g. hub")
    add.add_argument(
        "--registry",
        required=True,
        metavar="ENDPOINT",
        help="the endpoint's name or id (`seawall registry list`)",
    )
    add.add_argument(
        "--ttl",
        type=float,
        metavar="SECONDS",
        help="how long a cached tag is served without asking the upstream "
        "(1 to 2592000; default 3600)",
    )
    listing = group.add_parser("list", parents=[conn], help="list the proxy-cache namespaces")
    listing.add_argument("--json", action="store_true", help="print the API's JSON")
    remove = group.add_parser(
        "remove", parents=[conn], help="remove a namespace (what it cached stays)"
    )
    remove.add_argument("namespace")


def run(args: argparse.Namespace, transport: httpx.BaseTransport | None = None) -> int:
    api = ApiClient(credentials_from(args.url, args.username, args.password), transport)
    return run_command(api, lambda: _HANDLERS[args.action](api, args))


def _add(api: ApiClient, args: argparse.Namespace) -> int:
    endpoint = api.find("registry", REGISTRIES, args.registry)
    body: dict[str, Any] = {"name": args.namespace, "registry": {"id": endpoint["id"]}}
    if args.ttl is not None:
        body["ttl_seconds"] = args.ttl
    new_id = api.create(PROXY_CACHES, body)
    ttl = api.get(f"{PROXY_CACHES}/{new_id}").get("ttl_seconds")
    print(
        f"added proxy cache {args.namespace} (id {new_id}): pulls through from "
        f"{endpoint['name']} ({endpoint['url']}), tags revalidated after {ttl:g}s"
    )
    return 0


def _list(api: ApiClient, args: argparse.Namespace) -> int:
    caches = list(api.all(PROXY_CACHES))
    if args.json:
        return print_json(caches)
    rows = []
    for c in caches:
        registry = c.get("registry") or {}
        where = str(registry.get("name") or f"(endpoint {registry.get('id')} is gone)")
        rows.append(
            [
                c["name"],
                where,
                str(registry.get("type") or ""),
                str(registry.get("url") or ""),
                f"{c['ttl_seconds']:g}s",
            ]
        )
    table(["NAMESPACE", "REGISTRY", "TYPE", "URL", "TTL"], rows)
    return 0


def _remove(api: ApiClient, args: argparse.Namespace) -> int:
    api.request("DELETE", f"{PROXY_CACHES}/{quote(args.namespace, safe='')}")
    print(f"removed proxy cache {args.namespace} (what it cached stays)")
    return 0


_HANDLERS = {"add": _add, "list": _list, "remove": _remove}
