"""Integers that cross the boundary as text (query values, header values) or as JSON numbers:
one rule for all of them, so no handler calls ``int()`` on what a client sent.

The rule: ASCII decimal digits only (no sign, no spaces, no ``²`` or other Unicode digits that
``str.isdigit`` accepts and ``int`` refuses), at most ``maximum`` — by default the largest signed
64-bit integer, the largest value every database and client we talk to can hold::

    parse_count("25")                  -> 25
    parse_count("²") / ("-1") / ("")   -> NumberError
    parse_count("9223372036854775808") -> NumberError (beyond 2**63 - 1)
"""

from __future__ import annotations

__all__ = ["INT64_MAX", "NumberError", "is_int64_size", "parse_count"]

INT64_MAX = 2**63 - 1
_MAX_DIGITS = len(str(INT64_MAX))


class NumberError(ValueError):
    """Text that is not a non-negative decimal integer in range; the message says which rule."""


def parse_count(text: str, *, maximum: int = INT64_MAX) -> int:
    """``text`` as a non-negative integer of at most ``maximum``.

    :raises NumberError: for anything but ASCII digits, or a value above ``maximum``.
    """
    if not text or not text.isascii() or not text.isdigit():
        raise NumberError(f"{text[:40]!r} is not a non-negative decimal integer (digits 0-9 only)")
    if len(text) > _MAX_DIGITS or int(text) > maximum:
        raise NumberError(f"{text[:40]!r} is larger than {maximum}")
    return int(text)


def is_int64_size(value: object) -> bool:
    """Whether a decoded JSON value is a size: an integer (not a bool) in 0 … 2**63 - 1."""
    return isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= INT64_MAX
