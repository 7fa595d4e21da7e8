"""Where and when a tag was written: its *origin*, and the *tombstone* a deleted tag leaves.

Pure values and their wire forms, shared by the registry (which stores and serves them), the
adapters (which read them from another Seawall) and the engine (which compares them to settle
a conflict between regions, see :mod:`engine.plan`).

An origin is the region that took the client's push (or delete) and that region's database
time then. A Seawall replicating a tag to another carries the origin through, so every region
holding a tag knows when it was really written, however it got there.

Wire forms:

- header ``Seawall-Origin: region=<name>; at=<RFC 3339 UTC, microseconds>`` — on a manifest
  ``PUT``/``DELETE`` by tag from a replicator (honoured only from an account allowed to
  replicate), and on a ``GET``/``HEAD`` of a manifest by tag (the tag's origin);
- header ``Seawall-Tombstone: digest=<digest>; region=<name>; at=<time>`` — on a ``404`` for a
  tag deleted here (within the tombstone retention);
- JSON ``{"region": <name>, "at": <time>}`` in Seawall's tag-list and catalog extensions.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from registry.oci.digest import Digest, DigestError

__all__ = [
    "EPOCH",
    "ORIGIN_HEADER",
    "TOMBSTONE_HEADER",
    "Origin",
    "OriginError",
    "Tombstone",
    "format_time",
    "is_region_name",
    "parse_time",
]

ORIGIN_HEADER = "Seawall-Origin"
TOMBSTONE_HEADER = "Seawall-Tombstone"
#: The origin of a tag written before origins were recorded: older than any other.
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

_REGION = re.compile(r"^[a-z0-9]+(?:[._-][a-z0-9]+)*$")
_TIME = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d{1,6})?Z$")
_MAX_HEADER_CHARS = 400
#: An origin further ahead of this registry's clock than this is refused (a clock that wrong
#: would win every conflict for as long).
MAX_AHEAD = timedelta(hours=1)


class OriginError(ValueError):
    """An origin or tombstone that cannot be read; the message says which part and why."""


def is_region_name(name: str) -> bool:
    """The region name rule: 1–63 lowercase letters and digits separated by ``.``, ``_`` or
    ``-``, never all digits."""
    return 0 < len(name) <= 63 and bool(_REGION.match(name)) and not name.isdigit()


def format_time(moment: datetime) -> str:
    """RFC 3339 in UTC with microseconds (``2024-05-01T12:00:00.123456Z``): sorts as it compares."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse_time(text: str) -> datetime:
    """:raises OriginError: not ``YYYY-MM-DDTHH:MM:SS[.ffffff]Z``."""
    if not isinstance(text, str) or not _TIME.match(text):
        raise OriginError(f"time {str(text)[:40]!r}: use RFC 3339 in UTC (…T12:00:00.123456Z)")
    try:
        return datetime.fromisoformat(text[:-1]).replace(tzinfo=UTC)
    except ValueError as e:
        raise OriginError(f"time {text!r}: {e}") from None


def _params(text: str, what: str) -> dict[str, str]:
    if len(text) > _MAX_HEADER_CHARS:
        raise OriginError(f"{what}: longer than {_MAX_HEADER_CHARS} characters")
    out: dict[str, str] = {}
    for part in text.split(";"):
        key, sep, value = part.strip().partition("=")
        if not sep or key in out:
            raise OriginError(f"{what}: write key=value pairs separated by ';'")
        out[key] = value
    return out


@dataclass(frozen=True, slots=True, order=True)
class Origin:
    """Where and when a tag (or a deletion) was written. Ordered by time, then region: the
    order last-writer-wins compares in (a tie between two writes then goes the same way in
    every region)."""

    at: datetime
    region: str

    def header(self) -> str:
        return f"region={self.region}; at={format_time(self.at)}"

    def json(self) -> dict[str, str]:
        return {"region": self.region, "at": format_time(self.at)}

    def describe(self) -> str:
        return f"{self.region}@{format_time(self.at)}"

    @classmethod
    def of(cls, region: object, at: object) -> Origin:
        """:raises OriginError: a region breaking the name rule or a malformed time."""
        if not isinstance(region, str) or not is_region_name(region):
            raise OriginError(f"region {str(region)[:70]!r} breaks the region name rule")
        if isinstance(at, datetime):
            moment = at if at.tzinfo else at.replace(tzinfo=UTC)
        else:
            moment = parse_time(str(at))
        return cls(moment.astimezone(UTC), region)

    @classmethod
    def parse_header(cls, text: str) -> Origin:
        """From ``region=<name>; at=<time>``. :raises OriginError:"""
        params = _params(text, ORIGIN_HEADER)
        if set(params) != {"region", "at"}:
            raise OriginError(f"{ORIGIN_HEADER}: give exactly region= and at=")
        return cls.of(params["region"], params["at"])

    @classmethod
    def from_json(cls, value: object) -> Origin | None:
        """From ``{"region", "at"}``; None for anything else (a listing's malformed entry is
        left out, never fatal)."""
        if not isinstance(value, dict):
            return None
        try:
            return cls.of(value.get("region"), value.get("at"))
        except OriginError:
            return None


@dataclass(frozen=True, slots=True)
class Tombstone:
    """A tag deleted here: the digest it named and the deletion's origin."""

    digest: str
    origin: Origin

    def header(self) -> str:
        return f"digest={self.digest}; {self.origin.header()}"

    def json(self) -> dict[str, str]:
        return {"digest": self.digest, **self.origin.json()}

    @classmethod
    def parse_header(cls, text: str) -> Tombstone:
        """From ``digest=<d>; region=<name>; at=<time>``. :raises OriginError:"""
        params = _params(text, TOMBSTONE_HEADER)
        if set(params) != {"digest", "region", "at"}:
            raise OriginError(f"{TOMBSTONE_HEADER}: give exactly digest=, region= and at=")
        return cls(_digest(params["digest"]), Origin.of(params["region"], params["at"]))

    @classmethod
    def from_json(cls, value: object) -> Tombstone | None:
        if not isinstance(value, dict):
            return None
        origin = Origin.from_json(value)
        try:
            digest = _digest(value.get("digest"))
        except OriginError:
            return None
        return None if origin is None else cls(digest, origin)


def _digest(value: object) -> str:
    try:
        return str(Digest.parse(str(value)))
    except DigestError as e:
        raise OriginError(f"digest {str(value)[:80]!r}: {e}") from None
