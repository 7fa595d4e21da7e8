"""engine.patterns: every filter pattern is bounded, checked and compiled once, and matches in
time linear in the text."""

from __future__ import annotations

import time

import pytest

from engine.filters import Filter, FilterError
from engine.patterns import MAX_PATTERN_CHARS, PatternError, compile_pattern


@pytest.mark.parametrize(
    ("syntax", "pattern", "message"),
    [
        ("regex", "a{1,99999999999}", "counts beyond 1000"),
        ("regex", "a{1001}", "counts beyond 1000"),
        ("regex", r"(a)\1", "no backreferences"),
        ("regex", "(?=a)b", "no lookaround"),
        ("regex", "(lib", "is not a regular expression"),
        ("regex", "x" * (MAX_PATTERN_CHARS + 1), f"at most {MAX_PATTERN_CHARS}"),
        ("glob", "v[0-9", "bad glob pattern"),
        ("semver", "^^1", "is not a semver range"),
        ("pcre", "x", "unknown pattern syntax"),
    ],
)
def test_bad_patterns_are_refused_with_what_to_do(syntax: str, pattern: str, message: str) -> None:
    with pytest.raises(PatternError) as caught:
        compile_pattern(syntax, pattern)
    assert message in str(caught.value)


def test_a_backtracking_regex_matches_in_linear_time() -> None:
    match = compile_pattern("regex", r"(a+)+$")
    started = time.perf_counter()
    for n in range(20, 128):
        assert not match("a" * n + "-")
    assert match("a" * 127)
    assert time.perf_counter() - started < 0.5


def test_regex_matches_the_whole_text() -> None:
    match = compile_pattern("regex", r"v\d+")
    assert match("v12") and not match("v12a") and not match("xv1")
    assert compile_pattern("regex", "lib.*")("library/nginx")


def test_a_filter_refuses_a_bad_pattern_at_construction() -> None:
    with pytest.raises(FilterError, match="counts beyond 1000"):
        Filter("tag", "a{1,99999999999}", syntax="regex")
    with pytest.raises(FilterError, match="longer than"):
        Filter("label", ["k" * 600, "v" * 600])
    assert Filter("tag", r"(a+)+$", syntax="regex").passes("aaa")
