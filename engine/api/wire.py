"""The JSON wire format: reading request bodies field by field, and writing times.

Every reader raises :class:`~engine.api.errors.ApiError` ``BAD_REQUEST`` naming the field, so a
handler never formats a validation message itself. ``None`` from a reader means "not given"
(absent or JSON null) — Harbor's bodies are all-nullable.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from engine.api.errors import bad_request
from registry.http.asgi import Request

__all__ = ["Body", "read_body", "rfc3339"]


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
    try:
        data = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as e:
        raise bad_request(f"the request body is not valid JSON: {e}") from None
    if not isinstance(data, dict):
        raise bad_request("the request body must be a JSON object")
    return Body(data)


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

    def integer(self, name: str, *, minimum: int | None = None) -> int | None:
        value = self.data.get(name)
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, int):
            raise bad_request(f"{self._name(name)} must be an integer")
        if minimum is not None and value < minimum:
            raise bad_request(f"{self._name(name)} must be at least {minimum}")
        return value

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
