"""List endpoints: Harbor's ``page``/``page_size``, ``q`` and ``sort`` query parameters, and the
``X-Total-Count`` and ``Link`` response headers.

``q`` is a comma-separated list of ``key=value`` terms (ANDed):

    name=nginx          exact            name=~ngi       fuzzy (substring, case-insensitive)
    id={1 2 3}          any of           id=[2~9]        range (either end may be left empty)

``sort`` is ``key1,-key2`` (``-`` for descending). Each endpoint names the keys it supports;
others are refused with 400, like a value that does not fit the key's type.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

from sqlalchemy import Boolean, ColumnElement, Integer, Select, and_, func, or_, select
from sqlalchemy.ext.asyncio import AsyncConnection

from engine.api.errors import bad_request
from engine.api.wire import MAX_INT32, query_int, to_int
from registry.http.asgi import Request, Response, json_response

__all__ = [
    "MAX_PAGE_SIZE",
    "Page",
    "fetch_page",
    "list_response",
    "page_of",
    "query_terms",
    "sort_order",
]

DEFAULT_PAGE_SIZE = 10
MAX_PAGE_SIZE = 100
MAX_PAGE = 10_000_000
MAX_Q_TERMS = 20
Columns = Mapping[str, ColumnElement[Any]]


@dataclass(frozen=True, slots=True)
class Page:
    number: int
    size: int

    @property
    def offset(self) -> int:
        return (self.number - 1) * self.size


def page_of(req: Request) -> Page:
    return Page(_positive(req, "page", 1), _positive(req, "page_size", DEFAULT_PAGE_SIZE))


def _positive(req: Request, name: str, default: int) -> int:
    most = MAX_PAGE_SIZE if name == "page_size" else MAX_PAGE
    value = query_int(req, name, minimum=1, maximum=most)
    return default if value is None else value


def query_terms(req: Request, columns: Columns) -> list[ColumnElement[bool]]:
    """The conditions of ``q`` over the searchable ``columns``."""
    raw = req.q("q")
    if not raw:
        return []
    out: list[ColumnElement[bool]] = []
    if raw.count(",") >= MAX_Q_TERMS:
        raise bad_request(f"q takes at most {MAX_Q_TERMS} terms")
    for term in raw.split(","):
        key, sep, value = term.partition("=")
        key = key.strip()
        if not sep or not key or not value:
            raise bad_request('each term of q must be "key=value" with neither part empty')
        column = columns.get(key)
        if column is None:
            raise bad_request(f"q cannot search {key!r}; searchable: {', '.join(sorted(columns))}")
        out.append(_condition(key, column, value))
    return out


def _condition(key: str, column: ColumnElement[Any], value: str) -> ColumnElement[bool]:
    if value.startswith("~"):
        if len(value) < 2:
            raise bad_request(f"q: the fuzzy match for {key} needs a value after ~")
        return func.lower(column).contains(value[1:].lower(), autoescape=True)
    if value.startswith("{") and value.endswith("}"):
        values = [_typed(key, column, v) for v in value[1:-1].split(" ") if v.strip()][:100]
        return or_(*(column == v for v in values)) if values else column.is_(None)
    if value.startswith("[") and value.endswith("]") and value.count("~") == 1:
        low, high = (v.strip() for v in value[1:-1].split("~"))
        if not low and not high:
            raise bad_request(f"q: the range for {key} needs a minimum or a maximum")
        parts = []
        if low:
            parts.append(column >= _typed(key, column, low))
        if high:
            parts.append(column <= _typed(key, column, high))
        return and_(*parts)
    return column == _typed(key, column, value[1:] if value.startswith("\\") else value)


def _typed(key: str, column: ColumnElement[Any], value: str) -> Any:
    value = value.strip().strip("\"'")
    if isinstance(column.type, Boolean):
        if value not in ("true", "false"):
            raise bad_request(f"q: {key} takes true or false, not {value[:50]!r}")
        return value == "true"
    if isinstance(column.type, Integer):
        return to_int(value, f"q: {key}", minimum=-MAX_INT32 - 1, maximum=MAX_INT32)
    return value


def sort_order(
    req: Request, columns: Columns, default: Sequence[ColumnElement[Any]]
) -> list[ColumnElement[Any]]:
    raw = req.q("sort")
    if not raw:
        return list(default)
    out: list[ColumnElement[Any]] = []
    for key in raw.split(",")[:MAX_Q_TERMS]:
        key = key.strip()
        descending = key.startswith("-")
        column = columns.get(key.lstrip("-"))
        if column is None:
            raise bad_request(f"cannot sort by {key!r}; sortable: {', '.join(sorted(columns))}")
        out.append(column.desc() if descending else column.asc())
    return out + list(default)  # the defaults break ties, so pages are stable


async def fetch_page(
    conn: AsyncConnection, stmt: Select[Any], page: Page
) -> tuple[list[dict[str, Any]], int]:
    """One page of ``stmt``'s rows (as dicts) and the total number of rows it selects."""
    total = (await conn.execute(select(func.count()).select_from(stmt.subquery()))).scalar_one()
    rows = (await conn.execute(stmt.limit(page.size).offset(page.offset))).mappings().all()
    return [dict(r) for r in rows], int(total)


def list_response(req: Request, items: list[Any], page: Page, total: int) -> Response:
    headers = {"X-Total-Count": str(total)}
    links = []
    if page.number > 1 and page.offset - page.size < total:
        links.append(f'<{_page_url(req, page.number - 1, page.size)}>; rel="prev"')
    if page.number * page.size < total:
        links.append(f'<{_page_url(req, page.number + 1, page.size)}>; rel="next"')
    if links:
        headers["Link"] = " , ".join(links)  # Harbor's separator
    return json_response(items, headers=headers)


def _page_url(req: Request, number: int, size: int) -> str:
    pairs = [(k, v) for k, vs in req.query.items() for v in vs if k not in ("page", "page_size")]
    pairs += [("page", str(number)), ("page_size", str(size))]
    return f"{req.path}?{urlencode(pairs)}"
