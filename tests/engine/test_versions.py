"""engine.versions: tags as SemVer versions, npm-style ranges (rows without our extensions were
checked against node-semver 7's ``satisfies``), and our extensions (commas, ``!=``)."""

from __future__ import annotations

import pytest

from engine.versions import SemverError, Version, parse_range, parse_version

VERSIONS: list[tuple[str, Version | None]] = [
    ("1.2.3", Version(1, 2, 3)),
    ("v1.2.3", Version(1, 2, 3)),
    ("0.0.0", Version(0, 0, 0)),
    ("10.20.30", Version(10, 20, 30)),
    ("1.2.3-rc.1", Version(1, 2, 3, ("rc", 1))),
    ("1.2.3-0.alpha-x.7", Version(1, 2, 3, (0, "alpha-x", 7))),
    ("1.2.3+build.5", Version(1, 2, 3)),
    ("1.2.3-beta+exp.sha", Version(1, 2, 3, ("beta",))),
    ("latest", None),
    ("1.25", Version(1, 25, 0)),  # the short forms people tag with
    ("1", Version(1, 0, 0)),
    ("v1.2", Version(1, 2, 0)),
    ("1.0-rc1", None),  # a pre-release needs all three numbers
    ("1.02", None),
    ("1.2.3.4", None),
    ("01.2.3", None),
    ("1.02.3", None),
    ("1.2.3-01", None),
    ("1.2.3-", None),
    ("V1.2.3", None),
    ("v1.2.3\n", None),
    ("1.2.3-rc_1", None),
    ("\u0661.2.3", None),  # an Arabic-Indic digit is not a digit here
    ("", None),
]

ORDER = [
    "0.9.9",
    "1.0.0-0",
    "1.0.0-alpha",
    "1.0.0-alpha.1",
    "1.0.0-alpha.beta",
    "1.0.0-beta",
    "1.0.0-beta.2",
    "1.0.0-beta.11",
    "1.0.0-rc.1",
    "1.0.0",
    "1.0.1",
    "1.1.0",
    "2.0.0",
]

# range, tag, matches: node-semver 7 agrees with every row
NPM: list[tuple[str, str, bool]] = [
    (">=1.2.0 <2.0.0", "1.2.0", True),
    (">=1.2.0 <2.0.0", "1.9.9", True),
    (">=1.2.0 <2.0.0", "2.0.0", False),
    (">=1.2.0 <2.0.0", "1.1.9", False),
    (">= 1.2.0 < 2", "1.5.0", True),
    ("^1.2", "1.2.0", True),
    ("^1.2", "1.99.0", True),
    ("^1.2", "2.0.0", False),
    ("^1.2", "1.1.0", False),
    ("^1.2.3", "1.2.2", False),
    ("^0.2.3", "0.2.9", True),
    ("^0.2.3", "0.3.0", False),
    ("^0.0.3", "0.0.3", True),
    ("^0.0.3", "0.0.4", False),
    ("^0", "0.9.0", True),
    ("^0", "1.0.0", False),
    ("^0.0", "0.0.9", True),
    ("^0.0", "0.1.0", False),
    ("^1.x", "1.9.0", True),
    ("~1.4.2", "1.4.2", True),
    ("~1.4.2", "1.4.9", True),
    ("~1.4.2", "1.5.0", False),
    ("~1.4.2", "1.4.1", False),
    ("~1.4", "1.4.0", True),
    ("~1", "1.9.0", True),
    ("~1", "2.0.0", False),
    ("~>1.4.2", "1.4.5", True),
    ("~0.2.3", "0.2.9", True),
    ("~0.2.3", "0.3.0", False),
    ("1.x", "1.0.0", True),
    ("1.x", "1.99.99", True),
    ("1.x", "2.0.0", False),
    ("1.2.*", "1.2.7", True),
    ("1.2.*", "1.3.0", False),
    ("1", "1.5.0", True),
    ("1.2", "1.2.5", True),
    ("1.2", "1.3.0", False),
    ("*", "0.0.1", True),
    ("x", "3.4.5", True),
    ("=1.2.3", "1.2.3", True),
    ("=1.2.3", "1.2.4", False),
    ("1.2.3", "v1.2.3", True),
    (">1.2.3", "1.2.4", True),
    (">1.2.3", "1.2.3", False),
    (">1", "1.9.0", False),
    (">1", "2.0.0", True),
    (">1.2", "1.3.0", True),
    ("<=1.2", "1.2.9", True),
    ("<=1.2", "1.3.0", False),
    ("<1.2", "1.1.9", True),
    ("<1.2", "1.2.0", False),
    (">=1.x", "1.0.0", True),
    ("<*", "1.0.0", False),
    ("1.2 - 1.4", "1.4.9", True),
    ("1.2 - 1.4", "1.5.0", False),
    ("1.2.3 - 2.3.4", "2.3.4", True),
    ("1.2.3 - 2.3.4", "2.3.5", False),
    ("1.2.3 - 2", "2.9.0", True),
    ("1.x || >=2.5.0", "2.1.0", False),
    ("1.x || >=2.5.0", "2.6.0", True),
    ("1.2.x || 2.x", "2.3.0", True),
    ("v1.2.3", "1.2.3", True),
    (">=v1.2", "1.2.0", True),
    # pre-releases only where a comparator names a pre-release of the same x.y.z
    ("^1.2", "1.3.0-beta.1", False),
    ("*", "1.2.3-rc.1", False),
    (">=1.2.3-alpha <2", "1.2.3-beta", True),
    (">=1.2.3-alpha <2", "1.2.4-beta", False),
    (">=1.2.3-alpha <2", "1.2.3", True),
    ("^1.2.3-beta.1", "1.2.3-beta.2", True),
    ("^1.2.3-beta.1", "1.2.3-alpha", False),
    ("^1.2.3-beta.1", "1.2.4-beta.1", False),
    ("^2.0.0-0", "2.0.0-alpha", True),
    (">=1.0.0-0", "1.0.0-alpha", True),
    ("~1.4.2-rc.0", "1.4.2-rc.3", True),
    ("1.2.3-alpha", "1.2.3-alpha", True),
    ("<1.3.0-rc.2", "1.3.0-rc.1", True),
    ("<1.3.0-rc.2", "1.2.0-rc.1", False),
    ("<2.0.0", "2.0.0-alpha", False),
]

# our extensions: commas join like spaces; "!=" excludes a version or an X-range
EXTENSIONS: list[tuple[str, str, bool]] = [
    (">=1.2.0, <2.0.0", "1.5.0", True),
    (">=1.2.0,<2.0.0", "2.0.0", False),
    (">=1.2.0 , <2.0.0 || 3.x", "3.1.0", True),
    ("!=1.3.0", "1.3.0", False),
    ("!=1.3.0", "1.3.1", True),
    ("1.x !=1.3.0", "1.3.0", False),
    ("1.x, !=1.3.0", "1.4.0", True),
    ("1.x !=1.4.x", "1.4.7", False),
    ("1.x !=1.4.x", "1.5.0", True),
    ("!=1.4", "1.4.0", False),
    ("!=1", "1.9.9", False),
    ("!=1", "2.0.0", True),
    ("!=*", "1.0.0", False),
    ("!= 1.3.0", "1.3.0", False),
    # "!=" naming a pre-release does not let pre-releases in
    ("!=1.3.0-rc.1", "1.3.0-rc.2", False),
    (">=1.3.0-rc.0 !=1.3.0-rc.1", "1.3.0-rc.1", False),
    (">=1.3.0-rc.0 !=1.3.0-rc.1", "1.3.0-rc.2", True),
]

BAD_RANGES = [
    ("", "empty alternative"),
    ("1.x ||", "empty alternative"),
    ("|| 2", "empty alternative"),
    ("latest", "'latest' is not a version"),
    ("1.2.3.4", "'1.2.3.4' is not a version"),
    ("01.2.3", "is not a version"),
    (">=", "'' is not a version"),
    (">> 1", "is not a version"),
    ("1.x.2", "has a number after a wildcard"),
    (">=10.*.0", "has a number after a wildcard"),
    ("~1.2-beta", "is not a version"),
    (",", "no comparator"),
]


@pytest.mark.parametrize(("tag", "version"), VERSIONS)
def test_parse_version(tag: str, version: Version | None) -> None:
    assert parse_version(tag) == version


def test_precedence_follows_semver() -> None:
    versions = [parse_version(t) for t in ORDER]
    assert all(v is not None for v in versions)
    keys = [v.key() for v in versions if v is not None]
    assert keys == sorted(keys)
    assert len(set(keys)) == len(keys)
    assert str(parse_version("v1.0.0-beta.11+sha")) == "1.0.0-beta.11"


@pytest.mark.parametrize(("text", "tag", "expected"), NPM + EXTENSIONS)
def test_range_matches(text: str, tag: str, expected: bool) -> None:
    assert parse_range(text).matches(tag) is expected


@pytest.mark.parametrize("tag", ["latest", "1.0-rc1", "1.2.3.4", "", "v", "stable-1.2.3"])
def test_tags_that_are_not_versions_match_no_range(tag: str) -> None:
    for text in ("*", ">=0.0.0", "1.x || 2.x", "!=9.9.9"):
        assert parse_range(text).matches(tag) is False


@pytest.mark.parametrize(("text", "message"), BAD_RANGES)
def test_bad_ranges_raise(text: str, message: str) -> None:
    with pytest.raises(SemverError) as caught:
        parse_range(text)
    assert message in str(caught.value)
    assert repr(text) in str(caught.value)
    assert "e.g. >=1.2.0 <2.0.0" in str(caught.value)


def test_ranges_parse_once() -> None:
    assert parse_range("^1.2") is parse_range("^1.2")
    assert len(parse_range("1.x || 3.x").alternatives) == 2


@pytest.mark.parametrize(
    ("text", "tag", "expected"),
    [
        (">=1.0", "1.0", True),  # the README's tour
        (">=1.0", "0.9", False),
        ("^1.2", "v1.2", True),
        ("^1.2", "1.3", True),
        ("^1.2", "2", False),
        ("2.x", "2", True),
        (">=1.2.1", "1.2", False),  # 1.2 reads 1.2.0
    ],
)
def test_short_versions_are_versions(text: str, tag: str, expected: bool) -> None:
    assert parse_range(text).matches(tag) is expected
