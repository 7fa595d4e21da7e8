"""``seawall registry add`` with provider settings, against a real server (whose adapters check
every endpoint before it is stored): flags become ``options``, bad ones get one clear line."""

from __future__ import annotations

from pathlib import Path

import pytest

from seawall import cli
from tests.support.server import SeawallProcess

ECR = "https://123456789012.dkr.ecr.eu-west-1.amazonaws.com"


def seawall_cli(server: SeawallProcess, *argv: str) -> int:
    return cli.main([*argv, "--url", server.url, "--password", server.admin_password])


def test_provider_settings_are_flags_checked_before_anything_is_stored(
    seawall: SeawallProcess, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    server, add = seawall, ["registry", "add"]
    code = seawall_cli(server, *add, "e1", "--type", "aws-ecr", "--registry-url", ECR,
                       "--role-arn", "not-an-arn", "--no-ping")  # fmt: skip
    out = capsys.readouterr()
    assert code == 1
    assert "role" in out.err and out.err.count("\n") == 1 and "Traceback" not in out.err

    code = seawall_cli(server, *add, "e2", "--type", "aws-ecr", "--registry-url", ECR,
                       "--regoin", "eu-west-1", "--no-ping")  # fmt: skip
    out = capsys.readouterr()
    assert code == 1 and "regoin" in out.err and "region" in out.err

    code = seawall_cli(server, *add, "e3", "--type", "docker-registry", "--registry-url",
                       f"file://{tmp_path}", "--no-ping")  # fmt: skip
    assert code == 1 and "http" in capsys.readouterr().err

    code = seawall_cli(server, *add, "usb", "--type", "oci-layout", "--registry-url",
                       f"file://{tmp_path}", "--no-ping")  # fmt: skip
    assert code == 0, capsys.readouterr()
    code = seawall_cli(server, *add, "ecr", "--type", "aws-ecr", "--registry-url", ECR,
                       "--role-arn", "arn:aws:iam::123456789012:role/seawall",
                       "--option", "scan_on_push=true", "--no-ping")  # fmt: skip
    assert code == 0, capsys.readouterr()
    capsys.readouterr()
    assert seawall_cli(server, "registry", "list") == 0
    listed = capsys.readouterr().out
    assert "usb" in listed and f"file://{tmp_path}" in listed and "ecr" in listed
    assert "e1" not in listed.split() and "e2" not in listed.split()

    assert seawall_cli(server, "registry", "types") == 0
    types = capsys.readouterr().out
    for name in ("aws-ecr", "azure-acr", "google-gar", "google-gcr", "oci-layout"):
        assert name in types
    assert "--role-arn" in types and "--tenant-id" in types and "--project" in types


def test_unknown_flags_elsewhere_are_still_refused(
    seawall: SeawallProcess, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as e:
        seawall_cli(seawall, "registry", "list", "--region", "x")
    assert e.value.code == 2
    assert "unrecognized arguments: --region x" in capsys.readouterr().err
