"""Harbor-compatible glob matching (bmatcuk/doublestar v1.3.4's ``Match``, as Harbor uses it).

Rules: ``*`` matches within one path component (never ``/``); ``**`` as a whole component
matches zero or more components (``**/nginx`` matches ``nginx``), except at the end, where it
needs at least one (``library/**`` matches ``library/a/b`` but not ``library``); ``?`` one
character; ``[abc]``, ``[a-z]``, ``[^…]`` (``!`` is a literal, not negation); ``{a,b}``
alternation, nested allowed; ``\\`` escapes. An empty pattern matches everything (Harbor's rule).
Patterns compile once to a regular expression and are cached.
"""

from __future__ import annotations

import re
from functools import lru_cache

__all__ = ["GlobError", "glob_match"]


class GlobError(ValueError):
    """A malformed pattern (an unclosed ``[`` or ``{``, a trailing ``\\``)."""


def glob_match(pattern: str, name: str) -> bool:
    if pattern == "":
        return True
    return _compile(pattern).fullmatch(name) is not None


@lru_cache(maxsize=1024)
def _compile(pattern: str) -> re.Pattern[str]:
    regex, end = _translate(pattern, 0, top=True)
    if end != len(pattern):
        raise GlobError(f"unexpected {pattern[end]!r} at {end} in {pattern!r}")
    return re.compile(regex, re.DOTALL)


def _translate(p: str, i: int, *, top: bool) -> tuple[str, int]:
    """Translate from ``i`` up to the end (top level) or to the ``,``/``}`` ending a branch."""
    out: list[str] = []
    n = len(p)
    while i < n:
        c = p[i]
        if not top and c in ",}":
            return "".join(out), i
        if c == "*" and i + 1 < n and p[i + 1] == "*" and _whole_component(p, i):
            at_start, at_end = i == 0, i + 2 == n
            if at_start and at_end:
                out.append(".*")
            elif at_end:  # "a/**": one or more components below
                out[-1:] = [] if out and out[-1] == "/" else out[-1:]
                out.append("(?:/[^/]+)+")
            else:  # "**/" at start or in the middle: zero or more components
                out.append("(?:[^/]+/)*")
                i += 1  # swallow the following "/"
            i += 2
            continue
        if c == "*":
            out.append("[^/]*")
        elif c == "?":
            out.append("[^/]")
        elif c == "[":
            cls, i = _char_class(p, i)
            out.append(cls)
            continue
        elif c == "{":
            branches: list[str] = []
            i += 1
            while True:
                branch, i = _translate(p, i, top=False)
                branches.append(branch)
                if i >= n:
                    raise GlobError(f"unclosed '{{' in {p!r}")
                if p[i] == "}":
                    i += 1
                    break
                i += 1  # ","
            out.append("(?:" + "|".join(branches) + ")")
            continue
        elif c == "\\":
            if i + 1 >= n:
                raise GlobError(f"trailing '\\' in {p!r}")
            out.append(re.escape(p[i + 1]))
            i += 2
            continue
        else:
            out.append("/" if c == "/" else re.escape(c))
        i += 1
    if not top:
        raise GlobError(f"unclosed '{{' in {p!r}")
    return "".join(out), i


def _whole_component(p: str, i: int) -> bool:
    before_ok = i == 0 or p[i - 1] == "/"
    after_ok = i + 2 == len(p) or p[i + 2] == "/"
    return before_ok and after_ok


def _char_class(p: str, i: int) -> tuple[str, int]:
    j = i + 1
    negate = j < len(p) and p[j] == "^"
    if negate:
        j += 1
    body: list[str] = []
    while j < len(p) and p[j] != "]":
        if p[j] == "\\" and j + 1 < len(p):
            body.append(re.escape(p[j + 1]))
            j += 2
            continue
        if p[j] == "-" and body and j + 1 < len(p) and p[j + 1] != "]":
            body.append("-")
        else:
            body.append(re.escape(p[j]) if p[j] != "-" else r"\-")
        j += 1
    if j >= len(p):
        raise GlobError(f"unclosed '[' in {p!r}")
    inner = "".join(body)
    return (f"[^/{inner}]" if negate else f"[{inner}]"), j + 1
