from __future__ import annotations

import dataclasses

import pytest

from registry.auth.scopes import Access, ScopeError, format_scope, parse_scope


def access(type_: str, name: str, *actions: str) -> Access:
    return Access(type_, name, frozenset(actions))


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("repository:team/app:pull", access("repository", "team/app", "pull")),
        ("repository:team/app:pull,push", access("repository", "team/app", "pull", "push")),
        ("repository:a:push,pull,push", access("repository", "a", "pull", "push")),
        ("registry:catalog:*", access("registry", "catalog", "*")),
        ("repository:localhost:5000/app:pull", access("repository", "localhost:5000/app", "pull")),
        ("repository(plugin):vendor/x:pull", access("repository(plugin)", "vendor/x", "pull")),
        ("repository:team/app:*", access("repository", "team/app", "*")),
    ],
)
def test_parse_single_scope(text: str, expected: Access) -> None:
    assert parse_scope(text) == [expected]


def test_parse_several_space_separated_scopes_in_order() -> None:
    got = parse_scope("  repository:b:pull   repository:a:pull,push\tregistry:catalog:*  ")
    assert got == [
        access("repository", "b", "pull"),
        access("repository", "a", "pull", "push"),
        access("registry", "catalog", "*"),
    ]


@pytest.mark.parametrize("text", ["", "   ", "\t\n"])
def test_empty_scope_is_no_access(text: str) -> None:
    assert parse_scope(text) == []


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ("repository", "not type:name:actions"),
        ("repository:team/app", "not type:name:actions"),
        (":team/app:pull", "resource type"),
        ("Repository:team/app:pull", "resource type"),
        ("repo sitory:team/app:pull", "not type:name:actions"),  # splits into two scopes
        ("repository(:x:pull", "resource type"),
        ("repository::pull", "names no resource"),
        ("repository:team/app:", "invalid action"),
        ("repository:team/app:pull,", "invalid action"),
        ("repository:team/app:pull,,push", "invalid action"),
        ("repository:team/app:PULL", "invalid action"),
        ("repository:team/app:pull2", "invalid action"),
        ("repository:team/app:**", "invalid action"),
        ("repository:a:pull repository:b", "not type:name:actions"),
    ],
)
def test_invalid_scopes_raise_scope_error_naming_the_scope(text: str, why: str) -> None:
    with pytest.raises(ScopeError, match=why) as info:
        parse_scope(text)
    assert "e.g." in str(info.value) or "expected" in str(info.value)


def test_scope_error_is_a_value_error() -> None:
    with pytest.raises(ValueError):
        parse_scope("nonsense")


def test_format_scope_sorts_actions() -> None:
    assert format_scope(access("repository", "team/app", "push", "pull")) == (
        "repository:team/app:pull,push"
    )
    assert format_scope(access("registry", "catalog", "*")) == "registry:catalog:*"


@pytest.mark.parametrize(
    "value",
    [
        access("repository", "team/app", "pull", "push", "delete"),
        access("repository", "localhost:5000/x", "pull"),
        access("registry", "catalog", "*"),
    ],
)
def test_format_then_parse_round_trips(value: Access) -> None:
    assert parse_scope(format_scope(value)) == [value]


def test_access_is_frozen_hashable_and_normalises_actions() -> None:
    a = Access("repository", "x", {"pull"})  # type: ignore[arg-type]
    assert isinstance(a.actions, frozenset)
    assert a == access("repository", "x", "pull")
    assert len({a, access("repository", "x", "pull")}) == 1
    with pytest.raises(dataclasses.FrozenInstanceError):
        a.name = "y"  # type: ignore[misc]
