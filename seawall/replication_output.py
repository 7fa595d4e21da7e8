"""How the replication CLI shows things: tables, progress lines, filters and sizes."""

from __future__ import annotations

import json
from typing import Any

__all__ = [
    "deletion_text",
    "delivery_row",
    "format_filter",
    "plan_table",
    "print_json",
    "progress_line",
    "side_name",
    "table",
    "webhook_row",
]


def format_filter(f: dict[str, Any]) -> str:
    value = f.get("value")
    text = ",".join(value) if isinstance(value, list) else str(value or "")
    syntax = f.get("syntax") or "glob"
    op = "!=" if f.get("decoration") == "excludes" else "="
    return f"{f.get('type')}{op}{'' if syntax == 'glob' else syntax + ':'}{text}"


def side_name(registry: dict[str, Any] | None) -> str:
    if not registry or not registry.get("id"):
        return "local"
    return str(registry.get("name") or f"registry {registry.get('id')}")


def deletion_text(p: dict[str, Any]) -> str:
    if not p.get("deletion"):
        return "no"
    fraction = float(p.get("max_deletion_fraction") or 0)
    return f"yes (at most {p.get('max_deletions')} and {fraction:.0%} of the tags per run)"


def progress_line(e: dict[str, Any]) -> str:
    return (
        f"execution {e['id']}: {e['status']}  total {e.get('total', 0)}  "
        f"succeed {e.get('succeed', 0)}  failed {e.get('failed', 0)}  "
        f"in progress {e.get('in_progress', 0)}  skipped {e.get('skipped', 0)}  "
        f"{size_text(int(e.get('bytes_copied') or 0))} copied"
    )


def size_text(n: int) -> str:
    value = float(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{n} B"


def plan_table(tasks: list[dict[str, Any]]) -> None:
    """What a dry run would do: copies and deletions first, then what it would leave alone."""
    order = {"would-copy": 0, "would-delete": 1}
    tasks = sorted(tasks, key=lambda t: (order.get(t.get("outcome", ""), 2), t["id"]))
    rows = [
        [
            t.get("outcome") or t.get("status", ""),
            t.get("src_resource") or "-",
            t.get("dst_resource") or "-",
            (t.get("digest") or "")[:19],
            t.get("reason") or "",
        ]
        for t in tasks
    ]
    table(["ACTION", "SOURCE", "DESTINATION", "DIGEST", "REASON"], rows)
    copies = sum(1 for t in tasks if t.get("outcome") == "would-copy")
    deletes = sum(1 for t in tasks if t.get("outcome") == "would-delete")
    others = len(tasks) - copies - deletes
    print(f"{copies} would be copied, {deletes} would be deleted, {others} left as they are")


def table(header: list[str], rows: list[list[str]]) -> None:
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    for r in [header, *rows]:
        print("  ".join(str(c).ljust(w) for c, w in zip(r, widths, strict=True)).rstrip())


def print_json(data: Any) -> int:
    print(json.dumps(data, indent=2))
    return 0


def webhook_row(h: dict[str, Any]) -> list[str]:
    events = h.get("event_types") or []
    return [
        str(h["id"]),
        h["name"],
        h.get("format") or "default",
        "all" if len(events) >= 5 else ",".join(events),
        "set" if h.get("auth_header_set") else "-",
        "yes" if h.get("enabled") else "no",
        h.get("address") or "",
    ]


def delivery_row(d: dict[str, Any]) -> list[str]:
    """A delivery for ``seawall policy deliveries``: when, what, how it went."""
    error = d.get("last_error") or ""
    if d.get("status") == "Pending" and d.get("next_attempt_time") and d.get("attempts"):
        error = f"{error}; next attempt {d['next_attempt_time']}".lstrip("; ")
    return [
        str(d["id"]),
        d.get("creation_time") or "",
        str(d.get("webhook_id") or ""),
        d.get("event") or d.get("event_type") or "",
        str(d.get("execution_id") or "-"),
        d.get("status") or "",
        str(d.get("attempts") or 0),
        str(d.get("last_http_status") or "-"),
        error[:80],
    ]
