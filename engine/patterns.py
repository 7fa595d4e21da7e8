"""The one place that turns a filter's pattern text into a matcher: globs, regular expressions
and semver ranges, each bounded, checked and compiled once.

Every path a pattern can take into Seawall — the management API, the CLI, ``seawall sync``,
a policy read back from the database — builds its :class:`~engine.filters.Filter` through
:func:`compile_pattern`, so a pattern that is accepted is one that can be matched safely:

- **length**: at most :data:`MAX_PATTERN_CHARS` characters;
- **glob** (Harbor's doublestar): :mod:`engine.glob`'s automaton, linear in the name;
- **regex**: RE2 syntax, matched by RE2 (``google-re2``), which runs in time linear in the
  text whatever the pattern: ``(a+)+$`` against ``"a" * 27 + "-"`` takes microseconds, where
  Python's backtracking ``re`` takes seconds (and doubles with each character). RE2 has no
  backreferences and no lookaround (refused with a 400 saying so), and bounded repetition
  counts are at most :data:`MAX_REPEAT` (``a{1,99999999999}`` is refused, not read as text);
- **semver**: :func:`engine.versions.parse_range` (npm ranges).

Matching a compiled pattern never raises and never takes more than time linear in the text
(tags are at most 128 characters, repository names 255).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from functools import lru_cache
from typing import Literal

from engine.glob import GlobError, compile_glob
from engine.versions import SemverError, parse_range

__all__ = [
    "MAX_PATTERN_CHARS",
    "MAX_REPEAT",
    "Matcher",
    "PatternError",
    "Syntax",
    "compile_pattern",
]

Syntax = Literal["glob", "regex", "semver"]
Matcher = Callable[[str], bool]
MAX_PATTERN_CHARS = 1024
MAX_REPEAT = 1000  # RE2's own limit on {m,n}
#: RE2's memory budget for one compiled pattern (its default is 8 MiB)
MAX_PROGRAM_BYTES = 4 << 20
_REPEAT = re.compile(r"(?<!\\)\{\s*([0-9]*)\s*(?:,\s*([0-9]*)\s*)?\}")


class PatternError(ValueError):
    """A pattern that cannot be used; the message says what is wrong and what to write."""


@lru_cache(maxsize=4096)
def compile_pattern(syntax: str, pattern: str) -> Matcher:
    """``pattern`` of ``syntax`` as a function ``text -> bool`` matching the whole text
    (cached: each pattern compiles once per process).

    :raises PatternError: too long, malformed, or beyond what can be matched in linear time.
    """
    if len(pattern) > MAX_PATTERN_CHARS:
        raise PatternError(
            f"the pattern is {len(pattern)} characters long; at most {MAX_PATTERN_CHARS} are "
            "allowed: split it into several filters"
        )
    if syntax == "glob":
        try:
            return compile_glob(pattern).match
        except GlobError as e:
            raise PatternError(str(e)) from None
    if syntax == "semver":
        try:
            return parse_range(pattern).matches
        except SemverError as e:
            raise PatternError(f"is not a semver range: {e}") from None
    if syntax == "regex":
        return _regex(pattern)
    raise PatternError(f"unknown pattern syntax {syntax!r}: use glob, regex or semver")


def _regex(pattern: str) -> Matcher:
    _check_repeats(pattern)
    try:
        import re2
    except ImportError:  # pragma: no cover - a broken installation
        raise PatternError(
            "regex filters need the google-re2 package (a linear-time regex engine): "
            "pip install google-re2"
        ) from None
    options = re2.Options()
    options.log_errors = False
    options.max_mem = MAX_PROGRAM_BYTES
    try:
        compiled = re2.compile(pattern, options)
    except re2.error as e:
        raise PatternError(f"is not a regular expression RE2 can run: {_reason(e)}") from None
    return lambda text: compiled.fullmatch(text) is not None


def _check_repeats(pattern: str) -> None:
    """Refuse ``{m,n}`` counts above :data:`MAX_REPEAT` (RE2 would read a too-large count as
    literal text, which is never what was meant)."""
    for m in _REPEAT.finditer(pattern):
        for count in m.groups():
            if count and (len(count) > 6 or int(count) > MAX_REPEAT):
                raise PatternError(
                    f"the repetition {m[0]!r} counts beyond {MAX_REPEAT}: use + or * instead "
                    f"of a count, or a count of at most {MAX_REPEAT}"
                )


def _reason(error: Exception) -> str:
    text = error.args[0] if error.args else str(error)
    if isinstance(text, bytes):
        text = text.decode("utf-8", "replace")
    text = str(text)
    if "invalid perl operator" in text or "invalid escape sequence: \\" in text:
        text += " (RE2 has no lookaround and no backreferences)"
    if "pattern too large" in text:
        text += " (use fewer or smaller bounded repetitions)"
    return text
