"""``--filter`` with a misspelt syntax (``tag=regx:foo``) is refused, not taken as a glob that
could never match (names and tags hold no ``:``)."""

from __future__ import annotations

import pytest

from seawall.replication_cli import parse_filter
from seawall.replication_client import CliError


@pytest.mark.parametrize("text", ["tag=regx:foo", "name=rgex:lib.*", "tag!=sember:>=1"])
def test_a_misspelt_syntax_is_refused(text: str) -> None:
    with pytest.raises(CliError) as caught:
        parse_filter(text)
    assert caught.value.exit_code == 2 and "is not a syntax" in str(caught.value)


def test_values_with_colons_are_kept_where_they_can_match() -> None:
    assert parse_filter("label=org.source=https://x")["value"] == ["org.source=https://x"]
    assert parse_filter("tag=regex:v\\d+")["syntax"] == "regex"
