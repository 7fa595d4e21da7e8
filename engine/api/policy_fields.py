"""Checks for the parts of a policy body that have a grammar: filters, cron, timezone, namespace.

Filters are stored in Harbor's shape plus ``syntax``::

    {"type": "name|tag|label|resource", "value": ..., "decoration": "matches|excludes",
     "syntax": "glob|regex|semver"}

and each one is proven by building the engine's own :class:`engine.filters.Filter` from it, so a
policy the API accepts is a policy the engine can run.
"""

from __future__ import annotations

from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from engine.api.errors import bad_request
from engine.cron import CronError, validate_cron
from engine.filters import Filter
from registry.oci.reference import is_valid_name

__all__ = ["TRIGGERS", "check_cron", "check_namespace", "check_timezone", "filters_of"]

TRIGGERS = ("manual", "scheduled", "event_based")
FILTER_TYPES = ("name", "tag", "label", "resource", "artifact_type")
DECORATIONS = ("matches", "excludes")
SYNTAXES = ("glob", "regex", "semver")
MAX_FILTERS = 32


def filters_of(items: list[Any]) -> list[dict[str, Any]]:
    """Normalised filters (defaults filled in); :raises ApiError: 400 naming the bad one."""
    if len(items) > MAX_FILTERS:
        raise bad_request(f"filters: at most {MAX_FILTERS} filters in one policy")
    out = []
    for i, item in enumerate(items):
        where = f"filters[{i}]"
        if not isinstance(item, dict):
            raise bad_request(f"{where} must be an object with type and value")
        out.append(_filter_shape(where, item))
        _engine_check(where, out[-1])
    return out


def _filter_shape(where: str, item: dict[str, Any]) -> dict[str, Any]:
    kind = item.get("type")
    if kind not in FILTER_TYPES:
        raise bad_request(
            f"{where}.type must be one of {', '.join(FILTER_TYPES)}, not {kind!r:.100}"
        )
    decoration = item.get("decoration") or "matches"
    if decoration not in DECORATIONS:
        raise bad_request(
            f"{where}.decoration must be matches or excludes, not {decoration!r:.100}"
        )
    syntax = item.get("syntax") or "glob"
    if syntax not in SYNTAXES:
        raise bad_request(
            f"{where}.syntax must be one of {', '.join(SYNTAXES)}, not {syntax!r:.100}"
        )
    if syntax != "glob" and kind not in ("name", "tag"):
        raise bad_request(f"{where}: syntax {syntax} applies to name and tag filters only")
    if syntax == "semver" and kind != "tag":
        raise bad_request(f"{where}: semver ranges apply to tags only")
    value = item.get("value")
    if kind in ("label", "artifact_type"):
        if isinstance(value, str):
            value = [value]
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise bad_request(f"{where}.value of a {kind} filter must be a list of {kind} names")
    elif value is None:
        value = ""
    elif not isinstance(value, str):
        raise bad_request(f"{where}.value of a {kind} filter must be a string")
    return {"type": kind, "value": value, "decoration": decoration, "syntax": syntax}


def _engine_check(where: str, spec: dict[str, Any]) -> None:
    """The engine's own filter must accept it (the same code that will apply it)."""
    try:
        Filter.from_harbor(spec)
    except (ValueError, TypeError, KeyError) as e:
        raise bad_request(
            f"{where} ({spec['type']} {spec['syntax']} {spec['value']!r:.200}): {e}"
        ) from e


def check_cron(cron: str) -> str:
    """Harbor's 6-field cron (``sec min hour dom month dow``) or the classic 5-field one,
    checked by the scheduler that will run it."""
    try:
        validate_cron(cron)
    except CronError as e:
        raise bad_request(f"trigger.trigger_settings.cron: {e}") from None
    return cron


def check_timezone(name: str) -> str:
    name = name.strip() or "UTC"
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise bad_request(
            f"trigger.trigger_settings.timezone {name!r} is not an IANA time zone "
            "(e.g. UTC, Europe/Oslo)"
        ) from None
    return name


def check_namespace(namespace: str) -> str:
    namespace = namespace.strip().strip("/")
    if namespace and not is_valid_name(namespace):
        raise bad_request(
            f"dest_namespace {namespace!r} is not a repository path (lowercase components "
            "[a-z0-9] joined by . _ __ - and /)"
        )
    return namespace
