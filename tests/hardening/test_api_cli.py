"""The replication CLI on a first run: a misspelt filter syntax (``tag=regx:foo``) is refused,
not taken as a glob that could never match; ``registry add`` keeps no endpoint whose ping
failed; ``--cron`` makes a scheduled policy; ``| head`` ends the output quietly."""

from __future__ import annotations

import json
import os
import sys

import pytest

from seawall.replication_cli import parse_filter
from seawall.replication_client import CliError
from tests.api.harness import InProcessApi
from tests.api.test_cli import seawall


@pytest.mark.parametrize("text", ["tag=regx:foo", "name=rgex:lib.*", "tag!=sember:>=1"])
def test_a_misspelt_syntax_is_refused(text: str) -> None:
    with pytest.raises(CliError) as caught:
        parse_filter(text)
    assert caught.value.exit_code == 2 and "is not a syntax" in str(caught.value)


def test_values_with_colons_are_kept_where_they_can_match() -> None:
    assert parse_filter("label=org.source=https://x")["value"] == ["org.source=https://x"]
    assert parse_filter("tag=regex:v\\d+")["syntax"] == "regex"


def test_registry_add_keeps_no_endpoint_whose_ping_failed(
    api: InProcessApi, capsys: pytest.CaptureFixture[str]
) -> None:
    api.fakes.unhealthy["https://typo.example.com"] = "connection refused"
    add = ("registry", "add", "hub", "--type", "docker-registry")
    assert seawall(api, *add, "--registry-url", "https://typo.example.com") == 1
    err = capsys.readouterr().err  # a failure: said on stderr
    assert "not added" in err and "--no-ping" in err
    assert seawall(api, "registry", "list") == 0
    assert "typo" not in capsys.readouterr().out
    assert seawall(api, *add, "--registry-url", "https://typo.example.com", "--no-ping") == 0
    assert "added registry hub" in capsys.readouterr().out


def test_cron_makes_a_scheduled_policy_and_is_refused_with_another_trigger(
    api: InProcessApi, capsys: pytest.CaptureFixture[str]
) -> None:
    add = ("registry", "add", "hub", "--type", "docker-registry", "--no-ping")
    assert seawall(api, *add, "--registry-url", "https://hub.example.com") == 0
    policy = ("policy", "add", "nightly", "--src-registry", "hub", "--cron", "0 0 2 * * *")
    assert seawall(api, *policy) == 0
    capsys.readouterr()
    assert seawall(api, "policy", "show", "nightly", "--json") == 0
    assert '"scheduled"' in capsys.readouterr().out
    assert seawall(api, *policy[:2], "x", *policy[3:], "--trigger", "manual") == 2
    assert "--cron applies to --trigger scheduled" in capsys.readouterr().err


def test_a_closed_pipe_ends_the_output_quietly(
    api: InProcessApi, monkeypatch: pytest.MonkeyPatch
) -> None:
    add = ("registry", "add", "hub", "--type", "docker-registry", "--no-ping")
    assert seawall(api, *add, "--registry-url", "https://hub.example.com") == 0
    read, write = os.pipe()
    os.close(read)  # the reader (| head) has gone
    with os.fdopen(write, "w") as closed:
        monkeypatch.setattr(sys, "stdout", closed)
        assert seawall(api, "registry", "list") == 0


def test_policy_update_raises_the_deletion_guard(
    api: InProcessApi, capsys: pytest.CaptureFixture[str]
) -> None:
    add = ("registry", "add", "hub", "--type", "docker-registry", "--no-ping")
    assert seawall(api, *add, "--registry-url", "https://hub.example.com") == 0
    assert seawall(api, "policy", "add", "mirror", "--dest-registry", "hub", "--deletion") == 0
    update = ("policy", "update", "mirror", "--max-deletions", "500")
    assert seawall(api, *update, "--max-deletion-fraction", "0.5", "--disable") == 0
    assert "updated policy mirror" in capsys.readouterr().out
    assert seawall(api, "policy", "show", "mirror", "--json") == 0
    shown = json.loads(capsys.readouterr().out)
    assert (shown["max_deletions"], shown["max_deletion_fraction"]) == (500, 0.5)
    assert shown["enabled"] is False and shown["deletion"] is True
    assert seawall(api, "policy", "update", "mirror") == 2  # nothing to change
    assert seawall(api, "policy", "update", "mirror", "--max-deletions", "-1") == 1
    assert "max_deletions must be at least 0" in capsys.readouterr().err
