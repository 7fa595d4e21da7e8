"""``seawall registry|policy|replicate|execution`` against the in-process API (the CLI's own
httpx client, through the test transport), and its error messages."""

from __future__ import annotations

import pytest

from seawall import cli, replication_cli
from seawall.replication_cli import parse_filter
from seawall.replication_client import CliError
from tests.api.harness import ADMIN_PASSWORD, READER_PASSWORD, InProcessApi
from tests.support.server import free_port

COPY = {
    "operation": "copy",
    "src_repository": "library/nginx",
    "dst_repository": "mirror/nginx",
    "src_resource": "library/nginx:[1.27]",
    "dst_resource": "mirror/nginx:[1.27]",
    "digest": "sha256:" + "a" * 64,
    "status": "Succeed",
    "outcome": "would-copy",
    "reason": "missing at destination",
}
DELETE = {
    **COPY,
    "operation": "deletion",
    "src_resource": "",
    "dst_resource": "mirror/old:[0.9]",
    "outcome": "would-delete",
    "reason": "gone at source",
}


def seawall(api: InProcessApi, *argv: str, password: str = ADMIN_PASSWORD) -> int:
    args = cli._parser().parse_args([*argv, "--url", api.url, "--password", password])
    return replication_cli.run(args, transport=api.transport())


def test_parse_filter() -> None:
    assert parse_filter("name=library/**") == {
        "type": "name",
        "decoration": "matches",
        "syntax": "glob",
        "value": "library/**",
    }
    assert parse_filter("tag=semver:>=1.2 <2")["syntax"] == "semver"
    got = parse_filter("tag!=regex:.*-rc")
    assert (got["decoration"], got["syntax"], got["value"]) == ("excludes", "regex", ".*-rc")
    assert parse_filter("label=prod, eu")["value"] == ["prod", "eu"]
    assert parse_filter("name=glob:a:b")["value"] == "a:b"
    with pytest.raises(CliError) as e:
        parse_filter("colour=red")
    assert e.value.exit_code == 2


def test_registry_commands(api: InProcessApi, capsys: pytest.CaptureFixture[str]) -> None:
    assert (
        seawall(
            api,
            *("registry", "add", "hub", "--type", "docker-registry"),
            *("--registry-url", "https://hub.example.com", "--access-key", "bob"),
            *("--access-secret", "tok"),
        )
        == 0
    )
    out = capsys.readouterr().out
    assert "added registry hub (id 1)" in out and "hub is healthy" in out
    assert seawall(api, "registry", "list") == 0
    out = capsys.readouterr().out
    assert "hub" in out and "https://hub.example.com" in out and "healthy" in out
    api.fakes.unhealthy["https://hub.example.com"] = "no route to host"
    assert seawall(api, "registry", "ping", "hub") == 1
    assert "hub is unhealthy" in capsys.readouterr().err
    assert seawall(api, "registry", "delete", "nope") == 1
    assert "no registry named 'nope'" in capsys.readouterr().err
    assert seawall(api, "registry", "delete", "hub") == 0
    assert "deleted registry hub" in capsys.readouterr().out


def test_policy_commands(api: InProcessApi, capsys: pytest.CaptureFixture[str]) -> None:
    add = ("registry", "add", "hub", "--type", "docker-registry", "--no-ping")
    assert seawall(api, *add, "--registry-url", "https://hub.example.com") == 0
    policy = ("policy", "add", "pull", "--src-registry", "hub", "--dest-namespace", "mirror")
    filters = ("--filter", "name=library/**", "--filter", "tag!=regex:.*-rc")
    assert seawall(api, *policy, *filters, "--deletion", "--replace-count", "1") == 0
    assert "added policy pull" in capsys.readouterr().out
    assert seawall(api, "policy", "show", "pull") == 0
    out = capsys.readouterr().out
    assert "name=library/**; tag!=regex:.*-rc" in out
    assert "hub" in out and "local" in out and "deletion:      yes (at most 100" in out
    assert seawall(api, "policy", "list") == 0
    assert "hub -> local" in capsys.readouterr().out
    assert seawall(api, "policy", "add", "x", "--src-registry", "hub", "--filter", "bad") == 2
    assert "--filter 'bad'" in capsys.readouterr().err
    assert seawall(api, "policy", "add", "x") == 2
    assert seawall(api, "policy", "add", "pull", "--src-registry", "hub") == 1
    assert "already exists" in capsys.readouterr().err
    assert seawall(api, "policy", "delete", "pull") == 0


def test_replicate_dry_run_waits_and_shows_the_plan(
    api: InProcessApi, capsys: pytest.CaptureFixture[str]
) -> None:
    add = ("registry", "add", "hub", "--type", "docker-registry", "--no-ping")
    assert seawall(api, *add, "--registry-url", "https://hub.example.com") == 0
    assert seawall(api, "policy", "add", "pull", "--src-registry", "hub") == 0
    capsys.readouterr()
    api.fakes.plan = [COPY, DELETE]
    assert seawall(api, "replicate", "pull", "--dry-run", "--wait") == 0
    out = capsys.readouterr().out
    assert "started dry run 1 of policy pull" in out
    assert "execution 1: InProgress" in out  # plain progress lines (not a TTY)
    assert "execution 1: Succeed  total 2  succeed 2" in out
    assert "would-copy" in out and "library/nginx:[1.27]" in out and "mirror/old:[0.9]" in out
    assert "1 would be copied, 1 would be deleted" in out
    api.fakes.plan = [{**COPY, "status": "Failed", "outcome": "failed", "log": "it broke"}]
    assert seawall(api, "replicate", "pull", "--wait") == 1
    assert "execution 2: Failed" in capsys.readouterr().out
    assert seawall(api, "execution", "tasks", "2") == 0
    assert "failed" in capsys.readouterr().out
    assert seawall(api, "execution", "log", "2", "3") == 0
    assert capsys.readouterr().out == "it broke\n"
    assert seawall(api, "execution", "list", "--policy", "pull") == 0
    assert "Failed" in capsys.readouterr().out
    assert seawall(api, "execution", "stop", "2") == 0


def test_connection_refused_names_the_server(capsys: pytest.CaptureFixture[str]) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    args = cli._parser().parse_args(["registry", "list", "--url", url, "--password", "x"])
    assert replication_cli.run(args) == 1
    err = capsys.readouterr().err
    assert url in err and "seawall serve" in err and "--url" in err


def test_bad_credentials_say_which_were_used(
    api: InProcessApi, capsys: pytest.CaptureFixture[str]
) -> None:
    assert seawall(api, "registry", "list", password="wrong") == 1
    err = capsys.readouterr().err
    assert "user 'admin'" in err and "--password" in err
    add = ["registry", "add", "r", "--type", "seawall", "--registry-url", "http://r.io"]
    login = ["--url", api.url, "--username", "reader", "--password", READER_PASSWORD]
    args = cli._parser().parse_args([*add, *login])
    assert replication_cli.run(args, transport=api.transport()) == 1
    assert "may read but not change" in capsys.readouterr().err


def test_password_from_the_environment(
    api: InProcessApi, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SEAWALL_ADMIN_PASSWORD", ADMIN_PASSWORD)
    monkeypatch.setenv("SEAWALL_URL", api.url)
    args = cli._parser().parse_args(["policy", "list"])
    assert replication_cli.run(args, transport=api.transport()) == 0
    monkeypatch.setenv("SEAWALL_ADMIN_PASSWORD", "stale")
    assert replication_cli.run(args, transport=api.transport()) == 1
    assert "$SEAWALL_ADMIN_PASSWORD" in capsys.readouterr().err
