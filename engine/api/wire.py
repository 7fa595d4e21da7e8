"""The wire format: the one place that bounds what a request carries — JSON bodies, query
parameters, ids in the path — and writes times.

Every reader raises :class:`~engine.api.errors.ApiError` ``BAD_REQUEST`` naming the field, so a
handler never formats a validation message itself. ``None`` from a reader means "not given"
(absent or JSON null) — Harbor's bodies are all-nullable.

Bounds, checked before any handler sees the value:

- a body is a JSON object nested at most :data:`MAX_JSON_DEPTH` deep, with no ``NaN`` or
  ``Infinity``, no integer beyond 64 bits, no string with a NUL or an unpaired surrogate
  (neither can be stored), at most :data:`MAX_JSON_NODES` values in all;
- ids (path and body) are integers from 0 to :data:`MAX_ID` (the database's id range); other
  integers fit in 64 bits, or in the range the field names;
- query values are at most :data:`MAX_QUERY_CHARS` characters without control characters, and
  integers there are plain ASCII digits (``²`` and ``1_000`` are not numbers here).
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from typing import Any

from engine.api.errors import bad_request, not_found
from registry.http.asgi import Request

__all__ = [
    "MAX_ID",
    "MAX_INT32",
    "MAX_INT64",
    "Body",
    "check_path_ids",
    "check_query",
    "parse_json",
    "query_int",
    "read_body",
    "rfc3339",
    "to_int",
]

MAX_ID = 2**31 - 1  # ids are INTEGER columns (32-bit on PostgreSQL)
MAX_INT32 = 2**31 - 1
MAX_INT64 = 2**63 - 1
MAX_JSON_DEPTH = 32
MAX_JSON_NODES = 100_000
MAX_QUERY_CHARS = 2048
_DIGITS = re.compile(r"-?[0-9]{1,19}")


def rfc3339(value: datetime | None) -> str | None:
    """``2024-05-01T12:00:00.000Z`` (naive values are UTC, as the database stores them)."""
    if value is None:
        return None
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    value = value.astimezone(UTC)
    return value.strftime("%Y-%m-%dT%H:%M:%S.") + f"{value.microsecond // 1000:03d}Z"


async def read_body(req: Request, limit_bytes: int) -> Body:
    raw = await req.body(limit_bytes)
    if not raw.strip():
        return Body({})
    data = parse_json(raw)
    if not isinstance(data, dict):
        raise bad_request("the request body must be a JSON object")
    return Body(data)


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def parse_json(raw: bytes) -> Any:
    """A request body's JSON, within the module's bounds. :raises ApiError: 400 saying why."""
    try:
        data = json.loads(raw, parse_constant=_no_constant)
    except RecursionError:
        raise bad_request(f"the JSON is nested more than {MAX_JSON_DEPTH} levels deep") from None
    except (ValueError, UnicodeDecodeError) as e:
        raise bad_request(f"the request body is not valid JSON: {str(e)[:200]}") from None
    _check_tree(data)
    return data


def _check_tree(data: Any) -> None:
    """Depth, size, integers and strings of a decoded JSON document (iterative: a deep one
    must not exhaust the stack here either)."""
    todo: list[tuple[Any, int]] = [(data, 1)]
    nodes = 0
    while todo:
        value, depth = todo.pop()
        nodes += 1
        if nodes > MAX_JSON_NODES:
            raise bad_request(f"the JSON holds more than {MAX_JSON_NODES} values")
        if isinstance(value, dict):
            _deeper(depth)
            for key, item in value.items():
                _check_string(key)
                todo.append((item, depth + 1))
        elif isinstance(value, list):
            _deeper(depth)
            todo.extend((item, depth + 1) for item in value)
        elif isinstance(value, str):
            _check_string(value)
        elif isinstance(value, int) and not -MAX_INT64 - 1 <= value <= MAX_INT64:
            raise bad_request(f"the JSON holds an integer beyond 64 bits: {str(value)[:30]}…")


def _deeper(depth: int) -> None:
    if depth > MAX_JSON_DEPTH:
        raise bad_request(f"the JSON is nested more than {MAX_JSON_DEPTH} levels deep")


def _check_string(text: str) -> None:
    if "\0" in text:
        raise bad_request("a JSON string holds a NUL character (\\u0000), which cannot be stored")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise bad_request("a JSON string holds an unpaired surrogate (\\ud800-\\udfff)") from None


def to_int(raw: str, what: str, *, minimum: int = 0, maximum: int = MAX_INT64) -> int:
    """``raw`` (from a query or a path) as an integer in ``[minimum, maximum]``.
    :raises ApiError: 400 naming ``what`` and the range."""
    text = raw.strip()
    value = int(text) if _DIGITS.fullmatch(text) else None
    if value is None or not minimum <= value <= maximum:
        raise bad_request(
            f"{what} must be an integer from {minimum} to {maximum}, not {raw[:40]!r}"
        )
    return value


def query_int(req: Request, name: str, *, minimum: int = 0, maximum: int = MAX_INT64) -> int | None:
    """The query parameter ``name`` as an integer (None when absent or empty)."""
    raw = req.q(name)
    if raw is None or raw == "":
        return None
    return to_int(raw, name, minimum=minimum, maximum=maximum)


def check_query(req: Request) -> None:
    """Every query value is bounded and printable (NUL cannot even be stored)."""
    for name, values in req.query.items():
        for value in (name, *values):
            if len(value) > MAX_QUERY_CHARS:
                raise bad_request(
                    f"query parameter {name[:40]!r} is over {MAX_QUERY_CHARS} characters"
                )
            if any(ord(ch) < 32 or ord(ch) == 127 for ch in value):
                raise bad_request(f"query parameter {name[:40]!r} holds a control character")


def check_path_ids(params: dict[str, str]) -> None:
    """Ids in the path (matched as ASCII digits) that no row can have are absent rows."""
    for name, raw in params.items():
        if raw.isascii() and raw.isdigit() and (len(raw) > 10 or int(raw) > MAX_ID):
            what = "registry or policy" if name == "id" else name.replace("_", " ")
            raise not_found(f"no {what} has the id {raw[:30]}: ids are at most {MAX_ID}")


class Body:
    """Typed access to a JSON object; ``prefix`` names nested objects in messages."""

    def __init__(self, data: dict[str, Any], prefix: str = "") -> None:
        self.data, self.prefix = data, prefix

    def has(self, name: str) -> bool:
        return self.data.get(name) is not None

    def _name(self, name: str) -> str:
        return f"{self.prefix}{name}"

    def text(self, name: str, *, max_length: int = 4096) -> str | None:
        value = self.data.get(name)
        if value is None:
            return None
        if not isinstance(value, str):
            raise bad_request(f"{self._name(name)} must be a string")
        if len(value) > max_length:
            raise bad_request(f"{self._name(name)} is longer than {max_length} characters")
        return value

    def flag(self, name: str) -> bool | None:
        value = self.data.get(name)
        if value is None:
            return None
        if not isinstance(value, bool):
            raise bad_request(f"{self._name(name)} must be true or false")
        return value

    def integer(
        self, name: str, *, minimum: int = -MAX_INT64 - 1, maximum: int = MAX_INT64
    ) -> int | None:
        value = self.data.get(name)
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, int):
            raise bad_request(f"{self._name(name)} must be an integer")
        if value < minimum:
            raise bad_request(f"{self._name(name)} must be at least {minimum}")
        if value > maximum:
            raise bad_request(f"{self._name(name)} must be at most {maximum}")
        return value

    def id(self, name: str, *, minimum: int = 1) -> int | None:
        """An id of a stored row (``minimum`` 0 where 0 means the local registry)."""
        return self.integer(name, minimum=minimum, maximum=MAX_ID)

    def number(self, name: str, *, minimum: float, maximum: float) -> float | None:
        value = self.data.get(name)
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise bad_request(f"{self._name(name)} must be a number")
        if not minimum <= value <= maximum:
            raise bad_request(f"{self._name(name)} must be between {minimum} and {maximum}")
        return float(value)

    def choice(self, name: str, choices: tuple[str, ...]) -> str | None:
        value = self.text(name, max_length=64)
        if value is not None and value not in choices:
            raise bad_request(f"{self._name(name)} must be one of {', '.join(choices)}")
        return value

    def obj(self, name: str) -> Body | None:
        value = self.data.get(name)
        if value is None:
            return None
        if not isinstance(value, dict):
            raise bad_request(f"{self._name(name)} must be an object")
        return Body(value, f"{self._name(name)}.")

    def items(self, name: str) -> list[Any] | None:
        value = self.data.get(name)
        if value is None:
            return None
        if not isinstance(value, list):
            raise bad_request(f"{self._name(name)} must be a list")
        return value
