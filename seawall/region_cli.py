"""``seawall region add|list|show|remove``: the regions of this logical registry, through the
management API (``/api/v2.0/regions``).

A region is a registry endpoint added with ``seawall registry add``, named by its name (or
id). This Seawall is a region too (setting ``dr.region_name``): listed first, never added
or removed. Connection flags and exit codes as the other API commands: 0 done, 1 it failed,
2 the command line is wrong.
"""

from __future__ import annotations

import argparse
from typing import Any
from urllib.parse import quote

import httpx

from seawall.replication_client import ApiClient, credentials_from, run_command
from seawall.replication_output import print_json, table

__all__ = ["COMMANDS", "add_commands", "connection_flags", "run", "status_cells"]

COMMANDS: tuple[str, ...] = ("region",)
REGIONS, REGISTRIES = "/regions", "/registries"


def connection_flags() -> argparse.ArgumentParser:
    """``--url``, ``--username``, ``--password`` (as every API command takes them)."""
    conn = argparse.ArgumentParser(add_help=False)
    g = conn.add_argument_group("connection")
    g.add_argument("--url", help="Seawall's URL (default: $SEAWALL_URL or http://127.0.0.1:5000)")
    g.add_argument("--username", help="API user (default: $SEAWALL_USERNAME or admin)")
    g.add_argument("--password", help="API password (default: $SEAWALL_PASSWORD)")
    return conn


def add_commands(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    conn = connection_flags()
    region = sub.add_parser("region", help="the regions (replicas) of this logical registry")
    group = region.add_subparsers(dest="action", required=True)
    add = group.add_parser(
        "add",
        parents=[conn],
        help="declare a registry endpoint a region",
        epilog="Protected repositories: what the push policies to the endpoint replicate, "
        "plus every --protect glob (repositories of this registry, same names there).",
    )
    add.add_argument("name", help="the region's name, e.g. eu-west-1")
    add.add_argument(
        "--registry",
        required=True,
        metavar="ENDPOINT",
        help="the endpoint's name or id (`seawall registry list`)",
    )
    add.add_argument(
        "--protect",
        action="append",
        default=[],
        metavar="GLOB",
        help="also protect these repositories (Harbor glob, repeatable), e.g. 'library/**'",
    )
    add.add_argument("--description", default="")
    listing = group.add_parser("list", parents=[conn], help="list the regions")
    listing.add_argument("--json", action="store_true", help="print the API's JSON")
    show = group.add_parser("show", parents=[conn], help="one region and its latest check")
    show.add_argument("name")
    show.add_argument("--json", action="store_true", help="print the API's JSON")
    remove = group.add_parser("remove", parents=[conn], help="remove a region")
    remove.add_argument("name")


def run(args: argparse.Namespace, transport: httpx.BaseTransport | None = None) -> int:
    api = ApiClient(credentials_from(args.url, args.username, args.password), transport)
    return run_command(api, lambda: _HANDLERS[args.action](api, args))


def _add(api: ApiClient, args: argparse.Namespace) -> int:
    endpoint = api.find("registry", REGISTRIES, args.registry)
    body: dict[str, Any] = {
        "name": args.name,
        "registry": {"id": endpoint["id"]},
        "description": args.description,
        "repositories": args.protect,
    }
    new_id = api.create(REGIONS, body)
    print(
        f"added region {args.name} (id {new_id}): registry {endpoint['name']} ({endpoint['url']})"
    )
    return 0


def status_cells(status: dict[str, Any] | None) -> list[str]:
    """HEALTHY, CONSISTENT, LAG, CHECKED of a region's latest check (``-`` before any)."""
    if not status:
        return ["-", "-", "-", "never"]
    lag = status.get("lag_seconds")
    return [
        "yes" if status.get("healthy") else "NO",
        "yes" if status.get("consistent") else "NO",
        "?" if lag is None else f"{lag:.1f}s",
        str(status.get("checked_at") or ""),
    ]


def _list(api: ApiClient, args: argparse.Namespace) -> int:
    regions = list(api.all(REGIONS))
    if args.json:
        return print_json(regions)
    rows = []
    for r in regions:
        registry = r.get("registry") or {}
        name = f"{r['name']} (this Seawall)" if r.get("self") else r["name"]
        where = "-" if r.get("self") else str(registry.get("name") or registry.get("id"))
        protect = ",".join(r.get("repositories") or []) or "-"
        url = str(registry.get("url") or "")
        rows.append([name, where, url, protect, *status_cells(r.get("status"))])
    table(["REGION", "REGISTRY", "URL", "PROTECT", "HEALTHY", "CONSISTENT", "LAG", "CHECKED"], rows)
    return 0


def _show(api: ApiClient, args: argparse.Namespace) -> int:
    r: dict[str, Any] = api.get(f"{REGIONS}/{_ref(args.name)}")
    if args.json:
        return print_json(r)
    registry = r.get("registry") or {}
    healthy, consistent, lag, checked = status_cells(r.get("status"))
    lines = [
        ("name", f"{r['name']}" + (" (this Seawall)" if r.get("self") else f" (id {r['id']})")),
        ("registry", f"{registry.get('name') or '-'} {registry.get('url') or ''}".strip()),
        ("description", r.get("description") or ""),
        ("protect", ", ".join(r.get("repositories") or []) or "(the push policies' filters)"),
        ("healthy", healthy),
        ("consistent", consistent),
        ("lag", lag),
        ("checked", checked),
    ]
    for key, value in lines:
        print(f"{key + ':':13}{value}")
    return 0


def _remove(api: ApiClient, args: argparse.Namespace) -> int:
    api.request("DELETE", f"{REGIONS}/{_ref(args.name)}")
    print(f"removed region {args.name}")
    return 0


def _ref(name: str) -> str:
    """A region name for a path: names are [a-z0-9._-]; anything else the server refuses."""
    return quote(name, safe="")


_HANDLERS = {"add": _add, "list": _list, "show": _show, "remove": _remove}
