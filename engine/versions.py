"""Semantic versions in tags, and npm-style version ranges, for ``semver`` tag filters.

A tag is a version when it reads ``[v]MAJOR.MINOR.PATCH[-PRERELEASE][+BUILD]`` exactly
(SemVer 2.0.0: no leading zeros; OCI tags cannot hold ``+``, so BUILD only comes from other
callers), or the short forms people tag with, ``[v]MAJOR.MINOR`` and ``[v]MAJOR``, which read
as ``MAJOR.MINOR.0`` and ``MAJOR.0.0`` (``1.0``, ``v1.2``, ``2``: ``>=1.0`` keeps ``1.0``; a
floating ``1.25`` counts as ``1.25.0``). ``latest``, ``1.2.3.4``, ``01.2.3``, ``1.0-rc1`` are
not versions and match no range.

Ranges follow npm's grammar (node-semver 7) with the same results, plus two extensions:

- comparators ``<``, ``<=``, ``>``, ``>=``, ``=`` (or none) on a version; ``^1.2.3``
  (compatible: same major, or same minor below 1.0); ``~1.4.2`` / ``~>1.4.2`` (same minor);
  X-ranges ``*``, ``1``, ``1.x``, ``1.2.*``; hyphen ranges ``1.2 - 2.3.4``;
- comparators joined by spaces must all hold; ``||`` separates alternatives;
- extensions: commas join comparators like spaces (``>=1.2.0, <2.0.0``), and ``!=`` excludes a
  version or an X-range (``!=1.3.0``, ``!=1.4.x``).

Pre-releases (npm's rule): a version with a pre-release (``1.3.0-rc.1``) matches only an
alternative with a comparator naming a pre-release of the same MAJOR.MINOR.PATCH
(``>=1.3.0-rc.0 <2``), so ``^1.2`` never picks up release candidates. ``!=`` comparators do not
count. An empty alternative (``1.x ||``) is an error, not "anything", so a typo cannot widen a
filter.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache

__all__ = ["Comparator", "SemverError", "Version", "VersionRange", "parse_range", "parse_version"]

_NUM = r"0|[1-9][0-9]*"
_PRE_ID = r"0|[1-9][0-9]*|[0-9]*[A-Za-z-][0-9A-Za-z-]*"
_PRE = rf"(?:{_PRE_ID})(?:\.(?:{_PRE_ID}))*"
_BUILD = r"[0-9A-Za-z-]+(?:\.[0-9A-Za-z-]+)*"
_VERSION = re.compile(rf"v?({_NUM})(?:\.({_NUM})(?:\.({_NUM})(?:-({_PRE}))?(?:\+{_BUILD})?)?)?")
_XR = rf"{_NUM}|[xX*]"
_PARTIAL = re.compile(rf"v?({_XR})(?:\.({_XR})(?:\.({_XR})(?:-({_PRE}))?(?:\+{_BUILD})?)?)?")
_OPERATOR = re.compile(r"(<=|>=|!=|<|>|=|~>|~|\^)?(.*)", re.DOTALL)
_HYPHEN = re.compile(r"(\S+)\s+-\s+(\S+)")
MAX_TAG_CHARS = 128  # OCI's limit on a tag
_HINT = "write e.g. >=1.2.0 <2.0.0, ^1.2, ~1.4.2, 1.x, 1.2.* or 1.2 - 1.4"


class SemverError(ValueError):
    """A version range that cannot be read; the message says which part and how to write it."""


@dataclass(frozen=True, slots=True)
class Version:
    """A SemVer 2.0.0 version (build metadata dropped: it never affects precedence)."""

    major: int
    minor: int
    patch: int
    prerelease: tuple[int | str, ...] = ()

    def key(self) -> tuple[int, int, int, int, tuple[tuple[int, int | str], ...]]:
        """Sorts by SemVer precedence: a pre-release sorts before its release; numeric
        identifiers before alphanumeric ones; a longer identifier list after its prefix."""
        pre = tuple((0, p) if isinstance(p, int) else (1, p) for p in self.prerelease)
        return (self.major, self.minor, self.patch, 0 if pre else 1, pre)

    def __str__(self) -> str:
        text = f"{self.major}.{self.minor}.{self.patch}"
        return text + ("-" + ".".join(map(str, self.prerelease)) if self.prerelease else "")


def parse_version(tag: str) -> Version | None:
    """The version a tag names, or None when it is not exactly a SemVer version."""
    m = _VERSION.fullmatch(tag) if len(tag) <= MAX_TAG_CHARS else None
    if m is None:
        return None
    return Version(int(m[1]), int(m[2] or 0), int(m[3] or 0), _prerelease(m[4]))


def _prerelease(text: str | None) -> tuple[int | str, ...]:
    if not text:
        return ()
    return tuple(int(p) if p.isdigit() else p for p in text.split("."))


@dataclass(frozen=True, slots=True)
class Comparator:
    """One condition: ``op`` is ``<``, ``<=``, ``>``, ``>=``, ``=``, ``!=`` or ``*`` (any).
    A ``!=`` with an ``upper`` bound excludes ``version <= v < upper`` (an X-range)."""

    op: str
    version: Version = Version(0, 0, 0)
    upper: Version | None = None

    def test(self, v: Version) -> bool:
        a, b = v.key(), self.version.key()
        if self.op == "*":
            return True
        if self.op == "!=":
            return a != b if self.upper is None else not (b <= a < self.upper.key())
        if self.op == "<":
            return a < b
        if self.op == "<=":
            return a <= b
        if self.op == ">":
            return a > b
        if self.op == ">=":
            return a >= b
        return a == b  # "="


_ANY = Comparator("*")
_NOTHING = Comparator("<", Version(0, 0, 0, (0,)))


@dataclass(frozen=True, slots=True)
class VersionRange:
    """A parsed range: alternatives (``||``), each a conjunction of comparators."""

    text: str
    alternatives: tuple[tuple[Comparator, ...], ...]

    def matches(self, tag: str) -> bool:
        """Whether ``tag`` is a version inside the range; tags that are not versions never are."""
        v = parse_version(tag)
        return v is not None and self.contains(v)

    def contains(self, v: Version) -> bool:
        return any(_alternative_holds(alt, v) for alt in self.alternatives)


def _alternative_holds(alt: tuple[Comparator, ...], v: Version) -> bool:
    if not all(c.test(v) for c in alt):
        return False
    if not v.prerelease:
        return True
    return any(
        c.op not in ("*", "!=")
        and c.version.prerelease
        and (c.version.major, c.version.minor, c.version.patch) == (v.major, v.minor, v.patch)
        for c in alt
    )


@lru_cache(maxsize=1024)
def parse_range(text: str) -> VersionRange:
    """:raises SemverError: naming the part that is not a version or a range."""
    alternatives = []
    for alt in text.split("||"):
        alt = alt.strip()
        if not alt:
            raise SemverError(f"{text!r} has an empty alternative around '||': {_HINT}")
        alternatives.append(tuple(_conjunction(alt, text)))
    return VersionRange(text, tuple(alternatives))


def _conjunction(alt: str, text: str) -> list[Comparator]:
    hyphen = _HYPHEN.fullmatch(alt)
    if hyphen:
        low, high = (_partial(p, text) for p in hyphen.groups())
        return _hyphen(low, high)
    alt = re.sub(r"(<=|>=|!=|<|>|=|~>|~|\^)\s+", r"\1", alt)
    out: list[Comparator] = []
    for token in re.split(r"[\s,]+", alt):
        if token:
            m = _OPERATOR.fullmatch(token)
            assert m is not None  # the pattern matches any token
            out += _comparators(m[1] or "", _partial(m[2], text))
    if not out:
        raise SemverError(f"{text!r} has no comparator in {alt!r}: {_HINT}")
    return out


Partial = tuple[int | None, int | None, int | None, tuple[int | str, ...]]


def _partial(text: str, whole: str) -> Partial:
    """Major, minor, patch (None where ``x``, ``*`` or missing: all later parts too) and a
    pre-release (only with all three numbers)."""
    m = _PARTIAL.fullmatch(text)
    if m is None:
        raise SemverError(f"{whole!r}: {text!r} is not a version: {_HINT}")
    parts: list[int | None] = []
    for g in (m[1], m[2], m[3]):
        if g is not None and g.isdigit() and parts and parts[-1] is None:
            raise SemverError(f"{whole!r}: {text!r} has a number after a wildcard: {_HINT}")
        parts.append(int(g) if g is not None and g.isdigit() else None)
    return parts[0], parts[1], parts[2], _prerelease(m[4]) if parts[2] is not None else ()


def _comparators(op: str, p: Partial) -> list[Comparator]:
    major, minor, patch, pre = p
    if op in ("~", "~>"):
        return _tilde(p)
    if op == "^":
        return _caret(p)
    if major is None:  # "*", "x", ">=*": anything; "<*", ">*": nothing
        if op == "!=":
            return [_NOTHING]
        return [_NOTHING] if op in ("<", ">") else [_ANY]
    if minor is not None and patch is not None:
        return [Comparator(op or "=", Version(major, minor, patch, pre))]
    low = Version(major, minor or 0, 0)
    high = Version(major + 1, 0, 0, (0,)) if minor is None else Version(major, minor + 1, 0, (0,))
    if op in ("", "="):
        return [Comparator(">=", low), Comparator("<", high)]
    if op == "!=":
        return [Comparator("!=", low, upper=high)]
    if op == ">":  # >1 is >=2.0.0, >1.2 is >=1.3.0
        return [Comparator(">=", Version(high.major, high.minor, 0))]
    if op == "<=":  # <=1.2 is <1.3.0-0
        return [Comparator("<", high)]
    if op == "<":
        return [Comparator("<", Version(major, minor or 0, 0, (0,)))]
    return [Comparator(">=", low)]  # ">="


def _tilde(p: Partial) -> list[Comparator]:
    major, minor, patch, pre = p
    if major is None:
        return [_ANY]
    if minor is None:
        return [Comparator(">=", Version(major, 0, 0)), _below(major + 1, 0, 0)]
    low = Version(major, minor, patch or 0, pre)
    return [Comparator(">=", low), _below(major, minor + 1, 0)]


def _caret(p: Partial) -> list[Comparator]:
    major, minor, patch, pre = p
    if major is None:
        return [_ANY]
    if minor is None:
        return [Comparator(">=", Version(major, 0, 0)), _below(major + 1, 0, 0)]
    low = Version(major, minor, patch or 0, pre)
    if major > 0:
        high = _below(major + 1, 0, 0)
    elif minor > 0 or patch is None:
        high = _below(0, minor + 1, 0)
    else:
        high = _below(0, 0, patch + 1)
    return [Comparator(">=", low), high]


def _hyphen(low: Partial, high: Partial) -> list[Comparator]:
    out: list[Comparator] = []
    if low[0] is not None:
        out.append(Comparator(">=", Version(low[0], low[1] or 0, low[2] or 0, low[3])))
    h_major, h_minor, h_patch, h_pre = high
    if h_major is None:
        pass
    elif h_minor is None:
        out.append(_below(h_major + 1, 0, 0))
    elif h_patch is None:
        out.append(_below(h_major, h_minor + 1, 0))
    else:
        out.append(Comparator("<=", Version(h_major, h_minor, h_patch, h_pre)))
    return out or [_ANY]


def _below(major: int, minor: int, patch: int) -> Comparator:
    """``<M.m.p-0``: below every pre-release of M.m.p too."""
    return Comparator("<", Version(major, minor, patch, (0,)))
