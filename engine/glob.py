"""Glob patterns exactly as Harbor matches them: ``doublestar.Match`` of bmatcuk/doublestar
v1.3.4, behind Harbor's rule that an empty pattern matches everything
(``src/pkg/reg/util/pattern.go``).

The syntax, per path component (names are split on ``/``):

- ``*`` any run of characters inside one component (never ``/``); ``?`` one character;
- ``[abc]``, ``[a-z]``, ``[^a-z]`` one character from (or not from) a class; ``!`` is a literal,
  not a negation; ``\\`` escapes inside a class too;
- ``{a,b}`` alternatives, nested allowed (``{a,{b,c}d}``), empty ones too (``{,-rc}``);
- ``\\c`` the character ``c`` itself;
- ``**`` only when it is a whole component: zero or more components (``**/nginx`` matches
  ``nginx`` and ``a/b/nginx``), but one or more at the end (``library/**`` matches
  ``library/a/b``, not ``library``). Anywhere else (``a**``, ``{a,b}**``) it is just ``*``.

doublestar's matcher has quirks that Harbor users live with, and this module keeps them, so a
policy moved from Harbor selects the same names:

- a ``*`` followed by more pattern in its component leaves at least one character for the
  rest: ``*{,-rc}`` does not match ``1.0`` (it matches ``1.0-rc``), ``a*{,x}`` not ``ab``;
- where a name component runs out, what is left of the pattern's component matches nothing
  unless it is empty, ``*``, ``**`` or ``{…}`` groups with an empty-capable alternative followed
  by such a rest: ``a**`` matches ``a`` but ``a***`` does not; ``[^]`` matches any character.

Where we differ, on purpose:

- malformed patterns (an unclosed ``[`` or ``{``, an empty or broken class, a trailing ``\\``)
  raise :class:`GlobError` up front; doublestar only fails when matching reaches the bad part
  (``a[`` quietly fails to match ``b``), and Harbor then fails the whole run;
- a ``/`` inside ``{…}`` (``{library/nginx,tools/*}``) is plain alternation; doublestar
  mis-handles alternatives that end in different components (``{a,a/x}`` does not match ``a``);
- names are split on every ``/``; doublestar honours ``\\/`` in names too, but repository names
  and tags never contain a backslash.

Each pattern compiles once (cached) to a small automaton that matches in linear time;
:func:`glob_match` is the API, :func:`compile_glob` gives the compiled :class:`Glob`.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import lru_cache

__all__ = ["Glob", "GlobError", "compile_glob", "glob_match"]

_MAX_EXPANSIONS = 256
_MAX_CACHED_STEPS = 65536

Predicate = Callable[[str], bool]
# guards on empty moves, tested on the next character of the name (None at its end)
_MORE = 1  # the current name component has characters left
_DONE = 2  # ... or it has none


class GlobError(ValueError):
    """A malformed glob pattern; the message names the pattern and what to fix."""


def glob_match(pattern: str, name: str) -> bool:
    """Whether ``name`` (a repository path or a tag) matches ``pattern``.

    An empty pattern matches everything, ``""`` included (Harbor's rule); ``*`` also matches
    ``""`` (an untagged artifact's tag). :raises GlobError: if the pattern is malformed.
    """
    return compile_glob(pattern).match(name)


@lru_cache(maxsize=4096)
def compile_glob(pattern: str) -> Glob:
    """``pattern`` compiled once (cached). :raises GlobError: if it is malformed."""
    return Glob(pattern)


class Glob:
    """A compiled pattern. :meth:`match` runs in time linear in the name's length, whatever
    the pattern (doublestar backtracks: ``*a*a*a*a*a*b`` takes it minutes on a 128-character
    tag): the pattern is a small automaton whose deterministic steps are built as names need
    them and kept (up to a bound, then started afresh). Safe to share between threads."""

    __slots__ = ("_accept", "_dfa", "_eps", "_start", "_succ", "pattern")

    def __init__(self, pattern: str) -> None:
        self.pattern = pattern
        self._eps: list[list[tuple[int, int]]] = []  # state -> [(target, guard)]
        self._succ: list[list[tuple[Predicate, int]]] = []  # state -> [(test, target)]
        try:
            self._start = self._state()
            self._accept = self._state()
            for alternative in _expand_slashed_braces(pattern) if pattern else ["**"]:
                self._eps[self._start].append((self._path(alternative), 0))
        except GlobError as e:
            raise GlobError(f"bad glob pattern {pattern!r}: {e}") from None
        self._dfa = _Dfa(self._start)

    def __repr__(self) -> str:
        return f"Glob({self.pattern!r})"

    def match(self, name: str) -> bool:
        """Whether the whole of ``name`` matches."""
        dfa = self._dfa
        if len(dfa.steps) >= _MAX_CACHED_STEPS:
            dfa = self._dfa = _Dfa(self._start)
        current = 0
        for ch in name:
            nxt = dfa.steps.get((current, ch))
            if nxt is None:
                nxt = self._step(dfa, current, ch)
            current = nxt
        verdict = dfa.verdicts.get(current)
        if verdict is None:
            verdict = self._accept in self._closure(dfa.sets[current], None)
            dfa.verdicts[current] = verdict
        return verdict

    def _step(self, dfa: _Dfa, current: int, ch: str) -> int:
        targets = frozenset(
            t for s in self._closure(dfa.sets[current], ch) for test, t in self._succ[s] if test(ch)
        )
        found = dfa.ids.get(targets)
        if found is None:
            found = dfa.ids[targets] = len(dfa.sets)
            dfa.sets.append(targets)
        dfa.steps[current, ch] = found
        return found

    def _closure(self, states: frozenset[int], nxt: str | None) -> set[int]:
        """``states`` and what empty moves reach from them, before the character ``nxt``."""
        more = nxt is not None and nxt != "/"
        seen = set(states)
        todo = list(seen)
        while todo:
            for target, guard in self._eps[todo.pop()]:
                if target not in seen and (not guard or (guard == _MORE) == more):
                    seen.add(target)
                    todo.append(target)
        return seen

    # building ---------------------------------------------------------------------------
    def _state(self) -> int:
        self._eps.append([])
        self._succ.append([])
        return len(self._eps) - 1

    def _path(self, pattern: str) -> int:
        """Component by component; a whole ``**`` component spans components."""
        components = _split_components(pattern)
        entry = current = self._state()
        for k, comp in enumerate(components):
            last = k == len(components) - 1
            if comp == "**" and last:  # one or more components: anything at all
                self._succ[current].append((_anything, current))
                break
            if comp == "**":  # zero or more components, each with its "/"
                inside = self._state()
                self._succ[current] += [(_not_slash, inside), (_slash, current)]
                self._succ[inside] += [(_not_slash, inside), (_slash, current)]
                continue
            current = self._sequence(comp, "", current)
            if not last:
                after = self._state()
                self._succ[current].append((_slash, after))
                current = after
        self._eps[current].append((self._accept, 0))
        return entry

    def _sequence(self, text: str, after: str, current: int) -> int:
        """Build ``text``, one component's pattern (``after`` follows it in that component),
        from state ``current``; returns the state reached at its end.

        ``*`` and ``{…}`` can match nothing; where the name's component has run out they
        may, only if doublestar's zero-length test passes on the rest of the pattern."""
        i = 0
        while i < len(text):
            here = text[i:] + after
            c = text[i]
            out = self._state()
            if c in "*{" and _zero_length(here):
                self._eps[current].append((out, _DONE))
            if c == "\\":
                if i + 1 >= len(text):
                    raise GlobError("it ends with a lone '\\': escape it as '\\\\'")
                if text[i + 1] != "/":  # an escaped "/" matches nothing
                    self._succ[current].append((_literal(text[i + 1]), out))
                i += 2
            elif c == "*":
                loop = self._state()
                self._eps[current].append((loop, _MORE))
                self._succ[loop].append((_not_slash, loop))
                # doublestar: a "*" with pattern after it in its component leaves that
                # pattern at least one character
                self._eps[loop].append((out, 0 if len(here) == 1 else _MORE))
                i += 1
            elif c == "?":
                self._succ[current].append((_not_slash, out))
                i += 1
            elif c == "[":
                test, i = _char_class(text, i)
                self._succ[current].append((test, out))
            elif c == "{":
                options, end = _split_alternatives(text, i + 1)
                fork = self._state()
                self._eps[current].append((fork, _MORE))
                for option in options:
                    start = self._state()
                    self._eps[fork].append((start, 0))
                    self._eps[self._sequence(option, text[end:] + after, start)].append((out, 0))
                i = end
            else:
                self._succ[current].append((_literal(c), out))
                i += 1
            current = out
        return current


class _Dfa:
    """The deterministic steps built so far: sets of automaton states, numbered; 0 is the
    start."""

    __slots__ = ("ids", "sets", "steps", "verdicts")

    def __init__(self, start: int) -> None:
        self.sets = [frozenset({start})]
        self.ids = {self.sets[0]: 0}
        self.steps: dict[tuple[int, str], int] = {}
        self.verdicts: dict[int, bool] = {}


def _anything(ch: str) -> bool:
    return True


def _not_slash(ch: str) -> bool:
    return ch != "/"


def _slash(ch: str) -> bool:
    return ch == "/"


def _literal(c: str) -> Predicate:
    return c.__eq__


def _zero_length(text: str) -> bool:
    """doublestar's ``isZeroLengthPattern``: what may be left of a component's pattern when
    the name's component has run out."""
    if text in ("", "*", "**"):
        return True
    if text.startswith("{"):
        options, end = _split_alternatives(text, 1)
        return _zero_length(text[end:]) and any(_zero_length(o) for o in options)
    return False


def _split_alternatives(text: str, start: int) -> tuple[list[str], int]:
    """The alternatives of the ``{`` just before ``start`` and the index after its ``}``
    (nesting and escapes respected, ``[`` not special, as in doublestar)."""
    options: list[str] = []
    depth, begin, escaped = 1, start, False
    for i in range(start, len(text)):
        c = text[i]
        if escaped:
            escaped = False
        elif c == "\\":
            escaped = True
        elif c == "{":
            depth += 1
        elif c == "}":
            depth -= 1
            if depth == 0:
                options.append(text[begin:i])
                return options, i + 1
        elif c == "," and depth == 1:
            options.append(text[begin:i])
            begin = i + 1
    raise GlobError(
        f"'{{' at {text[start - 1 :]!r} is never closed: add '}}' or escape it as '\\{{'"
    )


def _class_end(text: str, start: int) -> int | None:
    """Index of the ``]`` closing a class whose body starts at ``start``: the first one not
    right after a backslash (doublestar's rule)."""
    j = text.find("]", start)
    while j > start and text[j - 1] == "\\":
        start = j + 1
        j = text.find("]", start)
    return None if j < 0 else j


def _char_class(text: str, i: int) -> tuple[Predicate, int]:
    """The test for the class opening at ``text[i]`` and the index after it."""
    end = _class_end(text, i + 1)
    if end is None:
        raise GlobError(
            f"'[' at {text[i:]!r} is never closed in its path component: "
            "add ']' or escape it as '\\['"
        )
    body = text[i + 1 : end]
    if not body:
        raise GlobError("'[]' is an empty character class: put characters in it")
    negate = body[0] == "^"
    j = 1 if negate else 0
    ranges: list[tuple[str, str]] = []
    while j < len(body):
        low, j = _class_char(body, j)
        high = low
        if j < len(body) and body[j] == "-":
            if j + 1 >= len(body):
                raise GlobError(f"class '[{body}]' ends with '-': escape it as '\\-'")
            high, j = _class_char(body, j + 1)
        ranges.append((low, high))  # doublestar: an inverted range matches nothing

    def test(ch: str) -> bool:
        return ch != "/" and any(lo <= ch <= hi for lo, hi in ranges) != negate

    return test, end + 1


def _class_char(body: str, j: int) -> tuple[str, int]:
    c = body[j]
    if c == "-":
        raise GlobError(f"class '[{body}]' has a '-' with no start: escape it as '\\-'")
    if c != "\\":
        return c, j + 1
    if j + 1 >= len(body):
        raise GlobError(f"class '[{body}]' ends with a lone '\\'")
    return body[j + 1], j + 2


def _split_components(pattern: str) -> list[str]:
    """Split on ``/`` outside escapes and classes."""
    out: list[str] = []
    begin = i = 0
    while i < len(pattern):
        c = pattern[i]
        if c == "\\":
            i += 2
            continue
        if c == "[":
            end = _class_end(pattern, i + 1)
            if end is not None:  # a class never matches "/", but doublestar lets it hold one
                i = end + 1
                continue
        if c == "/":
            out.append(pattern[begin:i])
            begin = i + 1
        i += 1
    out.append(pattern[begin:])
    return out


def _expand_slashed_braces(pattern: str) -> list[str]:
    """The pattern with every ``{…}`` holding a ``/`` written out as separate patterns."""
    done: list[str] = []
    todo = [pattern]
    while todo:
        p = todo.pop()
        found = _slashed_brace(p)
        if found is None:
            done.append(p)
        else:
            start, options, end = found
            todo.extend(p[:start] + o + p[end:] for o in reversed(options))
        if len(done) + len(todo) > _MAX_EXPANSIONS:
            raise GlobError(
                f"its '{{…}}' groups holding '/' expand to more than {_MAX_EXPANSIONS} "
                "patterns: use fewer, or a regex filter"
            )
    return done


def _slashed_brace(p: str) -> tuple[int, list[str], int] | None:
    """The first top-level ``{…}`` with an unescaped ``/`` in it: start, alternatives, end."""
    i = 0
    while i < len(p):
        c = p[i]
        if c == "\\":
            i += 2
        elif c == "[":
            end = _class_end(p, i + 1)
            i = i + 1 if end is None else end + 1
        elif c == "{":
            options, end = _split_alternatives(p, i + 1)
            if any(_has_separator(o) for o in options):
                return i, options, end
            i = end
        else:
            i += 1
    return None


def _has_separator(text: str) -> bool:
    i = 0
    while i < len(text):
        if text[i] == "\\":
            i += 2
            continue
        if text[i] == "/":
            return True
        i += 1
    return False
