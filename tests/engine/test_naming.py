"""engine.naming: Harbor's dest_namespace / dest_namespace_replace_count mapping (the table in
Harbor's replaceNamespace, src/controller/replication/flow/stage.go) and path-depth rules."""

from __future__ import annotations

import pytest

from engine.naming import (
    DOCKER_HUB_DEPTH,
    HARBOR_DEPTH,
    NamingError,
    map_repository,
    validate_depth,
)

MAPPINGS: list[tuple[str, str | None, int | None, str]] = [
    # Harbor's table
    ("a/b/c/image", "n", -1, "n/image"),
    ("a/b/c/image", "n", 0, "n/a/b/c/image"),
    ("a/b/c/image", "n", 1, "n/b/c/image"),
    ("a/b/c/image", "n", 2, "n/c/image"),
    ("a/b/c/image", "n", 3, "n/image"),
    # an omitted count is -1, as in Harbor's API; any negative count flattens
    ("a/b/c/image", "n", None, "n/image"),
    ("a/b/c/image", "n", -7, "n/image"),
    # no namespace: the source path stays, whatever the count (even one too large)
    ("a/b/c/image", None, 2, "a/b/c/image"),
    ("a/b/c/image", "", -1, "a/b/c/image"),
    ("a/b/c/image", "", 4, "a/b/c/image"),
    ("a/b/c/image", "/", 4, "a/b/c/image"),
    # a one-component source
    ("image", "n", 0, "n/image"),
    ("image", "n", -1, "n/image"),
    # namespaces with several components, and stray slashes around them
    ("library/nginx", "mirror/hub", 0, "mirror/hub/library/nginx"),
    ("library/nginx", "mirror/hub", 1, "mirror/hub/nginx"),
    ("library/nginx", "/n/", 0, "n/library/nginx"),
]

IMPOSSIBLE = [
    ("a/b/c/image", "n", 4, "it has only 3 before its last ('image')"),
    ("image", "n", 1, "it has only 0 before its last"),
    ("a/image", "n", 9, "set dest_namespace_replace_count to 1 or less"),
    ("a/image", "n//m", 0, "empty, '.' or '..' path component"),
    ("a/image", "n/../m", 0, "empty, '.' or '..' path component"),
    ("a/image", "./n", 0, "empty, '.' or '..' path component"),
]

DEPTHS: list[tuple[str, int, int | None, bool]] = [
    ("n/image", *DOCKER_HUB_DEPTH, True),
    ("image", *DOCKER_HUB_DEPTH, False),
    ("n/b/image", *DOCKER_HUB_DEPTH, False),
    ("n/image", *HARBOR_DEPTH, True),
    ("n/a/b/c/image", *HARBOR_DEPTH, True),
    ("image", *HARBOR_DEPTH, False),
    ("image", 1, None, True),
    ("a/b/c", 1, 3, True),
    ("a/b/c/d", 1, 3, False),
]


@pytest.mark.parametrize(("src", "namespace", "count", "expected"), MAPPINGS)
def test_map_repository(src: str, namespace: str | None, count: int | None, expected: str) -> None:
    assert map_repository(src, namespace, count) == expected


@pytest.mark.parametrize(("src", "namespace", "count", "message"), IMPOSSIBLE)
def test_impossible_mappings_raise(src: str, namespace: str, count: int, message: str) -> None:
    with pytest.raises(NamingError) as caught:
        map_repository(src, namespace, count)
    assert message in str(caught.value)


@pytest.mark.parametrize(("name", "low", "high", "ok"), DEPTHS)
def test_validate_depth(name: str, low: int, high: int | None, ok: bool) -> None:
    if ok:
        assert validate_depth(name, low, high) == name
    else:
        with pytest.raises(NamingError) as caught:
            validate_depth(name, low, high)
        assert repr(name) in str(caught.value)
        assert "dest_namespace" in str(caught.value)


@pytest.mark.parametrize(
    ("low", "high", "rule"),
    [(2, 2, "exactly 2"), (2, None, "at least 2"), (2, 3, "2 to 3")],
)
def test_depth_errors_state_the_rule(low: int, high: int | None, rule: str) -> None:
    with pytest.raises(NamingError, match=f"has 1 path component\\(s\\), .* needs {rule}:"):
        validate_depth("image", low, high)


@pytest.mark.parametrize(("low", "high"), [(0, None), (3, 2), (-1, 1)])
def test_impossible_depth_rules_are_programming_errors(low: int, high: int | None) -> None:
    with pytest.raises(ValueError, match="no name can have") as caught:
        validate_depth("a/b", low, high)
    assert not isinstance(caught.value, NamingError)


def test_naming_error_is_a_value_error() -> None:
    assert issubclass(NamingError, ValueError)
