"""The token endpoint's scopes are bounded and merged in one place: :func:`parse_scopes`."""

from __future__ import annotations

import pytest

from registry.auth.scopes import MAX_SCOPE_CHARS, MAX_SCOPES, Access, ScopeError, parse_scopes


def test_duplicates_merge_into_one_entry_in_order_of_first_appearance() -> None:
    got = parse_scopes(["repository:b:pull repository:a:pull", "repository:b:push registry:c:*"])
    assert got == [
        Access("repository", "b", frozenset({"pull", "push"})),
        Access("repository", "a", frozenset({"pull"})),
        Access("registry", "c", frozenset({"*"})),
    ]


def test_up_to_the_limit_of_distinct_scopes_is_accepted() -> None:
    values = [f"repository:r{i}:pull" for i in range(MAX_SCOPES)]
    assert len(parse_scopes(values)) == MAX_SCOPES
    assert len(parse_scopes(values * 3)) == MAX_SCOPES  # repeats are not distinct


def test_more_distinct_scopes_than_the_limit_are_refused_saying_what_to_do() -> None:
    values = [f"repository:r{i}:pull" for i in range(MAX_SCOPES + 1)]
    with pytest.raises(ScopeError, match=f"at most {MAX_SCOPES}"):
        parse_scopes(values)


def test_two_thousand_scopes_in_one_value_are_refused() -> None:
    with pytest.raises(ScopeError):
        parse_scopes([" ".join(f"repository:r{i}:pull" for i in range(2000))])


def test_too_much_scope_text_is_refused_before_parsing() -> None:
    with pytest.raises(ScopeError, match=f"at most {MAX_SCOPE_CHARS}"):
        parse_scopes(["repository:" + "a" * MAX_SCOPE_CHARS + ":pull"])


def test_malformed_scope_is_still_a_scope_error() -> None:
    with pytest.raises(ScopeError, match="type:name:actions"):
        parse_scopes(["repository:a"])
