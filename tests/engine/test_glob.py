"""engine.glob against doublestar v1.3.4 as Harbor calls it.

Every row of ``MATCHES`` was checked against doublestar v1.3.4's ``Match`` itself (Harbor's
empty-pattern rule aside), including its quirks; ``DIFFERENCES`` are the cases where we differ
on purpose (see the module docstring): ``SLASHED_BRACES`` lists doublestar's answers too.
"""

from __future__ import annotations

import time

import pytest

from engine.glob import Glob, GlobError, compile_glob, glob_match

MATCHES: list[tuple[str, str, bool]] = [
    # Harbor's own table (src/pkg/reg/util/pattern_test.go)
    ("", "library", True),
    ("", "", True),
    ("*", "library", True),
    ("*", "library/hello-world", False),
    ("**", "library/hello-world", True),
    ("{library,harbor}/**", "library/hello-world", True),
    ("{library,harbor}/**", "harbor/hello-world", True),
    ("1.?", "1.0", True),
    ("1.?", "1.01", False),
    ("v2.[4-6].*", "v2.4.0", True),
    ("v2.[4-7].*", "v2.7.0", True),
    # an empty pattern matches everything (Harbor's rule, before doublestar)
    ("", "a/b/c", True),
    # "*" stays inside one component, and matches the empty tag of an untagged artifact
    ("*", "", True),
    ("library/*", "library/nginx", True),
    ("library/*", "library/a/nginx", False),
    ("*/nginx", "library/nginx", True),
    ("*/nginx", "nginx", False),
    ("v*", "v1.2.3", True),
    ("v*", "latest", False),
    ("*latest*", "x-latest-y", True),
    # "**" as a whole component: zero or more components, one or more at the end
    ("library/**", "library", False),
    ("library/**", "library/", True),
    ("library/**", "library/nginx", True),
    ("library/**", "library/a/b", True),
    ("library/**", "libraryx/a", False),
    ("**/nginx", "nginx", True),
    ("**/nginx", "a/b/nginx", True),
    ("**/nginx", "a/b/nginx-slim", False),
    ("a/**/b", "a/b", True),
    ("a/**/b", "a/x/y/b", True),
    ("a/**/b", "a/x/y/c", False),
    ("**", "", True),
    ("**/**", "a", True),
    ("*/**", "a", False),
    ("*/**", "a/b/c", True),
    ("**/", "a/", True),
    ("**/", "a", False),
    # anywhere else "**" is "*": it never crosses "/"
    ("library**", "library-x", True),
    ("library**", "library/x", False),
    ("**a", "xa", True),
    ("**a", "x/a", False),
    ("{a,b}**", "ab", True),
    ("{a,b}**", "a", True),
    ("{a,b}**", "a/b", False),
    ("{a,b}**", "c", False),
    # "?": exactly one character, never "/"
    ("?", "", False),
    ("a?c", "abc", True),
    ("a?c", "a/c", False),
    # classes, ranges, negation with "^"; "!" is a literal
    ("[abc]", "b", True),
    ("[abc]", "d", False),
    ("[a-c]x", "bx", True),
    ("[a-c]x", "dx", False),
    ("[^a-c]x", "dx", True),
    ("[^a-c]x", "bx", False),
    ("[^a]", "/", False),
    ("[!a]", "!", True),
    ("[!a]", "a", True),
    ("[!a]", "b", False),
    ("[^]", "q", True),
    ("[\\]]", "]", True),
    ("[\\-]", "-", True),
    ("[z-a]", "m", False),
    ("[a/b]", "a", True),
    # alternatives, nested, empty ones
    ("{nginx,redis}", "redis", True),
    ("{nginx,redis}", "mysql", False),
    ("library/{nginx,redis}", "library/nginx", True),
    ("{a,{b,c}d}", "cd", True),
    ("{a,{b,c}d}", "c", False),
    ("release-{1.{0,1},2.0}", "release-1.1", True),
    ("release-{1.{0,1},2.0}", "release-1.2", False),
    ("{,v}1.*", "1.0", True),
    ("{,v}1.*", "v1.0", True),
    ("*.{sig,att,sbom}", "sha256-abc.att", True),
    ("*-{alpine,slim}", "1.25-slim", True),
    # escapes
    ("\\*", "*", True),
    ("\\*", "a", False),
    ("a\\?", "a?", True),
    ("a\\?", "ab", False),
    ("\\[a]", "[a]", True),
    ("\\{a,b}", "{a,b}", True),
    ("lib\\rary", "library", True),
    ("a\\/b", "a/b", False),
    # literal characters that are special only elsewhere
    ("a]", "a]", True),
    ("a}", "a}", True),
    ("a,b", "a,b", True),
    ("^a", "^a", True),
    # doublestar's quirks, kept: a "*" followed by more pattern leaves it one character ...
    ("*{,-rc}", "1.0", False),
    ("*{,-rc}", "1.0-rc", True),
    ("a*{,x}", "ab", False),
    ("a*{,x}", "abx", True),
    # ... and only some rests may match nothing at the end of a component
    ("a**", "a", True),
    ("a***", "a", False),
    ("a***", "ab", True),
    ("{,x}*", "", True),
    ("{*,x}{,y}", "", True),
    ("a{,x}b", "a", False),
]

# pattern, name, ours, doublestar's: alternatives ending in different components go wrong there
SLASHED_BRACES: list[tuple[str, str, bool, bool]] = [
    ("{a,a/x}", "a", True, False),
    ("{a,a/x}", "a/x", True, True),
    ("{,*/}nginx", "nginx", True, False),
    ("{library/nginx,tools/*}", "tools/busybox", True, True),
    ("{library/nginx,tools/*}", "library/redis", False, False),
    ("{library,tools/**}/x", "tools/a/b/x", True, True),
]

MALFORMED = [
    ("[abc", "'[' at '[abc' is never closed"),
    ("a[", "'[' at '[' is never closed"),
    ("[]", "empty character class"),
    ("[]a]", "empty character class"),
    ("[-a]", "has a '-' with no start"),
    ("[a-]", "ends with '-'"),
    ("[a\\", "is never closed"),
    ("{a,b", "'{' at '{a,b' is never closed"),
    ("x/{a,{b}", "is never closed"),
    ("{a\\}", "is never closed"),
    ("abc\\", "ends with a lone '\\'"),
]


@pytest.mark.parametrize(("pattern", "name", "expected"), MATCHES)
def test_matches_doublestar(pattern: str, name: str, expected: bool) -> None:
    assert glob_match(pattern, name) is expected


@pytest.mark.parametrize(("pattern", "name", "expected", "doublestar"), SLASHED_BRACES)
def test_braces_holding_a_slash_are_plain_alternation(
    pattern: str, name: str, expected: bool, doublestar: bool
) -> None:
    assert glob_match(pattern, name) is expected, f"doublestar says {doublestar}"


@pytest.mark.parametrize(("pattern", "message"), MALFORMED)
def test_malformed_patterns_raise_up_front(pattern: str, message: str) -> None:
    with pytest.raises(GlobError) as caught:
        compile_glob(pattern)
    assert f"bad glob pattern {pattern!r}" in str(caught.value)
    assert message in str(caught.value)
    with pytest.raises(GlobError):
        glob_match(pattern, "anything")  # even where doublestar would just say "no"


def test_glob_error_is_a_value_error() -> None:
    assert issubclass(GlobError, ValueError)


def test_patterns_compile_once() -> None:
    first = compile_glob("library/{a,b}/**")
    assert isinstance(first, Glob)
    assert compile_glob("library/{a,b}/**") is first
    assert first.pattern == "library/{a,b}/**"
    assert repr(first) == "Glob('library/{a,b}/**')"


def test_one_compiled_pattern_answers_many_names() -> None:
    g = compile_glob("v[0-9]*.*")
    names = [f"v{i}.{j}" for i in range(20) for j in range(20)] + ["latest", "vx.1", "v1"]
    assert [n for n in names if g.match(n)] == names[:400]


@pytest.mark.parametrize(
    ("pattern", "name", "expected"),
    [
        ("*a*a*a*a*a*a*a*a*b", "a" * 128, False),  # doublestar takes minutes on this
        ("*a*a*a*a*a*a*a*a*a", "a" * 128, True),
        ("**/**/**/**/**/x", "a/" * 100 + "y", False),
        ("{a,aa}*{a,aa}*{a,aa}*{a,aa}*b", "a" * 200, False),
    ],
)
def test_matching_time_is_linear_in_the_name(pattern: str, name: str, expected: bool) -> None:
    started = time.perf_counter()
    assert glob_match(pattern, name) is expected
    assert time.perf_counter() - started < 1.0


def test_the_step_cache_is_bounded_and_results_survive_a_reset(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr("engine.glob._MAX_CACHED_STEPS", 8)
    g = Glob("{v,release-}[0-9]*.*")  # a fresh one, not the shared cache's
    names = [f"{p}{i}.{j}" for p in ("v", "release-", "x") for i in range(30) for j in range(3)]
    assert [n for n in names if g.match(n)] == [n for n in names if not n.startswith("x")]
    assert len(g._dfa.steps) < 8 + max(map(len, names))
