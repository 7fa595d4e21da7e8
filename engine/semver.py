"""Semantic-version ranges for tag filters (npm-style syntax, a practical subset).

Tags: ``1``, ``1.2``, ``1.2.3``, with an optional leading ``v``, ``-prerelease`` and
``+build`` (missing parts are 0). Ranges: comparators ``>= > <= < = !=``, ``^1.2`` (same major;
same minor for 0.x), ``~1.4`` (same minor), ``1.x`` / ``1.2.*`` wildcards, joined by spaces or
commas (all must hold), alternatives joined by ``||``. As in npm, a pre-release tag matches only
when a comparator of the range names a pre-release of the same major.minor.patch.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache

__all__ = ["SemverError", "Version", "parse_range", "range_matches"]

_VERSION = re.compile(
    r"^v?(\d+)(?:\.(\d+|[xX*]))?(?:\.(\d+|[xX*]))?(?:-([0-9A-Za-z.-]+))?(?:\+[0-9A-Za-z.-]+)?$"
)


class SemverError(ValueError):
    """A range that cannot be parsed."""


@dataclass(frozen=True, order=True, slots=True)
class Version:
    major: int
    minor: int
    patch: int
    pre: tuple[tuple[int, int | str], ...] = ()  # () sorts after any pre-release, see key()

    def key(self) -> tuple[int, int, int, int, tuple[tuple[int, int | str], ...]]:
        return (self.major, self.minor, self.patch, 0 if self.pre else 1, self.pre)

    @classmethod
    def parse(cls, text: str) -> Version | None:
        m = _VERSION.match(text.strip())
        if not m or any(g and not g.isdigit() for g in m.groups()[1:3]):
            return None
        pre = tuple(
            (0, int(p)) if p.isdigit() else (1, p) for p in (m.group(4) or "").split(".") if p
        )
        return cls(int(m.group(1)), int(m.group(2) or 0), int(m.group(3) or 0), pre)


Comparator = tuple[str, Version]


def _wild(text: str) -> tuple[Version, int] | None:
    """A partial or wildcard version and how many parts are fixed (1–3)."""
    m = _VERSION.match(text)
    if not m:
        return None
    parts = [m.group(1), m.group(2), m.group(3)]
    fixed = 0
    for part in parts:
        if part is None or not part.isdigit():
            break
        fixed += 1
    pre = tuple((0, int(p)) if p.isdigit() else (1, p) for p in (m.group(4) or "").split(".") if p)
    nums = [int(p) if p and p.isdigit() else 0 for p in parts]
    return Version(nums[0], nums[1], nums[2], pre), fixed


def _bump(v: Version, fixed: int) -> Version:
    if fixed <= 1:
        return Version(v.major + 1, 0, 0, ((0, 0),))
    if fixed == 2:
        return Version(v.major, v.minor + 1, 0, ((0, 0),))
    return Version(v.major, v.minor, v.patch + 1, ((0, 0),))


def _comparators(token: str) -> list[Comparator]:
    m = re.match(r"^(>=|<=|>|<|=|!=|\^|~)?(.+)$", token)
    if not m:
        raise SemverError(f"cannot read {token!r}")
    op, rest = m.group(1) or "", m.group(2)
    parsed = _wild(rest)
    if parsed is None:
        raise SemverError(f"{rest!r} is not a version")
    v, fixed = parsed
    if op == "^":
        fixed = 1 if v.major else (2 if v.minor else 3)
        return [(">=", v), ("<", _bump(v, max(fixed, 1)))]
    if op == "~":
        return [(">=", v), ("<", _bump(v, 2 if fixed >= 2 else 1))]
    if op in ("", "=") and fixed < 3:
        return [(">=", v), ("<", _bump(v, fixed))]
    return [(op or "=", v)]


@lru_cache(maxsize=256)
def parse_range(text: str) -> tuple[tuple[Comparator, ...], ...]:
    """Alternatives (``||``), each a conjunction of comparators. :raises SemverError:"""
    alternatives = []
    for alt in text.split("||"):
        tokens = [t for t in re.split(r"[\s,]+", re.sub(r"(>=|<=|!=|>|<|=)\s+", r"\1", alt)) if t]
        if not tokens:
            raise SemverError(f"empty range in {text!r}")
        alternatives.append(tuple(c for t in tokens for c in _comparators(t)))
    return tuple(alternatives)


def _holds(op: str, v: Version, bound: Version) -> bool:
    a, b = v.key(), bound.key()
    return {
        ">=": a >= b,
        ">": a > b,
        "<=": a <= b,
        "<": a < b,
        "=": a == b,
        "!=": a != b,
    }[op]


def range_matches(text: str, tag: str) -> bool:
    """Whether ``tag`` is a version inside the range ``text`` (non-versions never match)."""
    v = Version.parse(tag)
    if v is None:
        return False
    for alt in parse_range(text):
        if not all(_holds(op, v, bound) for op, bound in alt):
            continue
        if v.pre and not any(
            b.pre
            and (b.major, b.minor, b.patch) == (v.major, v.minor, v.patch)
            and b.pre != ((0, 0),)
            for _, b in alt
        ):
            continue
        return True
    return False
