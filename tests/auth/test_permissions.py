from __future__ import annotations

import pytest

from registry.auth.permissions import (
    REPOSITORY_ACTIONS,
    Grant,
    GrantError,
    allowed_actions,
    is_valid_pattern,
    parse_grant,
    pattern_matches,
)
from registry.auth.scopes import Access

ALL3 = frozenset({"pull", "push", "delete"})


def repo(name: str, *actions: str) -> Access:
    return Access("repository", name, frozenset(actions))


def grant(pattern: str, *actions: str) -> Grant:
    return Grant(pattern, frozenset(actions))


CATALOG = Access("registry", "catalog", frozenset({"*"}))


@pytest.mark.parametrize(
    ("pattern", "repository", "expected"),
    [
        ("team/app", "team/app", True),
        ("team/app", "team/app2", False),
        ("team/app", "team/app/sub", False),
        ("team/app", "team", False),
        ("team/*", "team/app", True),
        ("team/*", "team/a/b", True),
        ("team/*", "team/a/b/c/d", True),
        ("team/*", "team", False),
        ("team/*", "teamx/app", False),
        ("team/*", "teamx", False),
        ("team/*", "xteam/app", False),
        ("team/*", "other/team/app", False),
        ("team/a/*", "team/a/b", True),
        ("team/a/*", "team/ab/c", False),
        ("team/a/*", "team/b", False),
        ("*", "anything", True),
        ("*", "deep/er/name", True),
        # invalid repository names never match, whatever the pattern
        ("team/*", "team/../other", False),
        ("team/*", "team/./app", False),
        ("team/*", "team//app", False),
        ("team/*", "team/", False),
        ("team/*", "team/App", False),
        ("*", "../etc", False),
        ("*", "", False),
        ("team/*", "team/app/", False),
        # malformed patterns match nothing
        ("team*", "teamx/app", False),
        ("team*", "team/app", False),
        ("*/app", "team/app", False),
        ("team/**", "team/app", False),
        ("team/*/*", "team/a/b", False),
        ("/*", "team", False),
        ("", "", False),
        ("TEAM/*", "team/app", False),
    ],
)
def test_pattern_matches(pattern: str, repository: str, expected: bool) -> None:
    assert pattern_matches(pattern, repository) is expected


@pytest.mark.parametrize("pattern", ["*", "team", "team/app", "team/*", "a.b/c-d_e/*"])
def test_valid_patterns(pattern: str) -> None:
    assert is_valid_pattern(pattern)


@pytest.mark.parametrize("pattern", ["", "/*", "*/*", "team*", "team/", "Team/*", "a/../b"])
def test_invalid_patterns(pattern: str) -> None:
    assert not is_valid_pattern(pattern)


# --- allowed_actions -------------------------------------------------------------------------


def test_admin_gets_everything_requested_including_star() -> None:
    assert (
        allowed_actions(
            "admin", [], repo("any/repo", "pull", "push", "delete"), anonymous_pull=False
        )
        == ALL3
    )
    assert allowed_actions("admin", [], repo("x", "*"), anonymous_pull=False) == {"*"}


def test_admin_gets_only_known_actions() -> None:
    assert allowed_actions("admin", [], repo("x", "pull", "frobnicate"), anonymous_pull=False) == {
        "pull"
    }


def test_catalog_is_admin_only() -> None:
    assert allowed_actions("admin", [], CATALOG, anonymous_pull=False) == {"*"}
    everything = [grant("*", "pull", "push", "delete")]
    for kind in ("user", "robot", None):
        assert allowed_actions(kind, everything, CATALOG, anonymous_pull=True) == frozenset()


@pytest.mark.parametrize(
    "access",
    [
        Access("registry", "other", frozenset({"*"})),
        Access("registry", "catalog", frozenset({"pull"})),
        Access("repository(plugin)", "x", frozenset({"pull"})),
        Access("unknown", "x", frozenset({"pull"})),
        repo("team/../secret", "pull"),
        repo("Team/App", "pull"),
    ],
)
def test_unknown_resources_and_invalid_names_get_nothing_even_for_admin(access: Access) -> None:
    assert allowed_actions("admin", [], access, anonymous_pull=True) == frozenset()


def test_anonymous_gets_nothing_without_anonymous_pull() -> None:
    assert allowed_actions(None, [], repo("team/app", "pull"), anonymous_pull=False) == frozenset()


def test_anonymous_pull_gives_pull_only() -> None:
    got = allowed_actions(None, [], repo("team/app", "pull", "push", "delete"), anonymous_pull=True)
    assert got == {"pull"}
    assert allowed_actions(None, [], repo("x", "*"), anonymous_pull=True) == frozenset()


def test_anonymous_ignores_grants() -> None:
    grants = [grant("*", "pull", "push")]
    assert allowed_actions(None, grants, repo("a", "push"), anonymous_pull=False) == frozenset()


@pytest.mark.parametrize("kind", ["user", "robot"])
def test_user_and_robot_get_what_matching_grants_give(kind: str) -> None:
    grants = [grant("team/*", "pull"), grant("team/app", "push"), grant("other", "delete")]
    assert allowed_actions(
        kind, grants, repo("team/app", "pull", "push", "delete"), anonymous_pull=False
    ) == {"pull", "push"}
    assert allowed_actions(
        kind, grants, repo("team/lib", "pull", "push"), anonymous_pull=False
    ) == {"pull"}
    assert (
        allowed_actions(kind, grants, repo("teamx/app", "pull"), anonymous_pull=False)
        == frozenset()
    )
    assert allowed_actions(kind, grants, repo("team", "pull"), anonymous_pull=False) == frozenset()


def test_push_does_not_imply_pull() -> None:
    got = allowed_actions(
        "robot", [grant("ci/*", "push")], repo("ci/app", "pull", "push"), anonymous_pull=False
    )
    assert got == {"push"}


def test_no_grants_means_nothing() -> None:
    assert allowed_actions("user", [], repo("a", "pull"), anonymous_pull=False) == frozenset()


def test_result_is_intersection_with_request() -> None:
    grants = [grant("*", "pull", "push", "delete")]
    assert allowed_actions("user", grants, repo("a", "pull"), anonymous_pull=False) == {"pull"}
    assert allowed_actions("user", grants, repo("a"), anonymous_pull=False) == frozenset()


def test_anonymous_pull_also_gives_pull_to_accounts() -> None:
    got = allowed_actions(
        "user", [grant("a", "push")], repo("b", "pull", "push"), anonymous_pull=True
    )
    assert got == {"pull"}


def test_star_request_needs_all_three_actions() -> None:
    full = [grant("team/*", "pull", "push", "delete")]
    partial = [grant("team/*", "pull", "push")]
    assert allowed_actions("user", full, repo("team/a", "*"), anonymous_pull=False) == {"*"}
    assert (
        allowed_actions("user", partial, repo("team/a", "*"), anonymous_pull=False) == frozenset()
    )


def test_star_and_unknown_actions_in_stored_grants() -> None:
    assert allowed_actions(
        "user", [grant("a", "*")], repo("a", "delete"), anonymous_pull=False
    ) == {"delete"}
    assert (
        allowed_actions(
            "user", [grant("a", "pull", "admin")], repo("a", "admin"), anonymous_pull=False
        )
        == frozenset()
    )


def test_malformed_stored_pattern_grants_nothing() -> None:
    grants = [grant("team*", "pull")]
    assert (
        allowed_actions("user", grants, repo("team/app", "pull"), anonymous_pull=False)
        == frozenset()
    )


@pytest.mark.parametrize("kind", ["Admin", "root", "", "guest"])
def test_unknown_kinds_get_nothing_even_with_anonymous_pull(kind: str) -> None:
    grants = [grant("*", "pull")]
    assert allowed_actions(kind, grants, repo("a", "pull"), anonymous_pull=True) == frozenset()


def test_grant_normalises_actions() -> None:
    g = Grant("a", ["pull", "pull"])  # type: ignore[arg-type]
    assert g.actions == frozenset({"pull"})
    assert hash(g) == hash(grant("a", "pull"))


# --- parse_grant -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("team/*=pull,push", grant("team/*", "pull", "push")),
        ("team/app=pull", grant("team/app", "pull")),
        ("*=pull", grant("*", "pull")),
        ("*=*", Grant("*", REPOSITORY_ACTIONS)),
        ("team/*=*", Grant("team/*", ALL3)),
        (" team/app = pull , delete ", grant("team/app", "pull", "delete")),
        ("a=push,pull,push", grant("a", "pull", "push")),
    ],
)
def test_parse_grant(text: str, expected: Grant) -> None:
    assert parse_grant(text) == expected


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ("team/*", "not PATTERN=ACTIONS"),
        ("=pull", "not PATTERN=ACTIONS"),
        ("team/*=", "not PATTERN=ACTIONS"),
        ("", "not PATTERN=ACTIONS"),
        ("team/*=pul", "unknown action"),
        ("team/*=pull,", "unknown action"),
        ("team/*=pull,*", "unknown action"),
        ("team/*=PULL", "unknown action"),
        ("team/*=catalog", "unknown action"),
        ("team*=pull", "not a repository pattern"),
        ("Team/App=pull", "not a repository pattern"),
        ("team/../x=pull", "not a repository pattern"),
        ("*/app=pull", "not a repository pattern"),
        ("team/*=pull=push", "unknown action"),
    ],
)
def test_parse_grant_errors_say_what_to_write(text: str, why: str) -> None:
    with pytest.raises(GrantError, match=why):
        parse_grant(text)


def test_grant_error_is_a_value_error() -> None:
    with pytest.raises(ValueError):
        parse_grant("nope")
